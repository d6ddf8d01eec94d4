//! Talking to the service manager: readiness, status, the watchdog, the
//! file descriptor store and descriptors passed at start (socket activation,
//! `ListenFIFO=`, or the store handing back what an earlier instance kept).
//!
//! Every function is a no-op outside systemd (no `NOTIFY_SOCKET`), so the
//! daemons call them unconditionally.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use sd_notify::NotifyState;

/// True when this process is a service's main process started by systemd:
/// `NOTIFY_SOCKET` is set (`Type=notify`), or `INVOCATION_ID` is set and the
/// parent is the service manager (pid 1). A daemon must then stay in the
/// foreground: forking away would leave the service's main process.
///
/// `INVOCATION_ID` alone is not enough: a SysV init script run by systemd
/// passes it on to the daemons it starts, and those must still fork (`-B`)
/// or the script never returns.
pub fn under_systemd() -> bool {
    let invocation = std::env::var_os("INVOCATION_ID").is_some();
    notify_socket_present() || (invocation && nix::unistd::getppid().as_raw() == 1)
}

/// True when a notification socket is set, i.e. `Type=notify` messages reach
/// someone.
pub fn notify_socket_present() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn send(states: &[NotifyState]) {
    if !notify_socket_present() {
        return;
    }
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "sd_notify failed");
    }
}

/// `READY=1` together with an initial `STATUS=`.
pub fn notify_ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `STATUS=`: one human-readable line shown by `systemctl status`.
pub fn notify_status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// `STOPPING=1`: the daemon is shutting down cleanly.
pub fn notify_stopping() {
    send(&[NotifyState::Stopping]);
}

/// `WATCHDOG=1`: the main loop is alive.
pub fn notify_watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, as
/// `sd_watchdog_enabled(3)` recommends, or `None` without a watchdog.
pub fn watchdog_ping_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
}

/// Keeps `fd` in systemd's file descriptor store under `name`
/// (`FDSTORE=1`, `FDNAME=`), so that the next instance of the service gets it
/// back through [`take_listen_fds`]. The unit needs `FileDescriptorStoreMax=`.
pub fn store_fd(fd: BorrowedFd<'_>, name: &str) -> std::io::Result<()> {
    if !notify_socket_present() {
        return Ok(());
    }
    sd_notify::notify_with_fds(&[NotifyState::FdStore, NotifyState::FdName(name)], &[fd])
}

/// A descriptor passed by systemd at start, with its `LISTEN_FDNAMES` name
/// (`"unknown"` when none was given, as `sd_listen_fds_with_names(3)` says).
#[derive(Debug)]
pub struct ListenFd {
    /// The descriptor, owned from now on (close-on-exec is set).
    pub fd: OwnedFd,
    /// Its name: a `.socket` unit's `FileDescriptorName=` or the `FDNAME=`
    /// it was stored under.
    pub name: String,
}

/// Takes the descriptors passed with `LISTEN_FDS`/`LISTEN_PID`/
/// `LISTEN_FDNAMES` and removes those variables, so that child processes do
/// not inherit them. Call it once, early, before threads are started.
pub fn take_listen_fds() -> std::io::Result<Vec<ListenFd>> {
    // SAFETY: called at start-up, before the daemons spawn any thread.
    let fds = unsafe { sd_notify::listen_fds_with_names_and_unset_env()? };
    Ok(fds
        .map(|(raw, name)| ListenFd {
            // SAFETY: systemd passed us this descriptor; nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
            name,
        })
        .collect())
}
