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
//!
//! As systemd does with its own `.d` directories, drop-ins whose names
//! start with a dot are ignored. Every file must be a regular file
//! (symbolic links to one are fine) of at most [`MAX_FILE_LEN`] bytes:
//! files are opened without blocking (a FIFO cannot hang the daemon) and
//! read with that limit (a device such as `/dev/zero` cannot fill the
//! memory). `/dev/null` is read as an empty file, as systemd does.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Largest configuration file read, in bytes (1 MiB).
pub const MAX_FILE_LEN: u64 = 1 << 20;

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
    /// A file (after following symbolic links) is not a regular file.
    #[error("{path}: not a regular file but a {kind}")]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        kind: FileKind,
    },
    /// A file is larger than [`MAX_FILE_LEN`].
    #[error("{path}: larger than {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, [`MAX_FILE_LEN`].
        limit: u64,
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

/// What a configuration path is when it is not a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A FIFO (named pipe).
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device (other than `/dev/null`).
    CharacterDevice,
    /// A block device.
    BlockDevice,
    /// Anything else.
    Other,
}

impl FileKind {
    fn of(file_type: std::fs::FileType) -> FileKind {
        if file_type.is_dir() {
            FileKind::Directory
        } else if file_type.is_fifo() {
            FileKind::Fifo
        } else if file_type.is_socket() {
            FileKind::Socket
        } else if file_type.is_char_device() {
            FileKind::CharacterDevice
        } else if file_type.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::Other
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "directory",
            FileKind::Fifo => "FIFO",
            FileKind::Socket => "socket",
            FileKind::CharacterDevice => "character device",
            FileKind::BlockDevice => "block device",
            FileKind::Other => "file of unknown type",
        })
    }
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

/// `/dev/null`'s device number.
const DEV_NULL: libc::dev_t = nix::sys::stat::makedev(1, 3);

