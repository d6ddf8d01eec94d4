//! `pureftpd-exporter` run as the real binary over TCP on loopback: the
//! metrics in both formats (checked by promtool), content negotiation,
//! 404/405, oversized, slow and garbage requests, the upload readers'
//! published counters, socket activation and the idle exit.

mod common;
#[path = "support/ftpwhod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pureftpd_systemd::upload::audit::Outcome;
use pureftpd_systemd::upload::metrics::{state_file, Publisher};
use support::Fixture;

const EXPORTER: &str = env!("CARGO_BIN_EXE_pureftpd-exporter");
/// What Prometheus 2.x sends.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

struct Running {
    child: Child,
    port: u16,
    _state: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "exporter not listening"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Running {
    fn start(scoreboard: &Path, state: tempfile::TempDir, extra: &[&str]) -> Running {
        let port = free_port();
        // An empty configuration: the machine's own is not read.
        std::fs::write(state.path().join("none.toml"), "").unwrap();
        let child = Command::new(EXPORTER)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--scoreboard")
            .arg(scoreboard)
            .arg("--upload-state-dir")
            .arg(state.path())
            .arg("--config")
            .arg(state.path().join("none.toml"))
            .args(extra)
            .env_remove("LISTEN_FDS")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port);
        Running {
            child,
            port,
            _state: state,
        }
    }

    fn raw(&self, request: &[u8]) -> Answer {
        raw(self.port, request)
    }

    fn get(&self, path: &str, accept: Option<&str>) -> Answer {
        let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
        self.raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{accept}\r\n").as_bytes())
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }
}

fn raw(port: u16, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    read_answer(stream)
}

