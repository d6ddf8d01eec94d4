//! The `pure-uploadscript` daemon: settings from the command line and the
//! configuration files, start-up (pipe, identity, pid file, systemd), and
//! the main loop that runs the program on each record, in order.
//!
//! Start-up, in order: settings are resolved and the program checked;
//! signals are blocked (they are read from a signalfd); the FIFO is taken
//! from `LISTEN_FDS` (a stored `upload-pipe` descriptor or a `.socket`
//! unit's `ListenFIFO=`) or opened, created if missing; it is put in the
//! file descriptor store; `-B` forks away (not under systemd); the pid
//! file is written; the daemon switches to the uid/gid (as the C tool
//! does: `setgroups`, `setgid`, `setuid`, and `chdir("/")`); `READY=1`.
//!
//! The main loop polls the FIFO and the signalfd with a timeout that keeps
//! `WATCHDOG=1` going, also while a program runs. `SIGTERM`, `SIGINT` and
//! `SIGHUP` stop the daemon once the running program has ended or timed
//! out; records still in the FIFO stay there for the next instance.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::uploadscript::{Args, EXIT_IDENTITY, EXIT_PIPE, EXIT_RUNTIME, EXIT_USAGE};
use crate::os::config::ConfigError;
use crate::os::systemd;
use crate::upload::audit::{self, Counts};
use crate::upload::metrics::Publisher;
use crate::upload::pipe::fifo::{self, FifoError, Reader};
use crate::upload::pipe::{Event, Parser, DEFAULT_VHOST_DIR};
use crate::upload::program::{self, HashAlgorithm, Hook, HookConfig, ProgramError};
use crate::upload::settings::{Hash, Id, UploadscriptConfig, DEFAULT_PATH as CONFIG_PATH};

/// The C tool's pid file, written by default outside systemd.
pub const DEFAULT_PIDFILE: &str = "/var/run/pure-uploadscript.pid";

/// Everything the daemon needs, command line and configuration merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The program to run (absolute).
    pub program: PathBuf,
    /// The uid to switch to, if any.
    pub uid: Option<u32>,
    /// The gid to switch to, if any.
    pub gid: Option<u32>,
    /// The FIFO.
    pub pipe: PathBuf,
    /// The pid file, if one is written.
    pub pidfile: Option<PathBuf>,
    /// Whether the pid file was asked for (then failing to write it is an
    /// error).
    pub pidfile_required: bool,
    /// Fork into the background (never under systemd).
    pub daemonize: bool,
    /// Limit on one run.
    pub timeout: Option<Duration>,
    /// Checksum to log.
    pub hash: Option<HashAlgorithm>,
    /// Pass the daemon's environment.
    pub keep_env: bool,
    /// Capture the program's output.
    pub capture_output: bool,
    /// Where `IP:/path` names are mapped.
    pub vhost_dir: PathBuf,
}

/// Why the daemon did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A bad option or setting.
    #[error("{0}")]
    Usage(String),
    /// A configuration file could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The program cannot be run.
    #[error(transparent)]
    Program(#[from] ProgramError),
    /// The upload pipe cannot be used.
    #[error(transparent)]
    Pipe(#[from] FifoError),
    /// The uid/gid switch or the pid file failed.
    #[error("{0}")]
    Identity(String),
    /// Something failed while running.
    #[error("{0}")]
    Runtime(String),
}

impl DaemonError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Usage(_) | DaemonError::Config(_) | DaemonError::Program(_) => EXIT_USAGE,
            DaemonError::Pipe(_) => EXIT_PIPE,
            DaemonError::Identity(_) => EXIT_IDENTITY,
            DaemonError::Runtime(_) => EXIT_RUNTIME,
        }
    }
}

fn resolve_user(id: &Id) -> Result<(u32, Option<u32>), DaemonError> {
    match id {
        Id::Number(n) => Ok((*n, None)),
        Id::Name(name) => match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => Ok((u.uid.as_raw(), Some(u.gid.as_raw()))),
            Ok(None) => Err(DaemonError::Usage(format!("unknown user: {name}"))),
            Err(e) => Err(DaemonError::Usage(format!(
                "cannot look up user {name}: {e}"
            ))),
        },
    }
}

