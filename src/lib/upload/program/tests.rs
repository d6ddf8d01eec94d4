use super::*;
use std::os::unix::fs::PermissionsExt;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
    fn file(&self, name: &str, content: &[u8]) -> Vec<u8> {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap();
        path.as_os_str().as_bytes().to_vec()
    }
    fn hook(&self, program: &Path, tweak: impl FnOnce(&mut HookConfig)) -> Hook {
        let mut config = HookConfig {
            program: program.to_owned(),
            timeout: Some(Duration::from_secs(30)),
            keep_env: false,
            capture_output: false,
            hash: Hash::None,
        };
        tweak(&mut config);
        Hook::new(config).unwrap()
    }
    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }
}

fn run(hook: &Hook, vuser: &[u8], file: &[u8]) -> Report {
    hook.run(vuser, file, &mut NoWatch).unwrap()
}

#[test]
fn argv_environment_cwd_and_descriptors() {
    let fx = Fixture::new();
    let out = fx.path("out");
    let program = fx.script(
        "rec",
        &format!(
            "exec >{out}\n\
             printf 'argc=%s\\n' $#\n\
             printf 'arg=%s\\n' \"$1\"\n\
             printf 'cwd=%s\\n' \"$(pwd)\"\n\
             env -0 | tr '\\0' '\\n' | LC_ALL=C sort | sed 's/^/env:/'\n\
             ls -l /proc/self/fd > {out}.fds\n\
             printf 'upload_fd_content=%s\\n' \"$(cat <&3)\"\n\
             read line </dev/stdin || printf 'stdin empty\\n'",
            out = out.display()
        ),
    );
    let file = fx.file("up file 'q' $(x)", b"payload");
    close_inherited_on_exec().unwrap();
    let hook = fx.hook(&program, |_| {});
    let report = run(&hook, b"alice", &file);
    assert!(report.status.success(), "{:?}", report.status);
    assert!(
        report.fd_passed && report.notes.is_empty(),
        "{:?}",
        report.notes
    );
    let got = fx.read("out");
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "argc=1");
    assert_eq!(lines[1], format!("arg={}", String::from_utf8_lossy(&file)));
    assert_eq!(lines[2], "cwd=/");
    let env: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("env:"))
        .collect();
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let mut want = vec![
        format!("PATH={CLEAN_PATH}"),
        "UPLOAD_FD=3".to_string(),
        format!("UPLOAD_GID={gid}"),
        "UPLOAD_PERMS=644".to_string(),
        "UPLOAD_SIZE=7".to_string(),
        format!("UPLOAD_UID={uid}"),
        "UPLOAD_VUSER=alice".to_string(),
    ];
    if let Some(name) = user_name(uid) {
        want.push(format!("UPLOAD_USER={}", String::from_utf8_lossy(&name)));
    }
    if let Some(name) = group_name(gid) {
        want.push(format!("UPLOAD_GROUP={}", String::from_utf8_lossy(&name)));
    }
    if let Ok(lang) = std::env::var("LANG") {
        want.push(format!("LANG={lang}"));
    }
    // The shell itself may add PWD, SHLVL and "_".
    let env: Vec<String> = env
        .iter()
        .filter(|v| !v.starts_with("PWD=") && !v.starts_with("SHLVL=") && !v.starts_with("_="))
        .map(|v| v.to_string())
        .collect();
    want.sort();
    assert_eq!(env, want);
    // "lrwx------ 1 root root 64 Jan 1 00:00 3 -> /path": keep "3 /path".
    let listing = fx.read("out.fds");
    let fds: Vec<String> = listing
        .lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            Some(format!("{} {target}", left.rsplit(' ').next()?))
        })
        .collect();
    let fds: Vec<&str> = fds.iter().map(|s| s.as_str()).collect();
    // ls's own descriptor on the directory it lists is left out.
    let fds: Vec<&str> = fds.into_iter().filter(|f| !f.contains(" /proc/")).collect();
    assert_eq!(
        fds,
        [
            "0 /dev/null".to_string(),
            format!("1 {}.fds", out.display()),
            "2 /dev/null".to_string(),
            format!("3 {}", String::from_utf8_lossy(&file)),
        ]
    );
    assert!(lines.contains(&"upload_fd_content=payload"), "{got}");
    assert!(lines.contains(&"stdin empty"), "{got}");
}

