//! Settings of `pureftpd-exporter`: `/etc/pureftpd-exporter.toml` plus
//! `/etc/pureftpd-exporter.d/*.toml`.
//!
//! ```toml
//! top_users = 10            # accounts in pureftpd_user_sessions; 0: none (names are personal data)
//! idle_timeout = 120        # seconds without a scrape before exiting; 0: never
//! request_timeout = 5       # seconds for a client to send its request head
//! max_request_bytes = 8192  # longest request head
//! max_connections = 16      # served at once; more get 503
//! scoreboard = "/var/run/pure-ftpd"
//! layout = "auto"           # as in ftpwhod.toml
//! upload_state_dirs = ["/var/lib/pure-uploadscript"]
//! ```
//!
//! The address is not a setting: systemd listens (`pureftpd-exporter.socket`,
//! changed with a drop-in) and passes the socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ftpwho::scoreboard::Layout;
use crate::ftpwho::settings::{LayoutSetting, SettingsError};
use crate::os::config::{ConfigError, Fragment};

/// Default main configuration file.
pub const DEFAULT_PATH: &str = "/etc/pureftpd-exporter.toml";
/// Default port, on every address (see the README for the choice).
pub const DEFAULT_PORT: u16 = 21021;
/// Default idle time before exiting, seconds: longer than the usual scrape
/// intervals (15 s to 1 min), so a scraped exporter stays up.
pub const DEFAULT_IDLE_TIMEOUT: f64 = 120.0;
/// Default time for a request head to arrive, seconds.
pub const DEFAULT_REQUEST_TIMEOUT: f64 = 5.0;
/// Default bound on a request head, bytes.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 8192;
/// Default bound on connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;
/// Default number of accounts in `pureftpd_user_sessions`.
pub const DEFAULT_TOP_USERS: usize = 10;
/// Where upload readers publish their state files by default: the state
/// directory of `pure-uploadscript.service`, whose subdirectories are
/// those of the `uploadscript@.service` instances.
pub const DEFAULT_UPLOAD_STATE_DIRS: [&str; 1] = ["/var/lib/pure-uploadscript"];

/// One configuration file's worth of settings; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterConfig {
    /// Accounts in `pureftpd_user_sessions`.
    pub top_users: Option<usize>,
    /// Seconds without a connection before exiting; 0 never exits.
    pub idle_timeout: Option<f64>,
    /// Seconds a client has to send its request head.
    pub request_timeout: Option<f64>,
    /// Longest request head, bytes.
    pub max_request_bytes: Option<usize>,
    /// Connections served at once.
    pub max_connections: Option<usize>,
    /// The scoreboard directory.
    pub scoreboard: Option<PathBuf>,
    /// The record layout.
    pub layout: Option<LayoutSetting>,
    /// Directories holding upload readers' state files (`metrics.json`
    /// directly in them, or one level down).
    pub upload_state_dirs: Option<Vec<PathBuf>>,
}

impl Fragment for ExporterConfig {
    fn merge(&mut self, later: Self) {
        macro_rules! take {
            ($($field:ident),*) => {$(
                if later.$field.is_some() {
                    self.$field = later.$field;
                }
            )*};
        }
        take!(
            top_users,
            idle_timeout,
            request_timeout,
            max_request_bytes,
            max_connections,
            scoreboard,
            layout,
            upload_state_dirs
        );
    }
}

/// Settings with every default filled in and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ExporterSettings {
    /// Accounts in `pureftpd_user_sessions`.
    pub top_users: usize,
    /// Idle time before exiting; `None` never exits.
    pub idle_timeout: Option<Duration>,
    /// Time for a request head to arrive.
    pub request_timeout: Duration,
    /// Longest request head.
    pub max_request_bytes: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// Scoreboard directory.
    pub scoreboard: PathBuf,
    /// Forced layout, or `None` for recognition by size.
    pub layout: Option<Layout>,
    /// Directories of upload readers' state files.
    pub upload_state_dirs: Vec<PathBuf>,
}

impl Default for ExporterSettings {
    fn default() -> Self {
        ExporterConfig::default()
            .settings()
            .expect("the defaults are valid")
    }
}

/// Why the exporter's configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExporterSettingsError {
    /// `request_timeout` is 0.
    #[error("request_timeout must be more than 0")]
    NoRequestTime,
    /// `max_connections` is 0.
    #[error("max_connections must be at least 1")]
    NoConnections,
    /// `max_request_bytes` is out of its range.
    #[error("max_request_bytes must be between 256 and 1048576, not {0}")]
    RequestBytes(usize),
    /// A directory of `upload_state_dirs` is relative.
    #[error("upload_state_dirs must be absolute: {}", .0.display())]
    RelativeStateDir(PathBuf),
    /// A value refused by the checks shared with `ftpwhod.toml`: a
    /// duration the clock cannot add or below its resolution, or the
    /// layout.
    #[error(transparent)]
    Checked(#[from] SettingsError),
}

