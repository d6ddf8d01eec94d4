//! `pure-uploadscript`: the C tool's options (`-B -g -h -p -r -u` and their
//! long forms), and more.

use std::path::PathBuf;

use clap::Parser;

use crate::upload::daemon::DaemonError;
use crate::upload::hash::Hash;
use crate::upload::limits::{Isolation, Profile};
use crate::upload::settings::{Id, Overrides, SettingsError, Timeout, UploadscriptConfig};

/// `pure-uploadscript`'s exit statuses (listed in `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Stopped by `SIGTERM`, `SIGINT` or `SIGHUP`; also `-h`, and the
    /// parent after `-B`.
    Ok = 0,
    /// The pipe could not be read any more.
    Runtime = 1,
    /// Invalid option or configuration, or an unusable program.
    Usage = 2,
    /// The upload pipe cannot be opened or created, or is insecure.
    Pipe = 3,
    /// The uid/gid cannot be switched to, or a pid file given with `-p`
    /// cannot be written.
    Identity = 4,
}

impl ExitStatus {
    /// Every status, in order.
    pub const ALL: [ExitStatus; 5] = [
        ExitStatus::Ok,
        ExitStatus::Runtime,
        ExitStatus::Usage,
        ExitStatus::Pipe,
        ExitStatus::Identity,
    ];

