//! What one scrape shows, and its text in either exposition format.
//!
//! The session families are those of `ftpwho-query --openmetrics`
//! ([`openmetrics::render`], reused as is); after them come the scoreboard's
//! health, the upload readers' counters (one series per pipe, from
//! [`UploadCounters`]) and the exporter's own build. Counters are written
//! as each format wants them: in the Prometheus text format (0.0.4) the
//! family is named with its `_total`, in OpenMetrics (1.0.0) without it,
//! and only OpenMetrics ends with `# EOF`.

use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::ftpwho::report::openmetrics::{self, escape_label, Metrics};
use crate::ftpwho::scoreboard::{self, Note};
use crate::upload::metrics::{UploadCounters, DURATION_BUCKETS};

/// The exposition formats served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus' text format, version 0.0.4.
    Prometheus,
    /// OpenMetrics text, version 1.0.0.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The format an `Accept` header asks for: the supported media range with
/// the highest `q` (the earlier one on a tie); OpenMetrics only in version
/// 1.0.0 (or unversioned), the text format only in 0.0.4 (or unversioned).
/// Without a header, or when nothing listed is supported, the text format,
/// which every scraper reads.
pub fn negotiate(accept: Option<&str>) -> Format {
    let mut best: Option<(f32, Format)> = None;
    for range in accept.unwrap_or("").split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut q, mut version) = (1.0f32, None);
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "q" => q = value.parse().unwrap_or(0.0),
                "version" => version = Some(value.to_owned()),
                _ => {}
            }
        }
        let format = match (media.as_str(), version.as_deref()) {
            ("application/openmetrics-text", None | Some("1.0.0")) => Format::OpenMetrics,
            ("text/plain", None | Some("0.0.4")) | ("text/*" | "*/*", _) => Format::Prometheus,
            _ => continue,
        };
        if q > 0.0 && best.map_or(true, |(best_q, _)| q > best_q) {
            best = Some((q, format));
        }
    }
    best.map_or(Format::Prometheus, |(_, format)| format)
}

/// Why scoreboard entries were passed over, as a bounded label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    /// The session's process is gone (a stale entry).
    Stale,
    /// Read, but without its lock (the server held it too long); counted,
    /// not skipped.
    Unlocked,
    /// Not a regular file, or a symbolic link.
    NotRegular,
    /// Owned by another user than the directory's.
    Owner,
    /// A size that matches no record layout, or bytes that are no record
    /// of it.
    Layout,
    /// Anything else: cannot open, stat or read (a short read too), a mode
    /// without owner read and write, or a directory not read to its end.
    Unreadable,
}

impl SkipReason {
    /// Every reason, in label order.
    pub const ALL: [SkipReason; 6] = [
        SkipReason::Stale,
        SkipReason::Unlocked,
        SkipReason::NotRegular,
        SkipReason::Owner,
        SkipReason::Layout,
        SkipReason::Unreadable,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::Stale => "stale",
            SkipReason::Unlocked => "unlocked",
            SkipReason::NotRegular => "not_regular",
            SkipReason::Owner => "owner",
            SkipReason::Layout => "layout",
            SkipReason::Unreadable => "unreadable",
        }
    }

    /// The label of one of the scan's notes.
    pub fn of_note(note: &Note) -> SkipReason {
        use scoreboard::SkipReason as Why;
        match note {
            Note::Skipped { reason, .. } => match reason {
                Why::Stale { .. } => SkipReason::Stale,
                Why::SymbolicLink | Why::NotRegular => SkipReason::NotRegular,
                Why::WrongOwner { .. } => SkipReason::Owner,
                Why::WrongSize { .. } | Why::UnknownSize { .. } | Why::Record(_) => {
                    SkipReason::Layout
                }
                Why::WrongMode { .. }
                | Why::CannotOpen(_)
                | Why::CannotStat(_)
                | Why::ShortRead { .. }
                | Why::CannotRead(_) => SkipReason::Unreadable,
            },
            Note::Removed { .. } | Note::NotRemoved { .. } => SkipReason::Stale,
            Note::ReadUnlocked { .. } => SkipReason::Unlocked,
            Note::ReadingDirectory(_) => SkipReason::Unreadable,
        }
    }
}

/// One scrape's numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// The sessions, aggregated.
    pub sessions: Metrics,
    /// Age of the oldest session, seconds (0 without sessions).
    pub oldest_session_seconds: u64,
    /// Whether the scoreboard directory could be read.
    pub scoreboard_readable: bool,
    /// Entries passed over, by reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Each upload reader's counters.
    pub uploads: Vec<UploadCounters>,
    /// State files found that could not be read or were not valid.
    pub upload_state_errors: u64,
}

