//! The `pure-uploadscript` daemon: start-up (pipe, identity, pid file,
//! systemd) and the main loop that takes records from the pipe into the
//! durable queue and runs the program on them. It takes checked
//! [`Settings`].
//!
//! Start-up ([`run`], then `start`): the program is checked; signals are
//! blocked (they are read from a signalfd); the FIFO is taken from
//! `LISTEN_FDS` (a stored `upload-pipe` descriptor or a `.socket` unit's
//! `ListenFIFO=`) or opened, created if missing; it is put in the file
//! descriptor store and its capacity raised to `pipe-max-size`; `-B` forks
//! away (not under systemd); the pid file is written. Then
//! (`MainLoop::prepare`) the queue is opened (and checked), the state file
//! of the published counters ([`metrics`](crate::upload::metrics)) too,
//! the daemon switches to the uid/gid (as the C tool does: `setgroups`,
//! `setgid`, `setuid`, and `chdir("/")`), starts `jobs` workers and sends
//! `READY=1`.
//!
//! Each round of the main loop (`MainLoop::step`) takes what the FIFO
//! holds into the queue (`MainLoop::intake`: written and synced, one
//! `fdatasync` for a whole batch, then taken out of the FIFO; when the
//! queue cannot be written the records stay in the FIFO), picks up
//! administrators' requests, settles the runs that ended
//! (`MainLoop::settle`: done, retried later, or kept as failed) and starts
//! new ones (`MainLoop::dispatch`). With nothing to do it polls the FIFO,
//! the signalfd and the workers with a timeout that keeps `WATCHDOG=1`
//! going (`MainLoop::wait`). `SIGTERM`, `SIGINT` and `SIGHUP` stop the
//! intake and new runs; the daemon exits once the runs going on have ended
//! or timed out. Records left in the queue run at the next start.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::stat::SFlag;

use std::sync::Arc;

use crate::os::fd::{self, file_type, wait_readable};
use crate::os::process::{self, IdentityError, StopSignals};
use crate::os::systemd;
use crate::upload::audit::{self, Attempt, Counts, Next, Outcome};
use crate::upload::debian;
use crate::upload::limits::Isolation;
use crate::upload::lock::{self, LockError, ReaderLock};
use crate::upload::metrics::{Publisher, PUBLISH_EVERY};
use crate::upload::pipe::fifo::{self, FifoError, Reader};
use crate::upload::pipe::{Event, Parser, Record};
use crate::upload::program::{self, Hook, HookConfig, ProgramError, Runner, Skip, Status};
use crate::upload::queue::format::Entry;
use crate::upload::queue::state::Queue;
use crate::upload::queue::store::{QueueError, Store};
use crate::upload::queue::{self, between, now_us};
use crate::upload::runner::client::UnitClient;
use crate::upload::settings::Settings;
use crate::upload::workers::{Ended, Job, RunStarted, Workers};

/// Why the daemon did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The program cannot be run.
    #[error(transparent)]
    Program(#[from] ProgramError),
    /// The upload pipe cannot be used.
    #[error(transparent)]
    Pipe(#[from] FifoError),
    /// The upload pipe has another reader.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The pid file asked for cannot be written.
    #[error("cannot write the pid file {path}: {source}")]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The uid/gid switch failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The descriptors passed by systemd cannot be taken.
    #[error("cannot take LISTEN_FDS: {0}")]
    ListenFds(io::Error),
    /// `-B` could not fork.
    #[error("cannot fork: {0}")]
    Fork(io::Error),
    /// Inherited descriptors could not be kept from the program.
    #[error("cannot mark descriptors close-on-exec: {0}")]
    CloseOnExec(io::Error),
    /// The stop signals cannot be blocked and read.
    #[error("cannot set up signal handling: {0}")]
    Signals(io::Error),
    /// The daemon cannot move to `/`.
    #[error("cannot change directory to /: {0}")]
    Chdir(io::Error),
    /// The program runner cannot be set up.
    #[error("cannot prepare to run programs: {0}")]
    Runner(io::Error),
    /// The upload pipe cannot be read any more.
    #[error("cannot read the upload pipe: {0}")]
    ReadPipe(io::Error),
    /// Waiting for the pipe or a signal failed.
    #[error("poll failed: {0}")]
    Poll(io::Error),
    /// The upload queue cannot be opened.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The queue's directory cannot be given to the target identity.
    #[error("{path}: cannot give the queue to the program's user: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// Where the daemon got the upload pipe (logged as `PIPE_ORIGIN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeOrigin {
    /// Created by the daemon: it did not exist.
    Created,
    /// Opened by path.
    Opened,
    /// Taken back from systemd's file descriptor store.
    FdStore,
    /// Passed by a `.socket` unit's `ListenFIFO=`.
    ListenFifo,
}

impl PipeOrigin {
    /// The `PIPE_ORIGIN` value: `created`, `opened`, `fdstore`,
    /// `listen-fifo`.
    pub fn as_str(self) -> &'static str {
        match self {
            PipeOrigin::Created => "created",
            PipeOrigin::Opened => "opened",
            PipeOrigin::FdStore => "fdstore",
            PipeOrigin::ListenFifo => "listen-fifo",
        }
    }

    /// Words for the log message.
    pub fn describe(self) -> &'static str {
        match self {
            PipeOrigin::Created => "created",
            PipeOrigin::Opened => "opened",
            PipeOrigin::FdStore => "descriptor kept in systemd's store",
            PipeOrigin::ListenFifo => "descriptor passed by a ListenFIFO= socket",
        }
    }

    /// True when systemd holds the descriptor already.
    pub fn passed_by_systemd(self) -> bool {
        matches!(self, PipeOrigin::FdStore | PipeOrigin::ListenFifo)
    }
}

