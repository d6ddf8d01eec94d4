//! The upload audit trail: one structured log event per upload record.
//!
//! Every event carries a `MESSAGE_ID` from [`message_ids`] and upper-case
//! fields that the journal stores as they are, so
//! `journalctl -u pure-uploadscript UPLOAD_VUSER=alice` lists alice's
//! uploads, and `journalctl MESSAGE_ID=5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a62`
//! every failed run:
//!
//! | field | when |
//! |---|---|
//! | `MESSAGE_ID` | always |
//! | `UPLOAD_FILE`, `UPLOAD_VUSER` | always (what was read of them for a rejected record) |
//! | `UPLOAD_SIZE`, `UPLOAD_UID`, `UPLOAD_GID`, `UPLOAD_PERMS` | the program ran |
//! | `UPLOAD_USER`, `UPLOAD_GROUP` | the program ran and the names are known |
//! | `UPLOAD_SHA256` ([`Hash::field`]) | the program ran and `hash = "sha256"` |
//! | `SCRIPT_EXIT_STATUS` | the program exited |
//! | `SCRIPT_SIGNAL` | the program was killed by a signal (9 after a timeout) |
//! | `SCRIPT_ERROR` | the program could not be started |
//! | `SCRIPT_DURATION_USEC` | the program was started |
//! | `SCRIPT_TIMEOUT_USEC` | the program timed out |
//! | `SCRIPT_STDOUT`, `SCRIPT_STDERR` | output captured and not empty (its end) |
//! | `SCRIPT_UNIT`, `SCRIPT_CPU_USEC`, `SCRIPT_MEMORY_PEAK` | the program ran in a unit of its own: the unit, CPU time, peak memory in bytes |
//! | `SCRIPT_LIMIT` | the run was killed by a resource limit (`memory`, `tasks`) |
//! | `REJECT_REASON` | rejected |
//!
//! File and user names that are not UTF-8 are logged with U+FFFD in place
//! of the invalid bytes.

use std::path::Path;
use std::time::Duration;

use crate::upload::hash::Hash;
use crate::upload::pipe::{Record, Rejection};
use crate::upload::program::{Report, Skip, Status};

/// The field of the SHA-256 checksum, named after its algorithm.
const SHA256_FIELD: &str = match Hash::Sha256.field() {
    Some(field) => field,
    None => panic!("a checksum has a field"),
};

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

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The program exited with status 0.
    Processed,
    /// The record or its file was refused; the program did not run.
    Rejected,
    /// The program failed or could not be started.
    Failed,
    /// The program timed out.
    TimedOut,
}

impl Outcome {
    /// The event's `MESSAGE_ID`.
    pub fn message_id(self) -> &'static str {
        match self {
            Outcome::Processed => message_ids::UPLOAD_PROCESSED,
            Outcome::Rejected => message_ids::UPLOAD_REJECTED,
            Outcome::Failed => message_ids::UPLOAD_FAILED,
            Outcome::TimedOut => message_ids::UPLOAD_TIMED_OUT,
        }
    }
}

/// Running totals, for `STATUS=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records whose program exited with status 0.
    pub processed: u64,
    /// Records refused.
    pub rejected: u64,
    /// Runs that failed (timed out included).
    pub failed: u64,
    /// Runs that timed out.
    pub timed_out: u64,
    /// The last file processed, failed or timed out.
    pub last_file: Option<String>,
}

impl Counts {
    /// Counts one outcome.
    pub fn add(&mut self, outcome: Outcome, file: Option<&[u8]>) {
        match outcome {
            Outcome::Processed => self.processed += 1,
            Outcome::Rejected => self.rejected += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::TimedOut => {
                self.failed += 1;
                self.timed_out += 1;
            }
        }
        if outcome != Outcome::Rejected {
            if let Some(file) = file {
                self.last_file = Some(lossy(file));
            }
        }
    }

