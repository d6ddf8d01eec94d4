//! The queue file's bytes (see `docs/upload-queue.md`): a 16-byte header,
//! then frames, one [`Entry`] each.
//!
//! ```text
//! header: "PUQUEUE\n"  version u32 LE (1)  reserved u32 (0)
//! frame:  length u32 LE  crc32 u32 LE (of the payload)  payload
//! ```
//!
//! A payload starts with a kind byte; integers are little-endian, byte
//! strings are a `u16` length and the bytes. Decoding never panics: a
//! frame that is cut short, too long, fails its checksum or does not hold
//! a whole entry is [`Damage`], and the frames after it are looked for
//! byte by byte ([`decode`]).

/// The first 8 bytes of a queue file.
pub const MAGIC: &[u8; 8] = b"PUQUEUE\n";
/// The format written and read.
pub const VERSION: u32 = 1;
/// Bytes before the first frame.
pub const HEADER_LEN: usize = 16;
/// Bytes before a frame's payload.
pub const FRAME_HEAD_LEN: usize = 8;
/// The longest payload accepted.
pub const MAX_PAYLOAD: usize = 16 * 1024;

/// One change of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A record was taken from the pipe.
    Queued {
        /// The record's number, growing.
        id: u64,
        /// When, in microseconds since the epoch.
        at_us: u64,
        /// The virtual user.
        user: Vec<u8>,
        /// The name pure-ftpd wrote.
        path: Vec<u8>,
        /// The file to process (after virtual-host mapping).
        file: Vec<u8>,
    },
    /// A run started.
    Started {
        /// The record.
        id: u64,
        /// Its number, from 1.
        attempt: u32,
        /// When, in microseconds since the epoch.
        at_us: u64,
    },
    /// The record is done (processed, or not to be run again): it leaves
    /// the queue.
    Finished {
        /// The record.
        id: u64,
    },
    /// A run failed; the next one is due at `due_us`.
    RetryAt {
        /// The record.
        id: u64,
        /// The attempt that failed.
        attempt: u32,
        /// When the next attempt is due, in microseconds since the epoch.
        due_us: u64,
    },
    /// The last allowed run failed: the record is kept as failed.
    Failed {
        /// The record.
        id: u64,
        /// The attempt that failed.
        attempt: u32,
    },
    /// An administrator asked for a failed record to run again.
    Requeued {
        /// The record.
        id: u64,
    },
    /// An administrator dropped the record.
    Dropped {
        /// The record.
        id: u64,
    },
}

impl Entry {
    /// The record the entry is about.
    pub fn id(&self) -> u64 {
        match self {
            Entry::Queued { id, .. }
            | Entry::Started { id, .. }
            | Entry::Finished { id }
            | Entry::RetryAt { id, .. }
            | Entry::Failed { id, .. }
            | Entry::Requeued { id }
            | Entry::Dropped { id } => *id,
        }
    }
}

const QUEUED: u8 = 1;
const STARTED: u8 = 2;
const FINISHED: u8 = 3;
const RETRY_AT: u8 = 4;
const FAILED: u8 = 5;
const REQUEUED: u8 = 6;
const DROPPED: u8 = 7;

/// The header of a new file.
pub fn header() -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Longer names cannot come from the pipe; cut, never wrap.
    let bytes = &bytes[..bytes.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends `entry` as one frame to `out`.
pub fn encode(entry: &Entry, out: &mut Vec<u8>) {
    let mut p = Vec::with_capacity(64);
    match entry {
        Entry::Queued {
            id,
            at_us,
            user,
            path,
            file,
        } => {
            p.push(QUEUED);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&at_us.to_le_bytes());
            put_bytes(&mut p, user);
            put_bytes(&mut p, path);
            put_bytes(&mut p, file);
        }
        Entry::Started { id, attempt, at_us } => {
            p.push(STARTED);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&attempt.to_le_bytes());
            p.extend_from_slice(&at_us.to_le_bytes());
        }
        Entry::Finished { id } => {
            p.push(FINISHED);
            p.extend_from_slice(&id.to_le_bytes());
        }
        Entry::RetryAt {
            id,
            attempt,
            due_us,
        } => {
            p.push(RETRY_AT);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&attempt.to_le_bytes());
            p.extend_from_slice(&due_us.to_le_bytes());
        }
        Entry::Failed { id, attempt } => {
            p.push(FAILED);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&attempt.to_le_bytes());
        }
        Entry::Requeued { id } => {
            p.push(REQUEUED);
            p.extend_from_slice(&id.to_le_bytes());
        }
        Entry::Dropped { id } => {
            p.push(DROPPED);
            p.extend_from_slice(&id.to_le_bytes());
        }
    }
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
    out.extend_from_slice(&p);
}

