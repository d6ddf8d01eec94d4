//! Rendering sessions in `pure-ftpwho`'s formats (and JSON).
//!
//! One data model, [`Session`], one type naming the formats, [`Format`],
//! and one file per format: [`text`] (the ASCII table, plain and
//! verbose), [`html`] (page, embedded table, CGI), [`xml`], [`plist`],
//! [`shell`], [`json`] and [`openmetrics`]; [`Report`] writes any of them
//! a session at a time. Every format but JSON and OpenMetrics writes
//! exactly the bytes Debian's C `pure-ftpwho` writes for the same
//! scoreboard: names are raw bytes (no UTF-8 assumed), escaped as C
//! escapes them, and the time, bandwidth and percentage columns follow
//! the C arithmetic, `long double` rounding included.
//!
//! ```
//! use pureftpd_systemd::ftpwho::report::{render, sessions_from_entries, Filter, Format};
//! use pureftpd_systemd::ftpwho::scoreboard::{Entry, RawSockaddr, State};
//!
//! let now = 1_700_000_000;
//! let entry = Entry {
//!     state: State::Download,
//!     pid: 4242,
//!     peer: RawSockaddr::from_socket_addr("192.0.2.7:50000".parse().unwrap()),
//!     local: RawSockaddr::from_socket_addr("192.0.2.1:21".parse().unwrap()),
//!     date: now - 3725,
//!     xfer_date: now - 10,
//!     restart_at: 0,
//!     total_size: 4 << 20,
//!     current_size: 1 << 20,
//!     account: b"caf\xe9".to_vec(), // Latin-1, printed as is
//!     filename: b"a&b.iso".to_vec(),
//! };
//! let sessions = sessions_from_entries(&[entry], now, true, &Filter::default());
//!
//! let mut out = Vec::new();
//! render(Format::Shell, &sessions, &mut out)?;
//! assert_eq!(
//!     out,
//!     b"4242|caf\xe9|3725| DL |a&b.iso|192.0.2.7|192.0.2.1|21|1024|4096|25|102\n"
//! );
//!
//! let mut out = Vec::new();
//! render(Format::Xml, &sessions, &mut out)?;
//! assert_eq!(
//!     out,
//!     &b"<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?>\n<status>\n  \
//!        <client pid=\"4242\" account=\"caf\xe9\" time=\"3725\" state=\" DL \" \
//!        file=\"a&amp;b.iso\" host=\"192.0.2.7\" localhost=\"192.0.2.1\" \
//!        localport=\"21\" resume=\"0\" current_size=\"1048576\" \
//!        total_size=\"4194304\" percentage=\"25\" bandwidth=\"104857\" />\n\
//!        </status>\n"[..]
//! );
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, Write};

use crate::ftpwho::scoreboard::{Entry, State};

mod calc;
pub mod html;
pub mod json;
pub mod openmetrics;
pub mod plist;
mod resolve;
pub mod shell;
pub mod text;
pub mod xml;

pub use calc::percentage;
pub use resolve::{HostNames, Lookup, Names};

/// A session ready to print: an [`Entry`] with its addresses resolved and
/// its times made relative to "now", and the sizes `pure-ftpwho` passes to
/// its output functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The decoded scoreboard entry, unchanged.
    pub entry: Entry,
    /// Seconds since the session started (0 if it starts in the future).
    pub since: u64,
    /// Seconds since the transfer started (0 if none, or in the future).
    pub xfer_since: u64,
    /// The peer's host name (or numeric address), raw bytes.
    pub host: Vec<u8>,
    /// The local host name (or numeric address), raw bytes.
    pub local_host: Vec<u8>,
    /// The local port, as digits.
    pub local_port: Vec<u8>,
    /// The restart offset, 0 when it exceeds the current size.
    pub restart_at: i64,
    /// The file's total size for downloads, 0 otherwise.
    pub total_size: i64,
    /// Bytes transferred so far for downloads and uploads, 0 otherwise.
    pub current_size: i64,
}

