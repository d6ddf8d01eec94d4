//! Running the administrator's program on one uploaded file.
//!
//! As the C `pure-uploadscript` does: the file must `lstat()` as a regular
//! file (no symlink, directory or device); the program gets the file name
//! as its only argument, `UPLOAD_SIZE`, `UPLOAD_PERMS` (octal),
//! `UPLOAD_UID`, `UPLOAD_GID`, `UPLOAD_USER`, `UPLOAD_GROUP` and
//! `UPLOAD_VUSER` (the last three left out when the name is unknown or
//! empty), standard input and outputs on `/dev/null`, `/` as working
//! directory, and none of the daemon's descriptors.
//!
//! Added here:
//! - a clean environment by default: `PATH=/usr/sbin:/usr/bin:/sbin:/bin`,
//!   `LANG` if the daemon has it, the `UPLOAD_*` variables, nothing else
//!   (`keep_env` passes the daemon's environment instead, like C, minus
//!   systemd's `NOTIFY_SOCKET`, `WATCHDOG_*`, `LISTEN_*` and stale
//!   `UPLOAD_*`);
//! - `UPLOAD_FD=3`: descriptor 3 is the checked file, opened read-only
//!   without following symlinks, so the program reads exactly what was
//!   checked even if the name is replaced meanwhile (left out when the
//!   daemon cannot open the file);
//! - its own process group (not its own session: a session per run would
//!   also mean a scheduler autogroup per run); on timeout the whole group is
//!   killed with `SIGKILL`;
//! - optionally its standard output and error captured, their last
//!   [`TAIL_LEN`] bytes reported;
//! - optionally the file's SHA-256, read through the same descriptor;
//! - `UPLOAD_USER` and `UPLOAD_GROUP` looked up at most once a second per
//!   id (a burst of uploads does not read the user database per file).
//!
//! Signals blocked or ignored by the daemon are reset for the program
//! (`SIGPIPE` included, which the C tool leaves ignored).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::{AccessFlags, Pid};
use sha2::Digest;

use crate::os::fd::wait_readable;
use crate::os::resolve::{self, ResolveError};
use crate::os::users::{group_name, user_name};
use crate::os::{fd as osfd, process, spawn};
use crate::upload::hash::Hash;

/// The descriptor number at which the program finds the checked file.
pub const UPLOAD_FD: RawFd = 3;

/// `PATH` in the clean environment.
pub const CLEAN_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// How many bytes of captured output are kept (the end of it).
pub const TAIL_LEN: usize = 4096;

/// Default limit on one run of the program.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Variables removed from the daemon's environment even with `keep_env`:
/// they belong to the daemon's dealings with systemd.
const PRIVATE_VARS: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// How to run the program.
#[derive(Debug, Clone)]
pub struct HookConfig {
    /// Absolute path of the program.
    pub program: PathBuf,
    /// Limit on one run; `None` for none.
    pub timeout: Option<Duration>,
    /// Pass the daemon's environment (the C behaviour) instead of a clean one.
    pub keep_env: bool,
    /// Capture standard output and error instead of discarding them.
    pub capture_output: bool,
    /// Checksum to compute ([`Hash::None`] for none).
    pub hash: Hash,
}

/// Why a configured program cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// The path is relative.
    #[error("{0}: the program must be given by an absolute path")]
    NotAbsolute(PathBuf),
    /// The path cannot be examined.
    #[error("the program {0}: {1}")]
    Unusable(PathBuf, io::Error),
    /// Not a regular file (after following symlinks).
    #[error("{0}: not a regular file")]
    NotRegular(PathBuf),
    /// No execute permission for the identity that runs it.
    #[error("{path}: not executable by uid {uid} gid {gid}")]
    NotExecutable {
        /// The program.
        path: PathBuf,
        /// The uid it would run as.
        uid: u32,
        /// The gid it would run as.
        gid: u32,
    },
}

fn program_metadata(program: &Path) -> Result<std::fs::Metadata, ProgramError> {
    if !program.is_absolute() {
        return Err(ProgramError::NotAbsolute(program.to_owned()));
    }
    let meta =
        std::fs::metadata(program).map_err(|e| ProgramError::Unusable(program.to_owned(), e))?;
    if !meta.is_file() {
        return Err(ProgramError::NotRegular(program.to_owned()));
    }
    Ok(meta)
}

