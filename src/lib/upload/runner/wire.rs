//! The small local protocol between the reader and a run's unit, over the
//! root-only `SOCK_SEQPACKET` socket `pure-uploadscript-run.socket`: one
//! request (the record, what the reader saw of the file, and the checked
//! file's descriptor attached with `SCM_RIGHTS`), one answer (how the run
//! ended). The program, its identity, timeout and limits never travel: the
//! run's unit reads them from its own configuration.
//!
//! A message is `"PURN"`, a version byte (1), a kind byte (`Q` request, `A`
//! answer), then fields: a tag byte, a 4-byte little-endian length, the
//! value. Numbers are little-endian, text is UTF-8. Each field at most once;
//! unknown tags, short or long values, trailing bytes and messages over
//! [`MAX_MESSAGE`] bytes are refused.

use std::time::Duration;

use crate::upload::program::{FileFacts, Limit};

/// The longest message either side sends or accepts.
pub const MAX_MESSAGE: usize = 32 * 1024;

const MAGIC: &[u8; 4] = b"PURN";
const VERSION: u8 = 1;
const KIND_REQUEST: u8 = b'Q';
const KIND_ANSWER: u8 = b'A';

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than its header, or a field runs past the end.
    #[error("message cut short")]
    Truncated,
    /// Longer than [`MAX_MESSAGE`].
    #[error("message longer than {MAX_MESSAGE} bytes")]
    TooLong,
    /// Not this protocol, or another version of it.
    #[error("not a pure-uploadscript run message (version 1)")]
    BadMagic,
    /// A request where an answer was expected, or the other way round.
    #[error("unexpected message kind {0:#04x}")]
    WrongKind(u8),
    /// A tag this version does not know.
    #[error("unknown field {0:#04x}")]
    UnknownField(u8),
    /// A field given twice.
    #[error("field {0:#04x} given twice")]
    Duplicate(u8),
    /// A field with a value of the wrong size or form.
    #[error("field {0:#04x} has a bad value")]
    BadValue(u8),
    /// A required field is missing.
    #[error("field {0:#04x} is missing")]
    Missing(u8),
}

/// What the reader asks a run's unit to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The FTP (virtual) user.
    pub vuser: Vec<u8>,
    /// The file name, as the program gets it.
    pub file: Vec<u8>,
    /// What the reader saw of the file.
    pub facts: FileFacts,
    /// Whether the checked file's descriptor is attached.
    pub fd_attached: bool,
}

/// How the program ended, as the run's unit tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Exit status.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// The timeout expired.
    TimedOut,
    /// Could not be started (the reason).
    Unstartable(String),
    /// Killed for going over a limit.
    OverLimit(Limit),
}

/// The answer of a run's unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// How the program ended.
    pub ending: Ending,
    /// From the request to the end of the program.
    pub duration: Duration,
    /// The file's SHA-256, when configured and computed.
    pub sha256: Option<String>,
    /// Warnings.
    pub notes: Vec<String>,
    /// End of the program's standard output, when captured.
    pub stdout_tail: Vec<u8>,
    /// End of its standard error, when captured.
    pub stderr_tail: Vec<u8>,
    /// The run's unit.
    pub unit: String,
    /// CPU time used, in microseconds.
    pub cpu_usec: Option<u64>,
    /// Peak memory, in bytes.
    pub peak_bytes: Option<u64>,
}

mod tag {
    pub const VUSER: u8 = 1;
    pub const FILE: u8 = 2;
    pub const SIZE: u8 = 3;
    pub const PERMS: u8 = 4;
    pub const UID: u8 = 5;
    pub const GID: u8 = 6;
    pub const USER: u8 = 7;
    pub const GROUP: u8 = 8;
    pub const FD: u8 = 9;
    pub const ENDING: u8 = 20;
    pub const DURATION: u8 = 21;
    pub const SHA256: u8 = 22;
    pub const NOTE: u8 = 23;
    pub const STDOUT: u8 = 24;
    pub const STDERR: u8 = 25;
    pub const UNIT: u8 = 26;
    pub const CPU: u8 = 27;
    pub const PEAK: u8 = 28;
}

struct Writer(Vec<u8>);

impl Writer {
    fn new(kind: u8) -> Self {
        let mut v = MAGIC.to_vec();
        v.push(VERSION);
        v.push(kind);
        Writer(v)
    }
    fn field(&mut self, tag: u8, value: &[u8]) {
        self.0.push(tag);
        self.0
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.0.extend_from_slice(value);
    }
    fn u64(&mut self, tag: u8, v: u64) {
        self.field(tag, &v.to_le_bytes());
    }
    fn u32(&mut self, tag: u8, v: u32) {
        self.field(tag, &v.to_le_bytes());
    }
}

