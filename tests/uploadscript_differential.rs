//! Differential tests against Debian's C `pure-uploadscript`.
//!
//! 1. The real Debian `pure-ftpd -o` on a loopback port, uploads made with
//!    `curl -T` (names with spaces, quotes, `$()`, leading dashes, UTF-8
//!    and Latin-1 bytes, sub-directories, empty files), read once by the C
//!    reader and once by this one: the program must get the same argument
//!    and the same `UPLOAD_*` values.
//! 2. Hand-made records written straight into the FIFO (virtual hosts,
//!    relative names, limits, control bytes, odd owners and modes,
//!    symlinks, directories) for both readers.
//!
//! pure-ftpd and the C reader use the fixed path
//! `/var/run/pure-ftpd.upload.pipe`, so each run happens in a private mount
//! namespace (`unshare --mount`) with a tmpfs over `/run`. Needs root, and
//! the Debian packages `pure-ftpd`, `curl` and `util-linux` (see
//! `scripts/install-deps`).

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const OURS: &str = env!("CARGO_BIN_EXE_pure-uploadscript");
const C_READER: &str = "/usr/sbin/pure-uploadscript";
const PURE_FTPD: &str = "/usr/sbin/pure-ftpd";
const FTP_USER: &str = "upldiff";
const FTP_PASSWORD: &str = "Upl-diff-7";
const FTP_HOME: &str = "/home/upldiff";

fn require_tools() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the differential tests need root (mount namespaces, a unix test user)"
    );
    for tool in [
        C_READER,
        PURE_FTPD,
        "/usr/bin/curl",
        "/usr/bin/unshare",
        "/usr/sbin/useradd",
        "/usr/sbin/chpasswd",
    ] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run scripts/install-deps (Debian packages pure-ftpd, curl, \
             util-linux, passwd)"
        );
    }
}

