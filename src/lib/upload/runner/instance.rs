//! One instance of `pure-uploadscript-run@.service`: one connection from
//! the reader, one run of the program.
//!
//! The program, uid/gid, timeout, hash, environment and limits come from
//! this instance's own reading of the configuration files, never from the
//! socket. The program runs in the sub-cgroup `program` of the unit's
//! (delegated) cgroup, the instance itself in `supervisor`: the limits
//! (`memory.max`, `pids.max`, `cpu.max`) are written there when the kernel
//! offers those controllers to the unit; where it does not (a cgroup v1 or
//! hybrid hierarchy), memory and task counts are sampled every
//! [`SAMPLE_EVERY`] and the run is killed when over its limit. The
//! program's output lines go to the journal with the upload's fields.
//!
//! All that does not depend on the request (the peer check, the settings,
//! the program's check, the cgroups) is done before the request is read: a
//! unit the reader started ahead, while a backlog is worked through (see
//! [`client`](super::client)), is ready when its run comes. A connection
//! that ends before any request ([`Waited::Closed`]), or brings none within
//! [`REQUEST_WAIT`], was a spare not needed: the instance removes its
//! cgroup and exits successfully. The run's timeout counts from the request.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::os::cgroup::{self, Cgroup};
use crate::os::fd::wait_readable;
use crate::os::process::{self, ChildUsage};
use crate::os::{passfd, systemd};
use crate::upload::debian;
use crate::upload::hash::Hash;
use crate::upload::limits::{Profile, DEFAULT_TASKS_MAX};
use crate::upload::program::{
    self, check_program, sha256_until, HashStop, Hook, HookConfig, Limit, NoWatch, Tail,
    DEFAULT_TIMEOUT,
};
use crate::upload::runner::wire::{Answer, Ending, Request, MAX_MESSAGE};
use crate::upload::settings::{Id, UploadscriptConfig};

/// How often memory and tasks are sampled where the kernel does not keep
/// the limits.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(25);

/// Why an instance could not serve its connection.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// No connection was passed by systemd.
    #[error("no connection passed by systemd (LISTEN_FDS): run from pure-uploadscript-run.socket")]
    NoConnection,
    /// The peer is not root.
    #[error("refusing a connection from uid {0}: only root may ask for runs")]
    NotRoot(u32),
    /// The request could not be read.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The answer could not be sent (the reader is gone).
    #[error("cannot answer the reader: {0}")]
    Answer(io::Error),
}

/// What the instance runs, from its own configuration.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The program.
    pub program: PathBuf,
    /// The uid and gid it runs as.
    pub identity: (u32, u32),
    /// Limit on the run (hashing included).
    pub timeout: Option<Duration>,
    /// Checksum to compute.
    pub hash: Hash,
    /// Pass this instance's environment.
    pub keep_env: bool,
    /// Send the output's end back for the audit.
    pub capture_output: bool,
    /// `memory_max` in bytes.
    pub memory_max: Option<u64>,
    /// `cpu_quota` in percent of one CPU.
    pub cpu_quota: Option<u32>,
    /// `tasks_max`.
    pub tasks_max: Option<u64>,
    /// The sandbox profile the configuration asks for.
    pub profile: Profile,
}

fn lookup_user(id: &Id) -> Result<(u32, Option<u32>), String> {
    match id {
        Id::Number(n) => Ok((*n, None)),
        Id::Name(name) => match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => Ok((u.uid.as_raw(), Some(u.gid.as_raw()))),
            Ok(None) => Err(format!("unknown user: {name}")),
            Err(e) => Err(format!("cannot look up user {name}: {e}")),
        },
    }
}

fn lookup_group(id: &Id) -> Result<u32, String> {
    match id {
        Id::Number(n) => Ok(*n),
        Id::Name(name) => match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Ok(g.gid.as_raw()),
            Ok(None) => Err(format!("unknown group: {name}")),
            Err(e) => Err(format!("cannot look up group {name}: {e}")),
        },
    }
}

