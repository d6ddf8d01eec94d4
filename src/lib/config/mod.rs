//! Configuration files: one main TOML file plus drop-ins, merged.
//!
//! A daemon's settings are a struct of `Option` fields ([`Fragment`]). The
//! main file (e.g. `/etc/pure-uploadscript.toml`) is read first, then every
//! `*.toml` in the drop-in directory (e.g. `/etc/pure-uploadscript.d/`) in
//! byte order of their names; a key set by a later file wins. Command-line
//! options are merged last by the binaries. Missing files are not errors;
//! unreadable or malformed ones are, naming the file and the line.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub mod ftpwhod;
pub mod uploadscript;

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
    let mut merged = T::default();
    if let Some(fragment) = read_file::<T>(main)? {
        merged.merge(fragment);
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
