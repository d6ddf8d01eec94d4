//! The responder's accept loop: one thread that accepts connections,
//! reads their requests, keeps their deadlines and hands them to the
//! [workers](super::worker); it exits when no client has been connected
//! for `idle_timeout`, so that systemd starts the responder again on
//! demand.
//!
//! Bounds: a connection takes a slot from its accept until its answer is
//! written (at most `max_connections` slots, `max_connections_per_user`
//! for one uid other than root; a connection without one gets `busy` at
//! once); one deadline per request (`request_timeout`) covers its arrival
//! and the writing of its whole answer; a request line is at most
//! `max_request_bytes`. Refusals are logged at most ten per ten seconds,
//! with the count of those suppressed. Clients that do not read their
//! answer keep no worker; the scans their answers are rendered from are
//! bounded in memory ([`PARKED_MEMORY`]). After a burst, when nothing is
//! being answered, the allocator gives its free memory back.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::answer::Answer;
use super::auth::Peer;
use super::protocol::{ErrorCode, ProtocolError, Response};
use super::worker::{suppressed_note, Back, Conn, Job, Pool, Shared};
use crate::ftpwho::scoreboard::{ScanOptions, Scoreboard};
use crate::ftpwho::settings::Settings;
use crate::os::{memory, systemd};

pub use super::worker::DENIED_MESSAGE_ID;

/// `MESSAGE_ID` of the journal entry written when a connection is told
/// `busy`.
pub const BUSY_MESSAGE_ID: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a71";

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

/// The most memory the scans kept for clients that do not read their
/// answers may hold; past it, the oldest of those clients are cut off.
pub const PARKED_MEMORY: usize = 32 * 1024 * 1024;

/// Cuts off the clients that do not read, oldest request first, while the
/// scans they keep hold more than [`PARKED_MEMORY`].
fn bound_parked(parked: &mut HashMap<u64, (Conn, Box<Answer>)>) {
    loop {
        let mut seen = std::collections::HashSet::new();
        let held: usize = parked
            .values()
            .filter_map(|(_, answer)| answer.snapshot())
            .filter(|s| seen.insert(Arc::as_ptr(s)))
            .map(|s| s.bytes())
            .sum();
        if held <= PARKED_MEMORY {
            return;
        }
        let Some(oldest) = parked
            .iter()
            .filter(|(_, (_, answer))| answer.snapshot().is_some())
            .min_by_key(|(_, (conn, _))| conn.deadline)
            .map(|(id, _)| *id)
        else {
            return;
        };
        parked.remove(&oldest);
    }
}

