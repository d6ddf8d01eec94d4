//! The upload reader's counters, published for the metrics exporter.
//!
//! The reader keeps its counters in memory and rewrites them, as one JSON
//! document, in a state file when they change, at most every
//! [`PUBLISH_EVERY`] while uploads keep coming and at once when the reader
//! has nothing left to do, so that `pureftpd-exporter` serves them without
//! reading the journal back.
//! The file is `$STATE_DIRECTORY/metrics.json` (the unit's
//! `StateDirectory=`); without `STATE_DIRECTORY` nothing is published.
//!
//! The file is opened (created, mode 0644) while the reader is still root,
//! before it switches to the `-u`/`-g` identity (`isolation = "process"`),
//! which could not write in a root-owned directory: it is then rewritten in place (one `pwrite` and an
//! `ftruncate`) under an exclusive `flock`; readers take a shared `flock`,
//! so they never see half a document.
//!
//! Across restarts: a new reader that finds a valid document of the same
//! [`FORMAT_VERSION`], for the same pipe and written since the machine
//! booted (same `boot_id`), carries its counters on and counts the
//! restart; when the earlier reader died with a program running, that
//! record's program runs again (the record was still in the pipe) and the
//! run is counted in `retries`. After a reboot the counters start again at
//! zero, as the pipe's content is gone too; Prometheus' `rate()` and
//! `increase()` handle such resets, and `start_time` tells them apart.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Counters that changed are written at most this often while busy.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(200);

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::os::fd;
use crate::upload::audit::Outcome;
use crate::upload::program::{Report, Status};

/// Version of the state file's document; a reader or exporter that finds
/// another version ignores the file.
pub const FORMAT_VERSION: u32 = 1;

/// Name of the state file in the state directory.
pub const FILE_NAME: &str = "metrics.json";

/// Upper bounds, in seconds, of the buckets of the program run time
/// histogram (`+Inf` is implied): from a few milliseconds for a quick
/// check to the default ten-minute timeout.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0, 600.0,
];

/// The published counters: the state file's document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UploadCounters {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The pipe the reader reads (absolute path).
    pub pipe: String,
    /// The reader's package version.
    pub build_version: String,
    /// The kernel's boot id when the document was written.
    #[serde(default)]
    pub boot_id: String,
    /// When the running reader started, seconds since the epoch.
    pub start_time: f64,
    /// Readers started on this file before the running one.
    pub restarts: u64,
    /// Records whose program exited with status 0.
    pub processed: u64,
    /// Records refused (malformed, or not a regular file).
    pub rejected: u64,
    /// Runs that failed (status, signal, not startable), timeouts apart.
    pub failed: u64,
    /// Runs killed at the timeout.
    pub timed_out: u64,
    /// Bytes of the files handed to the program.
    pub bytes: u64,
    /// Runs per bucket of [`DURATION_BUCKETS`], cumulative (`le`).
    pub duration_buckets: Vec<u64>,
    /// Runs timed (the `+Inf` bucket).
    pub duration_count: u64,
    /// Summed run time, seconds.
    pub duration_sum: f64,
    /// Programs running now (0 or 1: records are processed in order).
    pub in_flight: u64,
    /// Bytes waiting in the pipe when the file was written.
    pub queue_bytes: u64,
    /// Programs run again for a record after a reader died during its run.
    pub retries: u64,
    /// Records in the reader's queue on disk not done yet: pending,
    /// running or waiting for a retry (failed ones apart).
    #[serde(default)]
    pub queue_records: u64,
    /// Records kept as failed in the queue (their retries ran out).
    #[serde(default)]
    pub queue_failed: u64,
    /// Age of the oldest record of `queue_records`, seconds; 0 when none.
    #[serde(default)]
    pub queue_oldest_age_seconds: f64,
}

impl UploadCounters {
    /// Fresh counters for a reader of `pipe` started at `start_time`.
    pub fn new(pipe: &Path, start_time: f64) -> UploadCounters {
        UploadCounters {
            version: FORMAT_VERSION,
            pipe: pipe.to_string_lossy().into_owned(),
            build_version: env!("CARGO_PKG_VERSION").to_owned(),
            boot_id: boot_id(),
            start_time,
            duration_buckets: vec![0; DURATION_BUCKETS.len()],
            ..UploadCounters::default()
        }
    }

