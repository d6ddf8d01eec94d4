//! The `pure-ftpwho` binary's own behaviour: options beyond the C tool,
//! exit statuses, messages, non-root use.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use common::*;
use pureftpd_systemd::ftpwho::scoreboard::{Layout, State};

const OURS: &str = env!("CARGO_BIN_EXE_pure-ftpwho");

fn run(args: &[&str]) -> Output {
    Command::new(OURS)
        .args(args)
        .env_remove("GATEWAY_INTERFACE")
        .env_remove("PURE_FTPWHO_LAYOUT")
        .output()
        .expect("run pure-ftpwho")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn lists_a_scoreboard_given_by_path() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let mut e = entry(live.pid(0), b"alice");
    e.state = State::Download;
    e.filename = b"/pub/a.iso".to_vec();
    board.add(&e);
    let dir = board.dir.to_str().unwrap();
    let o = run(&["--scoreboard", dir, "-s", "-n"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line = stdout(&o);
    assert!(
        line.starts_with(&format!("{}|alice|", live.pid(0))),
        "{line}"
    );
    assert!(
        line.contains("| DL |/pub/a.iso|192.0.2.7|192.0.2.1|21|"),
        "{line}"
    );
}

#[test]
fn counts_sessions_of_a_user() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let pid = live.pid(0) as u32;
    for (n, account) in [
        (pid, &b"Bob"[..]),
        (pid + 100_000_000, b"bob"),
        (pid + 200_000_000, b"eve"),
    ] {
        let bytes = entry(pid as i32, account)
            .to_bytes(&Layout::DEBIAN)
            .unwrap();
        board.write_raw(&format!("client-{n:08}"), &bytes, 0o600);
    }
    let dir = board.dir.to_str().unwrap();
    assert_eq!(
        stdout(&run(&["--scoreboard", dir, "--count", "BOB"])),
        "2\n"
    );
    assert_eq!(
        stdout(&run(&["--scoreboard", dir, "--count", "carol"])),
        "0\n"
    );
}

#[test]
fn json_lists_typed_fields() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let mut e = entry(live.pid(0), b"caf\xe9");
    e.state = State::Upload;
    e.current_size = 4096;
    board.add(&e);
    let o = run(&["--scoreboard", board.dir.to_str().unwrap(), "--json", "-n"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let s = &v[0];
    assert_eq!(s["pid"], live.pid(0));
    assert_eq!(s["account"], "caf\\xe9");
    assert_eq!(s["account_escaped"], true);
    assert_eq!(s["state"], "upload");
    assert_eq!(s["current_size"], 4096);
    assert_eq!(s["total_size"], 0);
    assert_eq!(s["percentage"], serde_json::Value::Null);
    assert_eq!(s["host"], "192.0.2.7");
    assert_eq!(s["local_port"], 21);
    let empty = Board::new();
    let o = run(&["--scoreboard", empty.dir.to_str().unwrap(), "--json"]);
    assert_eq!(stdout(&o), "[]\n");
}

#[test]
fn exit_statuses() {
    let board = Board::new();
    let dir = board.dir.to_str().unwrap();
    assert_eq!(run(&["--scoreboard", dir]).status.code(), Some(0));
    // Extensions refuse bad values with a usage error.
    let o = run(&["--scoreboard", dir, "--state", "busy"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("busy"));
    assert_eq!(run(&["--layout", "nonsense"]).status.code(), Some(2));
    // Unknown options print the C usage, status 0, like the C tool.
    let o = run(&["-q"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("\nUsage :\n"));
    // A missing directory: C's message on stderr, nothing on stdout, 255.
    let missing = board.tmp.path().join("missing");
    let o = run(&["--scoreboard", missing.to_str().unwrap(), "-s"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("Unable to open the ftpwho scoreboard."));
    assert!(stderr(&o).contains(&format!("[{}/]", missing.display())));
}

#[test]
fn help_documents_every_option_and_exit_status() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    for needle in [
        "-c",
        "-C",
        "-h",
        "-H",
        "-n",
        "-p",
        "-s",
        "-v",
        "-w",
        "-W",
        "-x",
        "--json",
        "--count",
        "--user",
        "--state",
        "--scoreboard",
        "--layout",
        "--lock-timeout",
        "--keep-stale",
        "Exit status",
        "255",
        "GATEWAY_INTERFACE",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
}

#[test]
fn notes_go_to_stderr_and_the_listing_goes_on() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let name = board.name();
    board.write_raw(&name, b"garbage", 0o600);
    board.add(&entry(live.pid(0), b"ok"));
    let o = run(&["--scoreboard", board.dir.to_str().unwrap(), "-s", "-n"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("|ok|"));
    assert!(
        stderr(&o).contains(&format!("{name}: skipped")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_non_root_owner_of_the_directory_may_read_it() {
    assert!(is_root(), "this test switches users: run it as root");
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let mine = board.add(&entry(live.pid(0), b"mine"));
    let foreign = board.add(&entry(live.pid(0), b"foreign"));
    board.add(&entry(live.pid(0), b"root"));
    chown(board.tmp.path(), 65534, 65534);
    chown(&board.dir, 65534, 65534);
    chown(&mine, 65534, 65534);
    chown(&foreign, 4321, 4321);
    // Readable by anyone, so only its owner keeps it out.
    std::fs::set_permissions(
        &foreign,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let ours = reachable(OURS);
    let as_nobody = |dir: &str| {
        Command::new(&ours)
            .args(["--scoreboard", dir, "-s", "-n"])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let o = as_nobody(board.dir.to_str().unwrap());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("|mine|"), "{out}");
    assert!(!out.contains("|foreign|"), "{out}");
    // Root's entries (mode 0600) cannot even be opened by this user.
    assert!(!out.contains("|root|"), "{out}");
    assert!(stderr(&o).contains("owned by uid 4321"), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot open"), "{}", stderr(&o));
    // A directory owned by someone else: the C tool's refusal.
    let o = as_nobody("/");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "You must be root to run this. Sorry.\n");
}

#[test]
fn root_without_cap_fowner_still_reads_every_entry() {
    // Root opens entries with O_NOATIME, which foreign files refuse
    // without CAP_FOWNER: such a file must still be judged on its owner.
    assert!(is_root(), "this test drops a capability: run it as root");
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let foreign = board.add(&entry(live.pid(0), b"foreign"));
    chown(&foreign, 4321, 4321);
    board.add(&entry(live.pid(0), b"root"));
    let o = Command::new("setpriv")
        .args([
            "--bounding-set",
            "-fowner",
            OURS,
            "-s",
            "-n",
            "--scoreboard",
        ])
        .arg(&board.dir)
        .output()
        .expect("setpriv");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("|root|"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("|foreign|"));
    assert!(stderr(&o).contains("owned by uid 4321"), "{}", stderr(&o));
}
