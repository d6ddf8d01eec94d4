//! The record codec: one `FTPWhoEntry` as bytes, decoded into an [`Entry`]
//! field by field at the offsets of a [`Layout`] (never by transmuting),
//! and encoded back for crafted scoreboards.

use super::layout::{offsets, Layout, SOCKADDR_STORAGE_LEN};

/// What a session is doing (`FTPWhoEntryState`).
///
/// The states a filter may name (`--state`, the protocol's `state`) are
/// `idle`, `download` and `upload`: they are the values of the command
/// line ([`clap::ValueEnum`]) and of the wire ([`serde`]); `Free` and
/// `Unknown` are never accepted there.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// 0: the slot is free; never listed.
    #[serde(skip_deserializing)]
    #[value(skip)]
    Free,
    /// 1: logged in (or not yet), no transfer.
    #[value(help = "Logged in, no transfer")]
    Idle,
    /// 2: sending a file to the client.
    #[value(help = "Sending a file to the client")]
    Download,
    /// 3: receiving a file from the client.
    #[value(help = "Receiving a file from the client")]
    Upload,
    /// Any other value; `pure-ftpwho` prints `ERR!`.
    #[serde(skip_deserializing)]
    #[value(skip)]
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

pub(super) fn c_string(bytes: &[u8]) -> Vec<u8> {
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