/// Checks that `program` is absolute, exists, is a regular file and can be
/// executed by `uid`/`gid` (with `gid` as the only group, as the program
/// will run).
pub fn check_program(program: &Path, uid: u32, gid: u32) -> Result<(), ProgramError> {
    use std::os::unix::fs::MetadataExt;
    let meta = program_metadata(program)?;
    let mode = meta.mode();
    let allowed = if uid == 0 {
        mode & 0o111 != 0
    } else if meta.uid() == uid {
        mode & 0o100 != 0
    } else if meta.gid() == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    };
    if !allowed {
        return Err(ProgramError::NotExecutable {
            path: program.to_owned(),
            uid,
            gid,
        });
    }
    Ok(())
}

/// [`check_program`] for the current identity, all its groups included
/// (`access(2)` with `X_OK`).
pub fn check_program_as_self(program: &Path) -> Result<(), ProgramError> {
    program_metadata(program)?;
    let c = cstring(program.as_os_str().as_bytes())
        .map_err(|e| ProgramError::Unusable(program.to_owned(), e))?;
    if nix::unistd::access(c.as_c_str(), AccessFlags::X_OK).is_err() {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        return Err(ProgramError::NotExecutable {
            path: program.to_owned(),
            uid,
            gid,
        });
    }
    Ok(())
}

/// What the file looked like when checked: the source of the `UPLOAD_*`
/// variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`st_mode & 07777`).
    pub perms: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// The owner's name, when known and not empty.
    pub user: Option<Vec<u8>>,
    /// The group's name, when known and not empty.
    pub group: Option<Vec<u8>>,
}

/// Why a file was not processed.
#[derive(Debug, thiserror::Error)]
pub enum Skip {
    /// `lstat()` failed.
    #[error("cannot stat the file: {0}")]
    Stat(io::Error),
    /// Not a regular file (the kind is given).
    #[error("not a regular file but a {0}")]
    NotRegular(&'static str),
    /// The name pointed to another file by the time it was opened.
    #[error("the file was replaced while being checked")]
    Replaced,
    /// A directory on the way to the file (or the file) is a symbolic
    /// link: the name does not lead to the uploaded file.
    #[error("a directory on the way to the file is a symbolic link")]
    SymlinkInPath,
    /// The daemon was asked to stop before the program started (while
    /// hashing): the record stays in the pipe for the next instance.
    #[error("interrupted by a stop request before the program started")]
    Interrupted,
}

/// How a run ended.
#[derive(Debug)]
pub enum Status {
    /// The program exited with this status.
    Exited(i32),
    /// The program was killed by this signal.
    Signaled(i32),
    /// The timeout expired; the process group was killed.
    TimedOut,
    /// The program could not be started.
    Unstartable(io::Error),
    /// The run was killed because it went over a resource limit.
    OverLimit(Limit),
    /// The run's unit ended without saying how the program ended (its
    /// unit was killed, or the program could not be run there).
    NoAnswer(String),
}

/// A resource limit of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `memory_max`.
    Memory,
    /// `tasks_max`.
    Tasks,
}

impl Limit {
    /// The limit's name in the audit (`SCRIPT_LIMIT`).
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Memory => "memory",
            Limit::Tasks => "tasks",
        }
    }
}

/// What a run in a unit of its own adds to its [`Report`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitUsage {
    /// The run's unit (`pure-uploadscript-run@...service`).
    pub unit: String,
    /// CPU time of the program and its descendants, in microseconds.
    pub cpu_usec: Option<u64>,
    /// Peak memory of the program, in bytes.
    pub peak_bytes: Option<u64>,
}

impl Status {
    /// True for an exit status of 0.
    pub fn success(&self) -> bool {
        matches!(self, Status::Exited(0))
    }
}

/// The account of one run.
#[derive(Debug)]
pub struct Report {
    /// The checked file.
    pub facts: FileFacts,
    /// Its SHA-256, when asked for and readable.
    pub sha256: Option<String>,
    /// Whether the program got `UPLOAD_FD`.
    pub fd_passed: bool,
    /// Things worth a warning that did not stop the run.
    pub notes: Vec<String>,
    /// How it ended.
    pub status: Status,
    /// From start to reaping.
    pub duration: Duration,
    /// End of the captured standard output (empty without capture).
    pub stdout_tail: Vec<u8>,
    /// End of the captured standard error (empty without capture).
    pub stderr_tail: Vec<u8>,
    /// Set when the program ran in a unit of its own.
    pub usage: Option<UnitUsage>,
}

