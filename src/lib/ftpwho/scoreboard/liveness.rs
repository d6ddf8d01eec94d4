//! Whether a session's process still exists, as the C tools ask it, with a
//! cache for large scoreboards.

use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::os::fs::Dir;

/// After this many pids, a scan checks pids against one listing of
/// `/proc` instead of one `kill` each.
const PROC_LISTING_MIN: usize = 32;

/// Whether processes exist, as `kill(pid, 0)` tells. Once a scan has
/// checked [`PROC_LISTING_MIN`] pids, pids seen in one listing of `/proc`
/// exist; any other pid is still asked with `kill`.
#[derive(Clone, Default)]
pub(super) struct Liveness {
    checked: usize,
    /// Sorted pids from `/proc`, once listed.
    listed: Option<Vec<i32>>,
}

impl Liveness {
    pub(super) fn exists(&mut self, pid: i32) -> bool {
        self.checked += 1;
        if self.checked == PROC_LISTING_MIN {
            self.listed = list_processes();
        }
        match &self.listed {
            Some(listed) if pid > 0 && listed.binary_search(&pid).is_ok() => true,
            _ => process_exists(pid),
        }
    }
}

/// The pids listed in `/proc`, sorted, when it is this pid namespace's
/// procfs (`/proc/self` names this process).
fn list_processes() -> Option<Vec<i32>> {
    let me = std::fs::read_link("/proc/self").ok()?;
    if me.to_str()?.parse::<u32>().ok()? != std::process::id() {
        return None;
    }
    let mut dir = Dir::open(Path::new("/proc")).ok()?;
    let mut pids = Vec::new();
    while let Some(name) = dir.next_name() {
        let name = name.ok()?.to_bytes();
        if let Some(pid) = std::str::from_utf8(name)
            .ok()
            .and_then(|n| n.parse::<i32>().ok())
        {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Some(pids)
}

/// True when `pid` exists, as C's `checkproc`: `kill(pid, 0)` succeeds or
/// fails with EPERM.
pub fn process_exists(pid: i32) -> bool {
    matches!(kill(Pid::from_raw(pid), None), Ok(()) | Err(Errno::EPERM))
}
