//! The responder and its client, run as the real binaries: protocol over
//! the socket, concurrency, authorization, output against the C
//! `pure-ftpwho`, idle exit and socket activation.

mod common;
#[path = "support/ftpwhod.rs"]
mod support;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use pureftpd_systemd::ftpwho::query::protocol::{ErrorCode, Response};
use serde_json::Value;
use support::*;

fn answer(line: &str) -> Response {
    Response::from_line(line.as_bytes()).unwrap()
}

fn error_code(lines: &[String]) -> ErrorCode {
    assert_eq!(lines.len(), 1, "{lines:?}");
    let r = answer(&lines[0]);
    assert!(!r.ok);
    r.error.unwrap().code
}

#[test]
fn requests_are_answered_in_order_and_mistakes_get_coded_errors() {
    let fixture = Fixture::varied();
    let responder = Responder::start(fixture.path(), &[]);
    let lines = responder.raw(
        b"{\"v\":1,\"op\":\"ping\"}\n\
          {\"v\":1,\"op\":\"count\",\"user\":\"ALICE\"}\n\
          not json\n\
          {\"v\":2,\"op\":\"ping\"}\n\
          {\"v\":1,\"op\":\"reboot\"}\n\
          {\"v\":1,\"op\":\"list\",\"colour\":\"red\"}\n\
          {\"v\":1,\"op\":\"list\",\"format\":\"csv\"}\n\
          \n\
          {\"v\":1,\"op\":\"count\"}",
    );
    let got: Vec<Response> = lines.iter().map(|l| answer(l)).collect();
    assert_eq!(got.len(), 9, "{lines:?}");
    assert!(got[0].ok && got[0].server.as_deref().unwrap().starts_with("ftpwhod "));
    // Counted as the server counts at login: case-insensitive.
    assert_eq!(got[1].count, Some(2));
    let codes: Vec<ErrorCode> = got[2..8]
        .iter()
        .map(|r| r.error.as_ref().unwrap().code)
        .collect();
    assert_eq!(
        codes,
        [
            ErrorCode::Malformed,
            ErrorCode::UnknownVersion,
            ErrorCode::UnknownOp,
            ErrorCode::UnknownField,
            ErrorCode::BadValue,
            ErrorCode::Malformed,
        ]
    );
    // The last request had no newline: answered at end of input. The free
    // slot is not a session.
    assert_eq!(got[8].count, Some(6));
}

#[test]
fn oversize_requests_get_an_answer_then_the_connection_closes() {
    let fixture = Fixture::empty();
    let responder = Responder::start(fixture.path(), &[]);
    let mut big = b"{\"v\":1,\"op\":\"ping\",\"user\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 100_000));
    big.extend_from_slice(b"\"}\n{\"v\":1,\"op\":\"ping\"}\n");
    assert_eq!(error_code(&responder.raw(&big)), ErrorCode::TooLarge);
    // Exactly at the bound (4096 bytes with the newline) is fine.
    let mut line = b"{\"v\":1,\"op\":\"ping\",\"user\":\"".to_vec();
    let pad = 4096 - line.len() - 3;
    line.extend(std::iter::repeat_n(b'y', pad));
    line.extend_from_slice(b"\"}\n");
    assert_eq!(line.len(), 4096);
    let lines = responder.raw(&line);
    assert!(answer(&lines[0]).ok, "{lines:?}");
    line.insert(30, b'y');
    assert_eq!(error_code(&responder.raw(&line)), ErrorCode::TooLarge);
}

/// Whatever the bytes of a request line, exactly one answer line comes
/// back, and the responder lives on.
#[test]
fn any_request_line_gets_exactly_one_answer() {
    let fixture = Fixture::empty();
    let responder = Responder::start(fixture.path(), &["--request-timeout", "2"]);
    let lines = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        "\\{\"v\":[0-9],\"op\":\"[a-z]{0,6}\"(,\"[a-z]{1,7}\":(null|true|1|\"[a-z]{0,5}\"))?\\}"
            .prop_map(String::into_bytes),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    runner
        .run(&lines, |bytes| {
            let mut line: Vec<u8> = bytes.into_iter().filter(|&b| b != b'\n').collect();
            line.push(b'\n');
            let lines = responder.raw(&line);
            prop_assert_eq!(lines.len(), 1, "{:?}", lines);
            let response = Response::from_line(lines[0].as_bytes()).unwrap();
            prop_assert_eq!(response.ok, response.error.is_none());
            let ping = responder.raw(b"{\"v\":1,\"op\":\"ping\"}\n");
            prop_assert!(answer(&ping[0]).ok);
            Ok(())
        })
        .unwrap();
}