#[test]
fn names_are_left_out_when_unknown_or_empty() {
    let fx = Fixture::new();
    let program = fx.script("true", "exit 0");
    let hook = fx.hook(&program, |_| {});
    let facts = FileFacts {
        size: 0,
        perms: 0o4751,
        uid: 4_000_000_000,
        gid: 4_000_000_001,
        user: None,
        group: None,
    };
    let env: Vec<String> = hook
        .environment(&facts, b"", false)
        .into_iter()
        .map(|c| c.into_string().unwrap())
        .filter(|v| v.starts_with("UPLOAD_"))
        .collect();
    assert_eq!(
        env,
        [
            "UPLOAD_SIZE=0",
            "UPLOAD_PERMS=4751",
            "UPLOAD_UID=4000000000",
            "UPLOAD_GID=4000000001"
        ]
    );
}

#[test]
fn keep_env_passes_the_daemon_environment() {
    let fx = Fixture::new();
    let out = fx.path("out");
    let program = fx.script("env", &format!("env > {}", out.display()));
    let file = fx.file("f", b"");
    let hook = fx.hook(&program, |c| c.keep_env = true);
    assert!(run(&hook, b"", &file).status.success());
    let got = fx.read("out");
    // HOME (or at least PATH) comes from the test's own environment.
    for (k, v) in std::env::vars() {
        let shell_owned = ["PWD", "OLDPWD", "SHLVL", "_"].contains(&k.as_str());
        if !k.starts_with("UPLOAD_") && !PRIVATE_VARS.contains(&k.as_str()) && !shell_owned {
            assert!(got.contains(&format!("{k}={v}\n")), "{k} missing in {got}");
        }
    }
    assert!(got.contains("UPLOAD_SIZE=0\n") && got.contains("UPLOAD_FD=3\n"));
    assert!(!got.contains("UPLOAD_VUSER="));
}

