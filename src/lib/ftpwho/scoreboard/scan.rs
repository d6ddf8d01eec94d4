//! A scoreboard directory and the walk over it: every `client-*` file
//! read in directory order, the first ones here, the rest of a large
//! board by the [parallel reader](super::parallel).

use std::ffi::CString;
use std::path::PathBuf;

use super::accept::Owners;
use super::file::{note, read_one, LockWait, ScanOptions, ScanState};
use super::layout::Layout;
use super::liveness::Liveness;
use super::note::Note;
use super::parallel::{read_in_parallel, scan_threads, PARALLEL_AFTER};
use super::read::Support;
use super::record::Entry;
use crate::os::fs::Dir;

/// The default scoreboard directory of a root-run pure-ftpd.
pub const DEFAULT_DIR: &str = "/var/run/pure-ftpd";
/// File names of entries start with this.
pub const FILE_PREFIX: &str = "client-";

/// A scoreboard directory.
#[derive(Debug, Clone)]
pub struct Scoreboard {
    /// The directory, `/var/run/pure-ftpd` by default.
    pub dir: PathBuf,
    /// How entries are read.
    pub options: ScanOptions,
}

/// Why a scan could not read the scoreboard at all.
#[derive(Debug, thiserror::Error)]
pub enum ScoreboardError {
    /// The directory cannot be opened (missing, or no permission).
    #[error("cannot open the scoreboard directory {dir}: {source}")]
    OpenDir {
        /// The directory.
        dir: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// The outcome of one scan: the live, non-free entries, and what was passed
/// over with the reason (for stderr or the journal).
#[derive(Debug, Default)]
pub struct Scan {
    /// Live sessions, in directory order.
    pub entries: Vec<Entry>,
    /// Files that were skipped, removed as stale, or read without the lock.
    pub notes: Vec<Note>,
}

impl Scoreboard {
    /// The scoreboard in `dir`, read with default options.
    pub fn new(dir: impl Into<PathBuf>) -> Scoreboard {
        Scoreboard {
            dir: dir.into(),
            options: ScanOptions::default(),
        }
    }

    /// The scoreboard in `dir`, read with `options`.
    pub fn with_options(dir: impl Into<PathBuf>, options: ScanOptions) -> Scoreboard {
        Scoreboard {
            dir: dir.into(),
            options,
        }
    }

    pub(super) fn open_dir(&self) -> Result<Dir, ScoreboardError> {
        Dir::open(&self.dir).map_err(|source| ScoreboardError::OpenDir {
            dir: self.dir.clone(),
            source,
        })
    }

    /// Reads every acceptable entry (see the module documentation): the
    /// live, non-free sessions in directory order, and a note for every
    /// file that was skipped, removed as stale, or read without its lock.
    pub fn scan(&self) -> Result<Scan, ScoreboardError> {
        let mut entries = Vec::new();
        let notes = self.scan_each(|entry| entries.push(entry))?;
        Ok(Scan { entries, notes })
    }

    /// Like [`scan`](Self::scan), but hands each live, non-free entry to
    /// `each` as soon as it is read, keeping none; returns the notes.
    ///
    /// Past the first few hundred files, a large scoreboard is read by
    /// several threads (one per processor, at most 4); entries and notes
    /// still come in directory order, and `each` runs on the calling thread.
    pub fn scan_each(&self, each: impl FnMut(Entry)) -> Result<Vec<Note>, ScoreboardError> {
        self.scan_each_with(scan_threads, each)
    }

    fn max_record_size(&self) -> usize {
        match self.options.layout {
            Some(layout) => layout.size,
            None => Layout::KNOWN.iter().map(|l| l.size).max().unwrap_or(0),
        }
    }

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
            lock_wait: LockWait::new(&self.options),
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
            let outcome = read_one(&self.options, dir_fd, name, &mut state, &mut each);
            note(&self.options, dir_fd, name, outcome, &mut notes);
        }
        if !rest.is_empty()
            && !read_in_parallel(
                &self.options,
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
                let outcome = read_one(&self.options, dir_fd, name, &mut state, &mut each);
                note(&self.options, dir_fd, name, outcome, &mut notes);
            }
        }
        Ok(notes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::parallel::{PARALLEL_AFTER, PARALLEL_CHUNK};
    use super::super::{Entry, Layout, Note, RawSockaddr, SkipReason, State};
    use super::*;

    #[test]
    fn large_scoreboards_read_in_parallel_in_directory_order() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let mut entry = Entry {
            state: State::Idle,
            pid: me,
            peer: RawSockaddr::from_socket_addr("192.0.2.7:50000".parse().unwrap()),
            local: RawSockaddr::from_socket_addr("192.0.2.1:21".parse().unwrap()),
            date: 1,
            xfer_date: 0,
            restart_at: 0,
            total_size: 0,
            current_size: 0,
            account: Vec::new(),
            filename: Vec::new(),
        };
        let count = PARALLEL_AFTER + 3 * PARALLEL_CHUNK + 17;
        for i in 0..count {
            entry.account = format!("user{i}").into_bytes();
            entry.state = if i % 11 == 0 {
                State::Free
            } else {
                State::Idle
            };
            // Some stale, some of no known size, some with a bad mode.
            entry.pid = if i % 97 == 5 { i32::MAX - 7 } else { me };
            let mut bytes = entry.to_bytes(&Layout::DEBIAN).unwrap();
            if i % 89 == 3 {
                bytes.push(0);
            }
            let path = dir.path().join(format!("client-{i:08}"));
            std::fs::write(&path, &bytes).unwrap();
            let mode = if i % 83 == 7 { 0o400 } else { 0o600 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let keep = Scoreboard::with_options(
            dir.path(),
            ScanOptions {
                remove_stale: false,
                ..ScanOptions::default()
            },
        );
        let read = |board: &Scoreboard, threads| {
            let mut entries = Vec::new();
            let notes = board
                .scan_each_with(|| threads, |e| entries.push(e))
                .unwrap();
            (entries, notes)
        };
        let (one, one_notes) = read(&keep, 1);
        assert!(
            one.len() > PARALLEL_AFTER + 2 * PARALLEL_CHUNK,
            "{}",
            one.len()
        );
        let reasons: Vec<&SkipReason> = one_notes
            .iter()
            .filter_map(|n| match n {
                Note::Skipped { reason, .. } => Some(reason),
                _ => None,
            })
            .collect();
        assert!(reasons
            .iter()
            .any(|r| **r == SkipReason::Stale { pid: i32::MAX - 7 }));
        assert!(reasons
            .iter()
            .any(|r| **r == SkipReason::UnknownSize { size: 1465 }));
        assert!(reasons
            .iter()
            .any(|r| **r == SkipReason::WrongMode { mode: 0o400 }));
        assert!(one.iter().all(|e| e.state != State::Free && e.pid == me));
        for threads in [2, 3] {
            let (many, many_notes) = read(&keep, threads);
            assert_eq!(many, one, "{threads} threads");
            assert_eq!(many_notes, one_notes, "{threads} threads");
        }
        // Stale files are removed by the parallel reader too.
        let stale = one_notes.iter().filter(|n| n.is_stale()).count();
        assert!(stale > 0);
        let (_, removing) = read(&Scoreboard::new(dir.path()), 2);
        assert_eq!(
            removing
                .iter()
                .filter(|n| matches!(n, Note::Removed { pid, .. } if *pid == i32::MAX - 7))
                .count(),
            stale
        );
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, count - stale);
    }
}
