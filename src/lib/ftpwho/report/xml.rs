//! XML (`-x`): one `<client />` element per session.

use std::io::{self, Write};

use super::{is_ctrl, Format, Session, ESCAPE_BUF};

/// C's `xml_escaped`, also used for HTML and plists: control bytes become
/// `?`, `<`, `>` and `&` become entities, other bytes (Latin-1, UTF-8 or
/// broken) pass unchanged. Like C, the result is cut at the last whole
/// character that fits in its 4127-byte buffer.
pub fn escape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 8);
    escape_into(s, &mut out);
    out
}

/// [`escape`], appending to `out`.
pub fn escape_into(s: &[u8], out: &mut Vec<u8>) {
    const SPECIAL: [bool; 256] = super::special_bytes(b"<>&");
    if s.len() < ESCAPE_BUF && !s.iter().any(|&b| SPECIAL[usize::from(b)]) {
        out.extend_from_slice(s);
        return;
    }
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
}

/// Writes the XML declaration, the `<status>` element and its clients.
pub fn render(sessions: &[Session], out: &mut dyn Write) -> io::Result<()> {
    super::render(Format::Xml, sessions, out)
}

pub(crate) fn header(out: &mut Vec<u8>) {
    out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?>\n<status>\n");
}

fn open(out: &mut Vec<u8>, name: &[u8]) {
    out.push(b' ');
    out.extend_from_slice(name);
    out.extend_from_slice(b"=\"");
}

pub(crate) fn session(s: &Session, out: &mut Vec<u8>) {
    out.extend_from_slice(b"  <client");
    super::named_fields(s, out, open, b"\"");
    out.extend_from_slice(b" />\n");
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
