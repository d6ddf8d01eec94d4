//! Host names for the responder's answers, found in bounded time.
//!
//! `getnameinfo` cannot be interrupted, and an unreachable name server
//! makes each call last many seconds. The responder therefore never calls
//! it on a thread that serves clients: a small fixed pool of resolver
//! threads does, with a bounded queue; an answer waits for its names until
//! its deadline (or until its client is gone), and prints the addresses
//! still unresolved numerically, as `getnameinfo` callers fall back to
//! them. Answers found are remembered for a minute, so that the next
//! answers do not wait for them again; lookups whose answer nobody waits
//! for any more are dropped from the queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::ftpwho::report::{HostNames, Lookup, Names};

/// Resolver threads.
const THREADS: usize = 4;
/// Lookups queued at most; past this, addresses are printed numerically.
const QUEUE: usize = 1024;
/// How long an answer is remembered.
const REMEMBER: Duration = Duration::from_secs(60);
/// Answers remembered at most.
const CACHE: usize = 16_384;

/// The lookups of one answer, and what was found for them.
struct Batch {
    found: Mutex<HashMap<Lookup, Names>>,
    done: Condvar,
    /// Nobody waits for this batch any more.
    abandoned: AtomicBool,
}

#[derive(Default)]
struct Queue {
    tasks: VecDeque<(Lookup, Arc<Batch>)>,
    /// Lookups queued or running, so that one address is asked once.
    pending: HashMap<Lookup, Vec<Arc<Batch>>>,
}

struct Inner {
    queue: Mutex<Queue>,
    ready: Condvar,
    cache: Mutex<HashMap<Lookup, (Names, Instant)>>,
}

/// The resolver pool.
pub struct NamePool {
    inner: Arc<Inner>,
}

impl Default for NamePool {
    fn default() -> Self {
        NamePool::new()
    }
}

impl NamePool {
    /// Starts the resolver threads (they live as long as the process).
    pub fn new() -> NamePool {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            cache: Mutex::new(HashMap::new()),
        });
        for _ in 0..THREADS {
            let inner = Arc::clone(&inner);
            let _ = std::thread::Builder::new()
                .name("ftpwhod-names".into())
                .stack_size(256 * 1024)
                .spawn(move || resolve_forever(&inner));
        }
        NamePool { inner }
    }

    /// The names of `lookups`, waiting at most until `deadline`, and not
    /// after `gone()` says the client left; the others are left out (the
    /// report prints them numerically).
    pub fn names(
        &self,
        lookups: impl IntoIterator<Item = Lookup>,
        deadline: Instant,
        gone: &mut dyn FnMut() -> bool,
    ) -> HostNames {
        let batch = Arc::new(Batch {
            found: Mutex::new(HashMap::new()),
            done: Condvar::new(),
            abandoned: AtomicBool::new(false),
        });
        let mut known = HashMap::new();
        let mut asked = 0usize;
        {
            let now = Instant::now();
            let cache = lock(&self.inner.cache);
            let mut queue = lock(&self.inner.queue);
            for lookup in lookups {
                if known.contains_key(&lookup) {
                    continue;
                }
                match cache.get(&lookup) {
                    Some((names, at)) if now.duration_since(*at) < REMEMBER => {
                        known.insert(lookup, names.clone());
                        continue;
                    }
                    _ => {}
                }
                // Marked as asked (numeric unless an answer comes).
                known.insert(lookup, None);
                if let Some(waiting) = queue.pending.get_mut(&lookup) {
                    waiting.push(Arc::clone(&batch));
                    asked += 1;
                } else if queue.tasks.len() < QUEUE {
                    queue.pending.insert(lookup, vec![Arc::clone(&batch)]);
                    queue.tasks.push_back((lookup, Arc::clone(&batch)));
                    asked += 1;
                }
            }
        }
        known.retain(|_, names| names.is_some());
        if asked > 0 {
            self.inner.ready.notify_all();
            let mut found = lock(&batch.found);
            loop {
                if found.len() >= asked || gone() {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                // Wake now and then to see whether the client is gone.
                let wait = (deadline - now).min(Duration::from_millis(50));
                found = batch
                    .done
                    .wait_timeout(found, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            batch.abandoned.store(true, Ordering::Relaxed);
            known.extend(found.drain());
        }
        HostNames(known)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn resolve_forever(inner: &Inner) {
    loop {
        let lookup = {
            let mut queue = lock(&inner.queue);
            loop {
                match queue.tasks.pop_front() {
                    Some((lookup, _)) => {
                        // Dropped when every batch waiting for it is gone.
                        let wanted = queue.pending.get(&lookup).is_some_and(|batches| {
                            batches.iter().any(|b| !b.abandoned.load(Ordering::Relaxed))
                        });
                        if wanted {
                            break lookup;
                        }
                        queue.pending.remove(&lookup);
                    }
                    None => {
                        queue = inner.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
                    }
                }
            }
        };
        let names = lookup.resolve();
        {
            let mut cache = lock(&inner.cache);
            if cache.len() >= CACHE {
                cache.clear();
            }
            cache.insert(lookup, (names.clone(), Instant::now()));
        }
        let batches = lock(&inner.queue)
            .pending
            .remove(&lookup)
            .unwrap_or_default();
        for batch in batches {
            lock(&batch.found).insert(lookup, names.clone());
            batch.done.notify_all();
        }
    }
}
