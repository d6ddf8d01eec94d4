//! Who is on the other end of a unix socket, and what they may see.
//!
//! The kernel vouches for the peer's uid, gid and pid (`SO_PEERCRED`) and
//! its supplementary groups (`SO_PEERGROUPS`, Linux 4.13+; on older kernels
//! the `Groups:` line of `/proc/<pid>/status`). Root and members of the
//! configured group see everything; others see nothing, or with the
//! per-user view only their own sessions.

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Gid, Uid};

/// The credentials of a connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its user id.
    pub uid: u32,
    /// Its primary group id.
    pub gid: u32,
    /// Its process id (when it connected).
    pub pid: i32,
    /// Its supplementary groups; `None` when neither source could tell.
    pub groups: Option<Vec<u32>>,
}

/// What a peer may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Every session: root, or a member of the group.
    All,
    /// Only the sessions of this account (per-user view).
    Own(String),
    /// Nothing but `ping`.
    Denied,
}

impl Peer {
    /// Reads the credentials of the peer of `socket`.
    pub fn of(socket: &impl AsFd) -> std::io::Result<Peer> {
        let creds = getsockopt(socket, PeerCredentials).map_err(std::io::Error::from)?;
        let pid = creds.pid();
        let groups = peer_groups(socket).ok().or_else(|| proc_groups(pid).ok());
        Ok(Peer {
            uid: creds.uid(),
            gid: creds.gid(),
            pid,
            groups,
        })
    }

    /// True when `gid` is the peer's primary or a supplementary group.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.as_deref().unwrap_or(&[]).contains(&gid)
    }

    /// Decides what the peer may see. `group` is the gid of the allowed
    /// group (`None` when it does not exist: then only root is allowed);
    /// `per_user_view` lets the others see their own sessions.
    pub fn access(&self, group: Option<u32>, per_user_view: bool) -> Access {
        if self.uid == 0 || group.is_some_and(|gid| self.in_group(gid)) {
            return Access::All;
        }
        if per_user_view {
            if let Ok(Some(user)) = nix::unistd::User::from_uid(Uid::from_raw(self.uid)) {
                return Access::Own(user.name);
            }
        }
        Access::Denied
    }
}

/// The supplementary groups of the peer, from `SO_PEERGROUPS`.
pub fn peer_groups(socket: &impl AsFd) -> std::io::Result<Vec<u32>> {
    crate::os::net::peer_groups(socket)
}

/// The supplementary groups of process `pid`, from the `Groups:` line of
/// `/proc/<pid>/status`.
pub fn proc_groups(pid: i32) -> std::io::Result<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_groups(&status).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no Groups: line in /proc/{pid}/status"),
        )
    })
}

/// The gids of the `Groups:` line of a `/proc/<pid>/status` text.
pub fn parse_status_groups(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    line.split_whitespace().map(|g| g.parse().ok()).collect()
}

/// The gid of group `name`, or `None` when there is no such group.
pub fn group_id(name: &str) -> std::io::Result<Option<u32>> {
    match nix::unistd::Group::from_name(name) {
        Ok(group) => Ok(group.map(|g| g.gid.as_raw())),
        Err(e) => Err(e.into()),
    }
}

/// The name of group `gid`, for messages.
pub fn group_name(gid: u32) -> Option<String> {
    nix::unistd::Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn status_groups_are_parsed() {
        let status = "Name:\tsleep\nUid:\t0\t0\t0\t0\nGroups:\t4 24 1001 \nNgid:\t0\n";
        assert_eq!(parse_status_groups(status), Some(vec![4, 24, 1001]));
        assert_eq!(parse_status_groups("Groups:\t\n"), Some(vec![]));
        assert_eq!(parse_status_groups("Uid: 0\n"), None);
        assert_eq!(parse_status_groups("Groups: 1 x\n"), None);
    }

    #[test]
    fn a_socket_pair_sees_our_own_credentials() {
        let (a, _b) = UnixStream::pair().unwrap();
        let peer = Peer::of(&a).unwrap();
        assert_eq!(peer.uid, nix::unistd::getuid().as_raw());
        assert_eq!(peer.gid, nix::unistd::getgid().as_raw());
        assert_eq!(peer.pid, std::process::id() as i32);
        let mut ours: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        let mut theirs = peer.groups.clone().unwrap();
        ours.sort();
        theirs.sort();
        assert_eq!(theirs, ours);
        assert_eq!(
            proc_groups(peer.pid).unwrap().len(),
            peer.groups.unwrap().len()
        );
    }

    #[test]
    fn access_rules() {
        let peer = |uid, gid, groups: &[u32]| Peer {
            uid,
            gid,
            pid: 1,
            groups: Some(groups.to_vec()),
        };
        assert_eq!(peer(0, 0, &[]).access(None, false), Access::All);
        assert_eq!(peer(0, 5, &[]).access(Some(77), false), Access::All);
        assert_eq!(peer(1000, 77, &[]).access(Some(77), false), Access::All);
        assert_eq!(
            peer(1000, 100, &[3, 77]).access(Some(77), false),
            Access::All
        );
        assert_eq!(
            peer(1000, 100, &[3]).access(Some(77), false),
            Access::Denied
        );
        assert_eq!(peer(1000, 77, &[77]).access(None, false), Access::Denied);
        // uid 65534 is "nobody" on Debian.
        assert_eq!(
            peer(65534, 100, &[]).access(Some(77), true),
            Access::Own("nobody".into())
        );
        // A uid without a name has nothing to call its own.
        assert_eq!(
            peer(3_999_999, 100, &[]).access(Some(77), true),
            Access::Denied
        );
    }

    #[test]
    fn group_lookup() {
        assert_eq!(group_id("root").unwrap(), Some(0));
        assert_eq!(group_id("no-such-group-here").unwrap(), None);
        assert_eq!(group_name(0).as_deref(), Some("root"));
    }
}
