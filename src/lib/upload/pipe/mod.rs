//! The upload pipe: the records pure-ftpd writes after each upload, and the
//! FIFO they travel through ([`fifo`]).
//!
//! # Wire protocol
//!
//! Started with `-o`, pure-ftpd writes one record per finished upload:
//!
//! ```text
//! 0x02  virtual user name  0x01  file name  0x00
//! ```
//!
//! The file name is absolute, or `IP:/path` for a virtual host, which maps
//! to `<vhost dir>/IP/path` (see [`map_virtual`]).
//!
//! [`Parser`] reads this incrementally from buffers of any size, following
//! the C reader's rules:
//!
//! - bytes before a `0x02` are skipped (reported as [`Event::Skipped`]);
//! - a user name holds at most [`MAX_USER_LEN`] bytes, a file name at most
//!   [`MAX_PATH_LEN`];
//! - a control byte (below `0x20`, or `0x7f`) other than the expected
//!   separator rejects the record; bytes `0x80` and above are accepted, so
//!   UTF-8 names pass;
//! - an empty file name, or a virtual-host name that maps to more than
//!   `PATH_MAX` bytes, rejects the record;
//! - after a rejection, bytes are skipped up to the next `0x02`.
//!
//! One difference, on purpose: the C reader consumes the `0x02` that
//! interrupts a record and so also loses the record it starts; here that
//! `0x02` starts the next record. Any valid record is therefore recognised
//! whatever garbage precedes it, and there is no one-second pause after
//! garbage.
//!
//! ```
//! use pureftpd_systemd::upload::pipe::{Event, Parser, Reason};
//!
//! let mut parser = Parser::new();
//! let mut events = Vec::new();
//! parser.feed(b"junk\x02alice\x01/srv/ftp/a.txt\x00\x02bob\x01/x\x07y\x00", &mut events);
//! parser.feed(b"\x02\x01198.51.100.7:/incoming/b\x00", &mut events);
//! assert_eq!(events[0], Event::Skipped(4));
//! let Event::Record(record) = &events[1] else { panic!() };
//! assert_eq!((&record.user[..], &record.file[..]), (&b"alice"[..], &b"/srv/ftp/a.txt"[..]));
//! let Event::Rejected(rejection) = &events[2] else { panic!() };
//! assert_eq!(rejection.reason, Reason::ControlInPath(0x07));
//! let Event::Record(record) = &events[3] else { panic!() };
//! assert_eq!(record.file, b"/etc/pure-ftpd/pure-ftpd/198.51.100.7/incoming/b");
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub mod fifo;

/// First byte of a record.
pub const RECORD_START: u8 = 0x02;
/// Ends the user name.
pub const USER_END: u8 = 0x01;
/// Ends the file name, and the record.
pub const PATH_END: u8 = 0x00;

/// Longest accepted user name: Debian builds pure-ftpd with
/// `MAX_USER_LENGTH` 128.
pub const MAX_USER_LEN: usize = 128;

/// Linux's `PATH_MAX`, terminating NUL included.
pub const PATH_MAX: usize = 4096;

/// Longest accepted file name as received: the C reader's buffer holds
/// `PATH_MAX` plus 64 bytes of virtual-host prefix, NUL included.
pub const MAX_PATH_LEN: usize = PATH_MAX + 64 - 1;

/// Longest file name after virtual-host mapping (the C reader formats it
/// into a `PATH_MAX + 1` buffer).
pub const MAX_VIRTUAL_PATH_LEN: usize = PATH_MAX;

/// Where `IP:/path` names are mapped: pure-ftpd's `VHOST_PATH`
/// (`CONFDIR "/pure-ftpd"`) in Debian's and Fedora's builds, whose `CONFDIR` is
/// `/etc/pure-ftpd`.
pub const DEFAULT_VHOST_DIR: &str = "/etc/pure-ftpd/pure-ftpd";

/// True for the bytes the C reader treats as control codes: below `0x20`,
/// and `0x7f`.
pub fn is_control(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f
}