/// Picks the FIFO among descriptors passed by systemd: the one named
/// `upload-pipe` (the store), else the first FIFO (`ListenFIFO=`).
fn take_passed_fifo() -> Result<Option<(OwnedFd, String)>, DaemonError> {
    let fds = systemd::take_listen_fds().map_err(DaemonError::ListenFds)?;
    let is_fifo =
        |fd: BorrowedFd<'_>| file_type(fd).is_ok_and(|file_type| file_type == SFlag::S_IFIFO);
    let mut chosen = None;
    for passed in fds {
        let better = match &chosen {
            None => is_fifo(passed.fd.as_fd()),
            Some((_, name)) => name != fifo::STORE_NAME && passed.name == fifo::STORE_NAME,
        };
        if better {
            chosen = Some((passed.fd, passed.name));
        } else {
            tracing::info!(
                FDNAME = passed.name.as_str(),
                "ignoring a descriptor passed by systemd"
            );
        }
    }
    Ok(chosen)
}

/// The FIFO passed by systemd, else the one at the configured path (created
/// if missing), checked either way.
fn open_pipe(settings: &Settings) -> Result<(OwnedFd, PipeOrigin), DaemonError> {
    if let Some((fd, name)) = take_passed_fifo()? {
        let label = format!("descriptor \"{name}\" from systemd");
        fifo::check_fd(fd.as_fd(), Path::new(&label))?;
        let origin = if name == fifo::STORE_NAME {
            PipeOrigin::FdStore
        } else {
            PipeOrigin::ListenFifo
        };
        return Ok((fd, origin));
    }
    let (fd, created) = fifo::open_or_create(&settings.pipe)?;
    let origin = if created {
        PipeOrigin::Created
    } else {
        PipeOrigin::Opened
    };
    Ok((fd, origin))
}

/// What start-up hands to the main loop.
struct Started {
    /// The uid and gid to switch to.
    identity: Option<(u32, u32)>,
    fifo: OwnedFd,
    origin: PipeOrigin,
    signals: StopSignals,
    /// The pipe's capacity, once raised.
    pipe_size: Option<usize>,
    /// Held while the daemon reads the pipe: one reader per pipe.
    _lock: Option<ReaderLock>,
}

/// Runs the daemon until a stop signal (`Ok`) or a fatal error.
pub fn run(settings: Settings) -> Result<(), DaemonError> {
    let Some(started) = start(&settings)? else {
        return Ok(());
    };
    let result = serve(&settings, started);
    if let Some(pidfile) = &settings.pidfile {
        process::remove_pidfile(pidfile);
    }
    result
}

