//! Differential test: this `pure-ftpwho` against Debian's C
//! `/usr/sbin/pure-ftpwho` on the same crafted scoreboard, for every
//! format, with and without name resolution.
//!
//! The C tool only reads `/var/run/pure-ftpd`: both tools run in a private
//! mount namespace where the crafted directory is bind-mounted there, and
//! `/etc/hosts` and `/etc/nsswitch.conf` are replaced so that name
//! lookups only read a crafted hosts file. Needs root and Debian's
//! pure-ftpd package (`scripts/install-deps`).

mod common;

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use pureftpd_systemd::ftpwho::scoreboard::{Entry, Layout, RawSockaddr, State};

const C_TOOL: &str = "/usr/sbin/pure-ftpwho";
const OURS: &str = env!("CARGO_BIN_EXE_pure-ftpwho");

/// Where the crafted files live, bind-mounted over the system's.
struct Sandbox {
    scoreboard: Option<PathBuf>,
    hosts: PathBuf,
    nsswitch: PathBuf,
}

fn cstr(p: &Path) -> CString {
    CString::new(p.to_str().expect("utf-8 path")).expect("no NUL")
}

fn check(r: libc::c_int, what: &str) -> std::io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        let err = std::io::Error::last_os_error();
        Err(std::io::Error::new(err.kind(), format!("{what}: {err}")))
    }
}

impl Sandbox {
    /// `program args` in a private mount namespace: an empty /run, the
    /// scoreboard (if any) at /run/pure-ftpd, crafted hosts and nsswitch.
    fn command(&self, program: &str, args: &[&str], cgi: bool) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null());
        if cgi {
            cmd.env("GATEWAY_INTERFACE", "CGI/1.1");
        }
        let scoreboard = self.scoreboard.as_deref().map(cstr);
        let hosts = cstr(&self.hosts);
        let nsswitch = cstr(&self.nsswitch);
        let root = c"/";
        let run = c"/run";
        let tmpfs = c"tmpfs";
        let sb_mount = c"/run/pure-ftpd";
        let etc_hosts = c"/etc/hosts";
        let etc_nsswitch = c"/etc/nsswitch.conf";
        // SAFETY: the closure only makes system calls on strings prepared
        // before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let null = std::ptr::null::<libc::c_char>();
                check(libc::unshare(libc::CLONE_NEWNS), "unshare")?;
                check(
                    libc::mount(
                        null,
                        root.as_ptr(),
                        null,
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ),
                    "make / private",
                )?;
                check(
                    libc::mount(
                        tmpfs.as_ptr(),
                        run.as_ptr(),
                        tmpfs.as_ptr(),
                        0,
                        std::ptr::null(),
                    ),
                    "mount /run",
                )?;
                if let Some(sb) = &scoreboard {
                    check(libc::mkdir(sb_mount.as_ptr(), 0o700), "mkdir")?;
                    check(
                        libc::mount(
                            sb.as_ptr(),
                            sb_mount.as_ptr(),
                            null,
                            libc::MS_BIND,
                            std::ptr::null(),
                        ),
                        "bind scoreboard",
                    )?;
                }
                check(
                    libc::mount(
                        hosts.as_ptr(),
                        etc_hosts.as_ptr(),
                        null,
                        libc::MS_BIND,
                        std::ptr::null(),
                    ),
                    "bind hosts",
                )?;
                check(
                    libc::mount(
                        nsswitch.as_ptr(),
                        etc_nsswitch.as_ptr(),
                        null,
                        libc::MS_BIND,
                        std::ptr::null(),
                    ),
                    "bind nsswitch.conf",
                )?;
                Ok(())
            });
        }
        cmd
    }

    fn run(&self, program: &str, args: &[&str], cgi: bool) -> Output {
        self.command(program, args, cgi)
            .output()
            .unwrap_or_else(|e| panic!("running {program} {args:?}: {e}"))
    }

    /// Both tools' output for the same arguments, run within one second
    /// of `time()` so that durations agree.
    fn both(&self, c_args: &[&str], our_args: &[&str], cgi: bool) -> (Output, Output) {
        for _ in 0..10 {
            let before = now();
            let c = self.run(C_TOOL, c_args, cgi);
            let ours = self.run(OURS, our_args, cgi);
            if now() == before {
                return (c, ours);
            }
        }
        panic!("could not run both tools within one second");
    }
}

