//! `ftpwhod`: the socket-activated ftpwho responder.

use std::path::PathBuf;

use clap::Parser;

use crate::ftpwho::settings::{FtpwhodConfig, Settings};
use crate::os::config::Fragment;

/// The exit status of `ftpwhod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Exited after --idle-timeout without a client, or after
    /// `--check-config`.
    Ok = 0,
    /// Serving failed.
    Runtime = 1,
    /// Invalid option or configuration, or no socket to listen on.
    Usage = 2,
}

impl Exit {
    /// Every status, as `--help` lists them.
    pub const ALL: [Exit; 3] = [Exit::Ok, Exit::Runtime, Exit::Usage];

    /// The status as a number.
    pub fn code(self) -> u8 {
        self as u8
    }
}

const AFTER_HELP: &str = "\
Configuration: /etc/ftpwhod.toml if it exists, then /etc/ftpwhod.d/*.toml
in name order. --config FILE replaces the first and must exist; FILE's .d
directory, if any, replaces the second. Keys: group, idle_timeout,
max_connections, max_connections_per_user, request_timeout, lock_budget,
max_request_bytes, per_user_view, top_users, scoreboard, layout (auto,
debian, upstream or { max_user_length = N, filename_len = N }). Options
given here win. Durations are seconds: 0 or at least 0.001, at most a
year (31536000).

Per-user view: the packaged socket (mode 0660, group ftpwho) lets only
root and the group connect. For users outside the group to see their own
sessions, set per_user_view = true and give the socket mode 0666
(systemctl edit pure-ftpwho.socket: [Socket] SocketMode=0666).

Exit status:
  0  exited after --idle-timeout without a client; also --check-config
  1  serving failed
  2  invalid option or configuration, or a --config FILE that does not
     exist; no socket passed by systemd and no --listen, or the --listen
     socket cannot be bound";

/// Answers "who is online" queries on a unix socket for root and the
/// members of a group, reading Pure-FTPd's scoreboard read-only.
///
/// Normally started by systemd with the listening socket of
/// pure-ftpwho.socket (LISTEN_FDS); exits after --idle-timeout seconds
/// without a client, to be started again on the next connection.
#[derive(Debug, Clone, Parser)]
#[command(name = "ftpwhod", version, after_help = AFTER_HELP)]
pub struct Args {
    /// Main configuration file, which must exist; its drop-ins are read
    /// from the same path with .d instead of .toml [default:
    /// /etc/ftpwhod.toml, read if it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Bind and listen on this socket path instead of taking the socket from
    /// systemd (mode 0660, group --group); for use without socket activation.
    #[arg(long, value_name = "PATH")]
    pub listen: Option<PathBuf>,

    /// Scoreboard directory [config: scoreboard; default /var/run/pure-ftpd].
    #[arg(long, value_name = "DIR")]
    pub scoreboard: Option<PathBuf>,

    /// Group whose members may query; root always may [config: group;
    /// default ftpwho].
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,

    /// Seconds without any client before exiting, 0 to never exit
    /// [config: idle_timeout; default 30].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub idle_timeout: Option<f64>,

    /// Connections served at once; more get a "busy" answer
    /// [config: max_connections; default 64].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Connections of one uid served at once; root is not bounded
    /// [config: max_connections_per_user; default 16].
    #[arg(long, value_name = "N")]
    pub max_connections_per_user: Option<usize>,

    /// Seconds a client has to send each request and take its whole
    /// answer [config: request_timeout; default 5].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub request_timeout: Option<f64>,

    /// Seconds one scan may wait, in all, for the FTP server's locks on
    /// entries before reading the rest unlocked [config: lock_budget;
    /// default 1].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub lock_budget: Option<f64>,

    /// Let users outside the group see their own sessions
    /// [config: per_user_view].
    #[arg(long)]
    pub per_user_view: bool,

    /// Accounts listed by the OpenMetrics pureftpd_user_sessions metric
    /// [config: top_users; default 10].
    #[arg(long, value_name = "N")]
    pub top_users: Option<usize>,

    /// Print the merged configuration and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Log every request (debug level).
    #[arg(long, short = 'd')]
    pub debug: bool,
}

impl Args {
    /// The settings given on the command line, as a configuration
    /// fragment, to be merged after the files.
    pub fn fragment(&self) -> FtpwhodConfig {
        FtpwhodConfig {
            group: self.group.clone(),
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            max_connections_per_user: self.max_connections_per_user,
            request_timeout: self.request_timeout,
            lock_budget: self.lock_budget,
            per_user_view: self.per_user_view.then_some(true),
            top_users: self.top_users,
            scoreboard: self.scoreboard.clone(),
            ..FtpwhodConfig::default()
        }
    }

    /// The settings to run with: the configuration files (`--config`, or
    /// the default ones), then the command line, checked.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut config = FtpwhodConfig::load(self.config.as_deref())?;
        config.merge(self.fragment());
        config
            .settings()
            .map_err(anyhow::Error::new)
            .map_err(|e| e.context("invalid configuration"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn help_lists_every_key_and_exit_status() {
        let help = Args::command().render_long_help().to_string();
        for key in [
            "group",
            "idle_timeout",
            "max_connections",
            "max_connections_per_user",
            "request_timeout",
            "lock_budget",
            "max_request_bytes",
            "per_user_view",
            "top_users",
            "scoreboard",
            "layout",
        ] {
            assert!(help.contains(key), "config key {key} missing");
        }
        for exit in Exit::ALL {
            assert!(
                help.contains(&format!("\n  {}  ", exit.code())),
                "exit status {exit:?} missing"
            );
        }
    }

    #[test]
    fn negative_durations_reach_the_configuration_check() {
        let args = Args::parse_from(["ftpwhod", "--idle-timeout", "-3"]);
        let e = args.fragment().settings().unwrap_err();
        assert_eq!(
            e,
            crate::ftpwho::settings::SettingsError::NotSeconds {
                key: "idle_timeout",
                value: -3.0
            }
        );
    }

    #[test]
    fn durations_the_clock_cannot_add_are_usage_errors() {
        for option in ["--idle-timeout", "--request-timeout", "--lock-budget"] {
            for value in ["9223372036854775807", "1e-10"] {
                let args = Args::parse_from(["ftpwhod", option, value]);
                assert!(args.fragment().settings().is_err(), "{option} {value}");
            }
        }
    }

    #[test]
    fn command_line_overrides_config() {
        let args = Args::parse_from([
            "ftpwhod",
            "--group",
            "staff",
            "--idle-timeout",
            "0.5",
            "--per-user-view",
        ]);
        let mut config = FtpwhodConfig {
            group: Some("ftpwho".into()),
            top_users: Some(4),
            per_user_view: Some(true),
            ..Default::default()
        };
        config.merge(args.fragment());
        assert_eq!(config.group.as_deref(), Some("staff"));
        assert_eq!(config.idle_timeout, Some(0.5));
        assert_eq!(config.per_user_view, Some(true));
        assert_eq!(config.top_users, Some(4));
        // Options not given leave the files' values alone.
        let mut config = FtpwhodConfig {
            per_user_view: Some(true),
            scoreboard: Some("/srv/board".into()),
            ..Default::default()
        };
        config.merge(Args::parse_from(["ftpwhod"]).fragment());
        assert_eq!(config.per_user_view, Some(true));
        assert_eq!(config.scoreboard, Some("/srv/board".into()));
    }
}