/// Lets the daemon's main loop go on while a program runs: its descriptor
/// is polled too, and [`Watch::wake`] is called whenever the wait wakes up,
/// at the latest at [`Watch::deadline`].
pub trait Watch {
    /// A descriptor to poll for input (e.g. a signalfd).
    fn fd(&self) -> Option<BorrowedFd<'_>>;
    /// When `wake` must be called at the latest (e.g. the next watchdog ping).
    fn deadline(&self) -> Option<Instant>;
    /// Called on every wake-up.
    fn wake(&mut self);
    /// True once the daemon was asked to stop.
    fn stopping(&self) -> bool {
        false
    }
    /// True when another run is already waiting to start after this one
    /// (a runner may prepare for it meanwhile).
    fn more_to_come(&self) -> bool {
        false
    }
}

/// Something that runs the program on one uploaded file: [`Hook`] in the
/// daemon's own process, or a run in a unit of its own.
pub trait Runner {
    /// Checks `file` and runs the program on it for virtual user `vuser`,
    /// waiting for it while `watch` keeps the daemon's loop going.
    fn run(&self, vuser: &[u8], file: &[u8], watch: &mut dyn Watch) -> Result<Report, Skip>;
}

/// A [`Watch`] that watches nothing.
#[derive(Debug, Default)]
pub struct NoWatch;

impl Watch for NoWatch {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn wake(&mut self) {}
}

/// Runs the configured program; see the [module](self) docs.
#[derive(Debug)]
pub struct Hook {
    config: HookConfig,
    program: CString,
    base_env: Vec<CString>,
    devnull: OwnedFd,
    checker: Checker,
}

/// How long a looked-up user or group name is reused.
const NAME_TTL: Duration = Duration::from_secs(1);
/// Names remembered at most; older ones are dropped beyond this.
const NAME_CACHE_LEN: usize = 64;

/// User and group names by id, each kept for [`NAME_TTL`]: a burst of
/// uploads looks each name up once, not once per file.
#[derive(Debug, Default)]
struct NameCache {
    users: Vec<(u32, Instant, Option<Vec<u8>>)>,
    groups: Vec<(u32, Instant, Option<Vec<u8>>)>,
}

impl NameCache {
    fn user(&mut self, uid: u32) -> Option<Vec<u8>> {
        Self::get(&mut self.users, uid, user_name)
    }

    fn group(&mut self, gid: u32) -> Option<Vec<u8>> {
        Self::get(&mut self.groups, gid, group_name)
    }

    fn get(
        names: &mut Vec<(u32, Instant, Option<Vec<u8>>)>,
        id: u32,
        look_up: fn(u32) -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        let now = Instant::now();
        names.retain(|(_, at, _)| now.saturating_duration_since(*at) < NAME_TTL);
        if let Some((_, _, name)) = names.iter().find(|(i, _, _)| *i == id) {
            return name.clone();
        }
        let name = look_up(id);
        if names.len() >= NAME_CACHE_LEN {
            names.remove(0);
        }
        names.push((id, now, name.clone()));
        name
    }
}

pub(crate) fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in string"))
}

fn env_var(name: impl AsRef<[u8]>, value: &[u8]) -> CString {
    let name = name.as_ref();
    let mut v = Vec::with_capacity(name.len() + 1 + value.len());
    v.extend_from_slice(name);
    v.push(b'=');
    v.extend_from_slice(value);
    // Names and values never hold NUL: they come from C strings, numbers,
    // or records whose control bytes were rejected.
    CString::new(v).unwrap_or_default()
}

/// Moves `fd` above the numbers it is mapped to in the child (0 to 3), so
/// that an earlier mapping cannot overwrite it; higher numbers stay.
pub(crate) fn move_high(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > UPLOAD_FD {
        return Ok(fd);
    }
    osfd::dup_at_least(fd.as_fd(), 10)
}

pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let _ = osfd::set_nonblocking(r.as_fd());
    Ok((move_high(r)?, move_high(w)?))
}

fn file_kind(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symbolic link",
        libc::S_IFIFO => "FIFO",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        _ => "file of unknown type",
    }
}