    /// Parses a state file's bytes; `None` for anything but a consistent
    /// document of this [`FORMAT_VERSION`].
    pub fn parse(bytes: &[u8]) -> Option<UploadCounters> {
        let counters: UploadCounters = serde_json::from_slice(bytes).ok()?;
        let consistent = counters.version == FORMAT_VERSION
            && counters.duration_buckets.len() == DURATION_BUCKETS.len()
            && counters.duration_buckets.windows(2).all(|w| w[0] <= w[1])
            && counters.duration_buckets.last() <= Some(&counters.duration_count)
            && counters.duration_sum.is_finite()
            && counters.duration_sum >= 0.0
            && counters.start_time.is_finite()
            && counters.queue_oldest_age_seconds.is_finite()
            && counters.queue_oldest_age_seconds >= 0.0;
        consistent.then_some(counters)
    }

    /// The counters a new reader of `pipe` goes on with after `previous`,
    /// the document an earlier reader left (in this boot): its totals, one
    /// more restart, and a retry if it died while a program ran.
    pub fn carried_on(previous: Option<UploadCounters>, pipe: &Path, start_time: f64) -> Self {
        let mut next = UploadCounters::new(pipe, start_time);
        if let Some(old) =
            previous.filter(|old| old.pipe == next.pipe && old.boot_id == next.boot_id)
        {
            next = UploadCounters {
                build_version: next.build_version,
                boot_id: next.boot_id,
                start_time,
                restarts: old.restarts + 1,
                retries: old.retries + old.in_flight,
                in_flight: 0,
                queue_bytes: 0,
                ..old
            };
        }
        next
    }

    /// Counts one record's outcome.
    pub fn count(&mut self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Processed => &mut self.processed,
            Outcome::Rejected => &mut self.rejected,
            Outcome::Failed => &mut self.failed,
            Outcome::TimedOut => &mut self.timed_out,
        };
        *counter += 1;
    }

    /// Counts a finished run: the file's size and the run time.
    pub fn observe_run(&mut self, size: u64, duration: Duration) {
        let seconds = duration.as_secs_f64();
        self.bytes = self.bytes.saturating_add(size);
        for (bound, n) in DURATION_BUCKETS.iter().zip(&mut self.duration_buckets) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        self.duration_count += 1;
        self.duration_sum += seconds;
    }
}

/// True when the program ran and how it ended is known (its run time
/// with it).
fn program_ended(status: &Status) -> bool {
    match status {
        Status::Exited(_) | Status::Signaled(_) | Status::TimedOut | Status::OverLimit(_) => true,
        Status::Unstartable(_) | Status::NoAnswer(_) => false,
    }
}