#[test]
fn exit_status_signal_and_missing_program() {
    let fx = Fixture::new();
    let file = fx.file("f", b"x");
    // With a timeout the run is polled; without one (and nothing to read)
    // the program is waited for alone.
    for timeout in [Some(Duration::from_secs(30)), None] {
        let with = |c: &mut HookConfig| c.timeout = timeout;
        let hook = fx.hook(&fx.script("three", "exit 3"), with);
        assert!(matches!(run(&hook, b"u", &file).status, Status::Exited(3)));
        let hook = fx.hook(&fx.script("sig", "kill -USR1 $$"), with);
        assert!(matches!(
            run(&hook, b"u", &file).status,
            Status::Signaled(libc::SIGUSR1)
        ));
        let hook = fx.hook(&fx.path("absent"), with);
        let status = run(&hook, b"u", &file).status;
        let Status::Unstartable(e) = status else {
            panic!("{status:?}")
        };
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}

#[test]
fn only_regular_files_are_processed() {
    let fx = Fixture::new();
    let marker = fx.path("ran");
    let program = fx.script("mark", &format!("touch {}", marker.display()));
    let hook = fx.hook(&program, |_| {});
    let target = fx.file("target", b"x");
    std::os::unix::fs::symlink(fx.path("target"), fx.path("link")).unwrap();
    std::fs::create_dir(fx.path("dir")).unwrap();
    let cases: &[(&str, &str)] = &[
        ("link", "not a regular file but a symbolic link"),
        ("dir", "not a regular file but a directory"),
        ("absent", "cannot stat the file: No such file or directory"),
    ];
    for (name, why) in cases {
        let path = fx.path(name);
        let err = hook
            .run(b"u", path.as_os_str().as_bytes(), &mut NoWatch)
            .unwrap_err();
        assert!(err.to_string().starts_with(why), "{name}: {err}");
    }
    let err = hook.run(b"u", b"/dev/null", &mut NoWatch).unwrap_err();
    assert_eq!(err.to_string(), "not a regular file but a character device");
    assert!(!marker.exists());
    assert!(run(&hook, b"u", &target).status.success());
    assert!(marker.exists());
}

#[test]
fn relative_names_are_relative_to_the_root() {
    let fx = Fixture::new();
    let out = fx.path("out");
    let program = fx.script("arg", &format!("printf '%s' \"$1\" > {}", out.display()));
    let hook = fx.hook(&program, |_| {});
    let file = fx.file("rel", b"x");
    let relative = &file[1..];
    assert!(run(&hook, b"u", relative).status.success());
    assert_eq!(fx.read("out").as_bytes(), relative);
}

fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let fx = Fixture::new();
    let pids = fx.path("pids");
    let program = fx.script(
        "hang",
        &format!(
            "sleep 300 & echo $! > {p}; sh -c 'sleep 300' & echo $! >> {p}; echo $$ >> {p}; wait",
            p = pids.display()
        ),
    );
    let hook = fx.hook(&program, |c| c.timeout = Some(Duration::from_millis(500)));
    let file = fx.file("f", b"x");
    let report = run(&hook, b"u", &file);
    assert!(
        matches!(report.status, Status::TimedOut),
        "{:?}",
        report.status
    );
    assert!(report.duration >= Duration::from_millis(500));
    assert!(
        report.duration < Duration::from_secs(20),
        "{:?}",
        report.duration
    );
    let pids: Vec<i32> = fx
        .read("pids")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pids.iter().all(|&p| is_gone(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in pids {
        assert!(is_gone(pid), "process {pid} survived the timeout");
    }
}

#[test]
fn the_watch_is_woken_while_the_program_runs() {
    struct Ticks {
        next: Instant,
        count: u32,
    }
    impl Watch for Ticks {
        fn fd(&self) -> Option<BorrowedFd<'_>> {
            None
        }
        fn deadline(&self) -> Option<Instant> {
            Some(self.next)
        }
        fn wake(&mut self) {
            if Instant::now() >= self.next {
                self.count += 1;
                self.next = Instant::now() + Duration::from_millis(50);
            }
        }
    }
    let fx = Fixture::new();
    let hook = fx.hook(&fx.script("slow", "sleep 1"), |_| {});
    let file = fx.file("f", b"x");
    let mut ticks = Ticks {
        next: Instant::now(),
        count: 0,
    };
    let report = hook.run(b"u", &file, &mut ticks).unwrap();
    assert!(report.status.success());
    assert!(
        ticks.count >= 10,
        "only {} ticks in one second",
        ticks.count
    );
}

#[test]
fn captured_output_keeps_the_tail() {
    let fx = Fixture::new();
    let program = fx.script(
        "talk",
        "i=0; while [ $i -lt 2000 ]; do echo \"line $i\"; i=$((i+1)); done; echo oops >&2; exit 1",
    );
    let file = fx.file("f", b"x");
    let hook = fx.hook(&program, |c| c.capture_output = true);
    let report = run(&hook, b"u", &file);
    assert!(matches!(report.status, Status::Exited(1)));
    assert_eq!(report.stderr_tail, b"oops\n");
    assert_eq!(report.stdout_tail.len(), TAIL_LEN);
    assert!(report.stdout_tail.ends_with(b"line 1998\nline 1999\n"));
    // Without capture, nothing is kept.
    let hook = fx.hook(&program, |_| {});
    let report = run(&hook, b"u", &file);
    assert!(report.stdout_tail.is_empty() && report.stderr_tail.is_empty());
}

#[test]
fn sha256_is_computed_without_moving_the_offset() {
    let fx = Fixture::new();
    let out = fx.path("out");
    let program = fx.script("cat", &format!("cat <&3 > {}", out.display()));
    let file = fx.file("f", b"abc");
    let hook = fx.hook(&program, |c| c.hash = Hash::Sha256);
    let report = run(&hook, b"u", &file);
    assert_eq!(
        report.sha256.as_deref(),
        Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(fx.read("out"), "abc");
}

#[test]
fn programs_are_checked() {
    let fx = Fixture::new();
    let ok = fx.script("ok", "true");
    check_program(&ok, 0, 0).unwrap();
    let err = check_program(Path::new("relative/prog"), 0, 0).unwrap_err();
    assert!(err.to_string().contains("absolute path"), "{err}");
    let err = check_program(&fx.path("absent"), 0, 0).unwrap_err();
    assert!(err.to_string().contains("No such file"), "{err}");
    let err = check_program(fx.dir.path(), 0, 0).unwrap_err();
    assert!(err.to_string().ends_with("not a regular file"), "{err}");
    std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = check_program(&ok, 0, 0).unwrap_err();
    assert!(
        err.to_string().ends_with("not executable by uid 0 gid 0"),
        "{err}"
    );
    std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(&ok, Some(0), Some(0)).unwrap();
    check_program(&ok, 0, 0).unwrap();
    check_program(&ok, 65534, 0).unwrap();
    assert!(check_program(&ok, 65534, 65534).is_err());
    check_program_as_self(&ok).unwrap();
    assert!(check_program_as_self(Path::new("relative")).is_err());
    std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = check_program_as_self(&ok).unwrap_err();
    assert!(err.to_string().contains("not executable"), "{err}");
}

#[test]
fn names_are_looked_up_once_a_second_per_id() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static LOOKUPS: AtomicUsize = AtomicUsize::new(0);
    fn counted(id: u32) -> Option<Vec<u8>> {
        LOOKUPS.fetch_add(1, Ordering::SeqCst);
        (id != 7).then(|| format!("name{id}").into_bytes())
    }
    let mut names = Vec::new();
    for _ in 0..3 {
        assert_eq!(
            NameCache::get(&mut names, 1, counted),
            Some(b"name1".to_vec())
        );
        assert_eq!(NameCache::get(&mut names, 7, counted), None);
    }
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 2);
    std::thread::sleep(NAME_TTL + Duration::from_millis(50));
    assert_eq!(
        NameCache::get(&mut names, 1, counted),
        Some(b"name1".to_vec())
    );
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 3);
    // The cache stays bounded.
    for id in 100..100 + 2 * NAME_CACHE_LEN as u32 {
        NameCache::get(&mut names, id, counted);
    }
    assert!(names.len() <= NAME_CACHE_LEN);
    // Real lookups agree with the uncached functions.
    let mut cache = NameCache::default();
    assert_eq!(cache.user(0), user_name(0));
    assert_eq!(cache.group(0), group_name(0));
}