/// The recording program: one NUL-separated block per run with the
/// argument and the sorted `UPLOAD_*` variables (`UPLOAD_FD` left out: the
/// C tool has none).
fn hook(out: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         {{ printf 'BEGIN\\0ARG=%s\\0' \"$1\"; \
            env -0 | LC_ALL=C grep -az '^UPLOAD_' | LC_ALL=C grep -avz '^UPLOAD_FD=' | LC_ALL=C sort -z; \
            printf 'END\\0'; }} >> '{}'\n",
        out.display()
    )
}

/// Runs in a private mount namespace: starts the reader given as "c" or
/// "ours" on the fixed FIFO path, optionally pure-ftpd with uploads from
/// a list, or a byte stream written straight into the FIFO, and waits for
/// the expected number of runs.
const DRIVER: &str = r#"#!/bin/bash
set -euo pipefail
phase=$1
mount -t tmpfs tmpfs /run
if [ -n "${VHOST_ROOT:-}" ]; then
    mount --bind "$VHOST_ROOT" /etc/pure-ftpd
fi
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
pipe=/var/run/pure-ftpd.upload.pipe
if [ "$phase" = c ]; then
    mkfifo -m 600 "$pipe"
    "$C_READER" -r "$HOOK" -u 65534 -g 65534 2>"$WORK/reader.err" &
else
    "$OURS" -r "$HOOK" -u 65534 -g 65534 --pipe "$pipe" --config "$WORK/empty.toml" \
        2>"$WORK/reader.err" &
fi
reader=$!
pids+=("$reader")
for _ in $(seq 200); do [ -p "$pipe" ] && break; sleep 0.05; done
sleep 0.3
if [ -n "${STREAM:-}" ]; then
    cat "$STREAM" > "$pipe"
else
    "$PURE_FTPD" -S "127.0.0.1,$PORT" -l unix -o -A -E -p "$PASV" 2>"$WORK/ftpd.err" &
    pids+=("$!")
    ok=
    for _ in $(seq 100); do
        if curl -s -o /dev/null --user "$FTP_LOGIN" "ftp://127.0.0.1:$PORT/"; then ok=1; break; fi
        sleep 0.1
    done
    [ -n "$ok" ] || { echo "pure-ftpd did not accept logins" >&2; exit 1; }
    while IFS=$'\t' read -r local url; do
        curl -sS --ftp-create-dirs --user "$FTP_LOGIN" -T "$local" "ftp://127.0.0.1:$PORT/$url"
    done < "$LIST"
fi
count() { if [ -f "$OUT" ]; then tr '\0' '\n' < "$OUT" | grep -c '^END$' || true; else echo 0; fi; }
for _ in $(seq 600); do [ "$(count)" -ge "$EXPECT" ] && break; sleep 0.05; done
# Room for runs that should not happen (the C reader pauses 1 s after a
# rejected record).
sleep "${GRACE:-0.5}"
kill -TERM "$reader"
set +e
wait "$reader"
echo "reader exit status $?" >> "$WORK/reader.err"
"#;

struct Work {
    dir: tempfile::TempDir,
}

type Run = (Vec<u8>, BTreeMap<String, Vec<u8>>);

impl Work {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("driver.sh"), DRIVER).unwrap();
        std::fs::write(dir.path().join("empty.toml"), "").unwrap();
        Work { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs one phase; returns the program's runs.
    fn phase(&self, phase: &str, env: &[(&str, &str)], expect: usize) -> Vec<Run> {
        let out_dir = self.path(&format!("out-{phase}"));
        std::fs::create_dir(&out_dir).unwrap();
        std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let out = out_dir.join("runs");
        let hook_path = self.path(&format!("hook-{phase}.sh"));
        std::fs::write(&hook_path, hook(&out)).unwrap();
        std::fs::set_permissions(&hook_path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let work = self.path(&format!("work-{phase}"));
        std::fs::create_dir(&work).unwrap();
        std::fs::write(work.join("empty.toml"), "").unwrap();
        let status = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "bash"])
            .arg(self.path("driver.sh"))
            .arg(phase)
            .env("C_READER", C_READER)
            .env("OURS", OURS)
            .env("PURE_FTPD", PURE_FTPD)
            .env("HOOK", &hook_path)
            .env("OUT", &out)
            .env("WORK", &work)
            .env("STATE_DIRECTORY", work.join("state"))
            .env("EXPECT", expect.to_string())
            .env("FTP_LOGIN", format!("{FTP_USER}:{FTP_PASSWORD}"))
            .envs(env.iter().copied())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("INVOCATION_ID")
            .status()
            .unwrap();
        let reader_err = std::fs::read_to_string(work.join("reader.err")).unwrap_or_default();
        let ftpd_err = std::fs::read_to_string(work.join("ftpd.err")).unwrap_or_default();
        assert!(
            status.success(),
            "{phase} phase failed: {status}\nreader:\n{reader_err}\npure-ftpd:\n{ftpd_err}"
        );
        if phase == "ours" {
            assert!(
                reader_err.contains("reader exit status 0"),
                "our reader did not stop cleanly:\n{reader_err}"
            );
        }
        let runs = parse_runs(&std::fs::read(&out).unwrap_or_default());
        assert_eq!(
            runs.len(),
            expect,
            "{phase}: {} runs, {expect} expected\nreader:\n{reader_err}",
            runs.len()
        );
        runs
    }
}

fn parse_runs(bytes: &[u8]) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut current: Option<Run> = None;
    for item in bytes.split(|&b| b == 0) {
        match item {
            b"BEGIN" => current = Some((Vec::new(), BTreeMap::new())),
            b"END" => runs.extend(current.take()),
            _ => {
                if let Some((arg, env)) = current.as_mut() {
                    if let Some(a) = item.strip_prefix(b"ARG=") {
                        *arg = a.to_vec();
                    } else if let Some(eq) = item.iter().position(|&b| b == b'=') {
                        let key = String::from_utf8_lossy(&item[..eq]).into_owned();
                        env.insert(key, item[eq + 1..].to_vec());
                    }
                }
            }
        }
    }
    runs
}

fn show(runs: &[Run]) -> String {
    runs.iter()
        .map(|(arg, env)| {
            let vars: Vec<String> = env
                .iter()
                .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
                .collect();
            format!("{} {}\n", String::from_utf8_lossy(arg), vars.join(" "))
        })
        .collect()
}

