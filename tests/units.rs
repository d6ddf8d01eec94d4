//! The systemd units, sysusers.d and catalog files under `systemd/`: every
//! unit passes `systemd-analyze verify` (against the binaries this test run
//! built and the manual pages generated from their clap definitions), the
//! upload readers score at most 1.0 in `systemd-analyze security`, the
//! responder and the strict run template at most 2.0, the two upload reader
//! units come from one source (and the two run templates from another), and
//! the catalog and sysusers files are accepted by journalctl and
//! systemd-sysusers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[allow(dead_code)]
#[path = "../examples/gen-docs.rs"]
mod gen_docs;

mod common;
use common::UNITS;
/// Services and the bound each must meet in `systemd-analyze security`.
const SERVICES: [(&str, f64); 5] = [
    ("pure-ftpwho.service", 2.0),
    ("pure-uploadscript.service", 1.0),
    ("uploadscript@.service", 1.0),
    ("pure-uploadscript-run-strict@.service", 2.0),
    ("pureftpd-exporter.service", 2.0),
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory of the binaries built for this test run.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_ftpwhod"))
        .parent()
        .expect("binary directory")
        .to_owned()
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `systemd/generate` into a fresh directory.
fn generate(args: &[&str]) -> tempfile::TempDir {
    let out = tempfile::tempdir().expect("tempdir");
    let output = run(Command::new(repo().join("systemd/generate"))
        .args(args)
        .arg(out.path()));
    assert!(
        output.status.success(),
        "systemd/generate {args:?} failed: {}",
        text(&output.stderr)
    );
    out
}

fn generate_for_test_binaries() -> tempfile::TempDir {
    let bin = bin_dir();
    generate(&["--sbindir", bin.to_str().expect("utf-8 path")])
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `key=value` settings of a unit file's `[section]`, in order.
fn settings(unit: &str, section: &str) -> Vec<(String, String)> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') && line.ends_with(']') {
            current = line[1..line.len() - 1].to_owned();
        } else if current == section && !line.starts_with('#') {
            if let Some((key, value)) = line.split_once('=') {
                out.push((key.to_owned(), value.to_owned()));
            }
        }
    }
    out
}

fn values<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Man pages of every binary, generated from the clap definitions, laid out
/// as a MANPATH directory.
fn man_path() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (relative, bytes) in gen_docs::render(&gen_docs::pages()).expect("render docs") {
        let name = relative.file_name().unwrap().to_str().unwrap().to_owned();
        if relative.starts_with("man") {
            let section = name.rsplit('.').next().unwrap();
            let path = dir.path().join(format!("man{section}")).join(&name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
    dir
}

#[test]
fn every_unit_passes_systemd_analyze_verify() {
    let units = generate_for_test_binaries();
    let man = man_path();
    let mut command = Command::new("systemd-analyze");
    command.arg("verify").env("MANPATH", man.path());
    for unit in UNITS {
        command.arg(units.path().join(unit));
    }
    let output = run(&mut command);
    let stderr = text(&output.stderr);
    assert!(
        output.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // verify reports problems it does not count as failures on stderr too.
    for unit in UNITS {
        let stem = unit.replace("@.", "@i.");
        assert!(
            !stderr.contains(&stem),
            "systemd-analyze verify complains about {unit}:\n{stderr}"
        );
    }
}

#[test]
fn verify_notices_a_missing_binary() {
    // The check above is only worth something if verify looks at ExecStart=.
    let units = generate(&["--sbindir", "/nonexistent/sbin"]);
    let man = man_path();
    let output = run(Command::new("systemd-analyze")
        .arg("verify")
        .env("MANPATH", man.path())
        .arg(units.path().join("pure-ftpwho.service")));
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("/nonexistent/sbin/ftpwhod"),
        "{}",
        text(&output.stderr)
    );
}

/// `systemd-analyze security --offline=true`'s overall exposure of a unit.
fn exposure(unit: &Path) -> f64 {
    let output = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit));
    let stdout = text(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level for"))
        .unwrap_or_else(|| {
            panic!(
                "no overall exposure level for {}:\n{stdout}{}",
                unit.display(),
                text(&output.stderr)
            )
        });
    let value = line
        .rsplit(':')
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("cannot parse {line:?}"));
    value
}

