//! `pure-ftpwho`: report the sessions of a running Pure-FTPd server.
//! Exit statuses are documented in `--help` and in
//! `pureftpd_systemd::cli::ftpwho`.

// A plain C `main`: the Rust runtime's start-up (stack guard lookup through
// /proc/self/maps, alternate signal stack, SIGPIPE juggling) is skipped, a
// noticeable share of a short run. `std::env::args_os` still works on
// Linux with glibc.
#![no_main]

use std::io::{self, Write};

use clap::error::ErrorKind;
use pureftpd_systemd::cli::ftpwho::{self as cli, Args, Exit};
use pureftpd_systemd::ftpwho::report::{Report, SessionBuilder};
use pureftpd_systemd::ftpwho::scoreboard::{Scoreboard, ScoreboardError};
use pureftpd_systemd::os::fs;

/// The C entry point.
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    // Die quietly on a closed pipe, as the C tool does.
    fs::default_sigpipe();
    let exit = match Args::parse_ordered(std::env::args_os()) {
        Ok(args) => run(&args),
        Err(err) => usage_error(err),
    };
    // Nothing flushes standard output at exit without the Rust runtime.
    let _ = io::stdout().flush();
    libc::c_int::from(exit.code())
}

/// Help and version exit 0; an unknown option prints the usage on standard
/// output and exits 0, as C's getopt loop does; a bad value exits 2.
fn usage_error(err: clap::Error) -> Exit {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            Exit::Ok
        }
        ErrorKind::UnknownArgument => {
            let _ = err.print();
            let _ = io::stdout().write_all(cli::C_USAGE.as_bytes());
            Exit::Ok
        }
        _ => {
            let _ = err.print();
            Exit::Usage
        }
    }
}

fn run(args: &Args) -> Exit {
    if args.usage {
        return match io::stdout().write_all(cli::C_USAGE.as_bytes()) {
            Ok(()) => Exit::Ok,
            Err(err) => output_error(err),
        };
    }
    if !may_read(args) {
        println!("You must be root to run this. Sorry.");
        return Exit::NotRoot;
    }
    let scoreboard = Scoreboard::with_options(&args.scoreboard, args.scan_options());
    if let Some(user) = &args.count {
        use std::os::unix::ffi::OsStrExt;
        return match scoreboard.count_sessions(user.as_bytes()) {
            Ok(n) => match writeln!(io::stdout(), "{n}") {
                Ok(()) => Exit::Ok,
                Err(err) => output_error(err),
            },
            Err(err) => no_scoreboard(&err),
        };
    }
    let (format, cgi_header) = args.format(std::env::var_os("GATEWAY_INTERFACE").is_some());
    let mut sessions = SessionBuilder::new(fs::unix_time(), args.numeric(), args.filter());
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    // Sessions are printed as they are read; the header comes with the
    // first one, so a missing directory prints nothing, as in C.
    let mut report = Report::new(format, &mut out).with_cgi_header(cgi_header);
    let mut write_error = None;
    let scanned = scoreboard.scan_each(|entry| {
        if write_error.is_none() {
            if let Some(session) = sessions.build(entry) {
                write_error = report.session(&session).err();
            }
        }
    });
    let notes = match scanned {
        Ok(notes) => notes,
        Err(err) => return no_scoreboard(&err),
    };
    for note in &notes {
        eprintln!("pure-ftpwho: {note}");
    }
    let written = match write_error {
        Some(err) => Err(err),
        None => report.finish(),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => Exit::Ok,
        Err(err) => output_error(err),
    }
}

/// Root may read; so may the owner of the scoreboard directory.
fn may_read(args: &Args) -> bool {
    use std::os::unix::fs::MetadataExt;
    let euid = nix::unistd::geteuid().as_raw();
    euid == 0
        || std::fs::metadata(&args.scoreboard)
            .map(|m| m.uid() == euid)
            .unwrap_or(false)
}

fn no_scoreboard(err: &ScoreboardError) -> Exit {
    let ScoreboardError::OpenDir { dir, .. } = err;
    let dir = dir.display().to_string();
    let dir = dir.trim_end_matches('/');
    eprint!(
        "Unable to open the ftpwho scoreboard.\n\
         Make sure that the [{dir}/] directory exists,\n\
         Or wait until a client connects, so that it gets\n\
         automatically created. This message doesn't mean that your\n\
         server didn't start properly. It probably just means that\n\
         you are running it with ftpwho for the first time.\n"
    );
    eprintln!("pure-ftpwho: {err}");
    Exit::NoScoreboard
}

fn output_error(err: io::Error) -> Exit {
    eprintln!("pure-ftpwho: cannot write the report: {err}");
    Exit::Output
}
