//! Pure-FTPd's scoreboard: one file per live session, `client-%08lu`, in
//! `/var/run/pure-ftpd/`, holding the C struct `FTPWhoEntry`.
//!
//! The record is read field by field at the offsets of a [`Layout`], never
//! by transmuting, so a file of any content parses or is refused with an
//! error.
//!
//! [`Scoreboard::scan`] accepts a file as `pure-ftpwho` does:
//! - its name starts with `client-`;
//! - it opens with `O_NOFOLLOW` (never through a symbolic link; opening
//!   never blocks, so a FIFO cannot hang the reader);
//! - it is a regular file whose mode has `0600`;
//! - it is owned by root, or by the effective uid when that uid owns the
//!   directory (non-root setups and tests);
//! - its size is the forced layout's size ([`ScanOptions::layout`]), or
//!   the size of a [known layout](Layout::KNOWN);
//! - its process exists (`kill(pid, 0)` succeeds or fails with `EPERM`),
//!   otherwise it is stale: removed when [`ScanOptions::remove_stale`] is
//!   set, and never listed.
//!
//! Free entries (state 0) are not listed. Each record is read with one
//! `pread` (two for file names longer than 64 bytes) under a shared
//! open-file-description `fcntl` lock, which conflicts with the server's
//! write lock; when a writer holds it for longer than
//! [`ScanOptions::lock_timeout`] (a server stopped mid-update), the record
//! is read without the lock and a note says so. Large scoreboards check
//! pids against one listing of `/proc` (pids missing from it are still
//! asked with `kill`), so a scan costs five system calls per entry.
//! [`Scoreboard::scan_each`] hands entries over as they are read. Past the
//! first few hundred files, the rest of a large scoreboard is read by a few
//! threads, and handed over in directory order all the same.
//!
//! ```no_run
//! use pureftpd_systemd::ftpwho::scoreboard::Scoreboard;
//!
//! let scan = Scoreboard::new("/var/run/pure-ftpd").scan()?;
//! for entry in &scan.entries {
//!     println!("{} {}", entry.pid, String::from_utf8_lossy(&entry.account));
//! }
//! for note in &scan.notes {
//!     eprintln!("{note}");
//! }
//! # Ok::<(), pureftpd_systemd::ftpwho::scoreboard::ScoreboardError>(())
//! ```

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default scoreboard directory of a root-run pure-ftpd.
pub const DEFAULT_DIR: &str = "/var/run/pure-ftpd";
/// File names of entries start with this.
pub const FILE_PREFIX: &str = "client-";
/// Size of a `struct sockaddr_storage` on Linux.
pub const SOCKADDR_STORAGE_LEN: usize = 128;

/// Offsets and sizes of one build's `FTPWhoEntry`. Fields before `account`
/// are at the same offsets on every LP64 Linux build; the account length
/// (`MAX_USER_LENGTH + 1`) and the file name length vary.
///
/// In configuration files a layout is written as for `--layout`
/// (`"debian"`, `"upstream"`, `"MAXUSER,FILENAMELEN"`) or as a table of
/// these five fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "LayoutRepr")]
pub struct Layout {
    /// Size of the whole record (the file size).
    pub size: usize,
    /// Offset of `account`.
    pub account_offset: usize,
    /// Length of `account`, terminating NUL included.
    pub account_len: usize,
    /// Offset of `filename`.
    pub filename_offset: usize,
    /// Length of `filename`, terminating NUL included.
    pub filename_len: usize,
}

impl Layout {
    /// Debian 12 amd64, pure-ftpd 1.0.50: `MAX_USER_LENGTH` 128, 1464 bytes.
    pub const DEBIAN: Layout = Layout {
        size: 1464,
        account_offset: 304,
        account_len: 129,
        filename_offset: 433,
        filename_len: 1024,
    };
    /// Upstream's default build: `MAX_USER_LENGTH` 127, 1456 bytes.
    pub const UPSTREAM: Layout = Layout {
        size: 1456,
        account_offset: 304,
        account_len: 128,
        filename_offset: 432,
        filename_len: 1024,
    };
    /// The known layouts, tried in this order when recognising a file by size.
    pub const KNOWN: [Layout; 2] = [Layout::DEBIAN, Layout::UPSTREAM];

    /// The known layout whose record size is `size`.
    pub fn for_size(size: u64) -> Option<Layout> {
        Layout::KNOWN.into_iter().find(|l| l.size as u64 == size)
    }

    /// The layout of a build whose `MAX_USER_LENGTH` is `max_user_length`
    /// and whose file name buffer is `filename_len` bytes, with the C
    /// compiler's padding to 8 bytes at the end.
    pub fn with_lengths(max_user_length: usize, filename_len: usize) -> Layout {
        let account_offset = 304;
        let account_len = max_user_length + 1;
        let filename_offset = account_offset + account_len;
        let size = (filename_offset + filename_len).div_ceil(8) * 8;
        Layout {
            size,
            account_offset,
            account_len,
            filename_offset,
            filename_len,
        }
    }
}

/// Why a layout specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scoreboard layout {spec:?}: {why}")]
pub struct LayoutSpecError {
    spec: String,
    why: &'static str,
}

impl std::str::FromStr for Layout {
    type Err = LayoutSpecError;

