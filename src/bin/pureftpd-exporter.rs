//! `pureftpd-exporter`: Prometheus metrics over HTTP on a socket passed by
//! systemd.

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use nix::sys::socket::{getsockname, getsockopt, sockopt, AddressFamily, SockType, SockaddrLike};

use pureftpd_systemd::cli::exporter::{Args, Exit};
use pureftpd_systemd::ftpwho::scoreboard::Layout;
use pureftpd_systemd::metrics::server::Exporter;
use pureftpd_systemd::metrics::settings::{ExporterConfig, ExporterSettings};
use pureftpd_systemd::os::{journal, systemd};

fn main() -> ExitCode {
    // Before anything starts a thread, as sd_listen_fds(3) wants.
    let passed = systemd::take_listen_fds();
    let args = Args::parse();
    let settings = match settings(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pureftpd-exporter: {e:#}");
            return exit(Exit::Usage);
        }
    };
    if args.check_config {
        print_settings(&settings);
        return exit(Exit::Ok);
    }
    journal::init("pureftpd-exporter", journal::choose_sink(false), args.debug);
    let listener = match listener(&args, passed) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e:#}");
            return exit(Exit::Usage);
        }
    };
    match Exporter::new(listener, settings).and_then(|e| e.run()) {
        Ok(summary) => {
            tracing::info!(
                SCRAPES = summary.scrapes,
                CONNECTIONS = summary.connections,
                "idle, exiting after {} scrapes",
                summary.scrapes
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

fn settings(args: &Args) -> anyhow::Result<ExporterSettings> {
    let mut config = ExporterConfig::load(args.config.as_deref())?;
    args.apply(&mut config);
    config.settings().context("invalid configuration")
}

fn print_settings(s: &ExporterSettings) {
    let secs = |d: Option<std::time::Duration>| d.map_or(0.0, |d| d.as_secs_f64());
    println!("top_users = {}", s.top_users);
    println!("idle_timeout = {}", secs(s.idle_timeout));
    println!("request_timeout = {}", s.request_timeout.as_secs_f64());
    println!("max_request_bytes = {}", s.max_request_bytes);
    println!("max_connections = {}", s.max_connections);
    println!("scoreboard = {:?}", s.scoreboard.display().to_string());
    match s.layout {
        None => println!("layout = \"auto\""),
        Some(l) if l == Layout::DEBIAN => println!("layout = \"debian\""),
        Some(l) if l == Layout::UPSTREAM => println!("layout = \"upstream\""),
        Some(l) => println!(
            "layout = {{ max_user_length = {}, filename_len = {} }}",
            l.account_len - 1,
            l.filename_len
        ),
    }
    let dirs: Vec<String> = s
        .upload_state_dirs
        .iter()
        .map(|d| format!("{:?}", d.display().to_string()))
        .collect();
    println!("upload_state_dirs = [{}]", dirs.join(", "));
}

/// The listening socket: bound at `--listen`, or the one systemd passed.
fn listener(
    args: &Args,
    passed: std::io::Result<Vec<systemd::ListenFd>>,
) -> anyhow::Result<TcpListener> {
    if let Some(address) = args.listen {
        return TcpListener::bind(address).with_context(|| format!("cannot listen on {address}"));
    }
    let mut fds = passed.context("cannot take the sockets passed by systemd")?;
    match fds.len() {
        0 => bail!(
            "no listening socket: start pureftpd-exporter through its socket unit \
             (LISTEN_FDS), or give --listen ADDRESS:PORT"
        ),
        1 => {}
        n => bail!("{n} sockets passed; pureftpd-exporter listens on exactly one (Accept=no)"),
    }
    let fd = fds.remove(0).fd;
    check_listening_tcp(&fd)?;
    Ok(TcpListener::from(fd))
}

fn check_listening_tcp(fd: &OwnedFd) -> anyhow::Result<()> {
    let kind =
        getsockopt(fd, sockopt::SockType).context("the passed descriptor is not a socket")?;
    let listening = getsockopt(fd, sockopt::AcceptConn).unwrap_or(false);
    let family =
        getsockname::<nix::sys::socket::SockaddrStorage>(std::os::fd::AsRawFd::as_raw_fd(fd))
            .ok()
            .and_then(|a| a.family());
    if kind != SockType::Stream
        || !listening
        || !matches!(family, Some(AddressFamily::Inet | AddressFamily::Inet6))
    {
        bail!("the passed socket must be a listening TCP socket (ListenStream=PORT, Accept=no)");
    }
    Ok(())
}
