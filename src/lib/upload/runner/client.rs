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

impl UnitClient {
    /// Sends `request` (and the file) and waits for the answer; `Err` with
    /// the reason when there is none.
    fn exchange(
        &self,
        request: &Request,
        checked: &Checked,
        watch: &mut dyn Watch,
    ) -> Result<Answer, Status> {
        let sock = passfd::connect_seqpacket(&self.socket).map_err(|e| {
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
