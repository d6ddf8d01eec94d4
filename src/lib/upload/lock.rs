//! One reader per upload pipe: an exclusive `flock` on a lock file named
//! after the pipe's device and inode, under [`LOCK_DIR`], holding the pid
//! of the reader that has it. Two readers on one pipe would split its
//! records between them (and cut records in two).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Where the lock files are.
pub const LOCK_DIR: &str = "/run/lock/pure-uploadscript";

/// Why the pipe cannot be ours.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another reader has it.
    #[error("{pipe} already has a reader ({holder}); two readers would split its records: stop one of them")]
    Held {
        /// The pipe.
        pipe: PathBuf,
        /// Who has it, as well as known.
        holder: Holder,
    },
    /// The lock file could not be used.
    #[error("cannot lock {lock}: {error}")]
    Io {
        /// The lock file.
        lock: PathBuf,
        /// What failed.
        error: io::Error,
    },
}

/// The reader holding a pipe's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder(pub Option<u32>);

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(pid) => write!(f, "pid {pid}"),
            None => f.write_str("pid unknown"),
        }
    }
}

/// The pipe's lock, released when dropped (or when the process ends).
/// Dropping it also removes its file, while the lock is still held.
#[derive(Debug)]
pub struct ReaderLock {
    _file: Flock<File>,
    /// The lock file.
    pub path: PathBuf,
}

impl Drop for ReaderLock {
    fn drop(&mut self) {
        // Runs before the field drops, so the file goes while still locked.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The lock file of the pipe open as `fifo`, under `dir`.
pub fn lock_path(dir: &Path, fifo: BorrowedFd<'_>) -> io::Result<PathBuf> {
    let st = nix::sys::stat::fstat(fifo.as_raw_fd())?;
    Ok(dir.join(format!("pipe-{}-{}.lock", st.st_dev, st.st_ino)))
}

/// Takes the lock of the pipe `pipe`, open as `fifo`, in `dir` (created
/// if missing, mode 0755), and writes this process's pid into it.
pub fn lock(dir: &Path, fifo: BorrowedFd<'_>, pipe: &Path) -> Result<ReaderLock, LockError> {
    let path = lock_path(dir, fifo).map_err(|error| LockError::Io {
        lock: dir.to_owned(),
        error,
    })?;
    let fail = |error: io::Error| LockError::Io {
        lock: path.clone(),
        error,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(fail)?;
    // A holder removes its lock file as it lets go: a lock taken on a file
    // that was removed meanwhile is no lock; open the path again.
    let mut file = loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(fail)?;
        let locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, nix::Error::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    pipe: pipe.to_owned(),
                    holder: Holder(text.trim().parse().ok()),
                });
            }
            Err((_, e)) => return Err(fail(e.into())),
        };
        let held = nix::sys::stat::fstat(locked.as_raw_fd()).map_err(|e| fail(e.into()))?;
        match nix::sys::stat::stat(&path) {
            Ok(now) if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino) => break locked,
            Ok(_) => continue,
            Err(nix::Error::ENOENT) => continue,
            Err(e) => return Err(fail(e.into())),
        }
    };
    file.set_len(0).map_err(fail)?;
    file.rewind().map_err(fail)?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())
        .map_err(fail)?;
    Ok(ReaderLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_second_reader_is_told_who_has_the_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("upload.pipe");
        nix::unistd::mkfifo(&pipe, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&pipe)
                .unwrap()
        };
        let (a, b) = (open(), open());
        let locks = dir.path().join("locks");
        let held = lock(&locks, a.as_fd(), &pipe).unwrap();
        let text = std::fs::read_to_string(&held.path).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        let e = lock(&locks, b.as_fd(), &pipe).unwrap_err();
        assert!(matches!(
            &e,
            LockError::Held { holder: Holder(Some(pid)), .. } if *pid == std::process::id()
        ));
        let message = e.to_string();
        assert!(message.contains(&pipe.display().to_string()), "{message}");
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        let path = held.path.clone();
        drop(held);
        // Once let go of, the lock leaves no file behind.
        assert!(!path.exists(), "{} is left", path.display());
        let again = lock(&locks, b.as_fd(), &pipe).unwrap();
        assert!(again.path.exists());
        // Another pipe has another lock.
        let other = tempfile::tempfile().unwrap();
        assert_ne!(lock_path(&locks, other.as_fd()).unwrap(), again.path);
    }
}
