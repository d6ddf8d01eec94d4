//! The deb and rpm packages: both build scripts run once per test run
//! (sharing the cargo target directory), then lintian and rpmlint check
//! them, the packaged units pass `systemd-analyze verify` against the
//! packaged binaries and manual pages, and the deb goes through install,
//! reinstall, remove and purge beside Debian's pure-ftpd.
//!
//! The dpkg cycle runs on this machine's own root file system and package
//! database, seen through a throw-away overlay in a private mount namespace:
//! the host's dpkg state and /usr/sbin are never modified, so other users of
//! Debian's pure-ftpwho on the machine are not disturbed, and nothing is left
//! behind whatever happens (the namespace dies with its holder process).
//! Needs root.

mod common;

use common::UNITS;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// Runs `command`, panicking with its output unless it succeeds.
fn ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

struct Packages {
    deb: PathBuf,
    rpm: PathBuf,
}

/// Runs a build script; its last line of output is the package.
fn build(script: &str) -> PathBuf {
    let output = run(Command::new(repo().join(script)).stdin(Stdio::null()));
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}{}",
        output.status,
        text(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let path = PathBuf::from(last);
    assert!(
        path.is_absolute() && path.is_file(),
        "{script}: last line is not a package: {last:?}"
    );
    path
}

/// Both packages, built once per test run.
fn packages() -> &'static Packages {
    static PACKAGES: OnceLock<Packages> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        let deb = build("packaging/deb/build.sh");
        let rpm = build("packaging/rpm/build.sh");
        assert!(deb.extension().is_some_and(|e| e == "deb"), "{deb:?}");
        assert!(rpm.extension().is_some_and(|e| e == "rpm"), "{rpm:?}");
        Packages { deb, rpm }
    })
}

/// Files every package carries, by path in the deb.
fn deb_files() -> Vec<String> {
    let mut files: Vec<String> = [
        "/usr/sbin/pure-ftpwho",
        "/usr/sbin/pure-uploadscript",
        "/usr/sbin/ftpwhod",
        "/usr/sbin/pureftpd-exporter",
        "/usr/bin/ftpwho-query",
        "/usr/lib/sysusers.d/pureftpd-systemd.conf",
        "/usr/lib/systemd/catalog/pureftpd-systemd.catalog",
        "/usr/share/man/man8/pure-ftpwho.8.gz",
        "/usr/share/man/man8/pureftpd-exporter.8.gz",
        "/usr/share/man/man8/pure-uploadscript.8.gz",
        "/usr/share/man/man8/ftpwhod.8.gz",
        "/usr/share/man/man1/ftpwho-query.1.gz",
        "/etc/pure-uploadscript.toml",
        "/etc/ftpwhod.toml",
        "/usr/share/doc/pureftpd-systemd/README.md",
        "/usr/share/doc/pureftpd-systemd/copyright",
        "/usr/share/doc/pureftpd-systemd/changelog.Debian.gz",
        "/usr/share/doc/pureftpd-systemd/examples/sandbox.conf",
        "/usr/share/doc/pureftpd-systemd/examples/pure-uploadscript.toml",
        "/usr/share/doc/pureftpd-systemd/examples/ftpwhod.toml",
        "/usr/share/doc/pureftpd-systemd/examples/pureftpd-exporter.toml",
        "/usr/share/doc/pureftpd-systemd/examples/grafana-dashboard.json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for unit in UNITS {
        files.push(format!("/lib/systemd/system/{unit}"));
    }
    for bin in [
        "pure-ftpwho",
        "pure-uploadscript",
        "ftpwhod",
        "ftpwho-query",
        "pureftpd-exporter",
    ] {
        files.push(format!("/usr/share/bash-completion/completions/{bin}"));
        files.push(format!("/usr/share/zsh/vendor-completions/_{bin}"));
        files.push(format!("/usr/share/fish/vendor_completions.d/{bin}.fish"));
    }
    files
}

