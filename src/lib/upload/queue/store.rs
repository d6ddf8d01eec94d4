//! The queue file in its directory (the unit's `StateDirectory=`), shared
//! between the reader and the administrator's commands.
//!
//! - `queue`: the entries ([`format`](mod@format)), appended, rewritten from the queue
//!   in memory at start and when it has grown;
//! - `queue.lock`: every writer (the reader, `queue retry`, `queue drop`)
//!   holds it exclusively while it appends, readers of the whole file
//!   (`queue list`) share it, so that an administrator's request lands
//!   whole between the reader's writes, which the reader then picks up;
//! - `reader.lock`: held by the running reader (one per directory);
//! - `queue.damaged-SECONDS`: a file whose header was not understood or
//!   that had damaged frames, set aside at start as it was found.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::upload::queue::format::{self, Damage, Entry, HeaderError};
use crate::upload::queue::state::{Queue, RequestError};

/// The queue file's name in its directory.
pub const FILE_NAME: &str = "queue";
/// The writers' lock.
pub const LOCK_NAME: &str = "queue.lock";
/// The running reader's lock.
pub const READER_LOCK_NAME: &str = "reader.lock";
/// The file is rewritten once it is this long and four times what the
/// queue needs.
pub const COMPACT_AT: u64 = 1 << 20;

/// Why the queue cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A file of the queue cannot be opened, read or written.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// Another reader uses the directory.
    #[error("{0}: another pure-uploadscript reads uploads into this queue")]
    Busy(PathBuf),
    /// An administrator's request does not apply.
    #[error(transparent)]
    Request(#[from] RequestError),
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> QueueError + 'a {
    move |source| QueueError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// What was set aside at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// The copy of the file as it was found.
    pub path: PathBuf,
    /// Why.
    pub why: Damaged,
    /// Entries found after the damage and kept.
    pub recovered: usize,
}

/// What was wrong with the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Damaged {
    /// The header.
    #[error("its header: {0}")]
    Header(HeaderError),
    /// A frame (the first one wrong).
    #[error("the frame at byte {}: {}", .0.offset, .0.error)]
    Frame(Damage),
}

/// The queue file, opened by the reader.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    file: File,
    /// The length read or written so far.
    len: u64,
    lock: Option<File>,
    _reader: Flock<File>,
}

/// What [`Store::open`] found.
#[derive(Debug)]
pub struct Opened {
    /// The store, ready to append.
    pub store: Store,
    /// The queue it holds.
    pub queue: Queue,
    /// The damage set aside, if any.
    pub set_aside: Option<SetAside>,
}

fn open_lock(path: &Path) -> Result<File, QueueError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_error("open", path))
}

fn lock(file: File, arg: FlockArg, path: &Path) -> Result<Flock<File>, QueueError> {
    Flock::lock(file, arg).map_err(|(_, e)| QueueError::Io {
        action: "lock",
        path: path.to_owned(),
        source: e.into(),
    })
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads the whole queue file, or an empty one when it does not exist.
fn read_file(path: &Path) -> Result<Option<Vec<u8>>, QueueError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", path)(e)),
    }
}

/// Writes `entries` as a new file at `path` (through a temporary file,
/// synced, renamed, the directory synced) and opens it for appending.
fn write_new(dir: &Path, path: &Path, entries: &[Entry]) -> Result<(File, u64), QueueError> {
    let tmp = dir.join(format!("{FILE_NAME}.new"));
    let mut bytes = format::header().to_vec();
    for e in entries {
        format::encode(e, &mut bytes);
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(io_error("create", &tmp))?;
    f.write_all(&bytes).map_err(io_error("write", &tmp))?;
    f.sync_data().map_err(io_error("sync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_error("rename", &tmp))?;
    sync_dir(dir).map_err(io_error("sync", dir))?;
    let file = open_append(path)?;
    Ok((file, bytes.len() as u64))
}

fn open_append(path: &Path) -> Result<File, QueueError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_error("open", path))
}

/// Decodes frames from the start of `bytes` up to the first bad one;
/// returns the entries and the bytes they took.
fn decode_tail(bytes: &[u8]) -> (Vec<Entry>, usize) {
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        match format::decode_frame(&bytes[at..]) {
            Ok((entry, len)) => {
                out.push(entry);
                at += len;
            }
            Err(_) => break,
        }
    }
    (out, at)
}

/// What `queue list` sees.
#[derive(Debug)]
pub struct Snapshot {
    /// The queue.
    pub queue: Queue,
    /// Damage the reader will set aside at its next start.
    pub damaged: Option<Damaged>,
    /// Whether a reader holds the queue.
    pub reader_running: bool,
}