#[test]
fn services_meet_their_bound_in_systemd_analyze_security() {
    let units = generate(&[]);
    let mut report = Vec::new();
    for (service, bound) in SERVICES {
        let score = exposure(&units.path().join(service));
        report.push(format!("{service}: {score}"));
        assert!(score <= bound, "{service} exposure {score} > {bound}");
    }
    // The default run profile is unconfined on purpose; its score is
    // printed, not bounded.
    let open = exposure(&units.path().join("pure-uploadscript-run@.service"));
    assert!(open > 2.0, "the default run profile scored {open}");
    report.push(format!("pure-uploadscript-run@.service: {open}"));
    eprintln!("exposure levels: {}", report.join(", "));
}

#[test]
fn the_security_score_parser_sees_an_unhardened_service() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.service");
    std::fs::write(&plain, "[Service]\nExecStart=/bin/true\n").unwrap();
    let score = exposure(&plain);
    assert!(score > 9.0, "an unhardened service scored {score}");
}

#[test]
fn both_upload_reader_units_come_from_one_source() {
    let units = generate(&[]);
    let default = read(&units.path().join("pure-uploadscript.service"));
    let template = read(&units.path().join("uploadscript@.service"));
    let source = read(&repo().join("systemd/uploadscript.service.in"));
    for unit in [&default, &template] {
        assert!(!unit.contains("@DEFAULT@") && !unit.contains("@TEMPLATE@"));
        assert!(unit.starts_with("# Generated from uploadscript.service.in"));
    }
    // Every line of the source that is not marked for one variant is in both.
    let body = source.split_once("\n\n").unwrap().1;
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("@DEFAULT@") {
            assert!(default
                .lines()
                .any(|l| l == rest.replace("@UPLOADSCRIPT_DIR@", "/usr/sbin")));
        } else if let Some(rest) = line.strip_prefix("@TEMPLATE@") {
            assert!(template
                .lines()
                .any(|l| l == rest.replace("@UPLOADSCRIPT_DIR@", "/usr/sbin")));
        } else {
            let line = line.replace("@UPLOADSCRIPT_DIR@", "/usr/sbin");
            assert!(default.lines().any(|l| l == line), "default lacks {line:?}");
            assert!(
                template.lines().any(|l| l == line),
                "template lacks {line:?}"
            );
        }
    }
    let service = |unit: &str| settings(unit, "Service");
    assert_eq!(
        values(&service(&default), "ExecStart"),
        ["/usr/sbin/pure-uploadscript --pipe /run/pure-ftpd.upload.pipe"]
    );
    assert_eq!(
        values(&service(&template), "ExecStart"),
        ["/usr/sbin/pure-uploadscript --pipe %f"]
    );
    // Each instance has a queue of its own.
    assert_eq!(
        values(&service(&default), "StateDirectory"),
        ["pure-uploadscript"]
    );
    assert_eq!(
        values(&service(&template), "StateDirectory"),
        ["pure-uploadscript/%i"]
    );
    // Apart from the pipe and the queue, the two units run the same way.
    let without = |unit: &str, keys: &[&str]| -> Vec<(String, String)> {
        service(unit)
            .into_iter()
            .filter(|(k, _)| !keys.contains(&k.as_str()))
            .collect()
    };
    assert_eq!(
        without(&default, &["ExecStart", "ReadWritePaths", "StateDirectory"]),
        without(
            &template,
            &["ExecStart", "ReadWritePaths", "StateDirectory"]
        )
    );
}

