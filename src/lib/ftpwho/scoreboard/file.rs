//! One scoreboard file: opened, checked against the [acceptance
//! rules](super::accept), read under its lock, decoded, its process
//! checked, and what became of it turned into a [`Note`].

use std::ffi::CStr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::fstat;
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::accept::{accept, Owners};
use super::layout::Layout;
use super::liveness::Liveness;
use super::note::{Note, SkipReason, Unlocked};
use super::read::{lock_shared, read_record, Support};
use super::record::{Entry, State};
use crate::os::fs::open_at;

/// How a scan treats the directory's entries.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Force this layout instead of recognising each file by its size.
    pub layout: Option<Layout>,
    /// Remove entries whose process is gone, as the C tools do. The
    /// read-only responder sets this to false.
    pub remove_stale: bool,
    /// How long to wait for the server's write lock on one entry.
    pub lock_timeout: Duration,
    /// How long one scan may wait for locks in all (`None`: no bound
    /// beyond `lock_timeout` per entry); past it, the remaining entries
    /// that are locked are read without waiting.
    pub lock_budget: Option<Duration>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            layout: None,
            remove_stale: true,
            lock_timeout: Duration::from_millis(200),
            lock_budget: None,
        }
    }
}

/// What became of one file.
pub(super) enum Read {
    /// A record (handed over if live and not free), with the reason it
    /// was read without the lock, if so.
    Entry(Option<Unlocked>),
    /// Not listed.
    Skipped(SkipReason),
    /// The record's process is gone.
    Stale(i32),
}

/// What a scan carries from one file to the next.
#[derive(Clone)]
pub(super) struct ScanState {
    pub(super) owners: Owners,
    pub(super) live: Liveness,
    pub(super) buf: Vec<u8>,
    pub(super) support: Support,
    pub(super) lock_wait: LockWait,
}

/// What is left of a scan's [lock budget](ScanOptions::lock_budget),
/// shared by the threads reading one scoreboard.
#[derive(Clone, Default)]
pub(super) struct LockWait(Option<Arc<AtomicU64>>);

impl LockWait {
    /// The budget of one scan with `options`.
    pub(super) fn new(options: &ScanOptions) -> LockWait {
        LockWait(options.lock_budget.map(|b| {
            Arc::new(AtomicU64::new(
                b.as_micros().min(u128::from(u64::MAX)) as u64
            ))
        }))
    }

    /// How long the next entry may wait for its lock.
    fn allowed(&self, per_entry: Duration) -> Duration {
        match &self.0 {
            None => per_entry,
            Some(left) => per_entry.min(Duration::from_micros(left.load(Ordering::Relaxed))),
        }
    }

    /// Takes `waited` off what is left.
    fn spend(&self, waited: Duration) {
        if let Some(left) = &self.0 {
            let waited = waited.as_micros().min(u128::from(u64::MAX)) as u64;
            let _ = left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                Some(l.saturating_sub(waited))
            });
        }
    }
}

/// Notes what happened to one file, and removes it when stale.
pub(super) fn note(
    options: &ScanOptions,
    dir_fd: RawFd,
    name: &CStr,
    outcome: Read,
    notes: &mut Vec<Note>,
) {
    let file = || name.to_string_lossy().into_owned();
    match outcome {
        Read::Entry(None) => {}
        Read::Entry(Some(reason)) => notes.push(Note::ReadUnlocked {
            file: file(),
            reason,
        }),
        Read::Skipped(reason) => notes.push(Note::Skipped {
            file: file(),
            reason,
        }),
        Read::Stale(pid) if options.remove_stale => notes.push(
            match unlinkat(Some(dir_fd), name, UnlinkatFlags::NoRemoveDir) {
                Ok(()) => Note::Removed { file: file(), pid },
                Err(error) => Note::NotRemoved {
                    file: file(),
                    pid,
                    error,
                },
            },
        ),
        Read::Stale(pid) => notes.push(Note::Skipped {
            file: file(),
            reason: SkipReason::Stale { pid },
        }),
    }
}

/// Reads one file and hands a live, non-free entry to `each` (directly,
/// so the record is not moved around on its way).
pub(super) fn read_one(
    options: &ScanOptions,
    dir_fd: RawFd,
    name: &CStr,
    state: &mut ScanState,
    each: &mut impl FnMut(Entry),
) -> Read {
    let ScanState {
        owners,
        live,
        buf,
        support,
        lock_wait,
    } = state;
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    // Root skips access time updates, unless it lacks CAP_FOWNER.
    let mut opened = Err(Errno::EPERM);
    if owners.euid == 0 && !support.atime_needed {
        opened = open_at(dir_fd, name, flags | OFlag::O_NOATIME);
        if matches!(opened, Err(Errno::EPERM)) {
            support.atime_needed = true;
        }
    }
    if opened.is_err() {
        opened = open_at(dir_fd, name, flags);
    }
    let fd = match opened {
        Ok(fd) => fd,
        Err(Errno::ELOOP) => return Read::Skipped(SkipReason::SymbolicLink),
        Err(err) => return Read::Skipped(SkipReason::CannotOpen(err)),
    };
    let st = match fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)) {
        Ok(st) => st,
        Err(err) => return Read::Skipped(SkipReason::CannotStat(err)),
    };
    let layout = match accept(&st, owners, options.layout) {
        Ok(layout) => layout,
        Err(reason) => return Read::Skipped(reason),
    };
    let started = Instant::now();
    let unlocked = lock_shared(&fd, lock_wait.allowed(options.lock_timeout), support).err();
    let waited = started.elapsed();
    // An uncontended lock costs a system call, not a wait.
    if waited >= Duration::from_micros(200) {
        lock_wait.spend(waited);
    }
    let record = &mut buf[..layout.size];
    if let Err(reason) = read_record(&fd, &layout, record) {
        return Read::Skipped(reason);
    }
    // Closing the descriptor releases the read lock.
    drop(fd);
    let entry = match Entry::parse(record, &layout) {
        Ok(entry) => entry,
        Err(err) => return Read::Skipped(SkipReason::Record(err)),
    };
    if !live.exists(entry.pid) {
        return Read::Stale(entry.pid);
    }
    if entry.state != State::Free {
        each(entry);
    }
    Read::Entry(unlocked)
}
