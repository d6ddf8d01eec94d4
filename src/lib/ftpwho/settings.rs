//! Settings of `ftpwhod`, in two stages: [`FtpwhodConfig`], a fragment
//! with every key optional (one per file, `/etc/ftpwhod.toml` then
//! `/etc/ftpwhod.d/*.toml`, and one from the command line, merged in that
//! order), and [`Settings`], the merged fragment checked and completed
//! with defaults, which the responder runs with and `--check-config`
//! prints.
//!
//! ```toml
//! group = "ftpwho"          # who may query, besides root
//! idle_timeout = 30         # seconds without a client before exiting; 0: never
//! max_connections = 64      # served at once; more get a "busy" answer
//! max_connections_per_user = 16  # of those, at most this many for one uid (root: no bound)
//! request_timeout = 5       # seconds for a client to send a request and take its whole answer
//! lock_budget = 1           # seconds one scan may wait, in all, for the server's entry locks
//! max_request_bytes = 4096  # longest request line
//! per_user_view = false     # others may see their own sessions
//! top_users = 10            # accounts listed by OpenMetrics' pureftpd_user_sessions
//! scoreboard = "/var/run/pure-ftpd"
//! layout = "auto"           # or "debian", "upstream", or { max_user_length = 32, filename_len = 1024 }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ftpwho::report::openmetrics::DEFAULT_TOP_USERS;
use crate::ftpwho::scoreboard::{Layout, DEFAULT_DIR};
use crate::os::config::{ConfigError, Fragment};

/// Default main configuration file.
pub const DEFAULT_PATH: &str = "/etc/ftpwhod.toml";
/// Default group allowed to query.
pub const DEFAULT_GROUP: &str = "ftpwho";
/// Default idle time before the responder exits, seconds.
pub const DEFAULT_IDLE_TIMEOUT: f64 = 30.0;
/// Default bound on connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Default bound on the connections of one uid served at once.
pub const DEFAULT_MAX_CONNECTIONS_PER_USER: usize = 16;
/// Default per-request time limit, seconds.
pub const DEFAULT_REQUEST_TIMEOUT: f64 = 5.0;
/// Default bound on the time one scan waits for entry locks, seconds.
pub const DEFAULT_LOCK_BUDGET: f64 = 1.0;
/// The clock's resolution for the durations of the configuration: a
/// non-zero duration shorter than this is refused, not rounded.
pub const DURATION_RESOLUTION: Duration = Duration::from_millis(1);
/// The longest duration of the configuration (a year), so that adding it
/// to the clock never overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// Default bound on one request line, newline included.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4096;
/// The smallest bound on a request line that can be configured.
pub const MIN_REQUEST_BYTES: usize = 64;

/// How scoreboard records are laid out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum LayoutSetting {
    /// `"auto"` (recognise each file by its size), `"debian"` or
    /// `"upstream"`.
    Named(String),
    /// A build with other lengths.
    Lengths {
        /// `MAX_USER_LENGTH` of the build.
        max_user_length: usize,
        /// Size of the file name buffer (`MAXPATHLEN`).
        filename_len: usize,
    },
}

impl LayoutSetting {
    /// The forced layout, or `None` for recognition by size.
    pub fn resolve(&self) -> Result<Option<Layout>, SettingsError> {
        match self {
            LayoutSetting::Named(name) => match name.as_str() {
                "auto" => Ok(None),
                "debian" => Ok(Some(Layout::DEBIAN)),
                "upstream" => Ok(Some(Layout::UPSTREAM)),
                other => Err(SettingsError::UnknownLayout(other.to_owned())),
            },
            LayoutSetting::Lengths {
                max_user_length,
                filename_len,
            } => {
                let layout = Layout::with_lengths(*max_user_length, *filename_len);
                if layout.is_consistent() {
                    Ok(Some(layout))
                } else {
                    Err(SettingsError::ImpossibleLayout)
                }
            }
        }
    }
}

/// One configuration file's worth of settings; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtpwhodConfig {
    /// Group whose members may query (root always may).
    pub group: Option<String>,
    /// Seconds without any client before exiting; 0 never exits.
    pub idle_timeout: Option<f64>,
    /// Connections served at once.
    pub max_connections: Option<usize>,
    /// Connections of one uid served at once (root is not bounded).
    pub max_connections_per_user: Option<usize>,
    /// Seconds a client has to send each request and read its answer.
    pub request_timeout: Option<f64>,
    /// Seconds one scan may wait, in all, for the server's entry locks.
    pub lock_budget: Option<f64>,
    /// Longest accepted request line, in bytes.
    pub max_request_bytes: Option<usize>,
    /// Let peers outside the group see their own sessions.
    pub per_user_view: Option<bool>,
    /// Accounts listed in OpenMetrics' `pureftpd_user_sessions`.
    pub top_users: Option<usize>,
    /// The scoreboard directory.
    pub scoreboard: Option<PathBuf>,
    /// The record layout.
    pub layout: Option<LayoutSetting>,
}

