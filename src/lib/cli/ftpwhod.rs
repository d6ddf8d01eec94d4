//! `ftpwhod`: the socket-activated ftpwho responder.

use std::path::PathBuf;

use clap::Parser;

use crate::ftpwho::settings::FtpwhodConfig;

/// Exit status: exited after --idle-timeout without a client, or after
/// `--check-config`.
pub const EXIT_OK: u8 = 0;
/// Exit status: serving failed.
pub const EXIT_RUNTIME: u8 = 1;
/// Exit status: invalid option or configuration, or no socket to listen on.
pub const EXIT_USAGE: u8 = 2;

const AFTER_HELP: &str = "\
Configuration: /etc/ftpwhod.toml if it exists, then /etc/ftpwhod.d/*.toml
in name order. --config FILE replaces the first and must exist; FILE's .d
directory, if any, replaces the second. Keys: group, idle_timeout,
max_connections, request_timeout, max_request_bytes, per_user_view,
top_users, scoreboard, layout (auto, debian, upstream or
{ max_user_length = N, filename_len = N }). Options given here win.

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

    /// Seconds a client has to send each request and take its answer
    /// [config: request_timeout; default 5].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub request_timeout: Option<f64>,

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
    /// Overlays the options given on the command line onto `config`.
    pub fn apply(&self, config: &mut FtpwhodConfig) {
        if let Some(v) = &self.scoreboard {
            config.scoreboard = Some(v.clone());
        }
        if let Some(v) = &self.group {
            config.group = Some(v.clone());
        }
        if let Some(v) = self.idle_timeout {
            config.idle_timeout = Some(v);
        }
        if let Some(v) = self.max_connections {
            config.max_connections = Some(v);
        }
        if let Some(v) = self.request_timeout {
            config.request_timeout = Some(v);
        }
        if self.per_user_view {
            config.per_user_view = Some(true);
        }
        if let Some(v) = self.top_users {
            config.top_users = Some(v);
        }
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
            "request_timeout",
            "max_request_bytes",
            "per_user_view",
            "top_users",
            "scoreboard",
            "layout",
        ] {
            assert!(help.contains(key), "config key {key} missing");
        }
        for code in [EXIT_OK, EXIT_RUNTIME, EXIT_USAGE] {
            assert!(
                help.contains(&format!("\n  {code}  ")),
                "exit status {code} missing"
            );
        }
    }

    #[test]
    fn negative_durations_reach_the_configuration_check() {
        let args = Args::parse_from(["ftpwhod", "--idle-timeout", "-3"]);
        let mut config = FtpwhodConfig::default();
        args.apply(&mut config);
        let e = config.settings().unwrap_err();
        assert!(e.contains("idle_timeout must be a non-negative"), "{e}");
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
            ..Default::default()
        };
        args.apply(&mut config);
        assert_eq!(config.group.as_deref(), Some("staff"));
        assert_eq!(config.idle_timeout, Some(0.5));
        assert_eq!(config.per_user_view, Some(true));
        assert_eq!(config.top_users, Some(4));
    }
}
