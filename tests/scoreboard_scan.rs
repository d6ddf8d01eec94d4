//! The scanner's acceptance rules, one test per rule, on crafted
//! scoreboards (run as root: foreign owners need chown).

mod common;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use common::*;
use pureftpd_systemd::ftpwho::scoreboard::{
    Layout, Note, ScanOptions, Scoreboard, ScoreboardError, SkipReason, State, Unlocked,
};

fn scan(board: &Board) -> pureftpd_systemd::ftpwho::scoreboard::Scan {
    Scoreboard::new(&board.dir).scan().expect("scan")
}

/// The reasons of the notes that say a file was skipped, in order.
fn skipped(scan: &pureftpd_systemd::ftpwho::scoreboard::Scan) -> Vec<SkipReason> {
    scan.notes
        .iter()
        .filter_map(|n| match n {
            Note::Skipped { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn pids(scan: &pureftpd_systemd::ftpwho::scoreboard::Scan) -> Vec<i32> {
    let mut pids: Vec<i32> = scan.entries.iter().map(|e| e.pid).collect();
    pids.sort();
    pids
}

#[test]
fn lists_live_entries_of_both_known_layouts() {
    let live = LivePids::spawn(2);
    let mut board = Board::new();
    board.add_with(&entry(live.pid(0), b"debian"), &Layout::DEBIAN);
    board.add_with(&entry(live.pid(1), b"upstream"), &Layout::UPSTREAM);
    let scan = scan(&board);
    assert_eq!(scan.entries.len(), 2, "{:?}", scan.notes);
    let mut accounts: Vec<&[u8]> = scan.entries.iter().map(|e| &e.account[..]).collect();
    accounts.sort();
    assert_eq!(accounts, [&b"debian"[..], &b"upstream"[..]]);
    assert!(scan.notes.is_empty(), "{:?}", scan.notes);
}

#[test]
fn a_forced_layout_refuses_other_sizes() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    board.add_with(&entry(live.pid(0), b"debian"), &Layout::DEBIAN);
    board.add_with(&entry(live.pid(0), b"upstream"), &Layout::UPSTREAM);
    let custom = Layout::with_lengths(31, 512);
    board.add_with(&entry(live.pid(0), b"custom"), &custom);
    for (layout, account) in [
        (Layout::DEBIAN, &b"debian"[..]),
        (Layout::UPSTREAM, b"upstream"),
        (custom, b"custom"),
    ] {
        let options = ScanOptions {
            layout: Some(layout),
            ..ScanOptions::default()
        };
        let scan = Scoreboard::with_options(&board.dir, options)
            .scan()
            .unwrap();
        assert_eq!(scan.entries.len(), 1);
        assert_eq!(scan.entries[0].account, account);
        assert_eq!(scan.notes.len(), 2, "{:?}", scan.notes);
        for reason in skipped(&scan) {
            assert!(
                matches!(reason, SkipReason::WrongSize { expected, .. } if expected == layout.size),
                "{reason:?}"
            );
        }
    }
}

#[test]
fn skips_truncated_and_oversized_files() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let good = entry(live.pid(0), b"good")
        .to_bytes(&Layout::DEBIAN)
        .unwrap();
    let name = board.name();
    board.write_raw(&name, &good[..1000], 0o600);
    let name = board.name();
    board.write_raw(&name, &[], 0o600);
    let mut big = good.clone();
    big.push(0);
    let name = board.name();
    board.write_raw(&name, &big, 0o600);
    board.add(&entry(live.pid(0), b"good"));
    let scan = scan(&board);
    assert_eq!(scan.entries.len(), 1);
    assert_eq!(scan.entries[0].account, b"good");
    assert_eq!(scan.notes.len(), 3, "{:?}", scan.notes);
    let mut sizes: Vec<u64> = skipped(&scan)
        .into_iter()
        .map(|reason| match reason {
            SkipReason::UnknownSize { size } => size,
            other => panic!("{other:?}"),
        })
        .collect();
    sizes.sort();
    assert_eq!(sizes, [0, 1000, 1465]);
    assert!(scan.notes[0].to_string().contains("match no known layout"));
}

#[test]
fn skips_foreign_owned_files() {
    assert!(is_root(), "this test changes file owners: run it as root");
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let path = board.add(&entry(live.pid(0), b"foreign"));
    chown(&path, 4321, 4321);
    board.add(&entry(live.pid(0), b"root"));
    let scan = scan(&board);
    assert_eq!(scan.entries.len(), 1);
    assert_eq!(scan.entries[0].account, b"root");
    assert_eq!(skipped(&scan), [SkipReason::WrongOwner { uid: 4321 }]);
    assert!(
        scan.notes[0]
            .to_string()
            .ends_with(": skipped: owned by uid 4321"),
        "{:?}",
        scan.notes
    );
}

#[test]
fn root_owned_files_are_accepted_whoever_owns_the_directory() {
    assert!(is_root(), "this test changes file owners: run it as root");
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let path = board.add(&entry(live.pid(0), b"mine"));
    chown(&path, 0, 0);
    assert_eq!(scan(&board).entries.len(), 1);
    chown(&board.dir, 4321, 4321);
    assert_eq!(scan(&board).entries.len(), 1);
}

#[test]
fn never_follows_symbolic_links() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let target = board.tmp.path().join("elsewhere");
    fs::write(
        &target,
        entry(live.pid(0), b"linked")
            .to_bytes(&Layout::DEBIAN)
            .unwrap(),
    )
    .unwrap();
    fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let name = board.name();
    symlink(&target, board.path(&name)).unwrap();
    let scan = scan(&board);
    assert!(scan.entries.is_empty());
    assert_eq!(
        skipped(&scan),
        [SkipReason::SymbolicLink],
        "{:?}",
        scan.notes
    );
}

#[test]
fn skips_files_without_owner_read_and_write() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let bytes = entry(live.pid(0), b"m").to_bytes(&Layout::DEBIAN).unwrap();
    for mode in [0o400, 0o200, 0o000, 0o044] {
        let name = board.name();
        board.write_raw(&name, &bytes, mode);
    }
    // Extra bits do not matter, as in C.
    let name = board.name();
    board.write_raw(&name, &bytes, 0o644);
    let scan = scan(&board);
    assert_eq!(scan.entries.len(), 1);
    assert_eq!(scan.notes.len(), 4, "{:?}", scan.notes);
    let mut modes: Vec<u32> = skipped(&scan)
        .into_iter()
        .map(|reason| match reason {
            SkipReason::WrongMode { mode } => mode,
            other => panic!("{other:?}"),
        })
        .collect();
    modes.sort();
    assert_eq!(modes, [0o000, 0o044, 0o200, 0o400]);
}