impl Fragment for FtpwhodConfig {
    fn merge(&mut self, later: Self) {
        macro_rules! take {
            ($($field:ident),*) => {$(
                if later.$field.is_some() {
                    self.$field = later.$field;
                }
            )*};
        }
        take!(
            group,
            idle_timeout,
            max_connections,
            max_connections_per_user,
            request_timeout,
            lock_budget,
            max_request_bytes,
            per_user_view,
            top_users,
            scoreboard,
            layout
        );
    }
}

/// Why configuration values were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// A duration is negative, or not a number of seconds.
    #[error("{key} must be a non-negative number of seconds, not {value}")]
    NotSeconds {
        /// The key.
        key: &'static str,
        /// The value given.
        value: f64,
    },
    /// A duration is longer than [`MAX_DURATION`].
    #[error("{key} must be at most {} seconds, not {value}", MAX_DURATION.as_secs())]
    TooLong {
        /// The key.
        key: &'static str,
        /// The value given.
        value: f64,
    },
    /// A non-zero duration is shorter than [`DURATION_RESOLUTION`].
    #[error("{key} must be 0 or at least {} seconds, not {value}", DURATION_RESOLUTION.as_secs_f64())]
    TooShort {
        /// The key.
        key: &'static str,
        /// The value given.
        value: f64,
    },
    /// `request_timeout` is 0.
    #[error("request_timeout must be more than 0")]
    NoRequestTime,
    /// `max_connections` is 0.
    #[error("max_connections must be at least 1")]
    NoConnections,
    /// `max_connections_per_user` is 0.
    #[error("max_connections_per_user must be at least 1")]
    NoConnectionsPerUser,
    /// `max_request_bytes` is below [`MIN_REQUEST_BYTES`].
    #[error("max_request_bytes must be at least {MIN_REQUEST_BYTES}")]
    RequestTooSmall,
    /// `layout` names no known layout.
    #[error("unknown layout {0:?} (expected auto, debian, upstream or a table)")]
    UnknownLayout(String),
    /// `layout`'s lengths give a record whose fields do not fit.
    #[error("layout lengths give an impossible record")]
    ImpossibleLayout,
}

/// The settings the responder runs with: every key of [`FtpwhodConfig`]
/// filled in and checked. Its [`Display`](std::fmt::Display) is the
/// configuration file that gives these settings (`--check-config`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Group whose members may query (root always may).
    pub group: String,
    /// Exit after this long without a client; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections of one uid (other than root) served at once.
    pub max_connections_per_user: usize,
    /// Time for each request to arrive and its whole answer to be written.
    pub request_timeout: Duration,
    /// Time one scan may wait, in all, for the server's entry locks.
    pub lock_budget: Duration,
    /// Longest request line, newline included.
    pub max_request_bytes: usize,
    /// Let peers outside the group see their own sessions.
    pub per_user_view: bool,
    /// Accounts in OpenMetrics' `pureftpd_user_sessions`.
    pub top_users: usize,
    /// Scoreboard directory.
    pub scoreboard: PathBuf,
    /// Forced layout, or `None` for recognition by size.
    pub layout: Option<Layout>,
}

impl Default for Settings {
    /// The settings without any configuration: the defaults above.
    fn default() -> Self {
        FtpwhodConfig::default()
            .settings()
            .expect("the defaults are valid")
    }
}

impl std::fmt::Display for Settings {
    /// One `key = value` line per key, in the configuration's own syntax,
    /// so that the output can be used as a configuration file.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64());
        writeln!(f, "group = {:?}", self.group)?;
        writeln!(f, "idle_timeout = {}", secs(self.idle_timeout))?;
        writeln!(f, "max_connections = {}", self.max_connections)?;
        writeln!(
            f,
            "max_connections_per_user = {}",
            self.max_connections_per_user
        )?;
        writeln!(
            f,
            "request_timeout = {}",
            self.request_timeout.as_secs_f64()
        )?;
        writeln!(f, "lock_budget = {}", self.lock_budget.as_secs_f64())?;
        writeln!(f, "max_request_bytes = {}", self.max_request_bytes)?;
        writeln!(f, "per_user_view = {}", self.per_user_view)?;
        writeln!(f, "top_users = {}", self.top_users)?;
        writeln!(
            f,
            "scoreboard = {:?}",
            self.scoreboard.display().to_string()
        )?;
        match self.layout {
            None => writeln!(f, "layout = \"auto\""),
            Some(l) if l == Layout::DEBIAN => writeln!(f, "layout = \"debian\""),
            Some(l) if l == Layout::UPSTREAM => writeln!(f, "layout = \"upstream\""),
            Some(l) => writeln!(
                f,
                "layout = {{ max_user_length = {}, filename_len = {} }}",
                l.account_len - 1,
                l.filename_len
            ),
        }
    }
}