#[test]
fn upload_reader_units_have_the_promised_service_settings() {
    let units = generate(&[]);
    for name in ["pure-uploadscript.service", "uploadscript@.service"] {
        let unit = read(&units.path().join(name));
        let service = settings(&unit, "Service");
        let one = |key: &str| -> &str {
            let v = values(&service, key);
            assert_eq!(v.len(), 1, "{name}: {key} set {} times", v.len());
            v[0]
        };
        assert_eq!(one("Type"), "notify", "{name}");
        assert_eq!(one("Restart"), "always", "{name}");
        assert_eq!(one("FileDescriptorStoreMax"), "1", "{name}");
        assert_eq!(one("KillMode"), "mixed", "{name}");
        assert!(one("WatchdogSec").ends_with('s'), "{name}");
        // Root, but only the capability needed to read uploaded files: the
        // program runs in a unit of its own.
        assert!(values(&service, "User").is_empty(), "{name}");
        let caps: BTreeSet<&str> = one("CapabilityBoundingSet").split_whitespace().collect();
        assert_eq!(caps, BTreeSet::from(["CAP_DAC_READ_SEARCH"]), "{name}");
        assert_eq!(one("ProtectSystem"), "strict", "{name}");
        assert_eq!(one("NoNewPrivileges"), "yes", "{name}");
    }
    let default = read(&units.path().join("pure-uploadscript.service"));
    assert_eq!(
        values(&settings(&default, "Service"), "ReadWritePaths"),
        ["/run"]
    );
    let template = read(&units.path().join("uploadscript@.service"));
    assert_eq!(
        values(&settings(&template, "Service"), "ReadWritePaths"),
        ["-/run/lock"]
    );
}

