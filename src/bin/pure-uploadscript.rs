//! `pure-uploadscript`: runs a program on every file uploaded to pure-ftpd.
//! See `pure-uploadscript --help` for options and exit statuses.

use std::process::ExitCode;

use clap::Parser;
use pureftpd_systemd::cli::uploadscript::{Args, EXIT_OK, EXIT_RUNTIME};
use pureftpd_systemd::os::journal;
use pureftpd_systemd::upload::daemon as upload_daemon;
use pureftpd_systemd::upload::runner::instance;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(profile) = args.run_instance {
        // One run, for pure-uploadscript-run@.service.
        journal::init("pure-uploadscript-run", journal::choose_sink(true), false);
        return match instance::serve(profile) {
            Ok(()) => ExitCode::from(EXIT_OK),
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("pure-uploadscript: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        };
    }
    journal::init("pure-uploadscript", journal::choose_sink(true), false);
    match upload_daemon::Settings::resolve(args).and_then(upload_daemon::run) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("pure-uploadscript: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
