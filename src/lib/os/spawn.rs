//! Starting a program: in the manner of `posix_spawn` ([`vfork_spawn`]),
//! or with `fork` and `execve` ([`spawn`]) where more is needed between the
//! two: join a cgroup, empty the capability bounding set, switch to another
//! uid and gid. Either child resets only the signal dispositions that are
//! not the default already.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

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
    /// A cgroup's directory: the child is created in it
    /// (`clone3(CLONE_INTO_CGROUP)`, which spares a migration), or joins it
    /// through its `cgroup.procs` where `clone3` is refused.
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
    let last_cap = if spec.drop_capabilities {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
            .unwrap_or(63)
    } else {
        0
    };
    let stdio: Vec<RawFd> = spec.stdio.iter().map(|f| f.as_raw_fd()).collect();
    let reset = non_default_signals();
    let fd3 = spec.fd3.map(|f| f.as_raw_fd());
    // The cgroup the child joins itself (when clone3 is refused).
    let mut join = spec.cgroup_dir.map(|f| f.as_raw_fd());
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
            join = None;
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
            if let Some(dir) = join {
                let procs = libc::openat(dir, c"cgroup.procs".as_ptr(), libc::O_WRONLY);
                if procs < 0 || libc::write(procs, b"0".as_ptr().cast(), 1) != 1 {
                    fail(0);
                }
                libc::close(procs);
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
            let default: KernelSigaction = [0; 4];
            for &sig in reset {
                rt_sigaction(sig, &default, std::ptr::null_mut());
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

/// The kernel's `struct sigaction`, with room to spare: all-zero is
/// `SIG_DFL` with no flags and an empty mask.
type KernelSigaction = [u64; 4];

/// `rt_sigaction(2)` itself: glibc's wrapper refuses the two real-time
/// signals it keeps for itself, which may be ignored all the same (and an
/// ignored signal stays ignored across `execve`).
///
/// # Safety
/// `new` and `old` must be null or point at a [`KernelSigaction`].
unsafe fn rt_sigaction(
    sig: libc::c_int,
    new: *const KernelSigaction,
    old: *mut KernelSigaction,
) -> libc::c_long {
    // SAFETY: as the caller guarantees; the kernel's sigset is 8 bytes.
    unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, new, old, 8) }
}

/// Signals whose disposition in this process is not the default (ignored,
/// or caught): the only ones a child resets before `execve`. Read once, at
/// the first start: the daemon sets no disposition after it has started.
fn non_default_signals() -> &'static [libc::c_int] {
    static SIGNALS: OnceLock<Vec<libc::c_int>> = OnceLock::new();
    SIGNALS.get_or_init(|| {
        (1..=libc::SIGRTMAX())
            .filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP)
            .filter(|&sig| {
                let mut old: KernelSigaction = [0; 4];
                // SAFETY: reading a disposition into a buffer of the size.
                let read = unsafe { rt_sigaction(sig, std::ptr::null(), &mut old) };
                // The handler comes first: 0 is SIG_DFL.
                read == 0 && old[0] != 0
            })
            .collect()
    })
}

/// What the child of [`vfork_spawn`] is given, prepared before the clone;
/// it writes `errno` back when a step fails.
#[repr(C)]
struct ChildArgs {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// Source of descriptors 0, 1, 2 and 3 (-1: none for 3).
    fds: [RawFd; 4],
    reset: *const libc::c_int,
    reset_len: usize,
    errno: libc::c_int,
}

/// The child's stack: it only makes system calls before `execve`.
const CHILD_STACK: usize = 64 * 1024;

/// Runs in the child of [`vfork_spawn`], on its own stack, in the parent's
/// memory, while the parent waits: sets up and execs, or writes `errno` and
/// exits.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's ChildArgs, alive until the parent resumes
    // (after our execve or _exit); only async-signal-safe calls are made,
    // with no allocation.
    unsafe {
        let args = arg.cast::<ChildArgs>();
        let fail = || -> ! {
            std::ptr::write_volatile(
                std::ptr::addr_of_mut!((*args).errno),
                *libc::__errno_location(),
            );
            libc::_exit(127)
        };
        if libc::setpgid(0, 0) < 0 {
            fail();
        }
        for (target, &fd) in (*args).fds.iter().enumerate() {
            let target = target as RawFd;
            if fd < 0 {
                continue;
            }
            // dup2 onto itself keeps close-on-exec: clear it instead.
            let done = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            };
            if done < 0 {
                fail();
            }
        }
        let default: KernelSigaction = [0; 4];
        for i in 0..(*args).reset_len {
            rt_sigaction(*(*args).reset.add(i), &default, std::ptr::null_mut());
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        if libc::chdir(c"/".as_ptr()) < 0 {
            fail();
        }
        libc::execve((*args).program, (*args).argv, (*args).envp);
        fail()
    }
}

