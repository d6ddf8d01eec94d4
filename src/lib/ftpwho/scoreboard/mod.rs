//! Pure-FTPd's scoreboard: one file per live session, `client-%08lu`, in
//! `/var/run/pure-ftpd/`, holding the C struct `FTPWhoEntry`.
//!
//! The record is read field by field at the offsets of a [`Layout`], never
//! by transmuting, so a file of any content parses or is refused with an
//! error.
//!
//! [`Scoreboard::scan`] accepts a file as `pure-ftpwho` does:
//! - its name starts with `client-`;
//! - it opens with `O_NOFOLLOW` (never through a symbolic link; opening
//!   never blocks, so a FIFO cannot hang the reader);
//! - it is a regular file whose mode has `0600`;
//! - it is owned by root, or by the effective uid when that uid owns the
//!   directory (non-root setups and tests);
//! - its size is the forced layout's size ([`ScanOptions::layout`]), or
//!   the size of a [known layout](Layout::KNOWN);
//! - its process exists (`kill(pid, 0)` succeeds or fails with `EPERM`),
//!   otherwise it is stale: removed when [`ScanOptions::remove_stale`] is
//!   set, and never listed.
//!
//! Free entries (state 0) are not listed. Each record is read with one
//! `pread` (two for file names longer than 64 bytes) under a shared
//! open-file-description `fcntl` lock, which conflicts with the server's
//! write lock; when a writer holds it for longer than
//! [`ScanOptions::lock_timeout`] (a server stopped mid-update), the record
//! is read without the lock and a note says so. Large scoreboards check
//! pids against one listing of `/proc` (pids missing from it are still
//! asked with `kill`), so a scan costs five system calls per entry.
//! [`Scoreboard::scan_each`] hands entries over as they are read. Past the
//! first few hundred files, the rest of a large scoreboard is read by a few
//! threads, and handed over in directory order all the same.
//!
//! The code has one file per concern: [`layout`] and [`record`] (the
//! codec), `accept` (the acceptance rules), `read` (one record under its
//! lock), `liveness` (is the process there), `scan` (the walk) and
//! `parallel` (large boards), `count` (the server's own count), and
//! [`note`] (what was passed over, typed).
//!
//! ```no_run
//! use pureftpd_systemd::ftpwho::scoreboard::Scoreboard;
//!
//! let scan = Scoreboard::new("/var/run/pure-ftpd").scan()?;
//! for entry in &scan.entries {
//!     println!("{} {}", entry.pid, String::from_utf8_lossy(&entry.account));
//! }
//! for note in &scan.notes {
//!     eprintln!("{note}");
//! }
//! # Ok::<(), pureftpd_systemd::ftpwho::scoreboard::ScoreboardError>(())
//! ```

use std::path::PathBuf;
use std::time::Duration;

mod accept;
mod count;
pub mod layout;
mod liveness;
pub mod note;
mod parallel;
mod read;
pub mod record;
mod scan;

pub use layout::{offsets, Layout, LayoutSpecError, SOCKADDR_STORAGE_LEN};
pub use liveness::process_exists;
pub use note::{Note, SkipReason, Unlocked};
pub use record::{Entry, RawSockaddr, RecordError, State};

use crate::os::fs::Dir;

/// The default scoreboard directory of a root-run pure-ftpd.
pub const DEFAULT_DIR: &str = "/var/run/pure-ftpd";
/// File names of entries start with this.
pub const FILE_PREFIX: &str = "client-";

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
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            layout: None,
            remove_stale: true,
            lock_timeout: Duration::from_millis(200),
        }
    }
}

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

    fn open_dir(&self) -> Result<Dir, ScoreboardError> {
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
        self.scan_each_with(parallel::scan_threads, each)
    }

    fn max_record_size(&self) -> usize {
        match self.options.layout {
            Some(layout) => layout.size,
            None => Layout::KNOWN.iter().map(|l| l.size).max().unwrap_or(0),
        }
    }
}
