//! Opening a file by a path that must not go through any symbolic link:
//! `openat2(2)` with `RESOLVE_NO_SYMLINKS` (Linux 5.6), or, where the kernel
//! lacks it, a walk that opens one component at a time with `O_NOFOLLOW`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// `openat2` was refused with `ENOSYS` (an old kernel, or a seccomp filter
/// that lacks it): it is not tried again.
static OPENAT2_MISSING: AtomicBool = AtomicBool::new(false);

/// Why a path could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// A component of the path (a directory or the file itself) is a
    /// symbolic link.
    #[error("a component of the path is a symbolic link")]
    Symlink,
    /// Any other failure.
    #[error("{0}")]
    Io(#[from] io::Error),
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

fn owned(raw: libc::c_long) -> io::Result<OwnedFd> {
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a non-negative result of an open call is a new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as RawFd) })
}

fn classify(e: io::Error) -> ResolveError {
    match e.raw_os_error() {
        Some(libc::ELOOP) => ResolveError::Symlink,
        _ => ResolveError::Io(e),
    }
}

/// Opens `path` (absolute, or relative to `dir`) read-only, close-on-exec,
/// non-blocking and without a controlling terminal, refusing any symbolic
/// link on the way, the last component included.
pub fn open_no_symlinks(dir: Option<&OwnedFd>, path: &Path) -> Result<OwnedFd, ResolveError> {
    let flags =
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    let dirfd = dir.map(|d| d.as_raw_fd()).unwrap_or(libc::AT_FDCWD);
    if OPENAT2_MISSING.load(Ordering::Relaxed) {
        return walk(dirfd, path, flags);
    }
    let cpath = cstring(path.as_os_str().as_bytes())?;
    // SAFETY: open_how is a plain C struct; all-zero is valid.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS;
    // SAFETY: openat2 with a NUL-terminated path and a valid open_how of
    // the size passed.
    let raw = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            cpath.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    match owned(raw) {
        Ok(fd) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            OPENAT2_MISSING.store(true, Ordering::Relaxed);
            walk(dirfd, path, flags)
        }
        Err(e) => Err(classify(e)),
    }
}

/// The component-by-component fallback of [`open_no_symlinks`].
fn walk(dirfd: RawFd, path: &Path, flags: libc::c_int) -> Result<OwnedFd, ResolveError> {
    let bytes = path.as_os_str().as_bytes();
    let parts: Vec<&[u8]> = bytes
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Err(ResolveError::Io(io::Error::from_raw_os_error(libc::ENOENT)));
    };
    let start: &[u8] = if bytes.first() == Some(&b'/') {
        b"/"
    } else {
        b"."
    };
    let dir_flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let c = cstring(start)?;
    // SAFETY: openat with a NUL-terminated path.
    let mut current = owned(unsafe { libc::openat(dirfd, c.as_ptr(), dir_flags) } as libc::c_long)?;
    for part in dirs {
        let c = cstring(part)?;
        // SAFETY: openat relative to an open directory, NUL-terminated name.
        let next = unsafe { libc::openat(current.as_raw_fd(), c.as_ptr(), dir_flags) };
        current = owned(next as libc::c_long).map_err(|e| match e.raw_os_error() {
            // O_NOFOLLOW | O_DIRECTORY on a symlink gives ENOTDIR or ELOOP.
            Some(libc::ENOTDIR) | Some(libc::ELOOP) if is_symlink(&current, part) => {
                ResolveError::Symlink
            }
            _ => ResolveError::Io(e),
        })?;
    }
    let c = cstring(last)?;
    // SAFETY: openat relative to an open directory, NUL-terminated name.
    owned(unsafe { libc::openat(current.as_raw_fd(), c.as_ptr(), flags) } as libc::c_long)
        .map_err(classify)
}

fn is_symlink(dir: &OwnedFd, name: &[u8]) -> bool {
    nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        std::ffi::OsStr::from_bytes(name),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(open: impl Fn(&Path) -> Result<OwnedFd, ResolveError>) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("real")).unwrap();
        std::fs::write(root.join("real/file"), b"x").unwrap();
        std::fs::write(root.join("outside"), b"secret").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("swap")).unwrap();
        std::os::unix::fs::symlink(root.join("outside"), root.join("real/link")).unwrap();
        assert!(open(&root.join("real/file")).is_ok());
        assert!(matches!(
            open(&root.join("swap/file")),
            Err(ResolveError::Symlink)
        ));
        assert!(matches!(
            open(&root.join("real/link")),
            Err(ResolveError::Symlink)
        ));
        match open(&root.join("real/missing")) {
            Err(ResolveError::Io(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn symlinks_anywhere_in_the_path_are_refused() {
        check(|p| open_no_symlinks(None, p));
    }

    #[test]
    fn the_walk_refuses_them_too() {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        check(|p| walk(libc::AT_FDCWD, p, flags));
    }
}