/// Shows bytes with escapes, line by line, for failure messages.
fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string().replace("\\n", "\\n\n")
}

/// Fails with the first differing line; both outputs are kept under the
/// target directory for inspection.
fn assert_same(what: &str, c: &Output, ours: &Output) {
    if c.stdout != ours.stdout {
        let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ftpwho-differential");
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::write(keep.join("c.out"), &c.stdout).unwrap();
        std::fs::write(keep.join("ours.out"), &ours.stdout).unwrap();
        let c_lines: Vec<&[u8]> = c.stdout.split(|&b| b == b'\n').collect();
        let our_lines: Vec<&[u8]> = ours.stdout.split(|&b| b == b'\n').collect();
        let first = c_lines
            .iter()
            .zip(&our_lines)
            .position(|(a, b)| a != b)
            .unwrap_or(c_lines.len().min(our_lines.len()));
        let line = |lines: &[&[u8]]| {
            let mut s = lines.get(first).map(|l| show(l)).unwrap_or_default();
            s.truncate(2000);
            s
        };
        panic!(
            "{what}: outputs differ at line {} (of {} and {}; both kept in {})\n  C:    {}\n  ours: {}\n--- our stderr:\n{}",
            first + 1,
            c_lines.len(),
            our_lines.len(),
            keep.display(),
            line(&c_lines),
            line(&our_lines),
            String::from_utf8_lossy(&ours.stderr),
        );
    }
    assert_eq!(c.status.code(), ours.status.code(), "{what}: exit status");
}

/// The fields of one `-s` line, split at unescaped `|`, unescaped.
fn shell_fields(line: &[u8]) -> Vec<Vec<u8>> {
    let mut fields = vec![Vec::new()];
    let mut bytes = line.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => {
                if let Some(&next) = bytes.next() {
                    fields.last_mut().unwrap().push(next);
                }
            }
            b'|' => fields.push(Vec::new()),
            _ => fields.last_mut().unwrap().push(b),
        }
    }
    fields
}

/// C prints an entry when getnameinfo can print its peer, and its local
/// address with the length of the peer's family.
fn printable(e: &Entry) -> bool {
    let family = |a: &RawSockaddr| i32::from(a.family());
    matches!(
        (family(&e.peer), family(&e.local)),
        (libc::AF_INET, libc::AF_INET) | (libc::AF_INET6, libc::AF_INET | libc::AF_INET6)
    )
}

fn preconditions() {
    assert!(
        Path::new(C_TOOL).exists(),
        "{C_TOOL} is missing: install Debian's pure-ftpd package (scripts/install-deps)"
    );
    assert!(
        is_root(),
        "the differential test needs root (mount namespaces, root-owned entries)"
    );
}

fn etc_files(dir: &Path) -> (PathBuf, PathBuf) {
    let hosts = dir.join("hosts");
    std::fs::write(
        &hosts,
        b"127.0.0.1 localhost\n\
          192.0.2.10 short.example\n\
          192.0.2.11 a-very-long-host-name-that-does-not-fit-in-the-column.example.test\n\
          192.0.2.12 odd<&>|\\name.example\n\
          192.0.2.13 caf\xe9.example\n\
          2001:db8::10 six.example\n\
          2001:db8::11 a-very-long-ipv6-host-name-that-does-not-fit.example.test\n"
            .as_slice(),
    )
    .unwrap();
    let nsswitch = dir.join("nsswitch.conf");
    std::fs::write(&nsswitch, "hosts: files\n").unwrap();
    (hosts, nsswitch)
}

struct Sizes {
    state: State,
    xfer_ago: i64,
    restart: i64,
    total: i64,
    current: i64,
}

fn transfer(state: State, xfer_ago: i64, restart: i64, total: i64, current: i64) -> Sizes {
    Sizes {
        state,
        xfer_ago,
        restart,
        total,
        current,
    }
}