#[test]
fn skips_directories_and_fifos_without_hanging() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let name = board.name();
    fs::create_dir(board.path(&name)).unwrap();
    let name = board.name();
    mkfifo(&board.path(&name));
    board.add(&entry(live.pid(0), b"ok"));
    let started = Instant::now();
    let scan = scan(&board);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(scan.entries.len(), 1);
    assert_eq!(
        skipped(&scan),
        [SkipReason::NotRegular, SkipReason::NotRegular],
        "{:?}",
        scan.notes
    );
}

#[test]
fn garbage_records_never_panic_and_the_rest_is_listed() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..50 {
        let mut bytes: Vec<u8> = (0..Layout::DEBIAN.size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        // Half of them with a live pid, so they get past the pid check.
        if i % 2 == 0 {
            bytes[4..8].copy_from_slice(&live.pid(0).to_ne_bytes());
        }
        let name = board.name();
        board.write_raw(&name, &bytes, 0o600);
    }
    board.add(&entry(live.pid(0), b"survivor"));
    let scan = Scoreboard::with_options(
        &board.dir,
        ScanOptions {
            remove_stale: false,
            ..ScanOptions::default()
        },
    )
    .scan()
    .unwrap();
    assert!(scan.entries.iter().any(|e| e.account == b"survivor"));
    // Rendering garbage never panics either.
    let sessions = pureftpd_systemd::ftpwho::report::sessions_from_entries(
        &scan.entries,
        1_700_000_000,
        true,
        &Default::default(),
    );
    for format in [
        pureftpd_systemd::ftpwho::report::Format::Verbose,
        pureftpd_systemd::ftpwho::report::Format::Shell,
        pureftpd_systemd::ftpwho::report::Format::Json,
    ] {
        let mut out = Vec::new();
        pureftpd_systemd::ftpwho::report::render(format, &sessions, &mut out).unwrap();
        assert!(!out.is_empty());
    }
}

