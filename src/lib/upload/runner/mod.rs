//! Each run of the program in a systemd unit of its own.
//!
//! `pure-uploadscript-run.socket` (and `-strict.socket`) listen on a
//! root-only `SOCK_SEQPACKET` socket with `Accept=yes`; every connection
//! starts one `pure-uploadscript-run@.service` instance, which is this
//! binary with `--run-instance PROFILE`. The reader ([`client`]) checks the
//! file as in process mode, connects once per record, sends the record, what
//! it saw of the file and the file's descriptor ([`wire`]), and waits for the
//! answer while its own loop goes on. The instance ([`instance`]) reads the
//! program, identity, timeout and limits from its own configuration, runs the
//! program in a sub-cgroup of its unit with the same argv, `UPLOAD_*`
//! variables and `UPLOAD_FD=3` as in process mode, logs the program's output
//! lines to the journal with the upload's fields, and answers with the
//! outcome, CPU time and peak memory.

pub mod client;
pub mod instance;
pub mod wire;

use crate::upload::limits::{Isolation, Profile};

/// Decides where the program runs: `configured` when set, else in a unit
/// under systemd when the run socket of `profile` exists and the command
/// line does not set the program or its settings
/// (`command_line_sets_the_run`: a unit takes them from the configuration
/// files only).
pub fn isolation(
    configured: Option<Isolation>,
    command_line_sets_the_run: bool,
    profile: Profile,
    under_systemd: bool,
) -> Result<Isolation, String> {
    match configured {
        Some(Isolation::Unit) if command_line_sets_the_run => Err(
            "isolation = \"unit\" takes the program and its settings from the configuration \
             files only: -r, -u, -g, --timeout, --hash, --keep-env and --capture-output \
             need isolation = \"process\""
                .into(),
        ),
        Some(isolation) => Ok(isolation),
        None if under_systemd
            && !command_line_sets_the_run
            && std::path::Path::new(profile.socket()).exists() =>
        {
            Ok(Isolation::Unit)
        }
        None => Ok(Isolation::Process),
    }
}
