//! `ftpwho-query`: the client of `ftpwhod`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, CommandFactory, FromArgMatches, Parser};

use crate::cli::ftpwho::{choose_format, format_order, ChosenFormat, FormatOption, FORMAT_IDS};
use crate::ftpwho::query::protocol::{Op, OutputFormat, Request, StateName};
use crate::ftpwho::report::Format;

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: the responder answered with an error, the answer was not
/// understood, or the output could not be written.
pub const EXIT_ERROR: u8 = 1;
/// Exit status: invalid option.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: nothing answers at the socket.
pub const EXIT_CONNECT: u8 = 3;
/// Exit status: the socket or the responder refused us.
pub const EXIT_DENIED: u8 = 4;

const FORMAT_HEADING: &str = "Output format";

const AFTER_HELP: &str = "\
Format options:
  As in pure-ftpwho, the last format option given wins (-s -x prints XML),
  and -c/-C make a later -w or -W print the CGI table, -W a later -w the
  embedded table. --json and --openmetrics are format options too. With
  none, the text table (verbose with -v), or a CGI HTML page when
  GATEWAY_INTERFACE is set (run by a web server), as pure-ftpwho does.

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
    #[arg(long, value_name = "PATH", env = "FTPWHO_SOCKET", default_value = crate::ftpwho::query::client::DEFAULT_SOCKET)]
    pub socket: PathBuf,

    /// CGI mode: a `Content-Type: text/html` header, then the HTML table
    /// without the page around it (implies -W).
    #[arg(short = 'c', help_heading = FORMAT_HEADING)]
    pub cgi: bool,

    /// Same as -c.
    #[arg(short = 'C', help_heading = FORMAT_HEADING)]
    pub cgi_upper: bool,

    /// Easily parsable output for shell scripts:
    /// pid|acct|time|state|file|peer|local|port|current|total|%|bandwidth
    #[arg(short = 's', help_heading = FORMAT_HEADING)]
    pub shell: bool,

    /// Output XML data.
    #[arg(short = 'x', help_heading = FORMAT_HEADING)]
    pub xml: bool,

    /// Output an Apple / GNUstep property list.
    #[arg(short = 'p', help_heading = FORMAT_HEADING)]
    pub plist: bool,

    /// Output an HTML page (web mode).
    #[arg(short = 'w', help_heading = FORMAT_HEADING)]
    pub html: bool,

    /// Output HTML without header and footer (embedded mode; implies -w).
    #[arg(short = 'W', help_heading = FORMAT_HEADING)]
    pub html_embedded: bool,

    /// Verbose ASCII table (with sizes and local addresses), when no other
    /// format option is given.
    #[arg(short = 'v', help_heading = FORMAT_HEADING)]
    pub verbose: bool,

    /// Output JSON.
    #[arg(long, help_heading = FORMAT_HEADING)]
    pub json: bool,

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
        value_delimiter = ',',
        value_parser = PossibleValuesParser::new(["idle", "download", "upload"])
            .map(|s| s.parse::<StateName>().expect("one of the possible values"))
    )]
    pub states: Vec<StateName>,

    /// Refresh every SECONDS: in a terminal, clear the screen and redraw;
    /// otherwise print each result in turn (batch mode). Stops at the first
    /// error, with its exit status.
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub watch: Option<f64>,

    /// With --watch, stop after N refreshes.
    #[arg(long, value_name = "N", requires = "watch")]
    pub iterations: Option<u64>,

    /// Seconds to wait for the responder.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = positive_seconds)]
    pub timeout: f64,

    /// The format options in command-line order.
    #[arg(skip)]
    pub format_order: Vec<FormatOption>,

    /// True when `GATEWAY_INTERFACE` is set: with no format option, the
    /// output is a CGI HTML page (set by the binary).
    #[arg(skip)]
    pub gateway_interface: bool,
}