    /// The number the process exits with.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

impl From<&SettingsError> for ExitStatus {
    /// Every settings error is a usage error: the configuration, an option
    /// or the program named is wrong.
    fn from(error: &SettingsError) -> Self {
        match error {
            SettingsError::Config(_)
            | SettingsError::NoProgram
            | SettingsError::Program(_)
            | SettingsError::UnknownUser(_)
            | SettingsError::UnknownGroup(_)
            | SettingsError::Lookup { .. }
            | SettingsError::Isolation(_)
            | SettingsError::Path { .. } => ExitStatus::Usage,
        }
    }
}

impl From<&DaemonError> for ExitStatus {
    fn from(error: &DaemonError) -> Self {
        match error {
            DaemonError::Program(_) => ExitStatus::Usage,
            DaemonError::Pipe(_) | DaemonError::Lock(_) => ExitStatus::Pipe,
            DaemonError::Identity(_) | DaemonError::PidFile { .. } => ExitStatus::Identity,
            DaemonError::ListenFds(_)
            | DaemonError::Fork(_)
            | DaemonError::CloseOnExec(_)
            | DaemonError::Signals(_)
            | DaemonError::Chdir(_)
            | DaemonError::Runner(_)
            | DaemonError::ReadPipe(_)
            | DaemonError::Poll(_)
            | DaemonError::Queue(_)
            | DaemonError::StateDir { .. } => ExitStatus::Runtime,
        }
    }
}

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
/etc/pure-uploadscript.d/*.toml in name order (names starting with a dot
are left out). --config FILE replaces the first and must exist; FILE's .d
directory, if any, replaces the second. Each must be a regular file (or a
link to one) of at most 1 MiB.
Keys: run, uid, gid, pipe, pidfile, daemonize, timeout, hash, keep_env,
capture_output, vhost_dir (where IP:/path names are mapped, default
/etc/pure-ftpd/pure-ftpd), isolation, profile, memory_max, cpu_quota,
tasks_max (see below), state_dir, jobs, retries, retry_delay,
retry_delay_max (the queue, below). Options given here win.

Under systemd, when pure-uploadscript-run.socket listens, each run is a
unit of its own (isolation = \"unit\"): pure-uploadscript-run@.service
takes the program, uid, gid, timeout, hash, keep_env, capture_output and
the limits memory_max, cpu_quota, tasks_max from the configuration files
(not from this command line: -r, -u, -g, --timeout, --hash, --keep-env or
--capture-output given here mean isolation = \"process\"); profile =
\"strict\" runs it read-only, without network or capabilities.

Each record is written (and synced) to the upload queue in state_dir
(default $STATE_DIRECTORY under systemd, else /var/lib/pure-uploadscript)
before it leaves the pipe; the program runs from the queue, jobs at a time
(default 1: in upload order; never two runs for one file at once). A failed
run (non-zero exit, signal, timeout, not started) is run again up to retries
times, after retry_delay (default 30s), doubled each time up to
retry_delay_max (default 1h); then the record is kept as failed. A rejected
record or a file that is not a regular file is not retried.
  pure-uploadscript queue list [--json]     pending, running, failed
  pure-uploadscript queue retry ID|--all-failed
  pure-uploadscript queue drop ID
work while the daemon runs.

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
  1  the upload pipe could not be read any more, or the upload queue
     cannot be opened (another reader holds it, or its directory cannot
     be written)
  2  invalid option or configuration, or a --config FILE that does not
     exist, a configuration file that is not a regular file or is too
     large; the program is missing, not absolute or not executable
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

    /// Where the upload queue is kept [default: $STATE_DIRECTORY under
    /// systemd, else /var/lib/pure-uploadscript]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Instead of reading the pipe: look at or change the upload queue
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of reading the pipe.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Look at or change the upload queue (also while the daemon runs)
    #[command(subcommand)]
    Queue(QueueCommand),
}

/// `pure-uploadscript queue ...`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum QueueCommand {
    /// List the records in the queue: pending, running and failed, with
    /// their age and attempts
    List {
        /// One JSON object per record, one per line
        #[arg(long)]
        json: bool,
    },
    /// Run failed records again (their retries start afresh)
    Retry {
        /// The record's number, as listed
        #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
        id: Option<u64>,
        /// Every failed record
        #[arg(long)]
        all_failed: bool,
    },
    /// Remove a record from the queue (a run going on is not stopped)
    Drop {
        /// The record's number, as listed
        id: u64,
    },
}

impl From<Args> for Overrides {
    /// The options given become the last configuration layer; a flag not
    /// given leaves the files' setting alone.
    fn from(args: Args) -> Overrides {
        let flag = |given: bool| given.then_some(true);
        Overrides {
            config: args.config,
            options: UploadscriptConfig {
                run: args.run,
                uid: args.uid,
                gid: args.gid,
                pipe: args.pipe,
                pidfile: args.pidfile,
                daemonize: flag(args.daemonize),
                timeout: args.timeout,
                hash: args.hash,
                keep_env: flag(args.keep_env),
                capture_output: flag(args.capture_output),
                vhost_dir: None,
                isolation: args.isolation,
                state_dir: args.state_dir,
                ..Default::default()
            },
        }
    }
}

/// The profile when the command line is exactly `--run-instance PROFILE`,
/// as the run units give it; read without building the whole parser, since
/// a run unit starts for every upload. Any other command line is `None`
/// (and goes through [`Args`], which also knows `--run-instance`).
pub fn run_instance_line(args: impl IntoIterator<Item = std::ffi::OsString>) -> Option<Profile> {
    let mut args = args.into_iter().skip(1);
    let (Some(flag), Some(name), None) = (args.next(), args.next(), args.next()) else {
        return None;
    };
    if flag != "--run-instance" {
        return None;
    }
    [Profile::Default, Profile::Strict]
        .into_iter()
        .find(|p| name == p.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_run_units_command_line_is_read_without_the_parser() {
        let line = |args: &[&str]| {
            run_instance_line(
                std::iter::once("pure-uploadscript")
                    .chain(args.iter().copied())
                    .map(std::ffi::OsString::from),
            )
        };
        assert_eq!(line(&["--run-instance", "default"]), Some(Profile::Default));
        assert_eq!(line(&["--run-instance", "strict"]), Some(Profile::Strict));
        // Anything else is the parser's, which knows the option too.
        assert_eq!(line(&["--run-instance", "lax"]), None);
        assert_eq!(line(&["--run-instance=strict"]), None);
        assert_eq!(line(&["--run-instance", "strict", "-r", "/bin/true"]), None);
        assert_eq!(line(&["-r", "/bin/true"]), None);
        assert_eq!(line(&[]), None);
        let parsed = Args::try_parse_from(["pure-uploadscript", "--run-instance=strict"]).unwrap();
        assert_eq!(parsed.run_instance, Some(Profile::Strict));
    }

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
            "--state-dir",
        ] {
            assert!(help.contains(opt), "{opt} missing");
        }
        for (key, _, _) in crate::upload::settings::KEYS {
            assert!(help.contains(key), "config key {key} missing");
        }
        for status in ExitStatus::ALL {
            let code = status.code();
            assert!(
                help.contains(&format!("\n  {code}  ")),
                "exit status {code} missing"
            );
        }
    }

    #[test]
    fn queue_commands_sit_beside_the_c_options() {
        let a = Args::try_parse_from(["x", "-B", "-r", "/bin/true", "-u", "1"]).unwrap();
        assert_eq!(a.command, None);
        let a =
            Args::try_parse_from(["x", "--state-dir", "/q", "queue", "list", "--json"]).unwrap();
        assert_eq!(a.state_dir, Some("/q".into()));
        assert_eq!(
            a.command,
            Some(Command::Queue(QueueCommand::List { json: true }))
        );
        let a = Args::try_parse_from(["x", "queue", "retry", "12"]).unwrap();
        assert_eq!(
            a.command,
            Some(Command::Queue(QueueCommand::Retry {
                id: Some(12),
                all_failed: false
            }))
        );
        let a = Args::try_parse_from(["x", "queue", "retry", "--all-failed"]).unwrap();
        assert_eq!(
            a.command,
            Some(Command::Queue(QueueCommand::Retry {
                id: None,
                all_failed: true
            }))
        );
        let a = Args::try_parse_from(["x", "queue", "drop", "3"]).unwrap();
        assert_eq!(
            a.command,
            Some(Command::Queue(QueueCommand::Drop { id: 3 }))
        );
        for bad in [
            &["x", "queue", "retry"][..],
            &["x", "queue", "retry", "1", "--all-failed"],
            &["x", "queue", "drop"],
            &["x", "queue", "drop", "one"],
            &["x", "queue"],
            &["x", "run"],
        ] {
            let e = Args::try_parse_from(bad).unwrap_err();
            assert_eq!(e.exit_code(), ExitStatus::Usage.code() as i32, "{bad:?}");
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
            assert_eq!(e.exit_code(), ExitStatus::Usage.code() as i32, "{args:?}");
        }
    }

    #[test]
    fn options_become_the_last_layer() {
        let o = Overrides::from(
            Args::try_parse_from(["x", "--config", "/c.toml", "-r", "/r", "--keep-env"]).unwrap(),
        );
        assert_eq!(o.config, Some("/c.toml".into()));
        assert_eq!(
            o.options,
            UploadscriptConfig {
                run: Some("/r".into()),
                keep_env: Some(true),
                ..Default::default()
            }
        );
        // Flags not given leave the files' settings alone.
        let o = Overrides::from(Args::try_parse_from(["x"]).unwrap());
        assert_eq!(o, Overrides::default());
    }

    #[test]
    fn errors_map_to_their_exit_statuses() {
        use crate::upload::pipe::fifo::{FifoError, Insecurity};
        use crate::upload::program::ProgramError;
        let codes: Vec<u8> = ExitStatus::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4]);
        assert_eq!(
            ExitStatus::from(&SettingsError::NoProgram),
            ExitStatus::Usage
        );
        let io = || std::io::Error::from_raw_os_error(libc::EIO);
        let cases = [
            (
                DaemonError::Program(ProgramError::NotRegular("/p".into())),
                ExitStatus::Usage,
            ),
            (
                DaemonError::Pipe(FifoError::Insecure {
                    path: "/f".into(),
                    why: Insecurity::NotFifo,
                }),
                ExitStatus::Pipe,
            ),
            (
                DaemonError::PidFile {
                    path: "/p".into(),
                    source: io(),
                },
                ExitStatus::Identity,
            ),
            (DaemonError::ReadPipe(io()), ExitStatus::Runtime),
            (DaemonError::Poll(io()), ExitStatus::Runtime),
        ];
        for (error, status) in cases {
            assert_eq!(ExitStatus::from(&error), status, "{error}");
        }
    }
}
