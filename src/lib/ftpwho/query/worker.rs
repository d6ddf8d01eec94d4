//! The responder's workers: a fixed pool of threads, one per processor,
//! that answer the requests the accept loop has read, one function per
//! operation (`ping`, `list`, `count`, `stats`).
//!
//! A connection is handed to a worker with its request line and handed
//! back when its answer is written, or put aside (with the answer's
//! place) when the client does not read it as fast; no worker waits on a
//! client. Requests that need the scoreboard board a [`Flight`]: one
//! worker scans, the others' requests wait for that scan without holding
//! a worker, and each is answered from it in its own format and filters.

use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::answer::{Answer, ListPlan, Progress};
use super::auth::{Access, Peer};
use super::limits::{LogLimit, Slot, Slots};
use super::names::NamePool;
use super::protocol::{
    parse_request, ErrorCode, Op, ProtocolError, Request, Response, Stats, View,
};
use super::snapshot::{Flight, Snapshot};
use crate::ftpwho::report::{Filter, Format, Lookup};
use crate::ftpwho::scoreboard::{Scoreboard, State};
use crate::ftpwho::settings::Settings;
use crate::os::fs;

/// `MESSAGE_ID` of the journal entry written when a peer is refused.
pub const DENIED_MESSAGE_ID: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a70";

/// The longest a listing waits for host names (and at most half the
/// request time); addresses still unresolved are printed numerically.
pub const NAME_WAIT: Duration = Duration::from_secs(1);

/// The responder's counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Requests refused for lack of permission.
    pub denied: AtomicU64,
    /// Requests answered with another error (busy included).
    pub errors: AtomicU64,
}

/// What the accept loop and the workers share.
pub struct Shared {
    /// The settings.
    pub settings: Settings,
    /// The scoreboard, read without removing stale entries.
    pub scoreboard: Scoreboard,
    /// The gid of the allowed group, if it exists.
    pub group_gid: Option<u32>,
    /// When the responder started.
    pub started: Instant,
    /// Counters for `stats` and the status line.
    pub counters: Counters,
    /// Connection slots.
    pub slots: Arc<Slots>,
    /// Rate limit of the refusal warnings.
    pub refusals: LogLimit,
    /// When the last connection closed.
    pub last_closed: Mutex<Instant>,
    flight: Flight<Waiting>,
    names: NamePool,
}

impl Shared {
    /// The shared state of a responder with `settings`.
    pub fn new(settings: Settings, scoreboard: Scoreboard, group_gid: Option<u32>) -> Shared {
        Shared {
            slots: Slots::new(settings.max_connections, settings.max_connections_per_user),
            settings,
            scoreboard,
            group_gid,
            started: Instant::now(),
            counters: Counters::default(),
            refusals: LogLimit::new(10, Duration::from_secs(10)),
            last_closed: Mutex::new(Instant::now()),
            flight: Flight::default(),
            names: NamePool::new(),
        }
    }

    /// Logs a refusal, unless too many were logged lately.
    pub fn log_refusal(&self, log: impl FnOnce(u64)) {
        if let Some(suppressed) = self.refusals.admit() {
            log(suppressed)
        }
    }
}

/// One client connection, whoever holds it (the accept loop while it
/// waits for a request or for the client to read, a worker while it is
/// answered).
pub struct Conn {
    /// The socket (non-blocking).
    pub stream: UnixStream,
    /// Who is on the other end.
    pub peer: Peer,
    /// What it may see.
    pub access: Access,
    /// Bytes read and not yet answered.
    pub inbuf: Vec<u8>,
    /// The deadline of the current request: for it to arrive and for its
    /// whole answer to be written.
    pub deadline: Instant,
    /// Answers written.
    pub answered: u64,
    /// The client has shut down its side: close after the last answer.
    pub eof: bool,
    /// Its connection slot, while a request is awaited or answered.
    pub slot: Option<Slot>,
    shared: Arc<Shared>,
}

impl Conn {
    /// A newly accepted connection holding `slot`.
    pub fn new(
        stream: UnixStream,
        peer: Peer,
        access: Access,
        slot: Slot,
        shared: Arc<Shared>,
    ) -> Conn {
        shared.counters.open.fetch_add(1, Ordering::SeqCst);
        Conn {
            stream,
            peer,
            access,
            inbuf: Vec::new(),
            deadline: Instant::now() + shared.settings.request_timeout,
            answered: 0,
            eof: false,
            slot: Some(slot),
            shared,
        }
    }