/// Percent-encodes a path for an FTP URL, keeping `/`.
fn url_path(name: &[u8]) -> String {
    name.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The unix account pure-ftpd authenticates (`-l unix`); created once,
/// password reset every time.
fn ensure_ftp_user() {
    let exists = Command::new("id")
        .arg(FTP_USER)
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        let status = Command::new("useradd")
            .args(["-m", "-d", FTP_HOME, "-s", "/bin/sh", FTP_USER])
            .status()
            .unwrap();
        assert!(status.success(), "useradd {FTP_USER} failed");
    }
    let mut chpasswd = Command::new("chpasswd")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    chpasswd
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{FTP_USER}:{FTP_PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(chpasswd.wait().unwrap().success(), "chpasswd failed");
    // The readers run as nobody and must reach the uploads.
    std::fs::set_permissions(FTP_HOME, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn same_arguments_and_variables_as_the_c_reader_behind_real_pure_ftpd() {
    require_tools();
    ensure_ftp_user();
    let work = Work::new();
    let names: &[&[u8]] = &[
        b"plain.txt",
        b"with space.txt",
        b"quote'single\"double.txt",
        b"$(touch pwned)`id`.txt",
        b"-leading-dash",
        b"--rf",
        "ünïcödé €😀.txt".as_bytes(),
        b"latin1-\xe9t\xe9.txt",
        b"sub dir/deeper/nested.bin",
        b"empty",
        b"semi;colon&amp|pipe",
        b"percent%41.txt",
        b"star*q?.txt",
        b".dotfile",
        b"big.bin",
    ];
    let remote_dir = "difftest";
    let local = work.path("local");
    std::fs::create_dir(&local).unwrap();
    let mut list = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let content: Vec<u8> = match *name {
            b"empty" => Vec::new(),
            b"big.bin" => (0..150_000u32).map(|n| (n * 7 % 251) as u8).collect(),
            _ => format!("upload {i}\n").into_bytes(),
        };
        let file = local.join(format!("f{i}"));
        std::fs::write(&file, content).unwrap();
        list.extend_from_slice(file.as_os_str().as_bytes());
        list.push(b'\t');
        list.extend_from_slice(url_path(&[remote_dir.as_bytes(), b"/", name].concat()).as_bytes());
        list.push(b'\n');
    }
    std::fs::write(work.path("list"), list).unwrap();
    let list_path = work.path("list");
    let list_str = list_path.to_str().unwrap();
    let uploads = Path::new(FTP_HOME).join(remote_dir);

    let mut results = Vec::new();
    for (phase, port, pasv) in [("c", "2250", "2260:2274"), ("ours", "2251", "2275:2289")] {
        let _ = std::fs::remove_dir_all(&uploads);
        let runs = work.phase(
            phase,
            &[("LIST", list_str), ("PORT", port), ("PASV", pasv)],
            names.len(),
        );
        results.push(runs);
    }
    let _ = std::fs::remove_dir_all(&uploads);
    let (c, ours) = (&results[0], &results[1]);
    assert_eq!(
        show(c),
        show(ours),
        "C reader (left) and this reader (right) differ"
    );
    // And the values are the expected ones, not merely equal.
    for ((arg, env), name) in ours.iter().zip(names) {
        let want = [uploads.as_os_str().as_bytes(), b"/", name].concat();
        assert_eq!(String::from_utf8_lossy(arg), String::from_utf8_lossy(&want));
        assert_eq!(env["UPLOAD_VUSER"], FTP_USER.as_bytes());
        assert_eq!(env["UPLOAD_USER"], FTP_USER.as_bytes());
        assert_eq!(env["UPLOAD_PERMS"], b"644");
        let keys: Vec<&str> = env.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "UPLOAD_GID",
                "UPLOAD_GROUP",
                "UPLOAD_PERMS",
                "UPLOAD_SIZE",
                "UPLOAD_UID",
                "UPLOAD_USER",
                "UPLOAD_VUSER"
            ]
        );
    }
    let sizes: Vec<&[u8]> = ours.iter().map(|(_, e)| &e["UPLOAD_SIZE"][..]).collect();
    assert_eq!(sizes[9], b"0");
    assert_eq!(sizes[14], b"150000");
}

