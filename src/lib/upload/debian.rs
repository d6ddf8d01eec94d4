//! Debian's `/etc/default/pure-ftpd-common`: when `UPLOADSCRIPT=` is set
//! there, Debian's init script starts `pure-uploadscript -r UPLOADSCRIPT -B
//! [-u UPLOADUID] [-g UPLOADGID]`. So that such a set-up keeps working under
//! systemd, where `pure-uploadscript.service` reads the pipe, the program
//! and its identity are taken from there when `/etc/pure-uploadscript.toml`
//! (and its drop-ins) do not set `run`. The file is read, never executed:
//! plain `NAME=value` lines, optionally quoted.

use std::path::Path;

/// Debian's file.
pub const DEFAULTS_FILE: &str = "/etc/default/pure-ftpd-common";

/// The three settings, as found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadDefaults {
    /// `UPLOADSCRIPT`.
    pub script: Option<String>,
    /// `UPLOADUID`.
    pub uid: Option<String>,
    /// `UPLOADGID`.
    pub gid: Option<String>,
}

/// Reads `NAME=value` assignments of `UPLOADSCRIPT`, `UPLOADUID` and
/// `UPLOADGID` (last one wins; empty values are unset). Lines that are not
/// simple assignments are ignored.
pub fn parse(text: &str) -> UploadDefaults {
    let mut found = UploadDefaults::default();
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = match value.as_bytes().first() {
            Some(&q @ (b'"' | b'\'')) => match value[1..].find(q as char) {
                Some(end) => &value[1..1 + end],
                None => continue,
            },
            _ => value
                .split(|c: char| c.is_whitespace() || c == '#')
                .next()
                .unwrap_or(""),
        };
        if value.contains(['$', '`', '\\']) {
            continue;
        }
        let value = (!value.is_empty()).then(|| value.to_owned());
        match name {
            "UPLOADSCRIPT" => found.script = value,
            "UPLOADUID" => found.uid = value,
            "UPLOADGID" => found.gid = value,
            _ => {}
        }
    }
    found
}

/// True when, on a machine booted with systemd, the enabled
/// `pure-uploadscript.path` starts `pure-uploadscript.service` on `pipe`
/// (the default pipe): then a reader started by Debian's init script
/// (`-B`) leaves the pipe to it instead of competing for it.
pub fn systemd_reads(pipe: &Path) -> bool {
    let default = Path::new(crate::upload::pipe::fifo::DEFAULT_PATH);
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    Path::new("/run/systemd/system").is_dir()
        && (same(pipe, default) || same(pipe, Path::new("/var/run/pure-ftpd.upload.pipe")))
        && Path::new("/etc/systemd/system/paths.target.wants/pure-uploadscript.path").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_assignments_are_read_and_garbage_ignored() {
        let text = "# UPLOADSCRIPT=/commented\nSTANDALONE_OR_INETD=standalone\n\
                    UPLOADSCRIPT=\"/usr/local/sbin/handler\"\nUPLOADUID=ftp # who\n\
                    export UPLOADGID='nogroup'\nUPLOADSCRIPT\n=x\n\u{0}\u{7f}=\n";
        assert_eq!(
            parse(text),
            UploadDefaults {
                script: Some("/usr/local/sbin/handler".into()),
                uid: Some("ftp".into()),
                gid: Some("nogroup".into()),
            }
        );
        // Debian's shipped file: everything empty.
        assert_eq!(
            parse("UPLOADSCRIPT=\nUPLOADUID=\nUPLOADGID=\n"),
            UploadDefaults::default()
        );
        // Shell that would need running is not guessed at.
        assert_eq!(
            parse("UPLOADSCRIPT=$(cat /x)\nUPLOADUID=\"unterminated").script,
            None
        );
    }
}
