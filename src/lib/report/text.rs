//! The ASCII table, `pure-ftpwho`'s default (`-v` for verbose).
//!
//! Names are printed as raw bytes without escaping, padded and cut by
//! bytes, as C's `printf` does.

use std::io::{self, Write};

use super::calc::{kib, per_second, percentage};
use super::Session;

const RULE: &[u8] =
    b"+------+---------+-------+------+-------------------------------------------+\n";

/// Writes the table header, one block per session and the footer.
pub fn render(sessions: &[Session], verbose: bool, out: &mut dyn Write) -> io::Result<()> {
    header(verbose, out)?;
    for s in sessions {
        line(s, verbose, out)?;
    }
    out.write_all(b"\n")
}

fn header(verbose: bool, out: &mut dyn Write) -> io::Result<()> {
    out.write_all(b"\n")?;
    out.write_all(RULE)?;
    if verbose {
        out.write_all(
            b"| PID  |  Login  |For/Spd| What |     File/Remote IP/Size(Kb)/Local IP      |\n",
        )?;
    } else {
        out.write_all(
            b"| PID  |  Login  |For/Spd| What |                 File/IP                   |\n",
        )?;
    }
    out.write_all(RULE)
}

/// `bytes` left-justified in `width` bytes (`%-Ns`).
fn left(out: &mut dyn Write, bytes: &[u8], width: usize) -> io::Result<()> {
    out.write_all(bytes)?;
    pad(out, width.saturating_sub(bytes.len()))
}

/// At most `width` bytes of `bytes`, right-justified (`%N.Ns`).
fn right_cut(out: &mut dyn Write, bytes: &[u8], width: usize) -> io::Result<()> {
    let bytes = &bytes[..bytes.len().min(width)];
    pad(out, width - bytes.len())?;
    out.write_all(bytes)
}

/// At most `width` bytes of `bytes`, left-justified (`%-N.Ns`).
fn left_cut(out: &mut dyn Write, bytes: &[u8], width: usize) -> io::Result<()> {
    let bytes = &bytes[..bytes.len().min(width)];
    left(out, bytes, width)
}

fn pad(out: &mut dyn Write, n: usize) -> io::Result<()> {
    const SPACES: [u8; 64] = [b' '; 64];
    let mut n = n;
    while n > 0 {
        let k = n.min(SPACES.len());
        out.write_all(&SPACES[..k])?;
        n -= k;
    }
    Ok(())
}

/// The `For/Spd` speed cell: `%4lu` and a unit, or `''` when zero or
/// beyond 1023 G/s.
fn speed(out: &mut dyn Write, bandwidth: u64) -> io::Result<()> {
    if bandwidth == 0 {
        return out.write_all(b"   ''  |");
    }
    let mut value = bandwidth;
    for unit in ["b", "K", "M", "G"] {
        if value < 1024 {
            return write!(out, "{value:4}{unit}/s|");
        }
        value /= 1024;
    }
    out.write_all(b"   ''  |")
}

fn line(s: &Session, verbose: bool, out: &mut dyn Write) -> io::Result<()> {
    let (current, restart, total) = (s.current_size, s.restart_at, s.total_size);
    let mut bandwidth = 0;
    let mut pct = 0;
    if current > 0 && current > restart {
        bandwidth = per_second(current, restart, s.xfer_since);
        if total > 0 {
            pct = percentage(current, total);
        }
    }
    write!(out, "|{:5} | ", s.entry.pid as i64 as u64)?;
    left(out, &s.entry.account, 8)?;
    write!(
        out,
        "| {:02}:{:02} | {} | ",
        (s.since / 60) / 60,
        (s.since / 60) % 60,
        s.state_label()
    )?;
    left(out, &s.entry.filename, 42)?;
    out.write_all(b"|\n|  ''  |    ''   |")?;
    speed(out, bandwidth)?;
    if pct > 0 {
        write!(out, " {pct:3}% |")?;
    } else {
        out.write_all(b"  ''  |")?;
    }
    out.write_all(b" ->")?;
    right_cut(out, &s.host, 39)?;
    out.write_all(b" |\n")?;
    if verbose {
        if current > 0 {
            if total > 0 {
                writeln!(
                    out,
                    "|  ''  |    ''   |       |      | Total size:{:9} Transferred:{:9} |",
                    kib(total),
                    kib(current)
                )?;
            } else {
                writeln!(
                    out,
                    "|  ''  |    ''   |       |      | Transferred: {:<29} |",
                    kib(current)
                )?;
            }
        }
        out.write_all(b"|  ''  |    ''   |       |      | <-")?;
        right_cut(out, &s.local_host, 33)?;
        out.write_all(b":")?;
        left_cut(out, &s.local_port, 5)?;
        out.write_all(b" |\n")?;
    }
    out.write_all(RULE)
}