#[test]
fn run_templates_take_one_connection_each_from_a_root_only_socket() {
    let units = generate(&[]);
    for (socket, template, profile, path) in [
        (
            "pure-uploadscript-run.socket",
            "pure-uploadscript-run@.service",
            "default",
            "/run/pure-uploadscript/run.sock",
        ),
        (
            "pure-uploadscript-run-strict.socket",
            "pure-uploadscript-run-strict@.service",
            "strict",
            "/run/pure-uploadscript/run-strict.sock",
        ),
    ] {
        let s = settings(&read(&units.path().join(socket)), "Socket");
        assert_eq!(values(&s, "ListenSequentialPacket"), [path]);
        assert_eq!(values(&s, "SocketMode"), ["0600"]);
        assert_eq!(values(&s, "Accept"), ["yes"]);
        let unit = read(&units.path().join(template));
        let t = settings(&unit, "Service");
        assert_eq!(
            values(&t, "ExecStart"),
            [format!("/usr/sbin/pure-uploadscript --run-instance {profile}").as_str()]
        );
        assert_eq!(values(&t, "Delegate"), ["yes"]);
        assert_eq!(values(&t, "KillMode"), ["control-group"]);
        assert_eq!(values(&t, "User"), Vec::<&str>::new());
    }
    let strict = read(&units.path().join("pure-uploadscript-run-strict@.service"));
    let s = settings(&strict, "Service");
    for (key, value) in [
        ("ProtectSystem", "strict"),
        ("PrivateNetwork", "yes"),
        ("PrivateTmp", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("NoNewPrivileges", "yes"),
    ] {
        assert_eq!(values(&s, key), [value], "{key}");
    }
    let open = read(&units.path().join("pure-uploadscript-run@.service"));
    let o = settings(&open, "Service");
    for key in [
        "ProtectSystem",
        "PrivateNetwork",
        "PrivateTmp",
        "CapabilityBoundingSet",
    ] {
        assert!(values(&o, key).is_empty(), "the default profile sets {key}");
    }
}

#[test]
fn path_units_watch_the_pipe_their_service_reads() {
    let units = generate(&[]);
    let path = read(&units.path().join("pure-uploadscript.path"));
    let p = settings(&path, "Path");
    assert_eq!(values(&p, "PathExists"), ["/run/pure-ftpd.upload.pipe"]);
    assert_eq!(values(&p, "Unit"), ["pure-uploadscript.service"]);
    assert_eq!(
        values(&settings(&path, "Install"), "WantedBy"),
        ["paths.target"]
    );

    let template = read(&units.path().join("uploadscript@.path"));
    let t = settings(&template, "Path");
    assert_eq!(values(&t, "PathExists"), ["%f"]);
    assert_eq!(values(&t, "Unit"), ["uploadscript@%i.service"]);
}

#[test]
fn responder_runs_unprivileged_behind_a_group_socket() {
    let units = generate(&[]);
    let socket = read(&units.path().join("pure-ftpwho.socket"));
    let s = settings(&socket, "Socket");
    assert_eq!(values(&s, "ListenStream"), ["/run/pure-ftpwho.sock"]);
    assert_eq!(values(&s, "SocketMode"), ["0660"]);
    assert_eq!(values(&s, "SocketGroup"), ["ftpwho"]);
    assert_eq!(values(&s, "Accept"), ["no"]);
    assert_eq!(
        values(&settings(&socket, "Install"), "WantedBy"),
        ["sockets.target"]
    );

    let service = read(&units.path().join("pure-ftpwho.service"));
    let s = settings(&service, "Service");
    assert_eq!(values(&s, "ExecStart"), ["/usr/sbin/ftpwhod"]);
    assert_eq!(values(&s, "Type"), ["notify"]);
    assert_eq!(values(&s, "DynamicUser"), ["yes"]);
    assert_eq!(values(&s, "AmbientCapabilities"), ["CAP_DAC_READ_SEARCH"]);
    assert_eq!(values(&s, "CapabilityBoundingSet"), ["CAP_DAC_READ_SEARCH"]);
    assert_eq!(values(&s, "PrivateNetwork"), ["yes"]);
    assert_eq!(values(&s, "ProtectSystem"), ["strict"]);
    // strict alone leaves the /run tmpfs, and so the scoreboard, writable.
    assert_eq!(values(&s, "ReadOnlyPaths"), ["/run"]);
    assert_eq!(values(&s, "RestrictAddressFamilies"), ["AF_UNIX"]);
    assert!(values(&s, "SystemCallFilter").contains(&"@system-service"));
}

#[test]
fn exporter_listens_everywhere_admits_localhost_and_runs_unprivileged() {
    let units = generate(&[]);
    let socket = read(&units.path().join("pureftpd-exporter.socket"));
    let s = settings(&socket, "Socket");
    assert_eq!(values(&s, "ListenStream"), ["21021"]);
    assert_eq!(values(&s, "Accept"), ["no"]);
    // Kernel-side client filter: localhost until a drop-in adds the scraper.
    assert_eq!(values(&s, "IPAddressDeny"), ["any"]);
    assert_eq!(values(&s, "IPAddressAllow"), ["localhost"]);
    assert_eq!(
        values(&settings(&socket, "Install"), "WantedBy"),
        ["sockets.target"]
    );
    let service = read(&units.path().join("pureftpd-exporter.service"));
    let s = settings(&service, "Service");
    assert_eq!(values(&s, "ExecStart"), ["/usr/sbin/pureftpd-exporter"]);
    assert_eq!(values(&s, "DynamicUser"), ["yes"]);
    assert_eq!(values(&s, "CapabilityBoundingSet"), ["CAP_DAC_READ_SEARCH"]);
    assert_eq!(values(&s, "AmbientCapabilities"), ["CAP_DAC_READ_SEARCH"]);
    // It only accepts on the passed socket: no network of its own.
    assert_eq!(values(&s, "PrivateNetwork"), ["yes"]);
    assert_eq!(values(&s, "RestrictAddressFamilies"), ["AF_UNIX"]);
    assert_eq!(values(&s, "ReadOnlyPaths"), ["/run"]);
    // Shipped disabled: neither package enables the socket.
    let repo = repo();
    for script in [
        "packaging/deb/maintainer-scripts/postinst",
        "packaging/rpm/50-pureftpd-systemd.preset",
    ] {
        let text = read(&repo.join(script));
        assert!(
            !text.contains("enable pureftpd-exporter"),
            "{script} enables the exporter"
        );
    }
    // The upload readers publish their counters in a state directory, where
    // the exporter looks by default.
    for (unit, dir) in [
        ("pure-uploadscript.service", "pure-uploadscript"),
        ("uploadscript@.service", "pure-uploadscript/%i"),
    ] {
        let s = settings(&read(&units.path().join(unit)), "Service");
        assert_eq!(values(&s, "StateDirectory"), [dir], "{unit}");
    }
    let defaults = pureftpd_systemd::metrics::settings::DEFAULT_UPLOAD_STATE_DIRS;
    assert_eq!(defaults, ["/var/lib/pure-uploadscript"]);
}

#[test]
fn generate_places_each_binary_where_asked() {
    let units = generate(&[
        "--sbindir",
        "/opt/p/sbin",
        "--uploadscript-dir",
        "/opt/p/libexec",
    ]);
    let exec = |name: &str| {
        values(
            &settings(&read(&units.path().join(name)), "Service"),
            "ExecStart",
        )
        .join(" ")
    };
    assert_eq!(exec("pure-ftpwho.service"), "/opt/p/sbin/ftpwhod");
    assert_eq!(
        exec("pureftpd-exporter.service"),
        "/opt/p/sbin/pureftpd-exporter"
    );
    assert!(exec("pure-uploadscript.service").starts_with("/opt/p/libexec/pure-uploadscript "));
    assert!(exec("uploadscript@.service").starts_with("/opt/p/libexec/pure-uploadscript "));
    let mut names: Vec<String> = std::fs::read_dir(units.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, UNITS);
}

#[test]
fn generate_rejects_bad_arguments() {
    for args in [
        vec!["--sbindir", "relative/sbin"],
        vec!["--uploadscript-dir", "/with space"],
        vec!["--bogus"],
    ] {
        let out = tempfile::tempdir().unwrap();
        let output = run(Command::new(repo().join("systemd/generate"))
            .args(&args)
            .arg(out.path()));
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!text(&output.stderr).is_empty(), "{args:?}");
    }
    let output = run(&mut Command::new(repo().join("systemd/generate")));
    assert_eq!(output.status.code(), Some(2));
}