impl Store {
    /// Opens the queue in `dir` (created, mode 0700, if missing) for the
    /// reader: takes the reader's lock, reads the file, sets a damaged file
    /// aside (keeping every entry still readable in it) and rewrites the
    /// file from the queue it holds.
    pub fn open(dir: &Path) -> Result<Opened, QueueError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error("create", dir))?;
        let reader_path = dir.join(READER_LOCK_NAME);
        let reader = match Flock::lock(open_lock(&reader_path)?, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(QueueError::Busy(dir.to_owned()))
            }
            Err((_, e)) => return Err(io_error("lock", &reader_path)(e.into())),
        };
        let lock_path = dir.join(LOCK_NAME);
        let writers = lock(open_lock(&lock_path)?, FlockArg::LockExclusive, &lock_path)?;
        let path = dir.join(FILE_NAME);
        let bytes = read_file(&path)?;
        let (entries, damaged) = match &bytes {
            None => (Vec::new(), None),
            Some(bytes) => match format::check_header(bytes) {
                Err(HeaderError::Short) if bytes.is_empty() => (Vec::new(), None),
                Err(e) => (Vec::new(), Some(Damaged::Header(e))),
                Ok(()) => {
                    let decoded = format::decode(bytes);
                    (decoded.entries, decoded.damage.map(Damaged::Frame))
                }
            },
        };
        let set_aside = match (damaged, &bytes) {
            (Some(why), Some(bytes)) => {
                let aside = dir.join(format!("{FILE_NAME}.damaged-{}", now_secs()));
                std::fs::write(&aside, bytes).map_err(io_error("write", &aside))?;
                Some(SetAside {
                    path: aside,
                    why,
                    recovered: entries.len(),
                })
            }
            _ => None,
        };
        let queue = Queue::replay(&entries);
        let (file, len) = write_new(dir, &path, &queue.snapshot())?;
        let lock = writers.unlock().map_err(|(_, e)| QueueError::Io {
            action: "unlock",
            path: lock_path.clone(),
            source: e.into(),
        })?;
        Ok(Opened {
            store: Store {
                dir: dir.to_owned(),
                file,
                len,
                lock: Some(lock),
                _reader: reader,
            },
            queue,
            set_aside,
        })
    }

    /// Gives the directory and its files to `uid`:`gid`, the identity the
    /// reader switches to.
    pub fn give_to(&self, uid: u32, gid: u32) -> io::Result<()> {
        let owner = (
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        );
        for path in [
            self.dir.clone(),
            self.dir.join(FILE_NAME),
            self.dir.join(LOCK_NAME),
            self.dir.join(READER_LOCK_NAME),
        ] {
            // Changing nothing needs no privilege (the reader's sandbox may
            // not allow chown at all).
            let meta = std::fs::symlink_metadata(&path)?;
            if std::os::unix::fs::MetadataExt::uid(&meta) != uid
                || std::os::unix::fs::MetadataExt::gid(&meta) != gid
            {
                nix::unistd::chown(&path, owner.0, owner.1)?;
            }
        }
        Ok(())
    }

    /// The file's length as written and read so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when only the header has been written.
    pub fn is_empty(&self) -> bool {
        self.len <= format::HEADER_LEN as u64
    }

    fn with_lock<T>(&mut self, f: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<T> {
        let file = self
            .lock
            .take()
            .ok_or_else(|| io::Error::other("lock lost"))?;
        let held = Flock::lock(file, FlockArg::LockExclusive).map_err(|(file, e)| {
            self.lock = Some(file);
            io::Error::from(e)
        })?;
        let result = f(self);
        match held.unlock() {
            Ok(file) => self.lock = Some(file),
            Err((held, e)) => {
                // Dropping it unlocks too.
                drop(held);
                self.lock = Some(open_lock(&self.dir.join(LOCK_NAME)).map_err(io::Error::other)?);
                return Err(e.into());
            }
        }
        result
    }

    /// Reads what others appended since the last read or write.
    fn read_others(&mut self) -> io::Result<Vec<Entry>> {
        let size = self.file.metadata()?.len();
        if size <= self.len {
            return Ok(Vec::new());
        }
        let mut bytes = vec![0; (size - self.len) as usize];
        self.file.seek(SeekFrom::Start(self.len))?;
        self.file.read_exact(&mut bytes)?;
        let (entries, used) = decode_tail(&bytes);
        if used < bytes.len() {
            tracing::warn!(
                "{}: {} bytes appended by another writer are not readable; they are set aside at the next start",
                self.dir.join(FILE_NAME).display(),
                bytes.len() - used
            );
        }
        self.len = size;
        Ok(entries)
    }

    /// Entries others (the administrator's commands) appended since the
    /// last call; cheap when there are none.
    pub fn others(&mut self) -> io::Result<Vec<Entry>> {
        if self.file.metadata()?.len() <= self.len {
            return Ok(Vec::new());
        }
        self.with_lock(Self::read_others)
    }

    /// Appends `entries`, durably when `sync` (`fdatasync`). Returns what
    /// others appended before them. On failure (a full disk), nothing of
    /// `entries` is left in the file.
    pub fn append(&mut self, entries: &[Entry], sync: bool) -> io::Result<Vec<Entry>> {
        let mut bytes = Vec::with_capacity(entries.len() * 80);
        for e in entries {
            format::encode(e, &mut bytes);
        }
        self.with_lock(|store| {
            let others = store.read_others()?;
            let result = store.file.write_all(&bytes).and_then(|()| {
                if sync {
                    store.file.sync_data()
                } else {
                    Ok(())
                }
            });
            match result {
                Ok(()) => {
                    store.len += bytes.len() as u64;
                    Ok(others)
                }
                Err(e) => {
                    // No torn frame left behind.
                    let _ = store.file.set_len(store.len);
                    Err(e)
                }
            }
        })
    }

    /// Rewrites the file from `queue` when it has grown well past what the
    /// queue needs.
    pub fn compact_if_large(&mut self, queue: &Queue) -> io::Result<bool> {
        if self.len < COMPACT_AT {
            return Ok(false);
        }
        let snapshot = queue.snapshot();
        let mut needed = format::HEADER_LEN as u64;
        for e in &snapshot {
            let mut b = Vec::new();
            format::encode(e, &mut b);
            needed += b.len() as u64;
        }
        if needed * 4 > self.len {
            return Ok(false);
        }
        self.with_lock(|store| {
            // Others' entries first, so that none is lost by the rewrite.
            if !store.read_others()?.is_empty() {
                return Ok(false);
            }
            let path = store.dir.join(FILE_NAME);
            let (file, len) = write_new(&store.dir, &path, &snapshot).map_err(io::Error::other)?;
            store.file = file;
            store.len = len;
            Ok(true)
        })
    }

    /// Reads the queue in `dir` for `queue list`, without changing it.
    pub fn snapshot(dir: &Path) -> Result<Snapshot, QueueError> {
        let lock_path = dir.join(LOCK_NAME);
        let held = lock(open_lock(&lock_path)?, FlockArg::LockShared, &lock_path)?;
        let bytes = read_file(&dir.join(FILE_NAME))?;
        drop(held);
        let (queue, damaged) = match bytes {
            None => (Queue::replay(&[]), None),
            Some(bytes) if bytes.is_empty() => (Queue::replay(&[]), None),
            Some(bytes) => match format::check_header(&bytes) {
                Err(e) => (Queue::replay(&[]), Some(Damaged::Header(e))),
                Ok(()) => {
                    let d = format::decode(&bytes);
                    (Queue::replay(&d.entries), d.damage.map(Damaged::Frame))
                }
            },
        };
        let reader_running = match Flock::lock(
            open_lock(&dir.join(READER_LOCK_NAME))?,
            FlockArg::LockSharedNonblock,
        ) {
            Ok(_) => false,
            Err((_, e)) => e == nix::errno::Errno::EWOULDBLOCK,
        };
        let mut queue = queue;
        if !reader_running {
            // Nothing runs: what the file shows as running was interrupted.
            queue = Queue::replay(&queue.snapshot());
        }
        Ok(Snapshot {
            queue,
            damaged,
            reader_running,
        })
    }

    /// An administrator's request: `decide` sees the queue as it is (the
    /// writers' lock held) and gives the entries to append (synced).
    pub fn request(
        dir: &Path,
        decide: impl FnOnce(&Queue) -> Result<Vec<Entry>, RequestError>,
    ) -> Result<Vec<Entry>, QueueError> {
        let lock_path = dir.join(LOCK_NAME);
        let path = dir.join(FILE_NAME);
        let held = lock(open_lock(&lock_path)?, FlockArg::LockExclusive, &lock_path)?;
        let bytes = read_file(&path)?.unwrap_or_default();
        let entries = match format::check_header(&bytes) {
            Ok(()) => format::decode(&bytes).entries,
            Err(_) => Vec::new(),
        };
        let queue = Queue::replay(&entries);
        let add = decide(&queue)?;
        if !add.is_empty() {
            let mut out = Vec::new();
            if bytes.is_empty() {
                out.extend_from_slice(&format::header());
            }
            for e in &add {
                format::encode(e, &mut out);
            }
            let mut file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(&path)
                .map_err(io_error("open", &path))?;
            file.write_all(&out).map_err(io_error("write", &path))?;
            file.sync_data().map_err(io_error("sync", &path))?;
        }
        drop(held);
        Ok(add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::queue::state::ItemState;

    fn queued(id: u64, file: &str) -> Entry {
        Entry::Queued {
            id,
            at_us: 1,
            user: b"u".to_vec(),
            path: file.as_bytes().to_vec(),
            file: file.as_bytes().to_vec(),
        }
    }

    #[test]
    fn entries_survive_a_reopen_and_one_reader_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = Store::open(dir.path()).unwrap();
        assert!(opened.queue.items().next().is_none() && opened.set_aside.is_none());
        assert!(matches!(Store::open(dir.path()), Err(QueueError::Busy(_))));
        opened
            .store
            .append(&[queued(1, "/a"), queued(2, "/b")], true)
            .unwrap();
        opened
            .store
            .append(&[Entry::Finished { id: 1 }], false)
            .unwrap();
        drop(opened);
        let again = Store::open(dir.path()).unwrap();
        let ids: Vec<u64> = again.queue.items().map(|i| i.id).collect();
        assert_eq!(ids, [2]);
        assert_eq!(again.queue.next_id(), 3);
    }

    #[test]
    fn requests_land_between_the_readers_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = Store::open(dir.path()).unwrap();
        opened
            .store
            .append(
                &[
                    queued(1, "/a"),
                    Entry::Started {
                        id: 1,
                        attempt: 1,
                        at_us: 2,
                    },
                    Entry::Failed { id: 1, attempt: 1 },
                ],
                true,
            )
            .unwrap();
        let seen = Store::snapshot(dir.path()).unwrap();
        assert!(seen.reader_running);
        assert_eq!(seen.queue.get(1).unwrap().state, ItemState::Failed);
        let e = Store::request(dir.path(), |q| {
            q.check_retry(7)?;
            Ok(vec![])
        })
        .unwrap_err();
        assert!(matches!(
            e,
            QueueError::Request(RequestError::NoSuchRecord(7))
        ));
        Store::request(dir.path(), |q| {
            q.check_retry(1)?;
            Ok(vec![Entry::Requeued { id: 1 }])
        })
        .unwrap();
        assert_eq!(opened.store.others().unwrap(), [Entry::Requeued { id: 1 }]);
        assert_eq!(opened.store.others().unwrap(), []);
        // The reader's next write keeps the request before it.
        Store::request(dir.path(), |_| Ok(vec![Entry::Dropped { id: 1 }])).unwrap();
        let others = opened.store.append(&[queued(2, "/b")], true).unwrap();
        assert_eq!(others, [Entry::Dropped { id: 1 }]);
        drop(opened);
        let again = Store::open(dir.path()).unwrap();
        let ids: Vec<u64> = again.queue.items().map(|i| i.id).collect();
        assert_eq!(ids, [2]);
    }

    #[test]
    fn a_damaged_file_is_set_aside_and_what_is_readable_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = Store::open(dir.path()).unwrap();
        opened
            .store
            .append(&[queued(1, "/a"), queued(2, "/b")], true)
            .unwrap();
        drop(opened);
        // A torn write at the end, then a good frame after it.
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let mut torn = Vec::new();
        format::encode(&queued(3, "/c"), &mut torn);
        bytes.extend_from_slice(&torn[..torn.len() / 2]);
        format::encode(&queued(4, "/d"), &mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        let opened = Store::open(dir.path()).unwrap();
        let ids: Vec<u64> = opened.queue.items().map(|i| i.id).collect();
        assert_eq!(ids, [1, 2, 4]);
        let aside = opened.set_aside.clone().unwrap();
        assert!(matches!(aside.why, Damaged::Frame(_)), "{aside:?}");
        assert_eq!(std::fs::read(&aside.path).unwrap(), bytes);
        drop(opened);
        // The rewritten file is clean.
        let opened = Store::open(dir.path()).unwrap();
        assert!(opened.set_aside.is_none());
        drop(opened);
        // A file of garbage: set aside whole, the queue starts empty.
        std::fs::write(&path, b"garbage, not a queue").unwrap();
        let opened = Store::open(dir.path()).unwrap();
        assert!(opened.queue.items().next().is_none());
        assert_eq!(
            opened.set_aside.unwrap().why,
            Damaged::Header(HeaderError::Magic)
        );
    }

    #[test]
    fn giving_the_queue_to_its_owner_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Store::open(dir.path()).unwrap();
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        opened.store.give_to(uid, gid).unwrap();
        let meta = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    }

    #[test]
    fn a_failed_append_leaves_no_torn_frame() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = Store::open(dir.path()).unwrap();
        opened.store.append(&[queued(1, "/a")], true).unwrap();
        let len = opened.store.len();
        // A read-only descriptor cannot write: the append fails cleanly.
        opened.store.file = File::open(dir.path().join(FILE_NAME)).unwrap();
        assert!(opened.store.append(&[queued(2, "/b")], true).is_err());
        assert_eq!(
            std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len(),
            len
        );
    }
}
