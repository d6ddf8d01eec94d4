//! Pure-FTPd's session scoreboard and upload pipe, for systemd.
//!
//! This library is shared by every binary of the project:
//! `pure-ftpwho` and `ftpwhod` read the [`scoreboard`] and render it with
//! [`report`]; `pure-uploadscript` ([`upload_daemon`]) parses the
//! [`upload_pipe`], runs the administrator's program through [`hook`] and
//! logs each upload through [`audit`]; the daemons talk to systemd through
//! [`systemd`] and log through [`journal`]; [`config`] and [`cli`] hold
//! their settings.
#![deny(missing_docs)]

pub mod audit;
pub mod cli;
pub mod config;
pub mod hook;
pub mod journal;
pub mod query;
pub mod report;
pub mod scoreboard;
pub mod systemd;
pub mod upload_daemon;
pub mod upload_pipe;
