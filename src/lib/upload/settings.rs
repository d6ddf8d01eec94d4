//! `pure-uploadscript`'s configuration: `/etc/pure-uploadscript.toml` and
//! `/etc/pure-uploadscript.d/*.toml`. Each key is named after a long
//! command-line option; options given on the command line win.
//!
//! ```toml
//! run = "/usr/local/sbin/scan-upload"
//! uid = "nobody"          # or 65534
//! gid = "nogroup"         # or 65534
//! pipe = "/run/pure-ftpd.upload.pipe"
//! timeout = "10min"       # or 600 (seconds); 0 for no limit
//! hash = "sha256"         # or "none"
//! keep_env = false
//! capture_output = true
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::os::config::{ConfigError, Fragment};
use crate::upload::limits::{CpuQuota, Isolation, MemoryMax, Profile, TasksMax};

/// The main configuration file.
pub const DEFAULT_PATH: &str = "/etc/pure-uploadscript.toml";

/// Every key, for documentation: `(key, value, meaning)`.
pub const KEYS: &[(&str, &str, &str)] = &[
    ("run", "path", "program run on each uploaded file (-r)"),
    ("uid", "name or number", "user the program runs as (-u)"),
    ("gid", "name or number", "group the program runs as (-g)"),
    ("pipe", "path", "the upload FIFO (--pipe)"),
    ("pidfile", "path", "where to write the pid (-p)"),
    (
        "daemonize",
        "bool",
        "fork into the background outside systemd (-B)",
    ),
    (
        "timeout",
        "duration",
        "limit on one run of the program (--timeout)",
    ),
    (
        "hash",
        "\"sha256\" | \"none\"",
        "checksum logged with each upload (--hash)",
    ),
    (
        "keep_env",
        "bool",
        "pass the daemon's environment (--keep-env)",
    ),
    (
        "capture_output",
        "bool",
        "log the program's output (--capture-output)",
    ),
    ("vhost_dir", "path", "where IP:/path names are mapped"),
    (
        "isolation",
        "\"unit\" | \"process\"",
        "each run in a systemd unit of its own, or a child process (--isolation)",
    ),
    (
        "profile",
        "\"default\" | \"strict\"",
        "sandbox of a run's unit",
    ),
    ("memory_max", "bytes", "memory limit of a run's unit"),
    ("cpu_quota", "percent", "CPU limit of a run's unit"),
    (
        "tasks_max",
        "number",
        "process and thread limit of a run's unit",
    ),
];

/// A user or group given by name or by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Id {
    /// A numeric id (also given as a string of digits).
    Number(u32),
    /// A name to look up.
    Name(String),
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u32),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a user or group name, or a number from 0 to 4294967295",
            )
        })? {
            Raw::Number(n) => Ok(Id::Number(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl FromStr for Id {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty user or group".into());
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(Id::Number)
                .map_err(|_| format!("{s}: id out of range"));
        }
        Ok(Id::Name(s.to_owned()))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Number(n) => write!(f, "{n}"),
            Id::Name(s) => f.write_str(s),
        }
    }
}

/// The longest `timeout` accepted (ten years): longer ones cannot be
/// added to the clock on every machine.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn bounded(d: Duration, s: &dyn fmt::Display) -> Result<Timeout, String> {
    if d > MAX_TIMEOUT {
        return Err(format!(
            "{s}: too long (at most {} seconds, ten years; 0 for no limit)",
            MAX_TIMEOUT.as_secs()
        ));
    }
    Ok(Timeout((!d.is_zero()).then_some(d)))
}

/// A limit on one run: a duration, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Option<Duration>);

impl FromStr for Timeout {
    type Err = String;
    /// Seconds (`600`), or a number with a unit: `ms`, `s`/`sec`,
    /// `m`/`min`, `h`; `0`, `infinity` or `none` for no limit.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t == "infinity" || t == "none" {
            return Ok(Timeout(None));
        }
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{s:?}: expected a duration such as 600, 90s, 10min, 1h"))?;
        let ms = match unit.trim() {
            "ms" => Some(1),
            "" | "s" | "sec" => Some(1000),
            "m" | "min" => Some(60_000),
            "h" => Some(3_600_000),
            _ => None,
        }
        .ok_or_else(|| format!("{s:?}: unknown unit (use ms, s, min or h)"))?;
        let ms = n
            .checked_mul(ms)
            .ok_or_else(|| format!("{s:?}: too long"))?;
        bounded(Duration::from_millis(ms), &format_args!("{s:?}"))
    }
}

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(n) => {
                bounded(Duration::from_secs(n), &n).map_err(serde::de::Error::custom)
            }
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The `hash` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Hash {
    /// No checksum.
    None,
    /// SHA-256 of each file, logged as `UPLOAD_SHA256`.
    Sha256,
}

impl FromStr for Hash {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Hash::None),
            "sha256" => Ok(Hash::Sha256),
            _ => Err(format!("{s:?}: expected \"sha256\" or \"none\"")),
        }
    }
}

