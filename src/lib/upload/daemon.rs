//! The `pure-uploadscript` daemon: start-up (pipe, identity, pid file,
//! systemd) and the main loop that runs the program on each record, in
//! order. It takes checked [`Settings`].
//!
//! Start-up ([`run`], then `start`): the program is checked; signals are
//! blocked (they are read from a signalfd); the FIFO is taken from
//! `LISTEN_FDS` (a stored `upload-pipe` descriptor or a `.socket` unit's
//! `ListenFIFO=`) or opened, created if missing; it is put in the file
//! descriptor store; `-B` forks away (not under systemd); the pid file is
//! written. Then (`MainLoop::prepare`) the daemon opens the state file of
//! its published counters ([`metrics`](crate::upload::metrics)), switches
//! to the uid/gid (as the C tool does: `setgroups`, `setgid`, `setuid`, and
//! `chdir("/")`) and sends `READY=1`.
//!
//! The main loop takes one event at a time from the FIFO and processes it
//! (`MainLoop::process`: run the program, log, then take the record out
//! of the FIFO), or, when the FIFO is empty, polls it and the signalfd
//! with a timeout that keeps `WATCHDOG=1` going, also while a program runs
//! (`MainLoop::wait`). `SIGTERM`, `SIGINT` and `SIGHUP` stop the daemon
//! once the running program has ended or timed out; records still in the
//! FIFO stay there for the next instance.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::stat::SFlag;

