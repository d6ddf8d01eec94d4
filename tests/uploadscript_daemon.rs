//! The `pure-uploadscript` daemon on a FIFO in a temporary directory, with
//! a recording shell script as the program: argv, environment, identity,
//! order, garbage, timeouts, signals, systemd notifications and the
//! descriptor store hand-over. Run as root (uid/gid switching is tested
//! with `nobody`/`nogroup`).

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pure-uploadscript");
const NOBODY: u32 = 65534;

fn require_root() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests switch uids and create files owned by others: run them as root"
    );
}

/// One run of the recording program.
#[derive(Debug, Default, Clone)]
struct Run {
    arg: Vec<u8>,
    argc: String,
    id: String,
    cwd: String,
    fd3: String,
    env: BTreeMap<String, String>,
}

impl Run {
    fn upload_vars(&self) -> BTreeMap<String, String> {
        self.env
            .iter()
            .filter(|(k, _)| k.starts_with("UPLOAD_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    pipe: PathBuf,
    log: PathBuf,
    program: PathBuf,
    notifications: Arc<Mutex<Vec<Notification>>>,
    seen: std::cell::Cell<usize>,
    notify_path: PathBuf,
}

/// The recording program: appends one block per run to `log`; names
/// containing "hang" sleep long, "slow" one second, "fail" exit 3.
fn recorder(log: &Path) -> String {
    format!(
        r#"#!/bin/sh
log='{log}'
{{
  printf 'BEGIN\n'
  printf 'ARG=%s\n' "$1"
  printf 'ARGC=%s\n' "$#"
  printf 'ID=%s %s %s\n' "$(id -u)" "$(id -g)" "$(id -G)"
  printf 'CWD=%s\n' "$(pwd)"
  printf 'FD3=%s\n' "$(head -c 64 <&3 2>/dev/null)"
  env | LC_ALL=C sort | sed 's/^/ENV /'
}} >> "$log"
case "$1" in
  *hang*) sleep 300 & printf '%s\n' "$!" > "$log.hang"; wait ;;
  *slow*) sleep 1 ;;
esac
printf 'END\n' >> "$log"
case "$1" in *fail*) exit 3 ;; esac
exit 0
"#,
        log = log.display()
    )
}