    /// The `STATUS=` line.
    pub fn status_line(&self) -> String {
        let mut s = format!(
            "processed {}, rejected {}, failed {} (timed out {})",
            self.processed, self.rejected, self.failed, self.timed_out
        );
        if let Some(last) = &self.last_file {
            s.push_str("; last: ");
            s.push_str(last);
        }
        s
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {signal}"))
}

fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Logs a record the parser rejected.
pub fn rejected_record(rejection: &Rejection) -> Outcome {
    refused(
        &rejection.path,
        &rejection.user,
        &rejection.reason,
        |file, vuser, reason| {
            format!("upload record rejected: {reason} (user {vuser:?}, file {file:?})")
        },
    )
}

/// Logs bytes skipped outside any record.
pub fn skipped_bytes(count: usize) {
    tracing::warn!(
        SKIPPED_BYTES = count as u64,
        "skipped {count} bytes of garbage in the upload pipe"
    );
}

/// Logs a record whose file was not processed (not a regular file...).
pub fn skipped_file(record: &Record, skip: &Skip) -> Outcome {
    refused(&record.file, &record.user, skip, |file, _, reason| {
        format!("{file}: not processed: {reason}")
    })
}

/// Logs a refused record: its file, user and reason as fields, and the
/// message `message(file, vuser, reason)`.
fn refused(
    file: &[u8],
    vuser: &[u8],
    reason: &dyn std::fmt::Display,
    message: impl FnOnce(&str, &str, &str) -> String,
) -> Outcome {
    let file = lossy(file);
    let vuser = lossy(vuser);
    let reason = reason.to_string();
    let message = message(&file, &vuser, &reason);
    tracing::warn!(
        MESSAGE_ID = message_ids::UPLOAD_REJECTED,
        UPLOAD_FILE = file.as_str(),
        UPLOAD_VUSER = vuser.as_str(),
        REJECT_REASON = reason.as_str(),
        "{message}"
    );
    Outcome::Rejected
}

/// Logs a run of `program` on `record`'s file, as `report` tells, and
/// returns its outcome. `timeout` is the configured limit.
pub fn ran(record: &Record, program: &Path, report: &Report, timeout: Option<Duration>) -> Outcome {
    let file = lossy(&record.file);
    let vuser = lossy(&record.user);
    let facts = &report.facts;
    let perms = format!("{:o}", facts.perms);
    let user = facts.user.as_deref().map(lossy);
    let group = facts.group.as_deref().map(lossy);
    let stdout = (!report.stdout_tail.is_empty()).then(|| lossy(&report.stdout_tail));
    let stderr = (!report.stderr_tail.is_empty()).then(|| lossy(&report.stderr_tail));
    let duration_usec = report.duration.as_micros() as u64;
    let program = program.display();
    for note in &report.notes {
        tracing::warn!(UPLOAD_FILE = file.as_str(), "{file}: {note}");
    }
    let (outcome, exit, signal, error, message) = match &report.status {
        Status::Exited(0) => (
            Outcome::Processed,
            Some(0),
            None,
            None,
            format!(
                "{file}: processed by {program} in {}",
                human(report.duration)
            ),
        ),
        Status::Exited(n) => (
            Outcome::Failed,
            Some(*n),
            None,
            None,
            format!("{file}: {program} exited with status {n}"),
        ),
        Status::Signaled(s) => (
            Outcome::Failed,
            None,
            Some(*s),
            None,
            format!("{file}: {program} was killed by {}", signal_name(*s)),
        ),
        Status::TimedOut => (
            Outcome::TimedOut,
            None,
            Some(libc::SIGKILL),
            None,
            format!(
                "{file}: {program} timed out after {}; its process group was killed",
                human(timeout.unwrap_or(report.duration))
            ),
        ),
        Status::Unstartable(e) => (
            Outcome::Failed,
            None,
            None,
            Some(e.to_string()),
            format!("{file}: {program} could not be started: {e}"),
        ),
        Status::OverLimit(limit) => (
            Outcome::Failed,
            None,
            Some(libc::SIGKILL),
            None,
            format!(
                "{file}: {program} was killed by the {} limit",
                limit.as_str()
            ),
        ),
        Status::NoAnswer(why) => (
            Outcome::Failed,
            None,
            None,
            Some(why.clone()),
            format!("{file}: {program}: {why}"),
        ),
    };
    let limit = match &report.status {
        Status::OverLimit(limit) => Some(limit.as_str()),
        _ => None,
    };
    let usage = report.usage.as_ref();
    let unit = usage.map(|u| u.unit.as_str());
    let cpu_usec = usage.and_then(|u| u.cpu_usec);
    let peak_bytes = usage.and_then(|u| u.peak_bytes);
    let timeout_usec = (outcome == Outcome::TimedOut)
        .then(|| timeout.map(|t| t.as_micros() as u64))
        .flatten();
    macro_rules! emit {
        ($level:expr) => {
            tracing::event!(
                $level,
                MESSAGE_ID = outcome.message_id(),
                UPLOAD_FILE = file.as_str(),
                UPLOAD_VUSER = vuser.as_str(),
                UPLOAD_SIZE = facts.size,
                UPLOAD_UID = facts.uid,
                UPLOAD_GID = facts.gid,
                UPLOAD_PERMS = perms.as_str(),
                UPLOAD_USER = user.as_deref(),
                UPLOAD_GROUP = group.as_deref(),
                { SHA256_FIELD } = report.sha256.as_deref(),
                SCRIPT_EXIT_STATUS = exit,
                SCRIPT_SIGNAL = signal,
                SCRIPT_ERROR = error.as_deref(),
                SCRIPT_DURATION_USEC = duration_usec,
                SCRIPT_TIMEOUT_USEC = timeout_usec,
                SCRIPT_STDOUT = stdout.as_deref(),
                SCRIPT_STDERR = stderr.as_deref(),
                SCRIPT_UNIT = unit,
                SCRIPT_CPU_USEC = cpu_usec,
                SCRIPT_MEMORY_PEAK = peak_bytes,
                SCRIPT_LIMIT = limit,
                "{message}"
            )
        };
    }
    if outcome == Outcome::Processed {
        emit!(tracing::Level::INFO);
    } else {
        emit!(tracing::Level::WARN);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::pipe::Reason;
    use crate::upload::program::FileFacts;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    type Events = Arc<Mutex<Vec<(tracing::Level, BTreeMap<String, String>)>>>;

    /// Records every event's fields as strings.
    struct Recorder(Events);

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            self.0
                .lock()
                .unwrap()
                .push((*event.metadata().level(), fields));
        }
    }