    /// `debian` (1464-byte records), `upstream` (1456), or
    /// `MAXUSER,FILENAMELEN`: the build's `MAX_USER_LENGTH` and the length
    /// of its `filename` buffer (see [`Layout::with_lengths`]).
    fn from_str(spec: &str) -> Result<Layout, LayoutSpecError> {
        let err = |why| LayoutSpecError {
            spec: spec.to_string(),
            why,
        };
        match spec.trim().to_ascii_lowercase().as_str() {
            "debian" => return Ok(Layout::DEBIAN),
            "upstream" => return Ok(Layout::UPSTREAM),
            _ => {}
        }
        let (user, file) = spec
            .split_once(',')
            .ok_or_else(|| err("expected debian, upstream or MAXUSER,FILENAMELEN"))?;
        let parse = |s: &str| s.trim().parse::<usize>().ok().filter(|&n| n <= 1 << 20);
        let user = parse(user).ok_or_else(|| err("MAXUSER is not a number up to 1048576"))?;
        let file = parse(file)
            .filter(|&n| n > 0)
            .ok_or_else(|| err("FILENAMELEN is not a number from 1 to 1048576"))?;
        Ok(Layout::with_lengths(user, file))
    }
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum LayoutRepr {
    Spec(String),
    Fields {
        size: usize,
        account_offset: usize,
        account_len: usize,
        filename_offset: usize,
        filename_len: usize,
    },
}

impl TryFrom<LayoutRepr> for Layout {
    type Error = String;

    fn try_from(repr: LayoutRepr) -> Result<Layout, String> {
        let layout = match repr {
            LayoutRepr::Spec(spec) => spec.parse::<Layout>().map_err(|e| e.to_string())?,
            LayoutRepr::Fields {
                size,
                account_offset,
                account_len,
                filename_offset,
                filename_len,
            } => Layout {
                size,
                account_offset,
                account_len,
                filename_offset,
                filename_len,
            },
        };
        if !layout.is_consistent() {
            return Err("layout fields overlap or overrun the record size".to_string());
        }
        Ok(layout)
    }
}

/// Offsets of the fixed fields of `FTPWhoEntry` (LP64 Linux).
pub mod offsets {
    /// `int state`
    pub const STATE: usize = 0;
    /// `pid_t pid`
    pub const PID: usize = 4;
    /// `struct sockaddr_storage addr` (the peer)
    pub const ADDR: usize = 8;
    /// `struct sockaddr_storage local_addr`
    pub const LOCAL_ADDR: usize = 136;
    /// `time_t date` (session start)
    pub const DATE: usize = 264;
    /// `time_t xfer_date` (transfer start)
    pub const XFER_DATE: usize = 272;
    /// `off_t restartat`
    pub const RESTARTAT: usize = 280;
    /// `off_t download_total_size`
    pub const TOTAL_SIZE: usize = 288;
    /// `off_t download_current_size`
    pub const CURRENT_SIZE: usize = 296;
}

/// What a session is doing (`FTPWhoEntryState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// 0: the slot is free; never listed.
    Free,
    /// 1: logged in (or not yet), no transfer.
    Idle,
    /// 2: sending a file to the client.
    Download,
    /// 3: receiving a file from the client.
    Upload,
    /// Any other value; `pure-ftpwho` prints `ERR!`.
    Unknown(i32),
}

impl State {
    /// The state of the C enum value `raw`.
    pub fn from_raw(raw: i32) -> State {
        match raw {
            0 => State::Free,
            1 => State::Idle,
            2 => State::Download,
            3 => State::Upload,
            other => State::Unknown(other),
        }
    }

    /// The C enum value.
    pub fn to_raw(self) -> i32 {
        match self {
            State::Free => 0,
            State::Idle => 1,
            State::Download => 2,
            State::Upload => 3,
            State::Unknown(raw) => raw,
        }
    }

    /// The 4-character label `pure-ftpwho` prints: `IDLE`, ` DL `, ` UL `,
    /// `ERR!` (and `FREE`, which it never prints).
    pub fn label(self) -> &'static str {
        match self {
            State::Free => "FREE",
            State::Idle => "IDLE",
            State::Download => " DL ",
            State::Upload => " UL ",
            State::Unknown(_) => "ERR!",
        }
    }
}

/// A `struct sockaddr_storage`, kept as the raw bytes the server wrote.
#[derive(Clone, PartialEq, Eq)]
pub struct RawSockaddr(pub [u8; SOCKADDR_STORAGE_LEN]);

impl RawSockaddr {
    /// The address family (`ss_family`, native endian).
    pub fn family(&self) -> u16 {
        u16::from_ne_bytes([self.0[0], self.0[1]])
    }

    /// The address as a Rust socket address, for `AF_INET` and `AF_INET6`.
    pub fn to_socket_addr(&self) -> Option<std::net::SocketAddr> {
        use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
        let b = &self.0;
        let port = u16::from_be_bytes([b[2], b[3]]);
        match i32::from(self.family()) {
            libc::AF_INET => {
                let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
                Some(SocketAddrV4::new(ip, port).into())
            }
            libc::AF_INET6 => {
                let flowinfo = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                let mut ip = [0u8; 16];
                ip.copy_from_slice(&b[8..24]);
                let scope = u32::from_ne_bytes([b[24], b[25], b[26], b[27]]);
                Some(SocketAddrV6::new(Ipv6Addr::from(ip), port, flowinfo, scope).into())
            }
            _ => None,
        }
    }

