//! The queue in memory: every record not done yet, rebuilt from the
//! file's entries, and the choice of what runs next.
//!
//! A record is pending (possibly not before a retry time), running, or
//! failed (its retries exhausted; kept until retried or dropped). What
//! runs next ([`Queue::next_runnable`]) is the oldest pending record that
//! is due, whose file has no run going on and no older record still to
//! run: runs for one file keep the upload order, and never overlap.

use std::collections::{BTreeMap, HashMap};

use crate::upload::queue::format::Entry;

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    /// Waiting to run, not before `due_us` (0: at once).
    Pending {
        /// When it may run, in microseconds since the epoch.
        due_us: u64,
    },
    /// Handed to a runner, to start as soon as the run before it ends
    /// (the reader's memory only: in the file it is still pending).
    Handed,
    /// A run is going on.
    Running,
    /// Its retries are exhausted; kept until retried or dropped.
    Failed,
}

impl ItemState {
    /// The name shown by `queue list`.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending { .. } | ItemState::Handed => "pending",
            ItemState::Running => "running",
            ItemState::Failed => "failed",
        }
    }
}

/// One record in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its number.
    pub id: u64,
    /// When it was queued, in microseconds since the epoch.
    pub queued_us: u64,
    /// The virtual user.
    pub user: Vec<u8>,
    /// The name pure-ftpd wrote.
    pub path: Vec<u8>,
    /// The file to process.
    pub file: Vec<u8>,
    /// Runs started so far (an interrupted one included).
    pub attempts: u32,
    /// Runs that failed so far.
    pub failures: u32,
    /// Where it stands.
    pub state: ItemState,
}

/// Why an administrator's request does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No such record in the queue.
    #[error("no record {0} in the queue")]
    NoSuchRecord(u64),
    /// Only failed records can be retried.
    #[error("record {0} is not failed: it runs when its turn comes")]
    NotFailed(u64),
}

/// The records not done yet, by number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Queue {
    items: BTreeMap<u64, Item>,
    next_id: u64,
    tally: Tally,
}

/// How many records are in the states counted often (kept as they change,
/// so that a long queue is not walked for them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    running: usize,
    failed: usize,
    /// Pending with a retry time.
    delayed: usize,
    handed: usize,
}

impl Tally {
    fn slot(&mut self, state: ItemState) -> Option<&mut usize> {
        match state {
            ItemState::Running => Some(&mut self.running),
            ItemState::Failed => Some(&mut self.failed),
            ItemState::Pending { due_us } if due_us > 0 => Some(&mut self.delayed),
            ItemState::Handed => Some(&mut self.handed),
            ItemState::Pending { .. } => None,
        }
    }

    /// A record went from `old` (`None`: new) to `new` (`None`: gone).
    fn moved(&mut self, old: Option<ItemState>, new: Option<ItemState>) {
        if let Some(n) = old.and_then(|s| self.slot(s)) {
            *n -= 1;
        }
        if let Some(n) = new.and_then(|s| self.slot(s)) {
            *n += 1;
        }
    }
}

impl Queue {
    /// Rebuilds the queue from a file's entries. Runs that were going on
    /// when the file was last written were interrupted: those records are
    /// pending again.
    pub fn replay(entries: &[Entry]) -> Queue {
        let mut q = Queue {
            next_id: 1,
            ..Queue::default()
        };
        for entry in entries {
            q.apply(entry);
        }
        for item in q.items.values_mut() {
            if item.state == ItemState::Running {
                item.state = ItemState::Pending { due_us: 0 };
                q.tally.moved(Some(ItemState::Running), Some(item.state));
            }
        }
        q
    }

