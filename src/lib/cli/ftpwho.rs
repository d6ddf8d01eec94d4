//! `pure-ftpwho`: the C tool's options, and more.
//!
//! Like the C tool, the output format is chosen by the last format option
//! on the command line, and `-c`/`-C` imply `-W`, which implies `-w`:
//! [`Args::parse_ordered`] keeps that order, [`Args::format`] applies it.
//! `ftpwho-query` takes the same options and resolves them with the same
//! code, [`format_order`] and [`choose_format`].

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::ftpwho::report::{Filter, Format};
use crate::ftpwho::scoreboard::{Layout, ScanOptions, State, DEFAULT_DIR};

/// The usage `-h` prints, byte for byte the C tool's.
pub const C_USAGE: &str = "
Usage :

-c : this program is called by a web server (CGI mode)
-h : help
-H : don't resolve host names, only show IP addresses
-n : synonym for -H
-p : output Apple / GNUStep plist data
-s : easily parsable output for shell scripts
     format is :
     pid|acct|time|state|file|peer|local|port|current|total|%|bandwidth
-v : output verbose ASCII
-w : output HTML page (web mode)
-W : output HTML page without header/footer (embedded mode)
-x : output XML data

";

/// Exit status: success (also after `-h`, and after an unknown option,
/// which prints the usage like the C tool).
pub const EXIT_OK: u8 = 0;
/// Exit status: not run as root (and the scoreboard directory is not
/// owned by the effective user).
pub const EXIT_NOT_ROOT: u8 = 1;
/// Exit status: an invalid value for an option of this implementation.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the output could not be written.
pub const EXIT_OUTPUT: u8 = 3;
/// Exit status: the scoreboard directory cannot be opened (C returns -1).
pub const EXIT_NO_SCOREBOARD: u8 = 255;

const EXIT_STATUS_HELP: &str = "\
Exit status:
  0    success; also after -h and after an unknown option, which print
       the C pure-ftpwho's usage on standard output as it does
  1    not run as root, and the scoreboard directory is not owned by the
       effective user (\"You must be root to run this. Sorry.\")
  2    invalid value for --state, --layout, --lock-timeout
  3    the output could not be written
  255  the scoreboard directory cannot be opened

Environment:
  GATEWAY_INTERFACE    when set (by a web server), the default format is a
                       CGI HTML page (as -w with a Content-Type header)
  PURE_FTPWHO_LAYOUT   default for --layout";

/// Report the sessions of a running Pure-FTPd server from its scoreboard.
///
/// A drop-in replacement of Pure-FTPd's `pure-ftpwho`: the same options
/// print the same bytes. When several format options are given, the last
/// one wins; `-c` and `-C` also imply `-W`, and `-W` implies `-w`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pure-ftpwho",
    version,
    after_long_help = EXIT_STATUS_HELP,
    max_term_width = 100,
    disable_help_flag = true,
    args_override_self = true
)]
pub struct Args {
    /// CGI mode: a `Content-Type: text/html` header, then the HTML table
    /// without the page around it (implies -W)
    #[arg(short = 'c', action = ArgAction::SetTrue, help_heading = "Output format")]
    pub cgi: bool,

    /// Same as -c
    #[arg(short = 'C', action = ArgAction::SetTrue, help_heading = "Output format")]
    pub cgi_upper: bool,

    /// Output a full HTML page (web mode)
    #[arg(short = 'w', action = ArgAction::SetTrue, help_heading = "Output format")]
    pub html: bool,

    /// Output the HTML table without the page around it (embedded mode;
    /// implies -w)
    #[arg(short = 'W', action = ArgAction::SetTrue, help_heading = "Output format")]
    pub html_embedded: bool,

    /// Output XML data
    #[arg(short = 'x', action = ArgAction::SetTrue, help_heading = "Output format")]
    pub xml: bool,

    /// Output an Apple / GNUstep property list
    #[arg(short = 'p', action = ArgAction::SetTrue, help_heading = "Output format")]
    pub plist: bool,

    /// Easily parsable output for shell scripts, one line per session:
    /// pid|acct|time|state|file|peer|local|port|current|total|%|bandwidth
    /// (sizes in KiB, bandwidth in KiB/s; `|` and `\` are escaped with `\`,
    /// control characters shown as `_`)
    #[arg(short = 's', action = ArgAction::SetTrue, help_heading = "Output format")]
    pub shell: bool,

    /// Output a JSON array with one object per session (typed fields;
    /// names that are not UTF-8 are escaped and flagged)
    #[arg(long = "json", action = ArgAction::SetTrue, help_heading = "Output format")]
    pub json: bool,

    /// Verbose ASCII table: the default table plus sizes and the local
    /// address
    #[arg(short = 'v', action = ArgAction::SetTrue, help_heading = "Output format")]
    pub verbose: bool,

    /// Don't resolve host names, only show IP addresses
    #[arg(short = 'H', action = ArgAction::SetTrue)]
    pub no_resolve: bool,

    /// Synonym for -H
    #[arg(short = 'n', action = ArgAction::SetTrue)]
    pub numeric: bool,