impl Session {
    /// The session of `entry` at time `now`, with the given resolved
    /// names. Sizes and durations are derived as `pure-ftpwho` derives
    /// them.
    pub fn new(
        entry: Entry,
        now: i64,
        host: Vec<u8>,
        local_host: Vec<u8>,
        local_port: Vec<u8>,
    ) -> Session {
        let since = if entry.date < now {
            now.wrapping_sub(entry.date) as u64
        } else {
            0
        };
        let xfer_since = if entry.xfer_date > 0 && entry.xfer_date < now {
            now.wrapping_sub(entry.xfer_date) as u64
        } else {
            0
        };
        let restart_at = if entry.restart_at <= entry.current_size {
            entry.restart_at
        } else {
            0
        };
        let total_size = match entry.state {
            State::Download => entry.total_size,
            _ => 0,
        };
        let current_size = match entry.state {
            State::Download | State::Upload => entry.current_size,
            _ => 0,
        };
        Session {
            entry,
            since,
            xfer_since,
            host,
            local_host,
            local_port,
            restart_at,
            total_size,
            current_size,
        }
    }

    /// The 4-character state label (`IDLE`, ` DL `, ` UL `, `ERR!`).
    pub fn state_label(&self) -> &'static str {
        self.entry.state.label()
    }

    /// True when bytes have moved beyond the restart offset, the only case
    /// where C computes a bandwidth.
    fn past_restart(&self) -> bool {
        self.current_size > 0 && self.current_size > self.restart_at
    }

    /// C's bandwidth: bytes beyond the restart offset per `unit` seconds
    /// of transfer (1 for bytes/s, 1024 for KiB/s), 0 when nothing moved
    /// beyond the restart offset or no time passed.
    fn bandwidth(&self, unit: u64) -> u64 {
        if self.past_restart() {
            calc::per_second(
                self.current_size,
                self.restart_at,
                self.xfer_since.wrapping_mul(unit),
            )
        } else {
            0
        }
    }

    /// C's percentage of a transfer whose total size is known.
    fn percentage(&self) -> Option<i32> {
        (self.current_size > 0 && self.total_size > 0)
            .then(|| percentage(self.current_size, self.total_size))
    }
}

/// The named fields of a session in XML and plists, in C's order: `open`
/// starts a field, `close` ends it; values are escaped as C escapes them.
/// The transfer fields are only written while bytes move.
fn named_fields(s: &Session, out: &mut Vec<u8>, open: impl Fn(&mut Vec<u8>, &[u8]), close: &[u8]) {
    let number = |out: &mut Vec<u8>, name: &[u8], value: u64| {
        open(out, name);
        push_u64(out, value);
        out.extend_from_slice(close);
    };
    let text = |out: &mut Vec<u8>, name: &[u8], value: &[u8]| {
        open(out, name);
        xml::escape_into(value, out);
        out.extend_from_slice(close);
    };
    number(out, b"pid", s.entry.pid as i64 as u64);
    text(out, b"account", &s.entry.account);
    number(out, b"time", s.since);
    open(out, b"state");
    out.extend_from_slice(s.state_label().as_bytes());
    out.extend_from_slice(close);
    text(out, b"file", &s.entry.filename);
    text(out, b"host", &s.host);
    text(out, b"localhost", &s.local_host);
    text(out, b"localport", &s.local_port);
    if s.current_size > 0 {
        number(out, b"resume", s.restart_at as u64);
        number(out, b"current_size", s.current_size as u64);
        if let Some(pct) = s.percentage() {
            number(out, b"total_size", s.total_size as u64);
            open(out, b"percentage");
            push_i64(out, i64::from(pct));
            out.extend_from_slice(close);
        }
        number(out, b"bandwidth", s.bandwidth(1));
    }
}

/// An output format: one per format option of `pure-ftpwho` (and
/// `ftpwho-query`), and the name a request carries on the wire.
///
/// Whether a CGI header comes first is not a format of its own: see
/// [`Report::with_cgi_header`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The ASCII table (the default).
    #[default]
    Text,
    /// The ASCII table with sizes and the local address (`-v`).
    Verbose,
    /// A full HTML page (`-w`).
    Html,
    /// The HTML table without the page around it (`-W`).
    HtmlEmbedded,
    /// XML (`-x`).
    Xml,
    /// Apple / GNUstep property list (`-p`).
    Plist,
    /// One `|`-separated line per session, for scripts (`-s`).
    Shell,
    /// A JSON array of objects with typed fields (`--json`).
    Json,
    /// OpenMetrics text exposition, for Prometheus (`--openmetrics`).
    Openmetrics,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 9] = [
        Format::Text,
        Format::Verbose,
        Format::Html,
        Format::HtmlEmbedded,
        Format::Xml,
        Format::Plist,
        Format::Shell,
        Format::Json,
        Format::Openmetrics,
    ];

    /// The name on the wire (as serde writes it).
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Verbose => "verbose",
            Format::Html => "html",
            Format::HtmlEmbedded => "html-embedded",
            Format::Xml => "xml",
            Format::Plist => "plist",
            Format::Shell => "shell",
            Format::Json => "json",
            Format::Openmetrics => "openmetrics",
        }
    }

    /// True for the HTML formats, which a CGI header may precede.
    pub fn is_html(self) -> bool {
        matches!(self, Format::Html | Format::HtmlEmbedded)
    }
}

