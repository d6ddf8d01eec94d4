//! JSON (`--json`): an array with one object per session, typed fields.
//!
//! Names are raw bytes. A name that is valid UTF-8 is a plain JSON
//! string. Otherwise it is written escaped and a `<field>_escaped: true`
//! member says so: valid UTF-8 runs are kept, a backslash is doubled and
//! each byte that is not UTF-8 becomes `\xNN`, so the bytes can be
//! restored exactly (see [`unescape`]).
//!
//! Each object has: `pid`, `account`, `state` (`idle`, `download`,
//! `upload` or `unknown`), `state_code` (the raw C value), `start` and
//! `time` (session start, Unix time, and seconds since), `transfer_start`
//! and `transfer_time` (0 when no transfer), `file`, `host`,
//! `local_host`, `local_port` (a number when numeric), `resume`,
//! `current_size`, `total_size` (bytes, as `pure-ftpwho -x` reports
//! them), `percentage` (`null` without a known total) and `bandwidth`
//! (bytes per second).

use std::io::{self, Write};

use serde::Serialize;

use super::calc::{per_second, percentage};
use super::Session;
use crate::ftpwho::scoreboard::State;

/// Escapes bytes that are not valid UTF-8 as described in the module
/// documentation; `None` when they are valid UTF-8.
pub fn escape(bytes: &[u8]) -> Option<String> {
    if std::str::from_utf8(bytes).is_ok() {
        return None;
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    Some(out)
}

/// Restores the bytes of a string written by [`escape`].
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 4 <= b.len() {
            match std::str::from_utf8(&b[i + 2..i + 4])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(v) => {
                    out.push(v);
                    i += 4;
                }
                None => {
                    out.push(b[i]);
                    i += 1;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn text(bytes: &[u8]) -> (String, Option<bool>) {
    match escape(bytes) {
        Some(escaped) => (escaped, Some(true)),
        None => (String::from_utf8_lossy(bytes).into_owned(), None),
    }
}

#[derive(Serialize)]
struct Object {
    pid: i32,
    account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_escaped: Option<bool>,
    state: &'static str,
    state_code: i32,
    start: i64,
    time: u64,
    transfer_start: i64,
    transfer_time: u64,
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_escaped: Option<bool>,
    host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    host_escaped: Option<bool>,
    local_host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_host_escaped: Option<bool>,
    local_port: serde_json::Value,
    resume: i64,
    current_size: i64,
    total_size: i64,
    percentage: Option<i32>,
    bandwidth: u64,
}

fn object(s: &Session) -> Object {
    let (account, account_escaped) = text(&s.entry.account);
    let (file, file_escaped) = text(&s.entry.filename);
    let (host, host_escaped) = text(&s.host);
    let (local_host, local_host_escaped) = text(&s.local_host);
    let port = String::from_utf8_lossy(&s.local_port).into_owned();
    let local_port = match port.parse::<u16>() {
        Ok(n) => serde_json::Value::from(n),
        Err(_) => serde_json::Value::from(port),
    };
    let (current, restart, total) = (s.current_size, s.restart_at, s.total_size);
    let bandwidth = if current > 0 && current > restart {
        per_second(current, restart, s.xfer_since)
    } else {
        0
    };
    Object {
        pid: s.entry.pid,
        account,
        account_escaped,
        state: match s.entry.state {
            State::Idle => "idle",
            State::Download => "download",
            State::Upload => "upload",
            State::Free => "free",
            State::Unknown(_) => "unknown",
        },
        state_code: s.entry.state.to_raw(),
        start: s.entry.date,
        time: s.since,
        transfer_start: if s.xfer_since > 0 {
            s.entry.xfer_date
        } else {
            0
        },
        transfer_time: s.xfer_since,
        file,
        file_escaped,
        host,
        host_escaped,
        local_host,
        local_host_escaped,
        local_port,
        resume: restart,
        current_size: current,
        total_size: total,
        percentage: (current > 0 && total > 0).then(|| percentage(current, total)),
        bandwidth,
    }
}

/// Writes the array, one object per line.
pub fn render(sessions: &[Session], out: &mut dyn Write) -> io::Result<()> {
    super::render(super::Format::Json, sessions, out)
}

pub(crate) fn session(s: &Session, first: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if first { b"[\n  " } else { b",\n  " });
    object_into(s, out);
}

/// Appends the object of one session, on one line.
pub(crate) fn object_into(s: &Session, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, &object(s)).expect("JSON of plain values");
}

pub(crate) fn footer(empty: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if empty { b"[]\n" } else { b"\n]\n" });
}

#[cfg(test)]
mod tests {
    use super::{escape, unescape};

    #[test]
    fn utf8_is_left_alone() {
        assert_eq!(escape("café\\".as_bytes()), None);
    }

    #[test]
    fn broken_utf8_round_trips() {
        let raw = b"caf\xe9 \\x41 \xc3\xa9 \xff";
        let escaped = escape(raw).unwrap();
        assert_eq!(escaped, "caf\\xe9 \\\\x41 é \\xff");
        assert_eq!(unescape(&escaped), raw);
    }
}
