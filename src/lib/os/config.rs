//! Configuration files: one main TOML file plus drop-ins, merged.
//!
//! A daemon's settings are a struct of `Option` fields ([`Fragment`]). The
//! main file (e.g. `/etc/pure-uploadscript.toml`) is read first, then every
//! `*.toml` in the drop-in directory (e.g. `/etc/pure-uploadscript.d/`) in
//! byte order of their names; a key set by a later file wins. Command-line
//! options are merged last by the binaries. A missing default main file
//! or drop-in directory is not an error, but a main file named on the
//! command line must exist ([`Source`]); unreadable or malformed files are
//! errors naming the file and the line.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A configuration layer whose fields are all optional.
pub trait Fragment: DeserializeOwned + Default {
    /// Overwrites every field of `self` that `later` sets.
    fn merge(&mut self, later: Self);
}

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or directory exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A main file named explicitly (`--config FILE`) does not exist.
    #[error("{path}: configuration file not found")]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// A file is not valid TOML or has an unknown key or a wrong type.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error (1 when the parser gave no position).
        line: usize,
        /// The parser's message.
        message: String,
    },
}

/// Parses one TOML text; `path` only names it in errors.
pub fn parse<T: Fragment>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(1);
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            message: e.message().trim().to_owned(),
        }
    })
}

/// Reads one file; `Ok(None)` when it does not exist.
pub fn read_file<T: Fragment>(path: &Path) -> Result<Option<T>, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count(),
                message: "not valid UTF-8".into(),
            })?;
            parse(path, &text).map(Some)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The `*.toml` files of `dir` in byte order of their names; empty when the
/// directory does not exist.
pub fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: dir.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_err(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(read_err)?.path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads `main` (if it exists), then the drop-ins of `drop_in_dir`, merged
/// in that order.
pub fn load<T: Fragment>(main: &Path, drop_in_dir: Option<&Path>) -> Result<T, ConfigError> {
    load_main(main, false, drop_in_dir)
}

fn load_main<T: Fragment>(
    main: &Path,
    must_exist: bool,
    drop_in_dir: Option<&Path>,
) -> Result<T, ConfigError> {
    let mut merged = T::default();
    match read_file::<T>(main)? {
        Some(fragment) => merged.merge(fragment),
        None if must_exist => {
            return Err(ConfigError::NotFound {
                path: main.to_owned(),
            })
        }
        None => {}
    }
    if let Some(dir) = drop_in_dir {
        for path in drop_ins(dir)? {
            if let Some(fragment) = read_file::<T>(&path)? {
                merged.merge(fragment);
            }
        }
    }
    Ok(merged)
}

/// Where the main configuration file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The daemon's default path: it may be absent (defaults apply).
    Default(PathBuf),
    /// Named by the administrator (`--config FILE`): it must exist.
    Explicit(PathBuf),
}

impl Source {
    /// `explicit` when given, else `default`.
    pub fn explicit_or_default(explicit: Option<&Path>, default: &Path) -> Source {
        match explicit {
            Some(path) => Source::Explicit(path.to_owned()),
            None => Source::Default(default.to_owned()),
        }
    }

    /// The main file.
    pub fn path(&self) -> &Path {
        match self {
            Source::Default(path) | Source::Explicit(path) => path,
        }
    }

    /// Loads the main file and its drop-in directory
    /// ([`drop_in_dir_for`], optional in both cases); an explicit main
    /// file that does not exist is [`ConfigError::NotFound`].
    pub fn load<T: Fragment>(&self) -> Result<T, ConfigError> {
        let main = self.path();
        let explicit = matches!(self, Source::Explicit(_));
        load_main(main, explicit, Some(&drop_in_dir_for(main)))
    }
}

/// Loads `explicit` (which must exist) or else `default` (which may be
/// absent), each with its drop-in directory: the rule both daemons apply
/// to `--config`.
pub fn load_explicit_or_default<T: Fragment>(
    explicit: Option<&Path>,
    default: &Path,
) -> Result<T, ConfigError> {
    Source::explicit_or_default(explicit, default).load()
}

