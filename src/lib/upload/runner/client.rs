//! The reader's side of a run in a unit: check the file, connect, send,
//! wait for the answer.
//!
//! While a backlog is worked through ([`Watch::more_to_come`]), the next
//! run's unit is started ahead: once the request is sent, the client
//! connects a spare, and systemd starts its instance (which reads its
//! configuration and makes its cgroup) while the current run goes on. The
//! next run takes a spare younger than [`SPARE_MAX_AGE`] instead of
//! connecting; older ones are closed. A spare whose instance is gone
//! (sending fails) is replaced by a new connection: a stale spare never
//! fails a run. Spares are at most as many as the runs going on (and
//! [`MAX_SPARES`]), and are closed with the client; an instance whose
//! connection closes before a request ends at once, quietly.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::os::fd::wait_readable;
use crate::os::passfd;
use crate::upload::program::{Checked, Checker, Report, Runner, Skip, Status, UnitUsage, Watch};
use crate::upload::runner::instance::REQUEST_WAIT;
use crate::upload::runner::wire::{Answer, Ending, Request, MAX_MESSAGE};

/// A spare connection is used only this young: its unit read the
/// configuration at most this long before its run.
pub const SPARE_MAX_AGE: Duration = Duration::from_secs(5);
/// Spares kept at most, however many runs go on.
pub const MAX_SPARES: usize = 8;

// A spare's instance waits for its request much longer than a spare is used.
const _: () = assert!(REQUEST_WAIT.as_secs() >= 10 * SPARE_MAX_AGE.as_secs());

/// A connection made ahead for a run to come.
#[derive(Debug)]
struct Spare {
    sock: OwnedFd,
    made: Instant,
}

/// Runs the program through a run socket; see the [module](self) docs.
#[derive(Debug)]
pub struct UnitClient {
    socket: PathBuf,
    checker: Checker,
    spares: Mutex<Vec<Spare>>,
    spare_max_age: Duration,
    running: AtomicUsize,
}

impl UnitClient {
    /// A client of the run socket `socket`, mapping virtual hosts under
    /// `vhost_dir`.
    pub fn new(socket: &Path, vhost_dir: &Path) -> Self {
        UnitClient {
            socket: socket.to_owned(),
            checker: Checker::new(vhost_dir),
            spares: Mutex::default(),
            spare_max_age: SPARE_MAX_AGE,
            running: AtomicUsize::new(0),
        }
    }

    /// The run socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

fn status(ending: Ending) -> Status {
    match ending {
        Ending::Exited(n) => Status::Exited(n),
        Ending::Signaled(s) => Status::Signaled(s),
        Ending::TimedOut => Status::TimedOut,
        Ending::Unstartable(why) => Status::Unstartable(io::Error::other(why)),
        Ending::OverLimit(limit) => Status::OverLimit(limit),
    }
}

/// Attempts to reach the run socket before a run counts as not started.
const CONNECT_ATTEMPTS: u32 = 10;
/// Pause between two attempts.
const CONNECT_PAUSE: Duration = Duration::from_millis(300);

impl UnitClient {
    /// Connects, trying again for a few seconds while the socket is
    /// missing or refuses (its unit restarting), the daemon's loop going on.
    fn connect(&self, watch: &mut dyn Watch) -> io::Result<std::os::fd::OwnedFd> {
        let mut attempt = 1;
        loop {
            match passfd::connect_seqpacket(&self.socket) {
                Ok(sock) => return Ok(sock),
                Err(e) if attempt >= CONNECT_ATTEMPTS => return Err(e),
                Err(e) => {
                    if attempt == 1 {
                        tracing::warn!(
                            "cannot reach the run socket {}: {e}; trying again",
                            self.socket.display()
                        );
                    }
                    attempt += 1;
                    let until = Instant::now() + CONNECT_PAUSE;
                    while Instant::now() < until {
                        let _ = wait_readable(
                            [watch.fd()],
                            Some(until.saturating_duration_since(Instant::now())),
                        );
                        watch.wake();
                    }
                }
            }
        }
    }

    /// The oldest spare young enough; those too old are closed.
    fn take_spare(&self) -> Option<OwnedFd> {
        let mut spares = self.spares.lock().unwrap_or_else(|e| e.into_inner());
        let max_age = self.spare_max_age;
        spares.retain(|s| s.made.elapsed() < max_age);
        (!spares.is_empty()).then(|| spares.remove(0).sock)
    }

