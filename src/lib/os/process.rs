//! The daemon process itself: its standard descriptors, the classic fork
//! into the background, stop signals read from a signalfd, the switch to
//! another uid/gid, and the pid file.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
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

#[cfg(test)]
mod tests {
    use super::*;

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
