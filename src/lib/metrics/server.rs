//! The exporter: an accept loop over the TCP socket systemd passes, one
//! thread per connection, one request per connection.
//!
//! Each connection has `request_timeout` to send a request head of at most
//! `max_request_bytes`, and counts against `max_connections` (more get
//! `503` at once). Every scrape scans the scoreboard afresh, read-only and
//! without name look-ups, and reads the upload readers' state files. The
//! loop returns when no client has connected for `idle_timeout`, so systemd
//! starts the exporter again on the next scrape.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::exposition::{self, negotiate, Format, Scrape, SkipReason};
use super::http::{self, Method, Parsed, Status};
use super::settings::ExporterSettings;
use crate::ftpwho::report::openmetrics::{transfer_of, Metrics};
use crate::ftpwho::report::Session;
use crate::ftpwho::scoreboard::{ScanOptions, Scoreboard, State};
use crate::os::systemd;
use crate::upload::metrics::{read_state, state_file, UploadCounters};

/// Gathers one scrape's numbers: the scoreboard (read-only, no name
/// look-ups) and the upload readers' state files under `upload_state_dirs`.
pub fn collect(
    scoreboard: &Scoreboard,
    top_users: usize,
    upload_state_dirs: &[impl AsRef<Path>],
) -> Scrape {
    let now = unix_now();
    let mut sessions: Vec<(State, Vec<u8>, u64, u64)> = Vec::new();
    let mut oldest = 0;
    let scan = scoreboard.scan_each(|entry| {
        let session = Session::new(entry, now, Vec::new(), Vec::new(), Vec::new());
        let (moved, rate) = transfer_of(&session);
        oldest = oldest.max(session.since);
        sessions.push((session.entry.state, session.entry.account, moved, rate));
    });
    let mut scrape = Scrape {
        oldest_session_seconds: oldest,
        ..Scrape::default()
    };
    match scan {
        Ok(notes) => {
            scrape.scoreboard_readable = true;
            for note in &notes {
                *scrape.skipped.entry(SkipReason::of_note(note)).or_default() += 1;
            }
        }
        Err(e) => tracing::debug!("scoreboard: {e}"),
    }
    scrape.sessions = Metrics::from_transfers(
        sessions
            .iter()
            .map(|(state, account, moved, rate)| (*state, account.as_slice(), *moved, *rate)),
        top_users,
    );
    let (uploads, errors) = upload_counters(upload_state_dirs);
    scrape.uploads = uploads;
    scrape.upload_state_errors = errors;
    scrape
}

/// The state files directly in each directory or one level down, read;
/// with the count of those that exist but could not be used. One series
/// per pipe: of two files for one pipe, the newer reader's wins.
pub fn upload_counters(dirs: &[impl AsRef<Path>]) -> (Vec<UploadCounters>, u64) {
    let mut files = Vec::new();
    for dir in dirs {
        let dir = dir.as_ref();
        files.push(state_file(dir));
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut subdirs: Vec<_> = entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| state_file(&e.path()))
                .collect();
            subdirs.sort();
            files.extend(subdirs);
        }
    }
    let mut found: Vec<UploadCounters> = Vec::new();
    let mut errors = 0;
    for file in files {
        match read_state(&file) {
            Ok(Some(counters)) => match found.iter_mut().find(|c| c.pipe == counters.pipe) {
                Some(same) if same.start_time < counters.start_time => *same = counters,
                Some(_) => {}
                None => found.push(counters),
            },
            Ok(None) => errors += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::debug!("{}: {e}", file.display());
                errors += 1;
            }
        }
    }
    found.sort_by(|a, b| a.pipe.cmp(&b.pipe));
    (found, errors)
}

/// "Now" as `pure-ftpwho` reads it (C's `time(NULL)`).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Connections accepted.
    pub connections: u64,
    /// Metrics served.
    pub scrapes: u64,
}

struct Shared {
    settings: ExporterSettings,
    scoreboard: Scoreboard,
    active: AtomicUsize,
    connections: AtomicU64,
    scrapes: AtomicU64,
    last_activity: Mutex<Instant>,
}