    /// The first complete request line in the input, taken out of it.
    pub fn take_line(&mut self) -> Option<Vec<u8>> {
        let end = self.inbuf.iter().position(|&b| b == b'\n')?;
        let line = self.inbuf.drain(..=end).collect();
        Some(line)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Closed first, then uncounted, so a client may reconnect at once.
        self.slot = None;
        *self
            .shared
            .last_closed
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.shared.counters.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Work for the pool.
pub enum Job {
    /// Answer this request line.
    Request(Conn, Vec<u8>),
    /// Go on writing this answer (the client reads again).
    Resume(Conn, Box<Answer>),
    /// Answer a request from this scan.
    Scanned(Waiting, Arc<Snapshot>),
}

/// What a worker hands back to the accept loop.
pub enum Back {
    /// Answered: wait for the next request.
    Read(Conn),
    /// The client does not read: wait until it does.
    Park(Conn, Box<Answer>),
}

/// A request waiting for a scan.
pub struct Waiting {
    conn: Conn,
    request: Request,
    view: View,
    users: Vec<String>,
}

struct Queues {
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
    back: Mutex<Vec<Back>>,
    /// Written to wake the accept loop when something is handed back.
    wake: UnixStream,
    /// Connections in the pool's hands (queued, worked on, or waiting
    /// for a scan).
    held: AtomicU64,
}

/// The pool of workers.
pub struct Pool {
    queues: Arc<Queues>,
}

impl Pool {
    /// Starts `threads` workers; `wake` is written when a connection is
    /// handed back.
    pub fn start(shared: &Arc<Shared>, threads: usize, wake: UnixStream) -> std::io::Result<Pool> {
        wake.set_nonblocking(true)?;
        let queues = Arc::new(Queues {
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            back: Mutex::new(Vec::new()),
            wake,
            held: AtomicU64::new(0),
        });
        for _ in 0..threads.max(1) {
            let queues = Arc::clone(&queues);
            let shared = Arc::clone(shared);
            std::thread::Builder::new()
                .name("ftpwhod-worker".into())
                .spawn(move || work_forever(&shared, &queues))?;
        }
        Ok(Pool { queues })
    }

    /// Hands `job` to a worker.
    pub fn submit(&self, job: Job) {
        self.queues.held.fetch_add(1, Ordering::SeqCst);
        push(&self.queues, job);
    }

    /// What the workers handed back since the last call.
    pub fn take_back(&self) -> Vec<Back> {
        std::mem::take(&mut *self.queues.back.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Connections in the workers' hands.
    pub fn held(&self) -> u64 {
        self.queues.held.load(Ordering::SeqCst)
    }
}

fn push(queues: &Queues, job: Job) {
    queues
        .jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push_back(job);
    queues.ready.notify_one();
}

fn work_forever(shared: &Shared, queues: &Queues) {
    loop {
        let job = {
            let mut jobs = queues.jobs.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                match jobs.pop_front() {
                    Some(job) => break job,
                    None => jobs = queues.ready.wait(jobs).unwrap_or_else(|e| e.into_inner()),
                }
            }
        };
        let outcome = match job {
            Job::Request(conn, line) => request(shared, queues, conn, &line),
            Job::Resume(conn, answer) => Some(drive(shared, conn, *answer)),
            Job::Scanned(waiting, snapshot) => Some(from_snapshot(shared, waiting, &snapshot)),
        };
        match outcome {
            // Waiting for a scan: still in the pool's hands.
            None => continue,
            Some(None) => {}
            Some(Some(back)) => {
                queues
                    .back
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(back);
            }
        }
        queues.held.fetch_sub(1, Ordering::SeqCst);
        let _ = (&queues.wake).write(&[1]);
    }
}

/// Writes `answer` as far as the client takes it. `None` when the
/// connection is to be closed.
fn drive(shared: &Shared, mut conn: Conn, mut answer: Answer) -> Option<Back> {
    // The slot is freed as the answer's last bytes go.
    match answer.write_to(&conn.stream, conn.deadline, &mut conn.slot) {
        Ok(Progress::Done) => {
            conn.answered += 1;
            conn.deadline = Instant::now() + shared.settings.request_timeout;
            (!conn.eof).then_some(Back::Read(conn))
        }
        Ok(Progress::Blocked) if Instant::now() < conn.deadline => {
            Some(Back::Park(conn, Box::new(answer)))
        }
        Ok(Progress::Blocked) | Err(_) => None,
    }
}

/// Counts `result` and turns it into an answer line.
fn finish(shared: &Shared, result: Result<Response, ProtocolError>) -> Answer {
    let counters = &shared.counters;
    counters.requests.fetch_add(1, Ordering::SeqCst);
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            if error.code == ErrorCode::PermissionDenied {
                counters.denied.fetch_add(1, Ordering::SeqCst);
            } else {
                counters.errors.fetch_add(1, Ordering::SeqCst);
            }
            Response::error(error)
        }
    };
    Answer::line(response.to_line())
}

/// Answers one request line. `None` while it waits for a scan.
fn request(shared: &Shared, queues: &Queues, conn: Conn, line: &[u8]) -> Option<Option<Back>> {
    if Instant::now() >= conn.deadline {
        return Some(None);
    }
    let request = match parse_request(line) {
        Ok(request) => request,
        Err(error) => {
            let answer = finish(shared, Err(error));
            return Some(drive(shared, conn, answer));
        }
    };
    tracing::debug!(
        PEER_UID = conn.peer.uid,
        PEER_PID = conn.peer.pid,
        op = request.op.name(),
        "request"
    );
    let answer = match request.op {
        Op::Ping => finish(shared, Ok(ping())),
        Op::Stats if conn.access != Access::All => {
            let why = format!(
                "stats are for root and members of group {}",
                shared.settings.group
            );
            finish(shared, Err(denied(shared, &conn.peer, &request, &why)))
        }
        Op::Count
            if request.states.is_empty()
                && !request.users.is_empty()
                && conn.access == Access::All =>
        {
            finish(shared, count_at_login(shared, &request))
        }
        Op::List | Op::Count | Op::Stats => {
            let (view, users) = match view_users(shared, &request, &conn.peer, &conn.access) {
                Ok(seen) => seen,
                Err(error) => {
                    let answer = finish(shared, Err(error));
                    return Some(drive(shared, conn, answer));
                }
            };
            let waiting = Waiting {
                conn,
                request,
                view,
                users,
            };
            let waiting = shared.flight.board(waiting)?;
            let scanned = Snapshot::take(&shared.scoreboard);
            let others = shared.flight.land();
            return Some(match scanned {
                Ok(snapshot) => {
                    let snapshot = Arc::new(snapshot);
                    for other in others {
                        push(queues, Job::Scanned(other, Arc::clone(&snapshot)));
                    }
                    from_snapshot(shared, waiting, &snapshot)
                }
                Err(e) => {
                    let error = || ProtocolError::new(ErrorCode::Scoreboard, e.to_string());
                    for other in others {
                        let answer = finish(shared, Err(error()));
                        if let Some(back) = drive(shared, other.conn, answer) {
                            queues
                                .back
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(back);
                        }
                        queues.held.fetch_sub(1, Ordering::SeqCst);
                    }
                    let answer = finish(shared, Err(error()));
                    drive(shared, waiting.conn, answer)
                }
            });
        }
    };
    Some(drive(shared, conn, answer))
}

/// Answers a request that waited for `snapshot`.
fn from_snapshot(shared: &Shared, waiting: Waiting, snapshot: &Arc<Snapshot>) -> Option<Back> {
    let Waiting {
        conn,
        request,
        view,
        users,
    } = waiting;
    if Instant::now() >= conn.deadline {
        return None;
    }
    let answer = match request.op {
        Op::List => list(shared, &conn, &request, view, users, snapshot),
        Op::Count => finish(shared, Ok(count(&request, view, &users, snapshot))),
        _ => finish(shared, Ok(stats(shared, snapshot))),
    };
    drive(shared, conn, answer)
}

fn denied(shared: &Shared, peer: &Peer, request: &Request, why: &str) -> ProtocolError {
    shared.log_refusal(|suppressed| {
        tracing::warn!(
            MESSAGE_ID = DENIED_MESSAGE_ID,
            PEER_UID = peer.uid,
            PEER_GID = peer.gid,
            PEER_PID = peer.pid,
            REQUEST_OP = request.op.name(),
            SUPPRESSED = suppressed,
            "refused {} from uid {} (pid {}): {why}{}",
            request.op.name(),
            peer.uid,
            peer.pid,
            suppressed_note(suppressed)
        )
    });
    ProtocolError::new(
        ErrorCode::PermissionDenied,
        format!("permission denied: {why}"),
    )
}

/// " (N similar messages suppressed)" when N is not 0.
pub fn suppressed_note(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} similar messages suppressed)")
    }
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
                shared,
                peer,
                request,
                &format!("uid {} may only see the sessions of {name}", peer.uid),
            )),
            None => Ok((View::Own, vec![name.clone()])),
        },
        Access::Denied => Err(denied(
            shared,
            peer,
            request,
            &format!(
                "uid {} is neither root nor a member of group {}",
                peer.uid, shared.settings.group
            ),
        )),
    }
}