fn deb_listing(deb: &Path) -> BTreeSet<String> {
    ok(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').trim_end_matches('/').to_owned())
        .collect()
}

#[test]
fn deb_carries_everything_with_the_right_metadata() {
    let deb = &packages().deb;
    let listing = deb_listing(deb);
    for file in deb_files() {
        assert!(listing.contains(&file), "{} lacks {file}", deb.display());
    }
    let field = |name: &str| {
        ok(Command::new("dpkg-deb")
            .args(["--field"])
            .arg(deb)
            .arg(name))
        .trim()
        .to_owned()
    };
    assert_eq!(field("Package"), "pureftpd-systemd");
    assert_eq!(field("Architecture"), "amd64");
    assert!(field("Depends").contains("libc6"), "{}", field("Depends"));
    assert!(field("Recommends").contains("pure-ftpd"));
    let control = tempfile::tempdir().unwrap();
    ok(Command::new("dpkg-deb")
        .arg("--control")
        .arg(deb)
        .arg(control.path()));
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
    let conffiles: BTreeSet<&str> = conffiles.lines().collect();
    assert_eq!(
        conffiles,
        BTreeSet::from(["/etc/ftpwhod.toml", "/etc/pure-uploadscript.toml"])
    );
    for script in ["preinst", "postinst", "prerm", "postrm", "md5sums"] {
        assert!(control.path().join(script).is_file(), "no {script}");
    }
    let md5sums = std::fs::read_to_string(control.path().join("md5sums")).unwrap();
    assert!(md5sums.contains("  usr/sbin/pure-ftpwho\n"), "{md5sums}");
}

#[test]
fn deb_is_lintian_clean() {
    let deb = &packages().deb;
    let output = run(Command::new("lintian")
        .args([
            "--fail-on",
            "error,warning",
            "--display-info",
            "--no-tag-display-limit",
        ])
        .arg(deb));
    let stdout = text(&output.stdout);
    eprintln!("lintian:\n{stdout}");
    assert!(
        output.status.success(),
        "lintian found errors or warnings ({}):\n{stdout}{}",
        output.status,
        text(&output.stderr)
    );
    for line in stdout.lines() {
        assert!(
            !line.starts_with("E:") && !line.starts_with("W:"),
            "lintian: {line}"
        );
    }
}

#[test]
fn rpm_is_rpmlint_clean_and_complete() {
    let rpm = &packages().rpm;
    let output = run(Command::new("rpmlint")
        .arg("-c")
        .arg(repo().join("packaging/rpm/rpmlint.toml"))
        .arg(rpm));
    let stdout = text(&output.stdout);
    eprintln!("rpmlint:\n{stdout}");
    assert!(
        output.status.success(),
        "rpmlint failed:\n{stdout}{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains(" 0 errors, 0 warnings"),
        "rpmlint:\n{stdout}"
    );

    let files: BTreeSet<String> = ok(Command::new("rpm").arg("-qpl").arg(rpm))
        .lines()
        .map(str::to_owned)
        .collect();
    let mut expected: Vec<String> = [
        "/usr/libexec/pureftpd-systemd/pure-ftpwho",
        "/usr/libexec/pureftpd-systemd/pure-uploadscript",
        "/usr/sbin/ftpwhod",
        "/usr/sbin/pureftpd-exporter",
        "/usr/bin/ftpwho-query",
        "/usr/lib/sysusers.d/pureftpd-systemd.conf",
        "/usr/lib/systemd/catalog/pureftpd-systemd.catalog",
        "/usr/lib/systemd/system-preset/50-pureftpd-systemd.preset",
        "/usr/share/man/man8/pureftpd-exporter.8.gz",
        "/usr/share/doc/pureftpd-systemd/examples/grafana-dashboard.json",
        "/usr/share/man/man8/ftpwhod.8.gz",
        "/usr/share/man/man1/ftpwho-query.1.gz",
        "/usr/share/doc/pureftpd-systemd/man8/pure-ftpwho.8.gz",
        "/usr/share/doc/pureftpd-systemd/man8/pure-uploadscript.8.gz",
        "/usr/share/doc/pureftpd-systemd/examples/sandbox.conf",
        "/usr/share/licenses/pureftpd-systemd/LICENSE",
        "/etc/pure-uploadscript.toml",
        "/etc/ftpwhod.toml",
        "/etc/pure-uploadscript.d",
        "/etc/ftpwhod.d",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for unit in UNITS {
        expected.push(format!("/usr/lib/systemd/system/{unit}"));
    }
    for file in &expected {
        assert!(files.contains(file), "{} lacks {file}", rpm.display());
    }
    // Nothing collides with the distribution's pure-ftpd.
    for taken in [
        "/usr/sbin/pure-ftpwho",
        "/usr/sbin/pure-uploadscript",
        "/usr/share/man/man8/pure-ftpwho.8.gz",
        "/usr/share/man/man8/pure-uploadscript.8.gz",
    ] {
        assert!(!files.contains(taken), "the rpm would conflict on {taken}");
    }
    let config: BTreeSet<String> = ok(Command::new("rpm").arg("-qpc").arg(rpm))
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        config,
        BTreeSet::from([
            "/etc/ftpwhod.toml".to_owned(),
            "/etc/pure-uploadscript.toml".to_owned()
        ])
    );
    let scripts = ok(Command::new("rpm").args(["-qp", "--scripts"]).arg(rpm));
    for needle in [
        "preinstall scriptlet",
        "groupadd -r ftpwho",
        "systemctl --no-reload preset pure-ftpwho.socket pure-uploadscript.path",
        "systemctl --no-reload disable",
        "journalctl --update-catalog",
    ] {
        assert!(
            scripts.contains(needle),
            "scriptlets lack {needle:?}:\n{scripts}"
        );
    }
    // The units run the drop-in from where the rpm puts it.
    let unpacked = tempfile::tempdir().unwrap();
    let cpio = run(Command::new("sh")
        .arg("-c")
        .arg("rpm2cpio \"$1\" | cpio -idm --quiet")
        .arg("sh")
        .arg(rpm)
        .current_dir(unpacked.path()));
    assert!(cpio.status.success(), "{}", text(&cpio.stderr));
    let unit = std::fs::read_to_string(
        unpacked
            .path()
            .join("usr/lib/systemd/system/pure-uploadscript.service"),
    )
    .unwrap();
    assert!(unit.contains(
        "\nExecStart=/usr/libexec/pureftpd-systemd/pure-uploadscript --pipe /run/pure-ftpd.upload.pipe\n"
    ));
    let preset = std::fs::read_to_string(
        unpacked
            .path()
            .join("usr/lib/systemd/system-preset/50-pureftpd-systemd.preset"),
    )
    .unwrap();
    assert!(preset.contains("\nenable pure-ftpwho.socket\n"));
    assert!(preset.contains("\nenable pure-uploadscript.path\n"));
}

#[test]
fn packaged_units_verify_against_packaged_binaries_and_man_pages() {
    let deb = &packages().deb;
    let root = tempfile::tempdir().unwrap();
    ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root.path()));
    let root = root.path();
    // The shipped units, with /usr/sbin moved into the unpacked tree.
    let units = tempfile::tempdir().unwrap();
    let sbin = root.join("usr/sbin");
    let mut command = Command::new("systemd-analyze");
    command
        .arg("verify")
        .env("MANPATH", root.join("usr/share/man"));
    for unit in UNITS {
        let shipped = std::fs::read_to_string(root.join("lib/systemd/system").join(unit)).unwrap();
        let moved = shipped.replace("/usr/sbin/", &format!("{}/", sbin.display()));
        std::fs::write(units.path().join(unit), moved).unwrap();
        command.arg(units.path().join(unit));
    }
    let output = run(&mut command);
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "systemd-analyze verify of the packaged units:\n{}",
        text(&output.stderr)
    );
}

