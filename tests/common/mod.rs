//! Shared helpers of the integration tests: crafting scoreboards (entries
//! written as the server writes them, bad files of every kind), live
//! processes for their pids, and commands run in a private mount namespace.
#![allow(dead_code)]

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Every unit file the project ships (`systemd/generate` writes them).
pub const UNITS: [&str; 12] = [
    "pure-ftpwho.service",
    "pure-ftpwho.socket",
    "pure-uploadscript-run-strict.socket",
    "pure-uploadscript-run-strict@.service",
    "pure-uploadscript-run.socket",
    "pure-uploadscript-run@.service",
    "pure-uploadscript.path",
    "pure-uploadscript.service",
    "pureftpd-exporter.service",
    "pureftpd-exporter.socket",
    "uploadscript@.path",
    "uploadscript@.service",
];

use pureftpd_systemd::ftpwho::scoreboard::{Entry, Layout, RawSockaddr, State};

/// Processes whose pids make entries live; killed by pid on drop.
pub struct LivePids {
    children: Vec<Child>,
}

impl LivePids {
    pub fn new() -> LivePids {
        LivePids {
            children: Vec::new(),
        }
    }

    pub fn spawn(n: usize) -> LivePids {
        let mut live = LivePids::new();
        for _ in 0..n {
            live.add();
        }
        live
    }

    /// Starts one more process; returns its pid.
    pub fn add(&mut self) -> i32 {
        let child = Command::new("sleep")
            .arg("3600")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        self.children.push(child);
        child_pid(self.children.last().expect("just pushed"))
    }

    pub fn pid(&self, i: usize) -> i32 {
        child_pid(&self.children[i % self.children.len()])
    }
}

fn child_pid(child: &Child) -> i32 {
    child.id() as i32
}

impl Drop for LivePids {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A pid that no process has: a child that already exited and was reaped.
pub fn dead_pid() -> i32 {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id() as i32;
    child.wait().expect("wait true");
    pid
}

/// The time in seconds, as C's `time(NULL)` gives it.
pub fn now() -> i64 {
    // SAFETY: time(NULL) has no preconditions.
    unsafe { libc::time(std::ptr::null_mut()) }
}

/// A socket address, IPv4 (`192.0.2.7:21`) or IPv6 (`[2001:db8::1]:21`).
pub fn addr(addr: &str) -> RawSockaddr {
    RawSockaddr::from_socket_addr(addr.parse().expect("socket address"))
}

pub fn v6(ip: &str, port: u16, scope: u32) -> RawSockaddr {
    let ip: std::net::Ipv6Addr = ip.parse().expect("ipv6");
    RawSockaddr::from_socket_addr(std::net::SocketAddrV6::new(ip, port, 0, scope).into())
}

/// An idle session of `account` from 192.0.2.7 to 192.0.2.1:21.
pub fn entry(pid: i32, account: &[u8]) -> Entry {
    Entry {
        state: State::Idle,
        pid,
        peer: addr("192.0.2.7:50000"),
        local: addr("192.0.2.1:21"),
        date: 1_000_000_000,
        xfer_date: 0,
        restart_at: 0,
        total_size: 0,
        current_size: 0,
        account: account.to_vec(),
        filename: Vec::new(),
    }
}

/// A scoreboard directory in a fresh temporary directory, mode 0700.
pub struct Board {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    next: u32,
}

impl Board {
    pub fn new() -> Board {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("pure-ftpd");
        fs::create_dir(&dir).expect("mkdir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        Board { tmp, dir, next: 1 }
    }

    fn next_name(&mut self) -> String {
        let name = format!("client-{:08}", self.next);
        self.next += 1;
        name
    }

    /// Writes `entry` with `layout` under the next `client-` name, mode
    /// 0600, as the server does.
    pub fn add_with(&mut self, entry: &Entry, layout: &Layout) -> PathBuf {
        let name = self.next_name();
        self.write_raw(&name, &entry.to_bytes(layout).expect("layout"), 0o600)
    }

    pub fn add(&mut self, entry: &Entry) -> PathBuf {
        self.add_with(entry, &Layout::DEBIAN)
    }

    /// Writes `bytes` as `name` with `mode`.
    pub fn write_raw(&mut self, name: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let path = self.dir.join(name);
        let mut f = fs::File::create(&path).expect("create entry");
        f.write_all(bytes).expect("write entry");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod entry");
        path
    }

    /// The next `client-` name, for files made by hand.
    pub fn name(&mut self) -> String {
        self.next_name()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
}

pub fn mkfifo(path: &Path) {
    let c = CString::new(path.to_str().expect("utf-8 path")).expect("path");
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A command that runs `program` in a private mount namespace with an
/// empty `/run` (a tmpfs: nothing of the host's, nothing left behind) and
/// `scoreboard` bind-mounted at `/run/pure-ftpd` (`unshare`, needs root);
/// add the program's arguments to it.
pub fn with_scoreboard_at_run(scoreboard: &Path, program: &str) -> Command {
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs tmpfs /run && mkdir /run/pure-ftpd \\
             && mount --bind \"$1\" /run/pure-ftpd && shift && exec \"$@\"",
        )
        .arg("sh")
        .arg(scoreboard)
        .arg(program);
    command
}

/// A copy of one of the project's binaries that any user can run.
///
/// Tests that switch to another uid cannot run `target/` directly: the
/// checkout may sit in a 0700 home. The copy lives in a directory of the
/// test process (mode 0755 under the temporary directory), made once per
/// process and removed at its exit; directories left by a killed run are
/// removed by the next one.
pub fn reachable(binary: &str) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static COPIES: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let copies = COPIES.get_or_init(|| {
        sweep_reachable_dirs();
        let dir = reachable_dir(std::process::id());
        fs::create_dir_all(&dir).expect("mkdir for reachable binaries");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        extern "C" fn remove_at_exit() {
            let _ = fs::remove_dir_all(reachable_dir(std::process::id()));
        }
        // SAFETY: registers a plain function without arguments.
        unsafe { libc::atexit(remove_at_exit) };
        Mutex::new(HashMap::new())
    });
    let mut copies = copies.lock().unwrap();
    copies
        .entry(binary.to_string())
        .or_insert_with(|| {
            let source = Path::new(binary);
            let copy = reachable_dir(std::process::id()).join(source.file_name().expect("a file"));
            // Copied by another process: a descriptor open for writing in
            // this one would be inherited by children other tests fork at
            // the same moment, and running the copy would fail with
            // ETXTBSY until they exec.
            let status = Command::new("install")
                .args(["-m", "0755"])
                .arg(source)
                .arg(&copy)
                .status()
                .expect("run install(1)");
            assert!(status.success(), "cannot copy {binary}");
            copy
        })
        .clone()
}

const REACHABLE_PREFIX: &str = "pureftpd-systemd-tests-bin-";

fn reachable_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("{REACHABLE_PREFIX}{pid}"))
}

/// Removes the copies of test processes that are gone.
fn sweep_reachable_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(REACHABLE_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}