/// `ping`: the responder's name and version; reads nothing.
fn ping() -> Response {
    let mut response = Response::ok(Op::Ping);
    response.server = Some(format!("ftpwhod {}", env!("CARGO_PKG_VERSION")));
    response
}

/// `list`: the sessions the peer may see, in its format, streamed.
fn list(
    shared: &Shared,
    conn: &Conn,
    request: &Request,
    view: View,
    users: Vec<String>,
    snapshot: &Arc<Snapshot>,
) -> Answer {
    shared.counters.requests.fetch_add(1, Ordering::SeqCst);
    let format = request.format.unwrap_or_default();
    let filter = Filter {
        users: users.into_iter().map(String::into_bytes).collect(),
        states: request.states.clone(),
    };
    // OpenMetrics shows no addresses: never wait for name lookups.
    let names = (!request.numeric && format != Format::Openmetrics).then(|| {
        let wait = NAME_WAIT.min(shared.settings.request_timeout / 2);
        let deadline = (Instant::now() + wait).min(conn.deadline);
        let lookups = (0..snapshot.len())
            .filter(|&i| {
                (filter.states.is_empty() || filter.states.contains(&snapshot.state(i)))
                    && (filter.users.is_empty()
                        || filter.users.iter().any(|u| u == snapshot.account(i)))
            })
            .flat_map(|i| Lookup::of_entry(&snapshot.entry(i)));
        let mut gone = || client_gone(&conn.stream);
        shared.names.names(lookups, deadline, &mut gone)
    });
    Answer::list(
        Arc::clone(snapshot),
        ListPlan {
            format,
            view,
            filter,
            names,
            top_users: shared.settings.top_users,
            now: fs::unix_time(),
        },
    )
}