/// One upload, as announced by pure-ftpd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The virtual user name (may be empty).
    pub user: Vec<u8>,
    /// The file name as received.
    pub path: Vec<u8>,
    /// The file to process: [`Record::path`] after virtual-host mapping.
    pub file: Vec<u8>,
}

impl Record {
    /// [`Record::file`] as a path (relative names are relative to `/`).
    pub fn file_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.file))
    }
}

/// Why a record was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A control byte (given) inside the user name.
    ControlInUser(u8),
    /// A control byte (given) inside the file name.
    ControlInPath(u8),
    /// A `0x02` arrived before the record ended: the record was cut short
    /// and a new one starts.
    Interrupted,
    /// The user name is longer than [`MAX_USER_LEN`].
    UserTooLong,
    /// The file name is longer than [`MAX_PATH_LEN`].
    PathTooLong,
    /// The file name is empty.
    EmptyPath,
    /// The virtual-host name maps to more than [`MAX_VIRTUAL_PATH_LEN`] bytes.
    VirtualPathTooLong,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::ControlInUser(b) => write!(f, "control byte 0x{b:02x} in the user name"),
            Reason::ControlInPath(b) => write!(f, "control byte 0x{b:02x} in the file name"),
            Reason::Interrupted => f.write_str("record cut short by the start of another"),
            Reason::UserTooLong => write!(f, "user name longer than {MAX_USER_LEN} bytes"),
            Reason::PathTooLong => write!(f, "file name longer than {MAX_PATH_LEN} bytes"),
            Reason::EmptyPath => f.write_str("empty file name"),
            Reason::VirtualPathTooLong => write!(
                f,
                "virtual-host file name longer than {MAX_VIRTUAL_PATH_LEN} bytes once mapped"
            ),
        }
    }
}

/// A rejected record, with what had been read of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub reason: Reason,
    /// The user name, or the part read before the rejection.
    pub user: Vec<u8>,
    /// The file name, or the part read before the rejection.
    pub path: Vec<u8>,
}

/// What the parser found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A valid record.
    Record(Record),
    /// An invalid record; the rest of it is skipped.
    Rejected(Rejection),
    /// This many bytes outside any record were skipped (reported when the
    /// next record starts).
    Skipped(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between records: skipping to `0x02`, counting what is skipped.
    Between,
    /// After a rejection: skipping to `0x02` silently.
    AfterRejection,
    /// Reading the user name.
    User,
    /// Reading the file name.
    Path,
}

/// Incremental parser of the upload pipe (see the [module](self) docs).
///
/// Feeding a stream in pieces of any size gives the same events as feeding
/// it at once.
#[derive(Debug, Clone)]
pub struct Parser {
    state: State,
    skipped: usize,
    user: Vec<u8>,
    path: Vec<u8>,
    vhost_dir: Vec<u8>,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// A parser mapping virtual hosts under [`DEFAULT_VHOST_DIR`].
    pub fn new() -> Self {
        Self::with_vhost_dir(DEFAULT_VHOST_DIR.as_bytes())
    }

    /// A parser mapping virtual hosts under `vhost_dir`.
    pub fn with_vhost_dir(vhost_dir: &[u8]) -> Self {
        Parser {
            state: State::Between,
            skipped: 0,
            user: Vec::with_capacity(MAX_USER_LEN),
            path: Vec::with_capacity(256),
            vhost_dir: vhost_dir.to_vec(),
        }
    }

    /// True when the parser is inside a record (it has seen its `0x02` but
    /// not its end).
    pub fn in_record(&self) -> bool {
        matches!(self.state, State::User | State::Path)
    }

    /// Parses `input` up to the first event. Returns how many bytes were
    /// used (through the byte that completed the event, or all of `input`)
    /// and the event, if any.
    pub fn next_event(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        let mut i = 0;
        while i < input.len() {
            // Fast paths over runs of ordinary bytes.
            match self.state {
                State::Between => {
                    let run = input[i..]
                        .iter()
                        .position(|&b| b == RECORD_START)
                        .unwrap_or(input.len() - i);
                    self.skipped = self.skipped.saturating_add(run);
                    i += run;
                    if i == input.len() {
                        break;
                    }
                }
                State::AfterRejection => {
                    i += input[i..]
                        .iter()
                        .position(|&b| b == RECORD_START)
                        .unwrap_or(input.len() - i);
                    if i == input.len() {
                        break;
                    }
                }
                State::User | State::Path => {}
            }
            let byte = input[i];
            i += 1;
            if let Some(event) = self.step(byte) {
                return (i, Some(event));
            }
        }
        (input.len(), None)
    }