/// The MESSAGE_IDs the daemons log with, and the subject of each.
const CATALOG: [(&str, &str); 15] = [
    (
        "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a60",
        "Upload processed: @UPLOAD_FILE@",
    ),
    ("5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a61", "Upload record rejected"),
    (
        "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a62",
        "Upload program failed: @UPLOAD_FILE@",
    ),
    (
        "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a63",
        "Upload program timed out: @UPLOAD_FILE@",
    ),
    (
        "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a70",
        "ftpwho query refused: permission denied",
    ),
    (
        "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a71",
        "ftpwho query refused: the responder is busy",
    ),
    ("5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a80", "Uploads queued"),
    (
        "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a81",
        "Upload program started: @UPLOAD_FILE@",
    ),
    (
        "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a82",
        "Upload record to be run again: @UPLOAD_FILE@",
    ),
    (
        "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a83",
        "Upload record dropped from the queue: @UPLOAD_FILE@",
    ),
    (
        "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a84",
        "Damaged upload queue file set aside",
    ),
    (
        "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a85",
        "Upload queue cannot be written: uploads stay in the pipe",
    ),
    (
        "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a86",
        "Upload queue can be written again",
    ),
    (
        "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a87",
        "Upload queue resumed at start",
    ),
    (
        "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a88",
        "Upload program run cut short by the reader's stop: @UPLOAD_FILE@",
    ),
];