/// Lower-case hex SHA-256 of what `fd` holds, read with `pread` so that
/// the descriptor's offset stays at 0 for the program. `tick` is called
/// after every 256 KiB, to keep a watchdog going on large files; when it
/// returns false, hashing stops and `Ok(None)` is returned.
pub fn sha256_fd(fd: BorrowedFd<'_>, tick: &mut dyn FnMut() -> bool) -> io::Result<Option<String>> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut offset: libc::off_t = 0;
    loop {
        let n = match nix::sys::uio::pread(fd, &mut buf, offset) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        offset += n as libc::off_t;
        if !tick() {
            return Ok(None);
        }
    }
    Ok(Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    ))
}

/// Why hashing stopped before the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashStop {
    /// The run's timeout expired.
    TimedOut,
    /// The daemon was asked to stop.
    Stopping,
}

/// Hashes `fd` as [`sha256_fd`] does, stopping at `deadline` or when
/// `watch` says the daemon is stopping. `Ok(Err(..))` tells why it stopped.
pub fn sha256_until(
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
    watch: &mut dyn Watch,
) -> io::Result<Result<String, HashStop>> {
    let mut stop = None;
    let sum = sha256_fd(fd, &mut || {
        watch.wake();
        if watch.stopping() {
            stop = Some(HashStop::Stopping);
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            stop = Some(HashStop::TimedOut);
        }
        stop.is_none()
    })?;
    Ok(match (sum, stop) {
        (Some(sum), _) => Ok(sum),
        (None, stop) => Err(stop.unwrap_or(HashStop::TimedOut)),
    })
}

/// `now + timeout`, or no deadline when there is no timeout or it does not
/// fit the clock.
pub fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// A file checked and opened for the program.
#[derive(Debug)]
pub struct Checked {
    /// What it looked like.
    pub facts: FileFacts,
    /// The file, open read-only (`None` when it could not be opened).
    pub fd: Option<OwnedFd>,
    /// Things worth a warning that did not stop the run.
    pub notes: Vec<String>,
}

/// Checks uploaded files: `lstat()` as a regular file, opened without any
/// symbolic link on the way (virtual hosts' `<vhost dir>/<IP>` links are
/// followed: the administrator made them), and the same inode.
#[derive(Debug)]
pub struct Checker {
    names: Mutex<NameCache>,
    vhost_dir: Vec<u8>,
}

impl Default for Checker {
    fn default() -> Self {
        Checker::new(Path::new(crate::upload::pipe::DEFAULT_VHOST_DIR))
    }
}

impl Checker {
    /// A checker trusting the links `<vhost_dir>/<IP>` of virtual hosts.
    pub fn new(vhost_dir: &Path) -> Self {
        let mut dir = vhost_dir.as_os_str().as_bytes().to_vec();
        while dir.len() > 1 && dir.ends_with(b"/") {
            dir.pop();
        }
        Checker {
            names: Mutex::default(),
            vhost_dir: dir,
        }
    }

    /// Checks `file` (relative names are relative to `/`) and opens it.
    pub fn check(&self, file: &[u8]) -> Result<Checked, Skip> {
        check_file(file, &self.names, &self.vhost_dir)
    }
}

/// Opens `full` without following any symbolic link, except the virtual
/// host's own directory link `<vhost_dir>/<IP>`.
fn open_checked(full: &[u8], vhost_dir: &[u8]) -> Result<OwnedFd, ResolveError> {
    let vhost = full
        .strip_prefix(vhost_dir)
        .and_then(|rest| rest.strip_prefix(b"/"))
        .and_then(|rest| {
            let slash = rest.iter().position(|&b| b == b'/')?;
            Some(full.len() - rest.len() + slash)
        });
    match vhost {
        Some(split) => {
            let base = std::ffi::OsStr::from_bytes(&full[..split]);
            let dir: OwnedFd = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(base)?
                .into();
            let rest = std::ffi::OsStr::from_bytes(full[split..].trim_ascii_start_matches_slash());
            resolve::open_no_symlinks(Some(&dir), Path::new(rest))
        }
        None => resolve::open_no_symlinks(None, Path::new(std::ffi::OsStr::from_bytes(full))),
    }
}

trait TrimSlash {
    fn trim_ascii_start_matches_slash(&self) -> &[u8];
}

impl TrimSlash for [u8] {
    fn trim_ascii_start_matches_slash(&self) -> &[u8] {
        let n = self.iter().take_while(|&&b| b == b'/').count();
        &self[n..]
    }
}

