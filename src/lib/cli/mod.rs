//! Command-line definitions of every binary (clap derive), shared with the
//! man page and shell completion generator.

pub mod ftpwhod;
pub mod query;
