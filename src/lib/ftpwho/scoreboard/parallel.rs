//! The parallel reader of large scoreboards: chunks of names read by a few
//! threads, handed over in directory order on the calling thread.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use super::note::Note;
use super::record::Entry;
use super::scan::{Read, ScanState};
use super::Scoreboard;

/// Files read one by one before the rest of a large scoreboard is read by
/// several threads.
pub(super) const PARALLEL_AFTER: usize = 512;
/// Files per unit of work when reading in parallel.
pub(super) const PARALLEL_CHUNK: usize = 256;

/// Threads for reading a large scoreboard: one per processor, at most 4.
pub(super) fn scan_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

impl Scoreboard {
    /// Reads `names` with up to `threads` threads, a chunk at a time, and
    /// hands entries to `each` (on this thread) in the order of `names`.
    /// False when no thread could be started (nothing was read).
    pub(super) fn scan_in_parallel(
        &self,
        dir_fd: RawFd,
        state: &ScanState,
        names: &[CString],
        threads: usize,
        each: &mut impl FnMut(Entry),
        notes: &mut Vec<Note>,
    ) -> bool {
        type Chunk = Vec<(Read, Option<Entry>)>;
        let chunks: Vec<&[CString]> = names.chunks(PARALLEL_CHUNK).collect();
        let next = AtomicUsize::new(0);
        let (send, receive) = mpsc::channel::<(usize, Chunk)>();
        std::thread::scope(|scope| {
            let mut started = 0;
            for _ in 0..threads {
                let send = send.clone();
                let (chunks, next) = (&chunks, &next);
                let mut mine = state.clone();
                let worker = std::thread::Builder::new().spawn_scoped(scope, move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
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
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

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
        let reasons: Vec<&SkipReason> = one_notes
            .iter()
            .filter_map(|n| match n {
                Note::Skipped { reason, .. } => Some(reason),
                _ => None,
            })
            .collect();
        assert!(reasons
            .iter()
            .any(|r| **r == SkipReason::Stale { pid: i32::MAX - 7 }));
        assert!(reasons
            .iter()
            .any(|r| **r == SkipReason::UnknownSize { size: 1465 }));
        assert!(reasons
            .iter()
            .any(|r| **r == SkipReason::WrongMode { mode: 0o400 }));
        assert!(one.iter().all(|e| e.state != State::Free && e.pid == me));
        for threads in [2, 3] {
            let (many, many_notes) = read(&keep, threads);
            assert_eq!(many, one, "{threads} threads");
            assert_eq!(many_notes, one_notes, "{threads} threads");
        }
        // Stale files are removed by the parallel reader too.
        let stale = one_notes.iter().filter(|n| n.is_stale()).count();
        assert!(stale > 0);
        let (_, removing) = read(&Scoreboard::new(dir.path()), 2);
        assert_eq!(
            removing
                .iter()
                .filter(|n| matches!(n, Note::Removed { pid, .. } if *pid == i32::MAX - 7))
                .count(),
            stale
        );
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, count - stale);
    }
}