/// Start-up, up to the pid file (see the [module](self) docs); `None`
/// when a reader started by Debian's init script leaves the pipe to
/// systemd's.
fn start(settings: &Settings) -> Result<Option<Started>, DaemonError> {
    process::ensure_stdio();
    program::close_inherited_on_exec().map_err(DaemonError::CloseOnExec)?;
    // In a unit, the run's identity is the unit's business: the reader
    // keeps its own.
    let identity = match settings.isolation {
        Isolation::Process => settings.target_identity(),
        Isolation::Unit => None,
    };
    match (settings.isolation, identity) {
        (Isolation::Unit, _) => {}
        (Isolation::Process, Some((uid, gid))) => {
            program::check_program(&settings.program, uid, gid)?
        }
        (Isolation::Process, None) => program::check_program_as_self(&settings.program)?,
    }
    if settings.daemonize && debian::systemd_reads(&settings.pipe) {
        tracing::info!(
            PIPE = %settings.pipe.display(),
            "{} is read by pure-uploadscript.service under systemd: not starting a second reader",
            settings.pipe.display()
        );
        return Ok(None);
    }
    let signals = StopSignals::block().map_err(DaemonError::Signals)?;
    let (fifo, origin) = open_pipe(settings)?;
    // A descriptor passed by systemd is already held by it (the store, or a
    // `.socket` unit); storing it again would exceed FileDescriptorStoreMax=.
    if !origin.passed_by_systemd() {
        if let Err(e) = systemd::store_fd(fifo.as_fd(), fifo::STORE_NAME) {
            tracing::warn!("cannot keep the upload pipe in systemd's descriptor store: {e}");
        }
    }
    if settings.daemonize {
        if systemd::under_systemd() {
            tracing::info!("running under systemd: -B (daemonize) ignored");
        } else {
            process::daemonize().map_err(DaemonError::Fork)?;
        }
    }
    // One reader per pipe.
    let lock = match lock::lock(Path::new(lock::LOCK_DIR), fifo.as_fd(), &settings.pipe) {
        Ok(lock) => Some(lock),
        Err(e @ LockError::Held { .. }) => {
            tracing::error!(PIPE = %settings.pipe.display(), "{e}");
            return Err(e.into());
        }
        Err(e) => {
            tracing::warn!("{e}; going on without it");
            None
        }
    };
    if let Some(pidfile) = &settings.pidfile {
        if let Err(source) = process::write_pidfile(pidfile) {
            let error = DaemonError::PidFile {
                path: pidfile.clone(),
                source,
            };
            if settings.pidfile_required {
                return Err(error);
            }
            tracing::warn!("{error}");
        }
    }
    let pipe_size = match fd::grow_pipe(fifo.as_fd(), Path::new(fd::PIPE_MAX_SIZE)) {
        Ok(size) => Some(size),
        Err(e) => {
            tracing::warn!("cannot raise the upload pipe's capacity: {e}");
            None
        }
    };
    Ok(Some(Started {
        identity,
        fifo,
        origin,
        signals,
        pipe_size,
        _lock: lock,
    }))
}

/// Main-loop state that must keep going while a program runs: signals and
/// the watchdog.
struct Supervisor {
    signals: StopSignals,
    stop: Option<Signal>,
    watchdog: Option<(Duration, Instant)>,
}

impl Supervisor {
    fn read_signals(&mut self) {
        while let Some(signal) = self.signals.next() {
            if self.stop.is_none() {
                tracing::info!("received {}; stopping", signal.as_str());
            }
            self.stop = Some(signal);
        }
    }

    fn ping(&mut self) {
        if let Some((interval, next)) = &mut self.watchdog {
            let now = Instant::now();
            if now >= *next {
                systemd::notify_watchdog();
                *next = now + *interval;
            }
        }
    }

    /// How long the loop may sleep before the next watchdog ping.
    fn sleep_limit(&self) -> Option<Duration> {
        self.watchdog
            .map(|(_, next)| next.saturating_duration_since(Instant::now()))
    }
}

impl program::Watch for Supervisor {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.signals.fd())
    }
    fn deadline(&self) -> Option<Instant> {
        self.watchdog.map(|(_, next)| next)
    }
    fn wake(&mut self) {
        self.read_signals();
        self.ping();
    }
    fn stopping(&self) -> bool {
        self.stop.is_some()
    }
}

/// `STATUS=` goes out when the loop has nothing to do, and at most once a
/// second while busy.
struct StatusUpdates {
    sent: Instant,
    dirty: bool,
}

/// A run is started at most this long after the queue changed, and
/// administrators' requests are picked up within it.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// How often a stopped intake (the queue could not be written) tries again.
const INTAKE_RETRY: Duration = Duration::from_secs(1);

