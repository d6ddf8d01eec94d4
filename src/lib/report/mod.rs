//! Rendering sessions in `pure-ftpwho`'s formats (and JSON).
//!
//! One data model, [`Session`], one file per format.

use std::io::{self, Write};

use crate::scoreboard::{Entry, State};

pub mod openmetrics;

/// A session ready to print: an [`Entry`] with its addresses resolved and
/// its times made relative to "now".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The decoded scoreboard entry.
    pub entry: Entry,
}

/// An output format of `pure-ftpwho`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The ASCII table (default).
    Text,
    /// `-v`.
    Verbose,
    /// `-w`.
    Html,
    /// `-W`.
    HtmlEmbedded,
    /// `-x`.
    Xml,
    /// `-p`.
    Plist,
    /// `-s`.
    Shell,
    /// JSON.
    Json,
}

/// Which sessions to keep.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this account.
    pub user: Option<Vec<u8>>,
    /// Only this state.
    pub state: Option<State>,
}

/// Resolves and filters scoreboard entries into sessions at time `now`.
pub fn sessions_from_entries(
    entries: &[Entry],
    now: i64,
    numeric: bool,
    filter: &Filter,
) -> Vec<Session> {
    let _ = (entries, now, numeric, filter);
    unimplemented!("sessions_from_entries")
}

/// Writes `sessions` in `format`, header and footer included.
pub fn render(format: Format, sessions: &[Session], out: &mut dyn Write) -> io::Result<()> {
    let _ = (format, sessions, out);
    unimplemented!("render")
}