/// Which sessions to keep. Empty lists keep everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Keep sessions of these accounts (exact bytes).
    pub users: Vec<Vec<u8>>,
    /// Keep sessions in these states.
    pub states: Vec<State>,
}

impl Filter {
    /// True when `entry` passes the filter.
    pub fn accepts(&self, entry: &Entry) -> bool {
        (self.users.is_empty() || self.users.contains(&entry.account))
            && (self.states.is_empty() || self.states.contains(&entry.state))
    }
}

/// Turns scoreboard entries into sessions one at a time: resolves their
/// addresses (remembering answers), applies a [`Filter`].
pub struct SessionBuilder {
    now: i64,
    filter: Filter,
    resolver: resolve::Resolver,
}

impl SessionBuilder {
    /// Sessions at time `now`, host names resolved unless `numeric`.
    pub fn new(now: i64, numeric: bool, filter: Filter) -> SessionBuilder {
        SessionBuilder {
            now,
            filter,
            resolver: resolve::Resolver::new(numeric),
        }
    }

    /// Sessions at time `now`, host names taken from `names` (found
    /// beforehand), numeric addresses for the others.
    pub fn with_names(now: i64, names: HostNames, filter: Filter) -> SessionBuilder {
        SessionBuilder {
            now,
            filter,
            resolver: resolve::Resolver::with_names(names),
        }
    }

    /// The session of `entry`, or `None` when it is free, filtered out, or
    /// its addresses cannot be printed (C leaves such entries out).
    pub fn build(&mut self, entry: Entry) -> Option<Session> {
        if entry.state == State::Free || !self.filter.accepts(&entry) {
            return None;
        }
        let (host, local_host, local_port) = self.resolver.resolve(&entry)?;
        Some(Session::new(entry, self.now, host, local_host, local_port))
    }
}

/// Resolves and filters scoreboard entries into sessions at time `now`,
/// in the order given. Host names are looked up with `getnameinfo`
/// (numeric only when `numeric`, as `-n`), falling back to the numeric
/// address as C does; an entry whose addresses cannot be turned into text
/// at all is left out, as C leaves it out. Free entries are left out.
pub fn sessions_from_entries(
    entries: &[Entry],
    now: i64,
    numeric: bool,
    filter: &Filter,
) -> Vec<Session> {
    let mut builder = SessionBuilder::new(now, numeric, filter.clone());
    entries
        .iter()
        .filter_map(|e| builder.build(e.clone()))
        .collect()
}

/// Writes `sessions` in `format`, header and footer included.
pub fn render(format: Format, sessions: &[Session], out: &mut dyn Write) -> io::Result<()> {
    let mut report = Report::new(format, out);
    for s in sessions {
        report.session(s)?;
    }
    report.finish()
}

/// A report written one session at a time. The header is written with the
/// first session or by [`finish`](Report::finish), so nothing is written
/// when the report is dropped unfinished and empty. OpenMetrics, an
/// aggregate, is written whole by `finish`.
pub struct Report<'a> {
    format: Format,
    out: &'a mut dyn Write,
    cgi_header: bool,
    top_users: usize,
    sessions: usize,
    started: bool,
    buf: Vec<u8>,
    /// The sessions an aggregate format needs at the end.
    kept: Vec<Session>,
}

impl<'a> Report<'a> {
    /// A report in `format` to `out`.
    pub fn new(format: Format, out: &'a mut dyn Write) -> Report<'a> {
        Report {
            format,
            out,
            cgi_header: false,
            top_users: openmetrics::DEFAULT_TOP_USERS,
            sessions: 0,
            started: false,
            buf: Vec::with_capacity(4096),
            kept: Vec::new(),
        }
    }

    /// Starts an HTML report with the CGI header (`Content-Type` and a
    /// blank line), as `pure-ftpwho -c` does; other formats have none.
    pub fn with_cgi_header(mut self, cgi_header: bool) -> Report<'a> {
        self.cgi_header = cgi_header && self.format.is_html();
        self
    }

