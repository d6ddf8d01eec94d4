//! The responder's bounds: connection slots, in all and per uid, and a
//! rate limit on the warnings it logs about refusals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a connection got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `max_connections` are being served.
    All(usize),
    /// This uid has `max_connections_per_user` being served.
    User(usize),
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Full::All(n) => write!(f, "{n} connections are being served; try again"),
            Full::User(n) => write!(
                f,
                "{n} connections of this user are being served; try again"
            ),
        }
    }
}

#[derive(Debug, Default)]
struct Taken {
    all: usize,
    per_uid: HashMap<u32, usize>,
}

/// Connection slots: at most `max` in all, at most `per_user` for one uid
/// other than root.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    per_user: usize,
    taken: Mutex<Taken>,
}

/// A slot, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    uid: u32,
}

impl Slots {
    /// Slots for `max` connections, `per_user` of one uid.
    pub fn new(max: usize, per_user: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max,
            per_user,
            taken: Mutex::new(Taken::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Taken> {
        self.taken.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a connection of `uid`, unless the bounds are reached.
    pub fn take(self: &Arc<Slots>, uid: u32) -> Result<Slot, Full> {
        let mut taken = self.lock();
        if taken.all >= self.max {
            return Err(Full::All(self.max));
        }
        let mine = taken.per_uid.get(&uid).copied().unwrap_or(0);
        if uid != 0 && mine >= self.per_user {
            return Err(Full::User(self.per_user));
        }
        taken.all += 1;
        *taken.per_uid.entry(uid).or_insert(0) += 1;
        Ok(Slot {
            slots: Arc::clone(self),
            uid,
        })
    }

    /// Slots in use.
    pub fn in_use(&self) -> usize {
        self.lock().all
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self.slots.lock();
        taken.all -= 1;
        if let Some(n) = taken.per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                taken.per_uid.remove(&self.uid);
            }
        }
    }
}

/// At most `burst` messages per `window`; the others are counted, and the
/// count is told with the next message let through (or by
/// [`flush`](LogLimit::flush) once the window is over).
#[derive(Debug)]
pub struct LogLimit {
    burst: u32,
    window: Duration,
    state: Mutex<(Instant, u32, u64)>,
}

impl LogLimit {
    /// A limit of `burst` messages per `window`.
    pub fn new(burst: u32, window: Duration) -> LogLimit {
        LogLimit {
            burst,
            window,
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// `Some(suppressed so far)` when a message may be logged now (the
    /// count is then reset), `None` when it is to be suppressed.
    pub fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.duration_since(state.0) >= self.window {
            state.0 = now;
            state.1 = 0;
        }
        if state.1 < self.burst {
            state.1 += 1;
            Some(std::mem::take(&mut state.2))
        } else {
            state.2 += 1;
            None
        }
    }

    /// The count of suppressed messages, once their window is over (then
    /// reset), so that it is told even when no message follows.
    pub fn flush(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.2 > 0 && state.0.elapsed() >= self.window {
            Some(std::mem::take(&mut state.2))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_in_all_and_per_user_but_not_for_root() {
        let slots = Slots::new(4, 2);
        let a = slots.take(1000).unwrap();
        let _b = slots.take(1000).unwrap();
        assert_eq!(slots.take(1000).unwrap_err(), Full::User(2));
        let _c = slots.take(1001).unwrap();
        let _root = slots.take(0).unwrap();
        assert_eq!(slots.in_use(), 4);
        assert_eq!(slots.take(0).unwrap_err(), Full::All(4));
        drop(a);
        let _d = slots.take(1000).unwrap();
        assert_eq!(slots.take(1002).unwrap_err(), Full::All(4));
    }

    #[test]
    fn messages_past_the_burst_are_counted_and_told() {
        let limit = LogLimit::new(3, Duration::from_millis(200));
        let admitted: Vec<Option<u64>> = (0..10).map(|_| limit.admit()).collect();
        assert_eq!(admitted[..3], [Some(0), Some(0), Some(0)]);
        assert!(admitted[3..].iter().all(Option::is_none));
        assert_eq!(limit.flush(), None, "the window is not over");
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(limit.flush(), Some(7));
        assert_eq!(limit.flush(), None);
        assert_eq!(limit.admit(), Some(0));
    }
}
