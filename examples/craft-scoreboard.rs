//! Writes a synthetic Pure-FTPd scoreboard, for benchmarks and demos.
//!
//! `craft-scoreboard DIR COUNT PID`: COUNT entries (Debian layout, mode
//! 0600) in DIR, all owned by the live process PID so that readers list
//! them; file names are distinct. Sessions cycle through idle, download and
//! upload, with a handful of accounts and documentation addresses.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use pureftpd_systemd::ftpwho::scoreboard::{Entry, Layout, RawSockaddr, State};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, count, pid] = args.as_slice() else {
        anyhow::bail!("usage: craft-scoreboard DIR COUNT PID");
    };
    let dir = PathBuf::from(dir);
    let count: u32 = count.parse()?;
    let pid: i32 = pid.parse()?;
    std::fs::create_dir_all(&dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    for i in 0..count {
        let state = [State::Idle, State::Download, State::Upload][i as usize % 3];
        let transfer = state != State::Idle;
        let entry = Entry {
            state,
            pid,
            peer: RawSockaddr::from_socket_addr(
                format!("192.0.2.{}:{}", i % 250 + 1, 40000 + i % 20000).parse()?,
            ),
            local: RawSockaddr::from_socket_addr("192.0.2.254:21".parse()?),
            date: now - i64::from(i % 7200),
            xfer_date: if transfer {
                now - i64::from(i % 60) - 1
            } else {
                0
            },
            restart_at: 0,
            total_size: if transfer { 100 << 20 } else { 0 },
            current_size: if transfer { i64::from(i) * 4096 } else { 0 },
            account: format!("user{}", i % 50).into_bytes(),
            filename: if transfer {
                format!("/pub/file-{i}.bin").into_bytes()
            } else {
                Vec::new()
            },
        };
        let path = dir.join(format!("client-{:08}", 10_000_000 + i));
        std::fs::write(&path, entry.to_bytes(&Layout::DEBIAN)?)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
