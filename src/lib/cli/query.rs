//! `ftpwho-query`: the client of `ftpwhod`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgGroup, CommandFactory, FromArgMatches, Parser};

use super::format::{FormatFlags, HEADING as FORMAT_HEADING};
use crate::ftpwho::query::client::{ClientError, DEFAULT_SOCKET};
use crate::ftpwho::query::protocol::{Op, Request};
use crate::ftpwho::report::Format;
use crate::ftpwho::scoreboard::State;

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// When control bytes of the answer are shown as visible escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Escape {
    /// When the standard output is a terminal.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never: the exact bytes, as pure-ftpwho prints them.
    Never,
}

impl Escape {
    /// True when the output is to be escaped, `terminal` saying whether
    /// the standard output is a terminal.
    pub fn applies(self, terminal: bool) -> bool {
        match self {
            Escape::Auto => terminal,
            Escape::Always => true,
            Escape::Never => false,
        }
    }
}

/// Makes control characters visible, as `ls` does on a terminal: C0
/// controls but the newline, DEL and C1 controls (as characters, or as
/// bytes that are not UTF-8) become `\xNN`, and a backslash `\\`, so
/// that a name cannot move the cursor, clear the screen, ring the bell or
/// rewrite the terminal's title. Other bytes are kept.
pub fn escape_controls(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let hex = |out: &mut Vec<u8>, b: u8| {
        out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
    };
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push(b'\n'),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\0'..='\x1f' | '\x7f' => hex(&mut out, c as u8),
                '\u{80}'..='\u{9f}' => {
                    out.extend_from_slice(format!("\\u{{{:x}}}", c as u32).as_bytes())
                }
                c => {
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
        for &b in chunk.invalid() {
            if (0x80..0xa0).contains(&b) {
                hex(&mut out, b);
            } else {
                out.push(b);
            }
        }
    }
    out
}

/// The exit status of `ftpwho-query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The responder answered with an error, the answer was not
    /// understood, or the output could not be written.
    Error = 1,
    /// Invalid option.
    Usage = 2,
    /// Nothing answers at the socket.
    Connect = 3,
    /// The socket or the responder refused us.
    Denied = 4,
}

impl Exit {
    /// Every status, as `--help` lists them.
    pub const ALL: [Exit; 5] = [
        Exit::Ok,
        Exit::Error,
        Exit::Usage,
        Exit::Connect,
        Exit::Denied,
    ];

    /// The status as a number.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<&ClientError> for Exit {
    fn from(error: &ClientError) -> Exit {
        match error {
            ClientError::Connect { .. } => Exit::Connect,
            ClientError::PermissionDenied(_) => Exit::Denied,
            ClientError::Server(_) | ClientError::Transport { .. } => Exit::Error,
        }
    }
}

const AFTER_HELP: &str = "\
Format options:
  As in pure-ftpwho, the last format option given wins (-s -x prints XML),
  and -c/-C make a later -w or -W print the CGI table, -W a later -w the
  embedded table. --json and --openmetrics are format options too. With
  none, the text table (verbose with -v), or a CGI HTML page when
  GATEWAY_INTERFACE is set (run by a web server), as pure-ftpwho does.

Control bytes:
  Account and file names are chosen by FTP users. On a terminal, control
  characters in the answer (but newlines) are shown as visible escapes,
  as ls shows them: \x1b for ESC, \x07 for BEL, \x0d for CR, \\ for a
  backslash. Piped or redirected, the exact bytes are written, as
  pure-ftpwho writes them; --escape=always or --escape=never decides
  instead.

Exit status:
  0  success
  1  the responder answered with an error, or with an answer that could
     not be understood; or the output could not be written
  2  invalid option
  3  cannot connect to the responder (is pure-ftpwho.socket running?)
  4  permission denied: only root and the members of the responder's
     group (usually ftpwho) may query";