/// The crafted sessions: every state, both address families, odd names,
/// and sizes that reach every branch of the C arithmetic.
fn crafted(now: i64, live: &LivePids) -> Vec<Entry> {
    let peers: Vec<RawSockaddr> = vec![
        addr("127.0.0.1:40000"),
        addr("192.0.2.10:40001"),
        addr("192.0.2.11:40002"),
        addr("192.0.2.12:40003"),
        addr("192.0.2.13:40004"),
        addr("198.51.100.99:40005"),
        v6("2001:db8::10", 40006, 0),
        v6("2001:db8::11", 40007, 0),
        v6("2001:db8::99", 40008, 0),
        v6("::ffff:192.0.2.10", 40009, 0),
        v6("fe80::1", 40010, 1),
        v6("fe80::2", 40011, 4242),
        v6("::1.2.3.4", 40012, 0),
    ];
    let locals: Vec<RawSockaddr> = vec![
        addr("127.0.0.1:21"),
        addr("192.0.2.1:2121"),
        v6("2001:db8::1", 21, 0),
        addr("192.0.2.10:65535"),
    ];
    let accounts: Vec<&[u8]> = vec![
        b"alice",
        b"",
        b"exactly8",
        b"ninechars",
        b"caf\xe9",
        b"Jos\xc3\xa9",
        b"broken\xc3(\xff",
        b"<a&b>|c\\d",
        b"ctrl\x01\x1b[31m\x7f",
        b"c1\x80\x85\x9b\x9f",
        &[b'L'; 128],
        &[b'&'; 128],
    ];
    let long_amp = vec![b'&'; 1023];
    let long_pipe = vec![b'|'; 1023];
    let long_ctrl: Vec<u8> = (0..1023)
        .map(|i| (i % 256) as u8)
        .filter(|&b| b != 0)
        .collect();
    let filenames: Vec<&[u8]> = vec![
        b"",
        b"/pub/file.iso",
        b"/a/very/long/path/that/is/longer/than/the/forty-two/column/file.tar.gz",
        b"/odd/<name>&'\"|pipe\\back",
        b"/latin/caf\xe9.txt",
        b"/broken/\xe2\x82.txt",
        b"/ctrl/\x01\x02\t\n\x7f.txt",
        &long_amp,
        &long_pipe,
        &long_ctrl,
    ];
    let k = 1024i64;
    let sizes = vec![
        transfer(State::Idle, 0, 0, 0, 0),
        transfer(State::Idle, 5, 10, 100, 50),
        transfer(State::Download, 10, 0, 4 << 20, 1 << 20),
        transfer(State::Download, 10, 0, 0, 1 << 20),
        transfer(State::Download, 10, 0, 100, 500),
        transfer(State::Download, 10, 600, 1000, 500),
        transfer(State::Download, 10, 500, 1000, 500),
        transfer(State::Download, 1, 0, 200, 199),
        transfer(State::Download, 1, 0, 200, 1),
        transfer(State::Download, 1, 0, 201, 1),
        transfer(State::Download, 1, 0, 1, 1 << 40),
        transfer(State::Download, 1, 0, 1, 21_474_836),
        transfer(State::Download, 1, 0, 1, 21_474_837),
        transfer(State::Download, 1, 0, 1, i64::MAX),
        transfer(State::Download, 1, 0, i64::MAX, i64::MAX - 1),
        transfer(State::Download, 1, 0, i64::MAX, i64::MAX / 200 * 199 + 7),
        transfer(
            State::Download,
            1,
            0,
            (1 << 62) + 12345,
            ((1 << 62) + 12345) / 200 * 3 + 1,
        ),
        transfer(State::Download, 1, 0, (1 << 62) - 1, (1 << 62) / 200 * 199),
        transfer(State::Download, 1, -5, 100, 50),
        transfer(State::Download, 1, i64::MIN, 100, 50),
        transfer(State::Download, 1, 0, -100, 50),
        transfer(State::Download, 1, 0, 100, -50),
        transfer(State::Download, 100_000, 0, 0, 1023),
        transfer(State::Download, 1, 0, 0, 1023),
        transfer(State::Download, 1, 0, 0, 1024),
        transfer(State::Download, 1, 0, 0, 1024 * k - 1),
        transfer(State::Download, 1, 0, 0, 1024 * k),
        transfer(State::Download, 1, 0, 0, 1024 * k * k),
        transfer(State::Download, 1, 0, 0, 1024 * k * k * k - 1),
        transfer(State::Download, 1, 0, 0, 1024 * k * k * k),
        transfer(State::Download, -100, 0, 1000, 10),
        transfer(State::Download, 0, 0, 1000, 10),
        transfer(State::Download, i64::MIN, 0, 1000, 10),
        transfer(State::Upload, 20, 0, 5000, 3000),
        transfer(State::Upload, 20, 1000, 0, 3000),
        transfer(State::Upload, 20, 0, 0, 0),
        transfer(State::Unknown(7), 20, 0, 5000, 3000),
        transfer(State::Unknown(-1), 0, 0, 0, 0),
    ];
    let dates = [
        now - 3725,
        now,
        now - 59,
        now - 3599,
        now - 86_399,
        now - 360_000,
        now + 100,
        0,
        i64::MIN,
        i64::MAX,
        -1,
    ];
    let n = sizes
        .len()
        .max(accounts.len())
        .max(filenames.len())
        .max(peers.len())
        * 2;
    let mut entries = Vec::new();
    for i in 0..n {
        let s = &sizes[i % sizes.len()];
        let pid = match i % 17 {
            15 => 0,
            16 => -1,
            _ => live.pid(i),
        };
        let xfer_date = match s.xfer_ago {
            0 => 0,
            i64::MIN => i64::MIN,
            ago => now - ago,
        };
        entries.push(Entry {
            state: s.state,
            pid,
            peer: peers[i % peers.len()].clone(),
            local: locals[(i / 3) % locals.len()].clone(),
            date: dates[i % dates.len()],
            xfer_date,
            restart_at: s.restart,
            total_size: s.total,
            current_size: s.current,
            account: accounts[i % accounts.len()].to_vec(),
            filename: filenames[(i / 2) % filenames.len()].to_vec(),
        });
    }
    // Addresses C cannot print: the entry is left out.
    let mut unprintable = entries[0].clone();
    unprintable.peer = RawSockaddr([0xab; 128]);
    entries.push(unprintable);
    let mut mixed = entries[0].clone();
    mixed.peer = addr("192.0.2.10:1");
    mixed.local = v6("2001:db8::1", 21, 0);
    entries.push(mixed);
    let mut mixed = entries[0].clone();
    mixed.peer = v6("2001:db8::10", 1, 0);
    mixed.local = addr("192.0.2.1:21");
    entries.push(mixed);
    entries
}

