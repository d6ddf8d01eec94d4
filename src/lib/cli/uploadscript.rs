//! `pure-uploadscript`: the C tool's options (`-B -g -h -p -r -u` and their
//! long forms), and more.

use std::path::PathBuf;

use clap::Parser;

use crate::upload::limits::{Isolation, Profile};
use crate::upload::settings::{Hash, Id, Timeout};

/// Exit status: stopped by `SIGTERM`, `SIGINT` or `SIGHUP`; also `-h`, and
/// the parent after `-B`.
pub const EXIT_OK: u8 = 0;
/// Exit status: the pipe could not be read any more.
pub const EXIT_RUNTIME: u8 = 1;
/// Exit status: invalid option or configuration, or an unusable program.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the upload pipe cannot be opened or created, or is insecure.
pub const EXIT_PIPE: u8 = 3;
/// Exit status: the uid/gid cannot be switched to, or a pid file given
/// with `-p` cannot be written.
pub const EXIT_IDENTITY: u8 = 4;

const AFTER_HELP: &str = "\
The program is run once per uploaded file, in upload order, with the file
name as its only argument, standard input and outputs on /dev/null, / as
working directory, and these variables:
  UPLOAD_SIZE    size in bytes
  UPLOAD_PERMS   permission bits, in octal
  UPLOAD_UID     owner's uid;  UPLOAD_USER  its name (left out if unknown)
  UPLOAD_GID     group's gid;  UPLOAD_GROUP its name (left out if unknown)
  UPLOAD_VUSER   the FTP (virtual) user (left out if empty)
  UPLOAD_FD      3: descriptor 3 is the checked file, open read-only
plus PATH=/usr/sbin:/usr/bin:/sbin:/bin and LANG (the daemon's whole
environment with --keep-env). Only regular files are processed, not
symbolic links, directories or devices.

