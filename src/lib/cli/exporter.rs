//! `pureftpd-exporter`: Prometheus metrics of the sessions and uploads.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::metrics::settings::ExporterConfig;

/// The exit status of `pureftpd-exporter`.
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
Serves GET /metrics (Prometheus text format 0.0.4, or OpenMetrics 1.0.0 when
the Accept header prefers it); every other path gets 404, every other method
405. Sessions come from the scoreboard, upload counters from the state files
the upload readers publish (metrics.json in their state directories).

Configuration: /etc/pureftpd-exporter.toml if it exists, then
/etc/pureftpd-exporter.d/*.toml in name order. --config FILE replaces the
first and must exist; FILE's .d directory, if any, replaces the second.
Keys: top_users, idle_timeout, request_timeout, max_request_bytes,
max_connections, scoreboard, layout (auto, debian, upstream or
{ max_user_length = N, filename_len = N }), upload_state_dirs. Options given
here win.

Exit status:
  0  exited after --idle-timeout without a client; also --check-config
  1  serving failed
  2  invalid option or configuration, or a --config FILE that does not
     exist; no socket passed by systemd and no --listen, or the --listen
     address cannot be bound";

/// Serves Prometheus metrics of Pure-FTPd's sessions (from the scoreboard,
/// read-only) and of the upload readers (from the counters they publish)
/// over HTTP.
///
/// Normally started by systemd with the listening socket of
/// pureftpd-exporter.socket (LISTEN_FDS); exits after --idle-timeout
/// seconds without a client, to be started again on the next scrape.
#[derive(Debug, Clone, Parser)]
#[command(name = "pureftpd-exporter", version, after_help = AFTER_HELP)]
pub struct Args {
    /// Main configuration file, which must exist; its drop-ins are read
    /// from the same path with .d instead of .toml [default:
    /// /etc/pureftpd-exporter.toml, read if it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Bind and listen on this address instead of taking the socket from
    /// systemd; for use without socket activation.
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub listen: Option<SocketAddr>,

    /// Scoreboard directory [config: scoreboard; default /var/run/pure-ftpd].
    #[arg(long, value_name = "DIR")]
    pub scoreboard: Option<PathBuf>,

    /// Accounts listed by pureftpd_user_sessions, 0 for none
    /// [config: top_users; default 10].
    #[arg(long, value_name = "N")]
    pub top_users: Option<usize>,

    /// Seconds without any client before exiting, 0 to never exit
    /// [config: idle_timeout; default 120].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub idle_timeout: Option<f64>,

    /// Seconds a client has to send its request head
    /// [config: request_timeout; default 5].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub request_timeout: Option<f64>,

    /// A directory of upload readers' state files; repeat for several
    /// [config: upload_state_dirs; default /var/lib/pure-uploadscript].
    #[arg(long, value_name = "DIR")]
    pub upload_state_dir: Vec<PathBuf>,

    /// Print the merged configuration and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Log every refused request (debug level).
    #[arg(long, short = 'd')]
    pub debug: bool,
}

impl Args {
    /// Overlays the options given on the command line onto `config`.
    pub fn apply(&self, config: &mut ExporterConfig) {
        if let Some(v) = &self.scoreboard {
            config.scoreboard = Some(v.clone());
        }
        if let Some(v) = self.top_users {
            config.top_users = Some(v);
        }
        if let Some(v) = self.idle_timeout {
            config.idle_timeout = Some(v);
        }
        if let Some(v) = self.request_timeout {
            config.request_timeout = Some(v);
        }
        if !self.upload_state_dir.is_empty() {
            config.upload_state_dirs = Some(self.upload_state_dir.clone());
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
            "top_users",
            "idle_timeout",
            "request_timeout",
            "max_request_bytes",
            "max_connections",
            "scoreboard",
            "layout",
            "upload_state_dirs",
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
    fn command_line_overrides_config() {
        let args = Args::parse_from([
            "pureftpd-exporter",
            "--top-users",
            "0",
            "--upload-state-dir",
            "/a",
            "--upload-state-dir",
            "/b",
        ]);
        let mut config = ExporterConfig {
            top_users: Some(4),
            idle_timeout: Some(9.0),
            ..Default::default()
        };
        args.apply(&mut config);
        assert_eq!(config.top_users, Some(0));
        assert_eq!(config.idle_timeout, Some(9.0));
        assert_eq!(
            config.upload_state_dirs,
            Some(vec![PathBuf::from("/a"), PathBuf::from("/b")])
        );
    }
}