fn resolve_group(id: &Id) -> Result<u32, DaemonError> {
    match id {
        Id::Number(n) => Ok(*n),
        Id::Name(name) => match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Ok(g.gid.as_raw()),
            Ok(None) => Err(DaemonError::Usage(format!("unknown group: {name}"))),
            Err(e) => Err(DaemonError::Usage(format!(
                "cannot look up group {name}: {e}"
            ))),
        },
    }
}

fn absolute(path: PathBuf) -> Result<PathBuf, DaemonError> {
    std::path::absolute(&path).map_err(|e| DaemonError::Usage(format!("{}: {e}", path.display())))
}

impl Settings {
    /// Merges `args` over the configuration files (`--config`, which must
    /// exist, or `/etc/pure-uploadscript.toml`, which may be absent, plus
    /// its `.d` drop-ins).
    pub fn resolve(args: Args) -> Result<Settings, DaemonError> {
        let file = UploadscriptConfig::load(args.config.as_deref())?;
        Self::merge(args, file)
    }

    /// Merges `args` over `file`: what the command line sets wins.
    pub fn merge(args: Args, file: UploadscriptConfig) -> Result<Settings, DaemonError> {
        Self::merge_for(args, file, systemd::under_systemd())
    }

    /// [`Settings::merge`], saying whether the daemon runs under systemd
    /// (which decides the default pid file).
    pub fn merge_for(
        args: Args,
        file: UploadscriptConfig,
        under_systemd: bool,
    ) -> Result<Settings, DaemonError> {
        let program = args.run.or(file.run).ok_or_else(|| {
            DaemonError::Usage(format!(
                "no program to run: give -r PROGRAM, or set run in {CONFIG_PATH}"
            ))
        })?;
        if !program.is_absolute() {
            return Err(ProgramError::NotAbsolute(program).into());
        }
        let (uid, user_gid) = match args.uid.or(file.uid) {
            Some(id) => {
                let (uid, gid) = resolve_user(&id)?;
                (Some(uid), gid)
            }
            None => (None, None),
        };
        let gid = match args.gid.or(file.gid) {
            Some(id) => Some(resolve_group(&id)?),
            None => user_gid,
        };
        let explicit_pidfile = args.pidfile.or(file.pidfile);
        let pidfile_required = explicit_pidfile.is_some();
        let pidfile = match explicit_pidfile {
            Some(p) => Some(absolute(p)?),
            None if !under_systemd => Some(DEFAULT_PIDFILE.into()),
            None => None,
        };
        let pipe = absolute(
            args.pipe
                .or(file.pipe)
                .unwrap_or_else(|| fifo::DEFAULT_PATH.into()),
        )?;
        let timeout = match args.timeout.or(file.timeout) {
            Some(t) => t.0,
            None => Some(program::DEFAULT_TIMEOUT),
        };
        let hash = match args.hash.or(file.hash) {
            Some(Hash::Sha256) => Some(HashAlgorithm::Sha256),
            Some(Hash::None) | None => None,
        };
        Ok(Settings {
            program,
            uid,
            gid,
            pipe,
            pidfile,
            pidfile_required,
            daemonize: args.daemonize || file.daemonize.unwrap_or(false),
            timeout,
            hash,
            keep_env: args.keep_env || file.keep_env.unwrap_or(false),
            capture_output: args.capture_output || file.capture_output.unwrap_or(false),
            vhost_dir: file.vhost_dir.unwrap_or_else(|| DEFAULT_VHOST_DIR.into()),
        })
    }