use crate::os::fd::{file_type, wait_readable};
use crate::os::process::{self, IdentityError, StopSignals};
use crate::os::systemd;
use crate::upload::audit::{self, Counts};
use crate::upload::debian;
use crate::upload::limits::Isolation;
use crate::upload::lock::{self, LockError, ReaderLock};
use crate::upload::metrics::Publisher;
use crate::upload::pipe::fifo::{self, FifoError, Reader};
use crate::upload::pipe::{Event, Parser};
use crate::upload::program::{self, Hook, HookConfig, ProgramError, Runner, Skip};
use crate::upload::runner::client::UnitClient;
use crate::upload::settings::Settings;

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
    Ok(Some(Started {
        identity,
        fifo,
        origin,
        signals,
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

/// `STATUS=` goes out when the pipe is drained, and at most once a second
/// while busy.
struct StatusUpdates {
    sent: Instant,
    dirty: bool,
}

impl StatusUpdates {
    fn send(&mut self, counts: &Counts) {
        systemd::notify_status(&counts.status_line());
        self.sent = Instant::now();
        self.dirty = false;
    }

    /// The counts changed: sent if the last update is a second old.
    fn changed(&mut self, counts: &Counts) {
        self.dirty = true;
        if self.sent.elapsed() >= Duration::from_secs(1) {
            self.send(counts);
        }
    }

    /// The pipe is drained: sent if anything changed since the last one.
    fn flush(&mut self, counts: &Counts) {
        if self.dirty {
            self.send(counts);
        }
    }
}

/// The main loop, once start-up is done.
struct MainLoop<'a> {
    settings: &'a Settings,
    runner: Box<dyn Runner>,
    reader: Reader,
    /// Held until the loop ends.
    _lock: Option<ReaderLock>,
    supervisor: Supervisor,
    counts: Counts,
    status: StatusUpdates,
    /// The counters published for the metrics exporter.
    metrics: Publisher,
}

/// Runs the main loop until a stop signal.
fn serve(settings: &Settings, started: Started) -> Result<(), DaemonError> {
    let origin = started.origin;
    let mut main_loop = MainLoop::prepare(settings, started)?;
    main_loop.announce(origin);
    while main_loop.supervisor.stop.is_none() {
        main_loop.step()?;
    }
    main_loop.stop();
    Ok(())
}

impl<'a> MainLoop<'a> {
    /// The end of start-up: `/` as working directory, the switch to the
    /// target identity, the program checked again as that identity, the
    /// program runner and the pipe reader.
    fn prepare(settings: &'a Settings, started: Started) -> Result<Self, DaemonError> {
        std::env::set_current_dir("/").map_err(DaemonError::Chdir)?;
        // Opened while still root: the state directory is root's.
        let metrics = Publisher::for_pipe(&settings.pipe);
        if let Some((uid, gid)) = started.identity {
            process::switch_identity(uid, gid)?;
        }
        let runner: Box<dyn Runner> = match settings.isolation {
            Isolation::Unit => Box::new(UnitClient::new(
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
                Box::new(hook.with_vhost_dir(&settings.vhost_dir))
            }
        };
        let parser = Parser::with_vhost_dir(settings.vhost_dir.as_os_str().as_bytes());
        let reader = Reader::new(started.fifo, parser).map_err(DaemonError::ReadPipe)?;
        let supervisor = Supervisor {
            signals: started.signals,
            stop: None,
            watchdog: systemd::watchdog_ping_interval().map(|i| (i, Instant::now())),
        };
        Ok(MainLoop {
            settings,
            runner,
            reader,
            _lock: started._lock,
            supervisor,
            counts: Counts::default(),
            status: StatusUpdates {
                sent: Instant::now(),
                dirty: false,
            },
            metrics,
        })
    }

    /// Logs where the pipe came from and tells systemd the daemon is ready.
    fn announce(&mut self, origin: PipeOrigin) {
        let settings = self.settings;
        tracing::info!(
            PIPE = %settings.pipe.display(),
            PIPE_ORIGIN = origin.as_str(),
            ISOLATION = settings.isolation.as_str(),
            "waiting for uploads on {} ({}); running {} {}",
            settings.pipe.display(),
            origin.describe(),
            settings.program.display(),
            settings.isolation.describe(settings.profile)
        );
        systemd::notify_ready(&format!(
            "waiting for uploads; {}",
            self.counts.status_line()
        ));
        self.supervisor.ping();
        self.status.sent = Instant::now();
    }

    /// Processes the next event in the pipe, or waits for one.
    fn step(&mut self) -> Result<(), DaemonError> {
        match self.reader.next_event().map_err(DaemonError::ReadPipe)? {
            Some(event) => self.process(event),
            None => self.wait(),
        }
    }

    /// The pipe is empty: sends a pending status, then sleeps until input,
    /// a signal or the next watchdog ping.
    fn wait(&mut self) -> Result<(), DaemonError> {
        self.status.flush(&self.counts);
        let fds = [Some(self.reader.fd()), Some(self.supervisor.signals.fd())];
        wait_readable(fds, self.supervisor.sleep_limit()).map_err(DaemonError::Poll)?;
        program::Watch::wake(&mut self.supervisor);
        Ok(())
    }

    /// Processes one event: runs the program on a record's file and logs
    /// the outcome; only then does the record leave the FIFO.
    fn process(&mut self, event: Event) -> Result<(), DaemonError> {
        let settings = self.settings;
        let outcome = match event {
            Event::Skipped(n) => {
                audit::skipped_bytes(n);
                None
            }
            Event::Rejected(rejection) => Some((audit::rejected_record(&rejection), None)),
            Event::Record(record) => {
                self.metrics.run_starts(self.reader.fd());
                let outcome =
                    match self
                        .runner
                        .run(&record.user, &record.file, &mut self.supervisor)
                    {
                        Ok(report) => {
                            self.metrics.ran(&report);
                            audit::ran(&record, &settings.program, &report, settings.timeout)
                        }
                        // Stopped while hashing: the record stays in the pipe.
                        Err(Skip::Interrupted) => {
                            self.metrics.interrupted();
                            return Ok(());
                        }
                        Err(skip) => audit::skipped_file(&record, &skip),
                    };
                Some((outcome, Some(record.file)))
            }
        };
        self.reader.commit().map_err(DaemonError::ReadPipe)?;
        if let Some((outcome, file)) = outcome {
            self.metrics.record_done(outcome, self.reader.fd());
            self.counts.add(outcome, file.as_deref());
            self.status.changed(&self.counts);
        }
        program::Watch::wake(&mut self.supervisor);
        Ok(())
    }

    /// After a stop signal: says what is left unprocessed, `STOPPING=1`.
    fn stop(self) {
        if self.reader.buffered() > 0 {
            tracing::warn!(
                "{} bytes read from the upload pipe were not processed",
                self.reader.buffered()
            );
        }
        systemd::notify_stopping();
        tracing::info!("stopped; {}", self.counts.status_line());
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
