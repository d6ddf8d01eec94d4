//! Uploads: the pipe pure-ftpd writes one record per finished upload into,
//! and the daemon that runs the administrator's program on each file.
//!
//! [`pipe`] opens and parses the FIFO, [`program`] runs the program on one
//! file, [`audit`] logs one structured event per record, [`metrics`] keeps
//! and publishes the reader's counters, [`daemon`] is the
//! `pure-uploadscript` main loop and [`settings`] its configuration.

pub mod audit;
pub mod daemon;
pub mod metrics;
pub mod pipe;
pub mod program;
pub mod settings;