    /// Print the C tool's short usage and exit
    #[arg(short = 'h', action = ArgAction::SetTrue)]
    pub usage: bool,

    /// Print this help, every option documented, and exit
    #[arg(long = "help", action = ArgAction::HelpLong)]
    pub help: Option<bool>,

    /// Print how many sessions USER has, as the server counts them at
    /// login (case-insensitive), instead of listing sessions
    #[arg(long, value_name = "USER")]
    pub count: Option<OsString>,

    /// Only list the sessions of USER (exact match; may be repeated)
    #[arg(long = "user", value_name = "USER", help_heading = "Filters")]
    pub users: Vec<OsString>,

    /// Only list sessions in STATE (may be repeated or comma-separated)
    #[arg(
        long = "state",
        value_name = "STATE",
        value_enum,
        value_delimiter = ',',
        help_heading = "Filters"
    )]
    pub states: Vec<StateArg>,

    /// The scoreboard directory
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR, help_heading = "Scoreboard")]
    pub scoreboard: PathBuf,

    /// Record layout of the server's build: `debian` (1464-byte records),
    /// `upstream` (1456), or MAXUSER,FILENAMELEN (its MAX_USER_LENGTH and
    /// filename buffer length); by default recognised by file size
    #[arg(
        long,
        value_name = "LAYOUT",
        env = "PURE_FTPWHO_LAYOUT",
        help_heading = "Scoreboard"
    )]
    pub layout: Option<Layout>,

    /// How long to wait for a server's write lock on one entry before
    /// reading it unlocked (and saying so on standard error)
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 200,
        value_parser = clap::value_parser!(u64).range(0..=60_000),
        help_heading = "Scoreboard"
    )]
    pub lock_timeout: u64,

    /// Don't remove the entries of sessions whose process is gone
    #[arg(long, help_heading = "Scoreboard")]
    pub keep_stale: bool,

    /// Ignored, as the C tool ignores operands
    #[arg(hide = true)]
    pub operands: Vec<OsString>,

    /// The format options in command-line order.
    #[arg(skip)]
    pub format_order: Vec<FormatOption>,
}

/// A session state for `--state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// Logged in, no transfer
    Idle,
    /// Sending a file to the client
    Download,
    /// Receiving a file from the client
    Upload,
}

impl From<StateArg> for State {
    fn from(s: StateArg) -> State {
        match s {
            StateArg::Idle => State::Idle,
            StateArg::Download => State::Download,
            StateArg::Upload => State::Upload,
        }
    }
}

/// A format option, as it appeared on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatOption {
    /// `-c` or `-C`
    Cgi,
    /// `-W`
    Embedded,
    /// `-w`
    Html,
    /// `-x`
    Xml,
    /// `-p`
    Plist,
    /// `-s`
    Shell,
    /// `--json`
    Json,
    /// `--openmetrics` (`ftpwho-query` only)
    OpenMetrics,
}

/// The argument id of each format option of [`Args`] (`ftpwho-query`
/// names its flags the same way).
pub const FORMAT_IDS: [(&str, FormatOption); 8] = [
    ("cgi", FormatOption::Cgi),
    ("cgi_upper", FormatOption::Cgi),
    ("html_embedded", FormatOption::Embedded),
    ("html", FormatOption::Html),
    ("xml", FormatOption::Xml),
    ("plist", FormatOption::Plist),
    ("shell", FormatOption::Shell),
    ("json", FormatOption::Json),
];

/// The format options given on the command line of `matches`, in
/// command-line order; `ids` maps argument ids to options.
pub fn format_order<'a>(
    matches: &ArgMatches,
    ids: impl IntoIterator<Item = (&'a str, FormatOption)>,
) -> Vec<FormatOption> {
    let mut order = Vec::new();
    for (id, option) in ids {
        if matches.value_source(id) != Some(clap::parser::ValueSource::CommandLine) {
            continue;
        }
        if let Some(indices) = matches.indices_of(id) {
            order.extend(indices.map(|i| (i, option)));
        }
    }
    order.sort_by_key(|&(i, _)| i);
    order.into_iter().map(|(_, o)| o).collect()
}

/// The output that format options select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChosenFormat {
    /// One of the report formats.
    Report(Format),
    /// OpenMetrics text (rendered apart from the report formats).
    OpenMetrics,
}