/// One layer of `pure-uploadscript`'s settings; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadscriptConfig {
    /// `run`: absolute path of the program run on each uploaded file.
    pub run: Option<PathBuf>,
    /// `uid`: user the daemon and the program run as, by name or number.
    pub uid: Option<Id>,
    /// `gid`: group the daemon and the program run as, by name or number.
    pub gid: Option<Id>,
    /// `pipe`: the FIFO pure-ftpd writes into.
    pub pipe: Option<PathBuf>,
    /// `pidfile`: where to write the daemon's pid.
    pub pidfile: Option<PathBuf>,
    /// `daemonize`: fork into the background (ignored under systemd).
    pub daemonize: Option<bool>,
    /// `timeout`: limit on one run (seconds, or a string such as `"10min"`;
    /// 0 for none).
    pub timeout: Option<Timeout>,
    /// `hash`: `"sha256"` to log each file's checksum, `"none"` not to.
    pub hash: Option<Hash>,
    /// `keep_env`: pass the daemon's environment to the program.
    pub keep_env: Option<bool>,
    /// `capture_output`: capture the program's output and log its end.
    pub capture_output: Option<bool>,
    /// `vhost_dir`: directory under which `IP:/path` names are mapped.
    pub vhost_dir: Option<PathBuf>,
    /// `isolation`: `"unit"` or `"process"`.
    pub isolation: Option<Isolation>,
    /// `profile`: sandbox of a run's unit, `"default"` or `"strict"`.
    pub profile: Option<Profile>,
    /// `memory_max`: memory limit of a run's unit.
    pub memory_max: Option<MemoryMax>,
    /// `cpu_quota`: CPU limit of a run's unit.
    pub cpu_quota: Option<CpuQuota>,
    /// `tasks_max`: task limit of a run's unit.
    pub tasks_max: Option<TasksMax>,
}

impl UploadscriptConfig {
    /// Loads `explicit` (`--config FILE`, which must exist) or else
    /// [`DEFAULT_PATH`] (which may be absent), with its drop-in directory.
    pub fn load(explicit: Option<&Path>) -> Result<UploadscriptConfig, ConfigError> {
        crate::os::config::load_explicit_or_default(explicit, Path::new(DEFAULT_PATH))
    }
}

impl Fragment for UploadscriptConfig {
    fn merge(&mut self, later: Self) {
        macro_rules! take {
            ($($field:ident),*) => {
                $(if later.$field.is_some() {
                    self.$field = later.$field;
                })*
            };
        }
        take!(
            run,
            uid,
            gid,
            pipe,
            pidfile,
            daemonize,
            timeout,
            hash,
            keep_env,
            capture_output,
            vhost_dir,
            isolation,
            profile,
            memory_max,
            cpu_quota,
            tasks_max
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::config;

    #[test]
    fn every_key_parses() {
        let text = r#"
            run = "/usr/local/bin/hook"
            uid = "nobody"
            gid = "65534"
            pipe = "/run/x.pipe"
            pidfile = "/run/x.pid"
            daemonize = true
            timeout = "10min"
            hash = "sha256"
            keep_env = true
            capture_output = true
            vhost_dir = "/etc/pure-ftpd"
            isolation = "unit"
            profile = "strict"
            memory_max = "256M"
            cpu_quota = "50%"
            tasks_max = 64
        "#;
        let c: UploadscriptConfig = config::parse("t.toml".as_ref(), text).unwrap();
        assert_eq!(c.run, Some("/usr/local/bin/hook".into()));
        assert_eq!(c.uid, Some(Id::Name("nobody".into())));
        assert_eq!(c.gid, Some(Id::Number(65534)));
        assert_eq!(c.timeout, Some(Timeout(Some(Duration::from_secs(600)))));
        assert_eq!(c.hash, Some(Hash::Sha256));
        assert_eq!(
            (c.daemonize, c.keep_env, c.capture_output),
            (Some(true), Some(true), Some(true))
        );
        assert_eq!(KEYS.len(), 16);
        for (key, _, _) in KEYS {
            assert!(text.contains(&format!("{key} =")), "{key} not tested");
        }
    }

    #[test]
    fn values_are_checked() {
        let bad = [
            "timeout = \"ten\"",
            "timeout = -1",
            "hash = \"md5\"",
            "uid = -3",
            "keep_env = \"yes\"",
            "runn = \"/x\"",
            "timeout = 9223372036854775807",
            "timeout = \"9223372036854775807s\"",
            "isolation = \"vm\"",
            "memory_max = \"lots\"",
        ];
        for text in bad {
            let r = config::parse::<UploadscriptConfig>("t.toml".as_ref(), text);
            assert!(r.is_err(), "{text}");
        }
        let e = config::parse::<UploadscriptConfig>("t.toml".as_ref(), "\n\nhash = \"md5\"")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.toml:3: "), "{e}");
    }

    #[test]
    fn later_layers_win() {
        let mut a = UploadscriptConfig {
            run: Some("/a".into()),
            timeout: Some(Timeout(None)),
            ..Default::default()
        };
        a.merge(UploadscriptConfig {
            run: Some("/b".into()),
            keep_env: Some(false),
            ..Default::default()
        });
        assert_eq!(a.run, Some("/b".into()));
        assert_eq!(a.timeout, Some(Timeout(None)));
        assert_eq!(a.keep_env, Some(false));
    }

    #[test]
    fn durations_and_ids() {
        let t = |s: &str| s.parse::<Timeout>().map(|t| t.0);
        assert_eq!(t("600"), Ok(Some(Duration::from_secs(600))));
        assert_eq!(t("90s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(t("10min"), Ok(Some(Duration::from_secs(600))));
        assert_eq!(t("2h"), Ok(Some(Duration::from_secs(7200))));
        assert_eq!(t("250ms"), Ok(Some(Duration::from_millis(250))));
        assert_eq!(t("0"), Ok(None));
        assert_eq!(t("infinity"), Ok(None));
        for bad in ["", "s", "1d", "-1", "1.5s", "99999999999999999999"] {
            assert!(t(bad).is_err(), "{bad}");
        }
        assert_eq!("0".parse(), Ok(Id::Number(0)));
        assert_eq!("www-data".parse(), Ok(Id::Name("www-data".into())));
        assert!("4294967296".parse::<Id>().is_err());
        assert!("".parse::<Id>().is_err());
    }
}