/// Files neither tool lists.
fn add_bad_files(board: &mut Board, live: &LivePids) {
    let good = entry(live.pid(0), b"bad")
        .to_bytes(&Layout::DEBIAN)
        .unwrap();
    let name = board.name();
    board.write_raw(&name, &good[..700], 0o600);
    let mut big = good.clone();
    big.extend_from_slice(&[0; 8]);
    let name = board.name();
    board.write_raw(&name, &big, 0o600);
    let name = board.name();
    let path = board.write_raw(&name, &good, 0o600);
    chown(&path, 4321, 4321);
    let name = board.name();
    board.write_raw(&name, &good, 0o400);
    let target = board.tmp.path().join("outside");
    std::fs::write(&target, &good).unwrap();
    let name = board.name();
    std::os::unix::fs::symlink(&target, board.path(&name)).unwrap();
    let name = board.name();
    std::fs::create_dir(board.path(&name)).unwrap();
    let name = board.name();
    mkfifo(&board.path(&name));
    let mut free = entry(live.pid(0), b"free");
    free.state = State::Free;
    board.add(&free);
    board.add(&entry(dead_pid(), b"stale"));
    let mut garbage: Vec<u8> = (0..good.len()).map(|i| (i * 7 + 3) as u8).collect();
    garbage[4..8].copy_from_slice(&live.pid(0).to_ne_bytes());
    let name = board.name();
    board.write_raw(&name, &garbage, 0o600);
    board.write_raw("not-a-client", &good, 0o600);
}

/// Records whose strings lack their NUL: C's `%s` runs on into the next
/// field, and past the file name to the end of the record.
fn add_unterminated(board: &mut Board, live: &LivePids) {
    let l = Layout::DEBIAN;
    let mut e = entry(live.pid(1), b"");
    e.peer = addr("192.0.2.10:1");
    e.local = addr("192.0.2.1:21");
    let mut bytes = e.to_bytes(&l).unwrap();
    bytes[l.account_offset..l.account_offset + l.account_len].fill(b'A');
    bytes[l.filename_offset..l.filename_offset + 5].copy_from_slice(b"/file");
    let name = board.name();
    board.write_raw(&name, &bytes, 0o600);
    bytes[l.filename_offset..l.filename_offset + l.filename_len].fill(b'F');
    let name = board.name();
    board.write_raw(&name, &bytes, 0o600);
    bytes[l.filename_offset + l.filename_len..].fill(b'P');
    let name = board.name();
    board.write_raw(&name, &bytes, 0o600);
    bytes[l.filename_offset + l.filename_len + 2] = 0;
    let name = board.name();
    board.write_raw(&name, &bytes, 0o600);
}

