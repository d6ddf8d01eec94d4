//! XML (`-x`): one `<client />` element per session.

use std::io::{self, Write};

use super::calc::{per_second, percentage};
use super::{is_ctrl, Session, ESCAPE_BUF};

/// C's `xml_escaped`, also used for HTML and plists: control bytes become
/// `?`, `<`, `>` and `&` become entities, other bytes (Latin-1, UTF-8 or
/// broken) pass unchanged. Like C, the result is cut at the last whole
/// character that fits in its 4127-byte buffer.
pub fn escape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 8);
    let mut left = ESCAPE_BUF - 1;
    for &b in s {
        if left == 0 {
            break;
        }
        let piece: &[u8] = match b {
            _ if is_ctrl(b) => b"?",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'&' => b"&amp;",
            _ => std::slice::from_ref(&b),
        };
        if piece.len() > left {
            break;
        }
        out.extend_from_slice(piece);
        left -= piece.len();
    }
    out
}

/// Writes the XML declaration, the `<status>` element and its clients.
pub fn render(sessions: &[Session], out: &mut dyn Write) -> io::Result<()> {
    out.write_all(b"<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?>\n<status>\n")?;
    for s in sessions {
        line(s, out)?;
    }
    out.write_all(b"</status>\n")
}

fn attr(out: &mut dyn Write, name: &str, value: &[u8]) -> io::Result<()> {
    write!(out, " {name}=\"")?;
    out.write_all(&escape(value))?;
    out.write_all(b"\"")
}

fn line(s: &Session, out: &mut dyn Write) -> io::Result<()> {
    write!(out, "  <client pid=\"{}\"", s.entry.pid as i64 as u64)?;
    attr(out, "account", &s.entry.account)?;
    write!(out, " time=\"{}\" state=\"{}\"", s.since, s.state_label())?;
    attr(out, "file", &s.entry.filename)?;
    attr(out, "host", &s.host)?;
    attr(out, "localhost", &s.local_host)?;
    attr(out, "localport", &s.local_port)?;
    let (current, restart, total) = (s.current_size, s.restart_at, s.total_size);
    if current > 0 {
        let bandwidth = if current > restart {
            per_second(current, restart, s.xfer_since)
        } else {
            0
        };
        write!(
            out,
            " resume=\"{}\" current_size=\"{}\"",
            restart as u64, current as u64
        )?;
        if total > 0 {
            write!(
                out,
                " total_size=\"{}\" percentage=\"{}\"",
                total as u64,
                percentage(current, total)
            )?;
        }
        write!(out, " bandwidth=\"{bandwidth}\"")?;
    }
    out.write_all(b" />\n")
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_like_c() {
        assert_eq!(escape(b"a<b>&c"), b"a&lt;b&gt;&amp;c");
        assert_eq!(escape(b"\x01\x1f\x7f\x80\xe9|\\"), b"???\x80\xe9|\\");
        assert_eq!(escape(b""), b"");
    }

    #[test]
    fn cuts_at_the_c_buffer() {
        // 4127 bytes of room: 825 "&amp;" fill 4125, the 826th does not fit.
        let out = escape(&[b'&'; 1000]);
        assert_eq!(out.len(), 4125);
        // Plain bytes fill it exactly.
        assert_eq!(escape(&[b'a'; 5000]).len(), 4127);
        // "&lt;" fits in 4 bytes: 1031 of them take 4124, then "ab" and
        // one more byte fill the rest.
        let mut s = vec![b'<'; 1031];
        s.extend_from_slice(b"abcd");
        let out = escape(&s);
        assert_eq!(out.len(), 4127);
        assert!(out.ends_with(b"&lt;abc"));
    }
}