/// A duration of the configuration: non-negative, at most
/// [`MAX_DURATION`], and 0 or at least [`DURATION_RESOLUTION`]. The
/// exporter's durations are checked here too.
pub fn seconds(key: &'static str, value: f64) -> Result<Duration, SettingsError> {
    if value.is_nan() || value < 0.0 {
        return Err(SettingsError::NotSeconds { key, value });
    }
    let duration = Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| *d <= MAX_DURATION)
        .ok_or(SettingsError::TooLong { key, value })?;
    if value != 0.0 && duration < DURATION_RESOLUTION {
        return Err(SettingsError::TooShort { key, value });
    }
    Ok(duration)
}

impl FtpwhodConfig {
    /// Loads `explicit` (`--config FILE`, which must exist) or else
    /// [`DEFAULT_PATH`] (which may be absent), with its drop-in directory.
    pub fn load(explicit: Option<&Path>) -> Result<FtpwhodConfig, ConfigError> {
        crate::os::config::load_explicit_or_default(explicit, Path::new(DEFAULT_PATH))
    }

    /// Fills in defaults and checks ranges.
    pub fn settings(&self) -> Result<Settings, SettingsError> {
        let idle = seconds(
            "idle_timeout",
            self.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
        )?;
        let request_timeout = seconds(
            "request_timeout",
            self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
        )?;
        if request_timeout.is_zero() {
            return Err(SettingsError::NoRequestTime);
        }
        let max_connections = self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if max_connections == 0 {
            return Err(SettingsError::NoConnections);
        }
        let max_connections_per_user = self
            .max_connections_per_user
            .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_USER);
        if max_connections_per_user == 0 {
            return Err(SettingsError::NoConnectionsPerUser);
        }
        let lock_budget = seconds(
            "lock_budget",
            self.lock_budget.unwrap_or(DEFAULT_LOCK_BUDGET),
        )?;
        let max_request_bytes = self.max_request_bytes.unwrap_or(DEFAULT_MAX_REQUEST_BYTES);
        if max_request_bytes < MIN_REQUEST_BYTES {
            return Err(SettingsError::RequestTooSmall);
        }
        Ok(Settings {
            group: self
                .group
                .clone()
                .unwrap_or_else(|| DEFAULT_GROUP.to_owned()),
            idle_timeout: (!idle.is_zero()).then_some(idle),
            max_connections,
            max_connections_per_user,
            request_timeout,
            lock_budget,
            max_request_bytes,
            per_user_view: self.per_user_view.unwrap_or(false),
            top_users: self.top_users.unwrap_or(DEFAULT_TOP_USERS),
            scoreboard: self
                .scoreboard
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR)),
            layout: match &self.layout {
                Some(setting) => setting.resolve()?,
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = FtpwhodConfig::default().settings().unwrap();
        assert_eq!(s.group, "ftpwho");
        assert_eq!(s.idle_timeout, Some(Duration::from_secs(30)));
        assert_eq!(s.max_connections, 64);
        assert_eq!(s.max_connections_per_user, 16);
        assert_eq!(s.request_timeout, Duration::from_secs(5));
        assert_eq!(s.lock_budget, Duration::from_secs(1));
        assert_eq!(s.max_request_bytes, 4096);
        assert!(!s.per_user_view);
        assert_eq!(s.top_users, 10);
        assert_eq!(s.scoreboard, PathBuf::from("/var/run/pure-ftpd"));
        assert_eq!(s.layout, None);
    }

