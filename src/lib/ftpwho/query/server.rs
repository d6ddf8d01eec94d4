//! The responder: an accept loop over a listening unix socket, one thread
//! per connection.
//!
//! Each connection has a deadline per request (`request_timeout`, for
//! reading the request and writing the answer), a bound on the request
//! line, and counts against `max_connections`; a connection over the bound
//! gets a `busy` answer at once. Every request scans the scoreboard afresh
//! and read-only. The loop returns when no client has been connected for
//! `idle_timeout`, so systemd starts the responder again on demand.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::auth::{Access, Peer};
use super::protocol::{
    parse_request, ErrorCode, Op, ProtocolError, Request, Response, Stats, View,
};
use crate::ftpwho::report::{self, Format, Report, SessionBuilder};
use crate::ftpwho::scoreboard::{Entry, ScanOptions, Scoreboard, State};
use crate::ftpwho::settings::Settings;
use crate::os::{fs, systemd};

/// `MESSAGE_ID` of the journal entry written when a peer is refused.
pub const DENIED_MESSAGE_ID: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a70";

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    active: AtomicU64,
    requests: AtomicU64,
    denied: AtomicU64,
    errors: AtomicU64,
}

struct Shared {
    settings: Settings,
    /// The scoreboard of `settings`, read without removing stale entries.
    scoreboard: Scoreboard,
    group_gid: Option<u32>,
    started: Instant,
    counters: Counters,
    last_activity: Mutex<Instant>,
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered.
    pub requests: u64,
    /// Requests refused for lack of permission.
    pub denied: u64,
}

/// A responder bound to its listening socket.
pub struct Server {
    listener: UnixListener,
    shared: Arc<Shared>,
}