/// Fields of a message, by tag; `NOTE` may repeat.
struct Fields<'a> {
    values: Vec<(u8, &'a [u8])>,
}

fn parse<'a>(bytes: &'a [u8], kind: u8, known: &[u8]) -> Result<Fields<'a>, WireError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(WireError::TooLong);
    }
    if bytes.len() < 6 {
        return Err(WireError::Truncated);
    }
    if &bytes[..4] != MAGIC || bytes[4] != VERSION {
        return Err(WireError::BadMagic);
    }
    if bytes[5] != kind {
        return Err(WireError::WrongKind(bytes[5]));
    }
    let mut rest = &bytes[6..];
    let mut values: Vec<(u8, &[u8])> = Vec::new();
    while let Some((&tag, after)) = rest.split_first() {
        if !known.contains(&tag) {
            return Err(WireError::UnknownField(tag));
        }
        if after.len() < 4 {
            return Err(WireError::Truncated);
        }
        let len = u32::from_le_bytes(after[..4].try_into().expect("4 bytes")) as usize;
        let after = &after[4..];
        if len > after.len() {
            return Err(WireError::Truncated);
        }
        if tag != tag::NOTE && values.iter().any(|(t, _)| *t == tag) {
            return Err(WireError::Duplicate(tag));
        }
        values.push((tag, &after[..len]));
        rest = &after[len..];
    }
    Ok(Fields { values })
}

impl<'a> Fields<'a> {
    fn get(&self, tag: u8) -> Option<&'a [u8]> {
        self.values.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v)
    }
    fn need(&self, tag: u8) -> Result<&'a [u8], WireError> {
        self.get(tag).ok_or(WireError::Missing(tag))
    }
    fn u64(&self, tag: u8) -> Result<Option<u64>, WireError> {
        self.get(tag)
            .map(|v| {
                v.try_into()
                    .map(u64::from_le_bytes)
                    .map_err(|_| WireError::BadValue(tag))
            })
            .transpose()
    }
    fn u32(&self, tag: u8) -> Result<u32, WireError> {
        self.need(tag)?
            .try_into()
            .map(u32::from_le_bytes)
            .map_err(|_| WireError::BadValue(tag))
    }
    fn text(&self, tag: u8) -> Result<Option<String>, WireError> {
        self.get(tag)
            .map(|v| String::from_utf8(v.to_vec()).map_err(|_| WireError::BadValue(tag)))
            .transpose()
    }
}

impl Request {
    /// The message.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(KIND_REQUEST);
        w.field(tag::VUSER, &self.vuser);
        w.field(tag::FILE, &self.file);
        w.u64(tag::SIZE, self.facts.size);
        w.u32(tag::PERMS, self.facts.perms);
        w.u32(tag::UID, self.facts.uid);
        w.u32(tag::GID, self.facts.gid);
        if let Some(user) = &self.facts.user {
            w.field(tag::USER, user);
        }
        if let Some(group) = &self.facts.group {
            w.field(tag::GROUP, group);
        }
        w.field(tag::FD, &[u8::from(self.fd_attached)]);
        w.0
    }

    /// Reads a request. Names must be free of NUL bytes (they become C
    /// strings), the file name not empty.
    pub fn decode(bytes: &[u8]) -> Result<Request, WireError> {
        use tag::*;
        let f = parse(
            bytes,
            KIND_REQUEST,
            &[VUSER, FILE, SIZE, PERMS, UID, GID, USER, GROUP, FD],
        )?;
        let name = |t: u8, v: &[u8]| -> Result<Vec<u8>, WireError> {
            if v.contains(&0) {
                return Err(WireError::BadValue(t));
            }
            Ok(v.to_vec())
        };
        let file = name(FILE, f.need(FILE)?)?;
        if file.is_empty() {
            return Err(WireError::BadValue(FILE));
        }
        let nonempty = |t: u8| -> Result<Option<Vec<u8>>, WireError> {
            f.get(t)
                .map(|v| match name(t, v) {
                    Ok(v) if v.is_empty() => Err(WireError::BadValue(t)),
                    other => other,
                })
                .transpose()
        };
        let fd_attached = match f.need(FD)? {
            [0] => false,
            [1] => true,
            _ => return Err(WireError::BadValue(FD)),
        };
        let perms = f.u32(PERMS)?;
        if perms > 0o7777 {
            return Err(WireError::BadValue(PERMS));
        }
        Ok(Request {
            vuser: name(VUSER, f.need(VUSER)?)?,
            file,
            facts: FileFacts {
                size: f.u64(SIZE)?.ok_or(WireError::Missing(SIZE))?,
                perms,
                uid: f.u32(UID)?,
                gid: f.u32(GID)?,
                user: nonempty(USER)?,
                group: nonempty(GROUP)?,
            },
            fd_attached,
        })
    }
}

