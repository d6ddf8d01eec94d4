//! Starting a program: with `posix_spawn` ([`posix_spawn`]), or with
//! `fork` and `execve` ([`spawn`]) where `posix_spawn` cannot do what is
//! needed between the two: join a cgroup, empty the capability bounding
//! set, switch to another uid and gid.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// What the child is given.
#[derive(Debug)]
pub struct Spec<'a> {
    /// The program (absolute path).
    pub program: &'a CString,
    /// Its arguments, `argv[0]` included.
    pub argv: &'a [CString],
    /// Its whole environment.
    pub env: &'a [CString],
    /// Descriptors 0, 1 and 2.
    pub stdio: [BorrowedFd<'a>; 3],
    /// Descriptor 3, if any.
    pub fd3: Option<BorrowedFd<'a>>,
    /// A cgroup's `cgroup.procs`, open for writing: the child joins it.
    pub cgroup_procs: Option<BorrowedFd<'a>>,
    /// The same cgroup's directory: the child is created in it
    /// (`clone3(CLONE_INTO_CGROUP)`, which spares a migration), falling
    /// back to joining it through `cgroup_procs` where `clone3` is refused.
    pub cgroup_dir: Option<BorrowedFd<'a>>,
    /// The uid and gid to switch to (`setgroups([gid])`, `setgid`, `setuid`).
    pub identity: Option<(u32, u32)>,
    /// Empty the capability bounding set before switching identity.
    pub drop_capabilities: bool,
}

/// `clone3(2)`'s arguments, up to `cgroup` (`CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
#[derive(Debug, Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The step of the child that failed.
const STEPS: [&str; 7] = [
    "joining its cgroup",
    "setting up descriptors",
    "changing directory",
    "dropping capabilities",
    "switching to its uid/gid",
    "exec",
    "setting its process group",
];

/// Starts the child in its own process group; returns its pid once it has
/// called `execve` (an error says which step failed).
pub fn spawn(spec: &Spec<'_>) -> io::Result<libc::pid_t> {
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = spec.env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut pipe = [0; 2];
    // SAFETY: pipe has room for two descriptors.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new descriptors.
    let (report_r, report_w) =
        unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
        .unwrap_or(63);
    let stdio: Vec<RawFd> = spec.stdio.iter().map(|f| f.as_raw_fd()).collect();
    let fd3 = spec.fd3.map(|f| f.as_raw_fd());
    let procs = spec.cgroup_procs.map(|f| f.as_raw_fd());
    let mut procs = procs;
    let mut pid = -1;
    if let Some(dir) = spec.cgroup_dir {
        let args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: dir.as_raw_fd() as u64,
            ..CloneArgs::default()
        };
        // SAFETY: clone3 without CLONE_VM and without a stack behaves as
        // fork(2); the same rules as below apply to the child.
        pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        } as libc::pid_t;
        if pid >= 0 {
            procs = None;
        }
    }
    if pid < 0 {
        // SAFETY: the caller is single-threaded; between fork and execve
        // the child only makes async-signal-safe system calls on data
        // prepared before the fork, then execs or _exits.
        pid = unsafe { libc::fork() };
    }
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above; every pointer was built before the fork.
        unsafe {
            let fail = |step: u8| -> ! {
                let errno = *libc::__errno_location();
                let mut msg = [0u8; 5];
                msg[0] = step;
                msg[1..].copy_from_slice(&errno.to_le_bytes());
                libc::write(report_w.as_raw_fd(), msg.as_ptr().cast(), 5);
                libc::_exit(127)
            };
            if let Some(procs) = procs {
                if libc::write(procs, b"0".as_ptr().cast(), 1) != 1 {
                    fail(0);
                }
            }
            if libc::setpgid(0, 0) < 0 {
                fail(6);
            }
            // Targets above 3 first moved nothing: the caller passes
            // descriptors numbered above 3.
            for (target, fd) in stdio.iter().enumerate() {
                if libc::dup2(*fd, target as RawFd) < 0 {
                    fail(1);
                }
            }
            if let Some(fd) = fd3 {
                if libc::dup2(fd, 3) < 0 {
                    fail(1);
                }
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            for sig in 1..libc::SIGRTMIN() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            if libc::chdir(c"/".as_ptr()) < 0 {
                fail(2);
            }
            if spec.drop_capabilities {
                for cap in 0..=last_cap {
                    if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) < 0
                        && *libc::__errno_location() != libc::EINVAL
                    {
                        fail(3);
                    }
                }
            }
            if let Some((uid, gid)) = spec.identity {
                let groups = [gid];
                if libc::setgroups(1, groups.as_ptr()) < 0
                    || libc::setgid(gid) < 0
                    || libc::setuid(uid) < 0
                {
                    fail(4);
                }
            }
            libc::execve(spec.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
            fail(5)
        }
    }
    drop(report_w);
    let mut msg = [0u8; 5];
    let n = loop {
        // SAFETY: msg is valid for 5 bytes.
        let n = unsafe { libc::read(report_r.as_raw_fd(), msg.as_mut_ptr().cast(), 5) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        break n;
    };
    if n == 0 {
        return Ok(pid);
    }
    let mut status = 0;
    // SAFETY: reaping the child that failed.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let errno = if n == 5 {
        i32::from_le_bytes(msg[1..].try_into().expect("4 bytes"))
    } else {
        libc::EIO
    };
    let step = STEPS.get(msg[0] as usize).copied().unwrap_or("starting");
    let e = io::Error::from_raw_os_error(errno);
    Err(io::Error::new(e.kind(), format!("{step}: {e}")))
}

