//! Command-line definitions of the binaries (clap derive), shared with
//! the generators of man pages and shell completions.

pub mod exporter;
pub mod ftpwho;
pub mod ftpwhod;
pub mod query;
pub mod uploadscript;