/// The main loop, once start-up is done.
struct MainLoop<'a> {
    settings: &'a Settings,
    reader: Reader,
    /// Events taken from the pipe (still in it) not yet in the queue.
    unsaved: Vec<Event>,
    /// Set while the queue cannot be written: when to try again, and why.
    intake_stopped: Option<(Instant, String)>,
    store: Store,
    queue: Queue,
    /// Entries not written yet (the queue could not be written): written
    /// before the next ones.
    unwritten: Vec<Entry>,
    workers: Workers,
    supervisor: Supervisor,
    counts: Counts,
    status: StatusUpdates,
    /// Held until the loop ends.
    _lock: Option<ReaderLock>,
    /// The counters published for the metrics exporter.
    metrics: Publisher,
}

/// Runs the main loop until a stop signal and the end of the runs going
/// on.
fn serve(settings: &Settings, started: Started) -> Result<(), DaemonError> {
    let origin = started.origin;
    let pipe_size = started.pipe_size;
    let mut main_loop = MainLoop::prepare(settings, started)?;
    main_loop.announce(origin, pipe_size);
    loop {
        if main_loop.supervisor.stop.is_some() {
            main_loop.workers.stopping();
            if main_loop.workers.busy() == 0 {
                break;
            }
        }
        main_loop.step()?;
    }
    main_loop.stop();
    Ok(())
}

impl<'a> MainLoop<'a> {
    /// The end of start-up: `/` as working directory, the queue opened (and
    /// given to the target identity), the switch to that identity, the
    /// program checked again as that identity, the program runner and its
    /// workers, the pipe reader.
    fn prepare(settings: &'a Settings, started: Started) -> Result<Self, DaemonError> {
        std::env::set_current_dir("/").map_err(DaemonError::Chdir)?;
        let opened = Store::open(&settings.state_dir)?;
        // Opened while still root: the state directory is root's.
        let metrics = Publisher::for_pipe(&settings.pipe);
        if let Some((uid, gid)) = started.identity {
            opened
                .store
                .give_to(uid, gid)
                .map_err(|source| DaemonError::StateDir {
                    path: settings.state_dir.clone(),
                    source,
                })?;
            process::switch_identity(uid, gid)?;
        }
        let runner: Arc<dyn Runner + Send + Sync> = match settings.isolation {
            Isolation::Unit => Arc::new(UnitClient::new(
                Path::new(settings.profile.socket()),
                &settings.vhost_dir,
            )),
            Isolation::Process => {
                program::check_program_as_self(&settings.program)?;
                let hook = Hook::new(HookConfig {
                    program: settings.program.clone(),
                    timeout: settings.timeout,
                    keep_env: settings.keep_env,
                    capture_output: settings.capture_output,
                    hash: settings.hash,
                })
                .map_err(DaemonError::Runner)?;
                Arc::new(hook.with_vhost_dir(&settings.vhost_dir))
            }
        };
        let workers = Workers::start(runner, settings.jobs).map_err(DaemonError::Runner)?;
        let parser = Parser::with_vhost_dir(settings.vhost_dir.as_os_str().as_bytes());
        let reader = Reader::new(started.fifo, parser).map_err(DaemonError::ReadPipe)?;
        let supervisor = Supervisor {
            signals: started.signals,
            stop: None,
            watchdog: systemd::watchdog_ping_interval().map(|i| (i, Instant::now())),
        };
        if let Some(aside) = &opened.set_aside {
            events::set_aside(&settings.state_dir, aside);
        }
        events::resumed(&opened.queue);
        Ok(MainLoop {
            settings,
            reader,
            unsaved: Vec::new(),
            intake_stopped: None,
            store: opened.store,
            queue: opened.queue,
            unwritten: Vec::new(),
            workers,
            supervisor,
            counts: Counts::default(),
            status: StatusUpdates {
                sent: Instant::now(),
                dirty: false,
            },
            _lock: started._lock,
            metrics,
        })
    }

    /// Logs where the pipe came from and tells systemd the daemon is ready.
    fn announce(&mut self, origin: PipeOrigin, pipe_size: Option<usize>) {
        let settings = self.settings;
        tracing::info!(
            PIPE = %settings.pipe.display(),
            PIPE_ORIGIN = origin.as_str(),
            PIPE_SIZE = pipe_size.map(|n| n as u64),
            ISOLATION = settings.isolation.as_str(),
            QUEUE_DIR = %settings.state_dir.display(),
            JOBS = settings.jobs,
            RETRIES = settings.retries,
            "waiting for uploads on {} ({}); running {} {}, {} at a time, queue in {}",
            settings.pipe.display(),
            origin.describe(),
            settings.program.display(),
            settings.isolation.describe(settings.profile),
            settings.jobs,
            settings.state_dir.display()
        );
        systemd::notify_ready(&format!("waiting for uploads; {}", self.status_line()));
        self.supervisor.ping();
        self.status.sent = Instant::now();
    }

