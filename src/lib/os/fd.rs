//! Descriptors: waiting for input on a few of them, switching one to
//! non-blocking mode, reading what is there now, asking how much is there
//! and what kind of file one is, duplicating one above a given number, and
//! marking all from a number up close-on-exec.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::stat::{fstat, SFlag};

/// Waits until one of `fds` has input (or is at end of file, or in error),
/// at most `timeout` (rounded up to whole milliseconds; `None` waits for
/// ever). `None` entries are left out. Returns, in the same order, which
/// descriptors had something to report; all `false` on a time-out or when
/// a signal interrupted the wait.
pub fn wait_readable<const N: usize>(
    fds: [Option<BorrowedFd<'_>>; N],
    timeout: Option<Duration>,
) -> io::Result<[bool; N]> {
    let mut slots = [None; N];
    let mut polled = Vec::with_capacity(N);
    for (slot, fd) in fds.into_iter().enumerate() {
        if let Some(fd) = fd {
            slots[slot] = Some(polled.len());
            polled.push(PollFd::new(fd, PollFlags::POLLIN));
        }
    }
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(d) => {
            let ms = d.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        }
    };
    match nix::poll::poll(&mut polled, timeout) {
        Ok(_) => {}
        Err(Errno::EINTR) => return Ok([false; N]),
        Err(e) => return Err(e.into()),
    }
    Ok(slots.map(|slot| slot.is_some_and(|i| polled[i].revents().map_or(true, |r| !r.is_empty()))))
}

/// The most a pipe may hold, for an unprivileged process:
/// `/proc/sys/fs/pipe-max-size`.
pub const PIPE_MAX_SIZE: &str = "/proc/sys/fs/pipe-max-size";

/// The kernel's default `pipe-max-size`, assumed when the file cannot be
/// read (a sandbox with `ProcSubset=pid` hides `/proc/sys`).
pub const DEFAULT_PIPE_MAX_SIZE: usize = 1 << 20;

/// Raises the capacity of the pipe or FIFO `fd` to `pipe-max-size` (read
/// from `max_size_file`, [`DEFAULT_PIPE_MAX_SIZE`] when it cannot be read),
/// never lowering it; returns the capacity it has.
pub fn grow_pipe(fd: BorrowedFd<'_>, max_size_file: &std::path::Path) -> io::Result<usize> {
    let current = fcntl(fd.as_raw_fd(), FcntlArg::F_GETPIPE_SZ)? as usize;
    let max: usize = match std::fs::read_to_string(max_size_file) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?,
        Err(_) => DEFAULT_PIPE_MAX_SIZE,
    };
    if max <= current {
        return Ok(current);
    }
    let max = libc::c_int::try_from(max).unwrap_or(libc::c_int::MAX);
    Ok(fcntl(fd.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(max))? as usize)
}

/// Sets `O_NONBLOCK` on `fd`, keeping its other status flags.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Reads what `fd` has now into `buf` (one `read(2)`, repeated only when a
/// signal interrupts it); `Ok(0)` at end of file.
pub fn read_some(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::read(fd.as_raw_fd(), buf) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Fills `buf` from `fd`; end of file first is
/// [`io::ErrorKind::UnexpectedEof`].
pub fn read_exact(fd: BorrowedFd<'_>, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match read_some(fd, buf)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => buf = &mut buf[n..],
        }
    }
    Ok(())
}