impl RunSettings {
    /// Resolves the configuration as the reader does; the identity is the
    /// C tool's (root: uid 0, gid 0 unless `uid`/`gid` say otherwise).
    pub fn from_config(file: UploadscriptConfig) -> Result<RunSettings, String> {
        let program = file
            .run
            .ok_or("no program to run: set run in /etc/pure-uploadscript.toml")?;
        if !program.is_absolute() {
            return Err(format!(
                "{}: the program must be given by an absolute path",
                program.display()
            ));
        }
        let (uid, user_gid) = match &file.uid {
            Some(id) => lookup_user(id)?,
            None => (0, None),
        };
        let gid = match &file.gid {
            Some(id) => lookup_group(id)?,
            None => user_gid.unwrap_or(0),
        };
        Ok(RunSettings {
            program,
            identity: (uid, gid),
            timeout: match file.timeout {
                Some(t) => t.0,
                None => Some(DEFAULT_TIMEOUT),
            },
            hash: file.hash.unwrap_or_default(),
            keep_env: file.keep_env.unwrap_or(false),
            capture_output: file.capture_output.unwrap_or(false),
            memory_max: file.memory_max.and_then(|m| m.0 .0),
            cpu_quota: file.cpu_quota.and_then(|c| c.0),
            tasks_max: match file.tasks_max {
                Some(t) => t.0 .0,
                None => Some(DEFAULT_TASKS_MAX),
            },
            profile: file.profile.unwrap_or_default(),
        })
    }
}

/// This unit's name, from `proc_cgroup`, the text of `/proc/self/cgroup`
/// (`…/pure-uploadscript-run@3-1-0.service`).
fn unit_name(proc_cgroup: &str) -> String {
    proc_cgroup
        .lines()
        .filter_map(|l| l.rsplit(':').next())
        .flat_map(|p| p.rsplit('/'))
        .find(|c| c.ends_with(".service"))
        .map(str::to_owned)
        .unwrap_or_default()
}

/// How long an instance waits for its request: a spare connection the
/// reader made ahead is used within seconds or closed.
pub const REQUEST_WAIT: Duration = Duration::from_secs(60);

/// What came on the connection before any run.
#[derive(Debug)]
pub enum Waited {
    /// The request, with the file's descriptor when attached.
    Request(Request, Option<OwnedFd>),
    /// The reader closed the connection without a request: a spare it did
    /// not need.
    Closed,
    /// No request within the bound.
    TimedOut,
}

/// Waits at most `within` for the request on `conn`.
pub fn await_request(conn: BorrowedFd<'_>, within: Duration) -> Result<Waited, InstanceError> {
    let until = Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let [ready] = wait_readable([Some(conn)], Some(left))
            .map_err(|e| InstanceError::BadRequest(e.to_string()))?;
        if ready {
            break;
        }
        if left.is_zero() {
            return Ok(Waited::TimedOut);
        }
    }
    let got =
        passfd::receive(conn, MAX_MESSAGE).map_err(|e| InstanceError::BadRequest(e.to_string()))?;
    if got.bytes.is_empty() && got.fd.is_none() && !got.truncated {
        return Ok(Waited::Closed);
    }
    if got.truncated {
        return Err(InstanceError::BadRequest(
            "message or descriptors cut short".into(),
        ));
    }
    let request =
        Request::decode(&got.bytes).map_err(|e| InstanceError::BadRequest(e.to_string()))?;
    if request.fd_attached != got.fd.is_some() {
        return Err(InstanceError::BadRequest(
            "descriptor announced but not attached, or the other way round".into(),
        ));
    }
    Ok(Waited::Request(request, got.fd))
}

/// What a run needs that does not depend on its request, made before the
/// request comes.
struct Prepared {
    settings: RunSettings,
    hook: io::Result<Hook>,
    place: Place,
    /// Warnings from making the place.
    notes: Vec<String>,
}

