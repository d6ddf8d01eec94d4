//! Socket calls `nix` does not wrap, each behind a safe function: the
//! supplementary groups of a unix socket's peer (`SO_PEERGROUPS`) and
//! address-to-name translation (`getnameinfo`).

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// Longest host name `getnameinfo` writes (`NI_MAXHOST`).
const NI_MAXHOST: usize = 1025;
/// Longest service name `getnameinfo` writes (`NI_MAXSERV`).
const NI_MAXSERV: usize = 32;

/// The supplementary groups of the peer of a connected unix socket, from
/// `SO_PEERGROUPS` (Linux 4.13 and later).
pub fn peer_groups(socket: &impl AsFd) -> io::Result<Vec<u32>> {
    let fd = socket.as_fd().as_raw_fd();
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `fd` is an open descriptor borrowed for the call; the
        // buffer is `len` bytes long, writable, and lives across the call;
        // the kernel writes at most `len` bytes and updates `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(count);
            return Ok(groups);
        }
        let error = io::Error::last_os_error();
        // ERANGE: the kernel put the size it needs in `len`.
        if error.raw_os_error() == Some(libc::ERANGE) && count > groups.len() {
            groups.resize(count, 0);
            continue;
        }
        return Err(error);
    }
}

/// What `getnameinfo` wrote: the host and, when asked, the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameInfo {
    /// The host name or numeric address.
    pub host: Vec<u8>,
    /// The service (port), empty when not asked for.
    pub service: Vec<u8>,
}

/// `getnameinfo(3)` on the first `len` bytes of a raw `sockaddr` (at most
/// the size of a `sockaddr_storage`); `flags` are the `NI_*` flags;
/// `service` asks for the service too. The error is the `EAI_*` code.
pub fn getnameinfo(
    addr: &[u8],
    len: usize,
    service: bool,
    flags: libc::c_int,
) -> Result<NameInfo, libc::c_int> {
    let storage_len = std::mem::size_of::<libc::sockaddr_storage>();
    if len > addr.len() || len > storage_len {
        return Err(libc::EAI_FAMILY);
    }
    // SAFETY: an all-zero sockaddr_storage is a valid value (plain data).
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: `storage` is plain data of `storage_len` bytes, and at most
    // that many bytes are copied from `addr`, which holds them.
    unsafe {
        std::ptr::copy_nonoverlapping(
            addr.as_ptr(),
            (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
            addr.len().min(storage_len),
        )
    };
    let mut host = [0u8; NI_MAXHOST];
    let mut serv = [0u8; NI_MAXSERV];
    let (serv_ptr, serv_len) = if service {
        (serv.as_mut_ptr().cast::<libc::c_char>(), serv.len())
    } else {
        (std::ptr::null_mut(), 0)
    };
    // SAFETY: `storage` is valid for `len` <= its size bytes; `host` and
    // `serv` are writable for the lengths passed (or null with length 0);
    // getnameinfo writes NUL-terminated strings within those lengths.
    let eai = unsafe {
        libc::getnameinfo(
            (&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr>(),
            len as libc::socklen_t,
            host.as_mut_ptr().cast::<libc::c_char>(),
            host.len() as libc::socklen_t,
            serv_ptr,
            serv_len as libc::socklen_t,
            flags,
        )
    };
    if eai != 0 {
        return Err(eai);
    }
    let c = |b: &[u8]| b[..b.iter().position(|&x| x == 0).unwrap_or(b.len())].to_vec();
    Ok(NameInfo {
        host: c(&host),
        service: if service { c(&serv) } else { Vec::new() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_names_of_an_ipv4_address() {
        // A sockaddr_in: family (host order), port and address (network
        // order), zero padding.
        let mut raw = [0u8; 16];
        raw[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        raw[2..4].copy_from_slice(&2121u16.to_be_bytes());
        raw[4..8].copy_from_slice(&[192, 0, 2, 7]);
        let names = getnameinfo(
            &raw,
            std::mem::size_of::<libc::sockaddr_in>(),
            true,
            libc::NI_NUMERICHOST | libc::NI_NUMERICSERV,
        )
        .unwrap();
        assert_eq!(names.host, b"192.0.2.7");
        assert_eq!(names.service, b"2121");
        // Garbage lengths are refused, not read past.
        assert!(getnameinfo(&raw, 4096, false, 0).is_err());
        assert!(getnameinfo(&[0u8; 4], 28, false, 0).is_err());
    }

    #[test]
    fn a_socket_pair_has_our_groups() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut theirs = peer_groups(&a).unwrap();
        let mut ours: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        theirs.sort();
        ours.sort();
        assert_eq!(theirs, ours);
    }
}