    /// The raw form of `addr`, as the server stores it.
    pub fn from_socket_addr(addr: std::net::SocketAddr) -> RawSockaddr {
        let mut b = [0u8; SOCKADDR_STORAGE_LEN];
        match addr {
            std::net::SocketAddr::V4(a) => {
                b[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
                b[2..4].copy_from_slice(&a.port().to_be_bytes());
                b[4..8].copy_from_slice(&a.ip().octets());
            }
            std::net::SocketAddr::V6(a) => {
                b[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
                b[2..4].copy_from_slice(&a.port().to_be_bytes());
                b[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
                b[8..24].copy_from_slice(&a.ip().octets());
                b[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
            }
        }
        RawSockaddr(b)
    }
}

impl std::fmt::Debug for RawSockaddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_socket_addr() {
            Some(addr) => write!(f, "RawSockaddr({addr})"),
            None => write!(f, "RawSockaddr(family {})", self.family()),
        }
    }
}

/// One scoreboard record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What the session is doing.
    pub state: State,
    /// The session's process id.
    pub pid: i32,
    /// The client's address.
    pub peer: RawSockaddr,
    /// The server's address of this connection.
    pub local: RawSockaddr,
    /// When the session started (Unix time).
    pub date: i64,
    /// When the current transfer started (Unix time), 0 if none.
    pub xfer_date: i64,
    /// Offset the transfer resumed at (`REST`).
    pub restart_at: i64,
    /// Size of the file being transferred, when known.
    pub total_size: i64,
    /// Bytes of the file transferred so far (including `restart_at`).
    pub current_size: i64,
    /// Account name, raw bytes up to the first NUL (which a well-formed
    /// record has within the field; otherwise, as C reads it, up to the
    /// first NUL after it or the end of the record).
    pub account: Vec<u8>,
    /// File name, raw bytes up to the first NUL (or, as for `account`, the
    /// end of the record).
    pub filename: Vec<u8>,
}

/// Why bytes are not a scoreboard record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record is not exactly the layout's size.
    #[error("record is {actual} bytes, the layout wants {expected}")]
    WrongSize {
        /// Bytes given.
        actual: usize,
        /// Bytes the layout describes.
        expected: usize,
    },
    /// The layout's fields do not fit in its own size.
    #[error("layout fields overlap or overrun the record size")]
    BadLayout,
}

fn c_string(bytes: &[u8]) -> Vec<u8> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    bytes[..end].to_vec()
}

fn read_i32(b: &[u8], at: usize) -> i32 {
    i32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn read_i64(b: &[u8], at: usize) -> i64 {
    i64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn sockaddr(b: &[u8], at: usize) -> RawSockaddr {
    let mut raw = [0u8; SOCKADDR_STORAGE_LEN];
    raw.copy_from_slice(&b[at..at + SOCKADDR_STORAGE_LEN]);
    RawSockaddr(raw)
}

impl Layout {
    /// True when every field lies inside `size` and the strings do not
    /// overlap the fixed fields or each other.
    pub fn is_consistent(&self) -> bool {
        let fixed_end = offsets::CURRENT_SIZE + 8;
        let account = (
            self.account_offset,
            self.account_offset.saturating_add(self.account_len),
        );
        let filename = (
            self.filename_offset,
            self.filename_offset.saturating_add(self.filename_len),
        );
        let apart = account.1 <= filename.0 || filename.1 <= account.0;
        self.account_len > 0
            && self.filename_len > 0
            && account.0 >= fixed_end
            && filename.0 >= fixed_end
            && account.1 <= self.size
            && filename.1 <= self.size
            && apart
    }
}

impl Entry {
    /// Decodes a record written with `layout`.
    pub fn parse(bytes: &[u8], layout: &Layout) -> Result<Entry, RecordError> {
        if !layout.is_consistent() {
            return Err(RecordError::BadLayout);
        }
        if bytes.len() != layout.size {
            return Err(RecordError::WrongSize {
                actual: bytes.len(),
                expected: layout.size,
            });
        }
        // Like C's `%s`, a string without its NUL runs on into what
        // follows it in the record (the server always writes the NUL).
        let account = &bytes[layout.account_offset..];
        let filename = &bytes[layout.filename_offset..];
        Ok(Entry {
            state: State::from_raw(read_i32(bytes, offsets::STATE)),
            pid: read_i32(bytes, offsets::PID),
            peer: sockaddr(bytes, offsets::ADDR),
            local: sockaddr(bytes, offsets::LOCAL_ADDR),
            date: read_i64(bytes, offsets::DATE),
            xfer_date: read_i64(bytes, offsets::XFER_DATE),
            restart_at: read_i64(bytes, offsets::RESTARTAT),
            total_size: read_i64(bytes, offsets::TOTAL_SIZE),
            current_size: read_i64(bytes, offsets::CURRENT_SIZE),
            account: c_string(account),
            filename: c_string(filename),
        })
    }

    /// Encodes the record as the server would write it with `layout`
    /// (strings truncated to leave their terminating NUL). Used to craft
    /// scoreboards in tests and benchmarks.
    pub fn to_bytes(&self, layout: &Layout) -> Result<Vec<u8>, RecordError> {
        if !layout.is_consistent() {
            return Err(RecordError::BadLayout);
        }
        let mut b = vec![0u8; layout.size];
        b[offsets::STATE..offsets::STATE + 4].copy_from_slice(&self.state.to_raw().to_ne_bytes());
        b[offsets::PID..offsets::PID + 4].copy_from_slice(&self.pid.to_ne_bytes());
        b[offsets::ADDR..offsets::ADDR + SOCKADDR_STORAGE_LEN].copy_from_slice(&self.peer.0);
        b[offsets::LOCAL_ADDR..offsets::LOCAL_ADDR + SOCKADDR_STORAGE_LEN]
            .copy_from_slice(&self.local.0);
        for (at, v) in [
            (offsets::DATE, self.date),
            (offsets::XFER_DATE, self.xfer_date),
            (offsets::RESTARTAT, self.restart_at),
            (offsets::TOTAL_SIZE, self.total_size),
            (offsets::CURRENT_SIZE, self.current_size),
        ] {
            b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        }
        let put = |b: &mut [u8], at: usize, len: usize, s: &[u8]| {
            let n = s.len().min(len - 1);
            b[at..at + n].copy_from_slice(&s[..n]);
        };
        put(
            &mut b,
            layout.account_offset,
            layout.account_len,
            &self.account,
        );
        put(
            &mut b,
            layout.filename_offset,
            layout.filename_len,
            &self.filename,
        );
        Ok(b)
    }
}

/// How a scan treats the directory's entries.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Force this layout instead of recognising each file by its size.
    pub layout: Option<Layout>,
    /// Remove entries whose process is gone, as the C tools do. The
    /// read-only responder sets this to false.
    pub remove_stale: bool,
    /// How long to wait for the server's write lock on one entry.
    pub lock_timeout: Duration,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            layout: None,
            remove_stale: true,
            lock_timeout: Duration::from_millis(200),
        }
    }
}

