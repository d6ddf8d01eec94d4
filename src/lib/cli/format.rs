//! The C `pure-ftpwho`'s format options, declared once and flattened into
//! `pure-ftpwho` and `ftpwho-query`, and resolved as the C tool resolves
//! them: the last format option on the command line wins, and `-c`/`-C`
//! (anywhere) make HTML a CGI table, `-W` (anywhere) an embedded one.

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args};

use crate::ftpwho::report::Format;

/// The help heading of the format options.
pub const HEADING: &str = "Output format";

/// The format options of `pure-ftpwho` (`ftpwho-query` adds
/// `--openmetrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct FormatFlags {
    /// CGI mode: a `Content-Type: text/html` header, then the HTML table
    /// without the page around it (implies -W)
    #[arg(short = 'c', action = ArgAction::SetTrue, help_heading = HEADING)]
    pub cgi: bool,

    /// Same as -c
    #[arg(short = 'C', action = ArgAction::SetTrue, help_heading = HEADING)]
    pub cgi_upper: bool,

    /// Output a full HTML page (web mode)
    #[arg(short = 'w', action = ArgAction::SetTrue, help_heading = HEADING)]
    pub html: bool,

    /// Output the HTML table without the page around it (embedded mode;
    /// implies -w)
    #[arg(short = 'W', action = ArgAction::SetTrue, help_heading = HEADING)]
    pub html_embedded: bool,

    /// Output XML data
    #[arg(short = 'x', action = ArgAction::SetTrue, help_heading = HEADING)]
    pub xml: bool,

    /// Output an Apple / GNUstep property list
    #[arg(short = 'p', action = ArgAction::SetTrue, help_heading = HEADING)]
    pub plist: bool,

    /// Easily parsable output for shell scripts, one line per session:
    /// pid|acct|time|state|file|peer|local|port|current|total|%|bandwidth
    /// (sizes in KiB, bandwidth in KiB/s; `|` and `\` are escaped with `\`,
    /// control characters shown as `_`)
    #[arg(short = 's', action = ArgAction::SetTrue, help_heading = HEADING)]
    pub shell: bool,

    /// Output a JSON array with one object per session (typed fields;
    /// names that are not UTF-8 are escaped and flagged)
    #[arg(long = "json", action = ArgAction::SetTrue, help_heading = HEADING)]
    pub json: bool,

    /// Verbose ASCII table: the default table plus sizes and the local
    /// address (when no other format option is given)
    #[arg(short = 'v', action = ArgAction::SetTrue, help_heading = HEADING)]
    pub verbose: bool,

    /// The format of the last format option on the command line (any HTML
    /// option gives [`Format::Html`]); set by [`FormatFlags::read_order`].
    #[arg(skip)]
    pub last: Option<Format>,
}

/// The format a format option selects, by its argument id (the HTML
/// options all select HTML, refined by [`FormatFlags::choose`]); `None`
/// for any other argument.
fn format_of_option(id: &str) -> Option<Format> {
    Some(match id {
        "cgi" | "cgi_upper" | "html" | "html_embedded" => Format::Html,
        "xml" => Format::Xml,
        "plist" => Format::Plist,
        "shell" => Format::Shell,
        "json" => Format::Json,
        // Declared by ftpwho-query next to the flattened flags.
        "openmetrics" => Format::Openmetrics,
        _ => return None,
    })
}

impl FormatFlags {
    /// Records which format option came last in `matches` (the whole
    /// command line, so that options declared next to these count too).
    pub fn read_order(&mut self, matches: &ArgMatches) {
        self.last = matches
            .ids()
            .filter_map(|id| {
                let format = format_of_option(id.as_str())?;
                if matches.value_source(id.as_str()) != Some(ValueSource::CommandLine) {
                    return None;
                }
                let last = matches.indices_of(id.as_str())?.max()?;
                Some((last, format))
            })
            .max_by_key(|&(index, _)| index)
            .map(|(_, format)| format);
    }

    /// The output format, and whether a CGI header comes first, as the C
    /// tool chooses them: the last format option wins; an HTML one is the
    /// embedded table after `-c`, `-C` or `-W` anywhere, with the CGI
    /// header after `-c`, `-C` or when `gateway_interface` (the variable
    /// is set). With no format option: a CGI HTML page when
    /// `gateway_interface`, the text table (verbose with `-v`) otherwise.
    pub fn choose(&self, gateway_interface: bool) -> (Format, bool) {
        let cgi_option = self.cgi || self.cgi_upper;
        let html = if cgi_option || self.html_embedded {
            Format::HtmlEmbedded
        } else {
            Format::Html
        };
        match self.last {
            Some(Format::Html | Format::HtmlEmbedded) => (html, gateway_interface || cgi_option),
            Some(other) => (other, false),
            None if gateway_interface => (html, true),
            None if self.verbose => (Format::Verbose, false),
            None => (Format::Text, false),
        }
    }
}