/// The output format, as the C tool chooses it from the format options
/// in command-line `order`: the last one wins, and `-c`/`-C` (also when
/// given earlier) make HTML a CGI table, `-W` an embedded one; with none,
/// a CGI HTML page when `gateway_interface` (the variable is set), the
/// text table (verbose with `-v`) otherwise.
pub fn choose_format(
    order: &[FormatOption],
    verbose: bool,
    gateway_interface: bool,
) -> ChosenFormat {
    let cgi_option = order.contains(&FormatOption::Cgi);
    let html = Format::Html {
        cgi: gateway_interface || cgi_option,
        embedded: cgi_option || order.contains(&FormatOption::Embedded),
    };
    ChosenFormat::Report(match order.last() {
        Some(FormatOption::Cgi | FormatOption::Embedded | FormatOption::Html) => html,
        Some(FormatOption::Xml) => Format::Xml,
        Some(FormatOption::Plist) => Format::Plist,
        Some(FormatOption::Shell) => Format::Shell,
        Some(FormatOption::Json) => Format::Json,
        Some(FormatOption::OpenMetrics) => return ChosenFormat::OpenMetrics,
        None if gateway_interface => html,
        None => Format::Text { verbose },
    })
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
        args.format_order = format_order(&matches, FORMAT_IDS);
        Ok(args)
    }

    /// The output format, as the C tool chooses it (see
    /// [`choose_format`]).
    pub fn format(&self, gateway_interface: bool) -> Format {
        match choose_format(&self.format_order, self.verbose, gateway_interface) {
            ChosenFormat::Report(format) => format,
            // Not an option of pure-ftpwho: the parser never records it.
            ChosenFormat::OpenMetrics => unreachable!("pure-ftpwho has no --openmetrics"),
        }
    }

    /// True when host names are not to be resolved (`-H`, `-n`).
    pub fn numeric(&self) -> bool {
        self.no_resolve || self.numeric
    }

    /// The session filter of `--user` and `--state`.
    pub fn filter(&self) -> Filter {
        use std::os::unix::ffi::OsStrExt;
        Filter {
            users: self.users.iter().map(|u| u.as_bytes().to_vec()).collect(),
            states: self.states.iter().map(|&s| s.into()).collect(),
        }
    }

    /// How the scoreboard is read.
    pub fn scan_options(&self) -> ScanOptions {
        ScanOptions {
            layout: self.layout,
            remove_stale: !self.keep_stale,
            lock_timeout: std::time::Duration::from_millis(self.lock_timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(argv: &[&str], cgi_env: bool) -> Format {
        let mut full = vec!["pure-ftpwho"];
        full.extend_from_slice(argv);
        Args::parse_ordered(full).unwrap().format(cgi_env)
    }

    #[test]
    fn last_format_option_wins() {
        assert_eq!(format(&[], false), Format::Text { verbose: false });
        assert_eq!(format(&["-v"], false), Format::Text { verbose: true });
        assert_eq!(format(&["-s", "-x"], false), Format::Xml);
        assert_eq!(format(&["-xs"], false), Format::Shell);
        assert_eq!(format(&["-sx", "-p"], false), Format::Plist);
        assert_eq!(format(&["-p", "--json"], false), Format::Json);
        assert_eq!(format(&["--json", "-s", "-v"], false), Format::Shell);
        assert_eq!(format(&["-s", "-x", "-s", "-vv"], false), Format::Shell);
        assert_eq!(format(&["-x", "-s", "-x"], false), Format::Xml);
    }

    #[test]
    fn cgi_implies_embedded_html() {
        let html = |cgi, embedded| Format::Html { cgi, embedded };
        assert_eq!(format(&["-w"], false), html(false, false));
        assert_eq!(format(&["-W"], false), html(false, true));
        assert_eq!(format(&["-c"], false), html(true, true));
        assert_eq!(format(&["-C"], false), html(true, true));
        // -W's effect stays when -w comes later.
        assert_eq!(format(&["-W", "-w"], false), html(false, true));
        assert_eq!(format(&["-c", "-s"], false), Format::Shell);
        assert_eq!(format(&["-s", "-c"], false), html(true, true));
    }

    #[test]
    fn gateway_interface_defaults_to_a_cgi_page() {
        let html = |cgi, embedded| Format::Html { cgi, embedded };
        assert_eq!(format(&[], true), html(true, false));
        assert_eq!(format(&["-v"], true), html(true, false));
        assert_eq!(format(&["-W"], true), html(true, true));
        assert_eq!(format(&["-s"], true), Format::Shell);
    }

    #[test]
    fn options_and_filters() {
        let args = Args::parse_ordered([
            "pure-ftpwho",
            "-n",
            "--user",
            "bob",
            "-nH",
            "--user=eve",
            "--state",
            "idle,upload",
            "--layout",
            "upstream",
            "operand",
        ])
        .unwrap();
        assert!(args.numeric());
        let filter = args.filter();
        assert_eq!(filter.users, vec![b"bob".to_vec(), b"eve".to_vec()]);
        assert_eq!(filter.states, vec![State::Idle, State::Upload]);
        assert_eq!(args.scan_options().layout, Some(Layout::UPSTREAM));
        assert!(Args::parse_ordered(["pure-ftpwho", "--state", "busy"]).is_err());
        assert!(Args::parse_ordered(["pure-ftpwho", "--layout", "x"]).is_err());
        let err = Args::parse_ordered(["pure-ftpwho", "-z"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn help_documents_every_option() {
        let help = Args::command().render_long_help().to_string();
        for opt in [
            "-c",
            "-C",
            "-h",
            "-H",
            "-n",
            "-p",
            "-s",
            "-v",
            "-w",
            "-W",
            "-x",
            "--json",
            "--count",
            "--user",
            "--state",
            "--scoreboard",
            "--layout",
            "--lock-timeout",
            "--keep-stale",
            "Exit status",
        ] {
            assert!(help.contains(opt), "{opt} missing from --help");
        }
        Args::command().debug_assert();
    }
}
