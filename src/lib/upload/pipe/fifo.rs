//! The FIFO itself: checking it as pure-ftpd and the C reader do, creating
//! it when missing, and reading events from it without taking more than
//! the next record.
//!
//! pure-ftpd (as root) creates the FIFO with mode 0600 and refuses one that
//! is not a FIFO, not exactly 0600 or not owned by root. The reader applies
//! the same rules, accepting its own effective uid as owner too, for
//! non-root setups.
//!
//! The FIFO is opened read-write: the reader then never sees end-of-file
//! when pure-ftpd exits, and pure-ftpd, which blocks in `open()` until the
//! pipe has a reader, starts at once.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, SpliceFFlags};
use nix::sys::stat::{FileStat, Mode, SFlag};

use super::{Event, Parser, MAX_PATH_LEN, MAX_USER_LEN};
use crate::os::fd::{read_exact, read_some, set_nonblocking};

/// Where pure-ftpd writes: `/var/run/pure-ftpd.upload.pipe`, which is
/// `/run/pure-ftpd.upload.pipe` on every systemd system.
pub const DEFAULT_PATH: &str = "/run/pure-ftpd.upload.pipe";

/// The name under which the FIFO's descriptor is kept in systemd's file
/// descriptor store, and looked for in `LISTEN_FDNAMES`.
pub const STORE_NAME: &str = "upload-pipe";

/// What was being done to the FIFO when a system call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Looking at it (`lstat`, `fstat`).
    Stat,
    /// Creating it (`mkfifo`).
    Create,
    /// Opening it.
    Open,
    /// Setting its mode to 0600 after creating it.
    Chmod,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Stat => "stat",
            Action::Create => "create",
            Action::Open => "open",
            Action::Chmod => "chmod",
        })
    }
}

/// Which rule an insecure upload pipe breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insecurity {
    /// It is not a FIFO (a symbolic link is not followed).
    NotFifo,
    /// Its permission bits (given) are not exactly 0600.
    Mode(u32),
    /// Its owner is neither root nor the reader's effective uid.
    Owner {
        /// The owner.
        uid: u32,
        /// The reader's effective uid.
        euid: u32,
    },
}

impl fmt::Display for Insecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Insecurity::NotFifo => f.write_str("not a FIFO"),
            Insecurity::Mode(mode) => write!(f, "mode {mode:04o}, not 0600"),
            Insecurity::Owner { uid, euid } => {
                write!(f, "owned by uid {uid}, not root or {euid}")
            }
        }
    }
}

/// Why the FIFO cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FifoError {
    /// A system call failed.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        /// The FIFO.
        path: PathBuf,
        /// What was being done.
        action: Action,
        /// What the system said.
        source: io::Error,
    },
    /// The file is not a safe upload pipe.
    #[error("{path}: insecure upload pipe: {why}")]
    Insecure {
        /// The FIFO.
        path: PathBuf,
        /// Which rule it breaks.
        why: Insecurity,
    },
}

fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

/// Checks the rules on an `fstat()`/`lstat()` result: a FIFO, mode exactly
/// 0600, owned by root or by `euid`.
pub fn check_stat(st: &FileStat, euid: u32) -> Result<(), Insecurity> {
    if file_type(st) != SFlag::S_IFIFO {
        return Err(Insecurity::NotFifo);
    }
    if st.st_mode & 0o777 != 0o600 {
        return Err(Insecurity::Mode(st.st_mode & 0o7777));
    }
    if st.st_uid != 0 && st.st_uid != euid {
        return Err(Insecurity::Owner {
            uid: st.st_uid,
            euid,
        });
    }
    Ok(())
}

/// Checks a descriptor received from systemd (`ListenFIFO=` or the file
/// descriptor store) with the same rules; `name` only labels errors.
pub fn check_fd(fd: BorrowedFd<'_>, name: &Path) -> Result<(), FifoError> {
    use std::os::fd::AsRawFd;
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| FifoError::Io {
        path: name.to_owned(),
        action: Action::Stat,
        source: e.into(),
    })?;
    check_stat(&st, nix::unistd::geteuid().as_raw()).map_err(|why| FifoError::Insecure {
        path: name.to_owned(),
        why,
    })
}