/// The state file of `dir`.
pub fn state_file(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Reads a state file under a shared lock; `Ok(None)` when it holds no
/// valid document (empty, foreign, another version).
pub fn read_state(path: &Path) -> io::Result<Option<UploadCounters>> {
    let file = File::open(path)?;
    let mut file = lock(file, FlockArg::LockSharedNonblock)?;
    let mut bytes = Vec::with_capacity(2048);
    // A document is a few hundred bytes; a larger file is not ours.
    (&mut *file).take(64 * 1024).read_to_end(&mut bytes)?;
    Ok(UploadCounters::parse(&bytes))
}

/// Takes `arg` (a non-blocking lock) on `file`, retrying for up to a
/// second: writers hold the lock for one write.
fn lock(file: File, arg: FlockArg) -> io::Result<Flock<File>> {
    let mut file = file;
    for _ in 0..1000 {
        match Flock::lock(file, arg) {
            Ok(locked) => return Ok(locked),
            Err((back, nix::errno::Errno::EWOULDBLOCK | nix::errno::Errno::EINTR)) => {
                file = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((_, errno)) => return Err(errno.into()),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        "the state file stayed locked",
    ))
}

/// Bytes waiting to be read in the pipe `fd`, 0 when unknown.
fn pending_bytes(fd: BorrowedFd<'_>) -> u64 {
    fd::pending_bytes(fd).unwrap_or(0)
}

/// The kernel's id of this boot, "" when unknown.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The reader's side: counters in memory and the state file they are
/// written to. Every method is a no-op when nothing is published.
#[derive(Debug)]
pub struct Publisher {
    file: Option<File>,
    counters: UploadCounters,
    buf: Vec<u8>,
    /// Changed since the last write.
    dirty: bool,
    written: Instant,
}

impl Publisher {
    /// Publishes the counters of the reader of `pipe` in the unit's
    /// state directory (`STATE_DIRECTORY`, the first if several), or
    /// nowhere. Call it before dropping privileges. A file that cannot be
    /// written is logged, not fatal: uploads go on without metrics.
    pub fn for_pipe(pipe: &Path) -> Publisher {
        let dir = std::env::var_os("STATE_DIRECTORY").and_then(|v| {
            v.to_str()
                .and_then(|s| s.split(':').next())
                .map(PathBuf::from)
        });
        let Some(dir) = dir.filter(|d| d.is_absolute()) else {
            return Publisher::disabled(pipe);
        };
        match Publisher::open(&state_file(&dir), pipe) {
            Ok(publisher) => publisher,
            Err(e) => {
                tracing::warn!(
                    "cannot publish upload metrics in {}: {e}",
                    state_file(&dir).display()
                );
                Publisher::disabled(pipe)
            }
        }
    }

    /// Counters kept in memory only.
    pub fn disabled(pipe: &Path) -> Publisher {
        Publisher {
            file: None,
            counters: UploadCounters::new(pipe, now()),
            buf: Vec::new(),
            dirty: false,
            written: Instant::now(),
        }
    }

    /// Publishes in `path`, going on from the counters found there, and
    /// writes them at once.
    pub fn open(path: &Path, pipe: &Path) -> io::Result<Publisher> {
        let previous = read_state(path).unwrap_or(None);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        let mut publisher = Publisher {
            file: Some(file),
            counters: UploadCounters::carried_on(previous, pipe, now()),
            buf: Vec::with_capacity(1024),
            dirty: true,
            written: Instant::now(),
        };
        publisher.write()?;
        publisher.dirty = false;
        Ok(publisher)
    }

    /// The counters as they stand.
    pub fn counters(&self) -> &UploadCounters {
        &self.counters
    }

    /// Programs are about to run: `in_flight` run at once now.
    pub fn run_starts(&mut self, in_flight: u64, pipe: BorrowedFd<'_>) {
        self.counters.in_flight = in_flight;
        self.counters.queue_bytes = pending_bytes(pipe);
        self.publish();
    }

    /// A run on a record is over: its file's size and its run time are
    /// counted when the program started and its ending is known, in the
    /// reader's process or in a run unit alike; a program that could not
    /// be started, or a run unit that gave no answer, is only counted by
    /// its record's outcome.
    pub fn ran(&mut self, report: &Report) {
        if program_ended(&report.status) {
            self.counters
                .observe_run(report.facts.size, report.duration);
        }
    }

    /// A run was cut short by the reader's own stop: the record stays
    /// queued, and its run by the next reader is not a retry;
    /// `in_flight` runs go on.
    pub fn interrupted(&mut self, in_flight: u64) {
        self.counters.in_flight = in_flight;
        self.publish();
    }

    /// The queue as it stands: `records` not done (failed ones apart),
    /// `failed`, and the age of the oldest of `records`.
    pub fn queue(&mut self, records: u64, failed: u64, oldest: Option<Duration>) {
        self.counters.queue_records = records;
        self.counters.queue_failed = failed;
        self.counters.queue_oldest_age_seconds = oldest.map_or(0.0, |d| d.as_secs_f64());
        self.publish();
    }

    /// A failed run on a record will be run again later (a retry);
    /// `in_flight` runs go on.
    pub fn retried(&mut self, in_flight: u64) {
        self.counters.in_flight = in_flight;
        self.counters.retries += 1;
        self.publish();
    }

    /// A record is done with `outcome` (processed, rejected, or failed for
    /// good); `in_flight` runs go on.
    pub fn record_done(&mut self, outcome: Outcome, in_flight: u64, pipe: BorrowedFd<'_>) {
        self.counters.in_flight = in_flight;
        self.counters.count(outcome);
        self.counters.queue_bytes = pending_bytes(pipe);
        self.publish();
    }

    /// The counters changed: written now if the last write is
    /// [`PUBLISH_EVERY`] old, else by [`Publisher::flush`] or
    /// [`Publisher::flush_due`].
    fn publish(&mut self) {
        self.dirty = true;
        self.flush_due();
    }

    /// Writes the counters if they changed and the last write is
    /// [`PUBLISH_EVERY`] old.
    pub fn flush_due(&mut self) {
        if self.written.elapsed() >= PUBLISH_EVERY {
            self.flush();
        }
    }

    /// Writes the counters if they changed since the last write.
    pub fn flush(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        self.written = Instant::now();
        if let Err(e) = self.write() {
            tracing::warn!("cannot write the upload metrics: {e}; no longer publishing them");
            self.file = None;
        }
    }

    /// True while changed counters wait to be written.
    pub fn unwritten(&self) -> bool {
        self.dirty && self.file.is_some()
    }

    fn write(&mut self) -> io::Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &self.counters)?;
        self.buf.push(b'\n');
        let locked = lock(file, FlockArg::LockExclusiveNonblock)?;
        let written = locked
            .write_all_at(&self.buf, 0)
            .and_then(|()| locked.set_len(self.buf.len() as u64));
        self.file = locked.unlock().ok();
        written
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pipe() -> &'static Path {
        Path::new("/run/pure-ftpd.upload.pipe")
    }

    #[test]
    fn outcomes_and_runs_are_counted() {
        let mut c = UploadCounters::new(pipe(), 10.0);
        for o in [
            Outcome::Processed,
            Outcome::Processed,
            Outcome::Rejected,
            Outcome::Failed,
            Outcome::TimedOut,
        ] {
            c.count(o);
        }
        assert_eq!(
            (c.processed, c.rejected, c.failed, c.timed_out),
            (2, 1, 1, 1)
        );
        c.observe_run(100, Duration::from_millis(3));
        c.observe_run(50, Duration::from_secs(2));
        c.observe_run(1, Duration::from_secs(3600));
        assert_eq!(c.bytes, 151);
        assert_eq!(c.duration_count, 3);
        // 3 ms is in every bucket, 2 s from 2.5 on, an hour in none.
        assert_eq!(
            c.duration_buckets,
            [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
        );
        assert!((c.duration_sum - 3602.003).abs() < 1e-9);
        assert_eq!(
            UploadCounters::parse(&serde_json::to_vec(&c).unwrap()),
            Some(c)
        );
    }

    #[test]
    fn a_restart_carries_the_counters_on_and_counts_an_interrupted_run() {
        let mut old = UploadCounters::new(pipe(), 10.0);
        old.count(Outcome::Processed);
        old.in_flight = 1;
        old.queue_bytes = 40;
        let next = UploadCounters::carried_on(Some(old.clone()), pipe(), 20.0);
        assert_eq!(next.processed, 1);
        assert_eq!((next.restarts, next.retries), (1, 1));
        assert_eq!((next.in_flight, next.queue_bytes), (0, 0));
        assert_eq!(next.start_time, 20.0);
        // Another pipe's file, another boot's, or none: from zero.
        let other = UploadCounters::carried_on(Some(old.clone()), Path::new("/x"), 20.0);
        assert_eq!((other.processed, other.restarts), (0, 0));
        let rebooted = UploadCounters {
            boot_id: "another boot".into(),
            ..old
        };
        let other = UploadCounters::carried_on(Some(rebooted), pipe(), 20.0);
        assert_eq!((other.processed, other.restarts), (0, 0));
        assert_eq!(
            UploadCounters::carried_on(None, pipe(), 1.0),
            UploadCounters::new(pipe(), 1.0)
        );
    }

    #[test]
    fn garbage_and_inconsistent_documents_are_refused() {
        let good = serde_json::to_vec(&UploadCounters::new(pipe(), 1.0)).unwrap();
        assert!(UploadCounters::parse(&good).is_some());
        for bad in [
            &b""[..],
            b"\0\0\0",
            b"{}",
            b"[1,2]",
            b"{\"version\":1}",
            &good[..good.len() / 2],
        ] {
            assert_eq!(UploadCounters::parse(bad), None, "{bad:?}");
        }
        let mut c = UploadCounters::new(pipe(), 1.0);
        c.version = 2;
        assert_eq!(
            UploadCounters::parse(&serde_json::to_vec(&c).unwrap()),
            None
        );
        let mut c = UploadCounters::new(pipe(), 1.0);
        c.duration_buckets = vec![0; 3];
        assert_eq!(
            UploadCounters::parse(&serde_json::to_vec(&c).unwrap()),
            None
        );
        let mut c = UploadCounters::new(pipe(), 1.0);
        c.duration_buckets[0] = 5;
        assert_eq!(
            UploadCounters::parse(&serde_json::to_vec(&c).unwrap()),
            None
        );
    }

    #[test]
    fn the_publisher_rewrites_its_file_and_a_new_one_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_file(dir.path());
        let (read_end, _write_end) = nix::unistd::pipe().unwrap();
        let mut p = Publisher::open(&path, pipe()).unwrap();
        assert_eq!(read_state(&path).unwrap().unwrap().processed, 0);
        p.run_starts(1, std::os::fd::AsFd::as_fd(&read_end));
        // Written at most every PUBLISH_EVERY, and when flushed.
        assert_eq!(read_state(&path).unwrap().unwrap().in_flight, 0);
        assert!(p.unwritten());
        p.flush();
        assert!(!p.unwritten());
        assert_eq!(read_state(&path).unwrap().unwrap().in_flight, 1);
        p.record_done(Outcome::Processed, 0, std::os::fd::AsFd::as_fd(&read_end));
        std::thread::sleep(PUBLISH_EVERY);
        p.record_done(Outcome::Rejected, 0, std::os::fd::AsFd::as_fd(&read_end));
        // The last write was long enough ago: written at once.
        assert!(!p.unwritten());
        let seen = read_state(&path).unwrap().unwrap();
        assert_eq!((seen.processed, seen.rejected, seen.in_flight), (1, 1, 0));
        // Floats go through JSON with at most a unit in the last place lost.
        assert!((seen.start_time - p.counters().start_time).abs() < 1e-3);
        assert_eq!(
            UploadCounters {
                start_time: 0.0,
                ..seen
            },
            UploadCounters {
                start_time: 0.0,
                ..p.counters().clone()
            }
        );
        p.run_starts(1, std::os::fd::AsFd::as_fd(&read_end));
        drop(p);
        let again = Publisher::open(&path, pipe()).unwrap();
        assert_eq!(again.counters().processed, 1);
        assert_eq!(
            (again.counters().restarts, again.counters().retries),
            (1, 1)
        );
        // Garbage in the file: from zero.
        std::fs::write(&path, b"{\"version\": 1, garbage").unwrap();
        let fresh = Publisher::open(&path, pipe()).unwrap();
        assert_eq!(fresh.counters().processed, 0);
        assert_eq!(read_state(&path).unwrap().unwrap().processed, 0);
    }

    fn report(status: Status) -> Report {
        Report {
            facts: crate::upload::program::FileFacts {
                size: 1000,
                perms: 0o644,
                uid: 0,
                gid: 0,
                user: None,
                group: None,
            },
            sha256: None,
            fd_passed: true,
            notes: Vec::new(),
            status,
            duration: Duration::from_millis(20),
            stdout_tail: Vec::new(),
            stderr_tail: Vec::new(),
            usage: None,
        }
    }

    #[test]
    fn only_runs_whose_program_ended_are_timed() {
        use crate::upload::program::Limit;
        let mut p = Publisher::disabled(pipe());
        let (read_end, _write_end) = nix::unistd::pipe().unwrap();
        let fd = std::os::fd::AsFd::as_fd(&read_end);
        for status in [
            Status::Exited(0),
            Status::Exited(1),
            Status::Signaled(libc::SIGSEGV),
            Status::TimedOut,
            Status::OverLimit(Limit::Memory),
        ] {
            p.run_starts(1, fd);
            p.ran(&report(status));
            assert_eq!(p.counters().in_flight, 1);
            p.record_done(Outcome::Processed, 0, fd);
            assert_eq!(p.counters().in_flight, 0);
        }
        assert_eq!((p.counters().duration_count, p.counters().bytes), (5, 5000));
        // Not started, in the reader's process or in a unit, or no answer
        // from the run unit: no run time, no bytes handed over.
        for status in [
            Status::Unstartable(io::Error::from_raw_os_error(libc::ENOENT)),
            Status::NoAnswer("the run unit ended without an answer".into()),
        ] {
            p.run_starts(1, fd);
            p.ran(&report(status));
            p.record_done(Outcome::Failed, 0, fd);
        }
        assert_eq!((p.counters().duration_count, p.counters().bytes), (5, 5000));
        assert_eq!((p.counters().failed, p.counters().in_flight), (2, 0));
    }

    #[test]
    fn a_run_interrupted_before_its_program_is_no_retry() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_file(dir.path());
        let (read_end, _write_end) = nix::unistd::pipe().unwrap();
        let mut p = Publisher::open(&path, pipe()).unwrap();
        p.run_starts(1, std::os::fd::AsFd::as_fd(&read_end));
        p.interrupted(0);
        assert_eq!(read_state(&path).unwrap().unwrap().in_flight, 0);
        drop(p);
        let next = Publisher::open(&path, pipe()).unwrap();
        assert_eq!((next.counters().restarts, next.counters().retries), (1, 0));
    }

    #[test]
    fn pending_bytes_of_a_pipe() {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&write_end, b"\x02alice\x01/f\0").unwrap();
        assert_eq!(pending_bytes(std::os::fd::AsFd::as_fd(&read_end)), 10);
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = UploadCounters::parse(&bytes);
        }
    }
}