/// Starts `program` with `posix_spawn(3)` in a process group of its own,
/// with an empty signal mask and every signal but `SIGKILL` and `SIGSTOP`
/// at its default disposition, `stdio` as descriptors 0, 1 and 2, `fd3`
/// (if any) as descriptor 3, and `/` as working directory. `argv` and
/// `env` are passed as they are. Returns the child's pid once it has called
/// `execve`; an error is the first failure of the attribute and action
/// set-up, or `posix_spawn`'s.
pub fn posix_spawn(
    program: &CStr,
    argv: &[&CStr],
    env: &[CString],
    stdio: [BorrowedFd<'_>; 3],
    fd3: Option<BorrowedFd<'_>>,
) -> io::Result<libc::pid_t> {
    let mut argv: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|v| v.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: the attribute and action objects are initialised before use
    // and destroyed after; every pointer passed (program, argv, envp and the
    // strings they point at, the signal sets, "/") stays valid until
    // posix_spawn returns (glibc waits for the child's exec); the
    // descriptors are borrowed for as long.
    unsafe {
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        libc::posix_spawnattr_init(&mut attr);
        libc::posix_spawn_file_actions_init(&mut actions);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        let mut defaults: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut defaults);
        // Every signal, real-time ones too: glibc's child then sets each
        // disposition once instead of reading it first (the two it keeps
        // for itself are refused by sigaddset and skipped).
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaddset(&mut defaults, sig);
            }
        }
        let flags = libc::POSIX_SPAWN_SETPGROUP as libc::c_int
            | libc::POSIX_SPAWN_SETSIGMASK as libc::c_int
            | libc::POSIX_SPAWN_SETSIGDEF as libc::c_int;
        let mut rc = libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short);
        rc |= libc::posix_spawnattr_setpgroup(&mut attr, 0);
        rc |= libc::posix_spawnattr_setsigmask(&mut attr, &empty);
        rc |= libc::posix_spawnattr_setsigdefault(&mut attr, &defaults);
        for (target, fd) in stdio.iter().enumerate() {
            rc |= libc::posix_spawn_file_actions_adddup2(
                &mut actions,
                fd.as_raw_fd(),
                target as libc::c_int,
            );
        }
        if let Some(fd) = fd3 {
            rc |= libc::posix_spawn_file_actions_adddup2(&mut actions, fd.as_raw_fd(), 3);
        }
        rc |= libc::posix_spawn_file_actions_addchdir_np(&mut actions, c"/".as_ptr());
        let mut pid = 0;
        if rc == 0 {
            rc = libc::posix_spawn(
                &mut pid,
                program.as_ptr(),
                &actions,
                &attr,
                argv.as_ptr().cast(),
                envp.as_ptr().cast(),
            );
        }
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn runs_a_program_and_reports_a_failed_exec() {
        let null: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        let null = null.as_fd();
        let program = c("/bin/sh");
        let argv = [c("/bin/sh"), c("-c"), c("exit 7")];
        let env = [c("PATH=/bin")];
        let spec = Spec {
            program: &program,
            argv: &argv,
            env: &env,
            stdio: [null, null, null],
            fd3: None,
            cgroup_procs: None,
            cgroup_dir: None,
            identity: None,
            drop_capabilities: false,
        };
        let pid = spawn(&spec).unwrap();
        let mut status = 0;
        // SAFETY: waiting for our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7);
        let missing = c("/nonexistent/program");
        let e = spawn(&Spec {
            program: &missing,
            ..spec
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("exec: "), "{e}");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn posix_spawn_maps_descriptors_and_starts_a_process_group() {
        let null: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let program = c("/bin/sh");
        let script = c("read -r _ _ _ _ g _ </proc/$$/stat; echo \"$(pwd) $g $$\"; echo three >&3");
        let env = [c("PATH=/usr/bin:/bin")];
        let argv = [program.as_c_str(), c"-c", script.as_c_str()];
        let pid = posix_spawn(
            &program,
            &argv,
            &env,
            [null.as_fd(), w.as_fd(), null.as_fd()],
            Some(w.as_fd()),
        )
        .unwrap();
        drop(w);
        let mut out = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut out).unwrap();
        let mut status = 0;
        // SAFETY: waiting for our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        let mut lines = out.lines();
        let first: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(first[0], "/");
        assert_eq!(first[2], pid.to_string());
        assert_eq!(first[1], pid.to_string(), "its own process group");
        assert_eq!(lines.next(), Some("three"));
        let missing = c("/nonexistent/program");
        let e = posix_spawn(
            &missing,
            &[missing.as_c_str()],
            &env,
            [null.as_fd(); 3],
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
