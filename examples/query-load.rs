//! Closed-loop load for `bench/ftpwhod-load.sh`.
//!
//! - `query-load ours SOCKET FORMAT CLIENTS SECONDS`: CLIENTS threads, each
//!   sending `list` requests (numeric addresses, one connection per
//!   query) to a running responder, the next as soon as the answer is read,
//!   for SECONDS.
//! - `query-load exec CLIENTS SECONDS -- COMMAND...`: CLIENTS threads each
//!   running COMMAND (output discarded) again and again for SECONDS (for
//!   the C `pure-ftpwho -n`).
//!
//! Prints one line: `qps=<queries/s> p50=<µs> p99=<µs> n=<answered>
//! busy=<busy answers> errors=<other failures>`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pureftpd_systemd::ftpwho::query::protocol::Request;
use pureftpd_systemd::ftpwho::report::Format;

/// What one query gave.
enum Outcome {
    Answered,
    Busy,
    Failed,
}

/// One `list` query: the answer is read to its newline, not parsed (only
/// its start is looked at).
fn ask(socket: &Path, line: &[u8], buf: &mut [u8]) -> Outcome {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return Outcome::Failed;
    };
    if stream.write_all(line).is_err() {
        return Outcome::Failed;
    }
    let mut first = true;
    let mut ok = false;
    loop {
        match stream.read(buf) {
            Ok(0) | Err(_) => return Outcome::Failed,
            Ok(n) => {
                if first {
                    ok = buf[..n].starts_with(b"{\"v\":1,\"ok\":true");
                    let busy = b"\"code\":\"busy\"";
                    if !ok && buf[..n].windows(busy.len()).any(|w| w == busy) {
                        return Outcome::Busy;
                    }
                    first = false;
                }
                if buf[n - 1] == b'\n' {
                    return if ok {
                        Outcome::Answered
                    } else {
                        Outcome::Failed
                    };
                }
            }
        }
    }
}

fn run_command(command: &[String]) -> Outcome {
    match Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Outcome::Answered,
        _ => Outcome::Failed,
    }
}

/// One query, given a read buffer.
type Query = Arc<dyn Fn(&mut [u8]) -> Outcome + Send + Sync>;

fn load(clients: usize, seconds: f64, query: Query) {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let query = Arc::clone(&query);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                let (mut samples, mut busy, mut errors) = (Vec::new(), 0u64, 0u64);
                while Instant::now() < until {
                    let start = Instant::now();
                    match query(&mut buf) {
                        Outcome::Answered => samples.push(start.elapsed()),
                        Outcome::Busy => busy += 1,
                        Outcome::Failed => errors += 1,
                    }
                }
                (samples, busy, errors)
            })
        })
        .collect();
    let (mut samples, mut busy, mut errors) = (Vec::new(), 0, 0);
    for t in threads {
        let (s, b, e) = t.join().expect("a client thread panicked");
        samples.extend(s);
        busy += b;
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    samples.sort();
    let n = samples.len();
    let at = |q: f64| {
        if n == 0 {
            0
        } else {
            samples[((n as f64 * q).ceil() as usize).clamp(1, n) - 1].as_micros()
        }
    };
    println!(
        "qps={:.0} p50={} p99={} n={n} busy={busy} errors={errors}",
        n as f64 / elapsed,
        at(0.50),
        at(0.99)
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ours") if args.len() == 5 => {
            let socket = PathBuf::from(&args[1]);
            let format: Format = serde_json::from_value(serde_json::Value::String(args[2].clone()))
                .with_context(|| format!("unknown format {}", args[2]))?;
            let line = Request {
                numeric: true,
                ..Request::list(format)
            }
            .to_line();
            let clients: usize = args[3].parse()?;
            let seconds: f64 = args[4].parse()?;
            load(
                clients,
                seconds,
                Arc::new(move |buf| ask(&socket, &line, buf)),
            );
        }
        Some("exec") if args.len() >= 5 && args[3] == "--" => {
            let clients: usize = args[1].parse()?;
            let seconds: f64 = args[2].parse()?;
            let command = args[4..].to_vec();
            load(clients, seconds, Arc::new(move |_| run_command(&command)));
        }
        _ => bail!(
            "usage: query-load ours SOCKET FORMAT CLIENTS SECONDS | \
             query-load exec CLIENTS SECONDS -- COMMAND..."
        ),
    }
    Ok(())
}