    /// Connects a spare for a run to come, unless there are already as
    /// many as runs going on. One attempt: without it the next run connects.
    fn add_spare(&self) {
        let room = |spares: &Vec<Spare>| {
            spares.len() < self.running.load(Ordering::Relaxed).min(MAX_SPARES)
        };
        if !room(&self.spares.lock().unwrap_or_else(|e| e.into_inner())) {
            return;
        }
        match passfd::connect_seqpacket(&self.socket) {
            Ok(sock) => {
                let mut spares = self.spares.lock().unwrap_or_else(|e| e.into_inner());
                if room(&spares) {
                    spares.push(Spare {
                        sock,
                        made: Instant::now(),
                    });
                }
            }
            Err(e) => tracing::debug!("no spare connection to {}: {e}", self.socket.display()),
        }
    }

    /// Connects, or takes a spare, and sends `request` (and the file) on
    /// it; a spare whose instance is gone is replaced by a new connection.
    fn send(
        &self,
        request: &[u8],
        checked: &Checked,
        watch: &mut dyn Watch,
    ) -> Result<OwnedFd, Status> {
        let file = checked.fd.as_ref().map(|f| f.as_fd());
        if let Some(sock) = self.take_spare() {
            match passfd::send(sock.as_fd(), request, file) {
                Ok(()) => return Ok(sock),
                Err(e) => tracing::debug!("the spare run unit is gone ({e}); connecting anew"),
            }
        }
        let sock = self.connect(watch).map_err(|e| {
            Status::Unstartable(io::Error::new(
                e.kind(),
                format!("cannot reach the run socket {}: {e}", self.socket.display()),
            ))
        })?;
        passfd::send(sock.as_fd(), request, file).map_err(|e| {
            Status::NoAnswer(format!("cannot send the upload to its run unit: {e}"))
        })?;
        Ok(sock)
    }

    /// Sends `request` (and the file) and waits for the answer; `Err` with
    /// the reason when there is none.
    fn exchange(
        &self,
        request: &Request,
        checked: &Checked,
        watch: &mut dyn Watch,
    ) -> Result<Answer, Status> {
        let sock = self.send(&request.encode(), checked, watch)?;
        if watch.more_to_come() {
            // The next run's unit starts while this one runs.
            self.add_spare();
        }
        loop {
            let timeout = watch
                .deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            let polled = [Some(sock.as_fd()), watch.fd()];
            let [ready, _] = wait_readable(polled, timeout).unwrap_or_else(|_| {
                std::thread::sleep(Duration::from_millis(20));
                [false; 2]
            });
            watch.wake();
            if !ready {
                continue;
            }
            let got = passfd::receive(sock.as_fd(), MAX_MESSAGE).map_err(|e| {
                Status::NoAnswer(format!("cannot read the answer of the run unit: {e}"))
            })?;
            if got.bytes.is_empty() {
                return Err(Status::NoAnswer(
                    "the run unit ended without an answer (killed?)".into(),
                ));
            }
            return Answer::decode(&got.bytes)
                .map_err(|e| Status::NoAnswer(format!("bad answer from the run unit: {e}")));
        }
    }
}

/// Counts a run going on, until dropped.
struct Running<'a>(&'a AtomicUsize);