/// The drop-in directory that goes with a main file: `/etc/x.toml` →
/// `/etc/x.d`.
pub fn drop_in_dir_for(main: &Path) -> PathBuf {
    main.with_extension("d")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: Option<String>,
        count: Option<u32>,
    }

    impl Fragment for Sample {
        fn merge(&mut self, later: Self) {
            if later.name.is_some() {
                self.name = later.name;
            }
            if later.count.is_some() {
                self.count = later.count;
            }
        }
    }

    #[test]
    fn drop_ins_override_main_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("x.toml");
        std::fs::write(&main, "name = \"main\"\ncount = 1\n").unwrap();
        let d = drop_in_dir_for(&main);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("20-b.toml"), "name = \"b\"\n").unwrap();
        std::fs::write(d.join("10-a.toml"), "name = \"a\"\ncount = 2\n").unwrap();
        std::fs::write(d.join("ignored.conf"), "garbage").unwrap();
        let got: Sample = load(&main, Some(&d)).unwrap();
        assert_eq!(
            got,
            Sample {
                name: Some("b".into()),
                count: Some(2)
            }
        );
    }

    #[test]
    fn missing_files_give_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("none.toml");
        let got: Sample = load(&main, Some(&drop_in_dir_for(&main))).unwrap();
        assert_eq!(got, Sample::default());
    }

    #[test]
    fn a_missing_default_gives_defaults_and_drop_ins_still_apply() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("daemon.toml");
        let got: Sample = load_explicit_or_default(None, &default).unwrap();
        assert_eq!(got, Sample::default());
        let d = drop_in_dir_for(&default);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("10-a.toml"), "count = 7\n").unwrap();
        let got: Sample = load_explicit_or_default(None, &default).unwrap();
        assert_eq!(got.count, Some(7));
        std::fs::write(&default, "name = \"default\"\n").unwrap();
        let got: Sample = load_explicit_or_default(None, &default).unwrap();
        assert_eq!(
            got,
            Sample {
                name: Some("default".into()),
                count: Some(7)
            }
        );
    }

    #[test]
    fn a_missing_explicit_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("daemon.toml");
        std::fs::write(&default, "name = \"default\"\n").unwrap();
        let asked = dir.path().join("asked.toml");
        // Even with its drop-in directory present.
        std::fs::create_dir(drop_in_dir_for(&asked)).unwrap();
        let err = load_explicit_or_default::<Sample>(Some(&asked), &default).unwrap_err();
        assert!(matches!(&err, ConfigError::NotFound { path } if *path == asked));
        assert_eq!(
            err.to_string(),
            format!("{}: configuration file not found", asked.display())
        );
        // Present but empty: defaults, not the default file's settings.
        std::fs::write(&asked, "").unwrap();
        let got: Sample = load_explicit_or_default(Some(&asked), &default).unwrap();
        assert_eq!(got, Sample::default());
        // Without its drop-in directory: still fine.
        std::fs::remove_dir(drop_in_dir_for(&asked)).unwrap();
        std::fs::write(&asked, "count = 2\n").unwrap();
        let got: Sample = load_explicit_or_default(Some(&asked), &default).unwrap();
        assert_eq!(got.count, Some(2));
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("x.toml");
        std::fs::write(&main, "name = \"ok\"\n\ncount = \"three\"\n").unwrap();
        let err = load::<Sample>(&main, None).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:3: ", main.display())), "{err}");
        std::fs::write(&main, "name = \"ok\"\nbogus = 1\n").unwrap();
        let err = load::<Sample>(&main, None).unwrap_err().to_string();
        assert!(err.contains(":2: ") && err.contains("bogus"), "{err}");
        std::fs::write(&main, b"name = \"\xff\"\n").unwrap();
        let err = load::<Sample>(&main, None).unwrap_err().to_string();
        assert!(err.contains(":1: not valid UTF-8"), "{err}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("x.toml");
        for text in ["[[[", "= =", "name = ", "\u{0}", "name = 'a'\nname = 'b'"] {
            std::fs::write(&main, text).unwrap();
            assert!(load::<Sample>(&main, None).is_err(), "{text:?}");
        }
    }
}
