//! The daemon process itself: its standard descriptors, the classic fork
//! into the background, stop signals read from a signalfd, the switch to
//! another uid/gid, and the pid file; and its children: a pidfd to poll,
//! and waiting for one without blocking.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::Mode;
use nix::unistd::{close, dup2, ForkResult, Gid, Uid};

/// The signals that stop a daemon.
pub const STOP_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

fn open_dev_null() -> nix::Result<RawFd> {
    // Not close-on-exec: it becomes a standard descriptor.
    open("/dev/null", OFlag::O_RDWR, Mode::empty())
}

/// Opens `/dev/null` on any of descriptors 0, 1 and 2 that is closed (the
/// C tool even closes 0 itself), so that no file opened later lands there.
pub fn ensure_stdio() {
    for fd in 0..3 {
        if fcntl(fd, FcntlArg::F_GETFD).is_ok() {
            continue;
        }
        // The lowest free number: `fd` itself when those below are open.
        if let Ok(null) = open_dev_null() {
            if null != fd {
                let _ = dup2(null, fd);
                let _ = close(null);
            }
        }
    }
}

/// Forks into the background as the C tool does with `-B`: the parent
/// exits at once with status 0; the child goes on in a new session with
/// `/dev/null` as standard input and outputs. Call it before any thread is
/// started.
pub fn daemonize() -> io::Result<()> {
    // SAFETY: no other thread is running (see above), so the child may run
    // ordinary code; the parent only calls `_exit`.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => {
            let _ = nix::unistd::setsid();
            if let Ok(null) = open_dev_null() {
                for fd in 0..3 {
                    let _ = dup2(null, fd);
                }
                if null > 2 {
                    let _ = close(null);
                }
            }
            Ok(())
        }
        // SAFETY: leaving without running destructors or atexit handlers,
        // as the child carries on with the same state.
        ForkResult::Parent { .. } => unsafe { libc::_exit(0) },
    }
}

/// The [`STOP_SIGNALS`], blocked and reported by a non-blocking signalfd.
#[derive(Debug)]
pub struct StopSignals(SignalFd);

impl StopSignals {
    /// Blocks the stop signals and opens a signalfd (close-on-exec) that
    /// reports them. Programs started later get an empty mask of their own.
    pub fn block() -> io::Result<Self> {
        let mut set = SigSet::empty();
        for signal in STOP_SIGNALS {
            set.add(signal);
        }
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(StopSignals(fd))
    }

    /// The next pending stop signal, if any; never blocks.
    pub fn next(&self) -> Option<Signal> {
        match self.0.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok(),
            _ => None,
        }
    }

    /// The descriptor to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Why the switch to another identity failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot switch to uid {uid} gid {gid}: {call}: {source}")]
pub struct IdentityError {
    /// The uid asked for.
    pub uid: u32,
    /// The gid asked for.
    pub gid: u32,
    /// The call that failed: `setgroups`, `setgid` or `setuid`.
    pub call: &'static str,
    /// What the system said.
    pub source: nix::Error,
}

/// Switches to `uid` and `gid` as the C tool does: `gid` as the only
/// supplementary group, then the gid, then the uid.
pub fn switch_identity(uid: u32, gid: u32) -> Result<(), IdentityError> {
    let fail = |call, source| IdentityError {
        uid,
        gid,
        call,
        source,
    };
    nix::unistd::setgroups(&[Gid::from_raw(gid)]).map_err(|e| fail("setgroups", e))?;
    nix::unistd::setgid(Gid::from_raw(gid)).map_err(|e| fail("setgid", e))?;
    nix::unistd::setuid(Uid::from_raw(uid)).map_err(|e| fail("setuid", e))?;
    Ok(())
}

/// Writes the pid file as the C tool does: unlink, then create (0644, not
/// following symlinks) with the pid and a newline.
pub fn write_pidfile(path: &Path) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(format!("{}\n", std::process::id()).as_bytes())
}

/// Removes the pid file if it still holds this process's pid.
pub fn remove_pidfile(path: &Path) {
    let ours = std::fs::read_to_string(path)
        .map(|s| s.trim() == std::process::id().to_string())
        .unwrap_or(false);
    if ours {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::debug!("cannot remove {}: {e}", path.display());
        }
    }
}

/// A pidfd for `pid` (`pidfd_open(2)`, Linux 5.3 and later): readable
/// once the process has ended. Close-on-exec.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, and touches no memory.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a non-negative result is a new descriptor that nothing else
    // owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as RawFd) })
}

/// `waitpid(pid, WNOHANG)`: the raw wait status once the child `pid` has
/// ended, `None` while it runs. Any wait status is returned as the kernel
/// gave it (a real-time signal's too).
pub fn wait_nohang(pid: libc::pid_t) -> io::Result<Option<libc::c_int>> {
    Ok(wait4_nohang(pid)?.map(|(status, _)| status))
}

