//! The runs of the program, `jobs` at a time: each worker is a thread that
//! takes a job, runs the program through the [`Runner`] (a child process,
//! or a unit of its own) and hands the result back. The main loop polls
//! [`Workers::fd`], readable once a run has started or ended, and keeps the
//! pipe, the signals and the watchdog going meanwhile.
//!
//! A single worker may be handed one job ahead: it then starts the next
//! run as soon as one ends, while the main loop settles the one that ended.
//! Jobs are started in the order they were handed over; one taken after the
//! stop began is given back unstarted.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;

use crate::os::fd::read_some;
use crate::upload::pipe::Record;
use crate::upload::program::{Report, Runner, Skip, Watch};
use crate::upload::queue::{between, now_us};

/// One run to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The record's number in the queue.
    pub id: u64,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The upload.
    pub record: Record,
    /// When the record was queued (microseconds since the epoch).
    pub queued_us: u64,
    /// From queueing to the start of this run (set when it starts).
    pub waited: Duration,
}

/// A run that started: its job, and when.
#[derive(Debug, Clone)]
pub struct RunStarted {
    /// What runs.
    pub job: Job,
    /// When it started (microseconds since the epoch).
    pub at_us: u64,
}

/// A run that ended.
#[derive(Debug)]
pub struct Ended {
    /// What was run.
    pub job: Job,
    /// What the runner said.
    pub result: Result<Report, Skip>,
    /// False for a job given back unstarted (the daemon stops).
    pub started: bool,
}

/// What a worker tells the main loop.
#[derive(Debug)]
enum Message {
    Started(RunStarted),
    Ended(Box<Ended>),
}

/// What a worker's runs watch: whether the daemon is stopping (which ends
/// a checksum being computed; a program that runs is waited for), and
/// whether jobs wait to start.
struct Stopping {
    stopping: Arc<AtomicBool>,
    waiting: Arc<AtomicUsize>,
    queued: Arc<AtomicUsize>,
}

impl Watch for Stopping {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn wake(&mut self) {}
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
    fn more_to_come(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0 || self.queued.load(Ordering::Relaxed) > 0
    }
}

/// The pool of workers.
#[derive(Debug)]
pub struct Workers {
    jobs: Option<Sender<Job>>,
    messages: Receiver<Message>,
    wake_r: OwnedFd,
    stopping: Arc<AtomicBool>,
    /// Jobs handed over that no worker has taken yet.
    waiting: Arc<AtomicUsize>,
    /// Records ready to run that are not handed over yet.
    queued: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
    count: usize,
    /// Jobs handed over and not ended.
    busy: usize,
    /// Runs started and not ended.
    running: usize,
}