/// Shows who is connected to Pure-FTPd, as pure-ftpwho does, by asking the
/// ftpwhod responder: no root needed, membership of the ftpwho group is
/// enough.
///
/// The format options are those of pure-ftpwho, resolved as it resolves
/// them (the last one wins); the output of each is byte for byte what
/// pure-ftpwho prints for the same scoreboard.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ftpwho-query",
    version,
    after_help = AFTER_HELP,
    args_override_self = true
)]
#[command(group(ArgGroup::new("operation").args(["count", "ping", "stats"])))]
pub struct Args {
    /// The responder's socket.
    #[arg(long, value_name = "PATH", env = "FTPWHO_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,

    /// The format options of pure-ftpwho.
    #[command(flatten)]
    pub format: FormatFlags,

    /// Output OpenMetrics text, for Prometheus.
    #[arg(long, help_heading = FORMAT_HEADING)]
    pub openmetrics: bool,

    /// Don't resolve host names, only show IP addresses (-H is a synonym).
    #[arg(short = 'n', short_alias = 'H')]
    pub numeric: bool,

    /// Print how many sessions USER has (case-insensitive, as the server
    /// counts them).
    #[arg(long, value_name = "USER")]
    pub count: Option<String>,

    /// Check that the responder answers, and print its version.
    #[arg(long)]
    pub ping: bool,

    /// Print the responder's counters and a summary of the scoreboard
    /// (JSON with --json).
    #[arg(long)]
    pub stats: bool,

    /// Only the sessions of USER (exact match; may be repeated).
    #[arg(long = "user", value_name = "USER", conflicts_with = "count")]
    pub users: Vec<String>,

    /// Only the sessions in STATE: idle, download or upload (may be
    /// repeated or comma-separated).
    #[arg(
        long = "state",
        value_name = "STATE",
        value_enum,
        value_delimiter = ','
    )]
    pub states: Vec<State>,

    /// Refresh every SECONDS: in a terminal, clear the screen and redraw;
    /// otherwise print each result in turn (batch mode). Stops at the first
    /// error, with its exit status.
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub watch: Option<f64>,

    /// With --watch, stop after N refreshes.
    #[arg(long, value_name = "N", requires = "watch")]
    pub iterations: Option<u64>,

    /// Show control characters of the answer as visible escapes (\x1b,
    /// \\): auto on a terminal, always, or never (the exact bytes).
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = Escape::Auto)]
    pub escape: Escape,

    /// Seconds to wait for the responder.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = positive_seconds)]
    pub timeout: f64,

    /// True when `GATEWAY_INTERFACE` is set: with no format option, the
    /// output is a CGI HTML page (set by the binary).
    #[arg(skip)]
    pub gateway_interface: bool,
}