/// Reads the settings for `profile`, checks the program and makes the
/// run's cgroups under this unit's (named in `proc_cgroup`, the text of
/// `/proc/self/cgroup`); `Err` with the reason the program cannot run.
fn prepare(profile: Profile, proc_cgroup: &str) -> Result<Prepared, String> {
    let settings = UploadscriptConfig::load(None)
        .map_err(|e| e.to_string())
        .map(|mut file| {
            file.fill_from_debian(Path::new(debian::DEFAULTS_FILE));
            file
        })
        .and_then(RunSettings::from_config)
        .and_then(|s| {
            if s.profile != profile {
                return Err(format!(
                    "this unit runs programs with profile {profile}, the configuration asks for {}",
                    s.profile
                ));
            }
            check_program(&s.program, s.identity.0, s.identity.1).map_err(|e| e.to_string())?;
            Ok(s)
        })?;
    let hook = Hook::new(HookConfig {
        program: settings.program.clone(),
        timeout: settings.timeout,
        keep_env: settings.keep_env,
        capture_output: settings.capture_output,
        hash: settings.hash,
    });
    let mut notes = Vec::new();
    let place = place(&settings, proc_cgroup, &mut notes);
    Ok(Prepared {
        settings,
        hook,
        place,
        notes,
    })
}

/// Serves the connection systemd passed: prepares the run as the
/// configuration says for `profile`, waits for the request, runs the
/// program, answers. A connection closed before any request (a spare the
/// reader did not need) ends the instance at once, successfully.
pub fn serve(profile: Profile) -> Result<(), InstanceError> {
    let conn = systemd::take_listen_fds()
        .ok()
        .and_then(|fds| fds.into_iter().next())
        .ok_or(InstanceError::NoConnection)?
        .fd;
    program::close_inherited_on_exec().ok();
    let uid = passfd::peer_uid(conn.as_fd())
        .map_err(|e| InstanceError::BadRequest(format!("no peer credentials: {e}")))?;
    if uid != 0 {
        return Err(InstanceError::NotRoot(uid));
    }
    let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let unit = unit_name(&proc_cgroup);
    // Ready before the request: the unit may have been started ahead.
    let prepared = prepare(profile, &proc_cgroup);
    let (request, file) = match await_request(conn.as_fd(), REQUEST_WAIT)? {
        Waited::Request(request, file) => (request, file),
        Waited::Closed => {
            tracing::debug!(
                SCRIPT_UNIT = unit.as_str(),
                "not needed: the reader closed the connection"
            );
            return Ok(());
        }
        Waited::TimedOut => {
            tracing::debug!(SCRIPT_UNIT = unit.as_str(), "not needed: no request came");
            return Ok(());
        }
    };
    let start = Instant::now();
    let answer = match prepared {
        Ok(prepared) => run(prepared, profile, &request, file, &conn, &unit, start),
        Err(why) => {
            tracing::error!(SCRIPT_UNIT = unit.as_str(), "cannot run the program: {why}");
            Answer {
                ending: Ending::Unstartable(why),
                duration: start.elapsed(),
                sha256: None,
                notes: Vec::new(),
                stdout_tail: Vec::new(),
                stderr_tail: Vec::new(),
                unit,
                cpu_usec: None,
                peak_bytes: None,
            }
        }
    };
    passfd::send(conn.as_fd(), &answer.encode(), None).map_err(InstanceError::Answer)
}

/// The program's output, logged a line at a time.
struct Lines<'a> {
    partial: Vec<u8>,
    tail: Tail,
    stream: &'static str,
    request: &'a Request,
    unit: &'a str,
}

impl Lines<'_> {
    fn push(&mut self, bytes: &[u8]) {
        self.tail.push(bytes);
        self.partial.extend_from_slice(bytes);
        while let Some(n) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=n).collect();
            self.log(&line[..n]);
        }
        if self.partial.len() >= program::TAIL_LEN {
            let line = std::mem::take(&mut self.partial);
            self.log(&line);
        }
    }
    fn finish(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.log(&line);
        }
    }
    fn log(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let file = String::from_utf8_lossy(&self.request.file);
        let vuser = String::from_utf8_lossy(&self.request.vuser);
        if self.stream == "stderr" {
            tracing::warn!(
                UPLOAD_FILE = file.as_ref(),
                UPLOAD_VUSER = vuser.as_ref(),
                SCRIPT_UNIT = self.unit,
                SCRIPT_STREAM = self.stream,
                "{text}"
            );
        } else {
            tracing::info!(
                UPLOAD_FILE = file.as_ref(),
                UPLOAD_VUSER = vuser.as_ref(),
                SCRIPT_UNIT = self.unit,
                SCRIPT_STREAM = self.stream,
                "{text}"
            );
        }
    }
}

