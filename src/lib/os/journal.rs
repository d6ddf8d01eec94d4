//! Logging: structured journald entries under systemd, a readable stderr
//! format elsewhere.
//!
//! Events are emitted with `tracing`; their fields become journal fields
//! (upper-cased, no prefix), so `tracing::info!(UPLOAD_VUSER = "alice", ...)`
//! is found by `journalctl UPLOAD_VUSER=alice`.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where log events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// The native journal protocol, with every field kept.
    Journald,
    /// One line per event on standard error.
    Stderr,
}

/// Picks the sink: the journal when stderr is already connected to it
/// (`JOURNAL_STREAM`, as systemd sets for services) or when `prefer_journal`
/// is set and the journal socket exists; stderr otherwise.
pub fn choose_sink(prefer_journal: bool) -> Sink {
    let socket = std::path::Path::new("/run/systemd/journal/socket").exists();
    if socket && (prefer_journal || std::env::var_os("JOURNAL_STREAM").is_some()) {
        Sink::Journald
    } else {
        Sink::Stderr
    }
}

/// Installs the global subscriber for `identifier` (the journal's
/// `SYSLOG_IDENTIFIER`). `debug` lowers the level from INFO to DEBUG.
/// Falls back to stderr when the journal cannot be reached.
pub fn init(identifier: &str, sink: Sink, debug: bool) -> Sink {
    let level = if debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let filter = tracing_subscriber::filter::LevelFilter::from_level(level);
    if sink == Sink::Journald {
        if let Ok(layer) = tracing_journald::layer() {
            let layer = layer
                .with_field_prefix(None)
                .with_syslog_identifier(identifier.to_owned());
            if tracing_subscriber::registry()
                .with(filter)
                .with(layer)
                .try_init()
                .is_ok()
            {
                return Sink::Journald;
            }
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    Sink::Stderr
}