/// Workers: one per processor, at least two.
fn worker_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 16))
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
                lock_budget: Some(settings.lock_budget),
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
            shared: Arc::new(Shared::new(settings, scoreboard, group_gid)),
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
            c.open.load(Ordering::SeqCst)
        )
    }

    /// Serves until the idle timeout passes with no client connected.
    /// Sends `READY=1` first, then `STATUS=` when the count of queries
    /// changes and `WATCHDOG=1` as the unit asks.
    pub fn run(&self) -> io::Result<Summary> {
        // Freed memory goes back to a few shared heaps, not one per thread.
        memory::limit_arenas(2);
        let (wake_write, wake_read) = UnixStream::pair()?;
        wake_read.set_nonblocking(true)?;
        let pool = Pool::start(&self.shared, worker_threads(), wake_write)?;
        let mut reading: HashMap<u64, Conn> = HashMap::new();
        let mut parked: HashMap<u64, (Conn, Box<Answer>)> = HashMap::new();
        let mut next_id = 0u64;
        let mut trimmed = true;
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
            if let Some(suppressed) = self.shared.refusals.flush() {
                tracing::warn!(SUPPRESSED = suppressed, "{suppressed} refusals not logged");
            }
            // Deadlines: a request that did not arrive, an answer not read.
            reading.retain(|_, conn| {
                if now < conn.deadline {
                    return true;
                }
                timed_out(&self.shared, conn);
                false
            });
            parked.retain(|_, (conn, _)| now < conn.deadline);
            let idle = reading.is_empty() && parked.is_empty() && pool.held() == 0;
            if idle && !trimmed {
                memory::trim();
                trimmed = true;
            }
            let mut wait = Duration::from_secs(1);
            if let Some(at) = next_watchdog {
                wait = wait.min(at.saturating_duration_since(now));
            }
            for conn in reading.values().chain(parked.values().map(|(c, _)| c)) {
                wait = wait.min(conn.deadline.saturating_duration_since(now));
            }
            if let Some(idle_timeout) = self.shared.settings.idle_timeout {
                if self.shared.counters.open.load(Ordering::SeqCst) == 0 {
                    let last = *self
                        .shared
                        .last_closed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    let deadline = last + idle_timeout;
                    if now >= deadline {
                        tracing::debug!("idle for {idle_timeout:?}, exiting");
                        systemd::notify_stopping();
                        return Ok(self.summary());
                    }
                    wait = wait.min(deadline - now);
                }
            }
            let ids: Vec<u64> = reading.keys().chain(parked.keys()).copied().collect();
            let mut fds = Vec::with_capacity(ids.len() + 2);
            fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
            fds.push(PollFd::new(wake_read.as_fd(), PollFlags::POLLIN));
            for id in &ids {
                fds.push(match (reading.get(id), parked.get(id)) {
                    (Some(conn), _) => PollFd::new(conn.stream.as_fd(), PollFlags::POLLIN),
                    (None, Some((conn, _))) => PollFd::new(conn.stream.as_fd(), PollFlags::POLLOUT),
                    (None, None) => unreachable!("the ids are those of the maps"),
                });
            }
            let millis = wait.as_millis().clamp(1, 1000) as i32;
            let ready = match poll(
                &mut fds,
                PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if ready == 0 {
                continue;
            }
            let events: Vec<(u64, PollFlags)> = ids
                .iter()
                .zip(&fds[2..])
                .filter_map(|(id, fd)| fd.revents().filter(|r| !r.is_empty()).map(|r| (*id, r)))
                .collect();
            let listener_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
            let woken = fds[1].revents().is_some_and(|r| !r.is_empty());
            drop(fds);
            trimmed = false;
            for (id, _) in events {
                if let Some(mut conn) = reading.remove(&id) {
                    match self.read_request(&mut conn) {
                        Some(Some(line)) => pool.submit(Job::Request(conn, line)),
                        Some(None) => {
                            reading.insert(id, conn);
                        }
                        None => {}
                    }
                } else if let Some((conn, answer)) = parked.remove(&id) {
                    pool.submit(Job::Resume(conn, answer));
                }
            }
            if woken {
                let mut sink = [0u8; 256];
                while matches!((&wake_read).read(&mut sink), Ok(n) if n > 0) {}
            }
            // Always: a hand-back may have raced with the last wake-up.
            for back in pool.take_back() {
                next_id += 1;
                match back {
                    Back::Read(mut conn) => match conn.take_line() {
                        Some(line) => {
                            self.retake_slot(&mut conn);
                            pool.submit(Job::Request(conn, line));
                        }
                        None => {
                            reading.insert(next_id, conn);
                        }
                    },
                    Back::Park(conn, answer) => {
                        parked.insert(next_id, (conn, answer));
                        bound_parked(&mut parked);
                    }
                }
            }
            if listener_ready {
                self.accept_ready(&mut reading, &mut next_id)?;
            }
        }
    }

    /// A connection that sends another request after its answer takes a
    /// slot again (over the bound if need be: it is already connected).
    fn retake_slot(&self, conn: &mut Conn) {
        if conn.slot.is_none() {
            conn.slot = self.shared.slots.take(conn.peer.uid).ok();
        }
    }

    /// Reads what the client sent: `Some(Some(line))` when a request is
    /// complete, `Some(None)` to wait for more, `None` when the connection
    /// is closed (after an answer if one is due).
    fn read_request(&self, conn: &mut Conn) -> Option<Option<Vec<u8>>> {
        let max = self.shared.settings.max_request_bytes;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(line) = conn.take_line() {
                if line.len() > max {
                    too_large(&self.shared, conn);
                    return None;
                }
                self.retake_slot(conn);
                return Some(Some(line));
            }
            if conn.inbuf.len() >= max {
                too_large(&self.shared, conn);
                return None;
            }
            let room = (max + 1 - conn.inbuf.len()).min(chunk.len());
            match (&conn.stream).read(&mut chunk[..room]) {
                Ok(0) => {
                    // End of input: a last line without its newline is
                    // still a request.
                    conn.eof = true;
                    if conn.inbuf.is_empty() {
                        return None;
                    }
                    self.retake_slot(conn);
                    return Some(Some(std::mem::take(&mut conn.inbuf)));
                }
                Ok(n) => conn.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(None),
                Err(_) => return None,
            }
        }
    }

    /// Accepts the waiting connections into `reading`.
    fn accept_ready(&self, reading: &mut HashMap<u64, Conn>, next_id: &mut u64) -> io::Result<()> {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Some(conn) = self.admit(stream, reading) {
                        *next_id += 1;
                        reading.insert(*next_id, conn);
                    }
                }
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

    /// A new connection with its slot, or `None` after telling it why not.
    /// When no slot is free, the connections waiting for a request whose
    /// client has closed are closed first: only clients really connected
    /// count.
    fn admit(&self, stream: UnixStream, reading: &mut HashMap<u64, Conn>) -> Option<Conn> {
        let shared = &self.shared;
        shared.counters.connections.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_nonblocking(true);
        let peer = match Peer::of(&stream) {
            Ok(peer) => peer,
            Err(e) => {
                refuse(
                    &stream,
                    ProtocolError::new(
                        ErrorCode::Internal,
                        format!("cannot read peer credentials: {e}"),
                    ),
                );
                return None;
            }
        };
        let mut slot = shared.slots.take(peer.uid);
        if slot.is_err() && reap_closed(reading) {
            slot = shared.slots.take(peer.uid);
        }
        match slot {
            Ok(slot) => {
                let access = peer.access(shared.group_gid, shared.settings.per_user_view);
                Some(Conn::new(stream, peer, access, slot, Arc::clone(shared)))
            }
            Err(full) => {
                shared.counters.errors.fetch_add(1, Ordering::SeqCst);
                shared.log_refusal(|suppressed| {
                    tracing::warn!(
                        MESSAGE_ID = BUSY_MESSAGE_ID,
                        PEER_UID = peer.uid,
                        PEER_PID = peer.pid,
                        SUPPRESSED = suppressed,
                        "busy: refused a connection of uid {} (pid {}): {full}{}",
                        peer.uid,
                        peer.pid,
                        suppressed_note(suppressed)
                    )
                });
                refuse(
                    &stream,
                    ProtocolError::new(ErrorCode::Busy, full.to_string()),
                );
                None
            }
        }
    }
}

