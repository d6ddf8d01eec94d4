//! Pure-FTPd's session scoreboard and upload pipe, for systemd.
//!
//! This library is shared by every binary of the project and grouped by
//! what it serves:
//! - [`ftpwho`]: who is online (the scoreboard, its formats, the
//!   responder and its client), for `pure-ftpwho`, `ftpwhod` and
//!   `ftpwho-query`;
//! - [`upload`]: the upload pipe, the program runner, the audit and the
//!   daemon, for `pure-uploadscript`;
//! - [`metrics`]: Prometheus metrics of both over HTTP, for
//!   `pureftpd-exporter` (reads `ftpwho` and `upload`; nothing depends on it);
//! - [`os`]: systemd and operating-system plumbing both sides use;
//! - [`cli`]: the binaries' command lines and exit statuses, on top.
//!
//! Dependencies point one way: `cli` → `ftpwho`, `upload` → `os`.
#![deny(missing_docs)]

pub mod cli;
pub mod ftpwho;
pub mod metrics;
pub mod os;
pub mod upload;
