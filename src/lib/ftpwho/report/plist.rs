//! Apple / GNUstep property list (`-p`): a `user-info` array of
//! dictionaries, every value a `<string>`.

use std::io::{self, Write};

use super::{Format, Session};

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

pub(crate) fn session(s: &Session, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\t\t<dict>\n");
    super::named_fields(s, out, key, END);
    if s.current_size <= 0 {
        // C lists the transfer keys with empty values.
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