/// Reads what `fd` has now; false at end of file.
fn drain(fd: BorrowedFd<'_>, lines: &mut Lines<'_>) -> bool {
    let mut buf = [0u8; 8192];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => return false,
            Ok(n) => lines.push(&buf[..n]),
            Err(nix::Error::EINTR) => continue,
            Err(_) => return true,
        }
    }
}

/// Where the run's processes are, and how its limits are kept; its
/// cgroup `program` is removed when it is dropped.
struct Place {
    program: Option<Cgroup>,
    /// The memory controller is on for `program` (`memory.*` files).
    memory_files: bool,
    kernel_memory: bool,
    kernel_tasks: bool,
    /// `cpu_quota` in percent, when it could not be applied.
    cpu_unapplied: Option<u32>,
}

impl Place {
    /// No cgroup of the run's own: the run is where the instance is.
    fn unconfined() -> Place {
        Place {
            program: None,
            memory_files: false,
            kernel_memory: false,
            kernel_tasks: false,
            cpu_unapplied: None,
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(group) = &self.program {
            let _ = group.remove();
        }
    }
}

/// Makes the run's cgroup `program` under this unit's (named in
/// `proc_cgroup`) with the limits of `settings`, noting what could not be.
fn place(settings: &RunSettings, proc_cgroup: &str, notes: &mut Vec<String>) -> Place {
    let Some(own) = Cgroup::of(proc_cgroup) else {
        return Place::unconfined();
    };
    let mut wanted = Vec::new();
    if settings.memory_max.is_some() {
        wanted.push("memory");
    }
    if settings.tasks_max.is_some() {
        wanted.push("pids");
    }
    if settings.cpu_quota.is_some() {
        wanted.push("cpu");
    }
    if !wanted.is_empty() {
        let available = own.controllers();
        wanted.retain(|c| available.iter().any(|a| a == c));
    }
    // Controllers can be enabled for children only once the unit's own
    // cgroup holds no process: then the instance moves to "supervisor".
    // Without any (cgroup v1 or hybrid), it stays: a migration costs.
    let made = if wanted.is_empty() {
        own.child("program")
    } else {
        own.child("supervisor")
            .and_then(|s| s.enter())
            .and_then(|()| own.child("program"))
    };
    let program = match made {
        Ok(p) => p,
        Err(e) => {
            notes.push(format!(
                "cannot make the run's cgroup under {}: {e}",
                own.path().display()
            ));
            return Place::unconfined();
        }
    };
    let enabled = own.enable(&wanted);
    let on = |c: &str| enabled.iter().any(|e| e == c);
    let mut kernel_memory = false;
    let mut kernel_tasks = false;
    let mut cpu_unapplied = None;
    if let (Some(max), true) = (settings.memory_max, on("memory")) {
        kernel_memory = program.write("memory.max", &max.to_string()).is_ok();
        let _ = program.write("memory.swap.max", "0");
    }
    if let (Some(max), true) = (settings.tasks_max, on("pids")) {
        kernel_tasks = program.write("pids.max", &max.to_string()).is_ok();
    }
    if let Some(percent) = settings.cpu_quota {
        let period = 100_000u64;
        let quota = period * percent as u64 / 100;
        if !(on("cpu")
            && program
                .write("cpu.max", &format!("{quota} {period}"))
                .is_ok())
        {
            cpu_unapplied = Some(percent);
        }
    }
    Place {
        program: Some(program),
        memory_files: on("memory"),
        kernel_memory,
        kernel_tasks,
        cpu_unapplied,
    }
}

fn run(
    prepared: Prepared,
    profile: Profile,
    request: &Request,
    file: Option<OwnedFd>,
    conn: &OwnedFd,
    unit: &str,
    start: Instant,
) -> Answer {
    let mut answer = Answer {
        ending: Ending::TimedOut,
        duration: Duration::ZERO,
        sha256: None,
        notes: Vec::new(),
        stdout_tail: Vec::new(),
        stderr_tail: Vec::new(),
        unit: unit.to_owned(),
        cpu_usec: None,
        peak_bytes: None,
    };
    let Prepared {
        settings,
        hook,
        place,
        notes,
    } = prepared;
    let settings = &settings;
    // The timeout counts from the request: hashing is part of the run.
    let deadline = settings.timeout.and_then(|t| start.checked_add(t));
    let file = file.and_then(|f| program::move_high(f).ok());
    if settings.hash == Hash::Sha256 {
        match &file {
            Some(fd) => match sha256_until(fd.as_fd(), deadline, &mut NoWatch) {
                Ok(Ok(sum)) => answer.sha256 = Some(sum),
                Ok(Err(HashStop::TimedOut | HashStop::Stopping)) => {
                    answer
                        .notes
                        .push("the timeout expired while hashing the file".into());
                    answer.duration = start.elapsed();
                    return answer;
                }
                Err(e) => answer.notes.push(format!("cannot hash the file: {e}")),
            },
            None => answer
                .notes
                .push("cannot hash the file: it could not be opened".into()),
        }
    }
    let hook = match hook {
        Ok(hook) => hook,
        Err(e) => {
            answer.ending = Ending::Unstartable(format!("cannot prepare the run: {e}"));
            return answer;
        }
    };
    let env = hook.environment(&request.facts, &request.vuser, file.is_some());
    answer.notes.extend(notes);
    if let Some(percent) = place.cpu_unapplied {
        tracing::info!("cpu_quota = \"{percent}%\" not applied: no cpu controller for this unit");
    }
    let outcome = spawn_and_wait(
        settings,
        profile,
        request,
        file.as_ref(),
        &env,
        hook.devnull(),
        &place,
        conn,
        unit,
        deadline,
    );
    answer.duration = start.elapsed();
    match outcome {
        Ok(done) => {
            answer.ending = done.ending;
            answer.cpu_usec = done.cpu_usec;
            answer.peak_bytes = done.peak_bytes;
            if settings.capture_output {
                answer.stdout_tail = done.stdout_tail;
                answer.stderr_tail = done.stderr_tail;
            }
        }
        Err(e) => answer.ending = Ending::Unstartable(e.to_string()),
    }
    drop(place);
    answer
}

struct Done {
    ending: Ending,
    cpu_usec: Option<u64>,
    peak_bytes: Option<u64>,
    stdout_tail: Vec<u8>,
    stderr_tail: Vec<u8>,
}

#[allow(clippy::too_many_arguments)]
fn spawn_and_wait(
    settings: &RunSettings,
    profile: Profile,
    request: &Request,
    file: Option<&OwnedFd>,
    env: &[CString],
    devnull: BorrowedFd<'_>,
    place: &Place,
    conn: &OwnedFd,
    unit: &str,
    deadline: Option<std::time::Instant>,
) -> io::Result<Done> {
    let program_c = program::cstring(settings.program.as_os_str().as_bytes())?;
    let argv = [program_c.clone(), program::cstring(&request.file)?];
    let (out_r, out_w) = program::pipe()?;
    let (err_r, err_w) = program::pipe()?;
    let cgroup_dir = match &place.program {
        Some(g) => g.dir_fd().ok(),
        None => None,
    };
    let identity = if nix::unistd::geteuid().is_root() {
        Some(settings.identity)
    } else {
        None
    };
    let spec = crate::os::spawn::Spec {
        program: &program_c,
        argv: &argv,
        env,
        stdio: [devnull, out_w.as_fd(), err_w.as_fd()],
        fd3: file.map(|f| f.as_fd()),
        cgroup_dir: cgroup_dir.as_ref().map(|f| f.as_fd()),
        identity,
        drop_capabilities: profile == Profile::Strict,
    };
    let pid = crate::os::spawn::spawn(&spec)?;
    drop((out_w, err_w));
    let pidfd = process::pidfd_open(pid).ok();
    let mut out = Lines {
        partial: Vec::new(),
        tail: Tail::default(),
        stream: "stdout",
        request,
        unit,
    };
    let mut err = Lines {
        stream: "stderr",
        partial: Vec::new(),
        tail: Tail::default(),
        request,
        unit,
    };
    let (mut out_open, mut err_open) = (true, true);
    let sample = place.program.is_some()
        && ((settings.memory_max.is_some() && !place.kernel_memory)
            || (settings.tasks_max.is_some() && !place.kernel_tasks));
    let mut sampled_peak = 0u64;
    let mut over: Option<Limit> = None;
    let mut timed_out = false;
    let mut reader_gone = false;
    let kill = |place: &Place| match &place.program {
        Some(g) => {
            g.kill_all(Duration::from_secs(5));
        }
        None => {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    };
    // Just started, it is one process of a few pages: sampled from then on
    // (a run that ends before has its peak from its rusage).
    let mut next_sample = Instant::now() + SAMPLE_EVERY;
    let (status, usage) = loop {
        match process::wait4_nohang(pid) {
            Ok(Some((status, usage))) => break (Ok(status), usage),
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                break (Err(e), ChildUsage::default())
            }
            _ => {}
        }
        let now = Instant::now();
        if sample && over.is_none() && now >= next_sample {
            next_sample = now + SAMPLE_EVERY;
            if let Some(g) = &place.program {
                let procs = g.procs();
                let rss: u64 = procs
                    .iter()
                    .filter_map(|&p| cgroup::resident_bytes(p))
                    .sum();
                sampled_peak = sampled_peak.max(rss);
                if settings.memory_max.is_some_and(|m| rss > m) && !place.kernel_memory {
                    over = Some(Limit::Memory);
                } else if settings.tasks_max.is_some_and(|t| procs.len() as u64 > t)
                    && !place.kernel_tasks
                {
                    over = Some(Limit::Tasks);
                }
                if over.is_some() {
                    kill(place);
                    continue;
                }
            }
        }
        if !timed_out && deadline.is_some_and(|d| now >= d) {
            timed_out = true;
            kill(place);
            continue;
        }
        let mut wake_at = if timed_out { None } else { deadline };
        if sample {
            wake_at = program::earliest(wake_at, Some(next_sample));
        }
        if pidfd.is_none() {
            wake_at = program::earliest(wake_at, Some(now + Duration::from_millis(20)));
        }
        let timeout = wake_at.map(|t| t.saturating_duration_since(now));
        // The reader's end readable: it hung up (it sends nothing more).
        let polled = [
            Some(conn.as_fd()),
            out_open.then(|| out_r.as_fd()),
            err_open.then(|| err_r.as_fd()),
            pidfd.as_ref().map(|p| p.as_fd()),
        ];
        let ready = wait_readable(polled, timeout).unwrap_or_else(|_| {
            std::thread::sleep(Duration::from_millis(20));
            [false; 4]
        });
        if ready[0] && !reader_gone {
            // The reader went away (killed): its next instance asks again.
            reader_gone = true;
            tracing::warn!(SCRIPT_UNIT = unit, "the reader went away; stopping the run");
            kill(place);
        }
        if ready[1] {
            out_open = drain(out_r.as_fd(), &mut out);
        }
        if ready[2] {
            err_open = drain(err_r.as_fd(), &mut err);
        }
    };
    // What is left in the pipes, without waiting for descendants that may
    // hold them; then nothing of the run outlives it.
    if out_open {
        drain(out_r.as_fd(), &mut out);
    }
    if err_open {
        drain(err_r.as_fd(), &mut err);
    }
    out.finish();
    err.finish();
    kill(place);
    let group = place.program.as_ref();
    let memory_files = group.filter(|_| place.memory_files);
    if over.is_none()
        && memory_files
            .and_then(|g| g.stat("memory.events", "oom_kill"))
            .unwrap_or(0)
            > 0
    {
        over = Some(Limit::Memory);
    }
    let cpu_usec = group
        .and_then(|g| g.stat("cpu.stat", "usage_usec"))
        .or(Some(usage.cpu_usec));
    let peak_bytes = memory_files
        .and_then(|g| g.number("memory.peak"))
        .or_else(|| Some(sampled_peak.max(usage.maxrss_kib * 1024)));
    let ending = match (over, status) {
        (Some(limit), _) => Ending::OverLimit(limit),
        _ if timed_out => Ending::TimedOut,
        (None, Ok(s)) if libc::WIFEXITED(s) => Ending::Exited(libc::WEXITSTATUS(s)),
        (None, Ok(s)) if libc::WIFSIGNALED(s) => Ending::Signaled(libc::WTERMSIG(s)),
        (None, Ok(s)) => Ending::Unstartable(format!("unexpected wait status {s}")),
        (None, Err(e)) => Ending::Unstartable(e.to_string()),
    };
    Ok(Done {
        ending,
        cpu_usec,
        peak_bytes,
        stdout_tail: out.tail.into_inner(),
        stderr_tail: err.tail.into_inner(),
    })
}

/// The run socket of `profile`.
pub fn socket_of(profile: Profile) -> &'static Path {
    Path::new(profile.socket())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::program::FileFacts;
    use std::io::{Read, Seek, Write};