impl Answer {
    /// The message (tails and notes cut to fit [`MAX_MESSAGE`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(KIND_ANSWER);
        let mut ending = Vec::with_capacity(5);
        match &self.ending {
            Ending::Exited(n) => {
                ending.push(b'x');
                ending.extend_from_slice(&n.to_le_bytes());
            }
            Ending::Signaled(s) => {
                ending.push(b's');
                ending.extend_from_slice(&s.to_le_bytes());
            }
            Ending::TimedOut => ending.push(b't'),
            Ending::Unstartable(why) => {
                ending.push(b'u');
                ending.extend_from_slice(cut(why.as_bytes(), 1024));
            }
            Ending::OverLimit(Limit::Memory) => ending.push(b'm'),
            Ending::OverLimit(Limit::Tasks) => ending.push(b'p'),
        }
        w.field(tag::ENDING, &ending);
        w.u64(tag::DURATION, self.duration.as_micros() as u64);
        if let Some(sum) = &self.sha256 {
            w.field(tag::SHA256, sum.as_bytes());
        }
        for note in self.notes.iter().take(8) {
            w.field(tag::NOTE, cut(note.as_bytes(), 1024));
        }
        w.field(tag::STDOUT, tail(&self.stdout_tail, 8192));
        w.field(tag::STDERR, tail(&self.stderr_tail, 8192));
        w.field(tag::UNIT, cut(self.unit.as_bytes(), 256));
        if let Some(cpu) = self.cpu_usec {
            w.u64(tag::CPU, cpu);
        }
        if let Some(peak) = self.peak_bytes {
            w.u64(tag::PEAK, peak);
        }
        w.0
    }

    /// Reads an answer.
    pub fn decode(bytes: &[u8]) -> Result<Answer, WireError> {
        use tag::*;
        let f = parse(
            bytes,
            KIND_ANSWER,
            &[
                ENDING, DURATION, SHA256, NOTE, STDOUT, STDERR, UNIT, CPU, PEAK,
            ],
        )?;
        let number = |v: &[u8]| -> Result<i32, WireError> {
            v.try_into()
                .map(i32::from_le_bytes)
                .map_err(|_| WireError::BadValue(ENDING))
        };
        let ending = match f.need(ENDING)?.split_first() {
            Some((b'x', v)) => Ending::Exited(number(v)?),
            Some((b's', v)) => Ending::Signaled(number(v)?),
            Some((b't', [])) => Ending::TimedOut,
            Some((b'm', [])) => Ending::OverLimit(Limit::Memory),
            Some((b'p', [])) => Ending::OverLimit(Limit::Tasks),
            Some((b'u', v)) => Ending::Unstartable(
                String::from_utf8(v.to_vec()).map_err(|_| WireError::BadValue(ENDING))?,
            ),
            _ => return Err(WireError::BadValue(ENDING)),
        };
        let sha256 = f.text(SHA256)?;
        if let Some(sum) = &sha256 {
            if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(WireError::BadValue(SHA256));
            }
        }
        let notes = f
            .values
            .iter()
            .filter(|(t, _)| *t == NOTE)
            .map(|(_, v)| String::from_utf8(v.to_vec()).map_err(|_| WireError::BadValue(NOTE)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Answer {
            ending,
            duration: Duration::from_micros(f.u64(DURATION)?.ok_or(WireError::Missing(DURATION))?),
            sha256,
            notes,
            stdout_tail: f.get(STDOUT).unwrap_or_default().to_vec(),
            stderr_tail: f.get(STDERR).unwrap_or_default().to_vec(),
            unit: f.text(UNIT)?.ok_or(WireError::Missing(UNIT))?,
            cpu_usec: f.u64(CPU)?,
            peak_bytes: f.u64(PEAK)?,
        })
    }
}

