//! Apple / GNUstep property list (`-p`): a `user-info` array of
//! dictionaries, every value a `<string>`.

use std::io::{self, Write};

use super::calc::{per_second, percentage};
use super::xml::escape_into;
use super::{push_i64, push_u64, Format, Session};

/// Writes the plist header, one dictionary per session and the footer.
pub fn render(sessions: &[Session], out: &mut dyn Write) -> io::Result<()> {
    super::render(Format::Plist, sessions, out)
}

pub(crate) fn header(out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?>\n\
          <!DOCTYPE plist PUBLIC \"-//Apple Computer//DTD PLIST 1.0//EN\" \
          \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
          <plist version=\"1.0\">\n<dict>\n\
          \t<key>user-info</key>\n\t<array>\n",
    );
}

fn key(out: &mut Vec<u8>, key: &[u8]) {
    out.extend_from_slice(b"\t\t\t<key>");
    out.extend_from_slice(key);
    out.extend_from_slice(b"</key>\n\t\t\t<string>");
}

const END: &[u8] = b"</string>\n";

fn text(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    key(out, name);
    escape_into(value, out);
    out.extend_from_slice(END);
}

fn number(out: &mut Vec<u8>, name: &[u8], value: u64) {
    key(out, name);
    push_u64(out, value);
    out.extend_from_slice(END);
}

pub(crate) fn session(s: &Session, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\t\t<dict>\n");
    number(out, b"pid", s.entry.pid as i64 as u64);
    text(out, b"account", &s.entry.account);
    number(out, b"time", s.since);
    key(out, b"state");
    out.extend_from_slice(s.state_label().as_bytes());
    out.extend_from_slice(END);
    text(out, b"file", &s.entry.filename);
    text(out, b"host", &s.host);
    text(out, b"localhost", &s.local_host);
    text(out, b"localport", &s.local_port);
    let (current, restart, total) = (s.current_size, s.restart_at, s.total_size);
    if current > 0 {
        let bandwidth = if current > restart {
            per_second(current, restart, s.xfer_since)
        } else {
            0
        };
        number(out, b"resume", restart as u64);
        number(out, b"current_size", current as u64);
        if total > 0 {
            number(out, b"total_size", total as u64);
            key(out, b"percentage");
            push_i64(out, i64::from(percentage(current, total)));
            out.extend_from_slice(END);
        }
        number(out, b"bandwidth", bandwidth);
    } else {
        for name in [
            &b"resume"[..],
            b"current_size",
            b"total_size",
            b"percentage",
            b"bandwidth",
        ] {
            key(out, name);
            out.extend_from_slice(END);
        }
    }
    out.extend_from_slice(b"\t\t</dict>\n");
}
