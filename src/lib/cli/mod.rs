//! Command-line definitions of the binaries (clap derive), shared with
//! the generators of man pages and shell completions, and their exit
//! statuses (for `pure-ftpwho`, `ftpwhod`, `ftpwho-query` and
//! `pureftpd-exporter`, an `Exit` enum each), decided here and in `src/bin`, never by the library below.

pub mod exporter;
pub mod format;
pub mod ftpwho;
pub mod ftpwhod;
pub mod query;
pub mod queue;
pub mod uploadscript;