    /// Lists `top_users` accounts in OpenMetrics' `pureftpd_user_sessions`.
    pub fn with_top_users(mut self, top_users: usize) -> Report<'a> {
        self.top_users = top_users;
        self
    }

    fn start(&mut self) {
        if !self.started {
            self.started = true;
            if self.cgi_header {
                self.buf.extend_from_slice(html::CGI_HEADER.as_bytes());
            }
            header(self.format, &mut self.buf);
        }
    }

    /// Writes one session.
    pub fn session(&mut self, s: &Session) -> io::Result<()> {
        self.start();
        if self.format == Format::Openmetrics {
            self.kept.push(s.clone());
        } else {
            session(self.format, s, self.sessions == 0, &mut self.buf);
        }
        self.sessions += 1;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Writes the footer (and the header if no session was written).
    pub fn finish(mut self) -> io::Result<()> {
        self.start();
        if self.format == Format::Openmetrics {
            openmetrics::render_sessions(&self.kept, self.top_users, &mut self.buf)?
        } else {
            footer(self.format, self.sessions == 0, &mut self.buf);
        }
        self.out.write_all(&self.buf)
    }
}

/// Appends the header of a report in `format` (nothing for the formats
/// without one, and for OpenMetrics, written whole at the end).
pub(crate) fn header(format: Format, out: &mut Vec<u8>) {
    match format {
        Format::Text => text::header(false, out),
        Format::Verbose => text::header(true, out),
        Format::Html => html::header(false, out),
        Format::HtmlEmbedded => html::header(true, out),
        Format::Xml => xml::header(out),
        Format::Plist => plist::header(out),
        Format::Shell | Format::Json | Format::Openmetrics => {}
    }
}

/// Appends one session of a report in `format`; `first` for the first
/// one. Nothing for OpenMetrics, an aggregate.
pub(crate) fn session(format: Format, s: &Session, first: bool, out: &mut Vec<u8>) {
    match format {
        Format::Text => text::session(s, false, out),
        Format::Verbose => text::session(s, true, out),
        Format::Html | Format::HtmlEmbedded => html::session(s, out),
        Format::Xml => xml::session(s, out),
        Format::Plist => plist::session(s, out),
        Format::Shell => shell::session(s, out),
        Format::Json => json::session(s, first, out),
        Format::Openmetrics => {}
    }
}

/// Appends the footer of a report in `format`; `empty` when no session
/// was written. Nothing for OpenMetrics.
pub(crate) fn footer(format: Format, empty: bool, out: &mut Vec<u8>) {
    match format {
        Format::Text | Format::Verbose => out.push(b'\n'),
        Format::Html => html::footer(false, out),
        Format::HtmlEmbedded => html::footer(true, out),
        Format::Xml => out.extend_from_slice(b"</status>\n"),
        Format::Plist => out.extend_from_slice(b"\t</array>\n</dict>\n</plist>\n"),
        Format::Json => json::footer(empty, out),
        Format::Shell | Format::Openmetrics => {}
    }
}

/// Appends the decimal digits of `n`.
fn push_u64(out: &mut Vec<u8>, n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[i..]);
}

/// "00" to "99".
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        pairs[i * 2] = b'0' + (i / 10) as u8;
        pairs[i * 2 + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// Appends the decimal digits of `n`, with a minus sign when negative.
fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

/// C's `ISCTRLCODE`: the bytes the escapers replace.
fn is_ctrl(b: u8) -> bool {
    b == 0x7f || b < 32
}

/// A table of the bytes `is_ctrl` accepts, plus `extra`.
const fn special_bytes(extra: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 32 {
        table[b] = true;
        b += 1;
    }
    table[0x7f] = true;
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}

/// Size of the C escapers' static buffer (`PATH_MAX + 32`).
const ESCAPE_BUF: usize = 4096 + 32;

#[cfg(test)]
mod tests {
    use super::{push_i64, push_u64};

    #[test]
    fn decimal_digits() {
        let mut values: Vec<u64> = (0..1100).collect();
        values.extend([9_999, 10_000, 65_535, 1 << 32, u64::MAX - 1, u64::MAX]);
        values.extend((0..64).map(|b| 1u64 << b));
        for v in values {
            let mut out = Vec::new();
            push_u64(&mut out, v);
            assert_eq!(out, v.to_string().into_bytes());
        }
        for v in [0i64, -1, -10, i64::MIN, i64::MAX, -2147483648] {
            let mut out = Vec::new();
            push_i64(&mut out, v);
            assert_eq!(out, v.to_string().into_bytes());
        }
    }
}