/// A scoreboard directory.
#[derive(Debug, Clone)]
pub struct Scoreboard {
    /// The directory, `/var/run/pure-ftpd` by default.
    pub dir: PathBuf,
    /// How entries are read.
    pub options: ScanOptions,
}

/// Why a scan could not read the scoreboard at all.
#[derive(Debug, thiserror::Error)]
pub enum ScoreboardError {
    /// The directory cannot be opened (missing, or no permission).
    #[error("cannot open the scoreboard directory {dir}: {source}")]
    OpenDir {
        /// The directory.
        dir: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// The outcome of one scan: the live, non-free entries, and what was passed
/// over with the reason (for stderr or the journal).
#[derive(Debug, Default)]
pub struct Scan {
    /// Live sessions, in directory order.
    pub entries: Vec<Entry>,
    /// Files that were skipped, removed as stale, or read without the lock.
    pub notes: Vec<String>,
}

impl Scoreboard {
    /// The scoreboard in `dir`, read with default options.
    pub fn new(dir: impl Into<PathBuf>) -> Scoreboard {
        Scoreboard {
            dir: dir.into(),
            options: ScanOptions::default(),
        }
    }

    /// The scoreboard in `dir`, read with `options`.
    pub fn with_options(dir: impl Into<PathBuf>, options: ScanOptions) -> Scoreboard {
        Scoreboard {
            dir: dir.into(),
            options,
        }
    }

    fn open_dir(&self) -> Result<ScoreboardDir, ScoreboardError> {
        ScoreboardDir::open(&self.dir).map_err(|source| ScoreboardError::OpenDir {
            dir: self.dir.clone(),
            source,
        })
    }

    /// Reads every acceptable entry (see the module documentation): the
    /// live, non-free sessions in directory order, and a note for every
    /// file that was skipped, removed as stale, or read without its lock.
    pub fn scan(&self) -> Result<Scan, ScoreboardError> {
        let mut entries = Vec::new();
        let notes = self.scan_each(|entry| entries.push(entry))?;
        Ok(Scan { entries, notes })
    }

    /// Like [`scan`](Self::scan), but hands each live, non-free entry to
    /// `each` as soon as it is read, keeping none; returns the notes.
    ///
    /// Past the first few hundred files, a large scoreboard is read by
    /// several threads (one per processor, at most 4); entries and notes
    /// still come in directory order, and `each` runs on the calling thread.
    pub fn scan_each(&self, each: impl FnMut(Entry)) -> Result<Vec<String>, ScoreboardError> {
        self.scan_each_with(scan_threads, each)
    }

    fn scan_each_with(
        &self,
        threads: impl FnOnce() -> usize,
        mut each: impl FnMut(Entry),
    ) -> Result<Vec<String>, ScoreboardError> {
        let mut dir = self.open_dir()?;
        let dir_fd = dir.fd();
        let mut state = ScanState {
            owners: Owners::of_dir(dir_fd),
            live: Liveness::default(),
            buf: vec![0u8; self.max_record_size()],
            support: Support::default(),
        };
        let mut notes = Vec::new();
        let mut read = 0usize;
        let mut rest = Vec::new();
        let mut threads = Some(threads);
        let mut parallel = None;
        loop {
            let name = match dir.next_name() {
                None => break,
                Some(Ok(name)) => name,
                Some(Err(err)) => {
                    notes.push(format!("reading the directory: {err}"));
                    break;
                }
            };
            if !name.to_bytes().starts_with(FILE_PREFIX.as_bytes()) {
                continue;
            }
            if read >= PARALLEL_AFTER && parallel.is_none() {
                // Asked only now: it costs a few system calls.
                parallel = Some(threads.take().map_or(1, |threads| threads()));
            }
            if parallel > Some(1) {
                rest.push(name.to_owned());
                continue;
            }
            read += 1;
            let outcome = self.read_one(dir_fd, name, &mut state, &mut each);
            self.note(dir_fd, name, outcome, &mut notes);
        }
        if !rest.is_empty()
            && !self.scan_in_parallel(
                dir_fd,
                &state,
                &rest,
                parallel.unwrap_or(1),
                &mut each,
                &mut notes,
            )
        {
            // No thread could be started: read on here.
            for name in &rest {
                let outcome = self.read_one(dir_fd, name, &mut state, &mut each);
                self.note(dir_fd, name, outcome, &mut notes);
            }
        }
        Ok(notes)
    }

    /// Reads `names` with up to `threads` threads, a chunk at a time, and
    /// hands entries to `each` (on this thread) in the order of `names`.
    /// False when no thread could be started (nothing was read).
    fn scan_in_parallel(
        &self,
        dir_fd: RawFd,
        state: &ScanState,
        names: &[CString],
        threads: usize,
        each: &mut impl FnMut(Entry),
        notes: &mut Vec<String>,
    ) -> bool {
        type Chunk = Vec<(Read, Option<Entry>)>;
        let chunks: Vec<&[CString]> = names.chunks(PARALLEL_CHUNK).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let (send, receive) = std::sync::mpsc::channel::<(usize, Chunk)>();
        std::thread::scope(|scope| {
            let mut started = 0;
            for _ in 0..threads {
                let send = send.clone();
                let (chunks, next) = (&chunks, &next);
                let mut mine = ScanState {
                    owners: state.owners,
                    live: state.live.clone(),
                    buf: state.buf.clone(),
                    support: state.support,
                };
                let worker = std::thread::Builder::new().spawn_scoped(scope, move || loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(chunk) = chunks.get(i) else { break };
                    let read = chunk
                        .iter()
                        .map(|name| {
                            let mut entry = None;
                            let outcome =
                                self.read_one(dir_fd, name, &mut mine, &mut |e| entry = Some(e));
                            (outcome, entry)
                        })
                        .collect();
                    if send.send((i, read)).is_err() {
                        break;
                    }
                });
                started += usize::from(worker.is_ok());
            }
            drop(send);
            if started == 0 {
                return false;
            }
            // Chunks arrive in any order and leave in directory order.
            let mut waiting: Vec<Option<Chunk>> = (0..chunks.len()).map(|_| None).collect();
            let mut due = 0;
            for (i, read) in receive {
                waiting[i] = Some(read);
                while let Some(read) = waiting.get_mut(due).and_then(Option::take) {
                    for ((outcome, entry), name) in read.into_iter().zip(chunks[due]) {
                        if let Some(entry) = entry {
                            each(entry);
                        }
                        self.note(dir_fd, name, outcome, notes);
                    }
                    due += 1;
                }
            }
            true
        })
    }

    /// Notes what happened to one file, and removes it when stale.
    fn note(&self, dir_fd: RawFd, name: &CStr, outcome: Read, notes: &mut Vec<String>) {
        let shown = || name.to_string_lossy().into_owned();
        match outcome {
            Read::Entry(unlocked) => {
                if let Some(why) = unlocked {
                    notes.push(format!("{}: read without its lock: {why}", shown()));
                }
            }
            Read::Skipped(why) => notes.push(format!("{}: skipped: {why}", shown())),
            Read::Stale(pid) => {
                if self.options.remove_stale {
                    match unlink_at(dir_fd, name) {
                        Ok(()) => {
                            notes.push(format!("{}: removed: process {pid} is gone", shown()))
                        }
                        Err(err) => notes.push(format!(
                            "{}: process {pid} is gone, cannot remove: {err}",
                            shown()
                        )),
                    }
                } else {
                    notes.push(format!("{}: skipped: process {pid} is gone", shown()));
                }
            }
        }
    }

    fn max_record_size(&self) -> usize {
        match self.options.layout {
            Some(layout) => layout.size,
            None => Layout::KNOWN.iter().map(|l| l.size).max().unwrap_or(0),
        }
    }

    /// Reads one file and hands a live, non-free entry to `each` (directly,
    /// so the record is not moved around on its way).
    fn read_one(
        &self,
        dir_fd: RawFd,
        name: &CStr,
        state: &mut ScanState,
        each: &mut impl FnMut(Entry),
    ) -> Read {
        let ScanState {
            owners,
            live,
            buf,
            support,
        } = state;
        let flags =
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
        // Root skips access time updates, unless it lacks CAP_FOWNER.
        let open = |flags| {
            // SAFETY: `name` is a valid C string and `dir_fd` a directory.
            unsafe { libc::openat(dir_fd, name.as_ptr(), flags) }
        };
        let mut raw = -1;
        if owners.euid == 0 && !support.atime_needed {
            raw = open(flags | libc::O_NOATIME);
            if raw < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
                support.atime_needed = true;
            }
        }
        if raw < 0 {
            raw = open(flags);
        }
        if raw < 0 {
            let err = io::Error::last_os_error();
            return Read::Skipped(match err.raw_os_error() {
                Some(libc::ELOOP) => "it is a symbolic link".to_string(),
                _ => format!("cannot open: {err}"),
            });
        }
        // SAFETY: `raw` was just returned by openat and is owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let st = match fstat(fd.as_raw_fd()) {
            Ok(st) => st,
            Err(err) => return Read::Skipped(format!("cannot stat: {err}")),
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Read::Skipped("not a regular file".to_string());
        }
        if st.st_mode & 0o600 != 0o600 {
            return Read::Skipped(format!(
                "mode {:o} lacks owner read and write",
                st.st_mode & 0o7777
            ));
        }
        if !owners.accepts(st.st_uid) {
            return Read::Skipped(format!("owned by uid {}", st.st_uid));
        }
        let size = u64::try_from(st.st_size).unwrap_or(0);
        let layout = match self.options.layout {
            Some(layout) if layout.size as u64 == size => layout,
            Some(layout) => {
                return Read::Skipped(format!("{size} bytes, the layout wants {}", layout.size))
            }
            None => match Layout::for_size(size) {
                Some(layout) => layout,
                None => return Read::Skipped(format!("{size} bytes match no known layout")),
            },
        };
        let unlocked = lock_shared(fd.as_raw_fd(), self.options.lock_timeout, support).err();
        let record = &mut buf[..layout.size];
        if let Err(why) = read_record(fd.as_raw_fd(), &layout, record) {
            return Read::Skipped(why);
        }
        // Closing the descriptor releases the read lock.
        drop(fd);
        let entry = match Entry::parse(record, &layout) {
            Ok(entry) => entry,
            Err(err) => return Read::Skipped(err.to_string()),
        };
        if !live.exists(entry.pid) {
            return Read::Stale(entry.pid);
        }
        if entry.state != State::Free {
            each(entry);
        }
        Read::Entry(unlocked)
    }

    /// How many sessions `user` has, as the server counts them at login
    /// (`ftpwho_read_count`): case-insensitive account match. As in C, the
    /// pid is taken from the file name, stale files are removed (when
    /// [`ScanOptions::remove_stale`] is set) and not counted, and a file
    /// whose account cannot be read in full counts as a session. The
    /// account is read at the forced layout's offset, or Debian's.
    pub fn count_sessions(&self, user: &[u8]) -> Result<usize, ScoreboardError> {
        let mut dir = self.open_dir()?;
        let dir_fd = dir.fd();
        let layout = self.options.layout.unwrap_or(Layout::DEBIAN);
        let user = c_string(user);
        let mut account = vec![0u8; layout.account_len];
        let mut count = 0usize;
        let mut live = Liveness::default();
        while let Some(name) = dir.next_name() {
            let Ok(name) = name else { break };
            let bytes = name.to_bytes();
            if !bytes.starts_with(FILE_PREFIX.as_bytes()) {
                continue;
            }
            // C skips names no longer than the prefix plus one, and reads
            // the pid after the prefix's length counting its NUL.
            if bytes.len() <= FILE_PREFIX.len() + 1 {
                continue;
            }
            let pid = c_strtoul(&bytes[FILE_PREFIX.len() + 1..]) as i32;
            if !live.exists(pid) {
                if self.options.remove_stale {
                    let _ = unlink_at(dir_fd, name);
                }
                continue;
            }
            let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
            // SAFETY: valid C string, open directory descriptor.
            let raw = unsafe { libc::openat(dir_fd, name.as_ptr(), flags) };
            if raw < 0 {
                continue;
            }
            // SAFETY: `raw` was just returned by openat and is owned here.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            match pread_at(fd.as_raw_fd(), &mut account, layout.account_offset) {
                Ok(n) if n == account.len() => {
                    let found = c_string(&account[..account.len() - 1]);
                    if found.eq_ignore_ascii_case(&user) {
                        count += 1;
                    }
                }
                _ => count += 1,
            }
        }
        Ok(count)
    }
}