/// Starts `program` as `posix_spawn(3)` does (a child that shares this
/// process's memory, `CLONE_VM | CLONE_VFORK`, while it sets up and execs),
/// in a process group of its own, with an empty signal mask and every
/// signal at its default disposition, `stdio` as descriptors 0, 1 and 2,
/// `fd3` (if any) as descriptor 3, and `/` as working directory. `argv` and
/// `env` are passed as they are. Descriptors other than these must be
/// close-on-exec, and the sources numbered 3 or above (bar `fd3` as 3).
///
/// Unlike glibc's, the child sets only the dispositions that are not
/// already the default (glibc's sets every signal's, some 64 system calls,
/// each one paid again under a seccomp filter), and nothing is allocated or
/// mapped per start. Returns the child's pid once it has called `execve`,
/// or why it could not.
pub fn vfork_spawn(
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
    let reset = non_default_signals();
    let mut args = ChildArgs {
        program: program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        fds: [
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
            fd3.map_or(-1, |f| f.as_raw_fd()),
        ],
        reset: reset.as_ptr(),
        reset_len: reset.len(),
        errno: 0,
    };
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    // SAFETY: the stack's top (the child's stack grows down), 16-aligned,
    // within the allocation; the child writes below it, nothing reads it.
    let top = unsafe { stack.as_mut_ptr().add(CHILD_STACK) };
    let top = (top as usize & !15) as *mut libc::c_void;
    // SAFETY: every signal is blocked in this thread while the child runs
    // in its memory (no handler of ours may run on the child's stack);
    // CLONE_VFORK suspends this thread until the child has called execve
    // or _exit, so `args`, `argv`, `envp`, the strings and the stack stay
    // alive and unmoved for as long as the child uses them.
    let (pid, clone_error) = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::addr_of_mut!(args).cast(),
        );
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        (pid, clone_error)
    };
    drop(stack);
    if pid < 0 {
        return Err(clone_error);
    }
    // SAFETY: the child has exec'd or exited: nothing writes `args` now.
    let errno = unsafe { std::ptr::read_volatile(std::ptr::addr_of!(args.errno)) };
    if errno != 0 {
        let mut status = 0;
        // SAFETY: reaping the child that failed.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(io::Error::from_raw_os_error(errno));
    }
    Ok(pid)
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

    /// Runs `script` with `/bin/sh` through [`vfork_spawn`], its standard
    /// output (and descriptor 3 too) on a pipe: its pid, exit status and
    /// output.
    fn sh(script: &str) -> (libc::pid_t, libc::c_int, String) {
        let null: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let program = c("/bin/sh");
        let script = c(script);
        let pid = vfork_spawn(
            &program,
            &[program.as_c_str(), c"-c", script.as_c_str()],
            &[c("PATH=/usr/bin:/bin")],
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
        (pid, status, out)
    }

    #[test]
    fn vfork_spawn_maps_descriptors_and_starts_a_process_group() {
        let (pid, status, out) =
            sh("read -r _ _ _ _ g _ </proc/$$/stat; echo \"$(pwd) $g $$\"; echo three >&3");
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        let mut lines = out.lines();
        let first: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(first[0], "/");
        assert_eq!(first[2], pid.to_string());
        assert_eq!(first[1], pid.to_string(), "its own process group");
        assert_eq!(lines.next(), Some("three"));
        let null: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        let env = [c("PATH=/usr/bin:/bin")];
        let missing = c("/nonexistent/program");
        let e = vfork_spawn(
            &missing,
            &[missing.as_c_str()],
            &env,
            [null.as_fd(); 3],
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn vfork_spawn_starts_with_no_signal_blocked_or_ignored() {
        // This thread blocks SIGUSR2; SIGPIPE is ignored by Rust's runtime.
        // SAFETY: sigset_t is a plain C struct; changing this thread's mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        let (_, _, out) = sh("grep -E '^Sig(Blk|Ign)' /proc/$$/status");
        assert!(non_default_signals().contains(&libc::SIGPIPE));
        assert_eq!(
            out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
            "{out}"
        );
    }
}