/// Opens the FIFO at `path` read-write (non-blocking, close-on-exec, not
/// following symlinks), creating it with mode 0600 when it does not exist.
/// Returns the descriptor and whether the FIFO was created.
pub fn open_or_create(path: &Path) -> Result<(OwnedFd, bool), FifoError> {
    let err = |action, source| FifoError::Io {
        path: path.to_owned(),
        action,
        source,
    };
    let mut created = false;
    for _ in 0..3 {
        match nix::sys::stat::lstat(path) {
            Ok(st) => {
                if file_type(&st) != SFlag::S_IFIFO {
                    return Err(FifoError::Insecure {
                        path: path.to_owned(),
                        why: Insecurity::NotFifo,
                    });
                }
            }
            Err(Errno::ENOENT) => match nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR) {
                Ok(()) => created = true,
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(err(Action::Create, e.into())),
            },
            Err(e) => return Err(err(Action::Stat, e.into())),
        }
        // Close-on-exec is always set by the standard library.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
            .open(path);
        let file = match file {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(Action::Open, e)),
        };
        if created {
            // The umask may have taken bits away; pure-ftpd wants 0600.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| err(Action::Chmod, e))?;
        }
        let fd = OwnedFd::from(file);
        check_fd(fd.as_fd(), path)?;
        return Ok((fd, created));
    }
    Err(err(
        Action::Open,
        io::Error::other("it keeps appearing and disappearing"),
    ))
}

/// How much is looked at, at most, to find the next record: more than the
/// longest possible record.
const PEEK_LEN: usize = 2 * (MAX_USER_LEN + MAX_PATH_LEN + 3);
/// Read size when peeking is not possible (also room for a peek and its
/// check).
const READ_LEN: usize = 64 * 1024;
/// How much is looked at, at most, for one batch ([`Reader::next_held`]):
/// half the buffer, the other half is scratch room for taking it out.
const BATCH_PEEK_LEN: usize = READ_LEN / 2;
const _: () = assert!(BATCH_PEEK_LEN >= PEEK_LEN);

/// Reads events from the FIFO, one at a time.
///
/// The FIFO is looked at with `tee(2)` (which copies without consuming),
/// a few kilobytes at a time, and a record is consumed (one `read`) only
/// when the caller says it is done with it ([`Reader::commit`], called
/// after the program ran and the audit was logged; the next
/// [`Reader::next_event`] commits too). A record is thus in the FIFO until
/// it has been fully processed: when the daemon is killed, even while the
/// program runs, the record and those queued behind it are left in the
/// FIFO for the next instance, which processes them (at least once: the
/// program may have run partly for the record in hand). Descriptors that
/// do not support `tee()` are read in large chunks instead.
#[derive(Debug)]
pub struct Reader {
    fd: OwnedFd,
    parser: Parser,
    peek: Option<(OwnedFd, OwnedFd)>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The handed-out record still in the FIFO: its offset in `buf` and
    /// length.
    uncommitted: Option<(usize, usize)>,
    /// The batch handed out by [`Reader::next_held`], still in the FIFO:
    /// where it starts in `buf` and where it ends.
    held: Option<(usize, usize)>,
    /// The parser as it was at the end of the held batch.
    held_parser: Option<Parser>,
}

fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?)
}

impl Reader {
    /// Reads from `fd` (made non-blocking) with `parser`.
    pub fn new(fd: OwnedFd, parser: Parser) -> io::Result<Self> {
        set_nonblocking(fd.as_fd())?;
        Ok(Reader {
            fd,
            parser,
            peek: nonblocking_pipe().ok(),
            buf: vec![0; READ_LEN],
            start: 0,
            end: 0,
            uncommitted: None,
            held: None,
            held_parser: None,
        })
    }

    /// Forces plain chunked reads (for tests).
    pub fn without_peeking(mut self) -> Self {
        self.peek = None;
        self
    }

    /// True when records are consumed one at a time.
    pub fn peeking(&self) -> bool {
        self.peek.is_some()
    }

    /// The FIFO's descriptor, to poll for input.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Bytes read from the FIFO but not parsed yet (only without peeking:
    /// bytes peeked at are still in the FIFO).
    pub fn buffered(&self) -> usize {
        if self.peek.is_some() {
            0
        } else {
            self.end - self.start
        }
    }