enum Read {
    /// A record (handed over if live and not free), with the reason it
    /// was read without the lock, if so.
    Entry(Option<String>),
    Skipped(String),
    Stale(i32),
}

/// Files read one by one before the rest of a large scoreboard is read by
/// several threads.
const PARALLEL_AFTER: usize = 512;
/// Files per unit of work when reading in parallel.
const PARALLEL_CHUNK: usize = 256;

/// Threads for reading a large scoreboard: one per processor, at most 4.
fn scan_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// What a scan carries from one file to the next.
struct ScanState {
    owners: Owners,
    live: Liveness,
    buf: Vec<u8>,
    support: Support,
}

/// The file owners a scan accepts: root, and the effective uid when it
/// owns the directory.
#[derive(Clone, Copy)]
struct Owners {
    euid: u32,
    dir_owned_by_euid: bool,
}

impl Owners {
    fn of_dir(dir_fd: RawFd) -> Owners {
        // SAFETY: geteuid cannot fail.
        let euid = unsafe { libc::geteuid() };
        let dir_owned_by_euid = fstat(dir_fd).map(|st| st.st_uid == euid).unwrap_or(false);
        Owners {
            euid,
            dir_owned_by_euid,
        }
    }

    fn accepts(&self, uid: u32) -> bool {
        uid == 0 || (self.dir_owned_by_euid && uid == self.euid)
    }
}