    /// The `STATUS=` line: the queue's depth and oldest age, the totals.
    fn status_line(&self) -> String {
        let now = now_us();
        let oldest = match self.queue.oldest_us() {
            Some(at) => format!(" (oldest {:.0} s)", between(at, now).as_secs_f64()),
            None => String::new(),
        };
        let mut line = format!(
            "queue {}{oldest}, running {}, failed {}; {}",
            self.queue.depth() - self.queue.running(),
            self.queue.running(),
            self.queue.failed(),
            self.counts.status_line()
        );
        if let Some((_, why)) = &self.intake_stopped {
            line.push_str("; not reading the pipe: ");
            line.push_str(why);
        }
        line
    }

    fn send_status(&mut self) {
        let oldest = self.queue.oldest_us().map(|at| between(at, now_us()));
        self.metrics.queue(
            self.queue.depth() as u64,
            self.queue.failed() as u64,
            oldest,
        );
        systemd::notify_status(&self.status_line());
        self.status.sent = Instant::now();
        self.status.dirty = false;
    }

    /// Something shown in `STATUS=` changed: sent if the last update is a
    /// second old.
    fn status_changed(&mut self) {
        self.status.dirty = true;
        if self.status.sent.elapsed() >= IDLE_TICK {
            self.send_status();
        }
    }

    /// One round: the pipe into the queue, administrators' requests, ended
    /// runs, new runs; a wait when none of them had anything to do.
    fn step(&mut self) -> Result<(), DaemonError> {
        let mut busy = self.intake()?;
        busy |= self.requests();
        busy |= self.collect();
        busy |= self.dispatch();
        self.workers.set_queued(self.queue.ready());
        if busy {
            program::Watch::wake(&mut self.supervisor);
            Ok(())
        } else {
            self.wait()
        }
    }

    /// Takes what the pipe holds (one batch) into the queue: written and
    /// synced first, then taken out of the pipe. When the queue cannot be
    /// written (a full disk), the batch stays in the pipe and the intake
    /// stops until a retry succeeds.
    fn intake(&mut self) -> Result<bool, DaemonError> {
        if self.supervisor.stop.is_some() {
            return Ok(false);
        }
        if let Some((retry_at, _)) = &self.intake_stopped {
            if Instant::now() < *retry_at {
                return Ok(false);
            }
        }
        if self.unsaved.is_empty() {
            while let Some(event) = self.reader.next_held().map_err(DaemonError::ReadPipe)? {
                self.unsaved.push(event);
            }
            if self.unsaved.is_empty() {
                return Ok(false);
            }
        }
        let now = now_us();
        let first = self.queue.next_id();
        let entries: Vec<Entry> = self
            .unsaved
            .iter()
            .filter_map(|event| match event {
                Event::Record(r) => Some(r),
                _ => None,
            })
            .enumerate()
            .map(|(n, r)| Entry::Queued {
                id: first + n as u64,
                at_us: now,
                user: r.user.clone(),
                path: r.path.clone(),
                file: r.file.clone(),
            })
            .collect();
        let saved = if entries.is_empty() {
            Ok(Vec::new())
        } else {
            self.write(entries.clone(), true)
        };
        match saved {
            Err(e) => {
                if self.intake_stopped.is_none() {
                    events::intake_stopped(&self.settings.state_dir, &e);
                }
                self.intake_stopped = Some((Instant::now() + INTAKE_RETRY, e.to_string()));
                self.status_changed();
                Ok(false)
            }
            Ok(others) => {
                if self.intake_stopped.take().is_some() {
                    events::intake_resumed(&self.settings.state_dir);
                }
                self.reader.commit().map_err(DaemonError::ReadPipe)?;
                self.apply_others(others);
                for entry in &entries {
                    self.queue.apply(entry);
                }
                events::queued(&entries, self.queue.depth());
                for event in std::mem::take(&mut self.unsaved) {
                    match event {
                        Event::Record(_) => {}
                        Event::Skipped(n) => audit::skipped_bytes(n),
                        Event::Rejected(rejection) => {
                            let outcome = audit::rejected_record(&rejection);
                            self.counts.add(outcome, None);
                            let busy = self.workers.busy() as u64;
                            self.metrics.record_done(outcome, busy, self.reader.fd());
                        }
                    }
                }
                self.status_changed();
                Ok(true)
            }
        }
    }