fn record(user: &[u8], file: &[u8]) -> Vec<u8> {
    [&[2u8][..], user, &[1], file, &[0]].concat()
}

#[test]
fn same_runs_as_the_c_reader_for_hand_made_records() {
    require_tools();
    let work = Work::new();
    let files = work.path("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::set_permissions(&files, std::fs::Permissions::from_mode(0o755)).unwrap();
    let make = |name: &str, content: &[u8], mode: u32, owner: Option<u32>| -> Vec<u8> {
        let p = files.join(name);
        std::fs::write(&p, content).unwrap();
        if let Some(id) = owner {
            std::os::unix::fs::chown(&p, Some(id), Some(id)).unwrap();
        }
        // After chown, which clears set-id bits.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p.as_os_str().as_bytes().to_vec()
    };
    let plain = make("plain", b"x", 0o644, None);
    let odd = make("odd owner", b"yy", 0o4751, Some(4_000_000));
    let euro = make("eur\u{20ac}", b"zzz", 0o600, Some(65534));
    std::os::unix::fs::symlink(files.join("plain"), files.join("link")).unwrap();
    // Virtual hosts map under /etc/pure-ftpd/pure-ftpd, bind-mounted from here.
    let vroot = work.path("etc-pure-ftpd");
    std::fs::create_dir_all(vroot.join("pure-ftpd/192.0.2.7/pub")).unwrap();
    for d in [
        &vroot,
        &vroot.join("pure-ftpd"),
        &vroot.join("pure-ftpd/192.0.2.7"),
        &vroot.join("pure-ftpd/192.0.2.7/pub"),
    ] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(vroot.join("pure-ftpd/192.0.2.7/pub/v"), b"vhost").unwrap();

    let u128 = vec![b'u'; 128];
    let u129 = vec![b'w'; 129];
    let relative = &plain[1..];
    let mut stream = Vec::new();
    stream.extend(record(b"alice", &plain));
    stream.extend_from_slice(b"leading garbage \xff\x00\x01");
    stream.extend(record(b"", &odd));
    stream.extend(record(b"b\xc3\xb6b", &euro));
    stream.extend(record(b"anon", b"192.0.2.7:/pub/v"));
    stream.extend(record(b"rel", relative));
    stream.extend(record(&u128, &plain));
    stream.extend(record(&u129, &plain)); // rejected by both
    stream.extend(record(b"ctl\x7f", &plain)); // rejected by both
    stream.extend(record(b"lnk", files.join("link").as_os_str().as_bytes())); // not run
    stream.extend(record(b"dir", files.as_os_str().as_bytes())); // not run
    stream.extend(record(
        b"gone",
        files.join("missing").as_os_str().as_bytes(),
    )); // not run
    stream.extend(record(b"last", &plain));
    let stream_path = work.path("stream");
    std::fs::write(&stream_path, &stream).unwrap();
    let expect = 7;
    let env = [
        ("STREAM", stream_path.to_str().unwrap()),
        ("VHOST_ROOT", vroot.to_str().unwrap()),
        ("GRACE", "2.5"),
    ];
    let c = work.phase("c", &env, expect);
    let ours = work.phase("ours", &env, expect);
    assert_eq!(
        show(&c),
        show(&ours),
        "C reader (left) and this reader (right) differ"
    );
    let args: Vec<Vec<u8>> = ours.iter().map(|(a, _)| a.clone()).collect();
    assert_eq!(
        args,
        [
            plain.clone(),
            odd,
            euro,
            b"/etc/pure-ftpd/pure-ftpd/192.0.2.7/pub/v".to_vec(),
            relative.to_vec(),
            plain.clone(),
            plain,
        ]
    );
    let odd_env = &ours[1].1;
    assert_eq!(odd_env["UPLOAD_PERMS"], b"4751");
    assert_eq!(odd_env["UPLOAD_UID"], b"4000000");
    assert!(!odd_env.contains_key("UPLOAD_USER") && !odd_env.contains_key("UPLOAD_GROUP"));
    assert!(!odd_env.contains_key("UPLOAD_VUSER"));
    assert_eq!(ours[5].1["UPLOAD_VUSER"], u128);
}