#[test]
fn a_swapped_directory_is_refused_not_followed() {
    let fx = Fixture::new();
    let out = fx.path("ran");
    let program = fx.script("p", &format!("echo ran > {}", out.display()));
    let hook = fx.hook(&program, |_| {});
    std::fs::create_dir(fx.path("elsewhere")).unwrap();
    fx.file("elsewhere/shadow", b"secret");
    std::os::unix::fs::symlink(fx.path("elsewhere"), fx.path("swap")).unwrap();
    let name = fx.path("swap/shadow");
    let skip = hook
        .run(b"u", name.as_os_str().as_bytes(), &mut NoWatch)
        .unwrap_err();
    assert!(matches!(skip, Skip::SymlinkInPath), "{skip}");
    assert_eq!(
        skip.to_string(),
        "a directory on the way to the file is a symbolic link"
    );
    assert!(!out.exists());
    // The virtual hosts' own <vhost dir>/<IP> links are followed.
    std::fs::create_dir(fx.path("vhosts")).unwrap();
    std::os::unix::fs::symlink(fx.path("elsewhere"), fx.path("vhosts/10.0.0.1")).unwrap();
    let hook = fx.hook(&program, |_| {}).with_vhost_dir(&fx.path("vhosts"));
    let name = fx.path("vhosts/10.0.0.1/shadow");
    let report = run(&hook, b"u", name.as_os_str().as_bytes());
    assert!(report.status.success(), "{:?}", report.status);
    assert!(report.fd_passed);
}

/// A watch that asks to stop at its first wake-up.
struct StopAtOnce(bool);

impl Watch for StopAtOnce {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn wake(&mut self) {
        self.0 = true;
    }
    fn stopping(&self) -> bool {
        self.0
    }
}

#[test]
fn hashing_counts_against_the_timeout_and_stops_on_request() {
    let fx = Fixture::new();
    let out = fx.path("ran");
    let program = fx.script("p", &format!("echo ran > {}", out.display()));
    // 64 MiB, sparse: 256 reads of 256 KiB.
    let big = fx.path("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let name = big.as_os_str().as_bytes();
    let hook = fx.hook(&program, |c| {
        c.hash = Hash::Sha256;
        c.timeout = Some(Duration::from_nanos(1));
    });
    let report = run(&hook, b"u", name);
    assert!(
        matches!(report.status, Status::TimedOut),
        "{:?}",
        report.status
    );
    assert_eq!(report.sha256, None);
    assert!(report.notes.iter().any(|n| n.contains("while hashing")));
    assert!(!out.exists(), "the program ran after the timeout");
    let hook = fx.hook(&program, |c| c.hash = Hash::Sha256);
    let skip = hook.run(b"u", name, &mut StopAtOnce(false)).unwrap_err();
    assert!(matches!(skip, Skip::Interrupted), "{skip}");
    assert!(!out.exists());
    let whole = run(&hook, b"u", name);
    assert_eq!(whole.sha256.as_deref().map(str::len), Some(64));
    assert!(out.exists());
}

#[test]
fn an_enormous_timeout_means_no_deadline_not_a_crash() {
    assert_eq!(deadline_after(Some(Duration::MAX)), None);
    assert!(deadline_after(Some(Duration::from_secs(1))).is_some());
    assert_eq!(deadline_after(None), None);
}
