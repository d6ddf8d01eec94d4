//! The acceptance rules of a scoreboard file, as `pure-ftpwho` applies
//! them to what `fstat` says of the open file.

use std::os::fd::RawFd;

use nix::sys::stat::{fstat, FileStat, SFlag};
use nix::unistd::geteuid;

use super::layout::Layout;
use super::note::SkipReason;

/// The file owners a scan accepts: root, and the effective uid when it
/// owns the directory.
#[derive(Clone, Copy)]
pub(super) struct Owners {
    pub(super) euid: u32,
    dir_owned_by_euid: bool,
}

impl Owners {
    /// The owners accepted in the directory open at `dir_fd`.
    pub(super) fn of_dir(dir_fd: RawFd) -> Owners {
        let euid = geteuid().as_raw();
        let dir_owned_by_euid = fstat(dir_fd).map(|st| st.st_uid == euid).unwrap_or(false);
        Owners {
            euid,
            dir_owned_by_euid,
        }
    }

    fn accepts(&self, uid: u32) -> bool {
        uid == 0 || (self.dir_owned_by_euid && uid == self.euid)
    }
}

/// The layout to read a file with, when the file passes the rules: a
/// regular file, with owner read and write in its mode, owned by an
/// accepted owner, of the forced layout's size or else of a known
/// layout's size.
pub(super) fn accept(
    st: &FileStat,
    owners: &Owners,
    forced: Option<Layout>,
) -> Result<Layout, SkipReason> {
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Err(SkipReason::NotRegular);
    }
    if st.st_mode & 0o600 != 0o600 {
        return Err(SkipReason::WrongMode {
            mode: st.st_mode & 0o7777,
        });
    }
    if !owners.accepts(st.st_uid) {
        return Err(SkipReason::WrongOwner { uid: st.st_uid });
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    match forced {
        Some(layout) if layout.size as u64 == size => Ok(layout),
        Some(layout) => Err(SkipReason::WrongSize {
            size,
            expected: layout.size,
        }),
        None => Layout::for_size(size).ok_or(SkipReason::UnknownSize { size }),
    }
}
