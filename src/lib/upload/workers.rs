//! The runs of the program, `jobs` at a time: each worker is a thread that
//! takes a job, runs the program through the [`Runner`] (a child process,
//! or a unit of its own) and hands the result back. The main loop polls
//! [`Workers::fd`], readable once a run has ended, and keeps the pipe,
//! the signals and the watchdog going meanwhile.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;

use crate::os::fd::read_some;
use crate::upload::pipe::Record;
use crate::upload::program::{Report, Runner, Skip, Watch};

/// One run to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The record's number in the queue.
    pub id: u64,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The upload.
    pub record: Record,
    /// From queueing to the start of this run.
    pub waited: Duration,
}

/// A run that ended.
#[derive(Debug)]
pub struct Ended {
    /// What was run.
    pub job: Job,
    /// What the runner said.
    pub result: Result<Report, Skip>,
}

/// What a worker's runs watch: only whether the daemon is stopping (which
/// ends a checksum being computed; a program that runs is waited for).
struct Stopping(Arc<AtomicBool>);

impl Watch for Stopping {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn wake(&mut self) {}
    fn stopping(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The pool of workers.
#[derive(Debug)]
pub struct Workers {
    jobs: Option<Sender<Job>>,
    ended: Receiver<Ended>,
    wake_r: OwnedFd,
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    busy: usize,
}

impl Workers {
    /// Starts `count` workers running programs with `runner`.
    pub fn start(runner: Arc<dyn Runner + Send + Sync>, count: u32) -> io::Result<Workers> {
        let (wake_r, wake_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let wake_w = Arc::new(wake_w);
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let (ended_tx, ended_rx) = mpsc::channel();
        let stopping = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for n in 0..count.max(1) {
            let runner = Arc::clone(&runner);
            let jobs_rx = Arc::clone(&jobs_rx);
            let ended_tx: Sender<Ended> = ended_tx.clone();
            let wake_w = Arc::clone(&wake_w);
            let mut watch = Stopping(Arc::clone(&stopping));
            let thread = std::thread::Builder::new()
                .name(format!("run-{n}"))
                .spawn(move || loop {
                    let job = match jobs_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let result = runner.run(&job.record.user, &job.record.file, &mut watch);
                    if ended_tx.send(Ended { job, result }).is_err() {
                        return;
                    }
                    // A full wake pipe already says there is something.
                    let _ = nix::unistd::write(wake_w.as_fd(), &[1]);
                })?;
            threads.push(thread);
        }
        Ok(Workers {
            jobs: Some(jobs_tx),
            ended: ended_rx,
            wake_r,
            stopping,
            threads,
            busy: 0,
        })
    }

    /// Hands `job` to a free worker (call only while [`Workers::busy`] is
    /// below the count).
    pub fn submit(&mut self, job: Job) {
        if let Some(jobs) = &self.jobs {
            if jobs.send(job).is_ok() {
                self.busy += 1;
            }
        }
    }

    /// Runs going on.
    pub fn busy(&self) -> usize {
        self.busy
    }

    /// Readable once a run has ended.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake_r.as_fd()
    }

    /// The runs that ended since the last call.
    pub fn ended(&mut self) -> Vec<Ended> {
        let mut scratch = [0; 64];
        while matches!(read_some(self.wake_r.as_fd(), &mut scratch), Ok(n) if n > 0) {}
        let ended: Vec<Ended> = self.ended.try_iter().collect();
        self.busy -= ended.len().min(self.busy);
        ended
    }

    /// Tells the runs going on that the daemon stops.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stopping();
        self.jobs = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::fd::wait_readable;
    use crate::upload::program::{FileFacts, Status};

    /// Sleeps as long as the file name says (in ms) and notes how many
    /// runs overlap.
    #[derive(Default)]
    struct Sleeper {
        now: Mutex<(usize, usize)>,
    }

    impl Runner for Sleeper {
        fn run(&self, _: &[u8], file: &[u8], _: &mut dyn Watch) -> Result<Report, Skip> {
            {
                let mut n = self.now.lock().unwrap();
                n.0 += 1;
                n.1 = n.1.max(n.0);
            }
            let ms: u64 = std::str::from_utf8(file).unwrap().parse().unwrap();
            std::thread::sleep(Duration::from_millis(ms));
            self.now.lock().unwrap().0 -= 1;
            Ok(Report {
                status: Status::Exited(0),
                facts: FileFacts {
                    size: 0,
                    perms: 0o644,
                    uid: 0,
                    gid: 0,
                    user: None,
                    group: None,
                },
                notes: vec![],
                sha256: None,
                duration: Duration::from_millis(ms),
                stdout_tail: vec![],
                stderr_tail: vec![],
                usage: None,
                fd_passed: false,
            })
        }
    }

    fn job(id: u64, ms: u64) -> Job {
        Job {
            id,
            attempt: 1,
            record: Record {
                user: vec![],
                path: ms.to_string().into_bytes(),
                file: ms.to_string().into_bytes(),
            },
            waited: Duration::ZERO,
        }
    }

    #[test]
    fn runs_go_on_side_by_side_and_come_back() {
        let sleeper = Arc::new(Sleeper::default());
        let mut workers = Workers::start(sleeper.clone(), 3).unwrap();
        for id in 0..3 {
            workers.submit(job(id, 150));
        }
        assert_eq!(workers.busy(), 3);
        let mut ids = Vec::new();
        while ids.len() < 3 {
            wait_readable([Some(workers.fd())], Some(Duration::from_secs(5))).unwrap();
            ids.extend(workers.ended().into_iter().map(|e| e.job.id));
        }
        ids.sort();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!(workers.busy(), 0);
        assert_eq!(sleeper.now.lock().unwrap().1, 3);
    }
}