/// After this many pids, a scan checks pids against one listing of
/// `/proc` instead of one `kill` each.
const PROC_LISTING_MIN: usize = 32;

/// Whether processes exist, as `kill(pid, 0)` tells. Once a scan has
/// checked [`PROC_LISTING_MIN`] pids, pids seen in one listing of `/proc`
/// exist; any other pid is still asked with `kill`.
#[derive(Clone, Default)]
struct Liveness {
    checked: usize,
    /// Sorted pids from `/proc`, once listed.
    listed: Option<Vec<i32>>,
}

impl Liveness {
    fn exists(&mut self, pid: i32) -> bool {
        self.checked += 1;
        if self.checked == PROC_LISTING_MIN {
            self.listed = list_processes();
        }
        match &self.listed {
            Some(listed) if pid > 0 && listed.binary_search(&pid).is_ok() => true,
            _ => process_exists(pid),
        }
    }
}

/// The pids listed in `/proc`, sorted, when it is this pid namespace's
/// procfs (`/proc/self` names this process).
fn list_processes() -> Option<Vec<i32>> {
    let me = std::fs::read_link("/proc/self").ok()?;
    if me.to_str()?.parse::<u32>().ok()? != std::process::id() {
        return None;
    }
    let mut dir = ScoreboardDir::open(Path::new("/proc")).ok()?;
    let mut pids = Vec::new();
    while let Some(name) = dir.next_name() {
        let name = name.ok()?.to_bytes();
        if let Some(pid) = std::str::from_utf8(name)
            .ok()
            .and_then(|n| n.parse::<i32>().ok())
        {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Some(pids)
}

/// True when `pid` exists, as C's `checkproc`: `kill(pid, 0)` succeeds or
/// fails with EPERM.
pub fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// C's `strtoul` on a file name tail: leading white space, an optional
/// sign, decimal digits; saturates at `ULONG_MAX`, negates modulo 2^64.
fn c_strtoul(s: &[u8]) -> u64 {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    while i < s.len() && s[i].is_ascii_digit() {
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(s[i] - b'0')))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if overflow {
        u64::MAX
    } else if negative {
        value.wrapping_neg()
    } else {
        value
    }
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a valid out pointer for fstat.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded and filled `st`.
    Ok(unsafe { st.assume_init() })
}

fn unlink_at(dir_fd: RawFd, name: &CStr) -> io::Result<()> {
    // SAFETY: valid C string, open directory descriptor.
    if unsafe { libc::unlinkat(dir_fd, name.as_ptr(), 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn pread_at(fd: RawFd, buf: &mut [u8], offset: usize) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is a valid writable buffer of `rest.len()` bytes.
        let n = unsafe {
            libc::pread(
                fd,
                rest.as_mut_ptr().cast(),
                rest.len(),
                (offset + done) as libc::off_t,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    Ok(done)
}

/// Bytes of the file name read with the head of a record; the rest is
/// read only when the name is longer.
const FILENAME_HEAD: usize = 64;

/// Reads a record of `layout` into `record`: the head up to the account
/// and the start of the file name in one `pread`, the rest of the file
/// name only when no NUL ends it in the head. What follows that NUL is
/// never looked at ([`Entry::parse`] stops at it) and is left as it was.
fn read_record(fd: RawFd, layout: &Layout, record: &mut [u8]) -> Result<(), String> {
    let size = record.len();
    let filename_end = layout.filename_offset + layout.filename_len;
    let head = size.min(
        (layout.account_offset + layout.account_len).max(layout.filename_offset + FILENAME_HEAD),
    );
    let read =
        |record: &mut [u8], from: usize, to: usize| match pread_at(fd, &mut record[from..to], from)
        {
            Ok(n) if n == to - from => Ok(()),
            Ok(n) => Err(format!("short read of {} bytes", from + n)),
            Err(err) => Err(format!("cannot read: {err}")),
        };
    read(record, 0, head)?;
    let name_ended = filename_end <= head || record[layout.filename_offset..head].contains(&0);
    if name_ended {
        Ok(())
    } else {
        read(record, head, size)
    }
}

/// What this system allows, learnt while scanning: open file description
/// locks (per descriptor, safe with threads) or, on old kernels, process
/// locks; `O_NOATIME` for root, unless it lacks `CAP_FOWNER`.
#[derive(Clone, Copy, Default)]
struct Support {
    process_locks: bool,
    atime_needed: bool,
}

/// Takes a shared lock on the whole file, polling for at most `timeout`
/// while a writer holds it. `Err` says why the record is read unlocked.
fn lock_shared(fd: RawFd, timeout: Duration, support: &mut Support) -> Result<(), String> {
    // SAFETY: an all-zero flock is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_RDLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    let mut started: Option<std::time::Instant> = None;
    let mut pause = Duration::from_micros(500);
    loop {
        let cmd = if support.process_locks {
            libc::F_SETLK
        } else {
            libc::F_OFD_SETLK
        };
        // SAFETY: `fl` is a valid flock for this command.
        if unsafe { libc::fcntl(fd, cmd, &mut fl as *mut libc::flock) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EINVAL) if !support.process_locks => {
                support.process_locks = true;
                continue;
            }
            Some(libc::EAGAIN) | Some(libc::EACCES) => {
                let started = *started.get_or_insert_with(std::time::Instant::now);
                let waited = started.elapsed();
                if waited >= timeout {
                    return Err(format!(
                        "a writer held it for more than {} ms",
                        timeout.as_millis()
                    ));
                }
                std::thread::sleep(pause.min(timeout - waited));
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            _ => return Err(format!("cannot lock: {err}")),
        }
    }
}

/// An open directory stream, read name by name.
struct ScoreboardDir {
    dir: std::ptr::NonNull<libc::DIR>,
}

impl ScoreboardDir {
    fn open(path: &Path) -> io::Result<ScoreboardDir> {
        let path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
        // SAFETY: `path` is a valid C string.
        let fd = unsafe { libc::open(path.as_ptr(), flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is an open directory; fdopendir takes it over.
        match std::ptr::NonNull::new(unsafe { libc::fdopendir(fd) }) {
            Some(dir) => Ok(ScoreboardDir { dir }),
            None => {
                let err = io::Error::last_os_error();
                // SAFETY: fdopendir failed, so `fd` is still ours.
                unsafe { libc::close(fd) };
                Err(err)
            }
        }
    }

    fn fd(&self) -> RawFd {
        // SAFETY: `self.dir` is an open stream.
        unsafe { libc::dirfd(self.dir.as_ptr()) }
    }

    /// The next name, `None` at the end.
    fn next_name(&mut self) -> Option<io::Result<&CStr>> {
        // SAFETY: errno is thread-local; resetting it tells end from error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `self.dir` is an open stream, used by this thread only.
        let ent = unsafe { libc::readdir(self.dir.as_ptr()) };
        if ent.is_null() {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(0) | None => None,
                Some(_) => Some(Err(err)),
            };
        }
        // SAFETY: readdir returned an entry valid until the next call,
        // which needs `&mut self`, so the borrow cannot outlive it.
        Some(Ok(unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }))
    }
}

impl Drop for ScoreboardDir {
    fn drop(&mut self) {
        // SAFETY: the stream is open and closed only here.
        unsafe { libc::closedir(self.dir.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_by_name_and_lengths() {
        assert_eq!("debian".parse::<Layout>().unwrap(), Layout::DEBIAN);
        assert_eq!(" Upstream ".parse::<Layout>().unwrap(), Layout::UPSTREAM);
        assert_eq!("128,1024".parse::<Layout>().unwrap(), Layout::DEBIAN);
        assert_eq!("127,1024".parse::<Layout>().unwrap(), Layout::UPSTREAM);
        let l = "31,512".parse::<Layout>().unwrap();
        assert_eq!((l.account_len, l.filename_offset, l.size), (32, 336, 848));
        for bad in ["", "x", "1,", ",1", "1,0", "-1,5", "9999999,1", "1,2,3"] {
            assert!(bad.parse::<Layout>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn layouts_in_configuration_files() {
        #[derive(serde::Deserialize)]
        struct Config {
            layout: Layout,
        }
        let c: Config = toml::from_str("layout = \"debian\"").unwrap();
        assert_eq!(c.layout, Layout::DEBIAN);
        let c: Config = toml::from_str("layout = \"127,1024\"").unwrap();
        assert_eq!(c.layout, Layout::UPSTREAM);
        let c: Config = toml::from_str(
            "[layout]\nsize = 1464\naccount_offset = 304\naccount_len = 129\n\
             filename_offset = 433\nfilename_len = 1024\n",
        )
        .unwrap();
        assert_eq!(c.layout, Layout::DEBIAN);
        let err = toml::from_str::<Config>(
            "[layout]\nsize = 10\naccount_offset = 304\naccount_len = 129\n\
             filename_offset = 433\nfilename_len = 1024\n",
        );
        assert!(err.is_err());
        assert!(toml::from_str::<Config>("layout = \"huge\"").is_err());
    }

    #[test]
    fn large_scoreboards_read_in_parallel_in_directory_order() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let mut entry = Entry {
            state: State::Idle,
            pid: me,
            peer: RawSockaddr::from_socket_addr("192.0.2.7:50000".parse().unwrap()),
            local: RawSockaddr::from_socket_addr("192.0.2.1:21".parse().unwrap()),
            date: 1,
            xfer_date: 0,
            restart_at: 0,
            total_size: 0,
            current_size: 0,
            account: Vec::new(),
            filename: Vec::new(),
        };
        let count = PARALLEL_AFTER + 3 * PARALLEL_CHUNK + 17;
        for i in 0..count {
            entry.account = format!("user{i}").into_bytes();
            entry.state = if i % 11 == 0 {
                State::Free
            } else {
                State::Idle
            };
            // Some stale, some of no known size, some with a bad mode.
            entry.pid = if i % 97 == 5 { i32::MAX - 7 } else { me };
            let mut bytes = entry.to_bytes(&Layout::DEBIAN).unwrap();
            if i % 89 == 3 {
                bytes.push(0);
            }
            let path = dir.path().join(format!("client-{i:08}"));
            std::fs::write(&path, &bytes).unwrap();
            let mode = if i % 83 == 7 { 0o400 } else { 0o600 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let keep = Scoreboard::with_options(
            dir.path(),
            ScanOptions {
                remove_stale: false,
                ..ScanOptions::default()
            },
        );
        let read = |board: &Scoreboard, threads| {
            let mut entries = Vec::new();
            let notes = board
                .scan_each_with(|| threads, |e| entries.push(e))
                .unwrap();
            (entries, notes)
        };
        let (one, one_notes) = read(&keep, 1);
        assert!(
            one.len() > PARALLEL_AFTER + 2 * PARALLEL_CHUNK,
            "{}",
            one.len()
        );
        assert!(one_notes
            .iter()
            .any(|n| n.contains("process") && n.contains("gone")));
        assert!(one_notes.iter().any(|n| n.contains("no known layout")));
        assert!(one_notes.iter().any(|n| n.contains("lacks owner read")));
        assert!(one.iter().all(|e| e.state != State::Free && e.pid == me));
        for threads in [2, 3] {
            let (many, many_notes) = read(&keep, threads);
            assert_eq!(many, one, "{threads} threads");
            assert_eq!(many_notes, one_notes, "{threads} threads");
        }
        // Stale files are removed by the parallel reader too.
        let stale = one_notes.iter().filter(|n| n.contains("gone")).count();
        let (_, removing) = read(&Scoreboard::new(dir.path()), 2);
        assert_eq!(
            removing.iter().filter(|n| n.contains("removed")).count(),
            stale
        );
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, count - stale);
    }

    #[test]
    fn strtoul_like_c() {
        assert_eq!(c_strtoul(b"0012345"), 12345);
        assert_eq!(c_strtoul(b" +42x"), 42);
        assert_eq!(c_strtoul(b"-1"), u64::MAX);
        assert_eq!(c_strtoul(b"abc"), 0);
        assert_eq!(c_strtoul(b"99999999999999999999999"), u64::MAX);
    }
}