/// What a child used, from `wait4(2)`'s `rusage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildUsage {
    /// User and system CPU time, in microseconds.
    pub cpu_usec: u64,
    /// Peak resident set size, in KiB (`ru_maxrss`).
    pub maxrss_kib: u64,
}

/// `wait4(pid, WNOHANG)`: the raw wait status and the resources used once
/// the child `pid` has ended, `None` while it runs.
pub fn wait4_nohang(pid: libc::pid_t) -> io::Result<Option<(libc::c_int, ChildUsage)>> {
    wait4(pid, libc::WNOHANG)
}

/// `waitpid(pid, 0)`: waits for the child `pid` to end (through signals
/// that interrupt the wait) and returns its raw wait status.
pub fn wait_for(pid: libc::pid_t) -> io::Result<libc::c_int> {
    loop {
        match wait4(pid, 0) {
            Ok(Some((status, _))) => return Ok(status),
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn wait4(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<(libc::c_int, ChildUsage)>> {
    let mut status = 0;
    // SAFETY: rusage is a plain C struct; all-zero is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: status and usage are live values that wait4 writes.
    let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if r != pid {
        return Ok(None);
    }
    let cpu_usec = (usage.ru_utime.tv_sec as u64 * 1_000_000 + usage.ru_utime.tv_usec as u64)
        + (usage.ru_stime.tv_sec as u64 * 1_000_000 + usage.ru_stime.tv_usec as u64);
    let usage = ChildUsage {
        cpu_usec,
        maxrss_kib: usage.ru_maxrss as u64,
    };
    Ok(Some((status, usage)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell running `script` with its standard input on a pipe, whose
    /// write end is returned.
    fn child(script: &std::ffi::CStr) -> (libc::pid_t, OwnedFd) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let null: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        let env = [std::ffi::CString::new("PATH=/usr/bin:/bin").unwrap()];
        let pid = crate::os::spawn::vfork_spawn(
            c"/bin/sh",
            &[c"/bin/sh", c"-c", script],
            &env,
            [r.as_fd(), null.as_fd(), null.as_fd()],
            None,
        )
        .unwrap();
        (pid, w)
    }

    /// Waits until `pid` has ended: `wait` is `wait_nohang` or
    /// `wait4_nohang`.
    fn wait_end<T>(pid: libc::pid_t, wait: impl Fn(libc::pid_t) -> io::Result<Option<T>>) -> T {
        let pidfd = pidfd_open(pid).ok();
        loop {
            if let Some(done) = wait(pid).unwrap() {
                return done;
            }
            match &pidfd {
                Some(fd) => {
                    crate::os::fd::wait_readable([Some(fd.as_fd())], None).unwrap();
                }
                None => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
    }

    #[test]
    fn a_child_is_polled_waited_for_and_measured() {
        let (pid, stdin) = child(c"read x; exit 5");
        assert_eq!(wait4_nohang(pid).unwrap(), None);
        assert_eq!(wait_nohang(pid).unwrap(), None);
        if let Ok(fd) = pidfd_open(pid) {
            let ready =
                crate::os::fd::wait_readable([Some(fd.as_fd())], Some(std::time::Duration::ZERO))
                    .unwrap();
            assert_eq!(ready, [false], "the pidfd is readable while it runs");
        }
        drop(stdin);
        let (status, usage) = wait_end(pid, wait4_nohang);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 5);
        assert!(usage.maxrss_kib > 0);
        // Reaped: nothing left to wait for.
        let e = wait_nohang(pid).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECHILD));
    }

    #[test]
    fn wait_for_returns_once_the_child_has_ended() {
        let (pid, stdin) = child(c"read x; exit 7");
        drop(stdin);
        let status = wait_for(pid).unwrap();
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7);
        // Reaped: there is nothing left to wait for.
        assert!(wait_for(pid).is_err());
    }

    #[test]
    fn wait_nohang_returns_the_raw_status_of_a_real_time_signal() {
        let (pid, _stdin) = child(c"read x");
        let sig = libc::SIGRTMIN() + 1;
        // SAFETY: a signal to our own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        let status = wait_end(pid, wait_nohang);
        assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == sig);
    }

    #[test]
    fn the_pid_file_holds_our_pid_and_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        std::fs::write(&path, "stale\n").unwrap();
        write_pidfile(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        remove_pidfile(&path);
        assert!(!path.exists());
        // Another process's pid file stays.
        std::fs::write(&path, "1\n").unwrap();
        remove_pidfile(&path);
        assert!(path.exists());
        // A symbolic link is not followed.
        std::fs::remove_file(&path).unwrap();
        let target = dir.path().join("target");
        std::os::unix::fs::symlink(&target, dir.path().join("link.pid")).unwrap();
        let e = write_pidfile(&dir.path().join("link.pid"));
        assert!(e.is_ok(), "{e:?}");
        assert!(!target.exists(), "the pid file was written through a link");
    }
}
