//! The durable upload queue (`docs/upload-queue.md`): the reader takes a
//! record out of the pipe only once it is in the queue file, synced; the
//! runs are scheduled from the queue, retried, and kept as failed when
//! their retries are exhausted.
//!
//! - [`format`](mod@format): the file's bytes, versioned, checked frame by frame;
//! - [`state`]: the queue in memory and what runs next;
//! - [`store`]: the file in its directory, shared with `queue list`,
//!   `queue retry` and `queue drop`.
//!
//! Each change of a record's state is one journal event; the `MESSAGE_ID`s
//! are in [`message_ids`] (the end of a run is the audit event, with
//! `QUEUE_STATE`).

pub mod format;
pub mod state;
pub mod store;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `MESSAGE_ID`s of the queue's events; the journal catalog describes
/// each.
pub mod message_ids {
    /// A record was taken from the pipe into the queue.
    pub const QUEUED: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a80";
    /// A run of the program started.
    pub const STARTED: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a81";
    /// An administrator asked for a failed record to run again.
    pub const REQUEUED: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a82";
    /// An administrator dropped a record from the queue.
    pub const DROPPED: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a83";
    /// A damaged queue file was set aside at start.
    pub const SET_ASIDE: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a84";
    /// The queue cannot be written (a full disk): records stay in the pipe.
    pub const INTAKE_STOPPED: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a85";
    /// The queue can be written again.
    pub const INTAKE_RESUMED: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a86";
    /// Records found in the queue at start (runs that were going on are
    /// pending again).
    pub const RESUMED: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a87";
    /// A run was cut short by the reader's own stop: the record runs again
    /// at the next start.
    pub const INTERRUPTED: &str = "5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a88";
}

/// Microseconds since the epoch, the queue's clock.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The time from `from_us` to `to_us` (zero if the clock went back).
pub fn between(from_us: u64, to_us: u64) -> Duration {
    Duration::from_micros(to_us.saturating_sub(from_us))
}

/// The delay before retry number `retry` (from 1): `first`, doubled each
/// time, at most `cap`.
pub fn backoff(first: Duration, cap: Duration, retry: u32) -> Duration {
    let factor = 1u32
        .checked_shl(retry.saturating_sub(1))
        .unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_its_cap() {
        let s = Duration::from_secs;
        let delays: Vec<_> = (1..=6).map(|n| backoff(s(10), s(60), n)).collect();
        assert_eq!(delays, [s(10), s(20), s(40), s(60), s(60), s(60)]);
        assert_eq!(backoff(s(10), s(3600), 200), s(3600));
        assert_eq!(between(5, 3), Duration::ZERO);
    }
}
