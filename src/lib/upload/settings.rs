//! `pure-uploadscript`'s settings, in three stages:
//!
//! 1. [`UploadscriptConfig`]: one layer, every field optional: a
//!    configuration file (`/etc/pure-uploadscript.toml`, then
//!    `/etc/pure-uploadscript.d/*.toml`), or the options given on the
//!    command line ([`Overrides`]);
//! 2. [`Inputs`]: the layers merged, later ones winning, the command line
//!    last, and the defaults filled in;
//! 3. [`Settings`]: checked and resolved (user and group names looked up,
//!    paths made absolute), what the daemon runs with.
//!
//! Each key is named after a long command-line option:
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
use crate::os::systemd;
use crate::upload::debian;
use crate::upload::hash::Hash;
use crate::upload::limits::{
    decide_isolation, CpuQuota, Isolation, IsolationError, MemoryMax, Profile, TasksMax,
};
use crate::upload::pipe::{fifo, DEFAULT_VHOST_DIR};
use crate::upload::program::{self, ProgramError};

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

/// One layer of `pure-uploadscript`'s settings (a file, or the command
/// line); every field is optional.
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

    /// Fills `run`, `uid` and `gid` from Debian's `file`
    /// ([`debian::DEFAULTS_FILE`]) when `run` is not set and
    /// `UPLOADSCRIPT=` is; true when it did.
    pub fn fill_from_debian(&mut self, file: &Path) -> bool {
        if self.run.is_some() {
            return false;
        }
        let Ok(text) = std::fs::read_to_string(file) else {
            return false;
        };
        let found = debian::parse(&text);
        let Some(script) = found.script else {
            return false;
        };
        self.run = Some(script.into());
        if self.uid.is_none() {
            self.uid = found.uid.and_then(|u| u.parse::<Id>().ok());
        }
        if self.gid.is_none() {
            self.gid = found.gid.and_then(|g| g.parse::<Id>().ok());
        }
        true
    }

    /// True when this layer sets the program or how it runs (what a run
    /// in a unit takes from the configuration files only).
    pub fn sets_the_run(&self) -> bool {
        self.run.is_some()
            || self.uid.is_some()
            || self.gid.is_some()
            || self.timeout.is_some()
            || self.hash.is_some()
            || self.keep_env.is_some()
            || self.capture_output.is_some()
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

/// The C tool's pid file, written by default outside systemd.
pub const DEFAULT_PIDFILE: &str = "/var/run/pure-uploadscript.pid";

/// What the command line gives: where the configuration is, and the
/// options that win over it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--config FILE`, which must exist; else [`DEFAULT_PATH`], which may
    /// be absent.
    pub config: Option<PathBuf>,
    /// The options given, as the last layer.
    pub options: UploadscriptConfig,
}

/// Every layer merged and the defaults filled in; not checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// The program, if any layer names one.
    pub run: Option<PathBuf>,
    /// The user to run as, if given.
    pub uid: Option<Id>,
    /// The group to run as, if given.
    pub gid: Option<Id>,
    /// The FIFO (default [`fifo::DEFAULT_PATH`]).
    pub pipe: PathBuf,
    /// The pid file, if given.
    pub pidfile: Option<PathBuf>,
    /// Fork into the background.
    pub daemonize: bool,
    /// Limit on one run (default [`program::DEFAULT_TIMEOUT`]).
    pub timeout: Option<Duration>,
    /// Checksum to log.
    pub hash: Hash,
    /// Pass the daemon's environment.
    pub keep_env: bool,
    /// Capture the program's output.
    pub capture_output: bool,
    /// Where `IP:/path` names are mapped (default [`DEFAULT_VHOST_DIR`]).
    pub vhost_dir: PathBuf,
    /// Where the program runs, if a layer says.
    pub isolation: Option<Isolation>,
    /// The sandbox profile of runs in units.
    pub profile: Profile,
    /// Whether the command line sets the program or how it runs.
    pub command_line_sets_the_run: bool,
}

impl Inputs {
    /// Reads the configuration files `overrides` points at and merges its
    /// options over them.
    pub fn read(overrides: Overrides) -> Result<Inputs, ConfigError> {
        let mut files = UploadscriptConfig::load(overrides.config.as_deref())?;
        if overrides.config.is_none() && overrides.options.run.is_none() {
            files.fill_from_debian(Path::new(debian::DEFAULTS_FILE));
        }
        Ok(Inputs::merge(files, overrides.options))
    }

