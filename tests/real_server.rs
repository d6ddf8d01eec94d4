//! Reads scoreboard entries written by the real Debian pure-ftpd: a server
//! on a loopback port, a virtual user, rate-limited transfers with curl,
//! then this scanner's view of the server's own files and this
//! `pure-ftpwho` against the C one for the same sessions. The server runs
//! in a private mount namespace with an empty `/run` of its own, so its
//! scoreboard is this test's alone and nothing is left on the host: it is
//! read through `/proc/PID/root`, and both tools run in that namespace.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::is_root;
use pureftpd_systemd::ftpwho::scoreboard::{ScanOptions, Scoreboard, State};

const OURS: &str = env!("CARGO_BIN_EXE_pure-ftpwho");
const USER: &str = "sbreader";
const PASSWORD: &str = "Reader-pw-42";
const SIZE: u64 = 300 << 20;
const RESTART: u64 = 12_345;

/// Child processes killed by pid on drop.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(1)?.parse().ok()
}

fn setup_user(dir: &Path) -> std::path::PathBuf {
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let big = std::fs::File::create(home.join("big.bin")).unwrap();
    big.set_len(SIZE).unwrap();
    common::chown(&home, 65534, 65534);
    common::chown(&home.join("big.bin"), 65534, 65534);
    let passwd = dir.join("passwd");
    let mut add = Command::new("pure-pw")
        .args(["useradd", USER, "-u", "65534", "-g", "65534", "-d"])
        .arg(&home)
        .arg("-f")
        .arg(&passwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("pure-pw");
    use std::io::Write;
    writeln!(add.stdin.take().unwrap(), "{PASSWORD}\n{PASSWORD}").unwrap();
    assert!(add.wait().unwrap().success(), "pure-pw useradd");
    let pdb = dir.join("pureftpd.pdb");
    let status = Command::new("pure-pw")
        .arg("mkdb")
        .arg(&pdb)
        .arg("-f")
        .arg(&passwd)
        .status()
        .unwrap();
    assert!(status.success(), "pure-pw mkdb");
    pdb
}

/// The lines of a `-s` listing that belong to `pids`.
fn lines_of(out: &Output, pids: &[i32]) -> Vec<String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| pids.iter().any(|p| l.starts_with(&format!("{p}|"))))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn entries_written_by_the_real_server() {
    assert!(is_root(), "needs root: runs pure-ftpd");
    for tool in [
        "/usr/sbin/pure-ftpd",
        "/usr/sbin/pure-ftpwho",
        "/usr/bin/curl",
        "/usr/bin/pure-pw",
    ] {
        assert!(
            Path::new(tool).exists(),
            "{tool} missing: run scripts/install-deps"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let pdb = setup_user(tmp.path());
    let port = free_port();
    let mut children = Children(Vec::new());
    // unshare and sh exec in place: the pid is pure-ftpd's.
    let server = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs tmpfs /run && exec \"$@\"")
        .args(["sh", "/usr/sbin/pure-ftpd"])
        .arg("-S")
        .arg(format!("127.0.0.1,{port}"))
        .arg("-l")
        .arg(format!("puredb:{}", pdb.display()))
        .args(["-E", "-A", "-t", "64", "-T", "64"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pure-ftpd");
    let server_pid = server.id() as i32;
    children.0.push(server);
    let scoreboard_dir = format!("/proc/{server_pid}/root/run/pure-ftpd");
    let in_server_namespace = |program: &str| {
        let mut command = Command::new("nsenter");
        command
            .arg("-t")
            .arg(server_pid.to_string())
            .args(["-m", program]);
        command
    };
    // Wait until it listens.
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "pure-ftpd did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = |path: &str| format!("ftp://{USER}:{PASSWORD}@127.0.0.1:{port}/{path}");
    let curl = |args: &[&str]| {
        Command::new("curl")
            .args(["-s", "-S", "--limit-rate", "64k"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("curl")
    };
    children.0.push(curl(&[
        "-o",
        "/dev/null",
        "-C",
        &RESTART.to_string(),
        &url("big.bin"),
    ]));
    let upload = tmp.path().join("up.bin");
    std::fs::File::create(&upload)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    children
        .0
        .push(curl(&["-T", upload.to_str().unwrap(), &url("up.bin")]));

    // Wait for both sessions to be transferring.
    let options = ScanOptions {
        remove_stale: false,
        ..ScanOptions::default()
    };
    let scoreboard = Scoreboard::with_options(&scoreboard_dir, options);
    let started = Instant::now();
    let (download, upload) = loop {
        let ours: Vec<_> = scoreboard
            .scan()
            .map(|s| s.entries)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.pid > 0 && parent_of(e.pid) == Some(server_pid))
            .collect();
        let dl = ours
            .iter()
            .find(|e| e.state == State::Download && e.current_size > RESTART as i64);
        let ul = ours
            .iter()
            .find(|e| e.state == State::Upload && e.current_size > 0);
        if let (Some(dl), Some(ul)) = (dl, ul) {
            break (dl.clone(), ul.clone());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no transferring sessions of this server appeared: {ours:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    // The record as the server wrote it, decoded at Debian's offsets.
    let file = Path::new(&scoreboard_dir).join(format!("client-{:08}", download.pid));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 1464);
    assert_eq!(download.account, USER.as_bytes());
    assert!(download.filename.ends_with(b"big.bin"), "{:?}", download);
    assert_eq!(download.restart_at, RESTART as i64);
    assert_eq!(download.total_size, SIZE as i64);
    let peer = download.peer.to_socket_addr().unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.1");
    assert_eq!(download.local.to_socket_addr().unwrap().port(), port);
    let now = common::now();
    assert!((now - 60..=now).contains(&download.date), "{download:?}");
    assert!(download.xfer_date >= download.date);
    assert_eq!(upload.account, USER.as_bytes());
    assert!(upload.filename.ends_with(b"up.bin"), "{:?}", upload);

    // This pure-ftpwho and the C one agree on these sessions. Sizes move
    // while the transfers run: retry until both read the same moment.
    let pids = [download.pid, upload.pid];
    let mut last = None;
    for _ in 0..50 {
        let c = in_server_namespace("/usr/sbin/pure-ftpwho")
            .args(["-s", "-n"])
            .output()
            .unwrap();
        let ours = in_server_namespace(OURS)
            .args(["-s", "-n", "--keep-stale"])
            .output()
            .unwrap();
        let (c, ours) = (lines_of(&c, &pids), lines_of(&ours, &pids));
        assert_eq!(c.len(), 2, "C lists both sessions: {c:?}");
        if c == ours {
            last = None;
            break;
        }
        last = Some((c, ours));
        std::thread::sleep(Duration::from_millis(20));
    }
    // The private /run, and the sessions' files in it, go with the server.
    drop(children);
    assert_eq!(last, None, "C and this pure-ftpwho never agreed");
}