    /// Takes out of the FIFO the `used` bytes just looked at (at `from` in
    /// the buffer), into scratch room after the peeked bytes. Another
    /// reader of the same FIFO can take them first: that is reported, the
    /// rest of what was peeked is dropped, and the parser finds its way at
    /// the next record.
    fn consume(&mut self, from: usize, used: usize) -> io::Result<()> {
        let (peeked, scratch) = self.buf.split_at_mut(BATCH_PEEK_LEN);
        let seen = &peeked[from..from + used];
        let scratch = &mut scratch[..used];
        let mut got = 0;
        while got < used {
            match read_some(self.fd.as_fd(), &mut scratch[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if scratch[..got] != seen[..got] || got < used {
            tracing::warn!(
                "the upload pipe changed while being read: is another reader running on it?"
            );
            self.end = from + used;
        }
        Ok(())
    }

    /// Takes the last event handed out by [`Reader::next_event`] out of
    /// the FIFO. Call it once that event is fully processed; until then a
    /// crash leaves it in the FIFO for the next reader. Does nothing when
    /// there is nothing to commit or the FIFO is read in chunks.
    pub fn commit(&mut self) -> io::Result<()> {
        if let Some((from, end)) = self.held.take() {
            self.held_parser = None;
            return self.consume(from, end - from);
        }
        match self.uncommitted.take() {
            Some((from, used)) => self.consume(from, used),
            None => Ok(()),
        }
    }

    /// The next event of a batch: the events handed out stay in the FIFO
    /// until [`Reader::commit`] takes them all out at once. `Ok(None)` ends
    /// the batch (everything looked at in one go, at most
    /// `BATCH_PEEK_LEN` bytes) or says the FIFO is empty. A record cut by
    /// the end of what was looked at is left in the FIFO for the next
    /// batch. Reading in chunks, events are handed out as read.
    pub fn next_held(&mut self) -> io::Result<Option<Event>> {
        if self.uncommitted.is_some() {
            self.commit()?;
        }
        loop {
            if self.start < self.end {
                let from = self.start;
                let (used, event) = self.parser.next_event(&self.buf[from..self.end]);
                self.start += used;
                if self.peek.is_some() {
                    match (&event, self.held) {
                        (Some(_), held) => {
                            self.held = Some((held.map_or(from, |(f, _)| f), self.start));
                            self.held_parser = Some(self.parser.clone());
                        }
                        // Bytes that gave nothing, with nothing held: they
                        // go now, as in [`Reader::next_event`].
                        (None, None) => self.consume(from, used)?,
                        // The end of what was looked at, after the batch.
                        (None, Some(_)) => {}
                    }
                }
                if event.is_some() {
                    return Ok(event);
                }
                continue;
            }
            if let Some((_, held_end)) = self.held {
                // The batch ends; a cut record after it is read again.
                if held_end < self.end {
                    if let Some(parser) = self.held_parser.clone() {
                        self.parser = parser;
                    }
                }
                return Ok(None);
            }
            if !self.fill(BATCH_PEEK_LEN)? {
                return Ok(None);
            }
        }
    }

    /// Looks at (or, reading in chunks, reads) what the FIFO holds, at
    /// most `peek_len` bytes when peeking; false when it is empty.
    fn fill(&mut self, peek_len: usize) -> io::Result<bool> {
        loop {
            if let Some((peek_r, peek_w)) = &self.peek {
                let n = match nix::fcntl::tee(
                    self.fd.as_fd(),
                    peek_w.as_fd(),
                    peek_len,
                    SpliceFFlags::SPLICE_F_NONBLOCK,
                ) {
                    Ok(n) => n,
                    Err(Errno::EAGAIN) => return Ok(false),
                    Err(Errno::EINTR) => continue,
                    Err(Errno::EINVAL) => {
                        self.peek = None;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                if n == 0 {
                    return Ok(false);
                }
                read_exact(peek_r.as_fd(), &mut self.buf[..n])?;
                self.start = 0;
                self.end = n;
                return Ok(true);
            }
            return match read_some(self.fd.as_fd(), &mut self.buf) {
                Ok(0) => Ok(false),
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                Err(e) => Err(e),
            };
        }
    }

    /// The next event among what is in the FIFO now; `Ok(None)` when it is
    /// empty (poll [`Reader::fd`] for more).
    pub fn next_event(&mut self) -> io::Result<Option<Event>> {
        self.commit()?;
        loop {
            if self.start < self.end {
                let (used, event) = self.parser.next_event(&self.buf[self.start..self.end]);
                let from = self.start;
                self.start += used;
                if self.peek.is_some() {
                    // Peeked bytes are still in the FIFO: an event's stay
                    // there until committed, bytes that gave none go now.
                    if event.is_some() {
                        self.uncommitted = Some((from, used));
                    } else {
                        self.consume(from, used)?;
                    }
                }
                if event.is_some() {
                    return Ok(event);
                }
                continue;
            }
            if !self.fill(PEEK_LEN)? {
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_all(fd: BorrowedFd<'_>, bytes: &[u8]) {
        let mut file = std::fs::File::from(fd.try_clone_to_owned().unwrap());
        file.write_all(bytes).unwrap();
    }

    fn drain(reader: &mut Reader) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = reader.next_event().unwrap() {
            events.push(e);
        }
        events
    }

    #[test]
    fn creates_a_0600_fifo_and_reopens_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload.pipe");
        let (fd, created) = open_or_create(&path).unwrap();
        assert!(created);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.mode() & 0o7777, 0o600);
        drop(fd);
        let (_fd, created) = open_or_create(&path).unwrap();
        assert!(!created);
    }

    #[test]
    fn refuses_unsafe_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let insecure = |p: &Path| match open_or_create(p) {
            Err(FifoError::Insecure { path, why }) => {
                assert_eq!(path, p);
                why
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(insecure(&path), Insecurity::Mode(0o644));
        let e = open_or_create(&path).unwrap_err().to_string();
        assert!(
            e.ends_with("insecure upload pipe: mode 0644, not 0600"),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::lchown(&path, Some(12345), None).unwrap();
        let euid = nix::unistd::geteuid().as_raw();
        assert_eq!(insecure(&path), Insecurity::Owner { uid: 12345, euid });
        let e = open_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("owned by uid 12345"), "{e}");
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert_eq!(insecure(&file), Insecurity::NotFifo);
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(insecure(&link), Insecurity::NotFifo);
        // A descriptor is checked by the same rules.
        let f = std::fs::File::open(&file).unwrap();
        assert!(matches!(
            check_fd(f.as_fd(), Path::new("passed")),
            Err(FifoError::Insecure {
                why: Insecurity::NotFifo,
                ..
            })
        ));
        let e = open_or_create(&dir.path().join("no/such/dir/p")).unwrap_err();
        assert!(
            matches!(
                e,
                FifoError::Io {
                    action: Action::Create,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn peeking_leaves_unread_records_in_the_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let (fd, _) = open_or_create(&path).unwrap();
        let writer = fd.try_clone().unwrap();
        let mut reader = Reader::new(fd, Parser::new()).unwrap();
        assert!(reader.peeking());
        assert_eq!(reader.next_event().unwrap(), None);
        write_all(
            writer.as_fd(),
            b"xx\x02a\x01/1\x00\x02b\x01/2\x00\x02c\x01/",
        );
        assert_eq!(reader.next_event().unwrap(), Some(Event::Skipped(2)));
        let Some(Event::Record(r)) = reader.next_event().unwrap() else {
            panic!()
        };
        assert_eq!(r.file, b"/1");
        reader.commit().unwrap();
        // The rest is still in the FIFO: a second reader sees it.
        let mut rest = vec![0; 64];
        let n = read_some(writer.as_fd(), &mut rest).unwrap();
        assert_eq!(&rest[..n], b"\x02b\x01/2\x00\x02c\x01/");
        write_all(writer.as_fd(), &rest[..n]);
        write_all(writer.as_fd(), b"3\x00");
        let events = drain(&mut reader);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(reader.next_event().unwrap(), None);
    }

    #[test]
    fn a_batch_stays_in_the_fifo_until_committed_and_a_cut_record_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let (fd, _) = open_or_create(&dir.path().join("p")).unwrap();
        let writer = fd.try_clone().unwrap();
        // More than one batch looks at: the last record of the first batch
        // is cut by the end of what was looked at.
        let one = |n: usize| format!("\x02user\x01/upload/file-{n:05}\x00").into_bytes();
        let count = BATCH_PEEK_LEN / one(0).len() + 10;
        let mut all = b"junk".to_vec();
        for n in 0..count {
            all.extend_from_slice(&one(n));
        }
        let mut files = Vec::new();
        let mut batches = 0;
        let mut reader = Reader::new(fd, Parser::new()).unwrap();
        let mut written = 0;
        loop {
            // Keep the FIFO fed (it holds 64 KiB).
            while written < all.len() {
                let chunk = &all[written..all.len().min(written + 4096)];
                match nix::unistd::write(&writer, chunk) {
                    Ok(n) => written += n,
                    Err(Errno::EAGAIN) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            let mut batch = Vec::new();
            while let Some(event) = reader.next_held().unwrap() {
                batch.push(event);
            }
            if batch.is_empty() {
                break;
            }
            batches += 1;
            if batches == 1 {
                // Not committed: a new reader finds the batch again.
                drop(reader);
                reader = Reader::new(writer.try_clone().unwrap(), Parser::new()).unwrap();
                let mut again = Vec::new();
                while let Some(event) = reader.next_held().unwrap() {
                    again.push(event);
                }
                assert_eq!(again, batch);
            }
            reader.commit().unwrap();
            for event in batch {
                match event {
                    Event::Record(r) => files.push(String::from_utf8(r.file).unwrap()),
                    Event::Skipped(4) => assert!(files.is_empty()),
                    other => panic!("{other:?}"),
                }
            }
        }
        assert!(batches >= 2, "{batches}");
        let want: Vec<String> = (0..count).map(|n| format!("/upload/file-{n:05}")).collect();
        assert_eq!(files, want);
        let mut left = [0; 16];
        let e = read_some(writer.as_fd(), &mut left).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_record_stays_in_the_fifo_until_committed() {
        let dir = tempfile::tempdir().unwrap();
        let (fd, _) = open_or_create(&dir.path().join("p")).unwrap();
        let writer = fd.try_clone().unwrap();
        let mut reader = Reader::new(fd, Parser::new()).unwrap();
        let both = b"\x02a\x01/1\x00\x02b\x01/2\x00";
        write_all(writer.as_fd(), both);
        let Some(Event::Record(r)) = reader.next_event().unwrap() else {
            panic!()
        };
        assert_eq!(r.file, b"/1");
        // Handed out, not committed: a reader taking over now (after a
        // crash) would find it again.
        let mut left = vec![0; 64];
        let n = read_some(writer.as_fd(), &mut left).unwrap();
        assert_eq!(&left[..n], both);
        write_all(writer.as_fd(), &left[..n]);
        reader.commit().unwrap();
        let n = read_some(writer.as_fd(), &mut left).unwrap();
        assert_eq!(&left[..n], b"\x02b\x01/2\x00");
        write_all(writer.as_fd(), &left[..n]);
        // The next call commits the event handed out before it.
        let Some(Event::Record(r)) = reader.next_event().unwrap() else {
            panic!()
        };
        assert_eq!(r.file, b"/2");
        assert_eq!(reader.next_event().unwrap(), None);
        let e = read_some(writer.as_fd(), &mut left).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn one_peek_serves_many_records_each_consumed_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (fd, _) = open_or_create(&dir.path().join("p")).unwrap();
        let writer = fd.try_clone().unwrap();
        let mut reader = Reader::new(fd, Parser::new()).unwrap();
        write_all(
            writer.as_fd(),
            b"\x02a\x01/1\x00\x02b\x01/2\x00\x02c\x01/3\x00",
        );
        for (i, rest) in [&b"\x02b\x01/2\x00\x02c\x01/3\x00"[..], b"\x02c\x01/3\x00"]
            .into_iter()
            .enumerate()
        {
            let Some(Event::Record(r)) = reader.next_event().unwrap() else {
                panic!()
            };
            assert_eq!(r.file, format!("/{}", i + 1).as_bytes());
            assert_eq!(reader.buffered(), 0);
            reader.commit().unwrap();
            // Only the record handed out and committed has left the FIFO.
            let mut left = vec![0; 64];
            let n = read_some(writer.as_fd(), &mut left).unwrap();
            assert_eq!(&left[..n], rest);
            write_all(writer.as_fd(), &left[..n]);
        }
        // Another reader takes the last record: the peeked copy no longer
        // matches, is dropped, and the next record is found afresh.
        let mut stolen = vec![0; 64];
        assert_eq!(read_some(writer.as_fd(), &mut stolen).unwrap(), 6);
        write_all(writer.as_fd(), b"\x02d\x01/4\x00\x02e\x01/5\x00");
        let events = drain(&mut reader);
        let files: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Record(r) => Some(r.file.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(files.last().unwrap(), b"/5", "{events:?}");
        assert_eq!(reader.next_event().unwrap(), None);
    }

    #[test]
    fn chunked_reads_give_the_same_events() {
        let mut input = Vec::new();
        for i in 0..2000 {
            input.extend_from_slice(format!("\x02user{i}\x01/srv/f{i}\x00").as_bytes());
            if i % 7 == 0 {
                input.extend_from_slice(b"\x02bad\x05\x00 garbage ");
            }
        }
        let mut expected = Vec::new();
        Parser::new().feed(&input, &mut expected);
        for peek in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let (fd, _) = open_or_create(&dir.path().join("p")).unwrap();
            let writer = fd.try_clone().unwrap();
            let mut reader = Reader::new(fd, Parser::new()).unwrap();
            if !peek {
                reader = reader.without_peeking();
            }
            let mut events = Vec::new();
            for chunk in input.chunks(4000) {
                write_all(writer.as_fd(), chunk);
                events.extend(drain(&mut reader));
            }
            assert_eq!(events, expected, "peek {peek}");
        }
    }
}
