//! The walk over the directory: each `client-*` file opened, checked
//! against the [acceptance rules](super::accept), read under its lock,
//! decoded, checked for a live process, and handed over or noted.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::fstat;
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::accept::{accept, Owners};
use super::liveness::Liveness;
use super::note::{Note, SkipReason, Unlocked};
use super::parallel::PARALLEL_AFTER;
use super::read::{lock_shared, read_record, Support};
use super::record::{Entry, State};
use super::{Scoreboard, ScoreboardError, FILE_PREFIX};
use crate::os::fs::open_at;

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
}

impl Scoreboard {
    /// Walks the directory, reading the first files here and, past
    /// [`PARALLEL_AFTER`], the rest with `threads()` threads when that
    /// is more than one.
    pub(super) fn scan_each_with(
        &self,
        threads: impl FnOnce() -> usize,
        mut each: impl FnMut(Entry),
    ) -> Result<Vec<Note>, ScoreboardError> {
        let mut dir = self.open_dir()?;
        let dir_fd = dir.fd();
        let mut state = ScanState {
            owners: Owners::of_dir(dir_fd),
            live: Liveness::default(),
            buf: vec![0u8; self.max_record_size()],
            support: Support::default(),
        };
        let mut notes = Vec::new();
        let mut read = 0usize;
        let mut rest = Vec::new();
        let mut threads = Some(threads);
        let mut parallel = None;
        loop {
            let name = match dir.next_name() {
                None => break,
                Some(Ok(name)) => name,
                Some(Err(err)) => {
                    notes.push(Note::ReadingDirectory(err));
                    break;
                }
            };
            if !name.to_bytes().starts_with(FILE_PREFIX.as_bytes()) {
                continue;
            }
            if read >= PARALLEL_AFTER && parallel.is_none() {
                // Asked only now: it costs a few system calls.
                parallel = Some(threads.take().map_or(1, |threads| threads()));
            }
            if parallel > Some(1) {
                rest.push(CString::from(name));
                continue;
            }
            read += 1;
            let outcome = self.read_one(dir_fd, name, &mut state, &mut each);
            self.note(dir_fd, name, outcome, &mut notes);
        }
        if !rest.is_empty()
            && !self.scan_in_parallel(
                dir_fd,
                &state,
                &rest,
                parallel.unwrap_or(1),
                &mut each,
                &mut notes,
            )
        {
            // No thread could be started: read on here.
            for name in &rest {
                let outcome = self.read_one(dir_fd, name, &mut state, &mut each);
                self.note(dir_fd, name, outcome, &mut notes);
            }
        }
        Ok(notes)
    }

    /// Notes what happened to one file, and removes it when stale.
    pub(super) fn note(&self, dir_fd: RawFd, name: &CStr, outcome: Read, notes: &mut Vec<Note>) {
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
            Read::Stale(pid) if self.options.remove_stale => notes.push(
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
        &self,
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
        let layout = match accept(&st, owners, self.options.layout) {
            Ok(layout) => layout,
            Err(reason) => return Read::Skipped(reason),
        };
        let unlocked = lock_shared(&fd, self.options.lock_timeout, support).err();
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
}