#[test]
fn journalctl_compiles_the_catalog() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("usr/lib/systemd/catalog");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        repo().join("systemd/pureftpd-systemd.catalog"),
        dir.join("pureftpd-systemd.catalog"),
    )
    .unwrap();
    let output = run(Command::new("journalctl")
        .arg(format!("--root={}", root.path().display()))
        .arg("--update-catalog"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        !text(&output.stderr).contains("pureftpd-systemd.catalog"),
        "journalctl complains: {}",
        text(&output.stderr)
    );
    let output = run(Command::new("journalctl")
        .arg(format!("--root={}", root.path().display()))
        .arg("--list-catalog"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let listed: Vec<String> = text(&output.stdout).lines().map(str::to_owned).collect();
    let expected: Vec<String> = CATALOG
        .iter()
        .map(|(id, subject)| format!("{id} pureftpd-systemd: {subject}"))
        .collect();
    assert_eq!(listed, expected);
    // Each entry explains itself and points to the manual.
    for (id, _) in CATALOG {
        let output = run(Command::new("journalctl")
            .arg(format!("--root={}", root.path().display()))
            .args(["--dump-catalog", id]));
        let entry = text(&output.stdout);
        assert!(entry.contains("Documentation: man:"), "{id}:\n{entry}");
        assert!(entry.lines().count() > 8, "{id} is too short:\n{entry}");
    }
}

#[test]
fn systemd_sysusers_creates_group_ftpwho() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    let output = run(Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(repo().join("systemd/pureftpd-systemd.sysusers")));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let group = read(&root.path().join("etc/group"));
    let line = group
        .lines()
        .find(|l| l.starts_with("ftpwho:"))
        .unwrap_or_else(|| panic!("no ftpwho in\n{group}"));
    let gid: u32 = line.split(':').nth(2).unwrap().parse().unwrap();
    assert!(gid < 1000, "ftpwho is not a system group: {line}");
    // No user comes with it.
    assert!(!std::fs::read_to_string(root.path().join("etc/passwd"))
        .unwrap_or_default()
        .contains("ftpwho"));
}

#[test]
fn gen_docs_renders_a_page_and_completions_per_binary() {
    let files = gen_docs::render(&gen_docs::pages()).expect("render");
    let names: BTreeSet<String> = files
        .iter()
        .map(|(p, _)| p.to_str().unwrap().to_owned())
        .collect();
    let mut expected = BTreeSet::new();
    for (bin, section) in [
        ("pure-ftpwho", 8),
        ("pure-uploadscript", 8),
        ("ftpwhod", 8),
        ("ftpwho-query", 1),
        ("pureftpd-exporter", 8),
    ] {
        expected.insert(format!("man/{bin}.{section}"));
        expected.insert(format!("completions/bash/{bin}"));
        expected.insert(format!("completions/zsh/_{bin}"));
        expected.insert(format!("completions/fish/{bin}.fish"));
    }
    assert_eq!(names, expected);
    for (path, bytes) in &files {
        let body = text(bytes);
        let name = path.file_name().unwrap().to_str().unwrap();
        if path.starts_with("man") {
            let bin = name.rsplit_once('.').unwrap().0;
            assert!(body.contains(&format!(".TH {bin} ")), "{name}:\n{body}");
            for section in [
                ".SH NAME",
                ".SH SYNOPSIS",
                ".SH OPTIONS",
                ".SH FILES",
                ".SH \"SEE ALSO\"",
            ] {
                assert!(body.contains(section), "{name} lacks {section}");
            }
            assert!(body.contains("\\-\\-help"), "{name} lists no --help");
        } else if path.starts_with("completions/bash") {
            // The script is valid bash and completes this binary.
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join(name);
            std::fs::write(&file, bytes).unwrap();
            let output = run(Command::new("bash").arg("-n").arg(&file));
            assert!(output.status.success(), "{name}: {}", text(&output.stderr));
            assert!(
                body.contains(&format!("complete -F _{}", name.replace('-', "__")))
                    || body.contains(name)
            );
        } else {
            assert!(body.contains(name.trim_start_matches('_').trim_end_matches(".fish")));
        }
    }
}

/// Every `MESSAGE_ID` the code logs with has an entry in the journal
/// catalog, and the catalog explains no id the code does not use.
#[test]
fn the_catalog_explains_every_message_id_and_only_those() {
    fn ids_in(text: &str) -> BTreeSet<String> {
        text.split(|c: char| !c.is_ascii_hexdigit())
            .filter(|w| w.len() == 32 && w.starts_with("5e1a2f8c"))
            .map(str::to_owned)
            .collect()
    }
    fn sources(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&read(&path));
            }
        }
    }
    let mut code = String::new();
    sources(&repo().join("src"), &mut code);
    let used = ids_in(&code);
    let catalog = read(&repo().join("systemd/pureftpd-systemd.catalog"));
    let explained: BTreeSet<String> = catalog
        .lines()
        .filter_map(|l| l.strip_prefix("-- "))
        .map(str::to_owned)
        .collect();
    assert!(used.len() >= 6, "message ids found in the code: {used:?}");
    assert_eq!(used, explained, "code (left) and catalog (right) differ");
}
