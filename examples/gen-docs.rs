//! Writes the manual pages and shell completions of every binary, generated
//! from their clap definitions, for the packages.
//!
//! ```text
//! cargo run --release --example gen-docs -- OUTDIR
//! ```
//!
//! Layout under `OUTDIR`: `man/<name>.<section>` (roff, uncompressed),
//! `completions/bash/<name>`, `completions/zsh/_<name>`,
//! `completions/fish/<name>.fish`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// One binary: its clap command (named after the binary), its man section
/// and the sections added after the options.
pub struct Page {
    /// The command, with `name` set to the installed binary's name.
    pub command: clap::Command,
    /// `8` for daemons and administrator tools in sbin, `1` for user tools.
    pub section: &'static str,
    /// FILES: (path, what it is).
    pub files: &'static [(&'static str, &'static str)],
    /// SEE ALSO: `name(section)` references.
    pub see_also: &'static [&'static str],
}

/// Every installed binary.
pub fn pages() -> Vec<Page> {
    use pureftpd_systemd::cli;
    vec![
        Page {
            command: named(cli::ftpwho::Args::command(), "pure-ftpwho"),
            section: "8",
            files: &[(
                "/var/run/pure-ftpd/",
                "Pure-FTPd's scoreboard: one file per session, readable by root only.",
            )],
            see_also: &["ftpwho-query(1)", "ftpwhod(8)", "pure-ftpd(8)"],
        },
        Page {
            command: named(cli::uploadscript::Args::command(), "pure-uploadscript"),
            section: "8",
            files: &[
                ("/etc/pure-uploadscript.toml", "Settings; keys are named after the long options."),
                ("/etc/pure-uploadscript.d/*.toml", "Drop-ins read after the main file, in name order."),
                ("/run/pure-ftpd.upload.pipe", "The upload pipe written by pure-ftpd -o."),
                ("pure-uploadscript.service, pure-uploadscript.path", "systemd units for the default pipe; the path unit starts the service when pure-ftpd creates the pipe."),
                ("uploadscript@.service, uploadscript@.path", "The same for another pipe: the instance is its path escaped with systemd-escape --path."),
                ("/usr/share/doc/pureftpd-systemd/examples/sandbox.conf", "Drop-in example loosening the service's sandbox for the program."),
            ],
            see_also: &["pure-ftpd(8)", "systemd.exec(5)", "journalctl(1)", "systemd-escape(1)"],
        },
        Page {
            command: named(cli::ftpwhod::Args::command(), "ftpwhod"),
            section: "8",
            files: &[
                ("/etc/ftpwhod.toml", "Settings; keys are named after the long options."),
                ("/etc/ftpwhod.d/*.toml", "Drop-ins read after the main file, in name order."),
                ("/run/pure-ftpwho.sock", "The socket, created by pure-ftpwho.socket (mode 0660, group ftpwho)."),
                ("/var/run/pure-ftpd/", "Pure-FTPd's scoreboard, read on every query."),
            ],
            see_also: &["ftpwho-query(1)", "pure-ftpwho(8)", "systemd.socket(5)"],
        },
        Page {
            command: named(cli::query::Args::command(), "ftpwho-query"),
            section: "1",
            files: &[(
                "/run/pure-ftpwho.sock",
                "The responder's socket; root and members of group ftpwho may use it.",
            )],
            see_also: &["ftpwhod(8)", "pure-ftpwho(8)"],
        },
        Page {
            command: named(cli::exporter::Args::command(), "pureftpd-exporter"),
            section: "8",
            files: &[
                ("/etc/pureftpd-exporter.toml", "Settings; keys are named after the long options."),
                ("/etc/pureftpd-exporter.d/*.toml", "Drop-ins read after the main file, in name order."),
                ("pureftpd-exporter.socket", "The listening socket (TCP port 21021; IPAddressAllow= in a drop-in opens it beyond localhost)."),
                ("/var/run/pure-ftpd/", "Pure-FTPd's scoreboard, read on every scrape."),
                ("/var/lib/pure-uploadscript/metrics.json, /var/lib/pure-uploadscript/*/metrics.json", "Counters published by the upload readers."),
                ("/usr/share/doc/pureftpd-systemd/examples/grafana-dashboard.json", "A Grafana dashboard of these metrics."),
            ],
            see_also: &["pure-uploadscript(8)", "ftpwhod(8)", "systemd.socket(5)", "prometheus(1)"],
        },
    ]
}

fn named(command: clap::Command, name: &'static str) -> clap::Command {
    command.name(name).bin_name(name)
}

/// Escapes text for a roff line.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    match escaped.chars().next() {
        Some('.' | '\'') => format!("\\&{escaped}"),
        _ => escaped,
    }
}

fn extra_sections(page: &Page) -> String {
    let mut roff = String::new();
    if !page.files.is_empty() {
        roff.push_str(".SH FILES\n");
        for (path, what) in page.files {
            roff.push_str(&format!(
                ".TP\n\\fB{}\\fR\n{}\n",
                roff_text(path),
                roff_text(what)
            ));
        }
    }
    if !page.see_also.is_empty() {
        let refs: Vec<String> = page
            .see_also
            .iter()
            .map(|r| match r.split_once('(') {
                Some((name, rest)) => format!("\\fB{}\\fR({rest}", roff_text(name)),
                None => roff_text(r),
            })
            .collect();
        roff.push_str(&format!(".SH \"SEE ALSO\"\n{}\n", refs.join(", ")));
    }
    roff
}

/// The files written for `pages`, as (path relative to the output, bytes).
pub fn render(pages: &[Page]) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    for page in pages {
        let name = page.command.get_name().to_owned();
        let mut roff = Vec::new();
        let man = clap_mangen::Man::new(page.command.clone())
            .section(page.section)
            .manual("pureftpd-systemd")
            .source(concat!("pureftpd-systemd ", env!("CARGO_PKG_VERSION")));
        man.render_title(&mut roff)?;
        man.render_name_section(&mut roff)?;
        man.render_synopsis_section(&mut roff)?;
        man.render_description_section(&mut roff)?;
        man.render_options_section(&mut roff)?;
        if page.command.get_subcommands().next().is_some() {
            man.render_subcommands_section(&mut roff)?;
        }
        if page.command.get_after_long_help().is_some() || page.command.get_after_help().is_some() {
            man.render_extra_section(&mut roff)?;
        }
        roff.extend_from_slice(extra_sections(page).as_bytes());
        man.render_version_section(&mut roff)?;
        files.push((PathBuf::from(format!("man/{name}.{}", page.section)), roff));
        for (shell, file) in [
            (Shell::Bash, format!("completions/bash/{name}")),
            (Shell::Zsh, format!("completions/zsh/_{name}")),
            (Shell::Fish, format!("completions/fish/{name}.fish")),
        ] {
            let mut script = Vec::new();
            let mut command = page.command.clone();
            clap_complete::generate(shell, &mut command, &name, &mut script);
            files.push((PathBuf::from(file), script));
        }
    }
    Ok(files)
}

fn write_all(out: &Path, files: &[(PathBuf, Vec<u8>)]) -> std::io::Result<()> {
    for (relative, bytes) in files {
        let path = out.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::File::create(&path)?.write_all(bytes)?;
    }
    Ok(())
}

#[allow(dead_code)]
fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [out] = args.as_slice() else {
        eprintln!("usage: gen-docs OUTDIR");
        return ExitCode::from(2);
    };
    let out = Path::new(out);
    match render(&pages()).and_then(|files| write_all(out, &files)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gen-docs: {}: {error}", out.display());
            ExitCode::FAILURE
        }
    }
}
