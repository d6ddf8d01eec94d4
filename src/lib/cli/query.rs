//! `ftpwho-query`: the client of `ftpwhod`.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Parser};

use crate::query::protocol::{Op, OutputFormat, Request, StateName};

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

const AFTER_HELP: &str = "\
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
/// The format options are those of pure-ftpwho; the output of each is
/// byte for byte what pure-ftpwho prints for the same scoreboard.
#[derive(Debug, Clone, Parser)]
#[command(name = "ftpwho-query", version, after_help = AFTER_HELP)]
#[command(group(ArgGroup::new("format").args(["shell", "xml", "plist", "html", "html_embedded", "json", "openmetrics"])))]
#[command(group(ArgGroup::new("operation").args(["count", "ping", "stats"])))]
pub struct Args {
    /// The responder's socket.
    #[arg(long, value_name = "PATH", env = "FTPWHO_SOCKET", default_value = crate::query::client::DEFAULT_SOCKET)]
    pub socket: PathBuf,

    /// Easily parsable output for shell scripts:
    /// pid|acct|time|state|file|peer|local|port|current|total|%|bandwidth
    #[arg(short = 's')]
    pub shell: bool,

    /// Output XML data.
    #[arg(short = 'x')]
    pub xml: bool,

    /// Output an Apple / GNUstep property list.
    #[arg(short = 'p')]
    pub plist: bool,

    /// Output an HTML page (web mode).
    #[arg(short = 'w')]
    pub html: bool,

    /// Output HTML without header and footer (embedded mode).
    #[arg(short = 'W')]
    pub html_embedded: bool,

    /// Verbose ASCII table (with sizes and local addresses).
    #[arg(short = 'v')]
    pub verbose: bool,

    /// Don't resolve host names, only show IP addresses (-H is a synonym).
    #[arg(short = 'n', short_alias = 'H')]
    pub numeric: bool,

    /// Output JSON.
    #[arg(long)]
    pub json: bool,

    /// Output OpenMetrics text, for Prometheus.
    #[arg(long)]
    pub openmetrics: bool,

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

    /// Only the sessions of this account.
    #[arg(long, value_name = "USER", conflicts_with = "count")]
    pub user: Option<String>,

    /// Only the sessions in this state.
    #[arg(
        long,
        value_name = "STATE",
        value_parser = PossibleValuesParser::new(["idle", "download", "upload"])
            .map(|s| s.parse::<StateName>().expect("one of the possible values"))
    )]
    pub state: Option<StateName>,

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
}

impl Args {
    /// The output format the flags select.
    pub fn format(&self) -> OutputFormat {
        if self.shell {
            OutputFormat::Shell
        } else if self.xml {
            OutputFormat::Xml
        } else if self.plist {
            OutputFormat::Plist
        } else if self.html {
            OutputFormat::Html
        } else if self.html_embedded {
            OutputFormat::HtmlEmbedded
        } else if self.json {
            OutputFormat::Json
        } else if self.openmetrics {
            OutputFormat::Openmetrics
        } else if self.verbose {
            OutputFormat::Verbose
        } else {
            OutputFormat::Text
        }
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
            user: self.count.clone().or_else(|| self.user.clone()),
            state: self.state,
            numeric: self.numeric,
            ..Request::new(op)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("ftpwho-query").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn help_lists_every_exit_status() {
        let help = Args::command().render_long_help().to_string();
        for code in [EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CONNECT, EXIT_DENIED] {
            assert!(
                help.contains(&format!("\n  {code}  ")),
                "exit status {code} missing"
            );
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
                user: Some("bob".into()),
                state: Some(StateName::Upload),
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
            (count.op, count.user.as_deref()),
            (Op::Count, Some("alice"))
        );
        assert_eq!(count.format, None);
        assert_eq!(parse(&["--ping"]).unwrap().op(), Op::Ping);
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["-s", "-x"][..],
            &["--json", "--openmetrics"],
            &["--ping", "--stats"],
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