impl Args {
    /// Parses `argv` (program name first), recording the order of the
    /// format options.
    pub fn parse_ordered<I, T>(argv: I) -> Result<Args, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = Args::command().try_get_matches_from(argv)?;
        let mut args = Args::from_arg_matches(&matches)?;
        args.format.read_order(&matches);
        Ok(args)
    }

    /// The format to ask for, and whether to print a CGI header before
    /// it: pure-ftpwho's choice, by the same code.
    pub fn output(&self) -> (Format, bool) {
        self.format.choose(self.gateway_interface)
    }

    /// The output format the flags select.
    pub fn format(&self) -> Format {
        self.output().0
    }

    /// True when the answer of `list` is to be printed after a CGI header
    /// (`-c`, `-C`, or `GATEWAY_INTERFACE` with an HTML format), as
    /// pure-ftpwho prints it.
    pub fn cgi_header(&self) -> bool {
        self.op() == Op::List && self.output().1
    }

    /// The operation the flags select.
    pub fn op(&self) -> Op {
        if self.count.is_some() {
            Op::Count
        } else if self.ping {
            Op::Ping
        } else if self.stats {
            Op::Stats
        } else {
            Op::List
        }
    }

    /// The request to send.
    pub fn request(&self) -> Request {
        let op = self.op();
        Request {
            format: (op == Op::List).then(|| self.format()),
            users: match &self.count {
                Some(user) => vec![user.clone()],
                None => self.users.clone(),
            },
            states: self.states.clone(),
            numeric: self.numeric,
            ..Request::new(op)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ftpwho;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::parse_ordered(std::iter::once("ftpwho-query").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn help_lists_every_exit_status_and_the_format_rule() {
        let help = Args::command().render_long_help().to_string();
        for exit in Exit::ALL {
            assert!(
                help.contains(&format!("\n  {}  ", exit.code())),
                "exit status {exit:?} missing"
            );
        }
        for text in [
            "-c",
            "-C",
            "-w",
            "-W",
            "--openmetrics",
            "the last format option given wins",
        ] {
            assert!(help.contains(text), "{text} missing from --help");
        }
        assert_eq!(
            parse(&["--bogus"]).unwrap_err().exit_code(),
            i32::from(Exit::Usage.code())
        );
    }

    #[test]
    fn flags_map_to_requests() {
        let a = parse(&["-s", "-H", "--user", "bob", "--state", "upload"]).unwrap();
        assert_eq!(
            a.request(),
            Request {
                format: Some(Format::Shell),
                users: vec!["bob".into()],
                states: vec![State::Upload],
                numeric: true,
                ..Request::new(Op::List)
            }
        );
        assert_eq!(parse(&["-v"]).unwrap().format(), Format::Verbose);
        assert_eq!(parse(&["-W"]).unwrap().format(), Format::HtmlEmbedded);
        assert_eq!(parse(&[]).unwrap().format(), Format::Text);
        assert_eq!(
            parse(&["--openmetrics"]).unwrap().format(),
            Format::Openmetrics
        );
        let count = parse(&["--count", "alice"]).unwrap().request();
        assert_eq!(
            (count.op, &count.users[..]),
            (Op::Count, &["alice".into()][..])
        );
        assert_eq!(count.format, None);
        assert_eq!(parse(&["--ping"]).unwrap().op(), Op::Ping);
    }

    #[test]
    fn users_and_states_repeat_as_in_pure_ftpwho() {
        let a = parse(&[
            "--user",
            "bob",
            "--state",
            "idle,upload",
            "--user=eve",
            "--state",
            "download",
        ])
        .unwrap();
        assert_eq!(a.users, ["bob", "eve"]);
        assert_eq!(a.states, [State::Idle, State::Upload, State::Download]);
        let request = a.request();
        assert_eq!((request.users, request.states), (a.users, a.states));
        assert!(parse(&["--state", "idle,busy"]).is_err());
    }

    #[test]
    fn client_errors_map_to_exit_statuses() {
        use crate::ftpwho::query::protocol::{ErrorCode, ProtocolError};
        let connect = ClientError::Connect {
            path: "s".into(),
            source: std::io::ErrorKind::NotFound.into(),
        };
        assert_eq!(Exit::from(&connect), Exit::Connect);
        let denied = ClientError::PermissionDenied("no".into());
        assert_eq!(Exit::from(&denied), Exit::Denied);
        let server = ClientError::Server(ProtocolError::new(ErrorCode::Busy, "busy"));
        assert_eq!(Exit::from(&server), Exit::Error);
        let transport = ClientError::Transport {
            path: "s".into(),
            message: "cut".into(),
        };
        assert_eq!(Exit::from(&transport), Exit::Error);
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4]);
    }

    /// The C tool's option loop, word by word: each format option sets the
    /// format, -c/-C also set CGI and embedded mode, -W embedded mode.
    fn c_getopt_model(words: &[&str], gateway_interface: bool) -> (Format, bool) {
        let (mut last, mut cgi, mut embedded, mut verbose) = (None, false, false, false);
        for word in words {
            match *word {
                "-c" | "-C" => (last, cgi, embedded) = (Some(Format::Html), true, true),
                "-w" => last = Some(Format::Html),
                "-W" => (last, embedded) = (Some(Format::Html), true),
                "-x" => last = Some(Format::Xml),
                "-p" => last = Some(Format::Plist),
                "-s" => last = Some(Format::Shell),
                "--json" => last = Some(Format::Json),
                "-v" => verbose = true,
                other => panic!("not a format option: {other}"),
            }
        }
        let html = if embedded {
            Format::HtmlEmbedded
        } else {
            Format::Html
        };
        match last {
            Some(Format::Html) => (html, cgi || gateway_interface),
            Some(other) => (other, false),
            None if gateway_interface => (html, true),
            None if verbose => (Format::Verbose, false),
            None => (Format::Text, false),
        }
    }

    /// Every combination of up to three format options (and -v, and the
    /// CGI variable) selects what pure-ftpwho selects for the same words.
    #[test]
    fn format_options_resolve_as_pure_ftpwho_resolves_them() {
        let flags = ["-c", "-C", "-w", "-W", "-x", "-p", "-s", "--json", "-v"];
        let mut lines: Vec<Vec<&str>> = vec![vec![]];
        let mut level = lines.clone();
        for _ in 0..3 {
            level = level
                .iter()
                .flat_map(|l| {
                    flags.iter().map(move |f| {
                        let mut l = l.clone();
                        l.push(f);
                        l
                    })
                })
                .collect();
            lines.extend(level.iter().cloned());
        }
        assert_eq!(lines.len(), 1 + 9 + 81 + 729);
        for line in &lines {
            for gateway_interface in [false, true] {
                let c = ftpwho::Args::parse_ordered(
                    std::iter::once("pure-ftpwho").chain(line.iter().copied()),
                )
                .unwrap()
                .format(gateway_interface);
                let mut q = parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
                q.gateway_interface = gateway_interface;
                let expected = c_getopt_model(line, gateway_interface);
                assert_eq!(c, expected, "pure-ftpwho {line:?} {gateway_interface}");
                assert_eq!(q.output(), expected, "{line:?} {gateway_interface}");
            }
        }
        let format = |args: &[&str]| parse(args).unwrap().output();
        assert_eq!(format(&["-s", "-x"]), (Format::Xml, false));
        assert_eq!(format(&["-w", "-W"]), (Format::HtmlEmbedded, false));
        assert_eq!(format(&["-W", "-w"]), (Format::HtmlEmbedded, false));
        assert_eq!(format(&["-c"]), (Format::HtmlEmbedded, true));
        assert_eq!(format(&["-c", "-s"]), (Format::Shell, false));
        // --openmetrics is a format option too: the last one wins.
        assert_eq!(
            format(&["-s", "--openmetrics"]),
            (Format::Openmetrics, false)
        );
        assert_eq!(format(&["--openmetrics", "-s"]), (Format::Shell, false));
        assert_eq!(
            format(&["--json", "--openmetrics"]),
            (Format::Openmetrics, false)
        );
        assert_eq!(format(&["--openmetrics", "--json"]), (Format::Json, false));
        assert_eq!(
            format(&["-c", "--openmetrics", "-w"]),
            (Format::HtmlEmbedded, true)
        );
        // The CGI header is for listings only.
        assert!(parse(&["-c"]).unwrap().cgi_header());
        assert!(!parse(&["-c", "--count", "bob"]).unwrap().cgi_header());
    }

    #[test]
    fn control_bytes_are_made_visible() {
        assert_eq!(
            escape_controls(b"a\x1b]0;owned\x07b\rc\\d\n\tcaf\xe9\xc2\x9b\x9b\x7f\xc3\xa9\n"),
            b"a\\x1b]0;owned\\x07b\\x0dc\\\\d\n\\x09caf\xe9\\u{9b}\\x9b\\x7f\xc3\xa9\n"
        );
        assert_eq!(escape_controls(b"plain text\n"), b"plain text\n");
        assert_eq!(parse(&[]).unwrap().escape, Escape::Auto);
        assert_eq!(parse(&["--escape=never"]).unwrap().escape, Escape::Never);
        assert!(Escape::Auto.applies(true) && !Escape::Auto.applies(false));
        assert!(Escape::Always.applies(false) && !Escape::Never.applies(true));
        let help = Args::command().render_long_help().to_string();
        assert!(help.contains("--escape"), "{help}");
        assert!(help.contains("visible escapes"), "{help}");
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["--ping", "--stats"][..],
            &["--state", "sleeping"],
            &["--watch", "0"],
            &["--watch", "-1"],
            &["--iterations", "3"],
            &["--count", "a", "--user", "b"],
            &["-z"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }
}