    /// Appends `entries` after those not written yet (all or none);
    /// returns what others appended meanwhile.
    fn write(&mut self, entries: Vec<Entry>, sync: bool) -> io::Result<Vec<Entry>> {
        let kept = self.unwritten.len();
        let mut all = std::mem::take(&mut self.unwritten);
        all.extend(entries);
        self.store.append(&all, sync).inspect_err(|_| {
            all.truncate(kept);
            self.unwritten = all;
        })
    }

    /// Appends `entries` (not synced); when the queue cannot be written,
    /// keeps them to write before the next ones.
    fn write_or_keep(&mut self, entries: Vec<Entry>) {
        match self.write(entries.clone(), false) {
            Ok(others) => self.apply_others(others),
            Err(e) => {
                if self.unwritten.is_empty() {
                    tracing::warn!("cannot write to the queue: {e}; kept in memory meanwhile");
                }
                self.unwritten.extend(entries);
            }
        }
    }

    /// Applies entries others (`queue retry`, `queue drop`) appended.
    fn apply_others(&mut self, others: Vec<Entry>) {
        for entry in &others {
            self.queue.apply(entry);
        }
        if !others.is_empty() {
            self.status_changed();
        }
    }

    /// Picks up administrators' requests.
    fn requests(&mut self) -> bool {
        match self.store.others() {
            Ok(others) if !others.is_empty() => {
                self.apply_others(others);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!("cannot read the queue's new entries: {e}");
                false
            }
        }
    }

    /// Notes the runs that started, settles those that ended.
    fn collect(&mut self) -> bool {
        let (started, ended) = self.workers.news();
        if !started.is_empty() {
            self.started(started);
        }
        let any = !ended.is_empty();
        for run in ended {
            self.settle(run);
        }
        if any {
            if let Err(e) = self.store.compact_if_large(&self.queue) {
                tracing::warn!("cannot rewrite the queue file: {e}");
            }
        }
        any
    }

    /// Decides what becomes of a record after a run, logs it (the audit
    /// event) and writes it to the queue: done, to be run again later, or
    /// kept as failed. The one place where a record's outcome is decided.
    fn settle(&mut self, ended: Ended) {
        let Ended {
            job,
            result,
            started,
        } = ended;
        if !started {
            // Handed ahead and given back at the stop: it simply waits.
            self.queue.interrupted(job.id);
            return;
        }
        let settings = self.settings;
        // A run ended by the reader's own stop (a shutdown that stopped a
        // run unit, a hash cut short) says nothing about the program: the
        // record runs again at the next start.
        self.supervisor.read_signals();
        let cut_short = match &result {
            Err(Skip::Interrupted) => true,
            Ok(report) => {
                self.supervisor.stop.is_some()
                    && matches!(report.status, Status::Signaled(_) | Status::NoAnswer(_))
            }
            Err(_) => false,
        };
        if cut_short {
            events::interrupted(&job);
            self.queue.interrupted(job.id);
            self.metrics.interrupted(self.workers.running() as u64);
            return;
        }
        let retryable = match &result {
            Ok(report) => matches!(
                audit::classify(&report.status),
                Outcome::Failed | Outcome::TimedOut
            ),
            Err(_) => false,
        };
        let failures = self.queue.get(job.id).map(|i| i.failures);
        let next = match failures {
            // Dropped while it ran.
            None => Next::Done,
            Some(_) if !retryable => Next::Done,
            Some(failures) if failures < settings.retries => Next::Retry(queue::backoff(
                settings.retry_delay,
                settings.retry_delay_max,
                failures + 1,
            )),
            Some(_) => Next::Failed,
        };
        let attempt = Attempt {
            id: job.id,
            number: job.attempt,
            waited: job.waited,
            next,
        };
        let outcome = match &result {
            Ok(report) => audit::ran(
                &job.record,
                &settings.program,
                report,
                settings.timeout,
                &attempt,
            ),
            Err(skip) => audit::skipped_file(&job.record, skip, &attempt),
        };
        if failures.is_some() {
            let entry = match next {
                Next::Done => Entry::Finished { id: job.id },
                Next::Retry(wait) => Entry::RetryAt {
                    id: job.id,
                    attempt: job.attempt,
                    due_us: now_us().saturating_add(wait.as_micros() as u64),
                },
                Next::Failed => Entry::Failed {
                    id: job.id,
                    attempt: job.attempt,
                },
            };
            // Not synced: lost, the record runs again (at least once).
            self.write_or_keep(vec![entry.clone()]);
            self.queue.apply(&entry);
        }
        if let Ok(report) = &result {
            self.metrics.ran(report);
        }
        let busy = self.workers.running() as u64;
        match next {
            Next::Retry(_) => self.metrics.retried(busy),
            Next::Done | Next::Failed => self.metrics.record_done(outcome, busy, self.reader.fd()),
        }
        self.counts.add(outcome, Some(&job.record.file));
        self.status_changed();
    }

