//! The ASCII table, `pure-ftpwho`'s default (`-v` for verbose).
//!
//! Names are printed as raw bytes without escaping, padded and cut by
//! bytes, as C's `printf` does.

use std::io::{self, Write};

use super::calc::kib;
use super::{push_u64, Format, Session};

const RULE: &[u8] =
    b"+------+---------+-------+------+-------------------------------------------+\n";

/// Writes the table header, one block per session and the footer.
pub fn render(sessions: &[Session], verbose: bool, out: &mut dyn Write) -> io::Result<()> {
    let format = if verbose {
        Format::Verbose
    } else {
        Format::Text
    };
    super::render(format, sessions, out)
}

pub(crate) fn header(verbose: bool, out: &mut Vec<u8>) {
    out.push(b'\n');
    out.extend_from_slice(RULE);
    if verbose {
        out.extend_from_slice(
            b"| PID  |  Login  |For/Spd| What |     File/Remote IP/Size(Kb)/Local IP      |\n",
        );
    } else {
        out.extend_from_slice(
            b"| PID  |  Login  |For/Spd| What |                 File/IP                   |\n",
        );
    }
    out.extend_from_slice(RULE);
}

/// `bytes` left-justified in `width` bytes (`%-Ns`).
fn left(out: &mut Vec<u8>, bytes: &[u8], width: usize) {
    out.extend_from_slice(bytes);
    pad(out, width.saturating_sub(bytes.len()));
}

/// At most `width` bytes of `bytes`, right-justified (`%N.Ns`).
fn right_cut(out: &mut Vec<u8>, bytes: &[u8], width: usize) {
    let bytes = &bytes[..bytes.len().min(width)];
    pad(out, width - bytes.len());
    out.extend_from_slice(bytes);
}

/// At most `width` bytes of `bytes`, left-justified (`%-N.Ns`).
fn left_cut(out: &mut Vec<u8>, bytes: &[u8], width: usize) {
    let bytes = &bytes[..bytes.len().min(width)];
    left(out, bytes, width);
}

fn pad(out: &mut Vec<u8>, n: usize) {
    out.resize(out.len() + n, b' ');
}

/// `n` right-justified in `width` (`%Nlu`), or zero-padded (`%0Nlu`).
fn number(out: &mut Vec<u8>, n: u64, width: usize, fill: u8) {
    let mut digits = Vec::with_capacity(20);
    push_u64(&mut digits, n);
    out.resize(out.len() + width.saturating_sub(digits.len()), fill);
    out.extend_from_slice(&digits);
}

/// The `For/Spd` speed cell: `%4lu` and a unit, or `''` when zero or
/// beyond 1023 G/s.
fn speed(out: &mut Vec<u8>, bandwidth: u64) {
    if bandwidth > 0 {
        let mut value = bandwidth;
        for unit in [b'b', b'K', b'M', b'G'] {
            if value < 1024 {
                number(out, value, 4, b' ');
                out.extend_from_slice(&[unit, b'/', b's', b'|']);
                return;
            }
            value /= 1024;
        }
    }
    out.extend_from_slice(b"   ''  |");
}

pub(crate) fn session(s: &Session, verbose: bool, out: &mut Vec<u8>) {
    let (current, total) = (s.current_size, s.total_size);
    let bandwidth = s.bandwidth(1);
    // Unlike the other formats, C shows no percentage for a transfer that
    // has not passed its restart offset.
    let pct = if s.past_restart() {
        s.percentage().unwrap_or(0)
    } else {
        0
    };
    out.push(b'|');
    number(out, s.entry.pid as i64 as u64, 5, b' ');
    out.extend_from_slice(b" | ");
    left(out, &s.entry.account, 8);
    out.extend_from_slice(b"| ");
    number(out, (s.since / 60) / 60, 2, b'0');
    out.push(b':');
    number(out, (s.since / 60) % 60, 2, b'0');
    out.extend_from_slice(b" | ");
    out.extend_from_slice(s.state_label().as_bytes());
    out.extend_from_slice(b" | ");
    left(out, &s.entry.filename, 42);
    out.extend_from_slice(b"|\n|  ''  |    ''   |");
    speed(out, bandwidth);
    if pct > 0 {
        out.push(b' ');
        number(out, pct as u64, 3, b' ');
        out.extend_from_slice(b"% |");
    } else {
        out.extend_from_slice(b"  ''  |");
    }
    out.extend_from_slice(b" ->");
    right_cut(out, &s.host, 39);
    out.extend_from_slice(b" |\n");
    if verbose {
        if current > 0 {
            out.extend_from_slice(b"|  ''  |    ''   |       |      | ");
            if total > 0 {
                out.extend_from_slice(b"Total size:");
                number(out, kib(total), 9, b' ');
                out.extend_from_slice(b" Transferred:");
                number(out, kib(current), 9, b' ');
            } else {
                out.extend_from_slice(b"Transferred: ");
                let mut digits = Vec::with_capacity(20);
                push_u64(&mut digits, kib(current));
                left(out, &digits, 29);
            }
            out.extend_from_slice(b" |\n");
        }
        out.extend_from_slice(b"|  ''  |    ''   |       |      | <-");
        right_cut(out, &s.local_host, 33);
        out.push(b':');
        left_cut(out, &s.local_port, 5);
        out.extend_from_slice(b" |\n");
    }
    out.extend_from_slice(RULE);
}
