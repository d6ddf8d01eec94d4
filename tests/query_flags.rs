//! `ftpwho-query` takes `pure-ftpwho`'s format options and filters and
//! resolves them the same way: several format options (the last wins, `-c`
//! implies `-W` implies `-w`), repeated `--user`, repeated and
//! comma-separated `--state`. Checked through a running responder on a
//! crafted scoreboard, against both `pure-ftpwho`s.

mod common;
#[path = "support/ftpwhod.rs"]
mod support;

use std::process::{Command, Stdio};

use pureftpd_systemd::ftpwho::query::protocol::Response;
use serde_json::Value;
use support::*;

fn query_ok(responder: &Responder, args: &[&str]) -> Vec<u8> {
    let out = responder.query(args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    out.stdout
}

/// [`same_second`], retried while the two disagree: runs that straddle a
/// second may still differ, a broken option never agrees.
fn agree<T: PartialEq + std::fmt::Debug>(
    mut reference: impl FnMut() -> T,
    mut produce: impl FnMut() -> T,
) -> (T, T) {
    for _ in 0..3 {
        let (a, b) = same_second(&mut reference, &mut produce);
        if a == b {
            return (a, b);
        }
    }
    same_second(reference, produce)
}

fn lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Format option lines where more than one format option is given, or
/// where `-c` implies the HTML table.
const COMBINATIONS: [&[&str]; 12] = [
    &["-s", "-x"],
    &["-x", "-s"],
    &["-w", "-W"],
    &["-W", "-w"],
    &["-c"],
    &["-C"],
    &["-c", "-w"],
    &["-s", "-c"],
    &["-c", "-s"],
    &["-p", "-w", "-x", "-p"],
    &["-sxv"],
    &["-v", "-s", "-v"],
];

#[test]
fn several_format_options_print_what_pure_ftpwho_prints() {
    let fixture = Fixture::varied();
    let responder = Responder::start(fixture.path(), &[]);
    for flags in COMBINATIONS {
        let mut args = flags.to_vec();
        args.push("-n");
        let (c, query) = agree(
            || c_pure_ftpwho(fixture.path(), &args),
            || query_ok(&responder, &args),
        );
        assert!(c.len() > 100, "{args:?}: {}", String::from_utf8_lossy(&c));
        assert_eq!(
            String::from_utf8_lossy(&query),
            String::from_utf8_lossy(&c),
            "{args:?}"
        );
        assert_eq!(query, c, "{args:?}");
        let (ours, query) = agree(
            || our_pure_ftpwho(fixture.path(), &args),
            || query_ok(&responder, &args),
        );
        assert_eq!(query, ours, "{args:?}");
    }
    // The options really differ: XML, then the shell lines, then CGI.
    let xml = query_ok(&responder, &["-s", "-x", "-n"]);
    assert!(
        xml.starts_with(b"<?xml "),
        "{}",
        String::from_utf8_lossy(&xml)
    );
    let shell = query_ok(&responder, &["-x", "-s", "-n"]);
    assert_eq!(lines(&shell), 6);
    let cgi = query_ok(&responder, &["-c", "-n"]);
    assert!(cgi.starts_with(b"Content-Type: text/html\n\n"));
    assert!(!String::from_utf8_lossy(&cgi).contains("<html"));
}

#[test]
fn json_and_openmetrics_are_format_options_too() {
    let fixture = Fixture::varied();
    let responder = Responder::start(fixture.path(), &[]);
    let (ours, query) = agree(
        || our_pure_ftpwho(fixture.path(), &["-n", "--json", "-x", "-s"]),
        || query_ok(&responder, &["-n", "--openmetrics", "-x", "-s"]),
    );
    assert_eq!(lines(&ours), 6);
    assert_eq!(query, ours);
    let metrics =
        String::from_utf8(query_ok(&responder, &["-s", "--json", "--openmetrics"])).unwrap();
    assert!(metrics.starts_with("# HELP pureftpd_sessions"), "{metrics}");
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    let json = |bytes: Vec<u8>| serde_json::from_slice::<Value>(&bytes).unwrap();
    let (ours, query) = agree(
        || json(our_pure_ftpwho(fixture.path(), &["-x", "--json", "-n"])),
        || {
            json(query_ok(
                &responder,
                &["--openmetrics", "-x", "--json", "-n"],
            ))
        },
    );
    assert_eq!(ours.as_array().unwrap().len(), 6);
    assert_eq!(query, ours);
}

/// Run by a web server (`GATEWAY_INTERFACE` set), both default to a CGI
/// page, and `-W` gives the CGI table.
#[test]
fn the_cgi_variable_is_honoured_as_pure_ftpwho_honours_it() {
    let fixture = Fixture::varied();
    let responder = Responder::start(fixture.path(), &[]);
    let run = |program: &str, args: &[&str]| {
        let mut command = Command::new(program);
        if program == QUERY {
            command.arg("--socket").arg(&responder.socket);
        } else {
            command.arg("--scoreboard").arg(fixture.path());
        }
        let out = command
            .args(args)
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env_remove("FTPWHO_SOCKET")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{program} {args:?}: {out:?}");
        out.stdout
    };
    for args in [&["-n"][..], &["-n", "-v"], &["-n", "-W"], &["-n", "-s"]] {
        let (ours, query) = agree(|| run(PURE_FTPWHO, args), || run(QUERY, args));
        assert_eq!(
            String::from_utf8_lossy(&query),
            String::from_utf8_lossy(&ours),
            "{args:?}"
        );
    }
    let page = run(QUERY, &["-n"]);
    assert!(page.starts_with(b"Content-Type: text/html\n\n<!DOCTYPE"));
}

#[test]
fn several_users_and_states_filter_as_pure_ftpwho_filters() {
    let fixture = Fixture::varied();
    let responder = Responder::start(fixture.path(), &[]);
    // The varied scoreboard: alice idle and uploading, bob and nobody
    // downloading, caf\xe9 idle, carol in an unknown state.
    for (filters, expected) in [
        (&["--user", "alice", "--user", "bob"][..], 3),
        (&["--user=bob", "--user", "nobody", "--user", "zed"], 2),
        (&["--state", "idle,upload"], 3),
        (&["--state", "idle", "--state", "download"], 4),
        (&["--state", "download,idle", "--state", "upload"], 5),
        (
            &[
                "--user",
                "alice",
                "--state",
                "download,upload",
                "--user",
                "nobody",
            ],
            2,
        ),
    ] {
        for format in [&["-s"][..], &["-x"], &["--json"]] {
            let mut args = vec!["-n"];
            args.extend_from_slice(format);
            args.extend_from_slice(filters);
            let (ours, query) = agree(
                || our_pure_ftpwho(fixture.path(), &args),
                || query_ok(&responder, &args),
            );
            if format == ["--json"] {
                // The same document (the responder's is laid out apart).
                let json = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap();
                assert_eq!(json(&query), json(&ours), "{args:?}");
                assert_eq!(json(&query).as_array().unwrap().len(), expected);
                continue;
            }
            assert_eq!(
                String::from_utf8_lossy(&query),
                String::from_utf8_lossy(&ours),
                "{args:?}"
            );
            if format == ["-s"] {
                assert_eq!(lines(&query), expected, "{args:?}");
            }
        }
    }
    let count = |args: &[&str]| String::from_utf8(query_ok(&responder, args)).unwrap();
    assert_eq!(
        count(&["--count", "ALICE", "--state", "idle,upload"]),
        "2\n"
    );
    assert_eq!(
        count(&["--count", "alice", "--state", "idle", "--state", "download"]),
        "1\n"
    );
}

/// The protocol carries several values as arrays; one value still goes
/// as a string, which is what version 1 responders understand.
#[test]
fn requests_carry_arrays_and_single_values() {
    let fixture = Fixture::varied();
    let responder = Responder::start(fixture.path(), &[]);
    let answer = |line: &[u8]| {
        let lines = responder.raw(line);
        assert_eq!(lines.len(), 1, "{lines:?}");
        Response::from_line(lines[0].as_bytes()).unwrap()
    };
    let list = answer(
        b"{\"v\":1,\"op\":\"list\",\"format\":\"shell\",\"numeric\":true,\
          \"user\":[\"alice\",\"bob\"],\"state\":[\"idle\",\"download\"]}\n",
    );
    let text = String::from_utf8(list.output_bytes().unwrap().unwrap()).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("|alice|") && text.contains("|bob|"), "{text}");
    let single = answer(
        b"{\"v\":1,\"op\":\"list\",\"format\":\"shell\",\"numeric\":true,\
          \"user\":\"alice\",\"state\":\"idle\"}\n",
    );
    let text = String::from_utf8(single.output_bytes().unwrap().unwrap()).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    // Counted as at login, each account once however it is spelled.
    let count = answer(b"{\"v\":1,\"op\":\"count\",\"user\":[\"ALICE\",\"alice\",\"bob\"]}\n");
    assert_eq!(count.count, Some(3));
    let count = answer(b"{\"v\":1,\"op\":\"count\",\"state\":[\"upload\",\"download\"]}\n");
    assert_eq!(count.count, Some(3));
    let bad = answer(b"{\"v\":1,\"op\":\"list\",\"state\":[\"idle\",\"asleep\"]}\n");
    assert!(!bad.ok);
    // What the client sends for one value and for several.
    let out = responder.query(&[
        "--user",
        "alice",
        "--user",
        "bob",
        "--state",
        "idle,download",
        "-s",
        "-n",
    ]);
    assert_eq!(out.stdout, list.output_bytes().unwrap().unwrap());
}

#[test]
fn the_per_user_view_refuses_a_list_naming_someone_else() {
    let fixture = Fixture::varied();
    test_group();
    let responder = Responder::start(fixture.path(), &["--group", TEST_GROUP, "--per-user-view"]);
    let nobody = Some(Creds::nobody());
    let out = run_query(
        &responder.socket,
        &["-s", "-n", "--user", "nobody", "--user", "nobody"],
        nobody.as_ref(),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines(&out.stdout), 1);
    let out = run_query(
        &responder.socket,
        &["-s", "-n", "--user", "nobody", "--user", "alice"],
        nobody.as_ref(),
    );
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(out.stdout.is_empty());
}
