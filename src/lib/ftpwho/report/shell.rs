//! One line per session for scripts (`-s`):
//! `pid|acct|time|state|file|peer|local|port|current|total|%|bandwidth`,
//! sizes in KiB, bandwidth in KiB/s.

use std::io::{self, Write};

use super::calc::kib;
use super::{is_ctrl, push_i64, push_u64, Format, Session, ESCAPE_BUF};

/// C's `shell_escaped`: control bytes become `_`, `|` and `\` get a
/// backslash, other bytes pass unchanged. The result is cut to fit C's
/// 4127-byte buffer, and an escape pair that would straddle its end is
/// dropped whole.
pub fn escape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 4);
    escape_into(s, &mut out);
    out
}

/// [`escape`], appending to `out`.
pub fn escape_into(s: &[u8], out: &mut Vec<u8>) {
    const SPECIAL: [bool; 256] = super::special_bytes(b"|\\");
    if s.len() < ESCAPE_BUF - 1 && !s.iter().any(|&b| SPECIAL[usize::from(b)]) {
        out.extend_from_slice(s);
        return;
    }
    // C's buffer starts at `base`; its last byte, where the terminating
    // NUL goes, is `base + last`.
    let base = out.len();
    let last = ESCAPE_BUF - 1;
    for &b in s {
        let at = out.len() - base;
        if is_ctrl(b) {
            out.push(b'_');
        } else if b == b'|' || b == b'\\' {
            if at == last {
                break;
            }
            out.push(b'\\');
            if at + 1 == last {
                out.pop();
                break;
            }
            out.push(b);
        } else {
            out.push(b);
        }
        if out.len() - base - 1 == last {
            // C wrote at its end position and stops there: the NUL
            // overwrites that byte.
            out.pop();
            break;
        }
    }
}

/// Writes one line per session (no header, no footer).
pub fn render(sessions: &[Session], out: &mut dyn Write) -> io::Result<()> {
    super::render(Format::Shell, sessions, out)
}

fn field(out: &mut Vec<u8>, value: &[u8]) {
    escape_into(value, out);
    out.push(b'|');
}

pub(crate) fn session(s: &Session, out: &mut Vec<u8>) {
    push_u64(out, s.entry.pid as i64 as u64);
    out.push(b'|');
    field(out, &s.entry.account);
    push_u64(out, s.since);
    out.push(b'|');
    field(out, s.state_label().as_bytes());
    field(out, &s.entry.filename);
    field(out, &s.host);
    field(out, &s.local_host);
    field(out, &s.local_port);
    push_u64(out, kib(s.current_size));
    out.push(b'|');
    push_u64(out, kib(s.total_size));
    out.push(b'|');
    push_i64(out, i64::from(s.percentage().unwrap_or(0)));
    out.push(b'|');
    push_u64(out, s.bandwidth(1024));
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_like_c() {
        assert_eq!(escape(b"a|b\\c"), b"a\\|b\\\\c");
        assert_eq!(escape(b"\x01x\x7f\xe9<&>"), b"_x_\xe9<&>");
        assert_eq!(escape(b""), b"");
    }

    #[test]
    fn cuts_at_the_c_buffer() {
        // 4127 usable bytes: the 4128th byte lands on the end and is
        // replaced by the NUL.
        assert_eq!(escape(&[b'a'; 5000]).len(), 4127);
        assert_eq!(escape(&[b'a'; 4126]).len(), 4126);
        // Pairs from an even start: 2063 pairs fill 4126 bytes; the next
        // backslash would reach the end and goes with its byte.
        let out = escape(&[b'|'; 3000]);
        assert_eq!(out.len(), 4126);
        assert!(out.ends_with(b"|\\|"));
        // From an odd start the 2063 pairs end exactly at the end.
        let mut s = vec![b'a'];
        s.extend_from_slice(&[b'|'; 3000]);
        let out = escape(&s);
        assert_eq!(out.len(), 4127);
        assert!(out.ends_with(b"|\\|"));
        // A control byte at the end is cut like any byte.
        let mut s = vec![b'a'; 4127];
        s.push(1);
        assert_eq!(escape(&s), vec![b'a'; 4127]);
    }
}