/// Decrements the active count and stamps the activity time when a
/// connection ends, however it ends.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if let Ok(mut last) = self.0.last_activity.lock() {
            *last = Instant::now();
        }
        self.0.counters.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Server {
    /// A responder on `listener`. The scoreboard is read without removing
    /// stale entries. A missing group is not an error: only root may query
    /// then (a warning is logged).
    pub fn new(listener: UnixListener, settings: Settings) -> io::Result<Server> {
        let scoreboard = Scoreboard::with_options(
            &settings.scoreboard,
            ScanOptions {
                layout: settings.layout,
                remove_stale: false,
                ..ScanOptions::default()
            },
        );
        let group_gid = super::auth::group_id(&settings.group)?;
        if group_gid.is_none() {
            tracing::warn!(
                GROUP = settings.group.as_str(),
                "group {:?} does not exist; only root may query",
                settings.group
            );
        }
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                settings,
                scoreboard,
                group_gid,
                started: Instant::now(),
                counters: Counters::default(),
                last_activity: Mutex::new(Instant::now()),
            }),
        })
    }

    fn summary(&self) -> Summary {
        let c = &self.shared.counters;
        Summary {
            connections: c.connections.load(Ordering::SeqCst),
            requests: c.requests.load(Ordering::SeqCst),
            denied: c.denied.load(Ordering::SeqCst),
        }
    }

    fn status_line(&self) -> String {
        let c = &self.shared.counters;
        format!(
            "{} queries served, {} connections open",
            c.requests.load(Ordering::SeqCst),
            c.active.load(Ordering::SeqCst)
        )
    }

    /// Serves until the idle timeout passes with no client connected.
    /// Sends `READY=1` first, then `STATUS=` when the count of queries
    /// changes and `WATCHDOG=1` as the unit asks.
    pub fn run(&self) -> io::Result<Summary> {
        systemd::notify_ready(&self.status_line());
        let watchdog = systemd::watchdog_ping_interval();
        let mut next_watchdog = watchdog.map(|d| Instant::now() + d);
        let mut reported = 0;
        loop {
            let now = Instant::now();
            let requests = self.shared.counters.requests.load(Ordering::SeqCst);
            if requests != reported {
                systemd::notify_status(&self.status_line());
                reported = requests;
            }
            if let (Some(interval), Some(at)) = (watchdog, next_watchdog) {
                if now >= at {
                    systemd::notify_watchdog();
                    next_watchdog = Some(now + interval);
                }
            }
            let mut wait = Duration::from_secs(1);
            if let Some(at) = next_watchdog {
                wait = wait.min(at.saturating_duration_since(now));
            }
            if let Some(idle) = self.shared.settings.idle_timeout {
                if self.shared.counters.active.load(Ordering::SeqCst) == 0 {
                    let last = *self
                        .shared
                        .last_activity
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    let deadline = last + idle;
                    if now >= deadline {
                        tracing::debug!("idle for {idle:?}, exiting");
                        systemd::notify_stopping();
                        return Ok(self.summary());
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
                // The peer went away before we took it, or we are short of
                // descriptors: keep serving the others.
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

    fn dispatch(&self, stream: UnixStream) {
        let shared = &self.shared;
        shared.counters.connections.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut last) = shared.last_activity.lock() {
            *last = Instant::now();
        }
        let _ = stream.set_nonblocking(false);
        let active = shared.counters.active.fetch_add(1, Ordering::SeqCst);
        let guard = ActiveGuard(Arc::clone(shared));
        if active >= shared.settings.max_connections as u64 {
            refuse(
                &stream,
                ProtocolError::new(
                    ErrorCode::Busy,
                    format!(
                        "{} connections are being served; try again",
                        shared.settings.max_connections
                    ),
                ),
            );
            shared.counters.errors.fetch_add(1, Ordering::SeqCst);
            return;
        }
        let worker = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("ftpwhod-conn".into())
            .spawn(move || {
                let mut stream = stream;
                serve_connection(&worker, &mut stream);
                // Uncount the connection before the peer sees it closed, so
                // that a client may reconnect at once.
                drop(guard);
                drop(stream);
            });
        if let Err(e) = spawned {
            tracing::warn!(%e, "cannot start a thread for a connection");
        }
    }

    /// Serves one connection on the calling thread (the accept loop runs
    /// each on its own thread).
    pub fn serve(&self, mut stream: UnixStream) {
        self.shared.counters.active.fetch_add(1, Ordering::SeqCst);
        let guard = ActiveGuard(Arc::clone(&self.shared));
        serve_connection(&self.shared, &mut stream);
        drop(guard);
    }
}

/// Answers `error` without waiting on the peer.
fn refuse(mut stream: &UnixStream, error: ProtocolError) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = stream.write_all(&Response::error(error).to_line());
}

fn serve_connection(shared: &Shared, stream: &mut UnixStream) {
    let peer = match Peer::of(stream) {
        Ok(peer) => peer,
        Err(e) => {
            refuse(
                stream,
                ProtocolError::new(
                    ErrorCode::Internal,
                    format!("cannot read peer credentials: {e}"),
                ),
            );
            return;
        }
    };
    let access = peer.access(shared.group_gid, shared.settings.per_user_view);
    let max = shared.settings.max_request_bytes;
    let timeout = shared.settings.request_timeout;
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = vec![0u8; max.min(64 * 1024) + 1];
    let mut answered = 0u64;
    let mut deadline = Instant::now() + timeout;
    let send = |stream: &mut UnixStream, response: Response| -> bool {
        let _ = stream.set_write_timeout(Some(timeout));
        stream.write_all(&response.to_line()).is_ok()
    };
    loop {
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            if pos + 1 > max {
                break;
            }
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let response = answer(shared, &line, &peer, &access);
            if !send(stream, response) {
                return;
            }
            answered += 1;
            deadline = Instant::now() + timeout;
        }
        if buf.len() >= max {
            shared.counters.errors.fetch_add(1, Ordering::SeqCst);
            let error = ProtocolError::new(
                ErrorCode::TooLarge,
                format!("a request line may be at most {max} bytes, newline included"),
            );
            send(stream, Response::error(error));
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            timed_out(shared, stream, &buf, answered, &send);
            return;
        }
        let room = (max + 1 - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => {
                // End of input: a last line without its newline is still a
                // request.
                if !buf.is_empty() {
                    let response = answer(shared, &buf, &peer, &access);
                    send(stream, response);
                }
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                timed_out(shared, stream, &buf, answered, &send);
                return;
            }
            Err(_) => return,
        }
    }
}

/// A client that sent nothing, or half a request, in time gets a `timeout`
/// answer; one that went quiet after its answers is just closed.
fn timed_out(
    shared: &Shared,
    stream: &mut UnixStream,
    buf: &[u8],
    answered: u64,
    send: &dyn Fn(&mut UnixStream, Response) -> bool,
) {
    if buf.is_empty() && answered > 0 {
        return;
    }
    shared.counters.errors.fetch_add(1, Ordering::SeqCst);
    let error = ProtocolError::new(
        ErrorCode::Timeout,
        format!(
            "no complete request within {:?}",
            shared.settings.request_timeout
        ),
    );
    send(stream, Response::error(error));
}

/// The answer to one request line from `peer`.
fn answer(shared: &Shared, line: &[u8], peer: &Peer, access: &Access) -> Response {
    let counters = &shared.counters;
    let result = parse_request(line).and_then(|request| {
        tracing::debug!(
            PEER_UID = peer.uid,
            PEER_PID = peer.pid,
            op = request.op.name(),
            "request"
        );
        execute(shared, &request, peer, access)
    });
    counters.requests.fetch_add(1, Ordering::SeqCst);
    match result {
        Ok(response) => response,
        Err(error) => {
            if error.code == ErrorCode::PermissionDenied {
                counters.denied.fetch_add(1, Ordering::SeqCst);
            } else {
                counters.errors.fetch_add(1, Ordering::SeqCst);
            }
            Response::error(error)
        }
    }
}

fn denied(peer: &Peer, request: &Request, why: &str) -> ProtocolError {
    tracing::warn!(
        MESSAGE_ID = DENIED_MESSAGE_ID,
        PEER_UID = peer.uid,
        PEER_GID = peer.gid,
        PEER_PID = peer.pid,
        REQUEST_OP = request.op.name(),
        "refused {} from uid {} (pid {}): {why}",
        request.op.name(),
        peer.uid,
        peer.pid
    );
    ProtocolError::new(
        ErrorCode::PermissionDenied,
        format!("permission denied: {why}"),
    )
}

/// The accounts whose sessions the peer may see: empty for all, after
/// checking that the request does not name someone else.
fn view_users(
    shared: &Shared,
    request: &Request,
    peer: &Peer,
    access: &Access,
) -> Result<(View, Vec<String>), ProtocolError> {
    match access {
        Access::All => Ok((View::All, request.users.clone())),
        Access::Own(name) => match request.users.iter().find(|&other| other != name) {
            Some(_) => Err(denied(
                peer,
                request,
                &format!("uid {} may only see the sessions of {name}", peer.uid),
            )),
            None => Ok((View::Own, vec![name.clone()])),
        },
        Access::Denied => Err(denied(
            peer,
            request,
            &format!(
                "uid {} is neither root nor a member of group {}",
                peer.uid, shared.settings.group
            ),
        )),
    }
}

/// Hands each live entry to `each`, logging what the scan passed over;
/// returns how many files were passed over.
fn scan_each(shared: &Shared, each: impl FnMut(Entry)) -> Result<usize, ProtocolError> {
    let notes = shared
        .scoreboard
        .scan_each(each)
        .map_err(|e| ProtocolError::new(ErrorCode::Scoreboard, e.to_string()))?;
    for note in &notes {
        tracing::debug!(note = %note, "scoreboard");
    }
    Ok(notes.len())
}

/// The report module's filter for accounts and states.
fn report_filter(users: &[String], states: &[State]) -> report::Filter {
    report::Filter {
        users: users.iter().map(|u| u.as_bytes().to_vec()).collect(),
        states: states.to_vec(),
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::new(ErrorCode::Internal, format!("{what}: {e}"))
}

fn execute(
    shared: &Shared,
    request: &Request,
    peer: &Peer,
    access: &Access,
) -> Result<Response, ProtocolError> {
    match request.op {
        Op::Ping => Ok(ping()),
        Op::List => list(shared, request, peer, access),
        Op::Count => count(shared, request, peer, access),
        Op::Stats => stats(shared, request, peer, access),
    }
}

/// `ping`: the responder's name and version; reads nothing.
fn ping() -> Response {
    let mut response = Response::ok(Op::Ping);
    response.server = Some(format!("ftpwhod {}", env!("CARGO_PKG_VERSION")));
    response
}

/// `list`: the sessions the peer may see, rendered as they are read.
fn list(
    shared: &Shared,
    request: &Request,
    peer: &Peer,
    access: &Access,
) -> Result<Response, ProtocolError> {
    let (view, users) = view_users(shared, request, peer, access)?;
    let filter = report_filter(&users, &request.states);
    let format = request.format.unwrap_or_default();
    // OpenMetrics shows no addresses: never wait for name lookups.
    let numeric = request.numeric || format == Format::Openmetrics;
    let mut builder = SessionBuilder::new(fs::unix_time(), numeric, filter);
    let mut out = Vec::new();
    let mut report = Report::new(format, &mut out).with_top_users(shared.settings.top_users);
    let mut written = Ok(());
    scan_each(shared, |e| {
        if let (Some(session), Ok(())) = (builder.build(e), &written) {
            written = report.session(&session);
        }
    })?;
    written
        .and_then(|()| report.finish())
        .map_err(|e| internal("rendering", e))?;
    let mut response = Response::ok(Op::List);
    response.format = Some(format);
    response.view = Some(view);
    if format == Format::Json {
        response.data = Some(
            serde_json::from_slice(&out).map_err(|e| internal("the JSON report is not JSON", e))?,
        );
    } else {
        response.set_output(out);
    }
    Ok(response)
}

/// `count`: how many sessions the named accounts (or everyone the peer
/// may see) have, in the requested states.
fn count(
    shared: &Shared,
    request: &Request,
    peer: &Peer,
    access: &Access,
) -> Result<Response, ProtocolError> {
    let (view, mut users) = view_users(shared, request, peer, access)?;
    users.sort_by_key(|u| u.to_ascii_lowercase());
    users.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    let mut count = 0;
    if request.states.is_empty() && !users.is_empty() {
        // Each account as the server counts it at login.
        for user in &users {
            count += shared
                .scoreboard
                .count_sessions(user.as_bytes())
                .map_err(|e| ProtocolError::new(ErrorCode::Scoreboard, e.to_string()))?;
        }
    } else {
        let states = report_filter(&[], &request.states);
        scan_each(shared, |e| {
            let named = users.is_empty()
                || users
                    .iter()
                    .any(|u| e.account.eq_ignore_ascii_case(u.as_bytes()));
            if named && states.accepts(&e) {
                count += 1;
            }
        })?;
    }
    let mut response = Response::ok(Op::Count);
    response.view = Some(view);
    response.count = Some(count as u64);
    Ok(response)
}

/// `stats`: the responder's counters and a summary of the scoreboard, for
/// root and the group only.
fn stats(
    shared: &Shared,
    request: &Request,
    peer: &Peer,
    access: &Access,
) -> Result<Response, ProtocolError> {
    if *access != Access::All {
        return Err(denied(
            peer,
            request,
            &format!(
                "stats are for root and members of group {}",
                shared.settings.group
            ),
        ));
    }
    let c = &shared.counters;
    let mut stats = Stats {
        // This request is counted once answered; include it.
        requests: c.requests.load(Ordering::SeqCst) + 1,
        connections: c.connections.load(Ordering::SeqCst),
        active_connections: c.active.load(Ordering::SeqCst),
        denied: c.denied.load(Ordering::SeqCst),
        errors: c.errors.load(Ordering::SeqCst),
        uptime_ms: shared.started.elapsed().as_millis() as u64,
        ..Stats::default()
    };
    let mut users = std::collections::HashSet::new();
    let skipped = scan_each(shared, |entry| {
        stats.sessions += 1;
        match entry.state {
            State::Idle => stats.idle += 1,
            State::Download => stats.download += 1,
            State::Upload => stats.upload += 1,
            State::Free | State::Unknown(_) => {}
        }
        users.insert(entry.account);
    })?;
    stats.skipped = skipped as u64;
    stats.users = users.len() as u64;
    let mut response = Response::ok(Op::Stats);
    response.stats = Some(stats);
    Ok(response)
}
