//! The reader's side of a run in a unit: check the file, connect, send,
//! wait for the answer.

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::os::fd::wait_readable;
use crate::os::passfd;
use crate::upload::program::{Checked, Checker, Report, Runner, Skip, Status, UnitUsage, Watch};
use crate::upload::runner::wire::{Answer, Ending, Request, MAX_MESSAGE};

/// Runs the program through a run socket; see the [module](self) docs.
#[derive(Debug)]
pub struct UnitClient {
    socket: PathBuf,
    checker: Checker,
}

impl UnitClient {
    /// A client of the run socket `socket`, mapping virtual hosts under
    /// `vhost_dir`.
    pub fn new(socket: &Path, vhost_dir: &Path) -> Self {
        UnitClient {
            socket: socket.to_owned(),
            checker: Checker::new(vhost_dir),
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

    /// Sends `request` (and the file) and waits for the answer; `Err` with
    /// the reason when there is none.
    fn exchange(
        &self,
        request: &Request,
        checked: &Checked,
        watch: &mut dyn Watch,
    ) -> Result<Answer, Status> {
        let sock = self.connect(watch).map_err(|e| {
            Status::Unstartable(io::Error::new(
                e.kind(),
                format!("cannot reach the run socket {}: {e}", self.socket.display()),
            ))
        })?;
        passfd::send(
            sock.as_fd(),
            &request.encode(),
            checked.fd.as_ref().map(|f| f.as_fd()),
        )
        .map_err(|e| Status::NoAnswer(format!("cannot send the upload to its run unit: {e}")))?;
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

impl Runner for UnitClient {
    fn run(&self, vuser: &[u8], file: &[u8], watch: &mut dyn Watch) -> Result<Report, Skip> {
        let checked = self.checker.check(file)?;
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
        accept, bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
    };
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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
            // SAFETY: accept returned a new descriptor.
            let conn = unsafe { OwnedFd::from_raw_fd(accept(server.as_raw_fd()).unwrap()) };
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
            // SAFETY: accept returned a new descriptor.
            let conn = unsafe { OwnedFd::from_raw_fd(accept(server.as_raw_fd()).unwrap()) };
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
}