/// The argument ids of the format options: pure-ftpwho's, and
/// `--openmetrics`.
fn format_ids() -> impl Iterator<Item = (&'static str, FormatOption)> {
    FORMAT_IDS
        .into_iter()
        .chain([("openmetrics", FormatOption::OpenMetrics)])
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
        args.format_order = format_order(&matches, format_ids());
        Ok(args)
    }

    /// The format to ask for, and whether to print a CGI header before
    /// it: pure-ftpwho's choice (the same code), in the protocol's terms.
    pub fn output(&self) -> (OutputFormat, bool) {
        let chosen = choose_format(&self.format_order, self.verbose, self.gateway_interface);
        match chosen {
            ChosenFormat::Report(Format::Text { verbose: false }) => (OutputFormat::Text, false),
            ChosenFormat::Report(Format::Text { verbose: true }) => (OutputFormat::Verbose, false),
            ChosenFormat::Report(Format::Html { cgi, embedded }) => (
                if embedded {
                    OutputFormat::HtmlEmbedded
                } else {
                    OutputFormat::Html
                },
                cgi,
            ),
            ChosenFormat::Report(Format::Xml) => (OutputFormat::Xml, false),
            ChosenFormat::Report(Format::Plist) => (OutputFormat::Plist, false),
            ChosenFormat::Report(Format::Shell) => (OutputFormat::Shell, false),
            ChosenFormat::Report(Format::Json) => (OutputFormat::Json, false),
            ChosenFormat::OpenMetrics => (OutputFormat::Openmetrics, false),
        }
    }

    /// The output format the flags select.
    pub fn format(&self) -> OutputFormat {
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
        for code in [EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CONNECT, EXIT_DENIED] {
            assert!(
                help.contains(&format!("\n  {code}  ")),
                "exit status {code} missing"
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
            i32::from(EXIT_USAGE)
        );
    }

    #[test]
    fn flags_map_to_requests() {
        let a = parse(&["-s", "-H", "--user", "bob", "--state", "upload"]).unwrap();
        assert_eq!(
            a.request(),
            Request {
                format: Some(OutputFormat::Shell),
                users: vec!["bob".into()],
                states: vec![StateName::Upload],
                numeric: true,
                ..Request::new(Op::List)
            }
        );
        assert_eq!(parse(&["-v"]).unwrap().format(), OutputFormat::Verbose);
        assert_eq!(parse(&["-W"]).unwrap().format(), OutputFormat::HtmlEmbedded);
        assert_eq!(parse(&[]).unwrap().format(), OutputFormat::Text);
        assert_eq!(
            parse(&["--openmetrics"]).unwrap().format(),
            OutputFormat::Openmetrics
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
        assert_eq!(
            a.states,
            [StateName::Idle, StateName::Upload, StateName::Download]
        );
        let request = a.request();
        assert_eq!((request.users, request.states), (a.users, a.states));
        assert!(parse(&["--state", "idle,busy"]).is_err());
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
                let (format, cgi) = q.output();
                let expected = match c {
                    Format::Text { verbose: false } => (OutputFormat::Text, false),
                    Format::Text { verbose: true } => (OutputFormat::Verbose, false),
                    Format::Html {
                        cgi,
                        embedded: false,
                    } => (OutputFormat::Html, cgi),
                    Format::Html {
                        cgi,
                        embedded: true,
                    } => (OutputFormat::HtmlEmbedded, cgi),
                    Format::Xml => (OutputFormat::Xml, false),
                    Format::Plist => (OutputFormat::Plist, false),
                    Format::Shell => (OutputFormat::Shell, false),
                    Format::Json => (OutputFormat::Json, false),
                };
                assert_eq!((format, cgi), expected, "{line:?} {gateway_interface}");
            }
        }
        let format = |args: &[&str]| parse(args).unwrap().output();
        assert_eq!(format(&["-s", "-x"]), (OutputFormat::Xml, false));
        assert_eq!(format(&["-w", "-W"]), (OutputFormat::HtmlEmbedded, false));
        assert_eq!(format(&["-W", "-w"]), (OutputFormat::HtmlEmbedded, false));
        assert_eq!(format(&["-c"]), (OutputFormat::HtmlEmbedded, true));
        assert_eq!(format(&["-c", "-s"]), (OutputFormat::Shell, false));
        // --openmetrics is a format option too: the last one wins.
        assert_eq!(
            format(&["-s", "--openmetrics"]),
            (OutputFormat::Openmetrics, false)
        );
        assert_eq!(
            format(&["--openmetrics", "-s"]),
            (OutputFormat::Shell, false)
        );
        assert_eq!(
            format(&["--json", "--openmetrics"]),
            (OutputFormat::Openmetrics, false)
        );
        assert_eq!(
            format(&["--openmetrics", "--json"]),
            (OutputFormat::Json, false)
        );
        assert_eq!(
            format(&["-c", "--openmetrics", "-w"]),
            (OutputFormat::HtmlEmbedded, true)
        );
        // The CGI header is for listings only.
        assert!(parse(&["-c"]).unwrap().cgi_header());
        assert!(!parse(&["-c", "--count", "bob"]).unwrap().cgi_header());
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