    /// Parses all of `input`, appending every event to `events`.
    pub fn feed(&mut self, mut input: &[u8], events: &mut Vec<Event>) {
        while !input.is_empty() {
            let (used, event) = self.next_event(input);
            input = &input[used..];
            events.extend(event);
        }
    }

    fn start_record(&mut self) {
        self.state = State::User;
        self.user.clear();
        self.path.clear();
    }

    fn reject(&mut self, reason: Reason) -> Event {
        self.state = State::AfterRejection;
        Event::Rejected(Rejection {
            reason,
            user: std::mem::take(&mut self.user),
            path: std::mem::take(&mut self.path),
        })
    }

    fn step(&mut self, byte: u8) -> Option<Event> {
        match self.state {
            State::Between | State::AfterRejection => {
                debug_assert_eq!(byte, RECORD_START);
                let skipped = std::mem::take(&mut self.skipped);
                self.start_record();
                (skipped > 0).then_some(Event::Skipped(skipped))
            }
            State::User => match byte {
                USER_END => {
                    self.state = State::Path;
                    None
                }
                RECORD_START => {
                    let event = self.reject(Reason::Interrupted);
                    self.start_record();
                    Some(event)
                }
                b if is_control(b) => Some(self.reject(Reason::ControlInUser(b))),
                _ if self.user.len() == MAX_USER_LEN => Some(self.reject(Reason::UserTooLong)),
                b => {
                    self.user.push(b);
                    None
                }
            },
            State::Path => match byte {
                PATH_END => Some(self.finish_record()),
                RECORD_START => {
                    let event = self.reject(Reason::Interrupted);
                    self.start_record();
                    Some(event)
                }
                b if is_control(b) => Some(self.reject(Reason::ControlInPath(b))),
                _ if self.path.len() == MAX_PATH_LEN => Some(self.reject(Reason::PathTooLong)),
                b => {
                    self.path.push(b);
                    None
                }
            },
        }
    }

    fn finish_record(&mut self) -> Event {
        if self.path.is_empty() {
            return self.reject(Reason::EmptyPath);
        }
        match map_virtual(&self.path, &self.vhost_dir) {
            Ok(file) => {
                self.state = State::Between;
                let path = std::mem::take(&mut self.path);
                Event::Record(Record {
                    user: std::mem::take(&mut self.user),
                    file: file.unwrap_or_else(|| path.clone()),
                    path,
                })
            }
            Err(reason) => self.reject(reason),
        }
    }
}

/// Maps a virtual-host name `PREFIX:/path` to `<vhost_dir>/PREFIX/path`, as
/// the C reader's `checkvirtual()` does: names starting with `/` or without
/// `:/` are left alone (`Ok(None)`); the prefix is everything before the
/// first `:/`.
pub fn map_virtual(path: &[u8], vhost_dir: &[u8]) -> Result<Option<Vec<u8>>, Reason> {
    if path.first() == Some(&b'/') {
        return Ok(None);
    }
    let Some(colon) = path.windows(2).position(|w| w == b":/") else {
        return Ok(None);
    };
    let mut mapped = Vec::with_capacity(vhost_dir.len() + 1 + path.len());
    mapped.extend_from_slice(vhost_dir);
    mapped.push(b'/');
    mapped.extend_from_slice(&path[..colon]);
    mapped.extend_from_slice(&path[colon + 1..]);
    if mapped.len() > MAX_VIRTUAL_PATH_LEN {
        return Err(Reason::VirtualPathTooLong);
    }
    Ok(Some(mapped))
}

#[cfg(test)]
mod tests;
