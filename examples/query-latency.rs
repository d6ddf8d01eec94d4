//! Latency measurements for `bench/ftpwhod.sh`.
//!
//! - `query-latency warm SOCKET COUNT FORMAT`: COUNT `list` requests (one
//!   connection each, numeric addresses) to a running responder.
//! - `query-latency cold SOCKET COUNT -- COMMAND...`: COUNT times, start
//!   COMMAND (which must listen on SOCKET, e.g. `systemd-socket-activate -l
//!   SOCKET ftpwhod ...`), connect as soon as the socket exists, and time
//!   from the start to the first answer; the command is then stopped.
//! - `query-latency exec COUNT -- COMMAND...`: COUNT runs of COMMAND, each
//!   timed to its exit (for the C `pure-ftpwho`).
//!
//! Each mode prints one line: `p50=<µs> p99=<µs> mean=<µs> n=<count>`.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pureftpd_systemd::ftpwho::query::client::exchange;
use pureftpd_systemd::ftpwho::query::protocol::{Request, Response};
use pureftpd_systemd::ftpwho::report::Format;

fn list_line(format: &str) -> anyhow::Result<Vec<u8>> {
    let format: Format = serde_json::from_value(serde_json::Value::String(format.into()))
        .with_context(|| format!("unknown format {format}"))?;
    Ok(Request {
        numeric: true,
        ..Request::list(format)
    }
    .to_line())
}

fn ask(socket: &Path, line: &[u8]) -> anyhow::Result<()> {
    let stream = UnixStream::connect(socket)?;
    let answer = exchange(&stream, line)?;
    let response = Response::from_line(&answer)?;
    if !response.ok {
        bail!("error answer: {:?}", response.error);
    }
    Ok(())
}

fn report(mut samples: Vec<Duration>) {
    samples.sort();
    let n = samples.len();
    let at = |q: f64| samples[((n as f64 * q).ceil() as usize).clamp(1, n) - 1];
    let mean = samples.iter().sum::<Duration>() / n as u32;
    println!(
        "p50={} p99={} mean={} n={n}",
        at(0.50).as_micros(),
        at(0.99).as_micros(),
        mean.as_micros()
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command_after = |from: usize| -> anyhow::Result<&[String]> {
        match args.get(from).map(String::as_str) {
            Some("--") if args.len() > from + 1 => Ok(&args[from + 1..]),
            _ => bail!("expected -- COMMAND..."),
        }
    };
    match args.first().map(String::as_str) {
        Some("warm") if args.len() == 4 => {
            let socket = Path::new(&args[1]);
            let count: usize = args[2].parse()?;
            let line = list_line(&args[3])?;
            for _ in 0..count.min(20) {
                ask(socket, &line)?;
            }
            let mut samples = Vec::with_capacity(count);
            for _ in 0..count {
                let start = Instant::now();
                ask(socket, &line)?;
                samples.push(start.elapsed());
            }
            report(samples);
        }
        Some("cold") if args.len() > 4 => {
            let socket = Path::new(&args[1]);
            let count: usize = args[2].parse()?;
            let command = command_after(3)?;
            let line = list_line("text")?;
            let mut samples = Vec::with_capacity(count);
            for _ in 0..count {
                let _ = std::fs::remove_file(socket);
                let start = Instant::now();
                let mut child = Command::new(&command[0])
                    .args(&command[1..])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?;
                let answered = loop {
                    match UnixStream::connect(socket) {
                        Ok(stream) => break exchange(&stream, &line),
                        Err(_) if start.elapsed() < Duration::from_secs(10) => {
                            std::thread::sleep(Duration::from_micros(50))
                        }
                        Err(e) => break Err(e),
                    }
                };
                let elapsed = start.elapsed();
                let _ = child.kill();
                let _ = child.wait();
                Response::from_line(&answered?)?;
                samples.push(elapsed);
            }
            let _ = std::fs::remove_file(socket);
            report(samples);
        }
        Some("exec") if args.len() > 3 => {
            let count: usize = args[1].parse()?;
            let command = command_after(2)?;
            let mut samples = Vec::with_capacity(count);
            for _ in 0..count {
                let start = Instant::now();
                let status = Command::new(&command[0])
                    .args(&command[1..])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .status()?;
                samples.push(start.elapsed());
                if !status.success() {
                    bail!("{} failed: {status}", command[0]);
                }
            }
            report(samples);
        }
        _ => bail!(
            "usage: query-latency warm SOCKET COUNT FORMAT | cold SOCKET COUNT -- COMMAND... \
             | exec COUNT -- COMMAND..."
        ),
    }
    Ok(())
}