const CASES: &[&[&str]] = &[
    &[],
    &["-v"],
    &["-w"],
    &["-W"],
    &["-c"],
    &["-C"],
    &["-x"],
    &["-p"],
    &["-s"],
    &["-W", "-w"],
    &["-c", "-s"],
    &["-s", "-c"],
    &["-vs", "-x"],
    &["-sv", "-p", "-w"],
];

#[test]
fn every_format_matches_the_c_tool() {
    preconditions();
    let live = LivePids::spawn(5);
    let mut board = Board::new();
    let (hosts, nsswitch) = etc_files(board.tmp.path());
    let t = now();
    for e in crafted(t, &live) {
        board.add(&e);
    }
    add_bad_files(&mut board, &live);
    add_unterminated(&mut board, &live);
    let sandbox = Sandbox {
        scoreboard: Some(board.dir.clone()),
        hosts,
        nsswitch,
    };
    let mut compared = 0;
    for args in CASES {
        for numeric in [None, Some("-n"), Some("-H")] {
            let mut args: Vec<&str> = args.to_vec();
            args.extend(numeric);
            for cgi in [false, true] {
                let (c, ours) = sandbox.both(&args, &args, cgi);
                let what = format!("pure-ftpwho {args:?} (GATEWAY_INTERFACE {cgi})");
                assert!(c.status.success(), "{what}: C tool failed: {c:?}");
                assert!(c.stdout.len() > 100, "{what}: C printed too little");
                assert_same(&what, &c, &ours);
                compared += 1;
            }
        }
    }
    assert_eq!(compared, CASES.len() * 6);
    // The listing really contains the crafted sessions: one -s line each,
    // less the ones C cannot print.
    let (c, _) = sandbox.both(&["-s", "-n"], &["-s", "-n"], false);
    let lines = c.stdout.iter().filter(|&&b| b == b'\n').count();
    let expected = crafted(t, &live).iter().filter(|e| printable(e)).count() + 4;
    assert!(expected > 60);
    assert_eq!(lines, expected);
}

#[test]
fn filters_keep_exactly_the_matching_c_lines() {
    preconditions();
    let live = LivePids::spawn(5);
    let mut board = Board::new();
    let (hosts, nsswitch) = etc_files(board.tmp.path());
    for e in crafted(now(), &live) {
        board.add(&e);
    }
    let sandbox = Sandbox {
        scoreboard: Some(board.dir.clone()),
        hosts,
        nsswitch,
    };
    type Keep = fn(&[Vec<u8>]) -> bool;
    let cases: &[(&[&str], Keep)] = &[
        (&["--user", "alice"], |f| f[1] == b"alice"),
        (&["--user", "<a&b>|c\\d"], |f| f[1] == b"<a&b>|c\\d"),
        (&["--state", "download"], |f| f[3] == b" DL "),
        (&["--state", "idle,upload"], |f| {
            f[3] == b"IDLE" || f[3] == b" UL "
        }),
        (&["--user", "exactly8", "--state", "download"], |f| {
            f[1] == b"exactly8" && f[3] == b" DL "
        }),
    ];
    for (extra, keep) in cases {
        let mut ours_args = vec!["-s", "-n"];
        ours_args.extend_from_slice(extra);
        let (c, ours) = sandbox.both(&["-s", "-n"], &ours_args, false);
        let expected: Vec<u8> = c
            .stdout
            .split_inclusive(|&b| b == b'\n')
            .filter(|l| keep(&shell_fields(&l[..l.len() - 1])))
            .flatten()
            .copied()
            .collect();
        assert!(!expected.is_empty(), "{extra:?} keeps some sessions");
        let c = Output {
            stdout: expected,
            ..c
        };
        assert_same(&format!("filter {extra:?}"), &c, &ours);
    }
}

