//! Uploads: the pipe pure-ftpd writes one record per finished upload into,
//! and the daemon that runs the administrator's program on each file.
//!
//! [`pipe`] opens and parses the FIFO, [`program`] runs the program on one
//! file, [`hash`] names the checksum logged with it, [`audit`] logs one
//! structured event per record, [`metrics`] keeps and publishes the reader's
//! counters, [`settings`] turns the configuration files and command-line
//! overrides into checked settings, and [`daemon`] is the
//! `pure-uploadscript` start-up and main loop.
//!
//! Dependencies inside: `daemon` → `settings`, `audit`, `metrics`, `program`,
//! `pipe`; `settings` → `program`, `pipe`, `hash`; `audit` → `program`,
//! `pipe`, `hash`; `metrics` → `audit`, `program`; `program` → `hash`.
//! Outside: only [`crate::os`].

pub mod audit;
pub mod daemon;
pub mod debian;
pub mod hash;
pub mod limits;
pub mod lock;
pub mod metrics;
pub mod pipe;
pub mod program;
pub mod queue;
pub mod runner;
pub mod settings;
pub mod workers;
