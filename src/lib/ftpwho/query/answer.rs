//! An answer line written to a client a buffer at a time.
//!
//! A `list` answer is rendered from a shared [`Snapshot`] session by
//! session into a fixed per-connection buffer and written as the socket
//! takes it; when the socket is full the answer is put aside with its
//! place kept, and resumed when the client reads. The line is the
//! protocol's (docs/protocol.md): a text format's bytes are the JSON
//! string `output` (or `output_base64` when they are not valid UTF-8,
//! which a first pass over the sessions with non-ASCII names decides),
//! the `json` format's document is `data`, one compact object per
//! session. Nothing is rendered whole, and nothing is parsed back.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Instant;

use super::protocol::{base64_encode, View, VERSION};
use super::snapshot::Snapshot;
use crate::ftpwho::report::openmetrics::{self, Metrics};
use crate::ftpwho::report::{self, Filter, Format, HostNames, Session, SessionBuilder};

/// The per-connection buffer: rendering stops once this much is pending.
pub const BUFFER: usize = 64 * 1024;

/// How the rendered bytes travel in the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// A JSON string (`output`).
    Text,
    /// Base64 in a JSON string (`output_base64`); up to two bytes wait
    /// for the next ones.
    Base64,
    /// JSON values as they are (`data`).
    Data,
}

/// The sessions of a `list` answer still to render.
struct Listing {
    snapshot: Arc<Snapshot>,
    format: Format,
    filter: Filter,
    builder: SessionBuilder,
    encoding: Encoding,
    carry: Vec<u8>,
    next: usize,
    shown: usize,
    scratch: Vec<u8>,
}

/// What a `list` answer shows.
pub struct ListPlan {
    /// The format.
    pub format: Format,
    /// Whose sessions.
    pub view: View,
    /// Accounts (exact bytes) and states to keep.
    pub filter: Filter,
    /// `Some` with the names found beforehand, `None` for numeric
    /// addresses.
    pub names: Option<HostNames>,
    /// Accounts listed by OpenMetrics.
    pub top_users: usize,
    /// "Now", Unix time.
    pub now: i64,
}

/// Progress of [`Answer::write_to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The whole line is written.
    Done,
    /// The socket is full: call again once it is writable.
    Blocked,
}

/// One answer line, partly written.
pub struct Answer {
    out: Vec<u8>,
    sent: usize,
    listing: Option<Listing>,
}

impl Answer {
    /// An answer already rendered (a short line).
    pub fn line(line: Vec<u8>) -> Answer {
        Answer {
            out: line,
            sent: 0,
            listing: None,
        }
    }

    /// The `list` answer over `snapshot`.
    pub fn list(snapshot: Arc<Snapshot>, plan: ListPlan) -> Answer {
        let ListPlan {
            format,
            view,
            filter,
            names,
            top_users,
            now,
        } = plan;
        let odd_hosts = names.as_ref().is_some_and(|n| {
            n.0.values()
                .flatten()
                .any(|(host, port)| !host.is_ascii() || !port.is_ascii())
        });
        let mut builder = match names {
            Some(names) => SessionBuilder::with_names(now, names, filter.clone()),
            None => SessionBuilder::new(now, true, filter.clone()),
        };
        let mut out = Vec::with_capacity(BUFFER + 4096);
        let head = |out: &mut Vec<u8>, field: &str| {
            write!(
                out,
                "{{\"v\":{VERSION},\"ok\":true,\"op\":\"list\",\"format\":\"{}\",\"view\":\"{}\",\"{field}\":",
                format.name(),
                match view {
                    View::All => "all",
                    View::Own => "own",
                }
            )
            .expect("writing to a Vec");
        };
        if format == Format::Openmetrics {
            // An aggregate of a few lines: rendered whole.
            let metrics = Metrics::from_transfers(
                (0..snapshot.len())
                    .filter(|&i| accepts(&filter, &snapshot, i))
                    .filter_map(|i| {
                        let session = builder.build(snapshot.entry(i))?;
                        let (moved, rate) = openmetrics::transfer_of(&session);
                        Some((session.entry.state, snapshot.account(i), moved, rate))
                    }),
                top_users,
            );
            let mut text = Vec::new();
            openmetrics::render(&metrics, &mut text).expect("writing to a Vec");
            head(&mut out, "output");
            out.push(b'"');
            json_string_into(&text, &mut out);
            out.extend_from_slice(b"\"}\n");
            return Answer::line(out);
        }
        let mut scratch = Vec::with_capacity(4096);
        let encoding = if format == Format::Json {
            Encoding::Data
        } else if (0..snapshot.len()).any(|i| {
            (odd_hosts || !snapshot.is_ascii(i))
                && accepts(&filter, &snapshot, i)
                && builder.build(snapshot.entry(i)).is_some_and(|s| {
                    scratch.clear();
                    report::session(format, &s, false, &mut scratch);
                    std::str::from_utf8(&scratch).is_err()
                })
        }) {
            Encoding::Base64
        } else {
            Encoding::Text
        };
        match encoding {
            Encoding::Text => head(&mut out, "output"),
            Encoding::Base64 => head(&mut out, "output_base64"),
            Encoding::Data => head(&mut out, "data"),
        }
        let mut listing = Listing {
            snapshot,
            format,
            filter,
            builder,
            encoding,
            carry: Vec::with_capacity(3),
            next: 0,
            shown: 0,
            scratch,
        };
        if encoding != Encoding::Data {
            out.push(b'"');
        }
        listing.scratch.clear();
        report::header(format, &mut listing.scratch);
        listing.emit(&mut out);
        Answer {
            out,
            sent: 0,
            listing: Some(listing),
        }
    }