/// A family's `HELP` and `TYPE` lines. `counter` names are given without
/// `_total`.
fn family(
    out: &mut dyn Write,
    format: Format,
    name: &str,
    kind: &str,
    help: &str,
) -> io::Result<()> {
    let name = match (format, kind) {
        (Format::Prometheus, "counter") => format!("{name}_total"),
        _ => name.to_owned(),
    };
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

fn seconds(value: f64) -> String {
    if value == value.trunc() && value.abs() < 1e15 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

/// Writes the whole exposition of `scrape` in `format`.
pub fn render(scrape: &Scrape, format: Format, out: &mut dyn Write) -> io::Result<()> {
    // The responder's families, without their end marker.
    let mut sessions = Vec::with_capacity(2048);
    openmetrics::render(&scrape.sessions, &mut sessions)?;
    let sessions = sessions
        .strip_suffix(b"# EOF\n")
        .unwrap_or(&sessions)
        .to_vec();
    out.write_all(&sessions)?;

    family(
        out,
        format,
        "pureftpd_session_oldest_age_seconds",
        "gauge",
        "Age of the oldest FTP session.",
    )?;
    writeln!(
        out,
        "pureftpd_session_oldest_age_seconds {}",
        scrape.oldest_session_seconds
    )?;
    family(
        out,
        format,
        "pureftpd_scoreboard_readable",
        "gauge",
        "Whether the scoreboard directory could be read (1) or not (0).",
    )?;
    writeln!(
        out,
        "pureftpd_scoreboard_readable {}",
        u8::from(scrape.scoreboard_readable)
    )?;
    family(
        out,
        format,
        "pureftpd_scoreboard_skipped_entries",
        "gauge",
        "Scoreboard entries passed over by this scan, by reason (unlocked: read without the server's lock).",
    )?;
    for reason in SkipReason::ALL {
        writeln!(
            out,
            "pureftpd_scoreboard_skipped_entries{{reason=\"{}\"}} {}",
            reason.label(),
            scrape.skipped.get(&reason).copied().unwrap_or(0)
        )?;
    }

    render_uploads(scrape, format, out)?;

    family(
        out,
        format,
        "pureftpd_exporter_build_info",
        "gauge",
        "The exporter's version, as a label; always 1.",
    )?;
    writeln!(
        out,
        "pureftpd_exporter_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )?;
    if format == Format::OpenMetrics {
        writeln!(out, "# EOF")?;
    }
    Ok(())
}

fn render_uploads(scrape: &Scrape, format: Format, out: &mut dyn Write) -> io::Result<()> {
    // Counter samples end in `_total` in both formats.
    let total = |name: &str| format!("{name}_total");
    let pipes: Vec<String> = scrape
        .uploads
        .iter()
        .map(|u| format!("pipe=\"{}\"", escape_label(&u.pipe)))
        .collect();
    let each = |out: &mut dyn Write, line: &dyn Fn(&str, &UploadCounters) -> String| {
        for (pipe, u) in pipes.iter().zip(&scrape.uploads) {
            writeln!(out, "{}", line(pipe, u))?;
        }
        io::Result::Ok(())
    };

    family(
        out,
        format,
        "pureftpd_upload_records",
        "counter",
        "Upload records handled by the reader, by outcome.",
    )?;
    let records = total("pureftpd_upload_records");
    each(out, &|pipe, u| {
        [
            ("processed", u.processed),
            ("rejected", u.rejected),
            ("failed", u.failed),
            ("timed_out", u.timed_out),
        ]
        .iter()
        .map(|(outcome, n)| format!("{records}{{{pipe},outcome=\"{outcome}\"}} {n}"))
        .collect::<Vec<_>>()
        .join("\n")
    })?;
    family(
        out,
        format,
        "pureftpd_upload_bytes",
        "counter",
        "Bytes of the uploaded files handed to the program.",
    )?;
    let bytes = total("pureftpd_upload_bytes");
    each(out, &|pipe, u| format!("{bytes}{{{pipe}}} {}", u.bytes))?;
    family(
        out,
        format,
        "pureftpd_upload_retries",
        "counter",
        "Programs run again on a record after a reader stopped during its run.",
    )?;
    let retries = total("pureftpd_upload_retries");
    each(out, &|pipe, u| format!("{retries}{{{pipe}}} {}", u.retries))?;
    family(
        out,
        format,
        "pureftpd_upload_reader_restarts",
        "counter",
        "Readers started on the same counters before the running one.",
    )?;
    let restarts = total("pureftpd_upload_reader_restarts");
    each(out, &|pipe, u| {
        format!("{restarts}{{{pipe}}} {}", u.restarts)
    })?;

    family(
        out,
        format,
        "pureftpd_upload_program_duration_seconds",
        "histogram",
        "Run time of the program per upload.",
    )?;
    each(out, &|pipe, u| {
        let mut lines: Vec<String> = DURATION_BUCKETS
            .iter()
            .zip(&u.duration_buckets)
            .map(|(le, n)| {
                format!(
                    "pureftpd_upload_program_duration_seconds_bucket{{{pipe},le=\"{}\"}} {n}",
                    seconds(*le)
                )
            })
            .collect();
        lines.push(format!(
            "pureftpd_upload_program_duration_seconds_bucket{{{pipe},le=\"+Inf\"}} {}",
            u.duration_count
        ));
        lines.push(format!(
            "pureftpd_upload_program_duration_seconds_sum{{{pipe}}} {}",
            u.duration_sum
        ));
        lines.push(format!(
            "pureftpd_upload_program_duration_seconds_count{{{pipe}}} {}",
            u.duration_count
        ));
        lines.join("\n")
    })?;

    family(
        out,
        format,
        "pureftpd_upload_program_runs_in_flight",
        "gauge",
        "Programs running now (at most `jobs` at once).",
    )?;
    each(out, &|pipe, u| {
        format!(
            "pureftpd_upload_program_runs_in_flight{{{pipe}}} {}",
            u.in_flight
        )
    })?;
    family(
        out,
        format,
        "pureftpd_upload_queue_bytes",
        "gauge",
        "Bytes of upload records waiting in the pipe, as last seen by the reader.",
    )?;
    each(out, &|pipe, u| {
        format!("pureftpd_upload_queue_bytes{{{pipe}}} {}", u.queue_bytes)
    })?;
    family(
        out,
        format,
        "pureftpd_upload_queue_records",
        "gauge",
        "Upload records in the reader's queue on disk not done yet: pending, running or waiting for a retry.",
    )?;
    each(out, &|pipe, u| {
        format!(
            "pureftpd_upload_queue_records{{{pipe}}} {}",
            u.queue_records
        )
    })?;
    family(
        out,
        format,
        "pureftpd_upload_queue_failed_records",
        "gauge",
        "Upload records kept as failed in the reader's queue (their retries ran out).",
    )?;
    each(out, &|pipe, u| {
        format!(
            "pureftpd_upload_queue_failed_records{{{pipe}}} {}",
            u.queue_failed
        )
    })?;
    family(
        out,
        format,
        "pureftpd_upload_queue_oldest_age_seconds",
        "gauge",
        "Age of the oldest upload record not done in the reader's queue; 0 when there is none.",
    )?;
    each(out, &|pipe, u| {
        format!(
            "pureftpd_upload_queue_oldest_age_seconds{{{pipe}}} {}",
            u.queue_oldest_age_seconds
        )
    })?;
    family(
        out,
        format,
        "pureftpd_upload_reader_start_time_seconds",
        "gauge",
        "When the running upload reader started, seconds since the epoch.",
    )?;
    each(out, &|pipe, u| {
        format!(
            "pureftpd_upload_reader_start_time_seconds{{{pipe}}} {}",
            u.start_time
        )
    })?;
    family(
        out,
        format,
        "pureftpd_upload_reader_build_info",
        "gauge",
        "The upload reader's version, as a label; always 1.",
    )?;
    each(out, &|pipe, u| {
        format!(
            "pureftpd_upload_reader_build_info{{{pipe},version=\"{}\"}} 1",
            escape_label(&u.build_version)
        )
    })?;
    family(
        out,
        format,
        "pureftpd_upload_state_errors",
        "gauge",
        "Upload readers' state files found but not readable as counters.",
    )?;
    writeln!(
        out,
        "pureftpd_upload_state_errors {}",
        scrape.upload_state_errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ftpwho::scoreboard::{RecordError, Unlocked};
    use nix::errno::Errno;

    #[test]
    fn every_note_has_its_label() {
        use scoreboard::SkipReason as Why;
        let skipped = |reason| Note::Skipped {
            file: "client-1".into(),
            reason,
        };
        let cases = [
            (skipped(Why::Stale { pid: 7 }), "stale"),
            (
                Note::Removed {
                    file: "client-1".into(),
                    pid: 7,
                },
                "stale",
            ),
            (
                Note::NotRemoved {
                    file: "client-1".into(),
                    pid: 7,
                    error: Errno::EROFS,
                },
                "stale",
            ),
            (
                Note::ReadUnlocked {
                    file: "client-1".into(),
                    reason: Unlocked::Held { timeout_ms: 10 },
                },
                "unlocked",
            ),
            (skipped(Why::SymbolicLink), "not_regular"),
            (skipped(Why::NotRegular), "not_regular"),
            (skipped(Why::WrongOwner { uid: 4321 }), "owner"),
            (
                skipped(Why::WrongSize {
                    size: 100,
                    expected: 200,
                }),
                "layout",
            ),
            (skipped(Why::UnknownSize { size: 100 }), "layout"),
            (skipped(Why::Record(RecordError::BadLayout)), "layout"),
            (skipped(Why::WrongMode { mode: 0o400 }), "unreadable"),
            (skipped(Why::CannotOpen(Errno::EACCES)), "unreadable"),
            (skipped(Why::CannotStat(Errno::EIO)), "unreadable"),
            (skipped(Why::ShortRead { bytes: 3 }), "unreadable"),
            (skipped(Why::CannotRead(Errno::EIO)), "unreadable"),
            (Note::ReadingDirectory(Errno::EIO), "unreadable"),
        ];
        for (note, label) in cases {
            assert_eq!(SkipReason::of_note(&note).label(), label, "{note}");
        }
    }
}
