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
        match notify.recv(&mut buf) {
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
