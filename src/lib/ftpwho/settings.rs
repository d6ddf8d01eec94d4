//! Settings of `ftpwhod`: `/etc/ftpwhod.toml` plus `/etc/ftpwhod.d/*.toml`.
//!
//! ```toml
//! group = "ftpwho"          # who may query, besides root
//! idle_timeout = 30         # seconds without a client before exiting; 0: never
//! max_connections = 64      # served at once; more get a "busy" answer
//! request_timeout = 5       # seconds for a client to send a request / read the answer
//! max_request_bytes = 4096  # longest request line
//! per_user_view = false     # others may see their own sessions
//! top_users = 10            # accounts listed by OpenMetrics' pureftpd_user_sessions
//! scoreboard = "/var/run/pure-ftpd"
//! layout = "auto"           # or "debian", "upstream", or { max_user_length = 32, filename_len = 1024 }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ftpwho::scoreboard::Layout;
use crate::os::config::{ConfigError, Fragment};

/// Default main configuration file.
pub const DEFAULT_PATH: &str = "/etc/ftpwhod.toml";
/// Default group allowed to query.
pub const DEFAULT_GROUP: &str = "ftpwho";
/// Default idle time before the responder exits, seconds.
pub const DEFAULT_IDLE_TIMEOUT: f64 = 30.0;
/// Default bound on connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Default per-request time limit, seconds.
pub const DEFAULT_REQUEST_TIMEOUT: f64 = 5.0;
/// Default number of accounts in `pureftpd_user_sessions`.
pub const DEFAULT_TOP_USERS: usize = 10;

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
    pub fn resolve(&self) -> Result<Option<Layout>, String> {
        match self {
            LayoutSetting::Named(name) => match name.as_str() {
                "auto" => Ok(None),
                "debian" => Ok(Some(Layout::DEBIAN)),
                "upstream" => Ok(Some(Layout::UPSTREAM)),
                other => Err(format!(
                    "unknown layout {other:?} (expected auto, debian, upstream or a table)"
                )),
            },
            LayoutSetting::Lengths {
                max_user_length,
                filename_len,
            } => {
                let layout = Layout::with_lengths(*max_user_length, *filename_len);
                if layout.is_consistent() {
                    Ok(Some(layout))
                } else {
                    Err("layout lengths give an impossible record".into())
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
    /// Seconds a client has to send each request and read its answer.
    pub request_timeout: Option<f64>,
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
            request_timeout,
            max_request_bytes,
            per_user_view,
            top_users,
            scoreboard,
            layout
        );
    }
}

/// Settings with every default filled in and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct FtpwhodSettings {
    /// Group whose members may query.
    pub group: String,
    /// Idle time before exiting; `None` never exits.
    pub idle_timeout: Option<Duration>,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time limit per request.
    pub request_timeout: Duration,
    /// Longest request line.
    pub max_request_bytes: usize,
    /// Per-user view for non-members.
    pub per_user_view: bool,
    /// OpenMetrics cardinality bound.
    pub top_users: usize,
    /// Scoreboard directory.
    pub scoreboard: PathBuf,
    /// Forced layout, or `None` for recognition by size.
    pub layout: Option<Layout>,
}

impl Default for FtpwhodSettings {
    /// The settings without any configuration: the defaults above.
    fn default() -> Self {
        FtpwhodConfig::default()
            .settings()
            .expect("the defaults are valid")
    }
}

fn seconds(name: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("{name} must be a non-negative number of seconds, not {value}"))
}

impl FtpwhodConfig {
    /// Loads `explicit` (`--config FILE`, which must exist) or else
    /// [`DEFAULT_PATH`] (which may be absent), with its drop-in directory.
    pub fn load(explicit: Option<&Path>) -> Result<FtpwhodConfig, ConfigError> {
        crate::os::config::load_explicit_or_default(explicit, Path::new(DEFAULT_PATH))
    }

    /// Fills in defaults and checks ranges.
    pub fn settings(&self) -> Result<FtpwhodSettings, String> {
        let idle = seconds(
            "idle_timeout",
            self.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
        )?;
        let request_timeout = seconds(
            "request_timeout",
            self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
        )?;
        if request_timeout.is_zero() {
            return Err("request_timeout must be more than 0".into());
        }
        let max_connections = self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        let max_request_bytes = self
            .max_request_bytes
            .unwrap_or(crate::ftpwho::query::protocol::DEFAULT_MAX_REQUEST_BYTES);
        if max_request_bytes < 64 {
            return Err("max_request_bytes must be at least 64".into());
        }
        Ok(FtpwhodSettings {
            group: self
                .group
                .clone()
                .unwrap_or_else(|| DEFAULT_GROUP.to_owned()),
            idle_timeout: (!idle.is_zero()).then_some(idle),
            max_connections,
            request_timeout,
            max_request_bytes,
            per_user_view: self.per_user_view.unwrap_or(false),
            top_users: self.top_users.unwrap_or(DEFAULT_TOP_USERS),
            scoreboard: self
                .scoreboard
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::ftpwho::scoreboard::DEFAULT_DIR)),
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
        assert_eq!(s.request_timeout, Duration::from_secs(5));
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
    fn bad_values_are_refused() {
        let parse = |text: &str| -> Result<FtpwhodSettings, String> {
            crate::os::config::parse::<FtpwhodConfig>(Path::new("x.toml"), text)
                .map_err(|e| e.to_string())?
                .settings()
        };
        assert!(parse("idle_timeout = -1")
            .unwrap_err()
            .contains("idle_timeout"));
        assert!(parse("request_timeout = 0").is_err());
        assert!(parse("max_connections = 0").is_err());
        assert!(parse("max_request_bytes = 10").is_err());
        assert!(parse("layout = \"sparc\"").unwrap_err().contains("sparc"));
        assert!(parse("colour = 1").unwrap_err().starts_with("x.toml:1:"));
        assert!(parse("max_connections = \"many\"").is_err());
        assert!(parse("idle_timeout = 2").is_ok());
    }
}