/// Closes the connections whose client has gone (hung up, not merely shut
/// down its side); true when there were some.
fn reap_closed(reading: &mut HashMap<u64, Conn>) -> bool {
    let ids: Vec<u64> = reading.keys().copied().collect();
    let mut fds: Vec<PollFd> = ids
        .iter()
        .map(|id| PollFd::new(reading[id].stream.as_fd(), PollFlags::POLLIN))
        .collect();
    if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
        return false;
    }
    let gone: Vec<u64> = ids
        .iter()
        .zip(&fds)
        .filter(|(_, fd)| {
            fd.revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
        })
        .map(|(id, _)| *id)
        .collect();
    drop(fds);
    for id in &gone {
        reading.remove(id);
    }
    !gone.is_empty()
}

/// Answers `error` without waiting on the peer (a short line fits in the
/// socket's buffer).
fn refuse(mut stream: &UnixStream, error: ProtocolError) {
    let _ = stream.write_all(&Response::error(error).to_line());
}

fn too_large(shared: &Shared, conn: &Conn) {
    shared.counters.errors.fetch_add(1, Ordering::SeqCst);
    let max = shared.settings.max_request_bytes;
    refuse(
        &conn.stream,
        ProtocolError::new(
            ErrorCode::TooLarge,
            format!("a request line may be at most {max} bytes, newline included"),
        ),
    );
}

/// A client that sent nothing, or half a request, in time gets a `timeout`
/// answer; one that went quiet after its answers is just closed.
fn timed_out(shared: &Shared, conn: &Conn) {
    if conn.inbuf.is_empty() && conn.answered > 0 {
        return;
    }
    shared.counters.errors.fetch_add(1, Ordering::SeqCst);
    refuse(
        &conn.stream,
        ProtocolError::new(
            ErrorCode::Timeout,
            format!(
                "no complete request within {:?}",
                shared.settings.request_timeout
            ),
        ),
    );
}