/// A private mount namespace whose `root` is an overlay of this machine's
/// root file system (writes go to a tmpfs); killed on drop.
struct Sandbox {
    holder: Child,
    base: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let base = tempfile::Builder::new()
            .prefix("pureftpd-systemd-dpkg.")
            .tempdir()
            .unwrap();
        let script = r#"
            set -eu
            base=$1
            mount -t tmpfs -o mode=0755 pureftpd-systemd-dpkg "$base"
            mkdir "$base/upper" "$base/work" "$base/root"
            mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$base/root"
            mount --rbind /dev "$base/root/dev"
            mount -t proc proc "$base/root/proc"
            echo ready
            # Holds the namespace until killed, or until the test is gone.
            while kill -0 "$2" 2>/dev/null; do sleep 1; done
        "#;
        let mut holder = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(base.path())
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot run unshare (util-linux)");
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let sandbox = Sandbox { holder, base };
        assert_eq!(
            line.trim(),
            "ready",
            "cannot set up the overlay (root needed)"
        );
        sandbox
    }

    fn root(&self) -> PathBuf {
        self.base.path().join("root")
    }

    /// Runs `sh -c script` chrooted into the overlay.
    fn sh(&self, script: &str) -> Output {
        run(Command::new("nsenter")
            .arg("-t")
            .arg(self.holder.id().to_string())
            .args(["-m", "--", "chroot"])
            .arg(self.root())
            .args([
                "/usr/bin/env",
                "-i",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ])
            .args([
                "LC_ALL=C",
                "DEBIAN_FRONTEND=noninteractive",
                "sh",
                "-c",
                script,
            ]))
    }

    /// Like `sh`, panicking unless the script succeeds; its stdout.
    fn ok(&self, script: &str) -> String {
        let output = self.sh(script);
        assert!(
            output.status.success(),
            "{script} failed ({}):\n{}{}",
            output.status,
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// Copies a host file into the overlay.
    fn put(&self, from: &Path, to: &str) {
        let status = Command::new("nsenter")
            .arg("-t")
            .arg(self.holder.id().to_string())
            .args(["-m", "--", "cp"])
            .arg(from)
            .arg(self.root().join(to.trim_start_matches('/')))
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Paths changed in the overlay since it was set up.
    fn changed(&self) -> Vec<String> {
        let output = run(Command::new("nsenter")
            .arg("-t")
            .arg(self.holder.id().to_string())
            .args(["-m", "--", "find"])
            .arg(self.base.path().join("upper"))
            .arg("-printf")
            .arg("/%P\\n"));
        text(&output.stdout).lines().map(str::to_owned).collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // The overlay and every mount die with the namespace's last process.
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// md5 of `path` as the distribution's package lists it in its md5sums.
fn distribution_md5(package: &str, path: &str) -> String {
    let sums = std::fs::read_to_string(format!("/var/lib/dpkg/info/{package}.md5sums"))
        .unwrap_or_else(|e| panic!("{package} is not installed: {e}"));
    let path = path.trim_start_matches('/');
    sums.lines()
        .find_map(|l| l.strip_suffix(path).map(|s| s.trim().to_owned()))
        .unwrap_or_else(|| panic!("{package} does not ship {path}"))
}

const DIVERTED: [(&str, &str, &str); 4] = [
    (
        "pure-ftpd",
        "/usr/sbin/pure-ftpwho",
        "/usr/sbin/pure-ftpwho.distrib",
    ),
    (
        "pure-ftpd",
        "/usr/sbin/pure-uploadscript",
        "/usr/sbin/pure-uploadscript.distrib",
    ),
    (
        "pure-ftpd-common",
        "/usr/share/man/man8/pure-ftpwho.8.gz",
        "/usr/share/man/man8/pure-ftpwho.distrib.8.gz",
    ),
    (
        "pure-ftpd-common",
        "/usr/share/man/man8/pure-uploadscript.8.gz",
        "/usr/share/man/man8/pure-uploadscript.distrib.8.gz",
    ),
];

fn md5_in(sandbox: &Sandbox, path: &str) -> String {
    sandbox
        .ok(&format!("md5sum '{path}'"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn our_diversions(sandbox: &Sandbox) -> BTreeSet<String> {
    sandbox
        .ok("dpkg-divert --list")
        .lines()
        .filter(|l| l.ends_with(" by pureftpd-systemd"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn deb_installs_beside_debian_pure_ftpd_and_purges_without_a_trace() {
    let deb = &packages().deb;
    // What the package must give back: Debian's own files.
    let originals: Vec<(&str, &str, String)> = DIVERTED
        .iter()
        .map(|(package, path, diverted)| (*path, *diverted, distribution_md5(package, path)))
        .collect();
    let unpacked = tempfile::tempdir().unwrap();
    ok(Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(unpacked.path()));

    let sandbox = Sandbox::new();
    sandbox.put(deb, "/tmp/pureftpd-systemd.deb");
    assert!(
        sandbox
            .ok("dpkg-query -W -f='${Status}' pure-ftpd")
            .contains("install ok installed"),
        "Debian's pure-ftpd must be installed"
    );
    assert!(
        our_diversions(&sandbox).is_empty(),
        "diversions before install"
    );

    // Install.
    sandbox.ok("dpkg -i /tmp/pureftpd-systemd.deb");
    let expected_diversions: BTreeSet<String> = DIVERTED
        .iter()
        .map(|(_, path, diverted)| format!("diversion of {path} to {diverted} by pureftpd-systemd"))
        .collect();
    assert_eq!(our_diversions(&sandbox), expected_diversions);
    for (path, diverted, original) in &originals {
        assert_eq!(
            &md5_in(&sandbox, diverted),
            original,
            "{diverted} is not Debian's {path}"
        );
        let ours =
            ok(Command::new("md5sum").arg(unpacked.path().join(path.trim_start_matches('/'))));
        assert_eq!(
            md5_in(&sandbox, path),
            ours.split_whitespace().next().unwrap(),
            "{path} is not this package's"
        );
    }
    assert_eq!(
        sandbox.ok("command -v pure-ftpwho; command -v pure-uploadscript"),
        "/usr/sbin/pure-ftpwho\n/usr/sbin/pure-uploadscript\n"
    );
    for file in deb_files() {
        sandbox.ok(&format!("test -e '{file}'"));
    }
    sandbox.ok("dpkg --verify pureftpd-systemd");
    sandbox.ok("dpkg --verify pure-ftpd pure-ftpd-common");
    sandbox.ok("getent group ftpwho");
    sandbox.ok("test -L /etc/systemd/system/sockets.target.wants/pure-ftpwho.socket");
    sandbox.ok("test -L /etc/systemd/system/paths.target.wants/pure-uploadscript.path");
    // Debian's systemd trigger compiled the catalog.
    let catalog = sandbox.ok("journalctl --list-catalog");
    assert!(
        catalog.contains("5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a60 pureftpd-systemd: Upload processed"),
        "catalog not compiled:\n{catalog}"
    );

    // Reinstall (the upgrade path): diversions stay, the administrator's
    // configuration is kept.
    sandbox.ok("echo 'run = \"/usr/local/bin/on-upload\"' >> /etc/pure-uploadscript.toml");
    sandbox.ok("dpkg -i /tmp/pureftpd-systemd.deb");
    assert_eq!(our_diversions(&sandbox), expected_diversions);
    assert!(sandbox
        .ok("cat /etc/pure-uploadscript.toml")
        .contains("\nrun = \"/usr/local/bin/on-upload\"\n"));
    sandbox.ok("dpkg --verify pure-ftpd pure-ftpd-common");

    // Remove: Debian's files are back, configuration stays.
    sandbox.ok("dpkg -r pureftpd-systemd");
    assert!(
        our_diversions(&sandbox).is_empty(),
        "diversions left after remove"
    );
    for (path, diverted, original) in &originals {
        assert_eq!(
            &md5_in(&sandbox, path),
            original,
            "{path} is not Debian's again"
        );
        sandbox.ok(&format!("test ! -e '{diverted}'"));
    }
    for unit in UNITS {
        sandbox.ok(&format!("test ! -e /lib/systemd/system/{unit}"));
    }
    sandbox.ok("test ! -e /usr/sbin/ftpwhod && test ! -e /usr/bin/ftpwho-query");
    sandbox.ok("test -f /etc/pure-uploadscript.toml");
    assert!(sandbox
        .ok("dpkg-query -W -f='${Status}' pureftpd-systemd")
        .contains("deinstall ok config-files"));
    sandbox.ok("dpkg --verify pure-ftpd pure-ftpd-common");

    // Purge: nothing of the package is left.
    sandbox.ok("dpkg -P pureftpd-systemd");
    assert!(our_diversions(&sandbox).is_empty());
    sandbox.ok("! dpkg-query -W pureftpd-systemd 2>/dev/null");
    sandbox.ok("! getent group ftpwho");
    sandbox.ok("test ! -e /etc/pure-uploadscript.toml && test ! -e /etc/ftpwhod.toml");
    let leftovers = sandbox.ok(
        "find /etc/systemd /var/lib/systemd /lib/systemd /usr/lib/systemd /usr/lib/sysusers.d \
         /etc /usr/sbin /usr/bin /usr/share/man /usr/share/doc /var/lib/dpkg/info \
         \\( -name '*ftpwho*' -o -name '*uploadscript*' -o -name '*pureftpd-systemd*' \\) -print",
    );
    let leftovers: Vec<&str> = leftovers
        .lines()
        .filter(|l| {
            // Debian's own files.
            !matches!(
                *l,
                "/usr/sbin/pure-ftpwho"
                    | "/usr/sbin/pure-uploadscript"
                    | "/usr/share/man/man8/pure-ftpwho.8.gz"
                    | "/usr/share/man/man8/pure-uploadscript.8.gz"
            )
        })
        .collect();
    assert!(leftovers.is_empty(), "left after purge: {leftovers:?}");
    for file in ["/etc/group", "/etc/gshadow"] {
        assert!(
            !sandbox.ok(&format!("cat {file}")).contains("ftpwho:"),
            "{file}"
        );
    }
    for (path, _, original) in &originals {
        assert_eq!(&md5_in(&sandbox, path), original);
    }
    sandbox.ok("dpkg --verify pure-ftpd pure-ftpd-common");
    sandbox.ok("dpkg --audit");
    // Changed files in the overlay all belong to dpkg's own bookkeeping and
    // caches, none to the package.
    let changed: Vec<String> = sandbox
        .changed()
        .into_iter()
        .filter(|p| {
            p.contains("ftpwho") || p.contains("uploadscript") || p.contains("pureftpd-systemd")
        })
        .filter(|p| p != "/tmp/pureftpd-systemd.deb")
        // Debian's files, renamed back and forth (checked above).
        .filter(|p| !DIVERTED.iter().any(|(_, path, _)| p == path))
        .collect();
    assert!(changed.is_empty(), "left after purge: {changed:?}");
}

/// The settings a sample configuration shows, commented out: each
/// `#key = value` line with the `#` removed.
fn uncommented(sample: &str) -> String {
    let mut out = String::new();
    for line in sample.lines() {
        if let Some(setting) = line.strip_prefix('#') {
            let key = setting.split(" = ").next().unwrap_or_default();
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                out.push_str(setting);
                out.push('\n');
            }
        }
    }
    out
}

#[test]
fn ftpwhod_sample_configuration_shows_the_real_keys_and_defaults() {
    use pureftpd_systemd::ftpwho::settings::FtpwhodConfig;
    use pureftpd_systemd::os::config;
    let path = repo().join("packaging/ftpwhod.toml.sample");
    let sample = std::fs::read_to_string(&path).unwrap();
    // As shipped (all commented out), it changes nothing.
    let shipped: FtpwhodConfig = config::parse(&path, &sample).expect("sample parses");
    assert_eq!(shipped, FtpwhodConfig::default());
    // Every key it shows exists (unknown keys are errors), and every value
    // shown is the default.
    let settings = uncommented(&sample);
    assert!(settings.lines().count() >= 8, "{settings}");
    let shown: FtpwhodConfig = config::parse(&path, &settings)
        .unwrap_or_else(|e| panic!("uncommented sample: {e}\n{settings}"));
    assert_eq!(
        shown.settings().expect("valid values"),
        FtpwhodConfig::default().settings().unwrap()
    );
    assert!(shown.group.is_some() && shown.layout.is_some() && shown.top_users.is_some());
}

#[test]
fn exporter_sample_configuration_shows_the_real_keys_and_defaults() {
    use pureftpd_systemd::metrics::settings::ExporterConfig;
    use pureftpd_systemd::os::config;
    let path = repo().join("packaging/pureftpd-exporter.toml.sample");
    let sample = std::fs::read_to_string(&path).unwrap();
    let shipped: ExporterConfig = config::parse(&path, &sample).expect("sample parses");
    assert_eq!(shipped, ExporterConfig::default());
    let settings = uncommented(&sample);
    assert_eq!(settings.lines().count(), 8, "{settings}");
    let shown: ExporterConfig = config::parse(&path, &settings)
        .unwrap_or_else(|e| panic!("uncommented sample: {e}\n{settings}"));
    assert_eq!(
        shown.settings().expect("valid values"),
        ExporterConfig::default().settings().unwrap()
    );
    assert!(shown.upload_state_dirs.is_some() && shown.layout.is_some());
}

#[test]
fn upload_reader_sample_configuration_shows_every_key() {
    use pureftpd_systemd::os::config;
    use pureftpd_systemd::upload::settings::{Inputs, UploadscriptConfig, DEFAULT_PIDFILE, KEYS};
    let path = repo().join("packaging/pure-uploadscript.toml.sample");
    let sample = std::fs::read_to_string(&path).unwrap();
    let shipped: UploadscriptConfig = config::parse(&path, &sample).expect("sample parses");
    assert_eq!(shipped, UploadscriptConfig::default());
    let settings = uncommented(&sample);
    let shown: UploadscriptConfig = config::parse(&path, &settings)
        .unwrap_or_else(|e| panic!("uncommented sample: {e}\n{settings}"));
    let keys: BTreeSet<&str> = settings
        .lines()
        .map(|l| l.split(" = ").next().unwrap())
        .collect();
    let documented: BTreeSet<&str> = KEYS.iter().map(|(key, _, _)| *key).collect();
    assert_eq!(
        keys, documented,
        "the sample shows other keys than the daemon has"
    );
    assert!(shown.run.is_some() && shown.vhost_dir.is_some() && shown.timeout.is_some());
    // Apart from the examples (run, uid, gid), the values shown are the
    // defaults; the pipe is shown by its /var/run name.
    let defaults = Inputs::merge(Default::default(), Default::default());
    let pidfile = shown.pidfile.clone();
    let inputs = Inputs::merge(shown, Default::default());
    let fields = |i: &Inputs| {
        (
            i.timeout,
            i.hash,
            i.capture_output,
            i.keep_env,
            i.vhost_dir.clone(),
            i.daemonize,
            (
                i.state_dir.clone(),
                i.jobs,
                i.retries,
                i.retry_delay,
                i.retry_delay_max,
            ),
        )
    };
    assert_eq!(fields(&inputs), fields(&defaults));
    assert_eq!(pidfile, Some(DEFAULT_PIDFILE.into()));
    assert_eq!(
        Path::new("/run").join(inputs.pipe.strip_prefix("/var/run").unwrap()),
        defaults.pipe
    );
}

#[test]
fn rpm_scriptlets_enable_create_disable_in_an_install_erase_cycle() {
    let rpm = &packages().rpm;
    let sandbox = Sandbox::new();
    sandbox.put(rpm, "/tmp/pureftpd-systemd.rpm");
    // No RPM database describes this Debian system's libraries: --nodeps.
    let rpm_cmd = "rpm --dbpath /var/lib/pureftpd-systemd-rpmdb";
    sandbox.ok(&format!(
        "mkdir -p /var/lib/pureftpd-systemd-rpmdb && {rpm_cmd} --initdb"
    ));
    sandbox.ok(&format!("{rpm_cmd} -i --nodeps /tmp/pureftpd-systemd.rpm"));
    for file in [
        "/usr/sbin/ftpwhod",
        "/usr/bin/ftpwho-query",
        "/usr/libexec/pureftpd-systemd/pure-ftpwho",
        "/usr/libexec/pureftpd-systemd/pure-uploadscript",
        "/usr/lib/systemd/system/pure-uploadscript.service",
        "/etc/pure-uploadscript.toml",
    ] {
        sandbox.ok(&format!("test -e {file}"));
    }
    // Debian's tools are untouched: the rpm does not take their paths.
    for (package, path, _) in DIVERTED {
        assert_eq!(
            md5_in(&sandbox, path),
            distribution_md5(package, path),
            "{path}"
        );
    }
    sandbox.ok("getent group ftpwho");
    // %post applied the package's preset: the socket and path units are
    // enabled, the services are not.
    let enabled = sandbox.ok(
        "systemctl is-enabled pure-ftpwho.socket pure-uploadscript.path; \
         systemctl is-enabled pure-uploadscript.service || true",
    );
    assert_eq!(enabled, "enabled\nenabled\ndisabled\n");
    sandbox.ok(&format!("{rpm_cmd} -V --nodeps pureftpd-systemd"));

    sandbox.ok(&format!("{rpm_cmd} -e --nodeps pureftpd-systemd"));
    sandbox.ok("test ! -e /usr/sbin/ftpwhod && test ! -e /usr/libexec/pureftpd-systemd");
    sandbox.ok("test ! -e /usr/lib/systemd/system/pure-ftpwho.socket");
    let links =
        sandbox.ok("find /etc/systemd/system -name 'pure-*' -o -name 'uploadscript@*' | sort");
    assert!(links.is_empty(), "enablement left after erase: {links}");
    sandbox.ok("test ! -e /etc/pure-uploadscript.toml");
}