/// `lstat()`s `file` (relative names are relative to `/`), and opens it.
fn check_file(file: &[u8], names: &Mutex<NameCache>, vhost_dir: &[u8]) -> Result<Checked, Skip> {
    let mut full = Vec::with_capacity(file.len() + 1);
    if file.first() != Some(&b'/') {
        full.push(b'/');
    }
    full.extend_from_slice(file);
    let cpath = cstring(&full).map_err(Skip::Stat)?;
    let st = nix::sys::stat::lstat(cpath.as_c_str()).map_err(|e| Skip::Stat(e.into()))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Skip::NotRegular(file_kind(st.st_mode)));
    }
    let mut notes = Vec::new();
    let fd = match open_checked(&full, vhost_dir) {
        Err(ResolveError::Symlink) => return Err(Skip::SymlinkInPath),
        Err(ResolveError::Io(e)) => {
            notes.push(format!("cannot open the file for UPLOAD_FD: {e}"));
            None
        }
        Ok(fd) => {
            let same = nix::sys::stat::fstat(fd.as_raw_fd())
                .is_ok_and(|now| now.st_dev == st.st_dev && now.st_ino == st.st_ino);
            if !same {
                return Err(Skip::Replaced);
            }
            // Blocking again for the program. Of the flags F_SETFL changes,
            // only O_NONBLOCK was set at open, so no F_GETFL is needed.
            let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::empty()));
            match move_high(fd) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    notes.push(format!("cannot pass the file as UPLOAD_FD: {e}"));
                    None
                }
            }
        }
    };
    let (user, group) = {
        let mut names = names.lock().unwrap_or_else(|e| e.into_inner());
        (names.user(st.st_uid), names.group(st.st_gid))
    };
    let facts = FileFacts {
        size: st.st_size as u64,
        perms: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        user,
        group,
    };
    Ok(Checked { facts, fd, notes })
}

/// Keeps the end of a stream.
#[derive(Default)]
pub(crate) struct Tail(Vec<u8>);

impl Tail {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
        if self.0.len() > 2 * TAIL_LEN {
            self.0.drain(..self.0.len() - TAIL_LEN);
        }
    }
    pub(crate) fn into_inner(mut self) -> Vec<u8> {
        if self.0.len() > TAIL_LEN {
            self.0.drain(..self.0.len() - TAIL_LEN);
        }
        self.0
    }
}

/// Reads what `fd` has now into `tail`; false at end of file.
pub(crate) fn pump(fd: BorrowedFd<'_>, tail: &mut Tail) -> bool {
    let mut buf = [0u8; 8192];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => return false,
            Ok(n) => tail.push(&buf[..n]),
            Err(e) => return e == Errno::EINTR || e == Errno::EAGAIN,
        }
    }
}

/// Marks every descriptor above 2 close-on-exec, so that none inherited by
/// the daemon reaches the programs. Call it once at start-up.
pub fn close_inherited_on_exec() -> io::Result<()> {
    if osfd::close_range_on_exec(3).is_ok() {
        return Ok(());
    }
    // Kernels before 5.11: walk /proc/self/fd.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // A descriptor number, open or not: a closed one fails F_GETFD.
        if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFD) {
            let flags = FdFlag::from_bits_retain(flags) | FdFlag::FD_CLOEXEC;
            let _ = fcntl(fd, FcntlArg::F_SETFD(flags));
        }
    }
    Ok(())
}

pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Hook {
    /// Prepares to run `config.program` (not checked here; see
    /// [`check_program`]). The environment is taken from the daemon's now.
    pub fn new(config: HookConfig) -> io::Result<Self> {
        let program = cstring(config.program.as_os_str().as_bytes())?;
        let mut base_env = Vec::new();
        if config.keep_env {
            for (k, v) in std::env::vars_os() {
                let k = k.as_bytes();
                let private = PRIVATE_VARS.iter().any(|p| p.as_bytes() == k);
                if private
                    || k.starts_with(b"UPLOAD_")
                    || k.contains(&0)
                    || v.as_bytes().contains(&0)
                {
                    continue;
                }
                base_env.push(env_var(k, v.as_bytes()));
            }
        } else {
            base_env.push(env_var("PATH", CLEAN_PATH.as_bytes()));
            if let Some(lang) = std::env::var_os("LANG") {
                if !lang.as_bytes().contains(&0) {
                    base_env.push(env_var("LANG", lang.as_bytes()));
                }
            }
        }
        let devnull = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        Ok(Hook {
            config,
            program,
            base_env,
            devnull: move_high(devnull.into())?,
            checker: Checker::default(),
        })
    }

    /// Maps virtual hosts' names under `vhost_dir` (whose `<IP>` entries
    /// may be symbolic links) instead of the default directory.
    pub fn with_vhost_dir(mut self, vhost_dir: &Path) -> Self {
        self.checker = Checker::new(vhost_dir);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &HookConfig {
        &self.config
    }

    /// `/dev/null`, open for reading and writing: the program's standard
    /// input (and output when not captured).
    pub fn devnull(&self) -> BorrowedFd<'_> {
        self.devnull.as_fd()
    }

    /// The environment given to the program for `facts` and virtual user
    /// `vuser`.
    pub fn environment(&self, facts: &FileFacts, vuser: &[u8], fd_passed: bool) -> Vec<CString> {
        let mut env = self.base_env.clone();
        env.push(env_var("UPLOAD_SIZE", facts.size.to_string().as_bytes()));
        env.push(env_var(
            "UPLOAD_PERMS",
            format!("{:o}", facts.perms).as_bytes(),
        ));
        env.push(env_var("UPLOAD_UID", facts.uid.to_string().as_bytes()));
        env.push(env_var("UPLOAD_GID", facts.gid.to_string().as_bytes()));
        if let Some(user) = &facts.user {
            env.push(env_var("UPLOAD_USER", user));
        }
        if let Some(group) = &facts.group {
            env.push(env_var("UPLOAD_GROUP", group));
        }
        if !vuser.is_empty() {
            env.push(env_var("UPLOAD_VUSER", vuser));
        }
        if fd_passed {
            env.push(env_var("UPLOAD_FD", UPLOAD_FD.to_string().as_bytes()));
        }
        env
    }

    /// Checks `file` and, if it is a regular file, runs the program on it
    /// for virtual user `vuser`, waiting for it while `watch` keeps the
    /// daemon's loop going. Hashing counts against the timeout, and a stop
    /// request during it gives [`Skip::Interrupted`].
    pub fn run(&self, vuser: &[u8], file: &[u8], watch: &mut dyn Watch) -> Result<Report, Skip> {
        let Checked {
            facts,
            fd,
            mut notes,
        } = self.checker.check(file)?;
        let start = Instant::now();
        let deadline = deadline_after(self.config.timeout);
        let mut sha256 = None;
        let mut hash_timed_out = false;
        if self.config.hash == Hash::Sha256 {
            match &fd {
                Some(fd) => match sha256_until(fd.as_fd(), deadline, watch) {
                    Ok(Ok(sum)) => sha256 = Some(sum),
                    Ok(Err(HashStop::Stopping)) => return Err(Skip::Interrupted),
                    Ok(Err(HashStop::TimedOut)) => hash_timed_out = true,
                    Err(e) => notes.push(format!("cannot hash the file: {e}")),
                },
                None => notes.push("cannot hash the file: it could not be opened".into()),
            }
        }
        let env = self.environment(&facts, vuser, fd.is_some());
        let mut report = Report {
            facts,
            sha256,
            fd_passed: fd.is_some(),
            notes,
            status: Status::TimedOut,
            duration: Duration::ZERO,
            stdout_tail: Vec::new(),
            stderr_tail: Vec::new(),
            usage: None,
        };
        if hash_timed_out {
            report
                .notes
                .push("the timeout expired while hashing the file".into());
            report.duration = start.elapsed();
            return Ok(report);
        }
        let arg = match cstring(file) {
            Ok(arg) => arg,
            Err(e) => {
                report.status = Status::Unstartable(e);
                return Ok(report);
            }
        };
        let (status, out, err) =
            self.spawn_and_wait(&arg, &env, fd.as_ref().map(|f| f.as_fd()), deadline, watch);
        report.duration = start.elapsed();
        report.status = status;
        report.stdout_tail = out;
        report.stderr_tail = err;
        Ok(report)
    }

    fn spawn(
        &self,
        arg: &CStr,
        env: &[CString],
        file: Option<BorrowedFd<'_>>,
        out: BorrowedFd<'_>,
        err: BorrowedFd<'_>,
    ) -> io::Result<libc::pid_t> {
        spawn::vfork_spawn(
            &self.program,
            &[self.program.as_c_str(), arg],
            env,
            [self.devnull.as_fd(), out, err],
            file,
        )
    }

    fn spawn_and_wait(
        &self,
        arg: &CStr,
        env: &[CString],
        file: Option<BorrowedFd<'_>>,
        deadline: Option<Instant>,
        watch: &mut dyn Watch,
    ) -> (Status, Vec<u8>, Vec<u8>) {
        let mut pipes = None;
        if self.config.capture_output {
            match (pipe(), pipe()) {
                (Ok(o), Ok(e)) => pipes = Some((o, e)),
                (Err(e), _) | (_, Err(e)) => {
                    return (Status::Unstartable(e), Vec::new(), Vec::new())
                }
            }
        }
        let (out_w, err_w) = match &pipes {
            Some(((_, ow), (_, ew))) => (ow.as_fd(), ew.as_fd()),
            None => (self.devnull.as_fd(), self.devnull.as_fd()),
        };
        let spawned = self.spawn(arg, env, file, out_w, err_w);
        let (mut out_r, mut err_r) = match pipes {
            // Keep only the read ends: the program holds the write ends.
            Some(((or, _), (er, _))) => (Some(or), Some(er)),
            None => (None, None),
        };
        let pid = match spawned {
            Ok(pid) => pid,
            Err(e) => return (Status::Unstartable(e), Vec::new(), Vec::new()),
        };
        let (mut out, mut err) = (Tail::default(), Tail::default());
        if out_r.is_none()
            && deadline.is_none()
            && watch.fd().is_none()
            && watch.deadline().is_none()
        {
            // Nothing to read, no time limit, nothing to wake for: the
            // program is waited for alone, without a pidfd or a poll.
            return (
                ending(process::wait_for(pid), false),
                Vec::new(),
                Vec::new(),
            );
        }
        let pidfd = process::pidfd_open(pid).ok();
        let mut killed = false;
        // With a pidfd, poll tells when the program has ended: the first
        // poll comes before any wait.
        let mut polled_first = pidfd.is_some();
        let wait_status = loop {
            if !std::mem::take(&mut polled_first) {
                match process::wait_nohang(pid) {
                    Ok(Some(status)) => break Ok(status),
                    Err(e) if e.kind() != io::ErrorKind::Interrupted => break Err(e),
                    _ => {}
                }
            }
            let now = Instant::now();
            if !killed && deadline.is_some_and(|d| now >= d) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                killed = true;
                continue;
            }
            let mut wake_at = earliest(if killed { None } else { deadline }, watch.deadline());
            if pidfd.is_none() {
                wake_at = earliest(wake_at, Some(now + Duration::from_millis(20)));
            }
            let timeout = wake_at.map(|t| t.saturating_duration_since(now));
            let polled = [
                pidfd.as_ref().map(|f| f.as_fd()),
                out_r.as_ref().map(|f| f.as_fd()),
                err_r.as_ref().map(|f| f.as_fd()),
                watch.fd(),
            ];
            let ready = wait_readable(polled, timeout).unwrap_or_else(|_| {
                std::thread::sleep(Duration::from_millis(20));
                [false; 4]
            });
            if ready[1] && !pump(out_r.as_ref().unwrap().as_fd(), &mut out) {
                out_r = None;
            }
            if ready[2] && !pump(err_r.as_ref().unwrap().as_fd(), &mut err) {
                err_r = None;
            }
            watch.wake();
        };
        // What is left in the pipes now (without waiting for descendants
        // that may still hold them).
        if let Some(fd) = &out_r {
            pump(fd.as_fd(), &mut out);
        }
        if let Some(fd) = &err_r {
            pump(fd.as_fd(), &mut err);
        }
        (
            ending(wait_status, killed),
            out.into_inner(),
            err.into_inner(),
        )
    }
}

/// How a run ended, from its wait status (or why it could not be waited
/// for); `killed` at its timeout.
fn ending(waited: io::Result<libc::c_int>, killed: bool) -> Status {
    match waited {
        _ if killed => Status::TimedOut,
        Ok(s) if libc::WIFEXITED(s) => Status::Exited(libc::WEXITSTATUS(s)),
        Ok(s) if libc::WIFSIGNALED(s) => Status::Signaled(libc::WTERMSIG(s)),
        Ok(s) => Status::Unstartable(io::Error::other(format!("unexpected wait status {s}"))),
        Err(e) => Status::Unstartable(e),
    }
}

impl Runner for Hook {
    fn run(&self, vuser: &[u8], file: &[u8], watch: &mut dyn Watch) -> Result<Report, Skip> {
        Hook::run(self, vuser, file, watch)
    }
}

#[cfg(test)]
mod tests;
