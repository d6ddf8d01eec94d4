//! `pure-uploadscript`: runs a program on every file uploaded to pure-ftpd.
//! See `pure-uploadscript --help` for options and exit statuses.

use std::process::ExitCode;

use clap::Parser;
use pureftpd_systemd::cli::uploadscript::{Args, EXIT_OK};
use pureftpd_systemd::os::journal;
use pureftpd_systemd::upload::daemon as upload_daemon;

fn main() -> ExitCode {
    let args = Args::parse();
    journal::init("pure-uploadscript", journal::choose_sink(true), false);
    match upload_daemon::Settings::resolve(args).and_then(upload_daemon::run) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("pure-uploadscript: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
