//! `pure-uploadscript`: runs a program on every file uploaded to pure-ftpd.
//! See `pure-uploadscript --help` for options and exit statuses.

use std::fmt::Display;
use std::process::ExitCode;

use clap::Parser;
use pureftpd_systemd::cli::queue;
use pureftpd_systemd::cli::uploadscript::{run_instance_line, Args, Command, ExitStatus};
use pureftpd_systemd::os::journal;
use pureftpd_systemd::upload::daemon;
use pureftpd_systemd::upload::limits::Profile;
use pureftpd_systemd::upload::runner::instance;
use pureftpd_systemd::upload::settings::{Inputs, Settings};

fn fail(error: &dyn Display, status: ExitStatus) -> ExitStatus {
    eprintln!("pure-uploadscript: {error}");
    status
}

/// One run, for pure-uploadscript-run@.service.
fn serve_instance(profile: Profile) -> ExitCode {
    journal::init_on_first_event("pure-uploadscript-run", false);
    let status = match instance::serve(profile) {
        Ok(()) => ExitStatus::Ok,
        Err(e) => {
            tracing::error!("{e}");
            fail(&e, ExitStatus::Runtime)
        }
    };
    status.into()
}

fn main() -> ExitCode {
    if let Some(profile) = run_instance_line(std::env::args_os()) {
        return serve_instance(profile);
    }
    let args = Args::parse();
    if let Some(profile) = args.run_instance {
        return serve_instance(profile);
    }
    journal::init("pure-uploadscript", journal::choose_sink(true), false);
    if let Some(Command::Queue(command)) = args.command.clone() {
        // The queue's directory comes from the configuration too.
        let status = match Inputs::read(args.into()) {
            Err(e) => fail(&e, ExitStatus::Usage),
            Ok(inputs) => match queue::run(&command, &inputs.state_dir, &mut std::io::stdout()) {
                Ok(()) => ExitStatus::Ok,
                Err(e) => fail(&e, ExitStatus::from(&e)),
            },
        };
        return status.into();
    }
    let status = match Settings::resolve(args.into()) {
        Err(e) => fail(&e, ExitStatus::from(&e)),
        Ok(settings) => match daemon::run(settings) {
            Ok(()) => ExitStatus::Ok,
            Err(e) => fail(&e, ExitStatus::from(&e)),
        },
    };
    status.into()
}