    fn capture(f: impl FnOnce()) -> Vec<(tracing::Level, BTreeMap<String, String>)> {
        let events = Events::default();
        let subscriber = tracing_subscriber::registry().with(Recorder(events.clone()));
        tracing::subscriber::with_default(subscriber, f);
        let v = events.lock().unwrap().clone();
        v
    }

    fn record() -> Record {
        Record {
            user: b"alice".to_vec(),
            path: b"/srv/ftp/alice/r\xe9sum\xc3\xa9.pdf".to_vec(),
            file: b"/srv/ftp/alice/r\xe9sum\xc3\xa9.pdf".to_vec(),
        }
    }

    fn report(status: Status) -> Report {
        Report {
            facts: FileFacts {
                size: 1234,
                perms: 0o640,
                uid: 1001,
                gid: 1002,
                user: Some(b"alice".to_vec()),
                group: None,
            },
            sha256: Some("ab".repeat(32)),
            fd_passed: true,
            notes: vec![],
            status,
            duration: Duration::from_micros(1500),
            stdout_tail: vec![],
            stderr_tail: b"bad things\n".to_vec(),
            usage: None,
        }
    }

    fn keys(fields: &BTreeMap<String, String>) -> Vec<&str> {
        fields.keys().map(|k| k.as_str()).collect()
    }