/// Opens `path` (following symbolic links) without blocking, even on a
/// FIFO, and checks what the descriptor refers to: `Ok(None)` when the
/// path does not exist, an empty text for `/dev/null`, else the bytes of a
/// regular file of at most [`MAX_FILE_LEN`] bytes.
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let file = match file {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let meta = file.metadata().map_err(read_err)?;
    let file_type = meta.file_type();
    if file_type.is_char_device() && meta.rdev() == DEV_NULL {
        return Ok(Some(Vec::new()));
    }
    if !file_type.is_file() {
        return Err(ConfigError::NotRegular {
            path: path.to_owned(),
            kind: FileKind::of(file_type),
        });
    }
    let too_large = || ConfigError::TooLarge {
        path: path.to_owned(),
        limit: MAX_FILE_LEN,
    };
    if meta.len() > MAX_FILE_LEN {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // One byte more than allowed tells a file that grew meanwhile.
    Read::take(&file, MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(too_large());
    }
    Ok(Some(bytes))
}

/// Reads one file; `Ok(None)` when it does not exist. See the
/// [module](self) docs for what is refused.
pub fn read_file<T: Fragment>(path: &Path) -> Result<Option<T>, ConfigError> {
    let Some(bytes) = read_bounded(path)? else {
        return Ok(None);
    };
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

/// The `*.toml` files of `dir` in byte order of their names, leaving out
/// names that start with a dot; empty when the directory does not exist.
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
        let entry = entry.map_err(read_err)?;
        let hidden = entry.file_name().as_encoded_bytes().starts_with(b".");
        let path = entry.path();
        if !hidden && path.extension().is_some_and(|ext| ext == "toml") {
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

    /// Runs `f` on another thread and fails the test if it has not
    /// returned within ten seconds (instead of hanging the suite).
    fn promptly<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the loader blocked")
    }

    fn mkfifo(path: &Path) {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    }

    fn explicit(path: &Path) -> Result<Sample, ConfigError> {
        let path = path.to_owned();
        promptly(move || load_explicit_or_default::<Sample>(Some(&path), Path::new("/nonexistent")))
    }

    fn not_regular(err: ConfigError, want_path: &Path, want_kind: FileKind) {
        assert!(
            matches!(&err, ConfigError::NotRegular { path, kind } if path == want_path && *kind == want_kind),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{}: not a regular file but a {want_kind}",
                want_path.display()
            )
        );
    }

    #[test]
    fn devices_are_refused_not_read() {
        not_regular(
            explicit(Path::new("/dev/zero")).unwrap_err(),
            Path::new("/dev/zero"),
            FileKind::CharacterDevice,
        );
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("x.toml");
        std::fs::write(&main, "count = 1\n").unwrap();
        let d = drop_in_dir_for(&main);
        std::fs::create_dir(&d).unwrap();
        let zero = d.join("50-zero.toml");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        not_regular(
            explicit(&main).unwrap_err(),
            &zero,
            FileKind::CharacterDevice,
        );
    }

    #[test]
    fn dev_null_reads_as_empty() {
        assert_eq!(explicit(Path::new("/dev/null")).unwrap(), Sample::default());
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("x.toml");
        std::fs::write(&main, "count = 1\n").unwrap();
        let d = drop_in_dir_for(&main);
        std::fs::create_dir(&d).unwrap();
        std::os::unix::fs::symlink("/dev/null", d.join("50-null.toml")).unwrap();
        assert_eq!(explicit(&main).unwrap().count, Some(1));
    }

    #[test]
    fn fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.toml");
        mkfifo(&fifo);
        not_regular(explicit(&fifo).unwrap_err(), &fifo, FileKind::Fifo);
        let main = dir.path().join("x.toml");
        std::fs::write(&main, "count = 1\n").unwrap();
        let d = drop_in_dir_for(&main);
        std::fs::create_dir(&d).unwrap();
        let drop_in = d.join("10-fifo.toml");
        mkfifo(&drop_in);
        not_regular(explicit(&main).unwrap_err(), &drop_in, FileKind::Fifo);
        // Through a symbolic link too.
        std::fs::remove_file(&drop_in).unwrap();
        std::os::unix::fs::symlink(&fifo, &drop_in).unwrap();
        not_regular(explicit(&main).unwrap_err(), &drop_in, FileKind::Fifo);
    }

    #[test]
    fn directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        not_regular(
            explicit(dir.path()).unwrap_err(),
            dir.path(),
            FileKind::Directory,
        );
        let main = dir.path().join("x.toml");
        std::fs::write(&main, "").unwrap();
        let sub = drop_in_dir_for(&main).join("10-dir.toml");
        std::fs::create_dir_all(&sub).unwrap();
        not_regular(explicit(&main).unwrap_err(), &sub, FileKind::Directory);
    }

    #[test]
    fn oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("x.toml");
        // Exactly the limit: read.
        let mut text = "count = 3\n#".to_owned();
        text.push_str(&"x".repeat(MAX_FILE_LEN as usize - text.len()));
        std::fs::write(&main, &text).unwrap();
        assert_eq!(explicit(&main).unwrap().count, Some(3));
        // One byte more: refused, naming the file.
        text.push('x');
        std::fs::write(&main, &text).unwrap();
        let err = explicit(&main).unwrap_err();
        assert!(
            matches!(&err, ConfigError::TooLarge { path, limit } if *path == main && *limit == MAX_FILE_LEN),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("{}: larger than 1048576 bytes", main.display())
        );
        // As a drop-in too.
        std::fs::write(&main, "").unwrap();
        let d = drop_in_dir_for(&main);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("10-big.toml"), &text).unwrap();
        let err = explicit(&main).unwrap_err();
        assert!(
            matches!(&err, ConfigError::TooLarge { path, .. } if *path == d.join("10-big.toml"))
        );
    }

    #[test]
    fn hidden_drop_ins_are_ignored_and_links_to_files_followed() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("x.toml");
        std::fs::write(&main, "count = 1\n").unwrap();
        let d = drop_in_dir_for(&main);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join(".hidden.toml"), "count = 9\n").unwrap();
        std::fs::write(d.join(".toml"), "count = 8\n").unwrap();
        assert_eq!(drop_ins(&d).unwrap(), Vec::<PathBuf>::new());
        assert_eq!(explicit(&main).unwrap().count, Some(1));
        let elsewhere = dir.path().join("shared.conf");
        std::fs::write(&elsewhere, "name = \"linked\"\n").unwrap();
        std::os::unix::fs::symlink(&elsewhere, d.join("20-linked.toml")).unwrap();
        let linked_main = dir.path().join("main-link.toml");
        std::os::unix::fs::symlink(&main, &linked_main).unwrap();
        let got = explicit(&main).unwrap();
        assert_eq!((got.name.as_deref(), got.count), (Some("linked"), Some(1)));
        assert_eq!(explicit(&linked_main).unwrap().count, Some(1));
    }
}
