//! Pure-FTPd's scoreboard: one file per live session, `client-%08lu`, in
//! `/var/run/pure-ftpd/`, holding the C struct `FTPWhoEntry`.
//!
//! The record is read field by field at the offsets of a [`Layout`], never
//! by transmuting, so a file of any content parses or is refused with an
//! error.

use std::path::PathBuf;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
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
    /// Account name, raw bytes up to the first NUL.
    pub account: Vec<u8>,
    /// File name, raw bytes up to the first NUL.
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
        let account = &bytes[layout.account_offset..layout.account_offset + layout.account_len];
        let filename = &bytes[layout.filename_offset..layout.filename_offset + layout.filename_len];
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

    /// Reads every acceptable entry (see the module documentation).
    pub fn scan(&self) -> Result<Scan, ScoreboardError> {
        unimplemented!("scoreboard scan")
    }

    /// How many sessions `user` has, as the server counts them at login
    /// (`ftpwho_read_count`): case-insensitive account match.
    pub fn count_sessions(&self, user: &[u8]) -> Result<usize, ScoreboardError> {
        let _ = user;
        unimplemented!("count_sessions")
    }
}
