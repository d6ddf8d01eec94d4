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
//! One file per concern, each depending only on those listed before it:
//! [`layout`] and [`record`] (the codec), [`note`] (what was passed
//! over, typed), `accept` (the acceptance rules), `read` (one record
//! under its lock), `liveness` (is the process there), `file` (one file
//! from open to note), `parallel` (the reader of large boards), `scan`
//! (the directory and the walk) and `count` (the server's own count).
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

mod accept;
mod count;
mod file;
pub mod layout;
mod liveness;
pub mod note;
mod parallel;
mod read;
pub mod record;
mod scan;

pub use file::ScanOptions;
pub use layout::{offsets, Layout, LayoutSpecError, SOCKADDR_STORAGE_LEN};
pub use liveness::process_exists;
pub use note::{Note, SkipReason, Unlocked};
pub use record::{Entry, RawSockaddr, RecordError, State};
pub use scan::{Scan, Scoreboard, ScoreboardError, DEFAULT_DIR, FILE_PREFIX};