    /// Merges `options` over `files` and fills in the defaults.
    pub fn merge(mut files: UploadscriptConfig, options: UploadscriptConfig) -> Inputs {
        let command_line_sets_the_run = options.sets_the_run();
        files.merge(options);
        let c = files;
        Inputs {
            run: c.run,
            uid: c.uid,
            gid: c.gid,
            pipe: c.pipe.unwrap_or_else(|| fifo::DEFAULT_PATH.into()),
            pidfile: c.pidfile,
            daemonize: c.daemonize.unwrap_or(false),
            timeout: c.timeout.map_or(Some(program::DEFAULT_TIMEOUT), |t| t.0),
            hash: c.hash.unwrap_or_default(),
            keep_env: c.keep_env.unwrap_or(false),
            capture_output: c.capture_output.unwrap_or(false),
            vhost_dir: c.vhost_dir.unwrap_or_else(|| DEFAULT_VHOST_DIR.into()),
            isolation: c.isolation,
            profile: c.profile.unwrap_or_default(),
            command_line_sets_the_run,
        }
    }
}

/// Everything the daemon needs, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The program to run (absolute).
    pub program: PathBuf,
    /// The uid to switch to, if any.
    pub uid: Option<u32>,
    /// The gid to switch to, if any.
    pub gid: Option<u32>,
    /// The FIFO (absolute).
    pub pipe: PathBuf,
    /// The pid file (absolute), if one is written.
    pub pidfile: Option<PathBuf>,
    /// Whether the pid file was asked for (then failing to write it is an
    /// error).
    pub pidfile_required: bool,
    /// Fork into the background (never under systemd).
    pub daemonize: bool,
    /// Limit on one run.
    pub timeout: Option<Duration>,
    /// Checksum to log.
    pub hash: Hash,
    /// Pass the daemon's environment.
    pub keep_env: bool,
    /// Capture the program's output.
    pub capture_output: bool,
    /// Where `IP:/path` names are mapped.
    pub vhost_dir: PathBuf,
    /// Where the program runs.
    pub isolation: Isolation,
    /// The sandbox profile of runs in units.
    pub profile: Profile,
}