/// Why a file's header is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Shorter than a header.
    #[error("shorter than its header")]
    Short,
    /// Not a queue file.
    #[error("not a queue file (bad magic)")]
    Magic,
    /// Written by another version of the format.
    #[error("format version {0}, this program reads version {VERSION}")]
    Version(u32),
}

/// Checks a file's header.
pub fn check_header(bytes: &[u8]) -> Result<(), HeaderError> {
    if bytes.len() < HEADER_LEN {
        return Err(HeaderError::Short);
    }
    if &bytes[..8] != MAGIC {
        return Err(HeaderError::Magic);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if version != VERSION {
        return Err(HeaderError::Version(version));
    }
    Ok(())
}

/// What is wrong with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The file ends inside the frame (a torn write).
    #[error("cut short (a torn write)")]
    Truncated,
    /// The length is 0 or above [`MAX_PAYLOAD`].
    #[error("impossible length {0}")]
    Length(u32),
    /// The payload does not match its checksum.
    #[error("checksum mismatch")]
    Checksum,
    /// The payload is not a whole entry.
    #[error("not an entry (kind {0})")]
    Entry(u8),
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
        Some(self.take(n)?.to_vec())
    }
}

fn decode_payload(p: &[u8]) -> Option<Entry> {
    let (&kind, rest) = p.split_first()?;
    let mut c = Cursor(rest);
    let entry = match kind {
        QUEUED => Entry::Queued {
            id: c.u64()?,
            at_us: c.u64()?,
            user: c.bytes()?,
            path: c.bytes()?,
            file: c.bytes()?,
        },
        STARTED => Entry::Started {
            id: c.u64()?,
            attempt: c.u32()?,
            at_us: c.u64()?,
        },
        FINISHED => Entry::Finished { id: c.u64()? },
        RETRY_AT => Entry::RetryAt {
            id: c.u64()?,
            attempt: c.u32()?,
            due_us: c.u64()?,
        },
        FAILED => Entry::Failed {
            id: c.u64()?,
            attempt: c.u32()?,
        },
        REQUEUED => Entry::Requeued { id: c.u64()? },
        DROPPED => Entry::Dropped { id: c.u64()? },
        _ => return None,
    };
    // Bytes left over mean a payload of another shape.
    c.0.is_empty().then_some(entry)
}

/// Decodes the frame at the start of `bytes`: the entry and the frame's
/// length.
pub fn decode_frame(bytes: &[u8]) -> Result<(Entry, usize), FrameError> {
    if bytes.len() < FRAME_HEAD_LEN {
        return Err(FrameError::Truncated);
    }
    let len = u32::from_le_bytes(bytes[..4].try_into().unwrap_or_default());
    if len == 0 || len as usize > MAX_PAYLOAD {
        return Err(FrameError::Length(len));
    }
    let end = FRAME_HEAD_LEN + len as usize;
    if bytes.len() < end {
        return Err(FrameError::Truncated);
    }
    let crc = u32::from_le_bytes(bytes[4..8].try_into().unwrap_or_default());
    let payload = &bytes[FRAME_HEAD_LEN..end];
    if crc32fast::hash(payload) != crc {
        return Err(FrameError::Checksum);
    }
    let entry = decode_payload(payload).ok_or(FrameError::Entry(payload[0]))?;
    Ok((entry, end))
}

/// A damaged stretch of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    /// Where it starts (from the start of the file).
    pub offset: usize,
    /// What the first bad frame had.
    pub error: FrameError,
}

/// Everything found in a file's frames (after the header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The entries, in file order, good ones found after damage included.
    pub entries: Vec<Entry>,
    /// The length of the undamaged start of the file.
    pub good_len: usize,
    /// The first damage, if any.
    pub damage: Option<Damage>,
}