/// The first `max` bytes, not splitting a UTF-8 character.
fn cut(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        return bytes;
    }
    let mut end = max;
    while end > 0 && (bytes[end] & 0xc0) == 0x80 {
        end -= 1;
    }
    &bytes[..end]
}

fn tail(bytes: &[u8], max: usize) -> &[u8] {
    &bytes[bytes.len().saturating_sub(max)..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            vuser: b"alice".to_vec(),
            file: b"/srv/ftp/alice/r\xe9sum\xc3\xa9.pdf".to_vec(),
            facts: FileFacts {
                size: 1 << 40,
                perms: 0o4755,
                uid: 1001,
                gid: 4294967295,
                user: Some(b"alice".to_vec()),
                group: None,
            },
            fd_attached: true,
        }
    }

    fn answer() -> Answer {
        Answer {
            ending: Ending::Signaled(9),
            duration: Duration::from_micros(123_456),
            sha256: Some("ab".repeat(32)),
            notes: vec!["one".into(), "two".into()],
            stdout_tail: b"out\n".to_vec(),
            stderr_tail: vec![0xff, 0, 1],
            unit: "pure-uploadscript-run@4-1-0.service".into(),
            cpu_usec: Some(42),
            peak_bytes: None,
        }
    }

    #[test]
    fn requests_and_answers_round_trip() {
        let r = request();
        assert_eq!(Request::decode(&r.encode()), Ok(r));
        for ending in [
            Ending::Exited(0),
            Ending::Exited(-1),
            Ending::Signaled(9),
            Ending::TimedOut,
            Ending::Unstartable("no such file".into()),
            Ending::OverLimit(Limit::Memory),
            Ending::OverLimit(Limit::Tasks),
        ] {
            let a = Answer { ending, ..answer() };
            assert_eq!(Answer::decode(&a.encode()), Ok(a));
        }
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let good = request().encode();
        assert_eq!(Request::decode(b""), Err(WireError::Truncated));
        assert_eq!(Request::decode(b"HTTP/1.1 200"), Err(WireError::BadMagic));
        assert_eq!(
            Request::decode(&answer().encode()),
            Err(WireError::WrongKind(b'A'))
        );
        assert_eq!(
            Request::decode(&vec![b'P'; MAX_MESSAGE + 1]),
            Err(WireError::TooLong)
        );
        // Every cut of a good message is refused, never accepted or a panic.
        for n in 0..good.len() {
            assert!(Request::decode(&good[..n]).is_err(), "cut at {n}");
        }
        let mut extra = good.clone();
        extra.extend_from_slice(&[99, 0, 0, 0, 0]);
        assert_eq!(Request::decode(&extra), Err(WireError::UnknownField(99)));
        let mut twice = good.clone();
        twice.extend_from_slice(&[tag::FD, 1, 0, 0, 0, 1]);
        assert_eq!(Request::decode(&twice), Err(WireError::Duplicate(tag::FD)));
        let mut nul = request();
        nul.file = b"/a\0b".to_vec();
        assert_eq!(
            Request::decode(&nul.encode()),
            Err(WireError::BadValue(tag::FILE))
        );
        let mut perms = request();
        perms.facts.perms = 0o10000;
        assert_eq!(
            Request::decode(&perms.encode()),
            Err(WireError::BadValue(tag::PERMS))
        );
        let mut sum = answer();
        sum.sha256 = Some("xyz".into());
        assert_eq!(
            Answer::decode(&sum.encode()),
            Err(WireError::BadValue(tag::SHA256))
        );
        // Pseudo-random bytes after a valid header never panic.
        let mut seed = 0x2545f4914f6cdd1du64;
        for _ in 0..2000 {
            let mut msg = b"PURN\x01Q".to_vec();
            for _ in 0..(seed % 64) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                msg.push((seed % 30) as u8);
            }
            let _ = Request::decode(&msg);
            msg[5] = b'A';
            let _ = Answer::decode(&msg);
        }
    }

    #[test]
    fn long_fields_are_cut_to_fit() {
        let mut a = answer();
        a.stdout_tail = vec![b'o'; 100_000];
        a.stderr_tail = vec![b'e'; 100_000];
        a.notes = vec!["é".repeat(5000); 20];
        let bytes = a.encode();
        assert!(bytes.len() <= MAX_MESSAGE, "{}", bytes.len());
        let back = Answer::decode(&bytes).unwrap();
        assert_eq!(back.stdout_tail.len(), 8192);
        assert_eq!(back.notes.len(), 8);
    }
}