    /// The identity the program will run as: the C tool, run as root,
    /// always switches (to uid 0 and gid 0 unless told otherwise); as
    /// another user, only `-u`/`-g` switch.
    pub fn target_identity(&self) -> Option<(u32, u32)> {
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        if euid == 0 {
            Some((self.uid.unwrap_or(0), self.gid.unwrap_or(0)))
        } else if self.uid.is_some() || self.gid.is_some() {
            Some((self.uid.unwrap_or(euid), self.gid.unwrap_or(egid)))
        } else {
            None
        }
    }
}

/// Blocks the stop signals and returns a signalfd that reports them.
fn stop_signals() -> io::Result<OwnedFd> {
    // SAFETY: plain signal-set manipulation and syscalls.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Opens `/dev/null` on any of descriptors 0, 1 and 2 that is closed (the
/// C tool even closes 0 itself), so that no file ever lands there.
fn ensure_stdio() {
    for fd in 0..3 {
        // SAFETY: F_GETFD on a descriptor number; open of a constant path.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) < 0 {
                let new = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if new >= 0 && new != fd {
                    libc::dup2(new, fd);
                    libc::close(new);
                }
            }
        }
    }
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
    let fds = systemd::take_listen_fds()
        .map_err(|e| DaemonError::Runtime(format!("cannot take LISTEN_FDS: {e}")))?;
    let is_fifo = |fd: BorrowedFd<'_>| {
        nix::sys::stat::fstat(fd.as_raw_fd())
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO)
            .unwrap_or(false)
    };
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

fn daemonize() -> Result<(), DaemonError> {
    // SAFETY: the daemon is single-threaded here; the child only continues
    // with ordinary code, the parent exits at once.
    match unsafe { libc::fork() } {
        -1 => Err(DaemonError::Runtime(format!(
            "cannot fork: {}",
            io::Error::last_os_error()
        ))),
        0 => {
            // SAFETY: setsid and descriptor juggling in the child.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    for fd in 0..3 {
                        libc::dup2(null, fd);
                    }
                    if null > 2 {
                        libc::close(null);
                    }
                }
            }
            Ok(())
        }
        // SAFETY: leaving without running destructors or atexit handlers,
        // as the child carries on.
        _ => unsafe { libc::_exit(0) },
    }
}

/// Writes the pid file as the C tool does: unlink, then create (0644, not
/// following symlinks) with the pid and a newline.
fn write_pidfile(path: &Path) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(format!("{}\n", std::process::id()).as_bytes())
}

fn remove_pidfile(path: &Path) {
    let ours = std::fs::read_to_string(path)
        .map(|s| s.trim() == std::process::id().to_string())
        .unwrap_or(false);
    if ours {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::debug!("cannot remove {}: {e}", path.display());
        }
    }
}

fn switch_identity(uid: u32, gid: u32) -> Result<(), DaemonError> {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    let fail = |what: &str, e: nix::Error| {
        DaemonError::Identity(format!("cannot switch to uid {uid} gid {gid}: {what}: {e}"))
    };
    setgroups(&[Gid::from_raw(gid)]).map_err(|e| fail("setgroups", e))?;
    setgid(Gid::from_raw(gid)).map_err(|e| fail("setgid", e))?;
    setuid(Uid::from_raw(uid)).map_err(|e| fail("setuid", e))?;
    Ok(())
}

/// Main-loop state that must keep going while a program runs: signals and
/// the watchdog.
struct Supervisor {
    signals: OwnedFd,
    stop: Option<i32>,
    watchdog: Option<(Duration, Instant)>,
}