#[test]
fn removes_stale_entries_and_does_not_list_them() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let gone = dead_pid();
    let stale = board.add(&entry(gone, b"gone"));
    board.add(&entry(live.pid(0), b"here"));
    let keep = ScanOptions {
        remove_stale: false,
        ..ScanOptions::default()
    };
    let scan = Scoreboard::with_options(&board.dir, keep).scan().unwrap();
    assert_eq!(scan.entries.len(), 1);
    assert!(stale.exists(), "remove_stale = false keeps the file");
    assert!(
        matches!(&scan.notes[..], [Note::Skipped { reason: SkipReason::Stale { pid }, .. }] if *pid == gone),
        "{:?}",
        scan.notes
    );

    let scan = scan_default(&board);
    assert_eq!(scan.entries.len(), 1);
    assert_eq!(scan.entries[0].account, b"here");
    assert!(!stale.exists(), "stale entry removed");
    assert!(
        matches!(&scan.notes[..], [Note::Removed { pid, .. }] if *pid == gone),
        "{:?}",
        scan.notes
    );
}

fn scan_default(board: &Board) -> pureftpd_systemd::ftpwho::scoreboard::Scan {
    scan(board)
}

#[test]
fn free_entries_are_not_listed_and_unknown_states_are() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let mut free = entry(live.pid(0), b"free");
    free.state = State::Free;
    board.add(&free);
    let mut odd = entry(live.pid(0), b"odd");
    odd.state = State::Unknown(42);
    board.add(&odd);
    let scan = scan(&board);
    assert_eq!(scan.entries.len(), 1);
    assert_eq!(scan.entries[0].state, State::Unknown(42));
    assert_eq!(scan.entries[0].state.label(), "ERR!");
    assert!(scan.notes.is_empty());
}

#[test]
fn ignores_other_names() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let bytes = entry(live.pid(0), b"x").to_bytes(&Layout::DEBIAN).unwrap();
    board.write_raw("Client-00000001", &bytes, 0o600);
    board.write_raw("xclient-00000001", &bytes, 0o600);
    board.write_raw("client-", &bytes, 0o600);
    let scan = scan(&board);
    assert_eq!(pids(&scan), vec![live.pid(0)]);
    assert!(scan.notes.is_empty());
}

#[test]
fn raw_names_are_kept_byte_for_byte() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let mut e = entry(live.pid(0), b"caf\xe9\xc3(\x01<&>|\\");
    e.filename = b"\xff\xfe/\xe2\x82\xac.txt".to_vec();
    board.add(&e);
    let scan = scan(&board);
    assert_eq!(scan.entries, vec![e]);
}