/// Bytes waiting to be read in `fd` (a pipe or a socket), from
/// `ioctl(FIONREAD)`.
pub fn pending_bytes(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through a pointer to a live int.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The type bits of `fd`'s file (`st_mode & S_IFMT`), from `fstat(2)`.
pub fn file_type(fd: BorrowedFd<'_>) -> io::Result<SFlag> {
    let st = fstat(fd.as_raw_fd())?;
    Ok(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT)
}

/// A close-on-exec duplicate of `fd` numbered `min` or above
/// (`fcntl(F_DUPFD_CLOEXEC)`).
pub fn dup_at_least(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    let raw = fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(min))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else
    // owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Marks every descriptor numbered `first` or above close-on-exec with one
/// `close_range(2)` (`CLOSE_RANGE_CLOEXEC`, Linux 5.11 and later).
pub fn close_range_on_exec(first: u32) -> io::Result<()> {
    // SAFETY: with CLOSE_RANGE_CLOEXEC, close_range closes nothing: it only
    // sets a descriptor flag, so no descriptor owned elsewhere is affected.
    let r = unsafe {
        libc::close_range(
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_pipe_grows_to_the_limit_given_and_never_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let limit = dir.path().join("pipe-max-size");
        let (r, _w) = nix::unistd::pipe().unwrap();
        std::fs::write(&limit, "262144\n").unwrap();
        assert_eq!(grow_pipe(r.as_fd(), &limit).unwrap(), 262144);
        std::fs::write(&limit, "4096").unwrap();
        assert_eq!(grow_pipe(r.as_fd(), &limit).unwrap(), 262144);
        std::fs::write(&limit, "lots").unwrap();
        assert!(grow_pipe(r.as_fd(), &limit).is_err());
        // Hidden: the kernel's default limit.
        let absent = dir.path().join("absent");
        assert_eq!(
            grow_pipe(r.as_fd(), &absent).unwrap(),
            DEFAULT_PIPE_MAX_SIZE
        );
    }

    #[test]
    fn pending_bytes_counts_what_is_left_in_a_pipe() {
        let (r, w) = nix::unistd::pipe().unwrap();
        assert_eq!(pending_bytes(r.as_fd()).unwrap(), 0);
        nix::unistd::write(&w, b"0123456789").unwrap();
        let mut buf = [0u8; 4];
        read_exact(r.as_fd(), &mut buf).unwrap();
        assert_eq!(pending_bytes(r.as_fd()).unwrap(), 6);
    }

    #[test]
    fn waits_for_the_descriptors_that_have_input() {
        let (r1, w1) = nix::unistd::pipe().unwrap();
        let (r2, w2) = nix::unistd::pipe().unwrap();
        let short = Some(Duration::from_millis(1));
        let ready = wait_readable([Some(r1.as_fd()), None, Some(r2.as_fd())], short).unwrap();
        assert_eq!(ready, [false, false, false]);
        nix::unistd::write(&w2, b"x").unwrap();
        let ready = wait_readable([Some(r1.as_fd()), None, Some(r2.as_fd())], None).unwrap();
        assert_eq!(ready, [false, false, true]);
        // End of file counts as something to report.
        drop(w1);
        let ready = wait_readable([Some(r1.as_fd())], None).unwrap();
        assert_eq!(ready, [true]);
        let mut buf = [0u8; 4];
        assert_eq!(read_some(r1.as_fd(), &mut buf).unwrap(), 0);
        assert_eq!(read_some(r2.as_fd(), &mut buf).unwrap(), 1);
    }

    #[test]
    fn non_blocking_reads_and_file_types() {
        let (r, w) = nix::unistd::pipe().unwrap();
        set_nonblocking(r.as_fd()).unwrap();
        let mut buf = [0u8; 4];
        let e = read_some(r.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        nix::unistd::write(&w, b"ab").unwrap();
        let e = read_exact(r.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(w);
        let e = read_exact(r.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(file_type(r.as_fd()).unwrap(), SFlag::S_IFIFO);
        let file = tempfile::tempfile().unwrap();
        assert_eq!(file_type(file.as_fd()).unwrap(), SFlag::S_IFREG);
    }

    #[test]
    fn duplicates_land_above_the_minimum_and_close_on_exec() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        let dup = dup_at_least(r.as_fd(), 10).unwrap();
        assert!(dup.as_raw_fd() >= 10);
        let flags = fcntl(dup.as_raw_fd(), FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn close_range_marks_descriptors_close_on_exec() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        // Clear the flag the pipe was made with, then set it for the range.
        fcntl(
            r.as_raw_fd(),
            FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .unwrap();
        match close_range_on_exec(r.as_raw_fd() as u32) {
            Ok(()) => {
                let flags = fcntl(r.as_raw_fd(), FcntlArg::F_GETFD).unwrap();
                assert_ne!(flags & libc::FD_CLOEXEC, 0);
            }
            // Kernels before 5.11 refuse the flag.
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EINVAL)),
        }
    }
}
