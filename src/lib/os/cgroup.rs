//! The unified (v2) control group hierarchy, as a service with `Delegate=yes`
//! may use it: its own cgroup, sub-cgroups, their limits, statistics and
//! `cgroup.kill`.
//!
//! On a pure v2 system the hierarchy is mounted on `/sys/fs/cgroup`; on a
//! hybrid one on `/sys/fs/cgroup/unified`, usually without any controller
//! (they are bound to v1 hierarchies): then only the core files exist
//! (`cgroup.procs`, `cgroup.kill`, `cpu.stat`'s usage), and the limits must
//! be kept by other means.

use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One control group of the unified hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    dir: PathBuf,
}

fn unified_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.procs").exists())
}

impl Cgroup {
    /// The unified hierarchy's cgroup named in `proc_cgroup`, the text of a
    /// `/proc/PID/cgroup` (`/proc/self/cgroup`: this process's own), if that
    /// hierarchy is mounted.
    pub fn of(proc_cgroup: &str) -> Option<Cgroup> {
        let root = unified_root()?;
        let path = proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
        let dir = root.join(path.trim_start_matches('/'));
        dir.join("cgroup.procs").exists().then_some(Cgroup { dir })
    }

    /// The cgroup at `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Cgroup {
        Cgroup { dir: dir.into() }
    }

    /// Its directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The sub-cgroup `name`, created if missing.
    pub fn child(&self, name: &str) -> io::Result<Cgroup> {
        let dir = self.dir.join(name);
        match fs::create_dir(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        Ok(Cgroup { dir })
    }

    /// Writes `value` into the cgroup's file `name`.
    pub fn write(&self, name: &str, value: &str) -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join(name))?;
        f.write_all(value.as_bytes())
    }

    /// Reads the cgroup's file `name`.
    pub fn read(&self, name: &str) -> io::Result<String> {
        fs::read_to_string(self.dir.join(name))
    }

    /// Moves the calling process into this cgroup.
    pub fn enter(&self) -> io::Result<()> {
        self.write("cgroup.procs", "0")
    }

    /// Its directory, open (`O_PATH`), for `clone3(CLONE_INTO_CGROUP)`.
    pub fn dir_fd(&self) -> io::Result<OwnedFd> {
        use std::os::unix::fs::OpenOptionsExt;
        Ok(fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&self.dir)?
            .into())
    }

    /// The controllers that may be enabled for its children.
    pub fn controllers(&self) -> Vec<String> {
        self.read("cgroup.controllers")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Enables `controllers` for its children (those available; the
    /// cgroup must hold no process itself).
    pub fn enable(&self, controllers: &[&str]) -> Vec<String> {
        if controllers.is_empty() {
            return Vec::new();
        }
        let available = self.controllers();
        let mut enabled = Vec::new();
        for c in controllers {
            if available.iter().any(|a| a == c)
                && self
                    .write("cgroup.subtree_control", &format!("+{c}"))
                    .is_ok()
            {
                enabled.push((*c).to_owned());
            }
        }
        enabled
    }

    /// The pids in it.
    pub fn procs(&self) -> Vec<i32> {
        self.read("cgroup.procs")
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Kills every process in it (`cgroup.kill`, or `SIGKILL` to each pid
    /// until none is left where the kernel lacks it), waiting up to
    /// `patience` for them to be gone. An empty cgroup is left as it is.
    pub fn kill_all(&self, patience: Duration) -> bool {
        if self.procs().is_empty() {
            return true;
        }
        let fast = self.write("cgroup.kill", "1").is_ok();
        let until = Instant::now() + patience;
        loop {
            let procs = self.procs();
            if procs.is_empty() {
                return true;
            }
            if !fast {
                for pid in procs {
                    // SAFETY: kill(2) on a pid of this cgroup.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A value of a flat-keyed file (`cpu.stat`, `memory.events`).
    pub fn stat(&self, file: &str, key: &str) -> Option<u64> {
        let text = self.read(file).ok()?;
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
    }

    /// A single-number file (`memory.peak`).
    pub fn number(&self, file: &str) -> Option<u64> {
        self.read(file).ok()?.trim().parse().ok()
    }

    /// Removes it (it must hold no process).
    pub fn remove(&self) -> io::Result<()> {
        fs::remove_dir(&self.dir)
    }
}

/// Resident memory of `pid` in bytes (`/proc/PID/statm`), if it exists.
pub fn resident_bytes(pid: i32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf with a constant name.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Some(pages * page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_files_and_numbers_are_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("cpu.stat"),
            "usage_usec 1234\nuser_usec 1000\n",
        )
        .unwrap();
        fs::write(dir.path().join("memory.peak"), "4096\n").unwrap();
        fs::write(
            dir.path().join("memory.events"),
            "low 0\noom 1\noom_kill 2\n",
        )
        .unwrap();
        fs::write(dir.path().join("cgroup.procs"), "12\n34\n").unwrap();
        let g = Cgroup::at(dir.path());
        assert_eq!(g.stat("cpu.stat", "usage_usec"), Some(1234));
        assert_eq!(g.stat("memory.events", "oom_kill"), Some(2));
        assert_eq!(g.stat("memory.events", "missing"), None);
        assert_eq!(g.number("memory.peak"), Some(4096));
        assert_eq!(g.number("memory.max"), None);
        assert_eq!(g.procs(), [12, 34]);
        fs::write(dir.path().join("cpu.stat"), "garbage\n\u{0}\n").unwrap();
        assert_eq!(g.stat("cpu.stat", "usage_usec"), None);
    }

    #[test]
    fn resident_memory_of_this_process() {
        let rss = resident_bytes(std::process::id() as i32).unwrap();
        assert!(rss > 0);
        assert_eq!(resident_bytes(-1), None);
    }
}
