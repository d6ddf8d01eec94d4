//! `pure-ftpwho`: the C tool's options, and more.
//!
//! Like the C tool, the output format is chosen by the last format option
//! on the command line, and `-c`/`-C` imply `-W`, which implies `-w`:
//! [`Args::parse_ordered`] keeps that order, [`Args::format`] applies it.
//! `ftpwho-query` takes the same options ([`FormatFlags`]) and resolves
//! them with the same code.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};

use super::format::FormatFlags;
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

/// The exit status of `pure-ftpwho`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success (also after `-h`, and after an unknown option, which prints
    /// the usage like the C tool).
    Ok = 0,
    /// Not run as root (and the scoreboard directory is not owned by the
    /// effective user).
    NotRoot = 1,
    /// An invalid value for an option of this implementation.
    Usage = 2,
    /// The output could not be written.
    Output = 3,
    /// The scoreboard directory cannot be opened (C returns -1).
    NoScoreboard = 255,
}

impl Exit {
    /// Every status, as `--help` lists them.
    pub const ALL: [Exit; 5] = [
        Exit::Ok,
        Exit::NotRoot,
        Exit::Usage,
        Exit::Output,
        Exit::NoScoreboard,
    ];

    /// The status as a number.
    pub fn code(self) -> u8 {
        self as u8
    }
}

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
    /// The format options.
    #[command(flatten)]
    pub format: FormatFlags,

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
    pub states: Vec<State>,

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

    /// The output format, and whether a CGI header comes first, as the C
    /// tool chooses them (see [`FormatFlags::choose`]).
    pub fn format(&self, gateway_interface: bool) -> (Format, bool) {
        self.format.choose(gateway_interface)
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
            states: self.states.clone(),
        }
    }

    /// How the scoreboard is read.
    pub fn scan_options(&self) -> ScanOptions {
        ScanOptions {
            layout: self.layout,
            remove_stale: !self.keep_stale,
            lock_timeout: std::time::Duration::from_millis(self.lock_timeout),
            ..ScanOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(argv: &[&str], cgi_env: bool) -> (Format, bool) {
        let mut full = vec!["pure-ftpwho"];
        full.extend_from_slice(argv);
        Args::parse_ordered(full).unwrap().format(cgi_env)
    }

    #[test]
    fn last_format_option_wins() {
        let plain = |f| (f, false);
        assert_eq!(format(&[], false), plain(Format::Text));
        assert_eq!(format(&["-v"], false), plain(Format::Verbose));
        assert_eq!(format(&["-s", "-x"], false), plain(Format::Xml));
        assert_eq!(format(&["-xs"], false), plain(Format::Shell));
        assert_eq!(format(&["-sx", "-p"], false), plain(Format::Plist));
        assert_eq!(format(&["-p", "--json"], false), plain(Format::Json));
        assert_eq!(format(&["--json", "-s", "-v"], false), plain(Format::Shell));
        assert_eq!(
            format(&["-s", "-x", "-s", "-vv"], false),
            plain(Format::Shell)
        );
        assert_eq!(format(&["-x", "-s", "-x"], false), plain(Format::Xml));
        assert!(Args::parse_ordered(["pure-ftpwho", "--openmetrics"]).is_err());
    }

    #[test]
    fn cgi_implies_embedded_html() {
        assert_eq!(format(&["-w"], false), (Format::Html, false));
        assert_eq!(format(&["-W"], false), (Format::HtmlEmbedded, false));
        assert_eq!(format(&["-c"], false), (Format::HtmlEmbedded, true));
        assert_eq!(format(&["-C"], false), (Format::HtmlEmbedded, true));
        // -W's effect stays when -w comes later.
        assert_eq!(format(&["-W", "-w"], false), (Format::HtmlEmbedded, false));
        assert_eq!(format(&["-c", "-s"], false), (Format::Shell, false));
        assert_eq!(format(&["-s", "-c"], false), (Format::HtmlEmbedded, true));
        assert_eq!(
            format(&["-c", "-s", "-w"], false),
            (Format::HtmlEmbedded, true)
        );
    }

    #[test]
    fn gateway_interface_defaults_to_a_cgi_page() {
        assert_eq!(format(&[], true), (Format::Html, true));
        assert_eq!(format(&["-v"], true), (Format::Html, true));
        assert_eq!(format(&["-W"], true), (Format::HtmlEmbedded, true));
        assert_eq!(format(&["-s"], true), (Format::Shell, false));
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
        // Free and unknown states are never filter values.
        assert!(Args::parse_ordered(["pure-ftpwho", "--state", "free"]).is_err());
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
        for exit in Exit::ALL {
            let line = format!("\n  {} ", exit.code());
            assert!(help.contains(&line), "exit status {exit:?} missing");
        }
        Args::command().debug_assert();
    }
}
