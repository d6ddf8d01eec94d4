//! The few system calls `nix` does not wrap safely, each behind a safe
//! function: a directory stream read name by name without allocating,
//! opening a file relative to a directory as an owned descriptor, C's
//! `time(NULL)` and the default disposition of `SIGPIPE`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// An open directory stream (`DIR*`), read name by name; the names are
/// borrowed from the stream, so reading allocates nothing.
pub struct Dir {
    dir: std::ptr::NonNull<libc::DIR>,
}

// SAFETY: the stream is used through `&mut self` only (one thread at a
// time); moving it to another thread is fine.
unsafe impl Send for Dir {}

impl Dir {
    /// Opens the directory `path` (`O_DIRECTORY | O_CLOEXEC`).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(path.as_c_str(), flags, Mode::empty())?;
        // SAFETY: `fd` is an open directory; fdopendir takes it over.
        match std::ptr::NonNull::new(unsafe { libc::fdopendir(fd) }) {
            Some(dir) => Ok(Dir { dir }),
            None => {
                let err = io::Error::last_os_error();
                let _ = nix::unistd::close(fd);
                Err(err)
            }
        }
    }

    /// The stream's descriptor, valid as long as the stream.
    pub fn fd(&self) -> RawFd {
        // SAFETY: `self.dir` is an open stream.
        unsafe { libc::dirfd(self.dir.as_ptr()) }
    }

    /// The next name, `None` at the end.
    pub fn next_name(&mut self) -> Option<nix::Result<&CStr>> {
        // Resetting errno tells the end from an error.
        Errno::clear();
        // SAFETY: `self.dir` is an open stream, used by this thread only.
        let ent = unsafe { libc::readdir(self.dir.as_ptr()) };
        if ent.is_null() {
            return match Errno::last() {
                Errno::UnknownErrno => None,
                errno => Some(Err(errno)),
            };
        }
        // SAFETY: readdir returned an entry valid until the next call,
        // which needs `&mut self`, so the borrow cannot outlive it.
        Some(Ok(unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: the stream is open and closed only here.
        unsafe { libc::closedir(self.dir.as_ptr()) };
    }
}

/// Opens `name` in the directory `dir` (`openat`), as an owned descriptor.
pub fn open_at(dir: RawFd, name: &CStr, flags: OFlag) -> nix::Result<OwnedFd> {
    let raw = nix::fcntl::openat(Some(dir), name, flags, Mode::empty())?;
    // SAFETY: `raw` was just returned by openat and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// "Now" as C's `time(NULL)` reads it (a coarse clock that may lag the
/// precise one by a tick), so that durations match the C tools' second.
pub fn unix_time() -> i64 {
    // SAFETY: time(NULL) has no preconditions.
    unsafe { libc::time(std::ptr::null_mut()) }
}

/// Restores the default disposition of `SIGPIPE` (die quietly on a
/// closed pipe, as C programs do), for programs without Rust's start-up.
pub fn default_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: installing the default disposition runs no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