#[test]
fn the_json_listing_agrees_with_the_shell_listing() {
    preconditions();
    let live = LivePids::spawn(5);
    let mut board = Board::new();
    let (hosts, nsswitch) = etc_files(board.tmp.path());
    let crafted = crafted(now(), &live);
    for e in &crafted {
        board.add(e);
    }
    let sandbox = Sandbox {
        scoreboard: Some(board.dir.clone()),
        hosts,
        nsswitch,
    };
    let (c, ours) = sandbox.both(&["-s", "-n"], &["--json", "-n"], false);
    let json: serde_json::Value = serde_json::from_slice(&ours.stdout).expect("valid JSON");
    let objects = json.as_array().expect("an array");
    let lines: Vec<&[u8]> = c
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(objects.len(), lines.len());
    for (o, line) in objects.iter().zip(&lines) {
        let fields = shell_fields(line);
        let text = |v: &[u8]| String::from_utf8(v.to_vec()).unwrap();
        assert_eq!(
            o["pid"].as_i64().unwrap() as u64,
            text(&fields[0]).parse::<u64>().unwrap()
        );
        let bytes = |key: &str| {
            let s = o[key].as_str().unwrap();
            if o[format!("{key}_escaped")] == true {
                pureftpd_systemd::ftpwho::report::json::unescape(s)
            } else {
                s.as_bytes().to_vec()
            }
        };
        let account = bytes("account");
        assert!(
            crafted.iter().any(|e| e.account == account),
            "account {account:?} round-trips to crafted bytes"
        );
        // Shell escaping replaces control bytes; compare where it does not.
        if !fields[1].contains(&b'_') {
            assert_eq!(account, fields[1]);
        }
        assert_eq!(o["time"].as_u64().unwrap().to_string(), text(&fields[2]));
        assert_eq!(bytes("host"), fields[5]);
        assert_eq!(o["local_port"].to_string(), text(&fields[7]));
        let kib = |key: &str| (o[key].as_i64().unwrap() / 1024) as u64;
        assert_eq!(kib("current_size").to_string(), text(&fields[8]));
        assert_eq!(kib("total_size").to_string(), text(&fields[9]));
        assert_eq!(
            o["percentage"].as_i64().unwrap_or(0).to_string(),
            text(&fields[10])
        );
    }
}

#[test]
fn layouts_other_than_the_c_build_are_listed_only_when_asked() {
    preconditions();
    let live = LivePids::spawn(2);
    let mut board = Board::new();
    let (hosts, nsswitch) = etc_files(board.tmp.path());
    board.add_with(&entry(live.pid(0), b"debian"), &Layout::DEBIAN);
    board.add_with(&entry(live.pid(1), b"upstream"), &Layout::UPSTREAM);
    let sandbox = Sandbox {
        scoreboard: Some(board.dir.clone()),
        hosts,
        nsswitch,
    };
    let (c, ours) = sandbox.both(&["-s", "-n"], &["-s", "-n", "--layout", "debian"], false);
    assert_same("--layout debian", &c, &ours);
    let ours = sandbox.run(OURS, &["-s", "-n"], false);
    let text = String::from_utf8_lossy(&ours.stdout);
    assert!(
        text.contains("|debian|") && text.contains("|upstream|"),
        "{text}"
    );
}

#[test]
fn a_missing_scoreboard_and_usage_match_the_c_tool() {
    preconditions();
    let tmp = tempfile::tempdir().unwrap();
    let (hosts, nsswitch) = etc_files(tmp.path());
    let sandbox = Sandbox {
        scoreboard: None,
        hosts,
        nsswitch,
    };
    for args in [
        &[][..],
        &["-s"],
        &["-x", "-n"],
        &["-h"],
        &["-z"],
        &["-s", "-h"],
        &["--bogus"],
    ] {
        let (c, ours) = sandbox.both(args, args, false);
        assert_same(&format!("no scoreboard, {args:?}"), &c, &ours);
    }
    let ours = sandbox.run(OURS, &[], false);
    assert_eq!(ours.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&ours.stderr).contains("Unable to open the ftpwho scoreboard."));
}

#[test]
fn non_root_users_are_refused_like_the_c_tool() {
    preconditions();
    let run = |program: &Path| {
        Command::new(program)
            .arg("-s")
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let (c, ours) = (run(Path::new(C_TOOL)), run(&reachable(OURS)));
    assert_eq!(c.stdout, b"You must be root to run this. Sorry.\n");
    assert_same("not root", &c, &ours);
}