    /// Hands the runs that may start to the workers: up to `jobs` at once,
    /// oldest first, one at a time per file; a single worker is also handed
    /// the next record, to start as soon as its run ends.
    fn dispatch(&mut self) -> bool {
        if self.supervisor.stop.is_some() {
            return false;
        }
        let ids = self
            .queue
            .next_runnable(now_us(), self.workers.room(), self.workers.serial());
        if ids.is_empty() {
            return false;
        }
        for id in ids {
            let Some(item) = self.queue.get(id) else {
                continue;
            };
            let job = Job {
                id,
                attempt: item.attempts + 1,
                record: Record {
                    user: item.user.clone(),
                    path: item.path.clone(),
                    file: item.file.clone(),
                },
                queued_us: item.queued_us,
                waited: Duration::ZERO,
            };
            self.queue.hand(id);
            self.workers.submit(job);
        }
        true
    }

    /// Runs that started: written to the queue (not synced: lost, the run
    /// counts as not started, and the record runs again).
    fn started(&mut self, started: Vec<RunStarted>) {
        let entries: Vec<Entry> = started
            .iter()
            .map(|s| Entry::Started {
                id: s.job.id,
                attempt: s.job.attempt,
                at_us: s.at_us,
            })
            .collect();
        self.write_or_keep(entries.clone());
        for (entry, s) in entries.iter().zip(&started) {
            self.queue.apply(entry);
            events::started(&s.job);
        }
        self.metrics
            .run_starts(self.workers.running() as u64, self.reader.fd());
        self.status_changed();
    }

    /// Nothing to do: sends a pending status, then sleeps until input (when
    /// the queue takes it), a signal, an ended run, the next retry, or the
    /// next watchdog ping, at most [`IDLE_TICK`].
    fn wait(&mut self) -> Result<(), DaemonError> {
        // While runs go on, the loop waits after each one: STATUS= (a
        // message systemd handles each time) then goes out once a second;
        // at once when all is done.
        let idle = self.queue.depth() == 0 && self.unsaved.is_empty();
        let second = self.status.sent.elapsed() >= IDLE_TICK;
        if self.queue.depth() > 0 && second {
            // The oldest age moves on.
            self.status.dirty = true;
        }
        if self.status.dirty && (idle || second) {
            self.send_status();
        }
        if idle {
            self.metrics.flush();
        } else {
            self.metrics.flush_due();
        }
        let now = Instant::now();
        let mut limit = IDLE_TICK;
        if self.metrics.unwritten() {
            limit = limit.min(PUBLISH_EVERY);
        }
        if let Some(sleep) = self.supervisor.sleep_limit() {
            limit = limit.min(sleep);
        }
        if let Some((retry_at, _)) = &self.intake_stopped {
            limit = limit.min(retry_at.saturating_duration_since(now));
        }
        let now_us = now_us();
        if let Some(due) = self.queue.next_due_us(now_us) {
            limit = limit.min(between(now_us, due));
        }
        let take_input = self.supervisor.stop.is_none()
            && self.intake_stopped.is_none()
            && self.unsaved.is_empty();
        let fds = [
            take_input.then(|| self.reader.fd()),
            Some(self.supervisor.signals.fd()),
            Some(self.workers.fd()),
        ];
        wait_readable(fds, Some(limit)).map_err(DaemonError::Poll)?;
        program::Watch::wake(&mut self.supervisor);
        Ok(())
    }

    /// After a stop signal and the end of the runs going on: says what is
    /// left, `STOPPING=1`.
    fn stop(mut self) {
        self.metrics.flush();
        if self.reader.buffered() > 0 {
            tracing::warn!(
                "{} bytes read from the upload pipe were not processed",
                self.reader.buffered()
            );
        }
        systemd::notify_stopping();
        tracing::info!(
            QUEUE_DEPTH = self.queue.depth() as u64,
            "stopped; {} record(s) left in the queue for the next start; {}",
            self.queue.depth(),
            self.counts.status_line()
        );
    }
}

