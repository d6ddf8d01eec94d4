//! Logging: structured journald entries under systemd, a readable stderr
//! format elsewhere.
//!
//! Events are emitted with `tracing`; their fields become journal fields
//! (upper-cased, no prefix), so `tracing::info!(UPLOAD_VUSER = "alice", ...)`
//! is found by `journalctl UPLOAD_VUSER=alice`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
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

fn level(debug: bool) -> tracing::Level {
    if debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    }
}

/// Installs the global subscriber for `identifier` (the journal's
/// `SYSLOG_IDENTIFIER`). `debug` lowers the level from INFO to DEBUG.
/// Falls back to stderr when the journal cannot be reached.
pub fn init(identifier: &str, sink: Sink, debug: bool) -> Sink {
    let level = level(debug);
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
    init_stderr(level)
}

fn init_stderr(level: tracing::Level) -> Sink {
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    Sink::Stderr
}

/// As [`init`] with the journal sink, but the journal is reached only when
/// the first event (or span) comes: a process that logs nothing (a run
/// whose program is silent) costs journald nothing. Where the journal
/// cannot be reached then, events are written to stderr.
pub fn init_on_first_event(identifier: &str, debug: bool) -> Sink {
    let level = level(debug);
    if choose_sink(true) == Sink::Stderr {
        return init_stderr(level);
    }
    let layer = OnFirstEvent {
        identifier: identifier.to_owned(),
        journal: Arc::default(),
    };
    let installed = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::from_level(level))
        .with(layer)
        .try_init();
    if installed.is_ok() {
        Sink::Journald
    } else {
        Sink::Stderr
    }
}

/// The journal layer, connected when first needed.
struct OnFirstEvent {
    identifier: String,
    /// Shared so that tests see it.
    journal: Arc<OnceLock<Option<tracing_journald::Layer>>>,
}

impl OnFirstEvent {
    fn journal(&self) -> Option<&tracing_journald::Layer> {
        self.journal
            .get_or_init(|| {
                tracing_journald::layer().ok().map(|layer| {
                    layer
                        .with_field_prefix(None)
                        .with_syslog_identifier(self.identifier.clone())
                })
            })
            .as_ref()
    }
}

/// An event's message, for stderr.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S> Layer<S> for OnFirstEvent
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(journal) = self.journal() {
            journal.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(journal) = self.journal() {
            journal.on_record(id, values, ctx);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        match self.journal() {
            Some(journal) => journal.on_event(event, ctx),
            None => {
                let mut message = Message::default();
                event.record(&mut message);
                eprintln!(
                    "{}: {} {}",
                    self.identifier,
                    event.metadata().level(),
                    message.0
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_is_reached_only_when_the_first_event_comes() {
        let journal = Arc::default();
        let layer = OnFirstEvent {
            identifier: "test".into(),
            journal: Arc::clone(&journal),
        };
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            assert!(journal.get().is_none(), "reached before any event");
            tracing::info!("first");
        });
        assert!(journal.get().is_some(), "not reached by the first event");
    }
}