    /// Applies one entry (entries about unknown records change nothing).
    pub fn apply(&mut self, entry: &Entry) {
        self.next_id = self.next_id.max(entry.id().saturating_add(1));
        if let Entry::Queued {
            id,
            at_us,
            user,
            path,
            file,
        } = entry
        {
            let tally = &mut self.tally;
            self.items.entry(*id).or_insert_with(|| {
                let state = ItemState::Pending { due_us: 0 };
                tally.moved(None, Some(state));
                Item {
                    id: *id,
                    queued_us: *at_us,
                    user: user.clone(),
                    path: path.clone(),
                    file: file.clone(),
                    attempts: 0,
                    failures: 0,
                    state,
                }
            });
            return;
        }
        let Some(item) = self.items.get_mut(&entry.id()) else {
            return;
        };
        let old = item.state;
        match *entry {
            Entry::Queued { .. } => {}
            Entry::Started { attempt, .. } => {
                item.attempts = item.attempts.max(attempt);
                item.state = ItemState::Running;
            }
            Entry::RetryAt {
                attempt, due_us, ..
            } => {
                item.failures = item.failures.saturating_add(1);
                item.attempts = item.attempts.max(attempt);
                item.state = ItemState::Pending { due_us };
            }
            Entry::Failed { attempt, .. } => {
                item.failures = item.failures.saturating_add(1);
                item.attempts = item.attempts.max(attempt);
                item.state = ItemState::Failed;
            }
            Entry::Requeued { .. } => {
                if item.state == ItemState::Failed {
                    item.failures = 0;
                    item.state = ItemState::Pending { due_us: 0 };
                }
            }
            Entry::Finished { id } | Entry::Dropped { id } => {
                self.items.remove(&id);
                self.tally.moved(Some(old), None);
                return;
            }
        }
        let new = item.state;
        self.tally.moved(Some(old), Some(new));
    }

    /// The record is handed to a runner, to start after the run before it:
    /// it is not chosen again meanwhile.
    pub fn hand(&mut self, id: u64) {
        if let Some(item) = self.items.get_mut(&id) {
            if matches!(item.state, ItemState::Pending { .. }) {
                self.tally.moved(Some(item.state), Some(ItemState::Handed));
                item.state = ItemState::Handed;
            }
        }
    }

    /// A run stopped before the program started, or a record handed to a
    /// runner was given back (the daemon is stopping): it is pending again.
    pub fn interrupted(&mut self, id: u64) {
        if let Some(item) = self.items.get_mut(&id) {
            if matches!(item.state, ItemState::Running | ItemState::Handed) {
                let new = ItemState::Pending { due_us: 0 };
                self.tally.moved(Some(item.state), Some(new));
                item.state = new;
            }
        }
    }