impl Fixture {
    fn new() -> Self {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        // Readable by nobody, for the uid tests.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, "").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
        let program = dir.path().join("record.sh");
        std::fs::write(&program, recorder(&log)).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        // Writable by the daemon once it runs as nobody.
        std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o777)).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // Read notifications as systemd does, so that senders never block.
        let notifications = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::downgrade(&notifications);
        std::thread::spawn(move || loop {
            let m = receive(&notify);
            match sink.upgrade() {
                Some(all) => all.lock().unwrap().extend(m),
                None => return,
            }
        });
        Fixture {
            pipe: dir.path().join("upload.pipe"),
            log,
            program,
            notifications,
            seen: std::cell::Cell::new(0),
            notify_path,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A file to announce, world-readable.
    fn file(&self, name: &str, content: &[u8]) -> Vec<u8> {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, content).unwrap();
        path.as_os_str().as_bytes().to_vec()
    }

    fn command(&self, extra: &[&str]) -> Command {
        self.command_of(Path::new(BIN), extra)
    }

    /// The daemon `binary` with this fixture's settings and `extra`.
    fn command_of(&self, binary: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(binary);
        cmd.arg("--config")
            .arg(self.path("none.toml"))
            .arg("-r")
            .arg(&self.program)
            .arg("--pipe")
            .arg(&self.pipe)
            .args(extra)
            .env_remove("INVOCATION_ID")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env("NOTIFY_SOCKET", &self.notify_path)
            .env("STATE_DIRECTORY", self.path("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path("stderr")).unwrap());
        if !self.path("none.toml").exists() {
            std::fs::write(self.path("none.toml"), "").unwrap();
        }
        cmd
    }

    fn start(&self, extra: &[&str]) -> Daemon {
        self.spawn(self.command(extra))
    }

    fn spawn(&self, mut cmd: Command) -> Daemon {
        let child = cmd.spawn().unwrap();
        let daemon = Daemon {
            child,
            stderr: self.path("stderr"),
        };
        self.wait_message(&daemon, |m| m.text.contains("READY=1"));
        daemon
    }

    /// Next notification not seen yet, if one arrives within 100 ms.
    fn message(&self) -> Option<Notification> {
        let deadline = Instant::now() + Duration::from_millis(100);
        loop {
            {
                let all = self.notifications.lock().unwrap();
                if let Some(m) = all.get(self.seen.get()) {
                    self.seen.set(self.seen.get() + 1);
                    return Some(Notification {
                        text: m.text.clone(),
                        fds: m.fds.iter().map(|f| f.try_clone().unwrap()).collect(),
                        at: m.at,
                    });
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn wait_message(&self, daemon: &Daemon, want: impl Fn(&Notification) -> bool) -> Notification {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(m) = self.message() {
                if want(&m) {
                    return m;
                }
            }
        }
        panic!("notification not received; stderr:\n{}", daemon.stderr());
    }

    fn write(&self, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.pipe)
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    fn runs(&self) -> (Vec<Run>, usize) {
        let text = std::fs::read(&self.log).unwrap();
        let mut runs = Vec::new();
        let mut ends = 0;
        let mut current: Option<Run> = None;
        for line in text.split(|&b| b == b'\n') {
            if line == b"BEGIN" {
                current = Some(Run::default());
            } else if line == b"END" {
                ends += 1;
            } else if let Some(run) = current.as_mut() {
                if let Some(arg) = line.strip_prefix(b"ARG=") {
                    run.arg = arg.to_vec();
                }
                let line = String::from_utf8_lossy(line).into_owned();
                if let Some(v) = line.strip_prefix("ARGC=") {
                    run.argc = v.into();
                } else if let Some(v) = line.strip_prefix("ID=") {
                    run.id = v.into();
                } else if let Some(v) = line.strip_prefix("CWD=") {
                    run.cwd = v.into();
                } else if let Some(v) = line.strip_prefix("FD3=") {
                    run.fd3 = v.into();
                    runs.push(run.clone());
                } else if let Some(v) = line.strip_prefix("ENV ") {
                    if let Some((k, v)) = v.split_once('=') {
                        runs.last_mut().unwrap().env.insert(k.into(), v.into());
                    }
                }
            }
        }
        (runs, ends)
    }

    /// Waits until `n` runs have ended.
    fn wait_runs(&self, daemon: &Daemon, n: usize) -> Vec<Run> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (runs, ends) = self.runs();
            if ends >= n {
                assert_eq!(ends, n, "more runs than expected");
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "only {ends} of {n} runs; stderr:\n{}",
                daemon.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One datagram from the notification socket, if one arrives within 100 ms.
fn receive(notify: &UnixDatagram) -> Option<Notification> {
    let mut buf = vec![0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let msg = match nix::sys::socket::recvmsg::<()>(
        notify.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    ) {
        Ok(msg) => msg,
        // Nothing yet, or a signal interrupted the wait: asked again.
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return None,
        Err(e) => panic!("recvmsg: {e}"),
    };
    let mut fds = Vec::new();
    for c in msg.cmsgs().unwrap() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: received descriptors are new and ours.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let n = msg.bytes;
    Some(Notification {
        text: String::from_utf8_lossy(&buf[..n]).into_owned(),
        fds,
        at: Instant::now(),
    })
}

struct Notification {
    text: String,
    fds: Vec<OwnedFd>,
    at: Instant,
}

struct Daemon {
    child: Child,
    stderr: PathBuf,
}

impl Daemon {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    fn stop(mut self) -> String {
        self.signal(libc::SIGTERM);
        let status = self.wait();
        assert_eq!(status.code(), Some(0), "stderr:\n{}", self.stderr());
        self.stderr()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn record(user: &[u8], file: &[u8]) -> Vec<u8> {
    let mut v = vec![2];
    v.extend_from_slice(user);
    v.push(1);
    v.extend_from_slice(file);
    v.push(0);
    v
}

#[test]
fn records_run_in_order_with_the_c_variables_and_a_clean_environment() {
    let fx = Fixture::new();
    let names = [
        "plain.txt",
        "with space.txt",
        "quote'single\".txt",
        "$(touch pwned).txt",
        "-rf",
        "ünïcödé €.txt",
        "sub dir/deeper/file.bin",
        "empty",
    ];
    let mut stream = Vec::new();
    let mut files = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let content = if *name == "empty" {
            String::new()
        } else {
            format!("content {i}")
        };
        let file = fx.file(name, content.as_bytes());
        stream.extend(record(format!("user{i}").as_bytes(), &file));
        // Garbage and broken records between the good ones.
        stream.extend_from_slice(b"\xff garbage \x00");
        stream.extend_from_slice(b"\x02bad\x05user\x01/x\x00");
        stream.extend_from_slice(b"\x02cut short");
        files.push((file, content));
    }
    std::fs::set_permissions(
        fx.path("plain.txt"),
        std::fs::Permissions::from_mode(0o4750),
    )
    .unwrap();
    // A symlink, a directory and a missing file are not processed.
    std::os::unix::fs::symlink(fx.path("plain.txt"), fx.path("link")).unwrap();
    for skipped in ["link", "sub dir", "missing"] {
        stream.extend(record(b"x", fx.path(skipped).as_os_str().as_bytes()));
    }
    let daemon = fx.start(&[]);
    fx.write(&stream);
    let runs = fx.wait_runs(&daemon, names.len());
    for (i, (run, (file, content))) in runs.iter().zip(&files).enumerate() {
        assert_eq!(run.arg, *file);
        assert_eq!(run.argc, "1");
        assert_eq!(run.cwd, "/");
        assert_eq!(run.fd3, *content);
        let meta = std::fs::metadata(Path::new(std::ffi::OsStr::from_bytes(file))).unwrap();
        let mut want = BTreeMap::new();
        want.insert("UPLOAD_SIZE".to_string(), meta.len().to_string());
        want.insert(
            "UPLOAD_PERMS".to_string(),
            format!("{:o}", meta.mode() & 0o7777),
        );
        want.insert("UPLOAD_UID".to_string(), "0".to_string());
        want.insert("UPLOAD_GID".to_string(), "0".to_string());
        want.insert("UPLOAD_USER".to_string(), "root".to_string());
        want.insert("UPLOAD_GROUP".to_string(), "root".to_string());
        want.insert("UPLOAD_VUSER".to_string(), format!("user{i}"));
        want.insert("UPLOAD_FD".to_string(), "3".to_string());
        assert_eq!(run.upload_vars(), want, "run {i}");
        // The clean environment: PATH, LANG if set, UPLOAD_*; the shell
        // adds PWD (and dash nothing else).
        let others: Vec<&String> = run
            .env
            .keys()
            .filter(|k| !k.starts_with("UPLOAD_") && !["PATH", "LANG", "PWD"].contains(&k.as_str()))
            .collect();
        assert!(others.is_empty(), "unexpected variables {others:?}");
        assert_eq!(run.env["PATH"], "/usr/sbin:/usr/bin:/sbin:/bin");
    }
    assert_eq!(runs[0].upload_vars()["UPLOAD_PERMS"], "4750");
    assert!(!Path::new("/pwned").exists() && !fx.path("pwned").exists());
    // The skipped files are settled after the last run: wait for their
    // entries, or a stop would leave them queued for the next start.
    let rejected = 2 * names.len() + 3;
    let deadline = Instant::now() + Duration::from_secs(30);
    while daemon
        .stderr()
        .matches("5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a61")
        .count()
        < rejected
    {
        assert!(Instant::now() < deadline, "{}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let stderr = daemon.stop();
    assert_eq!(
        stderr.matches("5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a60").count(),
        names.len()
    );
    // Per file: one control byte, one cut short; then the 3 skipped files.
    assert_eq!(
        stderr.matches("5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a61").count(),
        rejected,
        "{stderr}"
    );
    assert!(stderr.contains("control byte 0x05 in the user name"));
    assert!(stderr.contains("record cut short by the start of another"));
    assert!(stderr.contains("not a regular file but a symbolic link"));
    assert!(stderr.contains("not a regular file but a directory"));
    assert!(stderr.contains("skipped 11 bytes of garbage"));
}

#[test]
fn keep_env_passes_the_daemon_environment_like_c() {
    let fx = Fixture::new();
    let file = fx.file("f", b"x");
    let mut cmd = fx.command(&["--keep-env"]);
    cmd.env("SOME_SETTING", "kept value")
        .env("UPLOAD_USER", "stale");
    let daemon = fx.spawn(cmd);
    fx.write(&record(b"", &file));
    let runs = fx.wait_runs(&daemon, 1);
    let env = &runs[0].env;
    assert_eq!(env["SOME_SETTING"], "kept value");
    assert_eq!(env["UPLOAD_USER"], "root");
    assert!(!env.contains_key("NOTIFY_SOCKET"), "NOTIFY_SOCKET leaked");
    assert!(
        !env.contains_key("UPLOAD_VUSER"),
        "empty virtual user must be left out"
    );
    daemon.stop();
    // Without --keep-env, the variable does not reach the program.
    std::fs::write(&fx.log, "").unwrap();
    let mut cmd = fx.command(&[]);
    cmd.env("SOME_SETTING", "kept value");
    let daemon = fx.spawn(cmd);
    fx.write(&record(b"", &file));
    let runs = fx.wait_runs(&daemon, 1);
    assert!(!runs[0].env.contains_key("SOME_SETTING"));
    daemon.stop();
}

#[test]
fn uid_and_gid_are_switched() {
    let fx = Fixture::new();
    let file = fx.file("f", b"x");
    // By number, as the C tool takes them.
    let daemon = fx.start(&["-u", "65534", "-g", "65534"]);
    fx.write(&record(b"u", &file));
    let runs = fx.wait_runs(&daemon, 1);
    assert_eq!(runs[0].id, "65534 65534 65534");
    daemon.stop();
    // By name; the group defaults to the user's primary group.
    std::fs::write(&fx.log, "").unwrap();
    let daemon = fx.start(&["-u", "nobody"]);
    fx.write(&record(b"u", &file));
    let runs = fx.wait_runs(&daemon, 1);
    assert_eq!(runs[0].id, "65534 65534 65534");
    daemon.stop();
    // Root without -u/-g: uid 0, gid 0 and no other group, like C.
    std::fs::write(&fx.log, "").unwrap();
    let daemon = fx.start(&[]);
    fx.write(&record(b"u", &file));
    let runs = fx.wait_runs(&daemon, 1);
    assert_eq!(runs[0].id, "0 0 0");
    daemon.stop();
}

fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[test]
fn a_timeout_kills_the_group_and_processing_continues() {
    let fx = Fixture::new();
    let hang = fx.file("hang", b"x");
    let next = fx.file("next", b"y");
    let daemon = fx.start(&["--timeout", "1s"]);
    let mut stream = record(b"u", &hang);
    stream.extend(record(b"u", &next));
    fx.write(&stream);
    // The hanging run never writes END; wait for the next one.
    let deadline = Instant::now() + Duration::from_secs(30);
    let runs = loop {
        let (runs, ends) = fx.runs();
        if ends == 1 {
            break runs;
        }
        assert!(Instant::now() < deadline, "{}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].arg, next);
    // The hanging program's child (in its process group) is gone too.
    let hang_log = PathBuf::from(format!("{}.hang", fx.log.display()));
    let pid: i32 = std::fs::read_to_string(hang_log)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        is_gone(pid),
        "the program's child {pid} survived the timeout"
    );
    let stderr = daemon.stop();
    assert!(
        stderr.contains("5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a63"),
        "no timed-out event:\n{stderr}"
    );
    assert!(stderr.contains("timed out after 1.0 s; its process group was killed"));
    assert!(stderr.contains("failed 1 (timed out 1)"));
}

#[test]
fn sigterm_lets_the_running_program_finish_and_keeps_the_queue() {
    let fx = Fixture::new();
    let slow = fx.file("slow", b"x");
    let queued = fx.file("queued", b"y");
    let daemon = fx.start(&[]);
    // Keep a descriptor on the FIFO, as systemd's store would.
    let keeper = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fx.pipe)
        .unwrap();
    let mut stream = record(b"u", &slow);
    stream.extend(record(b"u", &queued));
    fx.write(&stream);
    let deadline = Instant::now() + Duration::from_secs(20);
    while fx.runs().0.is_empty() {
        assert!(Instant::now() < deadline, "{}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(10));
    }
    daemon.signal(libc::SIGTERM);
    let stopping = fx.wait_message(&daemon, |m| m.text.contains("STOPPING=1"));
    // The program had finished before STOPPING=1.
    assert_eq!(fx.runs().1, 1, "the running program was not waited for");
    let mut daemon = daemon;
    assert_eq!(daemon.wait().code(), Some(0));
    drop(stopping);
    assert_eq!(fx.runs().0.len(), 1, "the queued record was processed");
    // The queued record left the FIFO for the queue on disk.
    // SAFETY: fcntl on our descriptor.
    unsafe {
        let fl = libc::fcntl(keeper.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(keeper.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    let mut left = vec![0u8; 4096];
    let e = nix::unistd::read(keeper.as_raw_fd(), &mut left).unwrap_err();
    assert_eq!(e, nix::errno::Errno::EAGAIN);
    let list = Command::new(BIN)
        .args(["--config", fx.path("none.toml").to_str().unwrap()])
        .args(["--state-dir", fx.path("state").to_str().unwrap()])
        .args(["queue", "list", "--json"])
        .output()
        .unwrap();
    assert!(list.status.success(), "{list:?}");
    let list = String::from_utf8(list.stdout).unwrap();
    let rows: Vec<serde_json::Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["state"], "pending");
    assert_eq!(rows[0]["file"], String::from_utf8_lossy(&queued).as_ref());
    // The next instance runs it.
    let daemon = fx.start(&[]);
    let runs = fx.wait_runs(&daemon, 2);
    assert_eq!(runs[1].arg, queued);
    daemon.stop();
}

#[test]
fn systemd_notifications_watchdog_and_descriptor_store() {
    let fx = Fixture::new();
    let slow = fx.file("slow", b"x");
    let mut cmd = fx.command(&[]);
    cmd.env("WATCHDOG_USEC", "200000");
    let child = cmd.spawn().unwrap();
    let daemon = Daemon {
        child,
        stderr: fx.path("stderr"),
    };
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !messages
        .iter()
        .any(|m: &Notification| m.text.contains("READY=1"))
    {
        assert!(Instant::now() < deadline, "{}", daemon.stderr());
        messages.extend(fx.message());
    }
    let store = messages
        .iter()
        .find(|m| m.text.contains("FDSTORE=1"))
        .expect("no FDSTORE=1 before READY=1");
    assert!(store.text.contains("FDNAME=upload-pipe"), "{}", store.text);
    assert_eq!(store.fds.len(), 1);
    let stored = nix::sys::stat::fstat(store.fds[0].as_raw_fd()).unwrap();
    let fifo = std::fs::metadata(&fx.pipe).unwrap();
    assert_eq!((stored.st_dev, stored.st_ino), (fifo.dev(), fifo.ino()));
    let ready = messages
        .iter()
        .find(|m| m.text.contains("READY=1"))
        .unwrap();
    assert!(
        ready.text.contains("STATUS=waiting for uploads"),
        "{}",
        ready.text
    );
    // Pings while idle, then while a program runs for a second.
    let idle_until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < idle_until {
        messages.extend(fx.message());
    }
    fx.write(&record(b"u", &slow));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = fx.message();
        let done = m
            .as_ref()
            .is_some_and(|m| m.text.contains("; processed 1,"));
        messages.extend(m);
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "{}", daemon.stderr());
    }
    let pings: Vec<Instant> = messages
        .iter()
        .filter(|m| m.text == "WATCHDOG=1\n")
        .map(|m| m.at)
        .collect();
    assert!(pings.len() >= 10, "only {} pings", pings.len());
    let worst = pings.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    // One ping every 100 ms; had they paused while the program ran, the
    // gap would be a second.
    assert!(
        worst < Duration::from_millis(500),
        "a {worst:?} gap between pings"
    );
    let status = messages.last().unwrap();
    assert!(
        status.text.contains(&format!(
            "STATUS=queue 0, running 0, failed 0; \
             processed 1, rejected 0, failed 0 (timed out 0); last: {}",
            String::from_utf8_lossy(&slow)
        )),
        "{}",
        status.text
    );
    daemon.stop();
}

#[test]
fn a_restarted_daemon_takes_the_fifo_back_and_loses_nothing_queued() {
    let fx = Fixture::new();
    let c = CString::new(fx.pipe.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is NUL-terminated.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // The descriptor systemd keeps in its store.
    let keeper: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fx.pipe)
        .unwrap()
        .into();
    let first = fx.start(&[]);
    let names = ["slow-1", "r2", "r3", "r4"];
    let mut stream = Vec::new();
    let files: Vec<Vec<u8>> = names.iter().map(|n| fx.file(n, n.as_bytes())).collect();
    for f in &files {
        stream.extend(record(b"u", f));
    }
    fx.write(&stream);
    let deadline = Instant::now() + Duration::from_secs(20);
    while fx.runs().0.is_empty() {
        assert!(Instant::now() < deadline, "{}", first.stderr());
        std::thread::sleep(Duration::from_millis(10));
    }
    // Killed while the first program runs.
    first.signal(libc::SIGKILL);
    drop(first);
    // The next instance gets the stored descriptor; its --pipe does not exist.
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(["--config", fx.path("none.toml").to_str().unwrap()])
        .args(["-r", fx.program.to_str().unwrap()])
        .args(["--pipe", "/nonexistent/upload.pipe"])
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "upload-pipe")
        .env("NOTIFY_SOCKET", &fx.notify_path)
        .env("STATE_DIRECTORY", fx.path("state"))
        .env_remove("INVOCATION_ID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(fx.path("stderr")).unwrap());
    let raw = keeper.as_raw_fd();
    // SAFETY: dup2 is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let second = fx.spawn(cmd);
    // The record in hand when the first instance was killed was still in
    // the FIFO: the second instance runs it again, then the others, each
    // once, in order.
    let runs = fx.wait_runs(&second, names.len() + 1);
    let args: Vec<&[u8]> = runs.iter().map(|r| &r.arg[..]).collect();
    let mut want: Vec<&[u8]> = vec![&files[0][..]];
    want.extend(files.iter().map(|f| &f[..]));
    assert_eq!(
        args, want,
        "the interrupted record again, then each once, in order"
    );
    let stderr = second.stop();
    assert!(
        stderr.contains("(descriptor kept in systemd's store)")
            && stderr.contains("PIPE_ORIGIN=\"fdstore\""),
        "{stderr}"
    );
    // Only the first instance stores the pipe: the second got it from the
    // store, and storing it again would exceed FileDescriptorStoreMax=1.
    let stored = fx
        .notifications
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.text.contains("FDSTORE=1"))
        .count();
    assert_eq!(stored, 1, "FDSTORE=1 sent again by the restarted instance");
}

#[test]
fn a_non_root_daemon_creates_and_owns_its_fifo() {
    let fx = Fixture::new();
    let dir = fx.path("nobody");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    let pipe = dir.join("upload.pipe");
    let file = fx.file("f", b"x");
    // The checkout may sit in a 0700 home: nobody runs a copy. Its queue
    // is in a directory it may create.
    let mut cmd = fx.command_of(&common::reachable(BIN), &["--pipe", pipe.to_str().unwrap()]);
    cmd.env("STATE_DIRECTORY", dir.join("state"));
    cmd.uid(NOBODY).gid(NOBODY);
    let daemon = fx.spawn(cmd);
    let meta = std::fs::symlink_metadata(&pipe).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (NOBODY, 0o600));
    let mut f = std::fs::OpenOptions::new().write(true).open(&pipe).unwrap();
    f.write_all(&record(b"u", &file)).unwrap();
    let runs = fx.wait_runs(&daemon, 1);
    assert_eq!(runs[0].id, "65534 65534 65534");
    daemon.stop();
}

#[test]
fn virtual_host_names_map_under_vhost_dir() {
    let fx = Fixture::new();
    let vhosts = fx.path("vhosts");
    fx.file("vhosts/192.0.2.7/pub/f", b"v");
    std::fs::write(
        fx.path("none.toml"),
        format!("vhost_dir = \"{}\"\n", vhosts.display()),
    )
    .unwrap();
    let daemon = fx.start(&[]);
    fx.write(&record(b"anon", b"192.0.2.7:/pub/f"));
    let runs = fx.wait_runs(&daemon, 1);
    assert_eq!(runs[0].arg, fx.file("vhosts/192.0.2.7/pub/f", b"v"));
    daemon.stop();
}

#[test]
fn configuration_and_command_line_are_merged() {
    let fx = Fixture::new();
    let file = fx.file("f", b"abc");
    std::fs::write(
        fx.path("none.toml"),
        "run = \"/nonexistent/overridden/by/-r\"\nhash = \"sha256\"\ncapture_output = true\n",
    )
    .unwrap();
    std::fs::create_dir(fx.path("none.d")).unwrap();
    std::fs::write(fx.path("none.d/10-id.toml"), "uid = \"nobody\"\n").unwrap();
    let daemon = fx.start(&[]);
    fx.write(&record(b"u", &file));
    let runs = fx.wait_runs(&daemon, 1);
    assert_eq!(runs[0].id, "65534 65534 65534");
    let stderr = daemon.stop();
    assert!(
        stderr.contains(
            "UPLOAD_SHA256=\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\""
        ),
        "{stderr}"
    );
}

fn start_error(fx: &Fixture, cmd: &mut Command) -> (i32, String) {
    let mut child = cmd
        .env("STATE_DIRECTORY", fx.path("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A daemon that started instead of refusing would wait forever.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} started instead of failing: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let _ = fx;
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn start_up_errors_are_clear() {
    let fx = Fixture::new();
    let text = fx.path("text");
    std::fs::write(&text, "not a program").unwrap();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec!["-r".into(), "/nonexistent/prog".into()],
            2,
            "/nonexistent/prog: No such file",
        ),
        (
            vec!["-r".into(), "relative/prog".into()],
            2,
            "must be given by an absolute path",
        ),
        (
            vec!["-r".into(), text.display().to_string()],
            2,
            "not executable by uid 0 gid 0",
        ),
        (
            vec!["-u".into(), "no-such-user-here".into()],
            2,
            "unknown user: no-such-user-here",
        ),
        (
            vec!["-g".into(), "no-such-group-here".into()],
            2,
            "unknown group: no-such-group-here",
        ),
        (
            vec!["--timeout".into(), "soon".into()],
            2,
            "expected a duration",
        ),
        (
            vec!["-p".into(), "/nonexistent/dir/x.pid".into()],
            4,
            "cannot write the pid file",
        ),
    ];
    for (args, code, message) in cases {
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let (got, stderr) = start_error(&fx, &mut fx.command(&args));
        assert_eq!(got, code, "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // An unreadable configuration names the file and the line.
    std::fs::write(
        fx.path("bad.toml"),
        "run = \"/bin/true\"\n\ntimeout = \"soon\"\n",
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["--config", fx.path("bad.toml").to_str().unwrap()]);
    let (code, stderr) = start_error(&fx, &mut cmd);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!("{}:3: ", fx.path("bad.toml").display())),
        "{stderr}"
    );
    // A configuration file asked for must exist, even with its drop-ins.
    std::fs::create_dir_all(fx.path("missing.d")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["-r", "/bin/true", "--pipe"])
        .arg(fx.path("unused.pipe"))
        .arg("--config")
        .arg(fx.path("missing.toml"));
    let (code, stderr) = start_error(&fx, &mut cmd);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!(
            "{}: configuration file not found",
            fx.path("missing.toml").display()
        )),
        "{stderr}"
    );
    // An insecure FIFO.
    let _ = std::fs::remove_file(&fx.pipe);
    let c = CString::new(fx.pipe.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is NUL-terminated.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::fs::set_permissions(&fx.pipe, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, stderr) = start_error(&fx, &mut fx.command(&[]));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("insecure upload pipe: mode 0666, not 0600"),
        "{stderr}"
    );
    std::fs::remove_file(&fx.pipe).unwrap();
    std::fs::write(&fx.pipe, "").unwrap();
    let (code, stderr) = start_error(&fx, &mut fx.command(&[]));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("not a FIFO"), "{stderr}");
    // No program at all.
    let mut cmd = Command::new(BIN);
    cmd.args(["--config", fx.path("none.toml").to_str().unwrap()]);
    let (code, stderr) = start_error(&fx, &mut cmd);
    assert_eq!(code, 2);
    assert!(stderr.contains("no program to run"), "{stderr}");
}

#[test]
fn configuration_files_must_be_small_regular_files() {
    let fx = Fixture::new();
    let mkfifo = |path: &Path| {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap()
    };
    let empty_main_with_drop_in = |name: &str| {
        let main = fx.path(&format!("{name}.toml"));
        std::fs::write(&main, "").unwrap();
        std::fs::create_dir(fx.path(&format!("{name}.d"))).unwrap();
        (main, fx.path(&format!("{name}.d/10-bad.toml")))
    };
    // (--config FILE, the file the error names, what it says)
    let mut cases: Vec<(PathBuf, PathBuf, &str)> = Vec::new();
    let zero = PathBuf::from("/dev/zero");
    cases.push((
        zero.clone(),
        zero,
        "not a regular file but a character device",
    ));
    let (main, drop_in) = empty_main_with_drop_in("zero");
    std::os::unix::fs::symlink("/dev/zero", &drop_in).unwrap();
    cases.push((main, drop_in, "not a regular file but a character device"));
    let fifo = fx.path("fifo.toml");
    mkfifo(&fifo);
    cases.push((fifo.clone(), fifo, "not a regular file but a FIFO"));
    let (main, drop_in) = empty_main_with_drop_in("fifo-drop-in");
    mkfifo(&drop_in);
    cases.push((main, drop_in, "not a regular file but a FIFO"));
    let dir = fx.path("dir.toml");
    std::fs::create_dir(&dir).unwrap();
    cases.push((dir.clone(), dir, "not a regular file but a directory"));
    let big = fx.path("big.toml");
    std::fs::write(&big, vec![b'#'; (1 << 20) + 1]).unwrap();
    cases.push((big.clone(), big, "larger than 1048576 bytes"));
    for (config, named, words) in cases {
        let mut cmd = Command::new(BIN);
        cmd.args(["-r", "/bin/true", "--pipe"])
            .arg(fx.path("unused.pipe"))
            .arg("--config")
            .arg(&config);
        let (code, stderr) = start_error(&fx, &mut cmd);
        assert_eq!(code, 2, "{config:?}: {stderr}");
        let want = format!("pure-uploadscript: {}: {words}\n", named.display());
        assert_eq!(stderr, want, "{config:?}");
    }
    assert!(!fx.path("unused.pipe").exists());
    // A drop-in whose name starts with a dot is ignored, as systemd does:
    // this one would name an unknown user.
    std::fs::create_dir(fx.path("none.d")).unwrap();
    std::fs::write(
        fx.path("none.d/.hidden.toml"),
        "uid = \"no-such-user-here\"\n",
    )
    .unwrap();
    let file = fx.file("f", b"x");
    let daemon = fx.start(&[]);
    fx.write(&record(b"u", &file));
    let runs = fx.wait_runs(&daemon, 1);
    assert_eq!(runs[0].id, "0 0 0");
    daemon.stop();
}

#[test]
fn daemonize_forks_outside_systemd_only() {
    let fx = Fixture::new();
    let file = fx.file("f", b"x");
    let pidfile = fx.path("pid");
    let mut cmd = fx.command(&["-B", "-p", pidfile.to_str().unwrap()]);
    // As when a SysV init script run by systemd starts it: INVOCATION_ID is
    // inherited, but the parent is not the service manager, so -B forks.
    cmd.env_remove("NOTIFY_SOCKET")
        .env("INVOCATION_ID", "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a99");
    let status = cmd.status().unwrap();
    assert_eq!(status.code(), Some(0));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no pid file");
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = std::fs::read_to_string(&pidfile).unwrap();
    assert!(text.ends_with('\n'));
    let pid: i32 = text.trim().parse().unwrap();
    fx.write(&record(b"u", &file));
    let deadline = Instant::now() + Duration::from_secs(20);
    while fx.runs().1 < 1 {
        assert!(
            Instant::now() < deadline,
            "the daemonized reader did not run the program"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on the daemon we started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Path::new(&format!("/proc/{pid}")).exists() && !is_gone(pid) {
        assert!(Instant::now() < deadline, "daemon did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!pidfile.exists(), "pid file left behind");

    // Under systemd, -B keeps the daemon in the foreground and writes no
    // default pid file.
    let mut daemon = fx.start(&["-B"]);
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "forked away under systemd"
    );
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait().code(), Some(0));
    assert!(daemon.stderr().contains("-B (daemonize) ignored"));
}

/// Parses journald's native protocol: `KEY=value\n`, or `KEY\n`, a 64-bit
/// little-endian length, the value and `\n`.
fn journal_fields(mut d: &[u8]) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    while !d.is_empty() {
        let nl = d.iter().position(|&b| b == b'\n').unwrap();
        let line = &d[..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            fields.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            d = &d[nl + 1..];
        } else {
            let len = u64::from_le_bytes(d[nl + 1..nl + 9].try_into().unwrap()) as usize;
            let value = &d[nl + 9..nl + 9 + len];
            fields.insert(
                String::from_utf8_lossy(line).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            );
            d = &d[nl + 9 + len + 1..];
        }
    }
    fields
}

#[test]
fn audit_events_reach_the_journal_with_their_fields() {
    let fx = Fixture::new();
    let file = fx.file("report 1.pdf", b"abc");
    // A stand-in for journald's socket, bind-mounted where the daemon
    // looks for it, in a private mount namespace.
    let journal_dir = fx.path("journal");
    std::fs::create_dir(&journal_dir).unwrap();
    let journal = UnixDatagram::bind(journal_dir.join("socket")).unwrap();
    journal
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::fs::write(fx.path("none.toml"), "hash = \"sha256\"\n").unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs tmpfs /run/systemd 2>/dev/null || mount -t tmpfs tmpfs /run && \
             mkdir -p /run/systemd/journal && mount --bind \"$1\" /run/systemd/journal && \
             shift && exec \"$@\"",
        )
        .arg("sh")
        .arg(&journal_dir)
        .arg(BIN)
        .args(["--config", fx.path("none.toml").to_str().unwrap()])
        .args(["-r", fx.program.to_str().unwrap()])
        .args(["--pipe", fx.pipe.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &fx.notify_path)
        .env("STATE_DIRECTORY", fx.path("state"))
        .env_remove("INVOCATION_ID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(fx.path("stderr")).unwrap());
    let daemon = fx.spawn(cmd);
    fx.write(&record(b"alice", &file));
    fx.write(b"\x02mallory\x01/x\x07\x00");
    fx.wait_runs(&daemon, 1);
    let mut entries = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while entries.len() < 3 && Instant::now() < deadline {
        let mut buf = vec![0u8; 65536];
        if let Ok(n) = journal.recv(&mut buf) {
            let fields = journal_fields(&buf[..n]);
            if fields.contains_key("MESSAGE_ID") {
                entries.push(fields);
            }
        }
    }
    daemon.stop();
    // Nothing else with a MESSAGE_ID (the rest are start and stop lines).
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = journal.recv(&mut buf) {
        let fields = journal_fields(&buf[..n]);
        if fields.contains_key("MESSAGE_ID") {
            entries.push(fields);
        }
    }
    // Queued, started and processed, and the rejected record.
    let by_id: BTreeMap<&str, &BTreeMap<String, String>> = entries
        .iter()
        .map(|e| (e["MESSAGE_ID"].as_str(), e))
        .collect();
    assert_eq!(entries.len(), 4, "{entries:?}");
    assert_eq!(
        by_id.keys().copied().collect::<Vec<_>>(),
        [
            "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a60",
            "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a61",
            "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a80",
            "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a81",
        ]
    );
    let queued = by_id["5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a80"];
    assert_eq!(queued["QUEUE_ID"], "1");
    assert_eq!(queued["UPLOAD_FILE"], String::from_utf8_lossy(&file));
    let started = by_id["5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a81"];
    assert_eq!(started["QUEUE_ID"], "1");
    assert_eq!(started["QUEUE_ATTEMPT"], "1");
    assert_eq!(started["UPLOAD_FILE"], String::from_utf8_lossy(&file));
    let processed = by_id["5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a60"];
    assert_eq!(processed["QUEUE_ID"], "1");
    assert_eq!(processed["QUEUE_ATTEMPT"], "1");
    assert_eq!(processed["QUEUE_STATE"], "done");
    assert!(processed["QUEUE_WAIT_USEC"].parse::<u64>().is_ok());
    assert_eq!(processed["MESSAGE_ID"], "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a60");
    assert_eq!(processed["SYSLOG_IDENTIFIER"], "pure-uploadscript");
    // tracing-journald maps INFO to notice (5), WARN to warning (4).
    assert_eq!(processed["PRIORITY"], "5");
    assert_eq!(processed["UPLOAD_FILE"], String::from_utf8_lossy(&file));
    assert_eq!(processed["UPLOAD_VUSER"], "alice");
    assert_eq!(processed["UPLOAD_SIZE"], "3");
    assert_eq!(processed["UPLOAD_UID"], "0");
    assert_eq!(processed["UPLOAD_GID"], "0");
    assert_eq!(
        processed["UPLOAD_SHA256"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(processed["SCRIPT_EXIT_STATUS"], "0");
    assert!(processed["SCRIPT_DURATION_USEC"].parse::<u64>().unwrap() > 0);
    let message = format!(
        "{}: processed by {} in ",
        String::from_utf8_lossy(&file),
        fx.program.display()
    );
    assert!(processed["MESSAGE"].starts_with(&message), "{processed:?}");
    let rejected = by_id["5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a61"];
    assert_eq!(rejected["MESSAGE_ID"], "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a61");
    assert_eq!(rejected["PRIORITY"], "4");
    assert_eq!(rejected["UPLOAD_VUSER"], "mallory");
    assert_eq!(
        rejected["REJECT_REASON"],
        "control byte 0x07 in the file name"
    );
}

/// A program that logs `start FILE`, sleeps `nap` seconds, logs `end FILE`,
/// and fails (status 3) for files whose name contains "fail".
fn logging_program(fx: &Fixture, nap: &str) -> PathBuf {
    let path = fx.path("logging.sh");
    let log = fx.path("runs.log");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"start $1\" >> {log}\nsleep {nap}\necho \"end $1\" >> {log}\n\
             case \"$1\" in *fail*) exit 3 ;; esac\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn run_log(fx: &Fixture) -> Vec<String> {
    std::fs::read_to_string(fx.path("runs.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn wait_log(fx: &Fixture, daemon: &Daemon, ends: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = run_log(fx);
        if log.iter().filter(|l| l.starts_with("end ")).count() >= ends {
            return log;
        }
        assert!(Instant::now() < deadline, "{log:?}\n{}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn queue_command(fx: &Fixture, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["--config", fx.path("none.toml").to_str().unwrap()])
        .args(["--state-dir", fx.path("state").to_str().unwrap()])
        .arg("queue")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn jobs_run_side_by_side_but_one_file_at_a_time_in_upload_order() {
    let fx = Fixture::new();
    let program = logging_program(&fx, "0.3");
    std::fs::write(fx.path("none.toml"), "jobs = 3\n").unwrap();
    let daemon = fx.start(&["-r", program.to_str().unwrap()]);
    let a = fx.file("a", b"1");
    let b = fx.file("b", b"2");
    let c = fx.file("c", b"3");
    let mut stream = Vec::new();
    for f in [&a, &a, &b, &c, &a] {
        stream.extend(record(b"u", f));
    }
    fx.write(&stream);
    let log = wait_log(&fx, &daemon, 5);
    daemon.stop();
    // At most one run of a at a time: its start and end lines alternate.
    let a = String::from_utf8_lossy(&a);
    let of_a: Vec<&str> = log
        .iter()
        .filter(|l| l.ends_with(&*a))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        of_a,
        ["start", "end", "start", "end", "start", "end"],
        "{log:?}"
    );
    // The other files ran beside the first run of a.
    let mut running = 0;
    let mut most = 0;
    for line in &log {
        if line.starts_with("start ") {
            running += 1;
            most = most.max(running);
        } else {
            running -= 1;
        }
    }
    assert_eq!(most, 3, "{log:?}");
}

#[test]
fn one_job_runs_every_record_in_upload_order_even_one_file_many_times() {
    let fx = Fixture::new();
    let program = logging_program(&fx, "0.05");
    std::fs::write(fx.path("none.toml"), "jobs = 1\n").unwrap();
    let daemon = fx.start(&["-r", program.to_str().unwrap()]);
    let a = fx.file("a", b"1");
    let b = fx.file("b", b"2");
    let order = [&a, &a, &a, &b, &a, &b, &b];
    let mut stream = Vec::new();
    for f in order {
        stream.extend(record(b"u", f));
    }
    fx.write(&stream);
    let log = wait_log(&fx, &daemon, order.len());
    daemon.stop();
    // One at a time, as written into the pipe.
    let expected: Vec<String> = order
        .iter()
        .flat_map(|f| {
            let f = String::from_utf8_lossy(f);
            [format!("start {f}"), format!("end {f}")]
        })
        .collect();
    assert_eq!(log, expected);
}

#[test]
fn failed_runs_are_retried_then_kept_until_an_administrator_acts() {
    let fx = Fixture::new();
    let program = logging_program(&fx, "0");
    std::fs::write(
        fx.path("none.toml"),
        "retries = 2\nretry_delay = \"100ms\"\nretry_delay_max = \"150ms\"\n",
    )
    .unwrap();
    let daemon = fx.start(&["-r", program.to_str().unwrap()]);
    let bad = fx.file("will-fail", b"x");
    let good = fx.file("fine", b"y");
    let mut stream = record(b"u", &bad);
    stream.extend(record(b"u", &good));
    fx.write(&stream);
    // Three runs of the failing file (the first and two retries), one of
    // the other; the retries do not hold it up.
    let log = wait_log(&fx, &daemon, 4);
    let bad_name = String::from_utf8_lossy(&bad).into_owned();
    let good_name = String::from_utf8_lossy(&good).into_owned();
    assert_eq!(
        log.iter()
            .filter(|l| **l == format!("end {bad_name}"))
            .count(),
        3
    );
    assert_eq!(log[3], format!("end {good_name}"), "{log:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(run_log(&fx).len(), 8, "a fourth run: {:?}", run_log(&fx));
    let (code, list) = queue_command(&fx, &["list", "--json"]);
    assert_eq!(code, 0);
    let rows: Vec<serde_json::Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["state"], "failed");
    assert_eq!(rows[0]["attempts"], 3);
    assert_eq!(rows[0]["file"], bad_name.as_str());
    let id = rows[0]["id"].to_string();
    // Retried by hand while the daemon runs: three runs more.
    let (code, _) = queue_command(&fx, &["retry", "--all-failed"]);
    assert_eq!(code, 0);
    wait_log(&fx, &daemon, 7);
    let (code, _) = queue_command(&fx, &["retry", "99"]);
    assert_eq!(code, 2);
    // Dropped: the queue is empty, also for the next instance.
    std::thread::sleep(Duration::from_millis(500));
    let (code, out) = queue_command(&fx, &["drop", &id]);
    assert_eq!(code, 0, "{out}");
    daemon.stop();
    let (_, list) = queue_command(&fx, &["list", "--json"]);
    assert_eq!(list, "");
    // The audit says where each run left the record.
    let stderr = fs_read(&fx.path("stderr"));
    assert!(stderr.contains("QUEUE_STATE=\"retry\""), "{stderr}");
    assert!(stderr.contains("QUEUE_STATE=\"failed\""), "{stderr}");
}

fn fs_read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn counters_are_published_for_the_exporter_from_a_process_run() {
    use pureftpd_systemd::upload::metrics::{read_state, state_file};
    let fx = Fixture::new();
    // The unit's StateDirectory=: root's, mode 0755.
    let state = fx.path("state");
    std::fs::create_dir(&state).unwrap();
    let ok = fx.file("ok", b"12345");
    let fail = fx.file("fail", b"123");
    let dir = fx.path("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let mut cmd = fx.command(&["--isolation", "process", "-u", "65534", "-g", "65534"]);
    cmd.env("STATE_DIRECTORY", &state);
    let daemon = fx.spawn(cmd);
    let mut stream = record(b"u", &ok);
    stream.extend(record(b"u", &fail));
    stream.extend(record(b"u", dir.as_os_str().as_bytes()));
    fx.write(&stream);
    let path = state_file(&state);
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        let seen = read_state(&path).unwrap().expect("a valid document");
        if seen.processed + seen.failed + seen.rejected == 3 {
            break seen;
        }
        assert!(Instant::now() < deadline, "{seen:?}\n{}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!((seen.processed, seen.failed, seen.rejected), (1, 1, 1));
    // Two programs ran (the directory was refused before): their files'
    // bytes and run times.
    assert_eq!((seen.bytes, seen.duration_count), (8, 2));
    assert_eq!((seen.in_flight, seen.restarts, seen.retries), (0, 0, 0));
    // The queue holds nothing to run once every record is done, and keeps
    // the failed one (no retries asked for).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = read_state(&path).unwrap().unwrap();
        if (seen.queue_records, seen.queue_failed) == (0, 1) {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", read_state(&path));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(seen.pipe, fx.pipe.to_string_lossy());
    // Opened before the switch to nobody, so root's.
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0);
    daemon.stop();
    // The next reader of the pipe goes on from there.
    let mut cmd = fx.command(&["--isolation", "process"]);
    cmd.env("STATE_DIRECTORY", &state);
    let daemon = fx.spawn(cmd);
    let seen = read_state(&path).unwrap().expect("a valid document");
    assert_eq!((seen.processed, seen.restarts), (1, 1));
    daemon.stop();
}