/// The queue's journal events (one per change of a record's state; the
/// end of a run is the audit event).
mod events {
    use std::path::Path;

    use crate::upload::queue::format::Entry;
    use crate::upload::queue::message_ids;
    use crate::upload::queue::state::Queue;
    use crate::upload::queue::store::SetAside;
    use crate::upload::workers::Job;

    fn lossy(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// One event per record taken from the pipe; `depth` is the queue's
    /// depth once they are all in.
    pub fn queued(entries: &[Entry], depth: usize) {
        for entry in entries {
            let Entry::Queued { id, user, file, .. } = entry else {
                continue;
            };
            let file = lossy(file);
            tracing::info!(
                MESSAGE_ID = message_ids::QUEUED,
                QUEUE_ID = id,
                QUEUE_DEPTH = depth as u64,
                UPLOAD_FILE = file.as_str(),
                UPLOAD_VUSER = lossy(user).as_str(),
                "{file}: queued (record {id})"
            );
        }
    }

    pub fn started(job: &Job) {
        let file = lossy(&job.record.file);
        tracing::info!(
            MESSAGE_ID = message_ids::STARTED,
            QUEUE_ID = job.id,
            QUEUE_ATTEMPT = job.attempt,
            QUEUE_WAIT_USEC = job.waited.as_micros() as u64,
            UPLOAD_FILE = file.as_str(),
            UPLOAD_VUSER = lossy(&job.record.user).as_str(),
            "{file}: run {} started (record {})",
            job.attempt,
            job.id
        );
    }

    pub fn interrupted(job: &Job) {
        let file = lossy(&job.record.file);
        tracing::info!(
            MESSAGE_ID = message_ids::INTERRUPTED,
            QUEUE_ID = job.id,
            QUEUE_ATTEMPT = job.attempt,
            UPLOAD_FILE = file.as_str(),
            UPLOAD_VUSER = lossy(&job.record.user).as_str(),
            "{file}: run {} cut short by the reader's stop; it runs again at the next start (record {})",
            job.attempt,
            job.id
        );
    }

    pub fn set_aside(dir: &Path, aside: &SetAside) {
        tracing::error!(
            MESSAGE_ID = message_ids::SET_ASIDE,
            QUEUE_DIR = %dir.display(),
            QUEUE_SET_ASIDE = %aside.path.display(),
            "the queue file was damaged ({}): set aside as {}; {} entries found in it are kept",
            aside.why,
            aside.path.display(),
            aside.recovered
        );
    }

    pub fn resumed(queue: &Queue) {
        let depth = queue.depth();
        if depth + queue.failed() == 0 {
            return;
        }
        tracing::info!(
            MESSAGE_ID = message_ids::RESUMED,
            QUEUE_DEPTH = depth as u64,
            QUEUE_FAILED = queue.failed() as u64,
            "{depth} record(s) to run found in the queue ({} kept as failed)",
            queue.failed()
        );
    }

    pub fn intake_stopped(dir: &Path, error: &std::io::Error) {
        tracing::error!(
            MESSAGE_ID = message_ids::INTAKE_STOPPED,
            QUEUE_DIR = %dir.display(),
            "cannot write the queue in {}: {error}; uploads stay in the pipe until it can be written",
            dir.display()
        );
    }

    pub fn intake_resumed(dir: &Path) {
        tracing::info!(
            MESSAGE_ID = message_ids::INTAKE_RESUMED,
            QUEUE_DIR = %dir.display(),
            "the queue in {} can be written again; reading the pipe",
            dir.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_origins_have_their_field_values() {
        let all = [
            PipeOrigin::Created,
            PipeOrigin::Opened,
            PipeOrigin::FdStore,
            PipeOrigin::ListenFifo,
        ];
        let values: Vec<_> = all.iter().map(|o| o.as_str()).collect();
        assert_eq!(values, ["created", "opened", "fdstore", "listen-fifo"]);
        let held: Vec<_> = all.iter().map(|o| o.passed_by_systemd()).collect();
        assert_eq!(held, [false, false, true, true]);
    }

    #[test]
    fn errors_say_what_failed() {
        let e = DaemonError::PidFile {
            path: "/run/x.pid".into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(
            e.to_string(),
            "cannot write the pid file /run/x.pid: No such file or directory (os error 2)"
        );
        let e = DaemonError::ReadPipe(io::Error::from_raw_os_error(libc::EIO));
        assert!(e.to_string().starts_with("cannot read the upload pipe: "));
    }
}