/// Why the settings are not usable.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A configuration file could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No layer names a program.
    #[error("no program to run: give -r PROGRAM, or set run in {DEFAULT_PATH}")]
    NoProgram,
    /// The program is not given by an absolute path.
    #[error(transparent)]
    Program(#[from] ProgramError),
    /// No such user.
    #[error("unknown user: {0}")]
    UnknownUser(String),
    /// No such group.
    #[error("unknown group: {0}")]
    UnknownGroup(String),
    /// The user or group database could not be read.
    #[error("cannot look up {kind} {name}: {source}")]
    Lookup {
        /// `user` or `group`.
        kind: &'static str,
        /// The name looked up.
        name: String,
        /// What the system said.
        source: nix::Error,
    },
    /// The `isolation` asked for cannot be used.
    #[error(transparent)]
    Isolation(#[from] IsolationError),
    /// A relative path cannot be made absolute.
    #[error("{path}: {source}")]
    Path {
        /// The path.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

fn resolve_user(id: &Id) -> Result<(u32, Option<u32>), SettingsError> {
    match id {
        Id::Number(n) => Ok((*n, None)),
        Id::Name(name) => match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => Ok((u.uid.as_raw(), Some(u.gid.as_raw()))),
            Ok(None) => Err(SettingsError::UnknownUser(name.clone())),
            Err(source) => Err(SettingsError::Lookup {
                kind: "user",
                name: name.clone(),
                source,
            }),
        },
    }
}

fn resolve_group(id: &Id) -> Result<u32, SettingsError> {
    match id {
        Id::Number(n) => Ok(*n),
        Id::Name(name) => match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Ok(g.gid.as_raw()),
            Ok(None) => Err(SettingsError::UnknownGroup(name.clone())),
            Err(source) => Err(SettingsError::Lookup {
                kind: "group",
                name: name.clone(),
                source,
            }),
        },
    }
}

fn absolute(path: PathBuf) -> Result<PathBuf, SettingsError> {
    std::path::absolute(&path).map_err(|source| SettingsError::Path { path, source })
}

impl Settings {
    /// Reads the configuration, merges `overrides` over it and checks the
    /// result ([`Inputs::read`], then [`Settings::check`]).
    pub fn resolve(overrides: Overrides) -> Result<Settings, SettingsError> {
        Settings::check(Inputs::read(overrides)?, systemd::under_systemd())
    }

    /// Checks `inputs` and resolves names and paths; `under_systemd`
    /// decides the default pid file (none under systemd).
    pub fn check(inputs: Inputs, under_systemd: bool) -> Result<Settings, SettingsError> {
        let program = inputs.run.ok_or(SettingsError::NoProgram)?;
        if !program.is_absolute() {
            return Err(ProgramError::NotAbsolute(program).into());
        }
        let (uid, user_gid) = match &inputs.uid {
            Some(id) => {
                let (uid, gid) = resolve_user(id)?;
                (Some(uid), gid)
            }
            None => (None, None),
        };
        let gid = match &inputs.gid {
            Some(id) => Some(resolve_group(id)?),
            None => user_gid,
        };
        let pidfile_required = inputs.pidfile.is_some();
        let pidfile = match inputs.pidfile {
            Some(p) => Some(absolute(p)?),
            None if !under_systemd => Some(DEFAULT_PIDFILE.into()),
            None => None,
        };
        Ok(Settings {
            program,
            uid,
            gid,
            pipe: absolute(inputs.pipe)?,
            pidfile,
            pidfile_required,
            daemonize: inputs.daemonize,
            timeout: inputs.timeout,
            hash: inputs.hash,
            keep_env: inputs.keep_env,
            capture_output: inputs.capture_output,
            vhost_dir: inputs.vhost_dir,
            isolation: decide_isolation(
                inputs.isolation,
                inputs.command_line_sets_the_run,
                inputs.profile,
                under_systemd,
            )?,
            profile: inputs.profile,
        })
    }

    /// The identity the program will run as: the C tool, run as root,
    /// always switches (to uid 0 and gid 0 unless told otherwise); as
    /// another user, only `-u`/`-g` switch.
    pub fn target_identity(&self) -> Option<(u32, u32)> {
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        if euid == 0 {
            Some((self.uid.unwrap_or(0), self.gid.unwrap_or(0)))
        } else if self.uid.is_some() || self.gid.is_some() {
            Some((self.uid.unwrap_or(euid), self.gid.unwrap_or(egid)))
        } else {
            None
        }
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
    fn debian_upload_script_fills_run_unless_the_toml_sets_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pure-ftpd-common");
        std::fs::write(&file, "UPLOADSCRIPT=/bin/debian\nUPLOADUID=1001\n").unwrap();
        let mut config = UploadscriptConfig::default();
        assert!(config.fill_from_debian(&file));
        assert_eq!(config.run, Some("/bin/debian".into()));
        assert_eq!(config.uid, Some(Id::Number(1001)));
        assert_eq!(config.gid, None);
        let mut config = UploadscriptConfig {
            run: Some("/bin/toml".into()),
            ..Default::default()
        };
        assert!(!config.fill_from_debian(&file));
        assert_eq!(config.run, Some("/bin/toml".into()));
        assert!(!UploadscriptConfig::default().fill_from_debian(&dir.path().join("absent")));
    }

    #[test]
    fn a_unit_takes_its_run_from_the_files_only() {
        let files = UploadscriptConfig {
            isolation: Some(Isolation::Unit),
            ..Default::default()
        };
        let e = Settings::check(Inputs::merge(files.clone(), run_true()), true).unwrap_err();
        assert!(
            matches!(
                e,
                SettingsError::Isolation(IsolationError::CommandLineSetsTheRun)
            ),
            "{e:?}"
        );
        let s = Settings::check(Inputs::merge(files, Default::default()), true);
        assert!(matches!(s, Err(SettingsError::NoProgram)), "{s:?}");
        let s = check(run_true(), false).unwrap();
        assert_eq!(s.isolation, Isolation::Process);
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

    fn run_true() -> UploadscriptConfig {
        UploadscriptConfig {
            run: Some("/bin/true".into()),
            ..Default::default()
        }
    }

    fn check(options: UploadscriptConfig, under_systemd: bool) -> Result<Settings, SettingsError> {
        Settings::check(Inputs::merge(Default::default(), options), under_systemd)
    }

    #[test]
    fn defaults_follow_the_c_tool() {
        let s = check(run_true(), false).unwrap();
        assert_eq!(s.program, PathBuf::from("/bin/true"));
        assert_eq!(s.pipe, PathBuf::from("/run/pure-ftpd.upload.pipe"));
        assert_eq!(s.pidfile, Some(PathBuf::from(DEFAULT_PIDFILE)));
        assert!(!s.pidfile_required);
        assert_eq!(s.timeout, Some(Duration::from_secs(600)));
        assert_eq!((s.uid, s.gid), (None, None));
        assert_eq!(s.hash, Hash::None);
        assert!(!s.keep_env && !s.capture_output && !s.daemonize);
        assert_eq!(s.vhost_dir, PathBuf::from("/etc/pure-ftpd/pure-ftpd"));
        // Under systemd there is no pid file unless asked for.
        let s = check(run_true(), true).unwrap();
        assert_eq!(s.pidfile, None);
        let s = check(
            UploadscriptConfig {
                pidfile: Some("/run/x.pid".into()),
                ..run_true()
            },
            true,
        )
        .unwrap();
        assert_eq!(s.pidfile, Some(PathBuf::from("/run/x.pid")));
        assert!(s.pidfile_required);
    }

    #[test]
    fn the_command_line_wins_over_the_files() {
        let files = UploadscriptConfig {
            run: Some("/from/config".into()),
            uid: Some(Id::Number(1)),
            gid: Some(Id::Number(2)),
            timeout: Some(Timeout(None)),
            hash: Some(Hash::Sha256),
            keep_env: Some(true),
            pipe: Some("/run/config.pipe".into()),
            vhost_dir: Some("/etc/pure-ftpd".into()),
            ..Default::default()
        };
        let options = UploadscriptConfig {
            uid: Some(Id::Number(3)),
            timeout: Some(Timeout(Some(Duration::from_secs(5)))),
            hash: Some(Hash::None),
            ..run_true()
        };
        let s = Settings::check(Inputs::merge(files.clone(), options), true).unwrap();
        assert_eq!(s.program, PathBuf::from("/bin/true"));
        assert_eq!((s.uid, s.gid), (Some(3), Some(2)));
        assert_eq!(s.timeout, Some(Duration::from_secs(5)));
        assert_eq!(s.hash, Hash::None);
        assert!(s.keep_env);
        assert_eq!(s.pipe, PathBuf::from("/run/config.pipe"));
        assert_eq!(s.vhost_dir, PathBuf::from("/etc/pure-ftpd"));
        let s = Settings::check(Inputs::merge(files, Default::default()), true).unwrap();
        assert_eq!(s.program, PathBuf::from("/from/config"));
        assert_eq!(s.timeout, None);
        assert_eq!(s.hash, Hash::Sha256);
    }

    #[test]
    fn overrides_name_the_file_and_win_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("u.toml");
        std::fs::write(&main, "run = \"/from/file\"\nkeep_env = true\n").unwrap();
        std::fs::create_dir(dir.path().join("u.d")).unwrap();
        std::fs::write(dir.path().join("u.d/10.toml"), "capture_output = true\n").unwrap();
        let inputs = Inputs::read(Overrides {
            config: Some(main.clone()),
            options: UploadscriptConfig {
                daemonize: Some(true),
                ..run_true()
            },
        })
        .unwrap();
        assert_eq!(inputs.run, Some("/bin/true".into()));
        assert!(inputs.keep_env && inputs.capture_output && inputs.daemonize);
        let missing = dir.path().join("missing.toml");
        let e = Settings::resolve(Overrides {
            config: Some(missing.clone()),
            options: run_true(),
        })
        .unwrap_err();
        assert!(
            matches!(&e, SettingsError::Config(ConfigError::NotFound { path }) if *path == missing),
            "{e:?}"
        );
    }

    #[test]
    fn users_and_groups_by_name_or_number() {
        let as_user = |uid: &str, gid: Option<&str>| {
            check(
                UploadscriptConfig {
                    uid: Some(uid.parse().unwrap()),
                    gid: gid.map(|g| g.parse().unwrap()),
                    ..run_true()
                },
                true,
            )
        };
        let s = as_user("nobody", None).unwrap();
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        assert_eq!(
            (s.uid, s.gid),
            (Some(nobody.uid.as_raw()), Some(nobody.gid.as_raw()))
        );
        // A number alone keeps C's meaning: the group is not implied.
        let s = as_user("65534", None).unwrap();
        assert_eq!((s.uid, s.gid), (Some(65534), None));
        let s = as_user("0", Some("root")).unwrap();
        assert_eq!(s.gid, Some(0));
        let e = as_user("no-such-user-x", None).unwrap_err();
        assert!(
            matches!(&e, SettingsError::UnknownUser(n) if n == "no-such-user-x"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "unknown user: no-such-user-x");
        let e = as_user("0", Some("no-such-group-x")).unwrap_err();
        assert!(
            matches!(&e, SettingsError::UnknownGroup(n) if n == "no-such-group-x"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "unknown group: no-such-group-x");
    }

    #[test]
    fn a_program_is_required_and_absolute() {
        let e = check(Default::default(), true).unwrap_err();
        assert!(matches!(e, SettingsError::NoProgram), "{e:?}");
        assert!(e.to_string().starts_with("no program to run"), "{e}");
        let e = check(
            UploadscriptConfig {
                run: Some("hook.sh".into()),
                ..Default::default()
            },
            true,
        )
        .unwrap_err();
        assert!(
            matches!(&e, SettingsError::Program(ProgramError::NotAbsolute(p)) if p.as_os_str() == "hook.sh"),
            "{e:?}"
        );
    }

    #[test]
    fn relative_paths_become_absolute_before_chdir() {
        let s = check(
            UploadscriptConfig {
                pipe: Some("rel.pipe".into()),
                pidfile: Some("rel.pid".into()),
                ..run_true()
            },
            true,
        )
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(s.pipe, cwd.join("rel.pipe"));
        assert_eq!(s.pidfile, Some(cwd.join("rel.pid")));
    }
}
