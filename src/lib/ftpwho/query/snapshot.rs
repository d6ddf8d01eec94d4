//! One scan of the scoreboard, kept compact and shared by every answer
//! that waits for it, and the single flight that makes concurrent queries
//! share a scan.
//!
//! A [`Snapshot`] holds the live sessions in directory order, each as a
//! fixed-size record with its names in one byte arena (a tenth of the
//! memory of decoded entries). A [`Flight`] runs at most one scan at a
//! time: queries that arrive while it runs wait for its result, and a
//! query that arrives when none runs starts a new one, so a result is
//! never served to a query that arrived after it was handed out.

use std::sync::Mutex;

use crate::ftpwho::scoreboard::{Entry, RawSockaddr, Scoreboard, ScoreboardError, State};

/// Bytes of a socket address worth keeping (`sockaddr_in6`).
const ADDR_BYTES: usize = 28;

#[derive(Debug, Clone, Copy)]
struct Record {
    state: i32,
    pid: i32,
    date: i64,
    xfer_date: i64,
    restart_at: i64,
    total_size: i64,
    current_size: i64,
    peer: [u8; ADDR_BYTES],
    local: [u8; ADDR_BYTES],
    account: (u32, u32),
    filename: (u32, u32),
}

/// The live sessions of one scan, and what it passed over.
#[derive(Debug, Default)]
pub struct Snapshot {
    records: Vec<Record>,
    names: Vec<u8>,
    /// Scoreboard files passed over (stale, foreign, malformed).
    pub skipped: usize,
}

fn short(addr: &RawSockaddr) -> [u8; ADDR_BYTES] {
    let mut bytes = [0u8; ADDR_BYTES];
    bytes.copy_from_slice(&addr.0[..ADDR_BYTES]);
    bytes
}

fn long(bytes: &[u8; ADDR_BYTES]) -> RawSockaddr {
    let mut addr = RawSockaddr([0u8; crate::ftpwho::scoreboard::SOCKADDR_STORAGE_LEN]);
    addr.0[..ADDR_BYTES].copy_from_slice(bytes);
    addr
}

impl Snapshot {
    /// Scans `scoreboard` once.
    pub fn take(scoreboard: &Scoreboard) -> Result<Snapshot, ScoreboardError> {
        let mut snapshot = Snapshot::default();
        let notes = scoreboard.scan_each(|entry| snapshot.push(&entry))?;
        for note in &notes {
            tracing::debug!(note = %note, "scoreboard");
        }
        snapshot.skipped = notes.len();
        snapshot.records.shrink_to_fit();
        snapshot.names.shrink_to_fit();
        Ok(snapshot)
    }

    fn push_name(&mut self, name: &[u8]) -> (u32, u32) {
        let start = self.names.len() as u32;
        self.names.extend_from_slice(name);
        (start, name.len() as u32)
    }

    /// Adds one entry.
    pub fn push(&mut self, entry: &Entry) {
        let account = self.push_name(&entry.account);
        let filename = self.push_name(&entry.filename);
        self.records.push(Record {
            state: entry.state.to_raw(),
            pid: entry.pid,
            date: entry.date,
            xfer_date: entry.xfer_date,
            restart_at: entry.restart_at,
            total_size: entry.total_size,
            current_size: entry.current_size,
            peer: short(&entry.peer),
            local: short(&entry.local),
            account,
            filename,
        });
    }

    /// The memory it holds, in bytes.
    pub fn bytes(&self) -> usize {
        self.records.capacity() * std::mem::size_of::<Record>() + self.names.capacity()
    }

    /// How many sessions.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there is no session.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn name(&self, (start, len): (u32, u32)) -> &[u8] {
        &self.names[start as usize..(start + len) as usize]
    }

    /// The account of session `i`.
    pub fn account(&self, i: usize) -> &[u8] {
        self.name(self.records[i].account)
    }

    /// The state of session `i`.
    pub fn state(&self, i: usize) -> State {
        State::from_raw(self.records[i].state)
    }

    /// True when the names of session `i` are all ASCII.
    pub fn is_ascii(&self, i: usize) -> bool {
        let r = &self.records[i];
        self.name(r.account).is_ascii() && self.name(r.filename).is_ascii()
    }

    /// Session `i` as the scan read it (socket addresses beyond the
    /// bytes of an IPv6 address are zero).
    pub fn entry(&self, i: usize) -> Entry {
        let r = &self.records[i];
        Entry {
            state: State::from_raw(r.state),
            pid: r.pid,
            peer: long(&r.peer),
            local: long(&r.local),
            date: r.date,
            xfer_date: r.xfer_date,
            restart_at: r.restart_at,
            total_size: r.total_size,
            current_size: r.current_size,
            account: self.name(r.account).to_vec(),
            filename: self.name(r.filename).to_vec(),
        }
    }
}

/// At most one scan at a time; what arrives meanwhile waits for it.
pub struct Flight<T> {
    state: Mutex<(bool, Vec<T>)>,
}

impl<T> Default for Flight<T> {
    fn default() -> Self {
        Flight {
            state: Mutex::new((false, Vec::new())),
        }
    }
}

impl<T> Flight<T> {
    /// Either parks `waiter` until the running scan ends (`None`), or,
    /// when no scan runs, hands it back: the caller is to scan and then
    /// call [`land`](Flight::land).
    pub fn board(&self, waiter: T) -> Option<T> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 {
            state.1.push(waiter);
            None
        } else {
            state.0 = true;
            Some(waiter)
        }
    }

    /// Ends the running scan; returns those that waited for it.
    pub fn land(&self) -> Vec<T> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 = false;
        std::mem::take(&mut state.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_as_they_went_in() {
        let mut snapshot = Snapshot::default();
        let mut entries = Vec::new();
        for (i, (account, file)) in [
            (&b"alice"[..], &b""[..]),
            (b"caf\xe9", b"/pub/\x01\x1b[2J"),
            (b"", b"x"),
        ]
        .into_iter()
        .enumerate()
        {
            let peer: std::net::SocketAddr = if i == 1 {
                "[2001:db8::5]:6000".parse().unwrap()
            } else {
                "192.0.2.7:50000".parse().unwrap()
            };
            let entry = Entry {
                state: State::from_raw(i as i32 + 1),
                pid: 100 + i as i32,
                peer: RawSockaddr::from_socket_addr(peer),
                local: RawSockaddr::from_socket_addr("192.0.2.1:21".parse().unwrap()),
                date: 1_700_000_000 - i as i64,
                xfer_date: 5,
                restart_at: 6,
                total_size: 7,
                current_size: -8,
                account: account.to_vec(),
                filename: file.to_vec(),
            };
            snapshot.push(&entry);
            entries.push(entry);
        }
        assert_eq!(snapshot.len(), 3);
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(&snapshot.entry(i), entry);
            assert_eq!(snapshot.account(i), entry.account);
            assert_eq!(snapshot.state(i), entry.state);
        }
        assert!(snapshot.is_ascii(0));
        assert!(!snapshot.is_ascii(1));
    }

    #[test]
    fn one_flight_at_a_time() {
        let flight = Flight::default();
        assert_eq!(flight.board(1), Some(1));
        assert_eq!(flight.board(2), None);
        assert_eq!(flight.board(3), None);
        assert_eq!(flight.land(), vec![2, 3]);
        // Landed: the next one starts a new scan, nothing is reused.
        assert_eq!(flight.board(4), Some(4));
        assert_eq!(flight.land(), Vec::<i32>::new());
    }
}