    /// The scan this answer is rendered from, until it is all rendered.
    pub fn snapshot(&self) -> Option<&Arc<Snapshot>> {
        self.listing.as_ref().map(|l| &l.snapshot)
    }

    /// Renders more while less than [`BUFFER`] is pending.
    fn fill(&mut self) {
        let Some(listing) = &mut self.listing else {
            return;
        };
        while self.out.len() - self.sent < BUFFER {
            if !listing.step(&mut self.out) {
                self.listing = None;
                return;
            }
        }
    }

    /// Writes as much as the socket takes without blocking, rendering as
    /// it goes; `Err(TimedOut)` past `deadline`. `hold` (the connection's
    /// slot) is dropped just before the last bytes are written: a client
    /// that has read its whole answer may reconnect at once and find its
    /// slot free.
    pub fn write_to<T>(
        &mut self,
        stream: &UnixStream,
        deadline: Instant,
        hold: &mut Option<T>,
    ) -> io::Result<Progress> {
        let mut stream = stream;
        loop {
            if self.sent == self.out.len() {
                self.out.clear();
                self.sent = 0;
                if self.listing.is_none() {
                    return Ok(Progress::Done);
                }
                if Instant::now() >= deadline {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                self.fill();
                continue;
            }
            if self.listing.is_none() {
                drop(hold.take());
            }
            match stream.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Blocked),
                Err(e) => return Err(e),
            }
        }
    }
}

/// True when session `i` passes `filter` (read from the compact record).
fn accepts(filter: &Filter, snapshot: &Snapshot, i: usize) -> bool {
    (filter.states.is_empty() || filter.states.contains(&snapshot.state(i)))
        && (filter.users.is_empty() || filter.users.iter().any(|u| u == snapshot.account(i)))
}

impl Listing {
    /// Renders the next session (or the end); false once the line is
    /// complete.
    fn step(&mut self, out: &mut Vec<u8>) -> bool {
        self.scratch.clear();
        if self.next < self.snapshot.len() {
            let i = self.next;
            self.next += 1;
            if !accepts(&self.filter, &self.snapshot, i) {
                return true;
            }
            let Some(session) = self.builder.build(self.snapshot.entry(i)) else {
                return true;
            };
            self.session(&session, out);
            self.shown += 1;
            return true;
        }
        if self.next == self.snapshot.len() {
            self.next += 1;
            match self.encoding {
                Encoding::Data => {
                    out.extend_from_slice(if self.shown == 0 { b"[]}\n" } else { b"]}\n" })
                }
                Encoding::Text | Encoding::Base64 => {
                    report::footer(self.format, self.shown == 0, &mut self.scratch);
                    self.emit(out);
                    if !self.carry.is_empty() {
                        out.extend_from_slice(base64_encode(&self.carry).as_bytes());
                        self.carry.clear();
                    }
                    out.extend_from_slice(b"\"}\n");
                }
            }
        }
        false
    }

    fn session(&mut self, session: &Session, out: &mut Vec<u8>) {
        if self.encoding == Encoding::Data {
            out.push(if self.shown == 0 { b'[' } else { b',' });
            report::json::object_into(session, out);
        } else {
            report::session(self.format, session, self.shown == 0, &mut self.scratch);
            self.emit(out);
        }
    }

    /// Appends the rendered bytes in `scratch`, encoded.
    fn emit(&mut self, out: &mut Vec<u8>) {
        match self.encoding {
            Encoding::Text => json_string_into(&self.scratch, out),
            Encoding::Base64 => {
                self.carry.extend_from_slice(&self.scratch);
                let whole = self.carry.len() / 3 * 3;
                out.extend_from_slice(base64_encode(&self.carry[..whole]).as_bytes());
                self.carry.drain(..whole);
            }
            Encoding::Data => {}
        }
    }
}

/// Appends UTF-8 `text` as the inside of a JSON string, escaped as
/// serde_json escapes it.
pub fn json_string_into(text: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&text[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&text[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut text: Vec<u8> = (0u8..0x80).collect();
        text.extend_from_slice("é\u{2028}\\\"".as_bytes());
        let mut ours = b"\"".to_vec();
        json_string_into(&text, &mut ours);
        ours.push(b'"');
        let theirs = serde_json::to_vec(std::str::from_utf8(&text).unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(theirs).unwrap()
        );
    }
}
