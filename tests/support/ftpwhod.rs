//! Pieces of the responder tests, over the shared helpers of `common`:
//! crafted scoreboards with live processes, a running `ftpwhod`, the
//! client run as another user, and the C `pure-ftpwho` run on a crafted
//! scoreboard.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::common::{addr, dead_pid, now, reachable, with_scoreboard_at_run, LivePids};
use std::time::{Duration, Instant};

use pureftpd_systemd::ftpwho::scoreboard::{Entry, Layout, State};

pub const FTPWHOD: &str = env!("CARGO_BIN_EXE_ftpwhod");
pub const QUERY: &str = env!("CARGO_BIN_EXE_ftpwho-query");
pub const PURE_FTPWHO: &str = env!("CARGO_BIN_EXE_pure-ftpwho");
/// Debian's C tool, the reference.
pub const C_PURE_FTPWHO: &str = "/usr/sbin/pure-ftpwho";
/// The unprivileged user the client runs as ("nobody" on Debian).
pub const NOBODY: u32 = 65534;
/// The group created for the membership tests.
pub const TEST_GROUP: &str = "ftpwho-test";

/// A temporary directory that others may traverse (the client may run as
/// nobody).
pub fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A crafted scoreboard whose sessions belong to live `sleep` processes,
/// killed (by pid) when it is dropped.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    live: LivePids,
}

/// A session of `account` in `state`, started `age` seconds ago.
pub fn entry(state: State, account: &[u8], peer: &str, local: &str, age: i64) -> Entry {
    Entry {
        state,
        peer: addr(peer),
        local: addr(local),
        date: now() - age,
        ..crate::common::entry(0, account)
    }
}