    /// The number the next queued record gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Every record, oldest first.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.items.values()
    }

    /// One record.
    pub fn get(&self, id: u64) -> Option<&Item> {
        self.items.get(&id)
    }

    /// Records pending or running (not failed).
    pub fn depth(&self) -> usize {
        self.items.len() - self.tally.failed
    }

    /// Records that may run without waiting for a retry time and are not
    /// handed to a runner yet.
    pub fn ready(&self) -> usize {
        self.items.len()
            - self.tally.failed
            - self.tally.running
            - self.tally.delayed
            - self.tally.handed
    }

    /// Records running.
    pub fn running(&self) -> usize {
        self.tally.running
    }

    /// Records failed.
    pub fn failed(&self) -> usize {
        self.tally.failed
    }

    /// When the oldest record not failed was queued.
    pub fn oldest_us(&self) -> Option<u64> {
        self.items
            .values()
            .find(|i| i.state != ItemState::Failed)
            .map(|i| i.queued_us)
    }

    /// The earliest retry time still ahead of `now_us`, to wake up for.
    pub fn next_due_us(&self, now_us: u64) -> Option<u64> {
        if self.tally.delayed == 0 {
            return None;
        }
        self.items
            .values()
            .filter_map(|i| match i.state {
                ItemState::Pending { due_us } if due_us > now_us => Some(due_us),
                _ => None,
            })
            .min()
    }

    /// The records that may start now, oldest first, at most `free`: due,
    /// and with no run going on nor an older record still to run for the
    /// same file.
    ///
    /// `serial` (one worker, which runs what it is handed one at a time in
    /// that order): the records to run next in upload order, after those
    /// running or handed over, which then hold no file; a record waiting
    /// for its retry still holds its file.
    pub fn next_runnable(&self, now_us: u64, free: usize, serial: bool) -> Vec<u64> {
        let mut out = Vec::new();
        if free == 0 {
            return out;
        }
        // Files with a run going on, or an older record still to run.
        let mut held: HashMap<&[u8], ()> = HashMap::new();
        for item in self.items.values() {
            match item.state {
                ItemState::Failed => continue,
                ItemState::Running | ItemState::Handed if serial => continue,
                ItemState::Running | ItemState::Handed => {}
                ItemState::Pending { due_us } => {
                    if due_us <= now_us && !held.contains_key(item.file.as_slice()) {
                        out.push(item.id);
                        if out.len() == free {
                            return out;
                        }
                        if serial {
                            continue;
                        }
                    }
                }
            }
            held.insert(item.file.as_slice(), ());
        }
        out
    }

    /// Checks an administrator's retry request.
    pub fn check_retry(&self, id: u64) -> Result<(), RequestError> {
        match self.items.get(&id) {
            None => Err(RequestError::NoSuchRecord(id)),
            Some(i) if i.state != ItemState::Failed => Err(RequestError::NotFailed(id)),
            Some(_) => Ok(()),
        }
    }

    /// Checks an administrator's drop request.
    pub fn check_drop(&self, id: u64) -> Result<(), RequestError> {
        match self.items.get(&id) {
            None => Err(RequestError::NoSuchRecord(id)),
            Some(_) => Ok(()),
        }
    }

    /// The entries that describe this queue from scratch (for a rewritten
    /// file): each record, and where it stands.
    pub fn snapshot(&self) -> Vec<Entry> {
        let mut out = Vec::with_capacity(self.items.len() * 2);
        for i in self.items.values() {
            out.push(Entry::Queued {
                id: i.id,
                at_us: i.queued_us,
                user: i.user.clone(),
                path: i.path.clone(),
                file: i.file.clone(),
            });
            // Each failure, the last one with the record's state; runs
            // without failures as started (pending again when replayed).
            for n in 1..=i.failures {
                let last = n == i.failures;
                out.push(match i.state {
                    ItemState::Failed if last => Entry::Failed {
                        id: i.id,
                        attempt: i.attempts,
                    },
                    ItemState::Pending { due_us } if last => Entry::RetryAt {
                        id: i.id,
                        attempt: i.attempts,
                        due_us,
                    },
                    _ => Entry::RetryAt {
                        id: i.id,
                        attempt: if last { i.attempts } else { n },
                        due_us: 0,
                    },
                });
            }
            if i.failures == 0 && i.attempts > 0 {
                out.push(Entry::Started {
                    id: i.id,
                    attempt: i.attempts,
                    at_us: 0,
                });
            }
        }
        // Keeps the numbering going past records already gone.
        let last = self.next_id.saturating_sub(1);
        if last > 0 && !self.items.contains_key(&last) {
            out.push(Entry::Finished { id: last });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(id: u64, file: &str) -> Entry {
        Entry::Queued {
            id,
            at_us: id * 10,
            user: b"u".to_vec(),
            path: file.as_bytes().to_vec(),
            file: file.as_bytes().to_vec(),
        }
    }

    fn started(id: u64, attempt: u32) -> Entry {
        Entry::Started {
            id,
            attempt,
            at_us: 0,
        }
    }

    #[test]
    fn one_job_runs_in_upload_order() {
        let mut q = Queue::replay(&[queued(1, "/a"), queued(2, "/b"), queued(3, "/a")]);
        assert_eq!(q.next_runnable(0, 1, false), [1]);
        q.apply(&started(1, 1));
        assert_eq!(q.next_runnable(0, 0, false), Vec::<u64>::new());
        q.apply(&Entry::Finished { id: 1 });
        assert_eq!(q.next_runnable(0, 1, false), [2]);
        assert_eq!(q.next_id(), 4);
    }

    #[test]
    fn a_record_handed_ahead_holds_its_file_and_shows_as_pending() {
        let mut q = Queue::replay(&[queued(1, "/a"), queued(2, "/a"), queued(3, "/b")]);
        q.apply(&started(1, 1));
        q.hand(3);
        // Record 2 waits for 1 (same file); 3 is handed, not chosen again.
        assert_eq!(q.next_runnable(0, 4, false), Vec::<u64>::new());
        assert_eq!(q.get(3).unwrap().state.as_str(), "pending");
        assert_eq!((q.depth(), q.running()), (3, 1));
        // Given back unstarted at a stop: pending, chosen again later.
        q.interrupted(3);
        assert_eq!(q.get(3).unwrap().state, ItemState::Pending { due_us: 0 });
        assert_eq!(q.next_runnable(0, 4, false), [3]);
        // Once it starts, the Started entry makes it running.
        q.hand(3);
        q.apply(&started(3, 1));
        assert_eq!(q.running(), 2);
        // Nothing handed is written: the file's queue has it as running.
        let replayed = Queue::replay(&q.snapshot());
        assert_eq!(replayed.get(3).unwrap().attempts, 1);
    }

    #[test]
    fn one_worker_is_handed_the_next_record_in_upload_order() {
        let mut q = Queue::replay(&[
            queued(1, "/f"),
            queued(2, "/f"),
            queued(3, "/g"),
            queued(4, "/f"),
        ]);
        assert_eq!(q.next_runnable(0, 2, true), [1, 2]);
        q.apply(&started(1, 1));
        // Record 2 (the same file) is next, not record 3.
        assert_eq!(q.next_runnable(0, 1, true), [2]);
        q.hand(2);
        assert_eq!(q.next_runnable(0, 1, true), [3]);
        // A record waiting for its retry holds its file, not the others.
        q.apply(&Entry::RetryAt {
            id: 1,
            attempt: 1,
            due_us: 100,
        });
        q.interrupted(2);
        assert_eq!(q.next_runnable(50, 2, true), [3]);
        assert_eq!(q.next_runnable(100, 2, true), [1, 2]);
    }

    #[test]
    fn one_file_never_runs_twice_at_once_nor_out_of_order() {
        let mut q = Queue::replay(&[
            queued(1, "/a"),
            queued(2, "/a"),
            queued(3, "/b"),
            queued(4, "/c"),
        ]);
        assert_eq!(q.next_runnable(0, 4, false), [1, 3, 4]);
        q.apply(&started(1, 1));
        q.apply(&started(3, 1));
        assert_eq!(q.next_runnable(0, 4, false), [4]);
        // A failed run waiting for its retry still holds the file.
        q.apply(&Entry::RetryAt {
            id: 1,
            attempt: 1,
            due_us: 100,
        });
        assert_eq!(q.next_runnable(50, 4, false), [4]);
        assert_eq!(q.next_due_us(50), Some(100));
        assert_eq!(q.next_runnable(100, 4, false), [1, 4]);
        // Once failed for good, the next upload of the file may run.
        q.apply(&Entry::Failed { id: 1, attempt: 2 });
        assert_eq!(q.next_runnable(100, 4, false), [2, 4]);
        assert_eq!((q.depth(), q.running(), q.failed()), (3, 1, 1));
    }

    #[test]
    fn interrupted_runs_are_pending_again_after_a_restart() {
        let q = Queue::replay(&[queued(1, "/a"), started(1, 1), queued(2, "/b")]);
        assert_eq!(q.get(1).unwrap().state, ItemState::Pending { due_us: 0 });
        assert_eq!(q.get(1).unwrap().attempts, 1);
        assert_eq!(q.next_runnable(0, 2, false), [1, 2]);
        assert_eq!(q.oldest_us(), Some(10));
    }

    #[test]
    fn requests_are_checked_and_applied() {
        let mut q = Queue::replay(&[
            queued(1, "/a"),
            started(1, 1),
            Entry::Failed { id: 1, attempt: 1 },
            queued(2, "/b"),
        ]);
        assert_eq!(q.check_retry(1), Ok(()));
        assert_eq!(q.check_retry(2), Err(RequestError::NotFailed(2)));
        assert_eq!(q.check_retry(9), Err(RequestError::NoSuchRecord(9)));
        assert_eq!(q.check_drop(9), Err(RequestError::NoSuchRecord(9)));
        q.apply(&Entry::Requeued { id: 1 });
        assert_eq!(q.get(1).unwrap().state, ItemState::Pending { due_us: 0 });
        assert_eq!(q.get(1).unwrap().failures, 0);
        q.apply(&Entry::Dropped { id: 2 });
        assert!(q.get(2).is_none());
        // Entries about records no longer there change nothing.
        q.apply(&Entry::Finished { id: 2 });
        q.apply(&started(2, 1));
        assert_eq!(q.items().count(), 1);
    }

    #[test]
    fn a_snapshot_rebuilds_the_same_queue() {
        let mut q = Queue::replay(&[
            queued(1, "/a"),
            started(1, 1),
            Entry::RetryAt {
                id: 1,
                attempt: 1,
                due_us: 70,
            },
            started(1, 2),
            Entry::RetryAt {
                id: 1,
                attempt: 2,
                due_us: 90,
            },
            queued(2, "/b"),
            started(2, 1),
            Entry::Failed { id: 2, attempt: 1 },
            queued(3, "/c"),
            started(3, 1),
            queued(4, "/d"),
            queued(5, "/e"),
            Entry::Finished { id: 5 },
        ]);
        // Rebuilt as a restarted daemon sees it.
        let again = Queue::replay(&q.snapshot());
        assert_eq!(again.items, q.items);
        assert_eq!(again.get(1).unwrap().failures, 2);
        // The next number survives too, when the newest record is gone.
        q.apply(&Entry::Finished { id: 4 });
        let again = Queue::replay(&q.snapshot());
        assert_eq!(again.items, q.items);
        assert_eq!(again.next_id(), 6);
    }

    /// The counts kept as records change, against a walk of the queue.
    fn assert_counts(q: &Queue) {
        let walk = |f: &dyn Fn(&Item) -> bool| q.items.values().filter(|i| f(i)).count();
        assert_eq!(q.running(), walk(&|i| i.state == ItemState::Running));
        assert_eq!(q.failed(), walk(&|i| i.state == ItemState::Failed));
        assert_eq!(q.depth(), walk(&|i| i.state != ItemState::Failed));
        assert_eq!(
            q.ready(),
            walk(&|i| i.state == ItemState::Pending { due_us: 0 })
        );
        let due = q
            .items
            .values()
            .filter_map(|i| match i.state {
                ItemState::Pending { due_us } if due_us > 5 => Some(due_us),
                _ => None,
            })
            .min();
        assert_eq!(q.next_due_us(5), due);
    }

    proptest::proptest! {
        #[test]
        fn counts_follow_every_change(steps in proptest::collection::vec((0u8..9, 1u64..6, 0u64..20), 0..80)) {
            let mut q = Queue::replay(&[]);
            for (kind, id, n) in steps {
                match kind {
                    0 => q.apply(&queued(id, if n % 2 == 0 { "/a" } else { "/b" })),
                    1 => q.apply(&started(id, n as u32)),
                    2 => q.apply(&Entry::RetryAt { id, attempt: 1, due_us: n }),
                    3 => q.apply(&Entry::Failed { id, attempt: 1 }),
                    4 => q.apply(&Entry::Requeued { id }),
                    5 => q.apply(&Entry::Finished { id }),
                    6 => q.apply(&Entry::Dropped { id }),
                    7 => q.hand(id),
                    _ => q.interrupted(id),
                }
                assert_counts(&q);
            }
            let again = Queue::replay(&q.snapshot());
            assert_counts(&again);
        }
    }
}