Configuration: /etc/pure-uploadscript.toml if it exists, then
/etc/pure-uploadscript.d/*.toml in name order. --config FILE replaces the
first and must exist; FILE's .d directory, if any, replaces the second.
Keys: run, uid, gid, pipe, pidfile, daemonize, timeout, hash, keep_env,
capture_output, vhost_dir (where IP:/path names are mapped, default
/etc/pure-ftpd/pure-ftpd), isolation, profile, memory_max, cpu_quota,
tasks_max (see below). Options given here win.

Under systemd, when pure-uploadscript-run.socket listens, each run is a
unit of its own (isolation = \"unit\"): pure-uploadscript-run@.service
takes the program, uid, gid, timeout, hash, keep_env, capture_output and
the limits memory_max, cpu_quota, tasks_max from the configuration files
(not from this command line: -r, -u, -g, --timeout, --hash, --keep-env or
--capture-output given here mean isolation = \"process\"); profile =
\"strict\" runs it read-only, without network or capabilities.

Under systemd (NOTIFY_SOCKET set, or INVOCATION_ID with systemd as the
parent) the daemon stays in the
foreground (-B is ignored), writes no pid file unless -p is given, sends
READY=1, STATUS= and WATCHDOG=1, keeps the pipe in the file descriptor
store as \"upload-pipe\" and takes it back, or a ListenFIFO= of a .socket
unit, from LISTEN_FDS. Each upload is logged with MESSAGE_ID and UPLOAD_*,
SCRIPT_* fields (journalctl UPLOAD_VUSER=alice).

Exit status:
  0  stopped by SIGTERM, SIGINT or SIGHUP (after the running program
     ends or times out); also -h, and the parent process with -B
  1  the upload pipe could not be read any more
  2  invalid option or configuration, or a --config FILE that does not
     exist; the program is missing, not absolute or not executable
  3  the upload pipe cannot be opened or created, or is insecure
     (not a FIFO, mode not 0600, owner not root or the effective user)
  4  the uid/gid cannot be switched to, or the -p pid file cannot be
     written";

/// Runs a program on every file uploaded to pure-ftpd (started with `-o`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pure-uploadscript",
    version,
    about = "Run a program on every file uploaded to pure-ftpd",
    long_about = "Reads the records pure-ftpd (started with -o) writes into its upload \
                  pipe, and runs a program on each uploaded file.",
    after_help = AFTER_HELP,
    args_override_self = true
)]
pub struct Args {
    /// Fork into the background and detach (ignored under systemd)
    #[arg(short = 'B', long)]
    pub daemonize: bool,

    /// Group to run as, by number or name [default: 0 when run as root, or
    /// the primary group of a -u given by name]
    #[arg(short, long, value_name = "GID")]
    pub gid: Option<Id>,

    /// Write the daemon's pid into FILE [default outside systemd:
    /// /var/run/pure-uploadscript.pid]
    #[arg(short, long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,

    /// Program to run on each uploaded file (absolute path)
    #[arg(short, long, value_name = "PROGRAM")]
    pub run: Option<PathBuf>,

    /// User to run as, by number or name [default: 0 when run as root]
    #[arg(short, long, value_name = "UID")]
    pub uid: Option<Id>,

    /// The upload pipe [default: /var/run/pure-ftpd.upload.pipe]; created
    /// (mode 0600) if missing
    #[arg(long, value_name = "PATH")]
    pub pipe: Option<PathBuf>,

    /// Configuration file, which must exist [default:
    /// /etc/pure-uploadscript.toml, read if it exists]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Kill the program's process group after DURATION (600, 90s, 10min,
    /// 1h; 0 for no limit) [default: 10min]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<Timeout>,

    /// Pass the daemon's environment to the program (the C tool's
    /// behaviour) instead of a clean one
    #[arg(long)]
    pub keep_env: bool,

    /// Capture the program's standard output and error and log their end
    #[arg(long)]
    pub capture_output: bool,

    /// Log a checksum of each file [default: none]
    #[arg(long, value_name = "ALGORITHM")]
    pub hash: Option<Hash>,

    /// Run the program in a unit of its own per upload, or as a child
    /// process [default: unit under systemd when pure-uploadscript-run.socket
    /// listens, process otherwise]
    #[arg(long, value_name = "WHERE")]
    pub isolation: Option<Isolation>,

    /// Serve one run for pure-uploadscript-run@.service (internal)
    #[arg(long, value_name = "PROFILE", hide = true)]
    pub run_instance: Option<Profile>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_c_options_are_there() {
        Args::command().debug_assert();
        let a = Args::try_parse_from([
            "pure-uploadscript",
            "-B",
            "-g",
            "65534",
            "-p",
            "/run/p.pid",
            "-r",
            "/bin/true",
            "-u",
            "nobody",
        ])
        .unwrap();
        assert!(a.daemonize);
        assert_eq!(a.gid, Some(Id::Number(65534)));
        assert_eq!(a.uid, Some(Id::Name("nobody".into())));
        assert_eq!(a.pidfile, Some("/run/p.pid".into()));
        assert_eq!(a.run, Some("/bin/true".into()));
        let a = Args::try_parse_from([
            "x",
            "--daemonize",
            "--gid=1",
            "--pidfile=/p",
            "--run=/r",
            "--uid=2",
            "--pipe=/f",
            "--config=/c.toml",
            "--timeout=90s",
            "--keep-env",
            "--capture-output",
            "--hash=sha256",
        ])
        .unwrap();
        assert_eq!(
            a.timeout,
            Some(Timeout(Some(std::time::Duration::from_secs(90))))
        );
        assert_eq!(a.hash, Some(Hash::Sha256));
        assert!(a.keep_env && a.capture_output && a.daemonize);
    }

    #[test]
    fn help_describes_every_option_and_key() {
        let help = Args::command().render_long_help().to_string();
        for opt in [
            "-B, --daemonize",
            "-g, --gid",
            "-h, --help",
            "-p, --pidfile",
            "-r, --run",
            "-u, --uid",
            "--pipe",
            "--config",
            "--timeout",
            "--keep-env",
            "--capture-output",
            "--hash",
            "--isolation",
        ] {
            assert!(help.contains(opt), "{opt} missing");
        }
        for (key, _, _) in crate::upload::settings::KEYS {
            assert!(help.contains(key), "config key {key} missing");
        }
        for code in [EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_PIPE, EXIT_IDENTITY] {
            assert!(
                help.contains(&format!("\n  {code}  ")),
                "exit status {code} missing"
            );
        }
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["x", "--timeout", "soon"][..],
            &["x", "--hash", "md5"],
            &["x", "-u", ""],
            &["x", "--bogus"],
        ] {
            let e = Args::try_parse_from(args).unwrap_err();
            assert_eq!(e.exit_code(), EXIT_USAGE as i32, "{args:?}");
        }
    }
}