/// Decodes the frames of a whole file (`bytes` includes the header, which
/// must have been checked). After a damaged frame, good frames are looked
/// for at every later byte, so that a torn or corrupted frame costs only
/// itself.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut out = Decoded {
        good_len: bytes.len().min(HEADER_LEN),
        ..Decoded::default()
    };
    let mut at = HEADER_LEN.min(bytes.len());
    while at < bytes.len() {
        match decode_frame(&bytes[at..]) {
            Ok((entry, len)) => {
                out.entries.push(entry);
                at += len;
                if out.damage.is_none() {
                    out.good_len = at;
                }
            }
            Err(error) => {
                if out.damage.is_none() {
                    out.damage = Some(Damage { offset: at, error });
                }
                at += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Entry> {
        vec![
            Entry::Queued {
                id: 1,
                at_us: 1_700_000_000_000_000,
                user: b"alice".to_vec(),
                path: b"10.0.0.1:/up/a.txt".to_vec(),
                file: b"/etc/pure-ftpd/pure-ftpd/10.0.0.1/up/a.txt".to_vec(),
            },
            Entry::Started {
                id: 1,
                attempt: 1,
                at_us: 5,
            },
            Entry::RetryAt {
                id: 1,
                attempt: 1,
                due_us: 9,
            },
            Entry::Failed { id: 1, attempt: 2 },
            Entry::Requeued { id: 1 },
            Entry::Dropped { id: 1 },
            Entry::Finished { id: u64::MAX },
        ]
    }

    fn file(entries: &[Entry]) -> Vec<u8> {
        let mut bytes = header().to_vec();
        for e in entries {
            encode(e, &mut bytes);
        }
        bytes
    }

    #[test]
    fn every_entry_round_trips() {
        let bytes = file(&samples());
        assert_eq!(check_header(&bytes), Ok(()));
        let d = decode(&bytes);
        assert_eq!(d.entries, samples());
        assert_eq!((d.good_len, d.damage), (bytes.len(), None));
    }

    #[test]
    fn headers_are_checked() {
        assert_eq!(check_header(b"PUQ"), Err(HeaderError::Short));
        assert_eq!(check_header(&[0; 16]), Err(HeaderError::Magic));
        let mut h = header();
        h[8] = 2;
        assert_eq!(check_header(&h), Err(HeaderError::Version(2)));
    }

    #[test]
    fn a_torn_tail_is_found_and_the_rest_kept() {
        let bytes = file(&samples());
        let whole = decode(&bytes);
        // Every cut inside the last frame loses that frame only.
        let last_start = bytes.len() - 17;
        for cut in last_start + 1..bytes.len() {
            let d = decode(&bytes[..cut]);
            assert_eq!(d.entries, whole.entries[..whole.entries.len() - 1], "{cut}");
            assert_eq!(d.good_len, last_start);
            assert_eq!(d.damage.map(|d| d.offset), Some(last_start));
        }
    }

    #[test]
    fn a_corrupted_frame_costs_only_itself() {
        let mut bytes = file(&samples());
        let second = HEADER_LEN + {
            let mut one = Vec::new();
            encode(&samples()[0], &mut one);
            one.len()
        };
        bytes[second + FRAME_HEAD_LEN + 2] ^= 0x40;
        let d = decode(&bytes);
        let mut expected = samples();
        expected.remove(1);
        assert_eq!(d.entries, expected);
        assert_eq!(
            d.damage,
            Some(Damage {
                offset: second,
                error: FrameError::Checksum
            })
        );
        assert_eq!(d.good_len, second);
    }

    #[test]
    fn garbage_never_panics_and_gives_no_false_entries() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for len in [0, 1, 7, 16, 17, 100, 4096] {
            let mut bytes = header().to_vec();
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.push(state as u8);
            }
            let d = decode(&bytes);
            assert!(d.entries.is_empty(), "{len}");
            assert_eq!(d.good_len, HEADER_LEN);
            assert_eq!(d.damage.is_some(), len > 0);
        }
        // Frames whose checksum is right but whose payload is not an entry.
        for payload in [
            &[9u8][..],
            &[FINISHED, 1, 2],
            &[FINISHED, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ] {
            let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
            bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            bytes.extend_from_slice(payload);
            assert_eq!(
                decode_frame(&bytes),
                Err(FrameError::Entry(payload[0])),
                "{payload:?}"
            );
        }
        let mut huge = ((MAX_PAYLOAD + 1) as u32).to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 4]);
        assert_eq!(
            decode_frame(&huge),
            Err(FrameError::Length(MAX_PAYLOAD as u32 + 1))
        );
    }
}
