//! `ftpwho-query`: asks `ftpwhod` who is online.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use pureftpd_systemd::cli::query::{escape_controls, Args, Exit};
use pureftpd_systemd::ftpwho::query::client::{self, ClientError};
use pureftpd_systemd::ftpwho::query::{Op, Response};

/// Clears a terminal and puts the cursor at the top left.
const CLEAR: &[u8] = b"\x1b[H\x1b[2J";

fn main() -> ExitCode {
    let mut args = Args::parse_ordered(std::env::args_os()).unwrap_or_else(|e| e.exit());
    args.gateway_interface = std::env::var_os("GATEWAY_INTERFACE").is_some();
    let request = args.request();
    let timeout = Duration::from_secs_f64(args.timeout);
    let terminal = std::io::stdout().is_terminal();
    let redraw = args.watch.is_some() && terminal;
    let escape = args.escape.applies(terminal);
    let mut done = 0u64;
    loop {
        let frame = client::query(&args.socket, &request, timeout).and_then(|r| frame(&args, &r));
        let frame = match frame {
            Ok(frame) if escape => escape_controls(&frame),
            Ok(frame) => frame,
            Err(e) => {
                eprintln!("ftpwho-query: {e}");
                return ExitCode::from(Exit::from(&e).code());
            }
        };
        let mut out = std::io::stdout().lock();
        let written = (if redraw { out.write_all(CLEAR) } else { Ok(()) })
            .and_then(|_| out.write_all(&frame))
            .and_then(|_| out.flush());
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("ftpwho-query: cannot write the output: {e}");
            return ExitCode::from(Exit::Error.code());
        }
        done += 1;
        match args.watch {
            Some(seconds) if args.iterations.map_or(true, |n| done < n) => {
                std::thread::sleep(Duration::from_secs_f64(seconds));
            }
            _ => return ExitCode::SUCCESS,
        }
    }
}

/// What to print for an answer.
fn frame(args: &Args, response: &Response) -> Result<Vec<u8>, ClientError> {
    let bad = |message: &str| ClientError::Transport {
        path: args.socket.clone(),
        message: message.to_owned(),
    };
    let mut out = Vec::new();
    if args.cgi_header() {
        out.extend_from_slice(pureftpd_systemd::ftpwho::report::html::CGI_HEADER.as_bytes());
    }
    match args.op() {
        Op::List => {
            if let Some(data) = &response.data {
                serde_json::to_writer_pretty(&mut out, data).map_err(|e| bad(&e.to_string()))?;
                out.push(b'\n');
            } else {
                out.extend(
                    response
                        .output_bytes()
                        .map_err(|e| bad(&e.message))?
                        .ok_or_else(|| bad("the answer carries no output"))?,
                );
            }
        }
        Op::Count => {
            let count = response
                .count
                .ok_or_else(|| bad("the answer carries no count"))?;
            writeln!(out, "{count}").expect("writing to a Vec");
        }
        Op::Ping => {
            let server = response.server.as_deref().unwrap_or("ftpwhod");
            writeln!(out, "{server}").expect("writing to a Vec");
        }
        Op::Stats => {
            let stats = response
                .stats
                .as_ref()
                .ok_or_else(|| bad("the answer carries no stats"))?;
            if args.format.json {
                out = serde_json::to_vec_pretty(stats).map_err(|e| bad(&e.to_string()))?;
                out.push(b'\n');
            } else {
                for (key, v) in [
                    ("sessions", stats.sessions),
                    ("idle", stats.idle),
                    ("download", stats.download),
                    ("upload", stats.upload),
                    ("users", stats.users),
                    ("skipped", stats.skipped),
                    ("requests", stats.requests),
                    ("connections", stats.connections),
                    ("active_connections", stats.active_connections),
                    ("denied", stats.denied),
                    ("errors", stats.errors),
                    ("uptime_ms", stats.uptime_ms),
                ] {
                    writeln!(out, "{key}: {v}").expect("writing to a Vec");
                }
            }
        }
    }
    Ok(out)
}
