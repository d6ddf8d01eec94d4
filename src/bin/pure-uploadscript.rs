//! `pure-uploadscript`: runs a program on every file uploaded to pure-ftpd.
//! See `pure-uploadscript --help` for options and exit statuses.

use std::fmt::Display;
use std::process::ExitCode;

use clap::Parser;
use pureftpd_systemd::cli::uploadscript::{Args, ExitStatus};
use pureftpd_systemd::os::journal;
use pureftpd_systemd::upload::daemon;
use pureftpd_systemd::upload::runner::instance;
use pureftpd_systemd::upload::settings::Settings;

fn fail(error: &dyn Display, status: ExitStatus) -> ExitStatus {
    eprintln!("pure-uploadscript: {error}");
    status
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(profile) = args.run_instance {
        // One run, for pure-uploadscript-run@.service.
        journal::init("pure-uploadscript-run", journal::choose_sink(true), false);
        let status = match instance::serve(profile) {
            Ok(()) => ExitStatus::Ok,
            Err(e) => {
                tracing::error!("{e}");
                fail(&e, ExitStatus::Runtime)
            }
        };
        return status.into();
    }
    journal::init("pure-uploadscript", journal::choose_sink(true), false);
    let status = match Settings::resolve(args.into()) {
        Err(e) => fail(&e, ExitStatus::from(&e)),
        Ok(settings) => match daemon::run(settings) {
            Ok(()) => ExitStatus::Ok,
            Err(e) => fail(&e, ExitStatus::from(&e)),
        },
    };
    status.into()
}
