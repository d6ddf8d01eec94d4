//! HTML: a full XHTML page (`-w`), the table alone for embedding (`-W`),
//! either after a CGI header (`-c`, or `GATEWAY_INTERFACE` set).

use std::io::{self, Write};

use super::calc::kib;
use super::xml::escape_into;
use super::{push_u64, Format, Report, Session};

const PAGE_HEAD: &str = r#"<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN"
          "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en">
<head>
 <meta http-equiv="Content-Type"
       content="text/html; charset=ISO-8859-15" />
 <title>Pure-FTPd server status</title>
 <style type="text/css">
html {
 background-color: #369;
}
body {
 background-color: #fff;
 color: #000;
 margin: 12px;
 padding: 8px;
 border: 2px solid #000;
 font-family: "Trebuchet MS",Verdana,Geneva,Arial,Helvetica,sans-serif;
 font-size: 0.8em;
}
h1 {
 text-align: center;
 border-bottom: 1px solid #666;
 margin: 0.5em 1em;
}
#ftp-status {
 text-align: center;
}
table {
 margin: 0 auto;
}
thead th {
 background-color: #369;
 color: #fff;
}
th,td {
 padding: 0.1em 0.5em;
}
tr:hover {
 background-color: #def;
}
 </style>
</head>
<body>
<h1>Pure-FTPd server status</h1>
"#;

const TABLE_HEAD: &str = r#"<div id="ftp-status">
 <table summary="Pure-FTPd server status">
  <thead>
   <tr>
    <th scope="col">PID</th>
    <th scope="col">Account</th>
    <th scope="col">Time</th>
    <th scope="col">State</th>
    <th scope="col" abbr="File">File name</th>
    <th scope="col" abbr="Peer">Remote host</th>
    <th scope="col" abbr="Kb">Kbytes</th>
    <th scope="col" abbr="Local">Local host</th>
   </tr>
  </thead>
  <tbody>
"#;

const TABLE_FOOT: &str = "  </tbody>\n </table>\n</div>\n";
const PAGE_FOOT: &str = "</body>\n</html>\n";

/// Writes the (CGI header,) page head, table and page foot.
pub fn render(
    sessions: &[Session],
    cgi: bool,
    embedded: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    let format = if embedded {
        Format::HtmlEmbedded
    } else {
        Format::Html
    };
    let mut report = Report::new(format, out).with_cgi_header(cgi);
    for s in sessions {
        report.session(s)?;
    }
    report.finish()
}

/// What CGI mode prints before the HTML (`-c`, or `GATEWAY_INTERFACE`).
pub const CGI_HEADER: &str = "Content-Type: text/html\n\n";

pub(crate) fn header(embedded: bool, out: &mut Vec<u8>) {
    if !embedded {
        out.extend_from_slice(PAGE_HEAD.as_bytes());
    }
    out.extend_from_slice(TABLE_HEAD.as_bytes());
}

pub(crate) fn footer(embedded: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(TABLE_FOOT.as_bytes());
    if !embedded {
        out.extend_from_slice(PAGE_FOOT.as_bytes());
    }
}

/// A `<td>` holding the escaped bytes, or `&nbsp;` when empty.
fn cell_or_blank(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(b"    <td>");
    if value.is_empty() {
        out.extend_from_slice(b"&nbsp;");
    } else {
        escape_into(value, out);
    }
    out.extend_from_slice(b"</td>\n");
}

fn cell(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(b"    <td>");
    escape_into(value, out);
    out.extend_from_slice(b"</td>\n");
}

pub(crate) fn session(s: &Session, out: &mut Vec<u8>) {
    out.extend_from_slice(b"   <tr>\n    <th scope=\"row\">");
    push_u64(out, s.entry.pid as i64 as u64);
    out.extend_from_slice(b"</th>\n");
    cell_or_blank(out, &s.entry.account);
    let _ = writeln!(
        out,
        "    <td>{:02}:{:02}</td>",
        (s.since / 60) / 60,
        (s.since / 60) % 60
    );
    cell(out, s.state_label().as_bytes());
    cell_or_blank(out, &s.entry.filename);
    cell(out, &s.host);
    let current = s.current_size;
    if current > 0 {
        let bandwidth = s.bandwidth(1024);
        if let Some(pct) = s.percentage() {
            let _ = writeln!(
                out,
                "    <td>{}/{} ({pct}% - {bandwidth} KB/s)</td>",
                kib(current),
                kib(s.total_size),
            );
        } else {
            let _ = writeln!(out, "    <td>{} ({bandwidth} KB/s)</td>", kib(current));
        }
    } else {
        out.extend_from_slice(b"    <td>&nbsp;</td>\n");
    }
    out.extend_from_slice(b"    <td>");
    escape_into(&s.local_host, out);
    out.push(b':');
    escape_into(&s.local_port, out);
    out.extend_from_slice(b"</td>\n   </tr>\n");
}