    fn request(fd_attached: bool) -> Request {
        Request {
            vuser: b"alice".to_vec(),
            file: b"/srv/ftp/alice/x.pdf".to_vec(),
            facts: FileFacts {
                size: 7,
                perms: 0o644,
                uid: 1000,
                gid: 1000,
                user: None,
                group: None,
            },
            fd_attached,
        }
    }

    #[test]
    fn a_connection_closed_before_any_request_was_not_needed() {
        let (reader, conn) = passfd::seqpacket_pair().unwrap();
        drop(reader);
        let waited = await_request(conn.as_fd(), REQUEST_WAIT).unwrap();
        assert!(matches!(waited, Waited::Closed), "{waited:?}");
    }

    #[test]
    fn no_request_within_the_bound_is_not_needed_either() {
        let (_reader, conn) = passfd::seqpacket_pair().unwrap();
        let waited = await_request(conn.as_fd(), Duration::ZERO).unwrap();
        assert!(matches!(waited, Waited::TimedOut), "{waited:?}");
    }

    #[test]
    fn a_request_that_comes_later_is_served_with_its_file() {
        let (reader, conn) = passfd::seqpacket_pair().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"content").unwrap();
        file.rewind().unwrap();
        passfd::send(reader.as_fd(), &request(true).encode(), Some(file.as_fd())).unwrap();
        match await_request(conn.as_fd(), REQUEST_WAIT).unwrap() {
            Waited::Request(got, Some(fd)) => {
                assert_eq!(got, request(true));
                let mut text = String::new();
                std::fs::File::from(fd).read_to_string(&mut text).unwrap();
                assert_eq!(text, "content");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_request_is_still_an_error() {
        let (reader, conn) = passfd::seqpacket_pair().unwrap();
        passfd::send(reader.as_fd(), &request(true).encode(), None).unwrap();
        match await_request(conn.as_fd(), REQUEST_WAIT) {
            Err(InstanceError::BadRequest(why)) => assert!(why.contains("descriptor"), "{why}"),
            other => panic!("{other:?}"),
        }
        let (reader, conn) = passfd::seqpacket_pair().unwrap();
        passfd::send(reader.as_fd(), b"PURN\x01A", None).unwrap();
        assert!(matches!(
            await_request(conn.as_fd(), REQUEST_WAIT),
            Err(InstanceError::BadRequest(_))
        ));
    }
}