#[test]
fn a_writer_holding_its_lock_delays_the_read_but_never_hangs_it() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    let path = board.add(&entry(live.pid(0), b"locked"));
    // A process-wide write lock, as the server takes it; our scanner's
    // open-file-description lock conflicts with it.
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // SAFETY: a zeroed flock is valid; fields set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: valid descriptor and flock.
    assert_eq!(
        unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) },
        0
    );
    let options = ScanOptions {
        lock_timeout: Duration::from_millis(300),
        ..ScanOptions::default()
    };
    let started = Instant::now();
    let scan = Scoreboard::with_options(&board.dir, options)
        .scan()
        .unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "waited {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert_eq!(scan.entries.len(), 1, "reported from an unlocked read");
    assert!(
        matches!(
            &scan.notes[..],
            [Note::ReadUnlocked {
                reason: Unlocked::Held { timeout_ms: 300 },
                ..
            }]
        ),
        "{:?}",
        scan.notes
    );
    assert!(scan.notes[0]
        .to_string()
        .ends_with(": read without its lock: a writer held it for more than 300 ms"));
    drop(file);
    // Once released, the entry reads under the lock without a note.
    let scan = scan_default(&board);
    assert_eq!(scan.entries.len(), 1);
    assert!(scan.notes.is_empty(), "{:?}", scan.notes);
}

#[test]
fn a_missing_directory_is_an_error() {
    let board = Board::new();
    let missing = board.tmp.path().join("nope");
    match Scoreboard::new(&missing).scan() {
        Err(ScoreboardError::OpenDir { dir, source }) => {
            assert_eq!(dir, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected OpenDir, got {other:?}"),
    }
    assert!(Scoreboard::new(&missing).count_sessions(b"x").is_err());
}

#[test]
fn counts_sessions_like_the_server() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    // The server reads the pid from the file name (past "client-" and one
    // more character), so names carry the live pid here.
    let pid = live.pid(0);
    let named = |n: u32| format!("client-{:08}", n);
    let write = |board: &mut Board, n: u32, account: &[u8]| {
        let bytes = entry(pid, account).to_bytes(&Layout::DEBIAN).unwrap();
        board.write_raw(&named(n), &bytes, 0o600)
    };
    let _ = write(&mut board, pid as u32, b"Alice");
    let _ = write(&mut board, pid as u32 + 100_000_000, b"ALICE");
    let _ = write(&mut board, pid as u32 + 200_000_000, b"bob");
    // A short file counts as a session whatever its account.
    board.write_raw(&format!("client-9{:08}", pid), b"short", 0o600);
    // A stale name is removed and not counted.
    let dead = dead_pid();
    let stale = write(&mut board, dead as u32, b"alice");
    let sb = Scoreboard::new(&board.dir);
    assert_eq!(sb.count_sessions(b"alice").unwrap(), 3);
    assert!(!stale.exists());
    assert_eq!(sb.count_sessions(b"BOB").unwrap(), 2);
    assert_eq!(sb.count_sessions(b"carol").unwrap(), 1);
}

#[test]
fn large_scoreboards_find_stale_entries_too() {
    // From 32 names on, pids are checked against one listing of /proc.
    let live = LivePids::spawn(3);
    let mut board = Board::new();
    for i in 0..40 {
        board.add(&entry(live.pid(i), format!("user{i}").as_bytes()));
    }
    let stale = board.add(&entry(dead_pid(), b"gone"));
    let mut special = entry(0, b"pid0");
    special.state = State::Upload;
    board.add(&special);
    let scan = scan(&board);
    assert_eq!(scan.entries.len(), 41, "{:?}", scan.notes);
    assert!(!scan.entries.iter().any(|e| e.account == b"gone"));
    assert!(!stale.exists());
    assert_eq!(scan.notes.len(), 1, "{:?}", scan.notes);
    assert!(
        matches!(scan.notes[0], Note::Removed { .. }),
        "{:?}",
        scan.notes
    );
}

#[test]
fn long_file_names_are_read_whole() {
    let live = LivePids::spawn(1);
    let mut board = Board::new();
    for len in [0usize, 1, 63, 64, 65, 129, 1000, 1023, 2000] {
        let mut e = entry(live.pid(0), format!("len{len}").as_bytes());
        e.filename = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        board.add(&e);
    }
    let scan = scan(&board);
    assert_eq!(scan.entries.len(), 9);
    for e in &scan.entries {
        let len: usize = std::str::from_utf8(&e.account[3..])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(e.filename.len(), len.min(1023), "{len}");
    }
}
