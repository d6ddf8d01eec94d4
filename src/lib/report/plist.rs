//! Apple / GNUstep property list (`-p`): a `user-info` array of
//! dictionaries, every value a `<string>`.

use std::io::{self, Write};

use super::calc::{per_second, percentage};
use super::xml::escape;
use super::Session;

/// Writes the plist header, one dictionary per session and the footer.
pub fn render(sessions: &[Session], out: &mut dyn Write) -> io::Result<()> {
    out.write_all(
        b"<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?>\n\
          <!DOCTYPE plist PUBLIC \"-//Apple Computer//DTD PLIST 1.0//EN\" \
          \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
          <plist version=\"1.0\">\n<dict>\n\
          \t<key>user-info</key>\n\t<array>\n",
    )?;
    for s in sessions {
        dict(s, out)?;
    }
    out.write_all(b"\t</array>\n</dict>\n</plist>\n")
}

fn pair(out: &mut dyn Write, key: &str, value: &[u8]) -> io::Result<()> {
    write!(out, "\t\t\t<key>{key}</key>\n\t\t\t<string>")?;
    out.write_all(value)?;
    out.write_all(b"</string>\n")
}

fn dict(s: &Session, out: &mut dyn Write) -> io::Result<()> {
    let num = |n: &dyn std::fmt::Display| n.to_string().into_bytes();
    out.write_all(b"\t\t<dict>\n")?;
    pair(out, "pid", &num(&(s.entry.pid as i64 as u64)))?;
    pair(out, "account", &escape(&s.entry.account))?;
    pair(out, "time", &num(&s.since))?;
    pair(out, "state", s.state_label().as_bytes())?;
    pair(out, "file", &escape(&s.entry.filename))?;
    pair(out, "host", &escape(&s.host))?;
    pair(out, "localhost", &escape(&s.local_host))?;
    pair(out, "localport", &escape(&s.local_port))?;
    let (current, restart, total) = (s.current_size, s.restart_at, s.total_size);
    if current > 0 {
        let bandwidth = if current > restart {
            per_second(current, restart, s.xfer_since)
        } else {
            0
        };
        pair(out, "resume", &num(&(restart as u64)))?;
        pair(out, "current_size", &num(&(current as u64)))?;
        if total > 0 {
            pair(out, "total_size", &num(&(total as u64)))?;
            pair(out, "percentage", &num(&percentage(current, total)))?;
        }
        pair(out, "bandwidth", &num(&bandwidth))?;
    } else {
        for key in [
            "resume",
            "current_size",
            "total_size",
            "percentage",
            "bandwidth",
        ] {
            pair(out, key, b"")?;
        }
    }
    out.write_all(b"\t\t</dict>\n")
}