impl ExporterConfig {
    /// Loads `explicit` (`--config FILE`, which must exist) or else
    /// [`DEFAULT_PATH`] (which may be absent), with its drop-in directory.
    pub fn load(explicit: Option<&Path>) -> Result<ExporterConfig, ConfigError> {
        crate::os::config::load_explicit_or_default(explicit, Path::new(DEFAULT_PATH))
    }

    /// Fills in defaults and checks ranges.
    pub fn settings(&self) -> Result<ExporterSettings, ExporterSettingsError> {
        let idle = crate::ftpwho::settings::seconds(
            "idle_timeout",
            self.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
        )?;
        let request_timeout = crate::ftpwho::settings::seconds(
            "request_timeout",
            self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
        )?;
        if request_timeout.is_zero() {
            return Err(ExporterSettingsError::NoRequestTime);
        }
        let max_connections = self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if max_connections == 0 {
            return Err(ExporterSettingsError::NoConnections);
        }
        let max_request_bytes = self.max_request_bytes.unwrap_or(DEFAULT_MAX_REQUEST_BYTES);
        if !(256..=1 << 20).contains(&max_request_bytes) {
            return Err(ExporterSettingsError::RequestBytes(max_request_bytes));
        }
        let upload_state_dirs = self.upload_state_dirs.clone().unwrap_or_else(|| {
            DEFAULT_UPLOAD_STATE_DIRS
                .iter()
                .map(PathBuf::from)
                .collect()
        });
        if let Some(relative) = upload_state_dirs.iter().find(|d| !d.is_absolute()) {
            return Err(ExporterSettingsError::RelativeStateDir(relative.clone()));
        }
        Ok(ExporterSettings {
            top_users: self.top_users.unwrap_or(DEFAULT_TOP_USERS),
            idle_timeout: (!idle.is_zero()).then_some(idle),
            request_timeout,
            max_request_bytes,
            max_connections,
            scoreboard: self
                .scoreboard
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::ftpwho::scoreboard::DEFAULT_DIR)),
            layout: match &self.layout {
                Some(setting) => setting.resolve()?,
                None => None,
            },
            upload_state_dirs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_checked_as_ftpwhod_checks_them() {
        for (idle, request) in [(1e18, 5.0), (120.0, 1e18), (1e-10, 5.0), (-1.0, 5.0)] {
            let config = ExporterConfig {
                idle_timeout: Some(idle),
                request_timeout: Some(request),
                ..ExporterConfig::default()
            };
            let e = config.settings().unwrap_err();
            assert!(
                matches!(
                    e,
                    ExporterSettingsError::Checked(
                        SettingsError::TooLong { .. }
                            | SettingsError::TooShort { .. }
                            | SettingsError::NotSeconds { .. }
                    )
                ),
                "{idle} {request}: {e:?}"
            );
        }
    }

    #[test]
    fn defaults() {
        let s = ExporterSettings::default();
        assert_eq!(s.top_users, 10);
        assert_eq!(s.idle_timeout, Some(Duration::from_secs(120)));
        assert_eq!(s.request_timeout, Duration::from_secs(5));
        assert_eq!((s.max_request_bytes, s.max_connections), (8192, 16));
        assert_eq!(s.scoreboard, PathBuf::from("/var/run/pure-ftpd"));
        assert_eq!(s.layout, None);
        assert_eq!(
            s.upload_state_dirs,
            [PathBuf::from("/var/lib/pure-uploadscript")]
        );
    }

    #[test]
    fn files_merge_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("e.toml");
        std::fs::write(
            &main,
            "top_users = 0\nidle_timeout = 0\nlayout = \"debian\"\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("e.d")).unwrap();
        std::fs::write(
            dir.path().join("e.d/1.toml"),
            "upload_state_dirs = [\"/srv/state\"]\ntop_users = 3\n",
        )
        .unwrap();
        let s = ExporterConfig::load(Some(&main))
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(s.top_users, 3);
        assert_eq!(s.idle_timeout, None);
        assert_eq!(s.layout, Some(Layout::DEBIAN));
        assert_eq!(s.upload_state_dirs, [PathBuf::from("/srv/state")]);
        for (text, message) in [
            ("request_timeout = 0", "request_timeout"),
            ("max_connections = 0", "max_connections"),
            ("max_request_bytes = 10", "max_request_bytes"),
            ("idle_timeout = -1", "idle_timeout"),
            ("upload_state_dirs = [\"rel\"]", "absolute"),
            ("layout = \"other\"", "layout"),
        ] {
            let config: ExporterConfig = toml::from_str(text).unwrap();
            let e = config.settings().unwrap_err().to_string();
            assert!(e.contains(message), "{text}: {e}");
        }
        std::fs::write(&main, "listen = \"0.0.0.0:1\"\n").unwrap();
        let e = ExporterConfig::load(Some(&main)).unwrap_err().to_string();
        assert!(e.contains("e.toml:1"), "{e}");
    }
}
