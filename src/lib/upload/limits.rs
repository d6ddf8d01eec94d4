//! Values of the settings that decide where and how the program runs:
//! `isolation`, `profile`, `memory_max`, `cpu_quota`, `tasks_max`.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// Why the `isolation` asked for cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsolationError {
    /// A unit takes the program and its settings from the configuration
    /// files, but the command line sets them.
    #[error(
        "isolation = \"unit\" takes the program and its settings from the configuration \
         files only: -r, -u, -g, --timeout, --hash, --keep-env and --capture-output \
         need isolation = \"process\""
    )]
    CommandLineSetsTheRun,
}

/// Decides where the program runs: `configured` when set, else in a unit
/// under systemd when the run socket of `profile` exists and the command
/// line does not set the program or its settings
/// (`command_line_sets_the_run`: a unit takes them from the configuration
/// files only).
pub fn decide_isolation(
    configured: Option<Isolation>,
    command_line_sets_the_run: bool,
    profile: Profile,
    under_systemd: bool,
) -> Result<Isolation, IsolationError> {
    match configured {
        Some(Isolation::Unit) if command_line_sets_the_run => {
            Err(IsolationError::CommandLineSetsTheRun)
        }
        Some(isolation) => Ok(isolation),
        None if under_systemd
            && !command_line_sets_the_run
            && std::path::Path::new(profile.socket()).exists() =>
        {
            Ok(Isolation::Unit)
        }
        None => Ok(Isolation::Process),
    }
}

/// `isolation`: where the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A child process of the reader, in the reader's own sandbox (the C
    /// tool's way, and the only way without systemd).
    Process,
    /// A systemd unit of its own per run, started through
    /// `pure-uploadscript-run.socket`.
    Unit,
}

impl Isolation {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Process => "process",
            Isolation::Unit => "unit",
        }
    }

    /// Words for the start-up log line.
    pub fn describe(self, profile: Profile) -> String {
        match self {
            Isolation::Process => "as a child process".into(),
            Isolation::Unit => format!(
                "in a unit of its own per upload ({}, profile {profile})",
                profile.socket()
            ),
        }
    }
}

/// `profile`: the sandbox of a run's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Unconfined, as root unless `uid`/`gid` say otherwise: what programs
    /// run by the C tool from an init script could do.
    #[default]
    Default,
    /// Read-only system, private network and `/tmp`, no capabilities,
    /// `MemoryDenyWriteExecute=`.
    Strict,
}

impl Profile {
    /// The profile's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Strict => "strict",
        }
    }

    /// The socket whose units run programs with this profile.
    pub fn socket(self) -> &'static str {
        match self {
            Profile::Default => RUN_SOCKET,
            Profile::Strict => RUN_SOCKET_STRICT,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The socket of `pure-uploadscript-run.socket`.
pub const RUN_SOCKET: &str = "/run/pure-uploadscript/run.sock";
/// The socket of `pure-uploadscript-run-strict.socket`.
pub const RUN_SOCKET_STRICT: &str = "/run/pure-uploadscript/run-strict.sock";

/// Default `tasks_max`: processes and threads of one run at once.
pub const DEFAULT_TASKS_MAX: u64 = 512;

/// A limit that may be `"infinity"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound(pub Option<u64>);

fn parse_bytes(s: &str) -> Result<Bound, String> {
    let t = s.trim();
    if t == "infinity" {
        return Ok(Bound(None));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected bytes such as 536870912, 512M, 2G or infinity"))?;
    let factor: u64 = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
    };
    let bytes = n
        .checked_mul(factor)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{s:?}: out of range"))?;
    Ok(Bound(Some(bytes)))
}

/// `memory_max`: bytes, `"512M"`, `"2G"`, or `"infinity"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryMax(pub Bound);

impl FromStr for MemoryMax {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_bytes(s).map(MemoryMax)
    }
}

/// `tasks_max`: a number of tasks, or `"infinity"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TasksMax(pub Bound);

impl FromStr for TasksMax {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "infinity" => Ok(TasksMax(Bound(None))),
            t => match t.parse::<u64>() {
                Ok(n) if n > 0 => Ok(TasksMax(Bound(Some(n)))),
                _ => Err(format!("{s:?}: expected a number of tasks or infinity")),
            },
        }
    }
}

/// `cpu_quota`: percent of one CPU, as systemd's `CPUQuota=` (`"50%"`,
/// `"200%"`), or `"infinity"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuQuota(pub Option<u32>);

impl FromStr for CpuQuota {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t == "infinity" {
            return Ok(CpuQuota(None));
        }
        match t.strip_suffix('%').map(str::parse::<u32>) {
            Some(Ok(n)) if n > 0 && n <= 100_000 => Ok(CpuQuota(Some(n))),
            _ => Err(format!(
                "{s:?}: expected a percentage such as 50% or 200%, or infinity"
            )),
        }
    }
}

macro_rules! deserialize_text_or_number {
    ($ty:ty) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Raw {
                    Number(u64),
                    Text(String),
                }
                match Raw::deserialize(d)? {
                    Raw::Number(n) => n.to_string().parse().map_err(serde::de::Error::custom),
                    Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
                }
            }
        }
    };
}
deserialize_text_or_number!(MemoryMax);
deserialize_text_or_number!(TasksMax);
deserialize_text_or_number!(CpuQuota);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_garbage_is_refused() {
        assert_eq!("512M".parse(), Ok(MemoryMax(Bound(Some(512 << 20)))));
        assert_eq!("1048576".parse(), Ok(MemoryMax(Bound(Some(1 << 20)))));
        assert_eq!("infinity".parse(), Ok(MemoryMax(Bound(None))));
        assert_eq!("64".parse(), Ok(TasksMax(Bound(Some(64)))));
        assert_eq!("50%".parse(), Ok(CpuQuota(Some(50))));
        assert_eq!("infinity".parse(), Ok(CpuQuota(None)));
        for bad in ["", "0", "-1", "1.5G", "12X", "99999999999999999999T", "M"] {
            assert!(bad.parse::<MemoryMax>().is_err(), "{bad}");
        }
        for bad in ["", "0", "-3", "lots"] {
            assert!(bad.parse::<TasksMax>().is_err(), "{bad}");
        }
        for bad in ["", "50", "0%", "%", "-5%", "100001%"] {
            assert!(bad.parse::<CpuQuota>().is_err(), "{bad}");
        }
    }
}
