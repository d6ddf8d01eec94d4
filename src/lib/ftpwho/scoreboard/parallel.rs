//! The parallel reader of large scoreboards: chunks of names read by a few
//! threads, handed over in directory order on the calling thread.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use super::file::{note, read_one, Read, ScanOptions, ScanState};
use super::note::Note;
use super::record::Entry;

/// Files read one by one before the rest of a large scoreboard is read by
/// several threads.
pub(super) const PARALLEL_AFTER: usize = 512;
/// Files per unit of work when reading in parallel.
pub(super) const PARALLEL_CHUNK: usize = 256;

/// Threads for reading a large scoreboard: one per processor, at most 4.
pub(super) fn scan_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Reads `names` with up to `threads` threads, a chunk at a time, and
/// hands entries to `each` (on this thread) in the order of `names`.
/// False when no thread could be started (nothing was read).
pub(super) fn read_in_parallel(
    options: &ScanOptions,
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
                            read_one(options, dir_fd, name, &mut mine, &mut |e| entry = Some(e));
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
                    note(options, dir_fd, name, outcome, notes);
                }
                due += 1;
            }
        }
        true
    })
}
