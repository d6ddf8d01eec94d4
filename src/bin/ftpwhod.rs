//! `ftpwhod`: answers ftpwho queries on a socket passed by systemd.

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use nix::sys::socket::{getsockname, getsockopt, sockopt, AddressFamily, SockType, SockaddrLike};

use pureftpd_systemd::cli::ftpwhod::{Args, Exit};
use pureftpd_systemd::ftpwho::query::{auth, server};
use pureftpd_systemd::ftpwho::settings::Settings;
use pureftpd_systemd::os::{journal, systemd};

fn main() -> ExitCode {
    // Before anything starts a thread, as sd_listen_fds(3) wants.
    let passed = systemd::take_listen_fds();
    let args = Args::parse();
    let settings = match args.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ftpwhod: {e:#}");
            return exit(Exit::Usage);
        }
    };
    if args.check_config {
        print!("{settings}");
        return exit(Exit::Ok);
    }
    journal::init("ftpwhod", journal::choose_sink(false), args.debug);
    let (listener, bound) = match listener(&args, &settings, passed) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e:#}");
            return exit(Exit::Usage);
        }
    };
    let result = server::Server::new(listener, settings).and_then(|s| s.run());
    if let Some(path) = bound {
        let _ = std::fs::remove_file(path);
    }
    match result {
        Ok(summary) => {
            tracing::info!(
                REQUESTS = summary.requests,
                CONNECTIONS = summary.connections,
                DENIED = summary.denied,
                "idle, exiting after {} queries",
                summary.requests
            );
            exit(Exit::Ok)
        }
        Err(e) => {
            tracing::error!("serving failed: {e}");
            exit(Exit::Runtime)
        }
    }
}

fn exit(status: Exit) -> ExitCode {
    ExitCode::from(status.code())
}

/// The listening socket: bound at `--listen`, or the one systemd passed.
/// The path to remove at exit comes along when we bound it.
fn listener(
    args: &Args,
    settings: &Settings,
    passed: std::io::Result<Vec<systemd::ListenFd>>,
) -> anyhow::Result<(UnixListener, Option<PathBuf>)> {
    if let Some(path) = &args.listen {
        return Ok((bind(path, &settings.group)?, Some(path.clone())));
    }
    let mut fds = passed.context("cannot take the sockets passed by systemd")?;
    match fds.len() {
        0 => bail!(
            "no listening socket: start ftpwhod through its socket unit \
             (LISTEN_FDS), or give --listen PATH"
        ),
        1 => {}
        n => bail!("{n} sockets passed; ftpwhod listens on exactly one (Accept=no)"),
    }
    let fd = fds.remove(0).fd;
    check_listening_unix(&fd)?;
    Ok((UnixListener::from(fd), None))
}

fn check_listening_unix(fd: &OwnedFd) -> anyhow::Result<()> {
    let kind =
        getsockopt(fd, sockopt::SockType).context("the passed descriptor is not a socket")?;
    let listening = getsockopt(fd, sockopt::AcceptConn).unwrap_or(false);
    let family =
        getsockname::<nix::sys::socket::SockaddrStorage>(std::os::fd::AsRawFd::as_raw_fd(fd))
            .ok()
            .and_then(|a| a.family());
    if kind != SockType::Stream || !listening || family != Some(AddressFamily::Unix) {
        bail!("the passed socket must be a listening unix stream socket (ListenStream=/path, Accept=no)");
    }
    Ok(())
}

fn bind(path: &Path, group: &str) -> anyhow::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!("{} is in use by a running responder", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    if nix::unistd::geteuid().is_root() {
        if let Some(gid) = auth::group_id(group)? {
            nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
                .with_context(|| format!("cannot give {} to group {group}", path.display()))?;
        }
    }
    Ok(listener)
}