    #[test]
    fn main_file_and_drop_ins_merge() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("ftpwhod.toml");
        std::fs::write(
            &main,
            "group = \"ops\"\nidle_timeout = 0\nrequest_timeout = 0.5\nlayout = \"upstream\"\n",
        )
        .unwrap();
        let d = dir.path().join("ftpwhod.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("50-local.toml"),
            "per_user_view = true\ntop_users = 3\nlayout = { max_user_length = 32, filename_len = 1024 }\n",
        )
        .unwrap();
        let s = FtpwhodConfig::load(Some(&main))
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(s.group, "ops");
        assert_eq!(s.idle_timeout, None);
        assert_eq!(s.request_timeout, Duration::from_millis(500));
        assert!(s.per_user_view);
        assert_eq!(s.top_users, 3);
        assert_eq!(s.layout, Some(Layout::with_lengths(32, 1024)));
    }

    #[test]
    fn printed_settings_read_back_the_same() {
        for text in [
            "",
            "group = \"ops\"\nidle_timeout = 0\nrequest_timeout = 0.25\nlayout = \"upstream\"",
            "layout = \"debian\"\nper_user_view = true\nscoreboard = \"/srv/b \\\"q\\\"\"",
            "layout = { max_user_length = 32, filename_len = 1024 }\ntop_users = 0",
        ] {
            let settings = crate::os::config::parse::<FtpwhodConfig>(Path::new("x.toml"), text)
                .unwrap()
                .settings()
                .unwrap();
            let printed = settings.to_string();
            let again = crate::os::config::parse::<FtpwhodConfig>(Path::new("y.toml"), &printed)
                .unwrap_or_else(|e| panic!("{e}\n{printed}"))
                .settings()
                .unwrap();
            assert_eq!(again, settings, "{printed}");
        }
    }

    #[test]
    fn bad_values_are_refused() {
        let parse = |text: &str| -> Result<Settings, SettingsError> {
            crate::os::config::parse::<FtpwhodConfig>(Path::new("x.toml"), text)
                .expect("valid TOML")
                .settings()
        };
        assert_eq!(
            parse("idle_timeout = -1"),
            Err(SettingsError::NotSeconds {
                key: "idle_timeout",
                value: -1.0
            })
        );
        assert_eq!(
            parse("idle_timeout = -1").unwrap_err().to_string(),
            "idle_timeout must be a non-negative number of seconds, not -1"
        );
        assert_eq!(
            parse("request_timeout = inf"),
            Err(SettingsError::TooLong {
                key: "request_timeout",
                value: f64::INFINITY
            })
        );
        assert_eq!(
            parse("request_timeout = 0"),
            Err(SettingsError::NoRequestTime)
        );
        assert_eq!(
            parse("max_connections = 0"),
            Err(SettingsError::NoConnections)
        );
        assert_eq!(
            parse("max_request_bytes = 10"),
            Err(SettingsError::RequestTooSmall)
        );
        assert_eq!(
            parse("layout = \"sparc\""),
            Err(SettingsError::UnknownLayout("sparc".into()))
        );
        assert_eq!(
            parse("layout = { max_user_length = 1000, filename_len = 0 }"),
            Err(SettingsError::ImpossibleLayout)
        );
        // Durations the clock cannot add are a configuration error, not
        // a panic at the first connection.
        for key in ["idle_timeout", "request_timeout", "lock_budget"] {
            for value in ["9223372036854775807", "1e300", "31536001"] {
                assert_eq!(
                    parse(&format!("{key} = {value}")),
                    Err(SettingsError::TooLong {
                        key: match key {
                            "idle_timeout" => "idle_timeout",
                            "request_timeout" => "request_timeout",
                            _ => "lock_budget",
                        },
                        value: value.parse().unwrap()
                    }),
                    "{key} = {value}"
                );
            }
            // Below the resolution: refused, not rounded to 0 ("never").
            for value in ["1e-10", "0.0009"] {
                let e = parse(&format!("{key} = {value}")).unwrap_err();
                assert!(matches!(e, SettingsError::TooShort { .. }), "{e:?}");
                assert!(e.to_string().contains("at least 0.001"), "{e}");
            }
            assert!(parse(&format!("{key} = 0.001")).is_ok());
            assert!(parse(&format!("{key} = 31536000")).is_ok());
        }
        assert!(matches!(
            parse("idle_timeout = nan"),
            Err(SettingsError::NotSeconds {
                key: "idle_timeout",
                ..
            })
        ));
        assert_eq!(
            parse("max_connections_per_user = 0"),
            Err(SettingsError::NoConnectionsPerUser)
        );
        let file = |text: &str| {
            crate::os::config::parse::<FtpwhodConfig>(Path::new("x.toml"), text)
                .unwrap_err()
                .to_string()
        };
        assert!(file("colour = 1").starts_with("x.toml:1:"));
        assert!(file("max_connections = \"many\"").starts_with("x.toml:1:"));
        assert!(parse("idle_timeout = 2").is_ok());
    }
}