impl Workers {
    /// Starts `count` workers running programs with `runner`.
    pub fn start(runner: Arc<dyn Runner + Send + Sync>, count: u32) -> io::Result<Workers> {
        let (wake_r, wake_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let wake_w = Arc::new(wake_w);
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let (messages_tx, messages_rx) = mpsc::channel();
        let stopping = Arc::new(AtomicBool::new(false));
        let waiting = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        let count = count.max(1) as usize;
        let mut threads = Vec::new();
        for n in 0..count {
            let runner = Arc::clone(&runner);
            let jobs_rx = Arc::clone(&jobs_rx);
            let messages: Sender<Message> = messages_tx.clone();
            let wake_w = Arc::clone(&wake_w);
            let mut watch = Stopping {
                stopping: Arc::clone(&stopping),
                waiting: Arc::clone(&waiting),
                queued: Arc::clone(&queued),
            };
            // Messages go out together with one wake-up: a run that ended is
            // told with the start of the next one when that one was waiting.
            // A full wake pipe already says there is something.
            let tell = move |batch: &mut Vec<Message>| {
                let mut sent = true;
                for message in batch.drain(..) {
                    sent &= messages.send(message).is_ok();
                }
                let _ = nix::unistd::write(wake_w.as_fd(), &[1]);
                sent
            };
            let thread = std::thread::Builder::new()
                .name(format!("run-{n}"))
                .spawn(move || {
                    let mut batch: Vec<Message> = Vec::with_capacity(2);
                    loop {
                        // After a run, the next job if one waits; else its end
                        // is told now and the worker waits for a job.
                        // (Another worker may hold the jobs while it waits.)
                        let job = if batch.is_empty() {
                            match jobs_rx.lock() {
                                Ok(rx) => rx.recv().ok(),
                                Err(_) => return,
                            }
                        } else {
                            match jobs_rx.try_lock() {
                                Ok(rx) => rx.try_recv().ok(),
                                Err(TryLockError::WouldBlock) => None,
                                Err(TryLockError::Poisoned(_)) => return,
                            }
                        };
                        let Some(mut job) = job else {
                            if batch.is_empty() || !tell(&mut batch) {
                                return;
                            }
                            continue;
                        };
                        watch.waiting.fetch_sub(1, Ordering::Relaxed);
                        if watch.stopping() {
                            let result = Err(Skip::Interrupted);
                            batch.push(Message::Ended(Box::new(Ended {
                                job,
                                result,
                                started: false,
                            })));
                            if !tell(&mut batch) {
                                return;
                            }
                            continue;
                        }
                        let at_us = now_us();
                        job.waited = between(job.queued_us, at_us);
                        batch.push(Message::Started(RunStarted {
                            job: job.clone(),
                            at_us,
                        }));
                        if !tell(&mut batch) {
                            return;
                        }
                        let result = runner.run(&job.record.user, &job.record.file, &mut watch);
                        batch.push(Message::Ended(Box::new(Ended {
                            job,
                            result,
                            started: true,
                        })));
                    }
                })?;
            threads.push(thread);
        }
        Ok(Workers {
            jobs: Some(jobs_tx),
            messages: messages_rx,
            wake_r,
            stopping,
            waiting,
            queued,
            threads,
            count,
            busy: 0,
            running: 0,
        })
    }

    /// Jobs that may be handed over now: one per worker to run and, with a
    /// single worker, one more that it starts as soon as its run ends (it
    /// runs them in the order handed over; several workers could run two
    /// runs of one file at once).
    pub fn room(&self) -> usize {
        let ahead = usize::from(self.serial());
        (self.count + ahead).saturating_sub(self.busy)
    }

    /// A single worker: it runs what it is handed one at a time, in the
    /// order handed over.
    pub fn serial(&self) -> bool {
        self.count == 1
    }

    /// Hands `job` over; it starts once a worker is free (call only while
    /// [`Workers::room`] is above 0).
    pub fn submit(&mut self, job: Job) {
        if let Some(jobs) = &self.jobs {
            self.waiting.fetch_add(1, Ordering::Relaxed);
            if jobs.send(job).is_ok() {
                self.busy += 1;
            } else {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Tells the runs that `ready` records (not handed over) wait to run
    /// besides the jobs handed over.
    pub fn set_queued(&self, ready: usize) {
        self.queued.store(ready, Ordering::Relaxed);
    }

    /// Jobs handed over and not ended (started or not).
    pub fn busy(&self) -> usize {
        self.busy
    }

    /// Runs going on.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Readable once a run has started or ended.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake_r.as_fd()
    }

    /// The runs that started and those that ended since the last call, each
    /// in the order it happened (a run's start comes before its end).
    pub fn news(&mut self) -> (Vec<RunStarted>, Vec<Ended>) {
        let mut scratch = [0; 64];
        while matches!(read_some(self.wake_r.as_fd(), &mut scratch), Ok(n) if n > 0) {}
        let (mut started, mut ended) = (Vec::new(), Vec::new());
        for message in self.messages.try_iter() {
            match message {
                Message::Started(s) => {
                    self.running += 1;
                    started.push(s);
                }
                Message::Ended(e) => {
                    self.busy = self.busy.saturating_sub(1);
                    if e.started {
                        self.running = self.running.saturating_sub(1);
                    }
                    ended.push(*e);
                }
            }
        }
        (started, ended)
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
        /// Each run's file and whether another job waited meanwhile.
        seen: Mutex<Vec<(String, bool)>>,
    }

    impl Runner for Sleeper {
        fn run(&self, _: &[u8], file: &[u8], watch: &mut dyn Watch) -> Result<Report, Skip> {
            {
                let mut n = self.now.lock().unwrap();
                n.0 += 1;
                n.1 = n.1.max(n.0);
            }
            self.seen.lock().unwrap().push((
                String::from_utf8_lossy(file).into_owned(),
                watch.more_to_come(),
            ));
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
            queued_us: 0,
            waited: Duration::ZERO,
        }
    }

    /// Collects news until `n` jobs have ended.
    fn until_ended(workers: &mut Workers, n: usize) -> (Vec<RunStarted>, Vec<Ended>) {
        let (mut started, mut ended) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(10);
        while ended.len() < n {
            assert!(Instant::now() < deadline, "{} of {n} ended", ended.len());
            wait_readable([Some(workers.fd())], Some(Duration::from_secs(5))).unwrap();
            let (s, e) = workers.news();
            started.extend(s);
            ended.extend(e);
        }
        (started, ended)
    }

    #[test]
    fn runs_go_on_side_by_side_and_come_back() {
        let sleeper = Arc::new(Sleeper::default());
        let mut workers = Workers::start(sleeper.clone(), 3).unwrap();
        for id in 0..3 {
            workers.submit(job(id, 150));
        }
        assert_eq!(workers.busy(), 3);
        let (started, ended) = until_ended(&mut workers, 3);
        let mut ids: Vec<u64> = ended.iter().map(|e| e.job.id).collect();
        ids.sort();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!(started.len(), 3);
        assert!(ended.iter().all(|e| e.started && e.result.is_ok()));
        assert_eq!((workers.busy(), workers.running()), (0, 0));
        assert_eq!(sleeper.now.lock().unwrap().1, 3);
    }

    #[test]
    fn a_job_handed_ahead_starts_when_the_run_before_it_ends() {
        let sleeper = Arc::new(Sleeper::default());
        let mut workers = Workers::start(sleeper.clone(), 1).unwrap();
        assert_eq!(workers.room(), 2);
        workers.submit(job(0, 200));
        workers.submit(job(1, 10));
        assert_eq!(workers.room(), 0);
        let (started, ended) = until_ended(&mut workers, 2);
        // One at a time, in the order handed over.
        assert_eq!(sleeper.now.lock().unwrap().1, 1);
        let order: Vec<u64> = ended.iter().map(|e| e.job.id).collect();
        assert_eq!(order, [0, 1]);
        // The first run knew another waited; the second did not.
        let seen = sleeper.seen.lock().unwrap().clone();
        assert_eq!(seen, [("200".into(), true), ("10".into(), false)]);
        // The second waited for the first: its wait counts from queueing.
        assert!(
            started[1].job.waited >= Duration::from_millis(150),
            "{:?}",
            started[1].job.waited
        );
        assert!(started[1].at_us >= started[0].at_us + 150_000);
        assert_eq!(workers.room(), 2);
    }

    #[test]
    fn an_end_is_told_while_another_worker_waits_for_a_job() {
        let sleeper = Arc::new(Sleeper::default());
        let mut workers = Workers::start(sleeper.clone(), 2).unwrap();
        // Let the idle worker block waiting for a job first.
        std::thread::sleep(Duration::from_millis(50));
        workers.submit(job(0, 10));
        let (started, ended) = until_ended(&mut workers, 1);
        assert_eq!((started.len(), ended[0].job.id), (1, 0));
        assert_eq!(workers.busy(), 0);
    }

    #[test]
    fn records_not_handed_over_yet_count_as_more_to_come() {
        let sleeper = Arc::new(Sleeper::default());
        let mut workers = Workers::start(sleeper.clone(), 1).unwrap();
        workers.set_queued(3);
        workers.submit(job(0, 10));
        until_ended(&mut workers, 1);
        workers.set_queued(0);
        workers.submit(job(1, 10));
        until_ended(&mut workers, 1);
        let seen = sleeper.seen.lock().unwrap().clone();
        assert_eq!(seen, [("10".into(), true), ("10".into(), false)]);
    }

    #[test]
    fn a_job_not_started_when_the_stop_comes_is_given_back_unstarted() {
        let sleeper = Arc::new(Sleeper::default());
        let mut workers = Workers::start(sleeper.clone(), 1).unwrap();
        workers.submit(job(0, 200));
        workers.submit(job(1, 10));
        // The first run is under way when the stop comes.
        let (started, _) = workers.news();
        let started = if started.is_empty() {
            wait_readable([Some(workers.fd())], Some(Duration::from_secs(5))).unwrap();
            workers.news().0
        } else {
            started
        };
        assert_eq!(started.len(), 1);
        assert_eq!(workers.running(), 1);
        workers.stopping();
        let (more, ended) = until_ended(&mut workers, 2);
        assert!(more.is_empty(), "{more:?}");
        assert!(ended[0].started && ended[0].result.is_ok());
        assert!(!ended[1].started);
        assert!(matches!(ended[1].result, Err(Skip::Interrupted)));
        assert_eq!(sleeper.seen.lock().unwrap().len(), 1);
        assert_eq!((workers.busy(), workers.running()), (0, 0));
    }
}
