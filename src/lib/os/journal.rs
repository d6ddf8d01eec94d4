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

/// The `MESSAGE_ID`s of the audit events, one per kind; the journal
/// catalog describes each.
pub mod message_ids {
    /// An upload was processed: the program exited with status 0.
    pub const UPLOAD_PROCESSED: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a60";
    /// An upload record was rejected, or its file was not a regular file.
    pub const UPLOAD_REJECTED: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a61";
    /// The program failed: non-zero exit, killed by a signal, or could not
    /// be started.
    pub const UPLOAD_FAILED: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a62";
    /// The program ran past its timeout; its process group was killed.
    pub const UPLOAD_TIMED_OUT: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a63";
}