impl Fixture {
    pub fn empty() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            live: LivePids::new(),
        }
    }

    /// Writes `entry` as the server would, owned by a new live process.
    pub fn add(&mut self, mut entry: Entry) -> i32 {
        let pid = self.live.add();
        entry.pid = pid;
        self.write(&entry, pid);
        pid
    }

    /// Writes `entry` under the file name of `pid`, mode 0600.
    pub fn write(&self, entry: &Entry, pid: i32) -> PathBuf {
        let path = self.dir.path().join(format!("client-{pid:08}"));
        std::fs::write(&path, entry.to_bytes(&Layout::DEBIAN).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A varied scoreboard: every state, IPv4 and IPv6, transfers with and
    /// without a restart offset, names with characters each format escapes,
    /// a Latin-1 account, a free slot and a stale entry.
    pub fn varied() -> Fixture {
        let mut f = Fixture::empty();
        let t = now();
        f.add(entry(
            State::Idle,
            b"alice",
            "127.0.0.1:40001",
            "127.0.0.1:21",
            65,
        ));
        let mut dl = entry(
            State::Download,
            b"bob",
            "192.0.2.7:50000",
            "192.0.2.1:21",
            3725,
        );
        dl.xfer_date = t - 10;
        dl.total_size = 4 << 20;
        dl.current_size = 1 << 20;
        dl.filename = b"/pub/a&b <x>.iso".to_vec();
        f.add(dl);
        let mut ul = entry(
            State::Upload,
            b"alice",
            "[2001:db8::5]:6000",
            "[2001:db8::1]:2121",
            100,
        );
        ul.xfer_date = t - 20;
        ul.restart_at = 1000;
        ul.current_size = 3_000_000;
        ul.filename = b"incoming/\"q\"|pipe.txt".to_vec();
        f.add(ul);
        let mut latin = entry(
            State::Idle,
            b"caf\xe9",
            "198.51.100.9:1234",
            "198.51.100.1:21",
            5,
        );
        latin.filename = b"caf\xe9.txt".to_vec();
        f.add(latin);
        let mut restart = entry(
            State::Download,
            b"nobody",
            "203.0.113.4:999",
            "203.0.113.1:21",
            400_000,
        );
        restart.xfer_date = t - 3;
        restart.restart_at = 9_000_000;
        restart.total_size = 10_000_000;
        restart.current_size = 5_000_000;
        restart.filename = b"big.bin".to_vec();
        f.add(restart);
        f.add(entry(
            State::Unknown(7),
            b"carol",
            "192.0.2.8:1",
            "192.0.2.1:21",
            1,
        ));
        f.add(entry(
            State::Free,
            b"freed",
            "192.0.2.9:1",
            "192.0.2.1:21",
            1,
        ));
        f
    }

    /// Adds an entry whose process is gone; returns its file.
    pub fn add_stale(&mut self) -> PathBuf {
        let pid = dead_pid();
        let mut e = entry(State::Idle, b"ghost", "192.0.2.66:1", "192.0.2.1:21", 9);
        e.pid = pid;
        self.write(&e, pid)
    }
}

/// No program before `ftpwhod` in [`ftpwhod_command`].
pub const NO_LAUNCHER: [&str; 0] = [];

/// `ftpwhod --config DIR/empty.toml --scoreboard SCOREBOARD` (an empty
/// configuration file, written here: only the defaults and the options
/// count, whatever /etc/ftpwhod.toml holds), started
/// through `launcher` (e.g. `systemd-socket-activate -l PATH`) when it is
/// not empty; no journal, no standard input or output.
pub fn ftpwhod_command<S: AsRef<OsStr>>(
    launcher: impl IntoIterator<Item = S>,
    dir: &Path,
    scoreboard: &Path,
) -> Command {
    let config = dir.join("empty.toml");
    std::fs::write(&config, "").unwrap();
    let mut launcher = launcher.into_iter();
    let mut command = match launcher.next() {
        None => Command::new(FTPWHOD),
        Some(program) => {
            let mut command = Command::new(program);
            command.args(launcher).arg(reachable(FTPWHOD));
            command
        }
    };
    command
        .arg("--config")
        .arg(config)
        .arg("--scoreboard")
        .arg(scoreboard)
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

/// A child process killed (by pid) when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `ftpwhod --listen`, killed (by pid) when dropped.
pub struct Responder {
    pub child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts connections at `socket`.
pub fn wait_for_socket(socket: &Path) {
    let start = Instant::now();
    while UnixStream::connect(socket).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nothing listens on {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Responder {
    /// Starts `ftpwhod` on `scoreboard` with `extra` options; the socket
    /// is made 0666 so that the responder's own check is what is tested.
    pub fn start(scoreboard: &Path, extra: &[&str]) -> Responder {
        let dir = open_tempdir();
        let socket = dir.path().join("ftpwho.sock");
        let log = dir.path().join("ftpwhod.log");
        let child = ftpwhod_command(NO_LAUNCHER, dir.path(), scoreboard)
            .arg("--listen")
            .arg(&socket)
            .args(if extra.contains(&"--idle-timeout") {
                &[][..]
            } else {
                &["--idle-timeout", "120"]
            })
            .args(extra)
            .env_remove("NOTIFY_SOCKET")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut responder = Responder {
            child,
            socket,
            log,
            dir,
        };
        let start = Instant::now();
        while UnixStream::connect(&responder.socket).is_err() {
            if let Some(status) = responder.child.try_wait().unwrap() {
                panic!("ftpwhod exited ({status}): {}", responder.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "ftpwhod does not listen"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::set_permissions(&responder.socket, std::fs::Permissions::from_mode(0o666))
            .unwrap();
        responder
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Runs `ftpwho-query --socket <ours>` with `args`.
    pub fn query(&self, args: &[&str]) -> Output {
        run_query(&self.socket, args, None)
    }

    /// Sends raw request bytes on a new connection and returns every
    /// answer line until the responder closes.
    pub fn raw(&self, bytes: &[u8]) -> Vec<String> {
        raw_exchange(&self.socket, bytes)
    }
}

/// Sends `bytes`, shuts down writing, and reads every line until EOF.
pub fn raw_exchange(socket: &Path, bytes: &[u8]) -> Vec<String> {
    let stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // The responder may refuse before reading all of it.
    let _ = (&stream).write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut lines = Vec::new();
    let mut reader = BufReader::new(&stream);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {
                assert!(line.ends_with('\n'), "unterminated answer {line:?}");
                lines.push(line);
            }
            // Closing with our bytes unread resets the connection after the
            // answer.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading answers: {e}"),
        }
    }
    lines
}

/// Who runs the client.
#[derive(Debug, Clone)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Creds {
    pub fn nobody() -> Creds {
        Creds {
            uid: NOBODY,
            gid: NOBODY,
            groups: Vec::new(),
        }
    }
}

/// `setpriv` arguments that become `creds`.
pub fn setpriv(creds: &Creds) -> Vec<String> {
    let mut args = vec![
        format!("--reuid={}", creds.uid),
        format!("--regid={}", creds.gid),
    ];
    if creds.groups.is_empty() {
        args.push("--clear-groups".into());
    } else {
        let list: Vec<String> = creds.groups.iter().map(|g| g.to_string()).collect();
        args.push(format!("--groups={}", list.join(",")));
    }
    args
}

/// Runs `ftpwho-query --socket socket args`, as `creds` when given.
pub fn run_query(socket: &Path, args: &[&str], creds: Option<&Creds>) -> Output {
    let mut command = match creds {
        None => Command::new(QUERY),
        Some(creds) => {
            let mut c = Command::new("setpriv");
            c.args(setpriv(creds)).arg(reachable(QUERY));
            c
        }
    };
    command
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("FTPWHO_SOCKET")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The gid of the test group, created if missing.
pub fn test_group() -> u32 {
    let status = Command::new("groupadd")
        .args(["-f", TEST_GROUP])
        .status()
        .unwrap();
    assert!(status.success(), "groupadd -f {TEST_GROUP}");
    pureftpd_systemd::ftpwho::query::auth::group_id(TEST_GROUP)
        .unwrap()
        .expect("the group exists now")
}

/// Runs Debian's C `pure-ftpwho args` on `scoreboard`, bound over its
/// fixed directory in a private mount namespace.
pub fn c_pure_ftpwho(scoreboard: &Path, args: &[&str]) -> Vec<u8> {
    let out = with_scoreboard_at_run(scoreboard, C_PURE_FTPWHO)
        .args(args)
        .env_remove("GATEWAY_INTERFACE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "C pure-ftpwho failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs our `pure-ftpwho --scoreboard scoreboard args`.
pub fn our_pure_ftpwho(scoreboard: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(PURE_FTPWHO)
        .arg("--scoreboard")
        .arg(scoreboard)
        .args(args)
        .env_remove("GATEWAY_INTERFACE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pure-ftpwho failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Calls `produce` until two results agree with `reference` taken in the
/// same second (times are printed in seconds, so a tick between the two
/// runs is retried).
pub fn same_second<T: PartialEq + std::fmt::Debug>(
    mut reference: impl FnMut() -> T,
    mut produce: impl FnMut() -> T,
) -> (T, T) {
    let mut last = None;
    for _ in 0..5 {
        let before = now();
        let a = reference();
        let b = produce();
        if now() == before || a == b {
            return (a, b);
        }
        last = Some((a, b));
    }
    last.unwrap()
}

impl Fixture {
    /// `count` sessions of the one live process `pid`, built by `make`
    /// from their index (file names are distinct).
    pub fn crafted(count: usize, make: impl Fn(usize) -> Entry) -> Fixture {
        let mut f = Fixture::empty();
        let pid = f.live.add();
        for i in 0..count {
            let mut e = make(i);
            e.pid = pid;
            let path = f.dir.path().join(format!("client-{:08}", 10_000_000 + i));
            std::fs::write(&path, e.to_bytes(&Layout::DEBIAN).unwrap()).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        f
    }

    /// `count` ordinary sessions: a few accounts, every state.
    pub fn many(count: usize) -> Fixture {
        Fixture::crafted(count, |i| {
            let state = [State::Idle, State::Download, State::Upload][i % 3];
            let mut e = entry(
                state,
                format!("user{}", i % 50).as_bytes(),
                &format!("192.0.2.{}:{}", i % 250 + 1, 40000 + i % 20000),
                "192.0.2.254:21",
                (i % 7200) as i64,
            );
            e.filename = format!("/pub/file-{i}.bin").into_bytes();
            e
        })
    }
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A list request line in `format`, numeric addresses.
pub fn list_line(format: &str) -> Vec<u8> {
    format!("{{\"v\":1,\"op\":\"list\",\"format\":\"{format}\",\"numeric\":true}}\n").into_bytes()
}

/// Runs perl `script` with `args` as `creds`, in the background.
pub fn perl_as(creds: &Creds, script: &str, args: &[&str]) -> KillOnDrop {
    KillOnDrop(
        Command::new("setpriv")
            .args(setpriv(creds))
            .args(["perl", "-MIO::Socket::UNIX", "-e", script])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}