impl Supervisor {
    fn read_signals(&mut self) {
        loop {
            // SAFETY: a zeroed siginfo buffer of the right size.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: info is valid for size bytes.
            let n = unsafe {
                libc::read(
                    self.signals.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n != size as isize {
                return;
            }
            if self.stop.is_none() {
                tracing::info!(
                    "received {}; stopping",
                    nix::sys::signal::Signal::try_from(info.ssi_signo as i32)
                        .map(|s| s.as_str())
                        .unwrap_or("a signal")
                );
            }
            self.stop = Some(info.ssi_signo as i32);
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
}

impl program::Watch for Supervisor {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.signals.as_fd())
    }
    fn deadline(&self) -> Option<Instant> {
        self.watchdog.map(|(_, next)| next)
    }
    fn wake(&mut self) {
        self.read_signals();
        self.ping();
    }
}

/// Runs the daemon until a stop signal (`Ok`) or a fatal error.
pub fn run(settings: Settings) -> Result<(), DaemonError> {
    ensure_stdio();
    program::close_inherited_on_exec()
        .map_err(|e| DaemonError::Runtime(format!("cannot mark descriptors close-on-exec: {e}")))?;
    let identity = settings.target_identity();
    match identity {
        Some((uid, gid)) => program::check_program(&settings.program, uid, gid)?,
        None => program::check_program_as_self(&settings.program)?,
    }
    let signals = stop_signals()
        .map_err(|e| DaemonError::Runtime(format!("cannot set up signal handling: {e}")))?;

    let (fifo_fd, origin) = match take_passed_fifo()? {
        Some((fd, name)) => {
            fifo::check_fd(
                fd.as_fd(),
                Path::new(&format!("descriptor \"{name}\" from systemd")),
            )?;
            let origin = if name == fifo::STORE_NAME {
                PipeOrigin::FdStore
            } else {
                PipeOrigin::ListenFifo
            };
            (fd, origin)
        }
        None => {
            let (fd, created) = fifo::open_or_create(&settings.pipe)?;
            let origin = if created {
                PipeOrigin::Created
            } else {
                PipeOrigin::Opened
            };
            (fd, origin)
        }
    };
    // A descriptor passed by systemd is already held by it (the store, or a
    // `.socket` unit); storing it again would exceed FileDescriptorStoreMax=.
    if !origin.passed_by_systemd() {
        if let Err(e) = systemd::store_fd(fifo_fd.as_fd(), fifo::STORE_NAME) {
            tracing::warn!("cannot keep the upload pipe in systemd's descriptor store: {e}");
        }
    }

    if settings.daemonize {
        if systemd::under_systemd() {
            tracing::info!("running under systemd: -B (daemonize) ignored");
        } else {
            daemonize()?;
        }
    }
    if let Some(pidfile) = &settings.pidfile {
        if let Err(e) = write_pidfile(pidfile) {
            let message = format!("cannot write the pid file {}: {e}", pidfile.display());
            if settings.pidfile_required {
                return Err(DaemonError::Identity(message));
            }
            tracing::warn!("{message}");
        }
    }
    let result = serve(&settings, identity, fifo_fd, origin, signals);
    if let Some(pidfile) = &settings.pidfile {
        remove_pidfile(pidfile);
    }
    result
}

fn serve(
    settings: &Settings,
    identity: Option<(u32, u32)>,
    fifo_fd: OwnedFd,
    origin: PipeOrigin,
    signals: OwnedFd,
) -> Result<(), DaemonError> {
    std::env::set_current_dir("/")
        .map_err(|e| DaemonError::Runtime(format!("cannot change directory to /: {e}")))?;
    // Opened while still root: the state directory is root's.
    let mut metrics = Publisher::for_pipe(&settings.pipe);
    if let Some((uid, gid)) = identity {
        switch_identity(uid, gid)?;
    }
    let program = &settings.program;
    program::check_program_as_self(program)?;
    let hook = Hook::new(HookConfig {
        program: program.clone(),
        timeout: settings.timeout,
        keep_env: settings.keep_env,
        capture_output: settings.capture_output,
        hash: settings.hash,
    })
    .map_err(|e| DaemonError::Runtime(format!("cannot prepare to run programs: {e}")))?;
    let parser = Parser::with_vhost_dir(settings.vhost_dir.as_os_str().as_bytes());
    let mut reader = Reader::new(fifo_fd, parser)
        .map_err(|e| DaemonError::Runtime(format!("cannot read the upload pipe: {e}")))?;

    let mut sup = Supervisor {
        signals,
        stop: None,
        watchdog: systemd::watchdog_ping_interval().map(|i| (i, Instant::now())),
    };
    let mut counts = Counts::default();
    tracing::info!(
        PIPE = %settings.pipe.display(),
        PIPE_ORIGIN = origin.as_str(),
        "waiting for uploads on {} ({}); running {}",
        settings.pipe.display(),
        origin.describe(),
        program.display()
    );
    systemd::notify_ready(&format!("waiting for uploads; {}", counts.status_line()));
    sup.ping();

    // STATUS= goes out when the pipe is drained, and at most once a second
    // while busy.
    let mut status_sent = Instant::now();
    let mut status_dirty = false;
    while sup.stop.is_none() {
        let event = reader
            .next_event()
            .map_err(|e| DaemonError::Runtime(format!("cannot read the upload pipe: {e}")))?;
        let Some(event) = event else {
            if status_dirty {
                systemd::notify_status(&counts.status_line());
                status_sent = Instant::now();
                status_dirty = false;
            }
            let mut fds = [
                libc::pollfd {
                    fd: reader.fd().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: sup.signals.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let timeout = sup
                .watchdog
                .map(|(_, next)| next.saturating_duration_since(Instant::now()));
            program::poll(&mut fds, timeout)
                .map_err(|e| DaemonError::Runtime(format!("poll failed: {e}")))?;
            program::Watch::wake(&mut sup);
            continue;
        };
        let outcome = match event {
            Event::Skipped(n) => {
                audit::skipped_bytes(n);
                None
            }
            Event::Rejected(rejection) => Some((audit::rejected_record(&rejection), None)),
            Event::Record(record) => {
                metrics.run_starts(reader.fd());
                let outcome = match hook.run(&record.user, &record.file, &mut sup) {
                    Ok(report) => {
                        metrics.ran(&report);
                        audit::ran(&record, program, &report, settings.timeout)
                    }
                    Err(skip) => audit::skipped_file(&record, &skip),
                };
                Some((outcome, Some(record.file)))
            }
        };
        // Processed and logged: only now does the record leave the FIFO.
        reader
            .commit()
            .map_err(|e| DaemonError::Runtime(format!("cannot read the upload pipe: {e}")))?;
        if let Some((outcome, file)) = outcome {
            metrics.record_done(outcome, reader.fd());
            counts.add(outcome, file.as_deref());
            status_dirty = true;
            if status_sent.elapsed() >= Duration::from_secs(1) {
                systemd::notify_status(&counts.status_line());
                status_sent = Instant::now();
                status_dirty = false;
            }
        }
        program::Watch::wake(&mut sup);
    }
    if reader.buffered() > 0 {
        tracing::warn!(
            "{} bytes read from the upload pipe were not processed",
            reader.buffered()
        );
    }
    systemd::notify_stopping();
    tracing::info!("stopped; {}", counts.status_line());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::settings::Timeout;
    use clap::Parser as _;

    fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("pure-uploadscript").chain(list.iter().copied()))
            .unwrap()
    }

    #[test]
    fn defaults_follow_the_c_tool() {
        let s = Settings::merge_for(args(&["-r", "/bin/true"]), Default::default(), false).unwrap();
        assert_eq!(s.program, PathBuf::from("/bin/true"));
        assert_eq!(s.pipe, PathBuf::from("/run/pure-ftpd.upload.pipe"));
        assert_eq!(s.pidfile, Some(PathBuf::from(DEFAULT_PIDFILE)));
        assert!(!s.pidfile_required);
        assert_eq!(s.timeout, Some(Duration::from_secs(600)));
        assert_eq!((s.uid, s.gid), (None, None));
        assert_eq!(s.hash, None);
        assert!(!s.keep_env && !s.capture_output && !s.daemonize);
        assert_eq!(s.vhost_dir, PathBuf::from("/etc/pure-ftpd/pure-ftpd"));
        // Under systemd there is no pid file unless asked for.
        let s = Settings::merge_for(args(&["-r", "/bin/true"]), Default::default(), true).unwrap();
        assert_eq!(s.pidfile, None);
        let s = Settings::merge_for(
            args(&["-r", "/bin/true", "-p", "/run/x.pid"]),
            Default::default(),
            true,
        )
        .unwrap();
        assert_eq!(s.pidfile, Some(PathBuf::from("/run/x.pid")));
        assert!(s.pidfile_required);
    }

    #[test]
    fn the_command_line_wins_over_the_files() {
        let file = UploadscriptConfig {
            run: Some("/from/config".into()),
            uid: Some(Id::Number(1)),
            gid: Some(Id::Number(2)),
            timeout: Some(Timeout(None)),
            hash: Some(Hash::Sha256),
            keep_env: Some(true),
            pipe: Some("/run/config.pipe".into()),
            vhost_dir: Some("/etc/pure-ftpd".into()),
            ..Default::default()
        };
        let s = Settings::merge_for(
            args(&[
                "-r",
                "/bin/true",
                "-u",
                "3",
                "--timeout",
                "5",
                "--hash",
                "none",
            ]),
            file.clone(),
            true,
        )
        .unwrap();
        assert_eq!(s.program, PathBuf::from("/bin/true"));
        assert_eq!((s.uid, s.gid), (Some(3), Some(2)));
        assert_eq!(s.timeout, Some(Duration::from_secs(5)));
        assert_eq!(s.hash, None);
        assert!(s.keep_env);
        assert_eq!(s.pipe, PathBuf::from("/run/config.pipe"));
        assert_eq!(s.vhost_dir, PathBuf::from("/etc/pure-ftpd"));
        let s = Settings::merge_for(args(&[]), file, true).unwrap();
        assert_eq!(s.program, PathBuf::from("/from/config"));
        assert_eq!(s.timeout, None);
        assert_eq!(s.hash, Some(HashAlgorithm::Sha256));
    }

    #[test]
    fn users_and_groups_by_name_or_number() {
        let s = Settings::merge_for(
            args(&["-r", "/bin/true", "-u", "nobody"]),
            Default::default(),
            true,
        )
        .unwrap();
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        assert_eq!(
            (s.uid, s.gid),
            (Some(nobody.uid.as_raw()), Some(nobody.gid.as_raw()))
        );
        // A number alone keeps C's meaning: the group is not implied.
        let s = Settings::merge_for(
            args(&["-r", "/bin/true", "-u", "65534"]),
            Default::default(),
            true,
        )
        .unwrap();
        assert_eq!((s.uid, s.gid), (Some(65534), None));
        let s = Settings::merge_for(
            args(&["-r", "/bin/true", "-g", "root"]),
            Default::default(),
            true,
        )
        .unwrap();
        assert_eq!(s.gid, Some(0));
        for bad in [&["-u", "no-such-user-x"][..], &["-g", "no-such-group-x"]] {
            let mut list = vec!["-r", "/bin/true"];
            list.extend_from_slice(bad);
            let e = Settings::merge_for(args(&list), Default::default(), true).unwrap_err();
            assert_eq!(e.exit_code(), EXIT_USAGE, "{e}");
        }
    }

    #[test]
    fn a_program_is_required_and_absolute() {
        let e = Settings::merge_for(args(&[]), Default::default(), true).unwrap_err();
        assert!(e.to_string().starts_with("no program to run"), "{e}");
        assert_eq!(e.exit_code(), EXIT_USAGE);
        let e =
            Settings::merge_for(args(&["-r", "hook.sh"]), Default::default(), true).unwrap_err();
        assert!(e.to_string().contains("absolute path"), "{e}");
        assert_eq!(e.exit_code(), EXIT_USAGE);
    }

    #[test]
    fn relative_paths_become_absolute_before_chdir() {
        let s = Settings::merge_for(
            args(&["-r", "/bin/true", "--pipe", "rel.pipe", "-p", "rel.pid"]),
            Default::default(),
            true,
        )
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(s.pipe, cwd.join("rel.pipe"));
        assert_eq!(s.pidfile, Some(cwd.join("rel.pid")));
    }
}
