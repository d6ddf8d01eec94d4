//! What a scan passed over, and why: typed, with the text users read on
//! standard error or in the journal as their [`Display`](std::fmt::Display).

use std::fmt;

use nix::errno::Errno;

use super::record::RecordError;

/// Why one scoreboard file was not listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The name is a symbolic link (opened with `O_NOFOLLOW`).
    SymbolicLink,
    /// The file cannot be opened.
    CannotOpen(Errno),
    /// The open file cannot be examined.
    CannotStat(Errno),
    /// Not a regular file (a FIFO, a directory, a device...).
    NotRegular,
    /// The mode lacks owner read and write (`0600`).
    WrongMode {
        /// The permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// Owned by neither root nor, when it owns the directory, the reader.
    WrongOwner {
        /// The owner.
        uid: u32,
    },
    /// Not the size of the forced layout.
    WrongSize {
        /// The file's size.
        size: u64,
        /// The forced layout's record size.
        expected: usize,
    },
    /// The size of no known layout.
    UnknownSize {
        /// The file's size.
        size: u64,
    },
    /// The file ended before the record did.
    ShortRead {
        /// Bytes the record had up to the end of the file.
        bytes: usize,
    },
    /// Reading failed.
    CannotRead(Errno),
    /// The bytes are not a record of the layout.
    Record(RecordError),
    /// The session's process is gone (the file is stale); kept because
    /// stale files are not to be removed.
    Stale {
        /// The record's pid.
        pid: i32,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let os = |errno: &Errno| std::io::Error::from(*errno);
        match self {
            SkipReason::SymbolicLink => f.write_str("it is a symbolic link"),
            SkipReason::CannotOpen(e) => write!(f, "cannot open: {}", os(e)),
            SkipReason::CannotStat(e) => write!(f, "cannot stat: {}", os(e)),
            SkipReason::NotRegular => f.write_str("not a regular file"),
            SkipReason::WrongMode { mode } => {
                write!(f, "mode {mode:o} lacks owner read and write")
            }
            SkipReason::WrongOwner { uid } => write!(f, "owned by uid {uid}"),
            SkipReason::WrongSize { size, expected } => {
                write!(f, "{size} bytes, the layout wants {expected}")
            }
            SkipReason::UnknownSize { size } => write!(f, "{size} bytes match no known layout"),
            SkipReason::ShortRead { bytes } => write!(f, "short read of {bytes} bytes"),
            SkipReason::CannotRead(e) => write!(f, "cannot read: {}", os(e)),
            SkipReason::Record(e) => e.fmt(f),
            SkipReason::Stale { pid } => write!(f, "process {pid} is gone"),
        }
    }
}

/// Why a record was read without the shared lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlocked {
    /// A writer held its lock for longer than the lock timeout.
    Held {
        /// The lock timeout, in milliseconds.
        timeout_ms: u128,
    },
    /// Locking failed.
    CannotLock(Errno),
}

impl fmt::Display for Unlocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unlocked::Held { timeout_ms } => {
                write!(f, "a writer held it for more than {timeout_ms} ms")
            }
            Unlocked::CannotLock(e) => write!(f, "cannot lock: {}", std::io::Error::from(*e)),
        }
    }
}

/// One thing a scan passed over or did besides listing, for standard
/// error or the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A file was not listed.
    Skipped {
        /// The file's name in the directory.
        file: String,
        /// Why.
        reason: SkipReason,
    },
    /// A stale file (its process is gone) was removed.
    Removed {
        /// The file's name.
        file: String,
        /// The record's pid.
        pid: i32,
    },
    /// A stale file could not be removed.
    NotRemoved {
        /// The file's name.
        file: String,
        /// The record's pid.
        pid: i32,
        /// Why `unlinkat` failed.
        error: Errno,
    },
    /// A record was listed after reading it without its lock.
    ReadUnlocked {
        /// The file's name.
        file: String,
        /// Why it was not locked.
        reason: Unlocked,
    },
    /// Reading the directory failed; the files after this point were not
    /// seen.
    ReadingDirectory(Errno),
}

impl Note {
    /// The name of the file the note is about, if any.
    pub fn file(&self) -> Option<&str> {
        match self {
            Note::Skipped { file, .. }
            | Note::Removed { file, .. }
            | Note::NotRemoved { file, .. }
            | Note::ReadUnlocked { file, .. } => Some(file),
            Note::ReadingDirectory(_) => None,
        }
    }

    /// True when the note is about a stale file (skipped, removed or not).
    pub fn is_stale(&self) -> bool {
        matches!(
            self,
            Note::Skipped {
                reason: SkipReason::Stale { .. },
                ..
            } | Note::Removed { .. }
                | Note::NotRemoved { .. }
        )
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Skipped { file, reason } => write!(f, "{file}: skipped: {reason}"),
            Note::Removed { file, pid } => write!(f, "{file}: removed: process {pid} is gone"),
            Note::NotRemoved { file, pid, error } => write!(
                f,
                "{file}: process {pid} is gone, cannot remove: {}",
                std::io::Error::from(*error)
            ),
            Note::ReadUnlocked { file, reason } => {
                write!(f, "{file}: read without its lock: {reason}")
            }
            Note::ReadingDirectory(e) => {
                write!(f, "reading the directory: {}", std::io::Error::from(*e))
            }
        }
    }
}
