//! Who is online: Pure-FTPd's session scoreboard and everything that shows it.
//!
//! [`scoreboard`] reads the per-session files the server keeps, [`report`]
//! renders them in every format of the C `pure-ftpwho` (plus JSON and
//! OpenMetrics), [`query`] is the socket-activated responder and its client,
//! and [`settings`] the responder's configuration.

pub mod query;
pub mod report;
pub mod scoreboard;
pub mod settings;