#[test]
fn concurrent_clients_all_get_the_same_answer() {
    let fixture = Fixture::varied();
    let responder = Responder::start(fixture.path(), &[]);
    let socket = responder.socket.clone();
    let threads: Vec<_> = (0..12)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                (0..15)
                    .map(|_| {
                        let lines = raw_exchange(
                            &socket,
                            b"{\"v\":1,\"op\":\"list\",\"format\":\"shell\",\"numeric\":true}\n",
                        );
                        assert_eq!(lines.len(), 1);
                        let r = answer(&lines[0]);
                        assert!(r.ok, "{r:?}");
                        r.output_bytes()
                            .unwrap()
                            .unwrap()
                            .split(|&b| b == b'\n')
                            .count()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        // Six sessions, six lines plus the empty piece after the last newline.
        assert!(t.join().unwrap().iter().all(|&n| n == 7));
    }
}

#[test]
fn a_silent_client_does_not_block_others_and_gets_a_timeout() {
    let fixture = Fixture::varied();
    let responder = Responder::start(fixture.path(), &["--request-timeout", "3"]);
    let silent = UnixStream::connect(&responder.socket).unwrap();
    let half = UnixStream::connect(&responder.socket).unwrap();
    (&half).write_all(b"{\"v\":1,").unwrap();
    let started = Instant::now();
    let out = responder.query(&["-s", "-n"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.split(|&b| b == b'\n').count(), 7);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the second client waited for the silent one"
    );
    for mut stream in [&silent, &half] {
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        assert_eq!(
            answer(&text).error.unwrap().code,
            ErrorCode::Timeout,
            "{text}"
        );
    }
}

#[test]
fn connections_over_the_bound_are_told_busy() {
    let fixture = Fixture::empty();
    let responder = Responder::start(
        fixture.path(),
        &["--max-connections", "2", "--request-timeout", "5"],
    );
    // Once `a` is being served (its own stats answer says two connections
    // are open, and nothing else connects meanwhile) ...
    let _a = UnixStream::connect(&responder.socket).unwrap();
    let started = Instant::now();
    loop {
        let lines = responder.raw(b"{\"v\":1,\"op\":\"stats\"}\n");
        let r = answer(&lines[0]);
        if r.ok && r.stats.unwrap().active_connections == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "a is never served"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // ... and then `b` is too, a third connection is told to come back later.
    let _b = UnixStream::connect(&responder.socket).unwrap();
    loop {
        let lines = responder.raw(b"{\"v\":1,\"op\":\"ping\"}\n");
        if !answer(&lines[0]).ok {
            assert_eq!(error_code(&lines), ErrorCode::Busy);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(8), "never busy");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = responder.query(&["--ping"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("busy"));
    drop((_a, _b));
    let started = Instant::now();
    while !responder.query(&["--ping"]).status.success() {
        assert!(started.elapsed() < Duration::from_secs(4), "still busy");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_non_member_is_refused_and_the_refusal_is_logged() {
    let fixture = Fixture::varied();
    let gid = test_group();
    let responder = Responder::start(fixture.path(), &["--group", TEST_GROUP]);
    for args in [
        &["-s"][..],
        &["--count", "alice"],
        &["--stats"],
        &["--json"],
    ] {
        let out = run_query(&responder.socket, args, Some(&Creds::nobody()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(stderr.contains("permission denied"), "{stderr}");
        assert!(stderr.contains(TEST_GROUP), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    // Another group does not help; ping needs no membership.
    let other = Creds {
        groups: vec![gid + 1],
        ..Creds::nobody()
    };
    assert_eq!(
        run_query(&responder.socket, &["-s"], Some(&other))
            .status
            .code(),
        Some(4)
    );
    assert!(run_query(&responder.socket, &["--ping"], Some(&other))
        .status
        .success());
    // The log entry names the peer's uid and pid.
    let mut child = Command::new("setpriv")
        .args(setpriv(&Creds::nobody()))
        .arg(common::reachable(QUERY))
        .arg("--socket")
        .arg(&responder.socket)
        .arg("-x")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert_eq!(child.wait().unwrap().code(), Some(4));
    let log = responder.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("PEER_PID={pid}")))
        .unwrap_or_else(|| panic!("no log line for pid {pid}:\n{log}"));
    assert!(line.contains("PEER_UID=65534"), "{line}");
    assert!(
        line.contains("MESSAGE_ID=\"5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a70\""),
        "{line}"
    );
}

#[test]
fn the_socket_mode_refuses_before_the_responder_does() {
    let fixture = Fixture::empty();
    let responder = Responder::start(fixture.path(), &["--group", TEST_GROUP]);
    test_group();
    std::fs::set_permissions(
        &responder.socket,
        std::os::unix::fs::PermissionsExt::from_mode(0o660),
    )
    .unwrap();
    let out = run_query(&responder.socket, &["-s"], Some(&Creds::nobody()));
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"));
}

#[test]
fn members_see_what_root_sees() {
    let fixture = Fixture::varied();
    let gid = test_group();
    let responder = Responder::start(fixture.path(), &["--group", TEST_GROUP]);
    let supplementary = Creds {
        groups: vec![gid],
        ..Creds::nobody()
    };
    let primary = Creds {
        gid,
        ..Creds::nobody()
    };
    for creds in [supplementary, primary] {
        for args in [&["-s", "-n"][..], &["-x", "-n"], &["--count", "bob"]] {
            let (root, member) = same_second(
                || responder.query(args).stdout,
                || {
                    let out = run_query(&responder.socket, args, Some(&creds));
                    assert!(out.status.success(), "{creds:?} {args:?}: {out:?}");
                    out.stdout
                },
            );
            assert!(!root.is_empty());
            assert_eq!(root, member, "{creds:?} {args:?}");
        }
    }
}

#[test]
fn the_per_user_view_shows_only_ones_own_sessions() {
    let fixture = Fixture::varied();
    test_group();
    let responder = Responder::start(fixture.path(), &["--group", TEST_GROUP, "--per-user-view"]);
    let nobody = Some(Creds::nobody());
    let out = run_query(&responder.socket, &["-s", "-n"], nobody.as_ref());
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("|nobody|"), "{text}");
    let out = run_query(&responder.socket, &["--count", "nobody"], nobody.as_ref());
    assert_eq!(out.stdout, b"1\n");
    for args in [&["--user", "alice"][..], &["--count", "bob"], &["--stats"]] {
        let out = run_query(&responder.socket, args, nobody.as_ref());
        assert_eq!(out.status.code(), Some(4), "{args:?}");
    }
    // Root still sees everyone.
    let out = responder.query(&["-s", "-n"]);
    assert_eq!(out.stdout.split(|&b| b == b'\n').count(), 7);
}

/// The C tool's options for each format of the responder.
const FORMATS: [(&str, &[&str]); 7] = [
    ("text", &[]),
    ("verbose", &["-v"]),
    ("html", &["-w"]),
    ("html-embedded", &["-W"]),
    ("xml", &["-x"]),
    ("plist", &["-p"]),
    ("shell", &["-s"]),
];

#[test]
fn output_equals_the_c_pure_ftpwho_and_ours_in_every_format() {
    let fixture = Fixture::varied();
    let responder = Responder::start(fixture.path(), &[]);
    for (name, flags) in FORMATS {
        let mut args = flags.to_vec();
        args.push("-n");
        let (c, query) = same_second(
            || c_pure_ftpwho(fixture.path(), &args),
            || {
                let out = responder.query(&args);
                assert!(out.status.success(), "{name}: {out:?}");
                out.stdout
            },
        );
        assert!(c.len() > 100, "{name}: {}", String::from_utf8_lossy(&c));
        assert_eq!(
            String::from_utf8_lossy(&query),
            String::from_utf8_lossy(&c),
            "{name}"
        );
        assert_eq!(query, c, "{name}");
        let (ours, query) = same_second(
            || our_pure_ftpwho(fixture.path(), &args),
            || responder.query(&args).stdout,
        );
        assert_eq!(query, ours, "{name}");
    }
    // JSON: the same document as `pure-ftpwho --json`.
    let (ours, query) = same_second(
        || {
            serde_json::from_slice::<Value>(&our_pure_ftpwho(fixture.path(), &["--json", "-n"]))
                .unwrap()
        },
        || serde_json::from_slice::<Value>(&responder.query(&["--json", "-n"]).stdout).unwrap(),
    );
    assert_eq!(ours.as_array().unwrap().len(), 6);
    assert_eq!(query, ours);
    // Filters, as pure-ftpwho applies them.
    let (ours, query) = same_second(
        || {
            our_pure_ftpwho(
                fixture.path(),
                &["-s", "-n", "--user", "alice", "--state", "upload"],
            )
        },
        || {
            responder
                .query(&["-s", "-n", "--user", "alice", "--state", "upload"])
                .stdout
        },
    );
    assert_eq!(query, ours);
    assert_eq!(query.split(|&b| b == b'\n').count(), 2);
}

#[test]
fn host_names_are_resolved_as_the_c_tool_resolves_them() {
    let mut fixture = Fixture::empty();
    let mut e = entry(
        pureftpd_systemd::ftpwho::scoreboard::State::Idle,
        b"alice",
        "127.0.0.1:40001",
        "127.0.0.1:21",
        61,
    );
    e.filename = b"x".to_vec();
    fixture.add(e);
    let responder = Responder::start(fixture.path(), &[]);
    for flags in [&[][..], &["-v"], &["-s"]] {
        let (c, query) = same_second(
            || c_pure_ftpwho(fixture.path(), flags),
            || responder.query(flags).stdout,
        );
        assert_eq!(String::from_utf8_lossy(&query), String::from_utf8_lossy(&c));
    }
}

#[test]
fn stale_entries_are_left_alone() {
    let mut fixture = Fixture::varied();
    let stale = fixture.add_stale();
    let responder = Responder::start(fixture.path(), &[]);
    let out = responder.query(&["-s", "-n"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ghost"));
    assert!(stale.exists(), "the read-only responder removed a file");
    let out = responder.query(&["--stats"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("sessions: 6\n"), "{text}");
    assert!(text.contains("skipped: 1\n"), "{text}");
    assert!(text.contains("download: 2\n"), "{text}");
    assert!(text.contains("users: 5\n"), "{text}");
}

#[test]
fn openmetrics_passes_promtool() {
    let fixture = Fixture::varied();
    let responder = Responder::start(fixture.path(), &["--top-users", "2"]);
    let out = responder.query(&["--openmetrics"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    for expected in [
        "pureftpd_sessions{state=\"idle\"} 2\n",
        "pureftpd_sessions{state=\"download\"} 2\n",
        "pureftpd_sessions{state=\"upload\"} 1\n",
        "pureftpd_users 5\n",
        "pureftpd_user_sessions{user=\"alice\"} 2\n",
        "pureftpd_transfer_bytes{state=\"upload\"} 2999000\n",
    ] {
        assert!(text.contains(expected), "{expected} missing in\n{text}");
    }
    assert_eq!(text.matches("pureftpd_user_sessions{").count(), 2);
    assert!(text.ends_with("# EOF\n"));
    let checked = promtool_check(&out.stdout);
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // promtool does fail on broken input.
    assert!(!promtool_check(b"# TYPE x gauge\nx{a=\"b} 1\n")
        .status
        .success());
}

/// `promtool check metrics` on `text`.
fn promtool_check(text: &[u8]) -> std::process::Output {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed by scripts/install-deps");
    promtool.stdin.take().unwrap().write_all(text).unwrap();
    promtool.wait_with_output().unwrap()
}

#[test]
fn exit_codes_say_what_went_wrong() {
    let dir = open_tempdir();
    let out = run_query(&dir.path().join("nothing.sock"), &["-s"], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
    // A responder whose scoreboard is missing answers with an error.
    let responder = Responder::start(&dir.path().join("no-scoreboard"), &[]);
    let out = responder.query(&["-s"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("scoreboard"), "{stderr}");
    let out = responder.query(&["-s", "--state", "busy"]);
    assert_eq!(out.status.code(), Some(2));
    let out = responder.query(&["--ping"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ftpwhod "));
}

#[test]
fn watch_redraws_on_a_terminal_and_appends_otherwise() {
    let fixture = Fixture::varied();
    let responder = Responder::start(fixture.path(), &[]);
    let batch = responder.query(&["-s", "-n", "--watch", "0.1", "--iterations", "3"]);
    assert!(batch.status.success());
    assert_eq!(batch.stdout.split(|&b| b == b'\n').count(), 3 * 6 + 1);
    assert!(!batch.stdout.contains(&0x1b));
    // `script` gives the client a terminal.
    let command = format!(
        "{QUERY} --socket {} -s -n --watch 0.1 --iterations 2",
        responder.socket.display()
    );
    let tty = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(tty.status.success(), "{tty:?}");
    let text = String::from_utf8_lossy(&tty.stdout);
    assert_eq!(text.matches("\x1b[H\x1b[2J").count(), 2, "{text:?}");
}

#[test]
fn the_responder_exits_when_idle() {
    let fixture = Fixture::empty();
    let mut responder = Responder::start(fixture.path(), &["--idle-timeout", "2"]);
    let last_client = Instant::now();
    assert!(responder.query(&["--ping"]).status.success());
    let status = loop {
        if let Some(status) = responder.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            last_client.elapsed() < Duration::from_secs(20),
            "still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    assert!(
        last_client.elapsed() >= Duration::from_secs(2),
        "exited early"
    );
    assert!(!responder.socket.exists(), "the socket it bound is removed");
    assert!(responder
        .log_text()
        .contains("idle, exiting after 1 queries"));
}

/// As systemd starts it: the listening socket passed in `LISTEN_FDS`.
/// A member of the group, not root, sees the lines root sees with the C
/// `pure-ftpwho -s`.
#[test]
fn socket_activation_serves_a_member_then_exits_when_idle() {
    let fixture = Fixture::varied();
    let gid = test_group();
    let dir = open_tempdir();
    let socket = dir.path().join("pure-ftpwho.sock");
    let launcher = [
        OsStr::new("systemd-socket-activate"),
        "-l".as_ref(),
        socket.as_ref(),
    ];
    let mut activator = KillOnDrop(
        ftpwhod_command(launcher, dir.path(), fixture.path())
            .args(["--group", TEST_GROUP, "--idle-timeout", "1"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&socket);
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let member = Creds {
        groups: vec![gid],
        ..Creds::nobody()
    };
    let (c, query) = same_second(
        || c_pure_ftpwho(fixture.path(), &["-s"]),
        || {
            let out = run_query(&socket, &["-s"], Some(&member));
            assert!(out.status.success(), "{out:?}");
            out.stdout
        },
    );
    assert_eq!(query, c);
    assert_eq!(
        run_query(&socket, &["-s"], Some(&Creds::nobody()))
            .status
            .code(),
        Some(4)
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = activator.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the socket-activated responder did not exit when idle"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    activator
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("idle, exiting after"), "{stderr}");
}

/// Under systemd: `READY=1` with a status, `STATUS=` as queries are
/// served, `WATCHDOG=1` at half the watchdog interval, `STOPPING=1` at the
/// idle exit.
#[test]
fn the_service_manager_hears_ready_status_watchdog_and_stopping() {
    let fixture = Fixture::varied();
    let dir = open_tempdir();
    let notify_path = dir.path().join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let socket = dir.path().join("ftpwho.sock");
    let mut child = ftpwhod_command(NO_LAUNCHER, dir.path(), fixture.path())
        .arg("--listen")
        .arg(&socket)
        .args(["--idle-timeout", "1.5"])
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut messages = Vec::new();
    let receive = |messages: &mut Vec<String>, child: &mut std::process::Child| {
        let mut buf = [0u8; 4096];
        // A signal handled meanwhile (other tests of this process start
        // and stop children) interrupts the wait: wait again.
        let received = loop {
            match notify.recv(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match received {
            Ok(n) => messages.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) => {
                let exited = child.try_wait();
                let _ = child.kill();
                panic!("no notification ({e}); responder: {exited:?}; so far: {messages:?}");
            }
        }
    };
    receive(&mut messages, &mut child);
    assert!(messages[0].contains("READY=1"), "{messages:?}");
    assert!(
        messages[0].contains("STATUS=0 queries served"),
        "{messages:?}"
    );
    wait_for_socket(&socket);
    let out = run_query(&socket, &["-s", "-n"], None);
    assert!(out.status.success());
    while !messages.iter().any(|m| m.contains("STOPPING=1")) {
        receive(&mut messages, &mut child);
    }
    assert!(child.wait().unwrap().success());
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("STATUS=1 queries served")),
        "{messages:?}"
    );
    // 1.5 s at a 100 ms ping interval, whatever the scheduling.
    let pings = messages.iter().filter(|m| m.trim() == "WATCHDOG=1").count();
    assert!(pings >= 5, "{pings} watchdog pings: {messages:?}");
}

#[test]
fn configuration_errors_name_the_file_and_line() {
    let dir = open_tempdir();
    let config = dir.path().join("ftpwhod.toml");
    std::fs::write(&config, "group = \"ftpwho\"\nidle_timeout = \"soon\"\n").unwrap();
    let out = Command::new(FTPWHOD)
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", config.display())),
        "{stderr}"
    );
    // Drop-ins override the main file; the command line overrides both.
    std::fs::write(&config, "group = \"staff\"\ntop_users = 3\n").unwrap();
    std::fs::create_dir(dir.path().join("ftpwhod.d")).unwrap();
    std::fs::write(dir.path().join("ftpwhod.d/10-x.toml"), "top_users = 4\n").unwrap();
    let out = Command::new(FTPWHOD)
        .arg("--config")
        .arg(&config)
        .args(["--check-config", "--idle-timeout", "7"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("group = \"staff\"\n"), "{text}");
    assert!(text.contains("top_users = 4\n"), "{text}");
    assert!(text.contains("idle_timeout = 7\n"), "{text}");
    // Without a socket from systemd nor --listen: a usage error.
    let out = Command::new(FTPWHOD)
        .arg("--config")
        .arg(&config)
        .env_remove("LISTEN_FDS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no listening socket"));
}

/// The default /etc/ftpwhod.toml may be absent, but a file named with
/// --config must exist: a typo must not silently give the defaults.
#[test]
fn an_explicit_configuration_file_must_exist() {
    let dir = open_tempdir();
    let missing = dir.path().join("missing.toml");
    // Its drop-in directory being there does not stand in for it.
    std::fs::create_dir(dir.path().join("missing.d")).unwrap();
    std::fs::write(dir.path().join("missing.d/10-x.toml"), "top_users = 4\n").unwrap();
    for extra in [&["--check-config"][..], &["--listen", "unused.sock"]] {
        let out = Command::new(FTPWHOD)
            .arg("--config")
            .arg(&missing)
            .args(extra)
            .current_dir(dir.path())
            .env_remove("LISTEN_FDS")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr,
            format!(
                "ftpwhod: {}: configuration file not found\n",
                missing.display()
            )
        );
    }
    assert!(!dir.path().join("unused.sock").exists());
    // Present and empty: the defaults, with the drop-ins over them.
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let out = Command::new(FTPWHOD)
        .arg("--config")
        .arg(&empty)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("group = \"ftpwho\"\n"), "{text}");
    assert!(text.contains("top_users = 10\n"), "{text}");
}

#[test]
fn count_and_stats_from_the_command_line() {
    let fixture = Fixture::varied();
    let responder = Responder::start(fixture.path(), &[]);
    let count = |args: &[&str]| String::from_utf8(responder.query(args).stdout).unwrap();
    assert_eq!(count(&["--count", "Alice"]), "2\n");
    assert_eq!(count(&["--count", "alice", "--state", "upload"]), "1\n");
    assert_eq!(count(&["--count", "nobody-at-all"]), "0\n");
    let out = responder.query(&["--stats", "--json"]);
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["sessions"], 6);
    assert_eq!(stats["upload"], 1);
    assert_eq!(stats["idle"], 2);
    assert!(stats["requests"].as_u64().unwrap() >= 4);
}

/// As the packaged unit runs it: not root, with only the capability to
/// bypass read permission checks, behind a socket passed by systemd.
#[test]
fn an_unprivileged_responder_with_read_search_reads_a_root_only_scoreboard() {
    let mut fixture = Fixture::varied();
    let stale = fixture.add_stale();
    std::fs::set_permissions(
        fixture.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let dir = open_tempdir();
    let socket = dir.path().join("pure-ftpwho.sock");
    let mut launcher = vec![
        "systemd-socket-activate".into(),
        "-l".into(),
        socket.clone().into_os_string(),
        "setpriv".into(),
    ];
    launcher.extend(setpriv(&Creds::nobody()).into_iter().map(Into::into));
    launcher.push("--inh-caps=+dac_read_search".into());
    launcher.push("--ambient-caps=+dac_read_search".into());
    let _activator = KillOnDrop(
        ftpwhod_command(launcher, dir.path(), fixture.path())
            .args(["--idle-timeout", "30"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&socket);
    let out = run_query(&socket, &["-s", "-n"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.split(|&b| b == b'\n').count(), 7);
    assert!(stale.exists(), "the responder removed a stale entry");
    // (The C tool removes it.)
    let (c, query) = same_second(
        || c_pure_ftpwho(fixture.path(), &["-s", "-n"]),
        || run_query(&socket, &["-s", "-n"], None).stdout,
    );
    assert_eq!(query, c);
}

/// `--check-config` prints the merged settings in the configuration's own
/// syntax: its output, used as the configuration, prints the same.
#[test]
fn check_config_output_reads_back_the_same() {
    let dir = open_tempdir();
    let config = dir.path().join("ftpwhod.toml");
    let check = || {
        let out = Command::new(FTPWHOD)
            .arg("--config")
            .arg(&config)
            .arg("--check-config")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for layout in [
        "\"debian\"",
        "\"upstream\"",
        "\"auto\"",
        "{ max_user_length = 32, filename_len = 4096 }",
    ] {
        std::fs::write(&config, format!("layout = {layout}\nidle_timeout = 0\n")).unwrap();
        let first = check();
        assert!(first.contains(&format!("layout = {layout}\n")), "{first}");
        std::fs::write(&config, &first).unwrap();
        assert_eq!(check(), first);
    }
}

/// Whether an answer line is a `busy` refusal.
fn is_busy(line: &str) -> bool {
    answer(line)
        .error
        .is_some_and(|e| e.code == ErrorCode::Busy)
}

/// Clients that reconnect at once after their answer never count twice:
/// as many closed-loop clients as `max_connections`, each closing as soon
/// as it has its answer line (as `ftpwho-query` does), are all served.
#[test]
fn clients_up_to_the_limit_are_never_told_busy() {
    let fixture = Fixture::many(300);
    let responder = Responder::start(
        fixture.path(),
        &["--max-connections", "16", "--request-timeout", "30"],
    );
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let socket = responder.socket.clone();
            std::thread::spawn(move || {
                let mut busy = 0;
                for i in 0..60 {
                    let format = if i % 2 == 0 { "json" } else { "shell" };
                    let stream = UnixStream::connect(&socket).unwrap();
                    let line = pureftpd_systemd::ftpwho::query::client::exchange(
                        &stream,
                        &list_line(format),
                    )
                    .unwrap();
                    drop(stream);
                    let line = String::from_utf8(line).unwrap();
                    if is_busy(&line) {
                        busy += 1;
                    } else {
                        assert!(answer(&line).ok, "{line}");
                    }
                }
                busy
            })
        })
        .collect();
    let busy: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(
        busy,
        0,
        "busy answers below max_connections: {}",
        responder.log_text()
    );
}

/// Perl: opens ARGV[1] connections to ARGV[0] and keeps them open, idle.
const IDLE_CONNECTIONS: &str = r#"
    my @c;
    for (1 .. $ARGV[1]) {
        my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect: $!";
        push @c, $s;
    }
    print "open\n"; STDOUT->flush(); sleep 60;
"#;

/// Idle connections of one user take at most its share of the slots:
/// everyone else, root included, is still served.
#[test]
fn idle_connections_of_one_user_leave_slots_for_the_others() {
    let fixture = Fixture::varied();
    let responder = Responder::start(
        fixture.path(),
        &[
            "--max-connections",
            "8",
            "--max-connections-per-user",
            "2",
            "--request-timeout",
            "20",
        ],
    );
    let socket = responder.socket.to_str().unwrap();
    let mut idle = perl_as(&Creds::nobody(), IDLE_CONNECTIONS, &[socket, "8"]);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(idle.0.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "open\n");
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let out = responder.query(&["-s", "-n"]);
        assert!(out.status.success(), "{out:?}");
    }
    let out = run_query(&responder.socket, &["--ping"], Some(&Creds::nobody()));
    assert_eq!(
        out.status.code(),
        Some(1),
        "nobody has no slot left: {out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("busy"));
}

/// Perl: sends ARGV[1] copies of the request ARGV[2] on one connection and
/// prints how many answers came back.
const MANY_REQUESTS: &str = r#"
    my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect: $!";
    print $s ($ARGV[2] . "\n") x $ARGV[1];
    shutdown($s, 1);
    my $n = 0; $n++ while <$s>;
    print "$n\n";
"#;

/// A refused peer asking again and again cannot flood the journal: ten
/// warnings per ten seconds, then one telling how many were left out.
#[test]
fn refusals_are_logged_at_a_bounded_rate_with_the_count_suppressed() {
    let fixture = Fixture::varied();
    test_group();
    let responder = Responder::start(fixture.path(), &["--group", TEST_GROUP]);
    let socket = responder.socket.to_str().unwrap();
    let mut child = perl_as(
        &Creds::nobody(),
        MANY_REQUESTS,
        &[socket, "300", r#"{"v":1,"op":"list"}"#],
    );
    let status = child.0.wait().unwrap();
    let mut out = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success());
    assert_eq!(out, "300\n", "every request is still answered");
    let warnings = |log: &str| {
        log.lines()
            .filter(|l| l.contains("5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a70"))
            .count()
    };
    let log = responder.log_text();
    assert!(warnings(&log) >= 1, "{log}");
    assert!(warnings(&log) <= 10, "{} warnings:\n{log}", warnings(&log));
    let started = Instant::now();
    loop {
        let log = responder.log_text();
        if log.contains("290 refusals not logged") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the count of suppressed refusals is never told:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A client that never reads its (large) answer holds neither a worker
/// nor the others: they are answered at once, and memory stays bounded
/// although users choose the names that make answers large.
#[test]
fn clients_that_never_read_hold_up_nobody_and_memory_stays_bounded() {
    let long_name = vec![1u8; 1023];
    let fixture = Fixture::crafted(4000, |i| {
        let mut e = entry(
            pureftpd_systemd::ftpwho::scoreboard::State::Download,
            b"mallory",
            "192.0.2.9:4000",
            "192.0.2.1:21",
            i as i64,
        );
        e.filename = long_name.clone();
        e
    });
    let responder = Responder::start(fixture.path(), &["--request-timeout", "30"]);
    let pid = responder.child.id();
    let mut silent = Vec::new();
    for _ in 0..12 {
        let stream = UnixStream::connect(&responder.socket).unwrap();
        (&stream).write_all(&list_line("json")).unwrap();
        silent.push(stream);
        std::thread::sleep(Duration::from_millis(30));
    }
    let started = Instant::now();
    let lines = responder.raw(b"{\"v\":1,\"op\":\"count\"}\n");
    assert_eq!(answer(&lines[0]).count, Some(4000), "{lines:?}");
    let out = responder.query(&["-s", "-n", "--state", "idle"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the silent clients held the others up"
    );
    let peak = vm_kib(pid, "VmHWM:");
    assert!(
        peak < 96 * 1024,
        "peak RSS {peak} KiB with 12 silent clients"
    );
    drop(silent);
}

/// One deadline covers the request and its whole answer: a client that
/// reads a little now and then is cut off when it passes.
#[test]
fn a_slow_reader_is_cut_off_at_the_request_deadline() {
    let fixture = Fixture::crafted(3000, |i| {
        let mut e = entry(
            pureftpd_systemd::ftpwho::scoreboard::State::Upload,
            b"slow",
            "192.0.2.9:4000",
            "192.0.2.1:21",
            i as i64,
        );
        e.filename = vec![b'f'; 1000];
        e
    });
    let responder = Responder::start(fixture.path(), &["--request-timeout", "2"]);
    let mut stream = UnixStream::connect(&responder.socket).unwrap();
    stream.write_all(&list_line("shell")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 8192];
    let mut total = 0;
    // A little now and then, past the deadline ...
    while started.elapsed() < Duration::from_secs(4) {
        total += stream.read(&mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    // ... then whatever is left: only what the socket still holds, the
    // responder has closed its end.
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    total += rest.len();
    assert!(total > 0);
    assert!(total < 3000 * 1000, "the whole answer came: {total} bytes");
    assert!(!rest.ends_with(b"\n"), "the answer was complete");
}

/// Durations the clock cannot add, or below its resolution, are
/// configuration errors (status 2), not a crash nor "never".
#[test]
fn unusable_durations_are_configuration_errors() {
    let fixture = Fixture::empty();
    let dir = open_tempdir();
    for (option, value) in [
        ("--idle-timeout", "9223372036854775807"),
        ("--request-timeout", "9223372036854775807"),
        ("--idle-timeout", "1e-10"),
        ("--lock-budget", "1e300"),
    ] {
        let out = ftpwhod_command(NO_LAUNCHER, dir.path(), fixture.path())
            .arg("--listen")
            .arg(dir.path().join("never.sock"))
            .args([option, value])
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{option} {value}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("invalid configuration"), "{stderr}");
        assert!(!dir.path().join("never.sock").exists());
    }
    // In a file too.
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, "idle_timeout = 1e-10\n").unwrap();
    let out = Command::new(FTPWHOD)
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 0.001"));
}

/// In the per-user view, `count` matches account names exactly as `list`
/// does: `NOBODY`'s sessions are not `nobody`'s.
#[test]
fn count_in_the_per_user_view_matches_names_as_list_does() {
    let mut fixture = Fixture::varied();
    fixture.add(entry(
        pureftpd_systemd::ftpwho::scoreboard::State::Idle,
        b"NOBODY",
        "192.0.2.44:1",
        "192.0.2.1:21",
        3,
    ));
    test_group();
    let responder = Responder::start(fixture.path(), &["--group", TEST_GROUP, "--per-user-view"]);
    let nobody = Some(Creds::nobody());
    let out = run_query(&responder.socket, &["-s", "-n"], nobody.as_ref());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
    for args in [
        &["--count", "nobody"][..],
        &["--count", "nobody", "--state", "idle,download"],
    ] {
        let out = run_query(&responder.socket, args, nobody.as_ref());
        assert_eq!(out.stdout, b"1\n", "{args:?}: {out:?}");
    }
    // For root and the group, count is the server's, case-insensitive.
    assert_eq!(responder.query(&["--count", "nobody"]).stdout, b"2\n");
}

/// The per-user view is reachable only through a socket others may
/// connect to: with the packaged mode (0660, the group) they are refused
/// by the socket; with 0666, they see their own sessions.
#[test]
fn the_per_user_view_needs_a_socket_of_mode_0666() {
    let fixture = Fixture::varied();
    test_group();
    let responder = Responder::start(fixture.path(), &["--group", TEST_GROUP, "--per-user-view"]);
    let set_mode = |mode| {
        std::fs::set_permissions(
            &responder.socket,
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
        .unwrap()
    };
    let nobody = Some(Creds::nobody());
    set_mode(0o660);
    let out = run_query(&responder.socket, &["-s", "-n"], nobody.as_ref());
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
    set_mode(0o666);
    let out = run_query(&responder.socket, &["-s", "-n"], nobody.as_ref());
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("|nobody|"));
}

/// Names chosen by FTP users reach a terminal as visible escapes; piped,
/// the exact bytes, as pure-ftpwho writes them.
#[test]
fn control_bytes_are_escaped_on_a_terminal_and_kept_in_a_pipe() {
    let mut fixture = Fixture::empty();
    let mut e = entry(
        pureftpd_systemd::ftpwho::scoreboard::State::Upload,
        b"eve\x1b[2J",
        "192.0.2.5:1",
        "192.0.2.1:21",
        9,
    );
    e.filename = b"\x1b]0;owned\x07\rx.txt".to_vec();
    fixture.add(e);
    let responder = Responder::start(fixture.path(), &[]);
    // The text table prints names as they are (the shell format replaces
    // control bytes itself).
    let piped = responder.query(&["-n"]);
    assert!(piped.status.success());
    assert!(
        piped.stdout.windows(4).any(|w| w == b"\x1b[2J"),
        "{piped:?}"
    );
    assert!(piped.stdout.contains(&0x07));
    let forced = responder.query(&["-n", "--escape=always"]);
    assert!(!forced.stdout.contains(&0x1b), "{forced:?}");
    let text = String::from_utf8_lossy(&forced.stdout).into_owned();
    assert!(text.contains("eve\\x1b[2J"), "{text}");
    assert!(text.contains("\\x1b]0;owned\\x07\\x0dx.txt"), "{text}");
    for extra in [&[][..], &["--watch", "0.1", "--iterations", "2"]] {
        let command = format!(
            "{QUERY} --socket {} -n {}",
            responder.socket.display(),
            extra.join(" ")
        );
        let tty = Command::new("script")
            .args(["-q", "-e", "-c", &command, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(tty.status.success(), "{tty:?}");
        let text = String::from_utf8_lossy(&tty.stdout).replace("\x1b[H\x1b[2J", "");
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(!text.contains('\x07'), "{text:?}");
        assert!(text.contains("eve\\x1b[2J"), "{text:?}");
        let raw = Command::new("script")
            .args([
                "-q",
                "-e",
                "-c",
                &format!("{command} --escape=never"),
                "/dev/null",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(raw.stdout.contains(&0x07), "{raw:?}");
    }
}

#[test]
fn a_request_with_a_repeated_key_is_a_bad_request() {
    let fixture = Fixture::varied();
    let responder = Responder::start(fixture.path(), &[]);
    let lines = responder.raw(b"{\"v\":1,\"op\":\"list\",\"op\":\"ping\"}\n");
    assert_eq!(error_code(&lines), ErrorCode::BadRequest);
    let lines = responder.raw(b"{\"v\":1,\"op\":\"count\",\"user\":\"alice\",\"user\":\"bob\"}\n");
    assert_eq!(error_code(&lines), ErrorCode::BadRequest);
}

/// 200 entries held under the server's write lock: the scan waits for
/// them a second in all (`lock_budget`), not 200 ms each.
#[test]
fn a_scan_waits_for_locked_entries_at_most_its_budget() {
    use std::os::fd::AsFd;
    let fixture = Fixture::many(200);
    let locked: Vec<std::fs::File> = std::fs::read_dir(fixture.path())
        .unwrap()
        .map(|f| {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(f.unwrap().path())
                .unwrap();
            let lock = libc::flock {
                l_type: libc::F_WRLCK as libc::c_short,
                l_whence: libc::SEEK_SET as libc::c_short,
                l_start: 0,
                l_len: 0,
                l_pid: 0,
            };
            use std::os::fd::AsRawFd;
            nix::fcntl::fcntl(
                file.as_fd().as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETLK(&lock),
            )
            .unwrap();
            file
        })
        .collect();
    assert_eq!(locked.len(), 200);
    let responder = Responder::start(fixture.path(), &["--request-timeout", "60"]);
    let started = Instant::now();
    let out = responder.query(&["-s", "-n", "--timeout", "60"]);
    let took = started.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.split(|&b| b == b'\n').count(), 201);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(took >= Duration::from_millis(900), "did not wait: {took:?}");
}

/// A count naming hundreds of users reads the directory once, not once
/// per user; every session is counted once whatever the case.
#[test]
fn a_count_of_many_users_is_one_pass() {
    let fixture = Fixture::many(2000);
    // The server's count takes the pid from the file name, after the
    // prefix and one more byte, as strtoul reads it (leading blanks
    // allowed): give every file a distinct name with the live pid.
    for (i, file) in std::fs::read_dir(fixture.path()).unwrap().enumerate() {
        let path = file.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let pid = pureftpd_systemd::ftpwho::scoreboard::Entry::parse(
            &bytes,
            &pureftpd_systemd::ftpwho::scoreboard::Layout::DEBIAN,
        )
        .unwrap()
        .pid;
        let name = format!(
            "client-{}{}{pid}",
            (b'a' + (i % 26) as u8) as char,
            " ".repeat(i / 26)
        );
        std::fs::rename(&path, fixture.path().join(name)).unwrap();
    }
    let responder = Responder::start(fixture.path(), &["--request-timeout", "60"]);
    let mut users: Vec<String> = (0..300).map(|i| format!("nosuch{i}")).collect();
    users.extend(["user1".into(), "USER1".into(), "User2".into()]);
    let request = serde_json::json!({"v": 1, "op": "count", "user": users});
    let mut line = serde_json::to_vec(&request).unwrap();
    line.push(b'\n');
    assert!(line.len() < 4096);
    let started = Instant::now();
    let lines = responder.raw(&line);
    let took = started.elapsed();
    // user1 and user2 have 40 sessions each (2000 / 50).
    assert_eq!(answer(&lines[0]).count, Some(80), "{lines:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// After a burst of concurrent JSON clients the responder gives its
/// memory back: its RSS returns near what it was idle.
#[test]
fn memory_goes_back_after_a_burst() {
    let fixture = Fixture::many(10_000);
    let responder = Responder::start(fixture.path(), &["--request-timeout", "60"]);
    let pid = responder.child.id();
    assert!(responder.query(&["--ping"]).status.success());
    let idle = vm_kib(pid, "VmRSS:");
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let socket = responder.socket.clone();
            std::thread::spawn(move || {
                for _ in 0..2 {
                    let lines = raw_exchange(&socket, &list_line("json"));
                    let r = answer(&lines[0]);
                    assert!(r.ok, "{:?}", r.error);
                    assert_eq!(r.data.unwrap().as_array().unwrap().len(), 10_000);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let peak = vm_kib(pid, "VmHWM:");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB with 16 JSON clients");
    let started = Instant::now();
    loop {
        let now = vm_kib(pid, "VmRSS:");
        if now <= idle + 8 * 1024 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "RSS {now} KiB after the burst, {idle} KiB idle, {peak} KiB peak"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Host names are waited for a bounded time, then printed numerically:
/// with a name server that never answers (in a private network
/// namespace), five addresses take about a second, not a minute.
#[test]
fn host_names_are_waited_for_a_bounded_time_then_printed_numerically() {
    let mut fixture = Fixture::empty();
    for i in 1..=5 {
        fixture.add(entry(
            pureftpd_systemd::ftpwho::scoreboard::State::Idle,
            b"alice",
            &format!("198.51.100.{i}:4000"),
            "198.51.100.254:21",
            5,
        ));
    }
    let dir = open_tempdir();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.1\noptions timeout:5 attempts:2\n",
    )
    .unwrap();
    let socket = dir.path().join("ftpwho.sock");
    // The name server: a UDP socket that reads nothing, and goes when the
    // responder goes.
    let script = r#"ip link set lo up && mount --bind "$1" /etc/resolv.conf || exit 1
        shift
        perl -MIO::Socket::INET -e '
            my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:53", Proto => "udp") or die "bind: $!";
            my $p = getppid(); sleep 1 while getppid() == $p;' &
        sleep 0.3; exec "$@""#;
    let launcher = [
        OsStr::new("unshare"),
        "--net".as_ref(),
        "--mount".as_ref(),
        "--propagation".as_ref(),
        "private".as_ref(),
        "sh".as_ref(),
        "-c".as_ref(),
        script.as_ref(),
        "sh".as_ref(),
        resolv.as_os_str(),
    ];
    let _responder = KillOnDrop(
        ftpwhod_command(launcher, dir.path(), fixture.path())
            .arg("--listen")
            .arg(&socket)
            .args(["--idle-timeout", "60", "--request-timeout", "30"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&socket);
    for _ in 0..2 {
        let started = Instant::now();
        let out = run_query(&socket, &["-s", "--timeout", "40"], None);
        let took = started.elapsed();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), 5, "{text}");
        for i in 1..=5 {
            assert!(text.contains(&format!("|198.51.100.{i}|")), "{text}");
        }
        assert!(took < Duration::from_secs(4), "took {took:?}");
    }
}