fn read_answer(mut stream: TcpStream) -> Answer {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn promtool_check(text: &str) -> std::process::Output {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed by scripts/install-deps");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    promtool.wait_with_output().unwrap()
}

fn assert_promtool_passes(text: &str) {
    let out = promtool_check(text);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// OpenMetrics names a counter family without its `_total`; promtool
/// reads only the Prometheus text format, where the family carries it.
fn openmetrics_counters_as_text(text: &str) -> String {
    let counters: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .map(str::to_owned)
        .collect();
    let mut out = String::new();
    for line in text.lines().filter(|l| *l != "# EOF") {
        let renamed = counters.iter().find_map(|family| {
            for prefix in ["# HELP ", "# TYPE "] {
                if let Some(rest) = line.strip_prefix(&format!("{prefix}{family} ")) {
                    return Some(format!("{prefix}{family}_total {rest}"));
                }
            }
            None
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// A state directory with one reader's counters in it (written by the
/// reader's own publisher) and one instance's in a subdirectory.
fn upload_state() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (read_end, _write_end) = nix::unistd::pipe().unwrap();
    let fd = std::os::fd::AsFd::as_fd(&read_end);
    let mut main = Publisher::open(
        &state_file(dir.path()),
        Path::new("/run/pure-ftpd.upload.pipe"),
    )
    .unwrap();
    for outcome in [
        Outcome::Processed,
        Outcome::Processed,
        Outcome::Processed,
        Outcome::Rejected,
        Outcome::TimedOut,
    ] {
        main.run_starts(1, fd);
        main.record_done(outcome, 0, fd);
    }
    main.queue(2, 1, Some(std::time::Duration::from_secs(90)));
    let instance = dir.path().join("srv-ftp-run-pure\\x2dftpd.upload.pipe");
    std::fs::create_dir(&instance).unwrap();
    let mut other = Publisher::open(
        &state_file(&instance),
        Path::new("/srv/ftp/run/pure-ftpd.upload.pipe"),
    )
    .unwrap();
    other.run_starts(1, fd);
    // A directory whose file is not a document: counted as an error.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(state_file(&broken), b"{\"version\": 1,").unwrap();
    dir
}

#[test]
fn both_formats_pass_promtool_and_show_sessions_and_uploads() {
    let fixture = Fixture::varied();
    let exporter = Running::start(fixture.path(), upload_state(), &["--top-users", "2"]);

    let text = exporter.get("/metrics", None);
    assert_eq!(text.status, 200, "{text:?}");
    assert_eq!(text.header("Content-Type"), Some(TEXT));
    assert_eq!(
        text.header("Content-Length"),
        Some(text.body.len().to_string().as_str())
    );
    assert_promtool_passes(&text.body);
    for expected in [
        "pureftpd_sessions{state=\"idle\"} 2\n",
        "pureftpd_sessions{state=\"download\"} 2\n",
        "pureftpd_sessions{state=\"upload\"} 1\n",
        "pureftpd_users 5\n",
        "pureftpd_scoreboard_readable 1\n",
        "# TYPE pureftpd_upload_records_total counter\n",
        "pureftpd_upload_records_total{pipe=\"/run/pure-ftpd.upload.pipe\",outcome=\"processed\"} 3\n",
        "pureftpd_upload_records_total{pipe=\"/run/pure-ftpd.upload.pipe\",outcome=\"rejected\"} 1\n",
        "pureftpd_upload_records_total{pipe=\"/run/pure-ftpd.upload.pipe\",outcome=\"timed_out\"} 1\n",
        "pureftpd_upload_program_runs_in_flight{pipe=\"/srv/ftp/run/pure-ftpd.upload.pipe\"} 1\n",
        "pureftpd_upload_program_runs_in_flight{pipe=\"/run/pure-ftpd.upload.pipe\"} 0\n",
        "pureftpd_upload_state_errors 1\n",
        "pureftpd_upload_queue_records{pipe=\"/run/pure-ftpd.upload.pipe\"} 2\n",
        "pureftpd_upload_queue_failed_records{pipe=\"/run/pure-ftpd.upload.pipe\"} 1\n",
        "pureftpd_upload_queue_oldest_age_seconds{pipe=\"/run/pure-ftpd.upload.pipe\"} 90\n",
        "pureftpd_upload_queue_records{pipe=\"/srv/ftp/run/pure-ftpd.upload.pipe\"} 0\n",
    ] {
        assert!(text.body.contains(expected), "{expected} missing in\n{}", text.body);
    }
    assert_eq!(text.body.matches("pureftpd_user_sessions{").count(), 2);
    assert!(!text.body.contains("# EOF"));
    let oldest: u64 = text
        .body
        .lines()
        .find_map(|l| l.strip_prefix("pureftpd_session_oldest_age_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    // The fixture's oldest session started 400,000 seconds ago.
    assert!((400_000..400_060).contains(&oldest), "{oldest}");

    let om = exporter.get("/metrics", Some(PROMETHEUS_ACCEPT));
    assert_eq!(om.status, 200);
    assert_eq!(om.header("Content-Type"), Some(OPENMETRICS));
    assert!(om.body.ends_with("\n# EOF\n"));
    assert!(om.body.contains("# TYPE pureftpd_upload_records counter\n"));
    assert!(om.body.contains("pureftpd_upload_records_total{"));
    assert_promtool_passes(&openmetrics_counters_as_text(&om.body));
    // The two differ only in the counter families' names and the end, and
    // in the values that move with the clock between the two scrapes.
    let steady = |body: &str| -> String {
        body.lines()
            .filter(|l| {
                !l.starts_with("pureftpd_transfer_rate_bytes{")
                    && !l.starts_with("pureftpd_session_oldest_age_seconds ")
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    assert_eq!(
        steady(&openmetrics_counters_as_text(&om.body)),
        steady(&text.body)
    );
    assert!(om
        .body
        .contains("pureftpd_transfer_rate_bytes{state=\"download\"} "));
    assert!(om.body.contains("pureftpd_session_oldest_age_seconds "));

    // promtool does fail on what it should.
    assert!(!promtool_check("# TYPE x gauge\nx{a=\"b} 1\n")
        .status
        .success());
    assert!(!promtool_check(&om.body).status.success());
}

#[test]
fn content_negotiation_follows_the_accept_header() {
    let fixture = Fixture::empty();
    let exporter = Running::start(fixture.path(), tempfile::tempdir().unwrap(), &[]);
    for (accept, expected) in [
        (None, TEXT),
        (Some(PROMETHEUS_ACCEPT), OPENMETRICS),
        (Some("application/openmetrics-text"), OPENMETRICS),
        (
            Some("text/plain;version=0.0.4;q=0.9, application/openmetrics-text;q=0.5"),
            TEXT,
        ),
        (
            Some("application/openmetrics-text;version=0.0.1, text/plain;q=0.2"),
            TEXT,
        ),
        (Some("application/openmetrics-text;q=0, */*"), TEXT),
        (Some("application/json"), TEXT),
        (
            Some("*/*;q=0.1, application/openmetrics-text; version=\"1.0.0\""),
            OPENMETRICS,
        ),
    ] {
        let answer = exporter.get("/metrics", accept);
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("Content-Type"),
            Some(expected),
            "Accept: {accept:?}"
        );
        assert_eq!(answer.header("Vary"), Some("Accept"));
    }
}

#[test]
fn other_paths_and_methods_are_refused() {
    let fixture = Fixture::empty();
    let exporter = Running::start(fixture.path(), tempfile::tempdir().unwrap(), &[]);
    for path in ["/", "/metrics/", "/favicon.ico", "/METRICS", "/../metrics"] {
        assert_eq!(exporter.get(path, None).status, 404, "{path}");
    }
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"] {
        let answer = exporter
            .raw(format!("{method} /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").as_bytes());
        assert_eq!(answer.status, 405, "{method}");
        assert_eq!(answer.header("Allow"), Some("GET, HEAD"));
    }
    let head = exporter.raw(b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let length: usize = head.header("Content-Length").unwrap().parse().unwrap();
    assert!(length > 1000, "{length}");
    // The query string is not part of the path.
    assert_eq!(exporter.get("/metrics?name[]=x", None).status, 200);
}

#[test]
fn oversized_slow_and_garbage_requests_get_an_error_and_others_are_served() {
    let fixture = Fixture::varied();
    let exporter = Running::start(
        fixture.path(),
        tempfile::tempdir().unwrap(),
        &["--request-timeout", "1"],
    );
    // A head larger than max_request_bytes (8192 by default).
    let big = format!(
        "GET /metrics HTTP/1.1\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    let mut stream = TcpStream::connect(("127.0.0.1", exporter.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The exporter stops reading at the bound; the rest may be refused.
    let _ = stream.write_all(big.as_bytes());
    assert_eq!(read_answer(stream).status, 431);
    let many: String = (0..50).map(|i| format!("X-{i}: y\r\n")).collect();
    let answer = exporter.raw(format!("GET /metrics HTTP/1.1\r\n{many}\r\n").as_bytes());
    assert_eq!(answer.status, 431);

    // Slow clients: one sends nothing, one half a head; both get 408 after
    // about the request timeout, and a scrape meanwhile is answered.
    let started = Instant::now();
    let silent = TcpStream::connect(("127.0.0.1", exporter.port)).unwrap();
    let mut half = TcpStream::connect(("127.0.0.1", exporter.port)).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x").unwrap();
    let scrape = exporter.get("/metrics", None);
    assert_eq!(scrape.status, 200);
    assert!(started.elapsed() < Duration::from_millis(900));
    for stream in [silent, half] {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(read_answer(stream).status, 408);
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"SSH-2.0-OpenSSH_9.2p1\r\n",
        b"\0\0\0\0\0\0\0\0\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nbroken header\r\n\r\n",
        b"GET /metrics\r\n\r\n",
    ] {
        let answer = exporter.raw(garbage);
        assert_eq!(answer.status, 400, "{garbage:?}");
    }
    // Random bytes: an error status, or (too short to judge) a timeout.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20 {
        let bytes: Vec<u8> = (0..64)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .chain(*b"\r\n\r\n")
            .collect();
        let answer = exporter.raw(&bytes);
        assert!(matches!(answer.status, 400 | 408 | 431), "{answer:?}");
    }
    assert_eq!(exporter.get("/metrics", None).status, 200);
}

#[test]
fn top_users_zero_names_nobody_and_a_missing_scoreboard_is_a_metric() {
    let fixture = Fixture::varied();
    let exporter = Running::start(
        fixture.path(),
        tempfile::tempdir().unwrap(),
        &["--top-users", "0"],
    );
    let body = exporter.get("/metrics", None).body;
    assert!(!body.contains("pureftpd_user_sessions{"), "{body}");
    assert!(body.contains("pureftpd_users 5\n"));
    drop(exporter);
    let missing = tempfile::tempdir().unwrap();
    let exporter = Running::start(
        &missing.path().join("nothing"),
        tempfile::tempdir().unwrap(),
        &[],
    );
    let answer = exporter.get("/metrics", None);
    assert_eq!(answer.status, 200);
    assert!(answer.body.contains("pureftpd_scoreboard_readable 0\n"));
    assert!(answer
        .body
        .contains("pureftpd_sessions{state=\"idle\"} 0\n"));
    assert_promtool_passes(&answer.body);
}

/// As systemd starts it: the listening socket in `LISTEN_FDS`; it exits
/// once idle and says how many scrapes it served.
#[test]
fn socket_activation_serves_then_exits_when_idle() {
    let fixture = Fixture::varied();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("e.toml"), "idle_timeout = 1\n").unwrap();
    let port = free_port();
    let mut activator = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg(EXPORTER)
        .arg("--scoreboard")
        .arg(fixture.path())
        .arg("--config")
        .arg(state.path().join("e.toml"))
        .arg("--upload-state-dir")
        .arg(state.path())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port);
    let answer = raw(port, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(answer.status, 200);
    assert!(answer
        .body
        .contains("pureftpd_sessions{state=\"download\"} 2\n"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = activator.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(15) {
            let _ = activator.kill();
            let _ = activator.wait();
            panic!("the socket-activated exporter did not exit when idle");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    activator
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("idle, exiting after 1 scrapes"), "{stderr}");
}

#[test]
fn configuration_errors_and_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "top_users = 1\nlisten = \"x\"\n").unwrap();
    let out = Command::new(EXPORTER)
        .arg("--config")
        .arg(&bad)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml:2"));
    let out = Command::new(EXPORTER)
        .arg("--config")
        .arg(dir.path().join("absent.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // No socket passed and no --listen.
    std::fs::write(&bad, "").unwrap();
    let out = Command::new(EXPORTER)
        .arg("--config")
        .arg(&bad)
        .env_remove("LISTEN_FDS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no listening socket"));
    let out = Command::new(EXPORTER)
        .arg("--config")
        .arg(&bad)
        .args(["--check-config", "--top-users", "3"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("top_users = 3\n"), "{text}");
    // The printed configuration reads back the same.
    std::fs::write(&bad, &text).unwrap();
    let again = Command::new(EXPORTER)
        .arg("--config")
        .arg(&bad)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text);
}

/// Every PromQL expression of a Grafana dashboard: the panels' targets and
/// the template variables' queries.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<String> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            queries.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            queries.push(query.to_owned());
        }
    }
    queries
}

/// The metric names a PromQL expression mentions (identifiers in our
/// namespace).
fn metric_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current = String::new();
    let mut in_string = false;
    for c in query.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_string = !in_string;
        }
        if !in_string && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            current.push(c);
        } else {
            if current.starts_with("pureftpd_") {
                names.push(std::mem::take(&mut current));
            }
            current.clear();
        }
    }
    names
}

#[test]
fn every_dashboard_query_names_served_metrics_and_parses() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(repo.join("packaging/grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 8, "{queries:?}");

    // What the exporter serves, every family present.
    let fixture = Fixture::varied();
    let exporter = Running::start(fixture.path(), upload_state(), &[]);
    let body = exporter.get("/metrics", None).body;
    let served: std::collections::BTreeSet<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    let mut used = std::collections::BTreeSet::new();
    for query in &queries {
        let names = metric_names(query);
        assert!(!names.is_empty(), "{query} names no metric of ours");
        for name in names {
            assert!(
                served.contains(name.as_str()),
                "{query}: {name} is not served; served: {served:?}"
            );
            used.insert(name);
        }
    }
    // The panels the dashboard promises.
    for family in [
        "pureftpd_sessions",
        "pureftpd_user_sessions",
        "pureftpd_upload_records_total",
        "pureftpd_upload_program_duration_seconds_bucket",
        "pureftpd_upload_queue_bytes",
    ] {
        assert!(used.contains(family), "no panel uses {family}");
    }
    // The name check above can fail.
    assert_eq!(
        metric_names("rate(pureftpd_nope_total{a=\"pureftpd_x\"}[5m])"),
        ["pureftpd_nope_total"]
    );
    assert!(!served.contains("pureftpd_nope_total"));

    // Each is valid PromQL once Grafana's variables are filled in: promtool
    // parses them as recording rules.
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in queries.iter().enumerate() {
        let filled = query
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*");
        let filled = if filled.starts_with("label_values(") {
            "pureftpd_exporter_build_info".to_owned()
        } else {
            filled
        };
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&filled).unwrap()
        ));
    }
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And promtool refuses a broken expression.
    std::fs::write(
        &file,
        "groups:\n  - name: x\n    rules:\n      - record: x:y\n        expr: \"sum(rate(x[5m])\"\n",
    )
    .unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn skipped_entries_are_counted_by_reason() {
    use std::os::unix::fs::PermissionsExt;
    let mut fixture = Fixture::varied();
    fixture.add_stale();
    fixture.add_stale();
    let odd = fixture.path().join("client-99999999");
    std::fs::write(&odd, [0u8; 100]).unwrap();
    std::fs::set_permissions(&odd, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", fixture.path().join("client-99999998")).unwrap();
    let exporter = Running::start(fixture.path(), tempfile::tempdir().unwrap(), &[]);
    let body = exporter.get("/metrics", None).body;
    for (reason, n) in [
        ("stale", 2),
        ("layout", 1),
        ("not_regular", 1),
        ("owner", 0),
        ("unlocked", 0),
    ] {
        let line = format!("pureftpd_scoreboard_skipped_entries{{reason=\"{reason}\"}} {n}\n");
        assert!(body.contains(&line), "{line} missing in\n{body}");
    }
    // Stale entries are passed over, never removed.
    assert_eq!(std::fs::read_dir(fixture.path()).unwrap().count(), 11);
    assert_promtool_passes(&body);
}