/// An exporter bound to its listening socket.
pub struct Exporter {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// Uncounts a connection and stamps the activity time however it ends.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if let Ok(mut last) = self.0.last_activity.lock() {
            *last = Instant::now();
        }
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Exporter {
    /// An exporter on `listener`; the scoreboard is only read (stale
    /// entries are passed over, never removed).
    pub fn new(listener: TcpListener, settings: ExporterSettings) -> io::Result<Exporter> {
        let mut scoreboard = Scoreboard::new(&settings.scoreboard);
        scoreboard.options = ScanOptions {
            remove_stale: false,
            layout: settings.layout,
            ..scoreboard.options.clone()
        };
        listener.set_nonblocking(true)?;
        Ok(Exporter {
            listener,
            shared: Arc::new(Shared {
                settings,
                scoreboard,
                active: AtomicUsize::new(0),
                connections: AtomicU64::new(0),
                scrapes: AtomicU64::new(0),
                last_activity: Mutex::new(Instant::now()),
            }),
        })
    }

    fn status_line(&self) -> String {
        format!(
            "{} scrapes served",
            self.shared.scrapes.load(Ordering::SeqCst)
        )
    }

    /// Serves until the idle timeout passes with no client connected;
    /// `READY=1` first, `STATUS=` as scrapes are served, `STOPPING=1` at
    /// the end.
    pub fn run(&self) -> io::Result<Summary> {
        systemd::notify_ready(&self.status_line());
        let mut reported = 0;
        loop {
            let now = Instant::now();
            let scrapes = self.shared.scrapes.load(Ordering::SeqCst);
            if scrapes != reported {
                systemd::notify_status(&self.status_line());
                reported = scrapes;
            }
            let mut wait = Duration::from_secs(1);
            if let Some(idle) = self.shared.settings.idle_timeout {
                if self.shared.active.load(Ordering::SeqCst) == 0 {
                    let last = *self
                        .shared
                        .last_activity
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    let deadline = last + idle;
                    if now >= deadline {
                        systemd::notify_stopping();
                        return Ok(Summary {
                            connections: self.shared.connections.load(Ordering::SeqCst),
                            scrapes: self.shared.scrapes.load(Ordering::SeqCst),
                        });
                    }
                    wait = wait.min(deadline - now);
                }
            }
            let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            let millis = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
            match poll(
                &mut fds,
                PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) => continue,
                Ok(_) => self.accept_ready()?,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn accept_ready(&self) -> io::Result<()> {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.dispatch(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNABORTED | libc::EMFILE | libc::ENFILE | libc::ENOBUFS)
                    ) =>
                {
                    tracing::warn!(%e, "accept failed");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn dispatch(&self, stream: TcpStream) {
        let shared = &self.shared;
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_nonblocking(false);
        let active = shared.active.fetch_add(1, Ordering::SeqCst);
        let guard = ActiveGuard(Arc::clone(shared));
        if active >= shared.settings.max_connections {
            let mut stream = stream;
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = stream.write_all(&http::error_answer(Status::Unavailable));
            return;
        }
        let worker = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("exporter-conn".into())
            .spawn(move || {
                serve_connection(&worker, stream);
                drop(guard);
            });
        if let Err(e) = spawned {
            tracing::warn!(%e, "cannot start a thread for a connection");
        }
    }
}

/// Reads one request head within the deadline and answers it.
fn serve_connection(shared: &Shared, mut stream: TcpStream) {
    let settings = &shared.settings;
    let deadline = Instant::now() + settings.request_timeout;
    let max = settings.max_request_bytes;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let request = loop {
        match http::parse(&buf, max) {
            Parsed::Complete(request) => break Ok(request),
            Parsed::Refused(status) => break Err(status),
            Parsed::Partial => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break Err(Status::RequestTimeout);
        }
        let room = (max - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            // Closed before a whole head: nobody to answer.
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break Err(Status::RequestTimeout)
            }
            Err(_) => return,
        }
    };
    let answer = match request {
        Err(status) => {
            tracing::debug!(status = status.code(), "refused a request");
            http::error_answer(status)
        }
        Ok(request) => match http::route(&request) {
            Some(status) => http::error_answer(status),
            None => {
                let format = negotiate(request.accept.as_deref());
                let mut answer = metrics_answer(shared, format);
                if request.method == Method::Head {
                    let end = answer
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(answer.len(), |p| p + 4);
                    answer.truncate(end);
                }
                answer
            }
        },
    };
    let _ = stream.set_write_timeout(Some(settings.request_timeout));
    let _ = stream.write_all(&answer);
    // Let the peer read the answer before the connection closes.
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// The whole `200` answer with the metrics in `format`.
fn metrics_answer(shared: &Shared, format: Format) -> Vec<u8> {
    let settings = &shared.settings;
    let scrape = collect(
        &shared.scoreboard,
        settings.top_users,
        &settings.upload_state_dirs,
    );
    let mut body = Vec::with_capacity(8192);
    if let Err(e) = exposition::render(&scrape, format, &mut body) {
        tracing::warn!("cannot render the metrics: {e}");
        return http::error_answer(Status::InternalError);
    }
    shared.scrapes.fetch_add(1, Ordering::SeqCst);
    let mut answer = http::head(Status::Ok, format.content_type(), body.len()).into_bytes();
    answer.extend_from_slice(&body);
    answer
}