    /// Every field name must be a valid journal field name as is.
    fn journal_safe(fields: &BTreeMap<String, String>) {
        for k in fields.keys().filter(|k| *k != "message") {
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                    && !k.starts_with('_')
                    && k.len() <= 64,
                "{k}"
            );
        }
    }

    #[test]
    fn processed_upload_fields() {
        let events = capture(|| {
            let outcome = ran(
                &record(),
                Path::new("/usr/local/bin/scan"),
                &report(Status::Exited(0)),
                Some(Duration::from_secs(600)),
            );
            assert_eq!(outcome, Outcome::Processed);
        });
        assert_eq!(events.len(), 1);
        let (level, f) = &events[0];
        journal_safe(f);
        assert_eq!(*level, tracing::Level::INFO);
        assert_eq!(
            keys(f),
            [
                "MESSAGE_ID",
                "SCRIPT_DURATION_USEC",
                "SCRIPT_EXIT_STATUS",
                "SCRIPT_STDERR",
                "UPLOAD_FILE",
                "UPLOAD_GID",
                "UPLOAD_PERMS",
                "UPLOAD_SHA256",
                "UPLOAD_SIZE",
                "UPLOAD_UID",
                "UPLOAD_USER",
                "UPLOAD_VUSER",
                "message",
            ]
        );
        assert_eq!(f["MESSAGE_ID"], "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a60");
        assert_eq!(f["UPLOAD_FILE"], "/srv/ftp/alice/r\u{fffd}sumé.pdf");
        assert_eq!(f["UPLOAD_VUSER"], "alice");
        assert_eq!(f["UPLOAD_SIZE"], "1234");
        assert_eq!(f["UPLOAD_UID"], "1001");
        assert_eq!(f["UPLOAD_GID"], "1002");
        assert_eq!(f["UPLOAD_PERMS"], "640");
        assert_eq!(f["UPLOAD_SHA256"], "ab".repeat(32));
        assert_eq!(f["SCRIPT_EXIT_STATUS"], "0");
        assert_eq!(f["SCRIPT_DURATION_USEC"], "1500");
        assert_eq!(f["SCRIPT_STDERR"], "bad things\n");
        assert_eq!(
            f["message"],
            "/srv/ftp/alice/r\u{fffd}sumé.pdf: processed by /usr/local/bin/scan in 1.5 ms"
        );
    }

    #[test]
    fn failures_and_timeouts() {
        let cases = [
            (
                Status::Exited(3),
                "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a62",
                "SCRIPT_EXIT_STATUS",
                "3",
            ),
            (
                Status::Signaled(11),
                "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a62",
                "SCRIPT_SIGNAL",
                "11",
            ),
            (
                Status::Unstartable(std::io::Error::from_raw_os_error(libc::ENOENT)),
                "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a62",
                "SCRIPT_ERROR",
                "No such file or directory (os error 2)",
            ),
            (
                Status::TimedOut,
                "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a63",
                "SCRIPT_TIMEOUT_USEC",
                "600000000",
            ),
        ];
        for (status, id, key, value) in cases {
            let events = capture(|| {
                ran(
                    &record(),
                    Path::new("/p"),
                    &report(status),
                    Some(Duration::from_secs(600)),
                );
            });
            let (level, f) = &events[0];
            journal_safe(f);
            assert_eq!(*level, tracing::Level::WARN);
            assert_eq!(f["MESSAGE_ID"], id);
            assert_eq!(f[key], value, "{f:?}");
            assert!(f.contains_key("SCRIPT_DURATION_USEC") && f.contains_key("UPLOAD_SIZE"));
        }
        let events = capture(|| {
            ran(
                &record(),
                Path::new("/p"),
                &report(Status::TimedOut),
                Some(Duration::from_secs(600)),
            );
        });
        assert_eq!(events[0].1["SCRIPT_SIGNAL"], "9");
        assert_eq!(
            events[0].1["message"],
            "/srv/ftp/alice/r\u{fffd}sumé.pdf: /p timed out after 600.0 s; its process group was killed"
        );
    }

    #[test]
    fn rejections() {
        let events = capture(|| {
            rejected_record(&Rejection {
                reason: Reason::ControlInPath(7),
                user: b"bob".to_vec(),
                path: b"/x".to_vec(),
            });
            skipped_file(&record(), &Skip::NotRegular("directory"));
        });
        assert_eq!(events.len(), 2);
        for (level, f) in &events {
            journal_safe(f);
            assert_eq!(*level, tracing::Level::WARN);
            assert_eq!(f["MESSAGE_ID"], "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a61");
            assert_eq!(
                keys(f),
                [
                    "MESSAGE_ID",
                    "REJECT_REASON",
                    "UPLOAD_FILE",
                    "UPLOAD_VUSER",
                    "message"
                ]
            );
        }
        assert_eq!(
            events[0].1["REJECT_REASON"],
            "control byte 0x07 in the file name"
        );
        assert_eq!(
            events[1].1["REJECT_REASON"],
            "not a regular file but a directory"
        );
    }

    #[test]
    fn counts_make_the_status_line() {
        let mut c = Counts::default();
        assert_eq!(
            c.status_line(),
            "processed 0, rejected 0, failed 0 (timed out 0)"
        );
        c.add(Outcome::Processed, Some(b"/a"));
        c.add(Outcome::Rejected, Some(b"/b"));
        c.add(Outcome::TimedOut, Some(b"/c"));
        c.add(Outcome::Failed, None);
        assert_eq!(
            c.status_line(),
            "processed 1, rejected 1, failed 2 (timed out 1); last: /c"
        );
    }
}