impl<'a> Running<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Running(count)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Runner for UnitClient {
    fn run(&self, vuser: &[u8], file: &[u8], watch: &mut dyn Watch) -> Result<Report, Skip> {
        let checked = self.checker.check(file)?;
        let _running = Running::new(&self.running);
        let start = Instant::now();
        let request = Request {
            vuser: vuser.to_vec(),
            file: file.to_vec(),
            facts: checked.facts.clone(),
            fd_attached: checked.fd.is_some(),
        };
        let exchanged = self.exchange(&request, &checked, watch);
        let Checked {
            facts, fd, notes, ..
        } = checked;
        let mut report = Report {
            facts,
            sha256: None,
            fd_passed: fd.is_some(),
            notes,
            status: Status::TimedOut,
            duration: start.elapsed(),
            stdout_tail: Vec::new(),
            stderr_tail: Vec::new(),
            usage: None,
        };
        match exchanged {
            Ok(answer) => {
                report.status = status(answer.ending);
                report.duration = answer.duration;
                report.sha256 = answer.sha256;
                report.notes.extend(answer.notes);
                report.stdout_tail = answer.stdout_tail;
                report.stderr_tail = answer.stderr_tail;
                report.usage = Some(UnitUsage {
                    unit: answer.unit,
                    cpu_usec: answer.cpu_usec,
                    peak_bytes: answer.peak_bytes,
                });
            }
            Err(status) => report.status = status,
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::program::NoWatch;
    use crate::upload::runner::wire::Ending;
    use nix::sys::socket::{
        bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
    };
    use std::io::Read;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;

    fn listener(path: &Path) -> OwnedFd {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        bind(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
        listen(&fd, Backlog::new(4).unwrap()).unwrap();
        fd
    }

    #[test]
    fn the_record_and_the_file_go_out_the_answer_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("run.sock");
        let upload = dir.path().join("upload.txt");
        std::fs::write(&upload, b"content").unwrap();
        let server = listener(&sock);
        let unit = std::thread::spawn(move || {
            let conn = passfd::accept(server.as_fd()).unwrap();
            let got = passfd::receive(conn.as_fd(), MAX_MESSAGE).unwrap();
            let request = Request::decode(&got.bytes).unwrap();
            let mut text = String::new();
            std::fs::File::from(got.fd.unwrap())
                .read_to_string(&mut text)
                .unwrap();
            let answer = Answer {
                ending: Ending::Exited(3),
                duration: Duration::from_millis(5),
                sha256: None,
                notes: vec!["a note".into()],
                stdout_tail: Vec::new(),
                stderr_tail: b"err".to_vec(),
                unit: "pure-uploadscript-run@1-2-0.service".into(),
                cpu_usec: Some(7),
                peak_bytes: Some(4096),
            };
            passfd::send(conn.as_fd(), &answer.encode(), None).unwrap();
            (request, text)
        });
        let client = UnitClient::new(&sock, dir.path());
        let report = client
            .run(b"alice", upload.as_os_str().as_bytes(), &mut NoWatch)
            .unwrap();
        let (request, text) = unit.join().unwrap();
        assert_eq!(text, "content");
        assert_eq!(request.vuser, b"alice");
        assert_eq!(request.facts.size, 7);
        assert!(request.fd_attached);
        assert!(matches!(report.status, Status::Exited(3)));
        assert_eq!(report.notes, ["a note"]);
        assert_eq!(report.stderr_tail, b"err");
        let usage = report.usage.unwrap();
        assert_eq!(usage.unit, "pure-uploadscript-run@1-2-0.service");
        assert_eq!((usage.cpu_usec, usage.peak_bytes), (Some(7), Some(4096)));
    }

    #[test]
    fn a_unit_that_dies_or_a_missing_socket_is_a_failed_run_not_a_lost_record() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("run.sock");
        let upload = dir.path().join("upload.txt");
        std::fs::write(&upload, b"x").unwrap();
        let server = listener(&sock);
        let unit = std::thread::spawn(move || {
            let conn = passfd::accept(server.as_fd()).unwrap();
            passfd::receive(conn.as_fd(), MAX_MESSAGE).unwrap();
            // Gone without an answer.
        });
        let client = UnitClient::new(&sock, dir.path());
        let report = client
            .run(b"", upload.as_os_str().as_bytes(), &mut NoWatch)
            .unwrap();
        unit.join().unwrap();
        match &report.status {
            Status::NoAnswer(why) => assert!(why.contains("without an answer"), "{why}"),
            other => panic!("{other:?}"),
        }
        let missing = UnitClient::new(&dir.path().join("absent.sock"), dir.path());
        let report = missing
            .run(b"", upload.as_os_str().as_bytes(), &mut NoWatch)
            .unwrap();
        match &report.status {
            Status::Unstartable(e) => {
                assert!(e.to_string().contains("cannot reach the run socket"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }

    /// A watch saying whether another run waits.
    struct More(bool);

    impl Watch for More {
        fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
            None
        }
        fn deadline(&self) -> Option<Instant> {
            None
        }
        fn wake(&mut self) {}
        fn more_to_come(&self) -> bool {
            self.0
        }
    }

    /// What became of one accepted connection.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Conn {
        /// It carried a request for this file.
        Served(String),
        /// It ended without one.
        Unused,
        /// The unit closed it at once (a spare whose instance is gone).
        Dropped,
    }

    /// A run socket whose units answer every request with exit 0; the
    /// connections numbered in `drop` are closed at once instead, and each
    /// closing is told on the channel.
    struct Units {
        path: PathBuf,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        acceptor: std::thread::JoinHandle<Vec<std::thread::JoinHandle<Conn>>>,
        dropped: std::sync::mpsc::Receiver<usize>,
    }

    impl Units {
        fn start(dir: &Path, drop: &'static [usize]) -> Units {
            let path = dir.join("run.sock");
            let server = listener(&path);
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (tell, dropped) = std::sync::mpsc::channel();
            let stopping = std::sync::Arc::clone(&stop);
            let acceptor = std::thread::spawn(move || {
                let mut units = Vec::new();
                loop {
                    let conn = passfd::accept(server.as_fd()).unwrap();
                    if stopping.load(Ordering::SeqCst) {
                        return units;
                    }
                    let n = units.len();
                    let tell = tell.clone();
                    units.push(std::thread::spawn(move || {
                        if drop.contains(&n) {
                            std::mem::drop(conn);
                            tell.send(n).unwrap();
                            return Conn::Dropped;
                        }
                        let got = passfd::receive(conn.as_fd(), MAX_MESSAGE).unwrap();
                        if got.bytes.is_empty() {
                            return Conn::Unused;
                        }
                        let request = Request::decode(&got.bytes).unwrap();
                        let answer = Answer {
                            ending: Ending::Exited(0),
                            duration: Duration::from_millis(1),
                            sha256: None,
                            notes: Vec::new(),
                            stdout_tail: Vec::new(),
                            stderr_tail: Vec::new(),
                            unit: format!("pure-uploadscript-run@{n}.service"),
                            cpu_usec: None,
                            peak_bytes: None,
                        };
                        passfd::send(conn.as_fd(), &answer.encode(), None).unwrap();
                        Conn::Served(String::from_utf8(request.file).unwrap())
                    }));
                }
            });
            Units {
                path,
                stop,
                acceptor,
                dropped,
            }
        }

        /// What became of every connection, in the order they came.
        fn finish(self) -> Vec<Conn> {
            self.stop.store(true, Ordering::SeqCst);
            let _wake = passfd::connect_seqpacket(&self.path).unwrap();
            let units = self.acceptor.join().unwrap();
            units.into_iter().map(|u| u.join().unwrap()).collect()
        }
    }

    fn uploads(dir: &Path, names: &[&str]) -> Vec<String> {
        names
            .iter()
            .map(|n| {
                let path = dir.join(n);
                std::fs::write(&path, n.as_bytes()).unwrap();
                path.to_str().unwrap().to_owned()
            })
            .collect()
    }

    fn served(file: &str) -> Conn {
        Conn::Served(file.to_owned())
    }

    #[test]
    fn while_more_runs_wait_the_next_unit_is_connected_ahead_and_used() {
        let dir = tempfile::tempdir().unwrap();
        let files = uploads(dir.path(), &["a", "b", "c"]);
        let units = Units::start(dir.path(), &[]);
        let mut client = UnitClient::new(&units.path, dir.path());
        client.spare_max_age = Duration::from_secs(3600);
        for (file, more) in files.iter().zip([true, true, false]) {
            let report = client
                .run(b"alice", file.as_bytes(), &mut More(more))
                .unwrap();
            assert!(matches!(report.status, Status::Exited(0)), "{report:?}");
            let spares = client.spares.lock().unwrap().len();
            assert_eq!(spares, usize::from(more));
        }
        drop(client);
        // A spare connected after a and after b, none after c, and no
        // connection left unused: b and c ran on the spares.
        let conns = units.finish();
        assert_eq!(
            conns,
            [served(&files[0]), served(&files[1]), served(&files[2])]
        );
    }

    #[test]
    fn a_spare_left_over_is_closed_with_the_client() {
        let dir = tempfile::tempdir().unwrap();
        let files = uploads(dir.path(), &["a"]);
        let units = Units::start(dir.path(), &[]);
        let client = UnitClient::new(&units.path, dir.path());
        let report = client
            .run(b"alice", files[0].as_bytes(), &mut More(true))
            .unwrap();
        assert!(matches!(report.status, Status::Exited(0)), "{report:?}");
        assert_eq!(client.spares.lock().unwrap().len(), 1);
        drop(client);
        assert_eq!(units.finish(), [served(&files[0]), Conn::Unused]);
    }

    #[test]
    fn a_spare_too_old_is_closed_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let files = uploads(dir.path(), &["a", "b"]);
        let units = Units::start(dir.path(), &[]);
        let mut client = UnitClient::new(&units.path, dir.path());
        // Every spare is too old for its run.
        client.spare_max_age = Duration::ZERO;
        for file in &files {
            let report = client
                .run(b"alice", file.as_bytes(), &mut More(true))
                .unwrap();
            assert!(matches!(report.status, Status::Exited(0)), "{report:?}");
        }
        drop(client);
        assert_eq!(
            units.finish(),
            [
                served(&files[0]),
                Conn::Unused,
                served(&files[1]),
                Conn::Unused
            ]
        );
    }

    #[test]
    fn a_spare_whose_unit_is_gone_is_replaced_and_the_run_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let files = uploads(dir.path(), &["a", "b"]);
        // The spare connected after run a is closed by its unit.
        let units = Units::start(dir.path(), &[1]);
        let mut client = UnitClient::new(&units.path, dir.path());
        client.spare_max_age = Duration::from_secs(3600);
        let report = client
            .run(b"alice", files[0].as_bytes(), &mut More(true))
            .unwrap();
        assert!(matches!(report.status, Status::Exited(0)), "{report:?}");
        assert_eq!(units.dropped.recv().unwrap(), 1);
        let report = client
            .run(b"alice", files[1].as_bytes(), &mut More(false))
            .unwrap();
        assert!(matches!(report.status, Status::Exited(0)), "{report:?}");
        drop(client);
        assert_eq!(
            units.finish(),
            [served(&files[0]), Conn::Dropped, served(&files[1])]
        );
    }
}