/// True when the client has closed its connection (not merely its side).
fn client_gone(stream: &UnixStream) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// `count` of every account, of the accounts named, in the states named:
/// from the scan, the accounts matched exactly as `list` matches them in
/// the per-user view, without regard to case otherwise.
fn count(request: &Request, view: View, users: &[String], snapshot: &Snapshot) -> Response {
    let named = |account: &[u8]| {
        users.is_empty()
            || users.iter().any(|u| match view {
                View::Own => u.as_bytes() == account,
                View::All => u.as_bytes().eq_ignore_ascii_case(account),
            })
    };
    let count = (0..snapshot.len())
        .filter(|&i| {
            (request.states.is_empty() || request.states.contains(&snapshot.state(i)))
                && named(snapshot.account(i))
        })
        .count();
    let mut response = Response::ok(Op::Count);
    response.view = Some(view);
    response.count = Some(count as u64);
    response
}

/// `count` of the named accounts as the server counts them at login, all
/// accounts in one pass over the directory.
fn count_at_login(shared: &Shared, request: &Request) -> Result<Response, ProtocolError> {
    let users: Vec<&[u8]> = request.users.iter().map(|u| u.as_bytes()).collect();
    let count = shared
        .scoreboard
        .count_sessions_of(&users)
        .map(|n| n as u64)
        .map_err(|e| ProtocolError::new(ErrorCode::Scoreboard, e.to_string()))?;
    let mut response = Response::ok(Op::Count);
    response.view = Some(View::All);
    response.count = Some(count);
    Ok(response)
}

/// `stats`: the responder's counters and a summary of the scan.
fn stats(shared: &Shared, snapshot: &Snapshot) -> Response {
    let c = &shared.counters;
    let mut stats = Stats {
        // This request is counted once answered; include it.
        requests: c.requests.load(Ordering::SeqCst) + 1,
        connections: c.connections.load(Ordering::SeqCst),
        active_connections: c.open.load(Ordering::SeqCst),
        denied: c.denied.load(Ordering::SeqCst),
        errors: c.errors.load(Ordering::SeqCst),
        uptime_ms: shared.started.elapsed().as_millis() as u64,
        skipped: snapshot.skipped as u64,
        sessions: snapshot.len() as u64,
        ..Stats::default()
    };
    let mut users = std::collections::HashSet::new();
    for i in 0..snapshot.len() {
        match snapshot.state(i) {
            State::Idle => stats.idle += 1,
            State::Download => stats.download += 1,
            State::Upload => stats.upload += 1,
            State::Free | State::Unknown(_) => {}
        }
        users.insert(snapshot.account(i));
    }
    stats.users = users.len() as u64;
    let mut response = Response::ok(Op::Stats);
    response.stats = Some(stats);
    response
}
