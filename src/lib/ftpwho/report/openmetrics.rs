//! OpenMetrics text exposition of the sessions, for Prometheus.
//!
//! Gauges, each with `HELP` and `TYPE`, ending with `# EOF`:
//! `pureftpd_sessions{state}` (idle, download, upload),
//! `pureftpd_users` (distinct accounts), `pureftpd_user_sessions{user}` for
//! the `top_users` accounts with the most sessions (bounded cardinality),
//! and per transfer state (download, upload) `pureftpd_transfer_bytes`
//! (bytes moved so far by the transfers in progress) and
//! `pureftpd_transfer_rate_bytes` (their summed speed, bytes per second,
//! computed as `pure-ftpwho` does).
//!
//! ```
//! use pureftpd_systemd::ftpwho::report::openmetrics::{render, Metrics};
//! use pureftpd_systemd::ftpwho::scoreboard::State;
//!
//! let metrics = Metrics::from_transfers(
//!     [
//!         (State::Idle, b"alice".as_slice(), 0, 0),
//!         (State::Download, b"bob", 4096, 2048),
//!         (State::Download, b"alice", 1000, 100),
//!     ],
//!     1,
//! );
//! let mut out = Vec::new();
//! render(&metrics, &mut out).unwrap();
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     "# HELP pureftpd_sessions FTP sessions by state.\n\
//!      ## TYPE pureftpd_sessions gauge\n\
//!      pureftpd_sessions{state=\"idle\"} 1\n\
//!      pureftpd_sessions{state=\"download\"} 2\n\
//!      pureftpd_sessions{state=\"upload\"} 0\n\
//!      ## HELP pureftpd_users Accounts with at least one session.\n\
//!      ## TYPE pureftpd_users gauge\n\
//!      pureftpd_users 2\n\
//!      ## HELP pureftpd_user_sessions Sessions per account, for the 1 accounts with the most sessions.\n\
//!      ## TYPE pureftpd_user_sessions gauge\n\
//!      pureftpd_user_sessions{user=\"alice\"} 2\n\
//!      ## HELP pureftpd_transfer_bytes Bytes moved so far by the transfers in progress.\n\
//!      ## TYPE pureftpd_transfer_bytes gauge\n\
//!      pureftpd_transfer_bytes{state=\"download\"} 5096\n\
//!      pureftpd_transfer_bytes{state=\"upload\"} 0\n\
//!      ## HELP pureftpd_transfer_rate_bytes Summed speed of the transfers in progress, in bytes per second.\n\
//!      ## TYPE pureftpd_transfer_rate_bytes gauge\n\
//!      pureftpd_transfer_rate_bytes{state=\"download\"} 2148\n\
//!      pureftpd_transfer_rate_bytes{state=\"upload\"} 0\n\
//!      ## EOF\n"
//! );
//! ```

use std::collections::HashMap;
use std::io::{self, Write};

use super::Session;
use crate::ftpwho::scoreboard::State;

/// Accounts listed by `pureftpd_user_sessions` unless told otherwise.
pub const DEFAULT_TOP_USERS: usize = 10;

/// The numbers exposed, aggregated from the sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Sessions without a transfer.
    pub idle: u64,
    /// Sessions downloading.
    pub download: u64,
    /// Sessions uploading.
    pub upload: u64,
    /// Distinct accounts.
    pub users: u64,
    /// The accounts with the most sessions, most first (ties by name).
    pub top_users: Vec<(String, u64)>,
    /// Bytes moved by downloads in progress.
    pub download_bytes: u64,
    /// Bytes moved by uploads in progress.
    pub upload_bytes: u64,
    /// Summed speed of downloads, bytes per second.
    pub download_rate: u64,
    /// Summed speed of uploads, bytes per second.
    pub upload_rate: u64,
    /// How many accounts `top_users` was bounded to.
    pub top_limit: usize,
}

/// Bytes moved by a session's transfer and its speed, as `pure-ftpwho`
/// computes its bandwidth column: `current - restart` over the seconds
/// since the transfer started; `(0, 0)` for an idle session.
pub fn transfer_of(session: &Session) -> (u64, u64) {
    let (current, restart) = (session.current_size, session.restart_at);
    if current <= 0 || current <= restart {
        return (0, 0);
    }
    let moved = (current - restart) as u64;
    (moved, moved.checked_div(session.xfer_since).unwrap_or(0))
}

impl Metrics {
    /// Aggregates sessions, keeping the `top_users` accounts with the most
    /// sessions.
    pub fn from_sessions(sessions: &[Session], top_users: usize) -> Metrics {
        Metrics::from_transfers(
            sessions.iter().map(|s| {
                let (moved, rate) = transfer_of(s);
                (s.entry.state, s.entry.account.as_slice(), moved, rate)
            }),
            top_users,
        )
    }

    /// Aggregates `(state, account, bytes moved, rate)` per session.
    pub fn from_transfers<'a>(
        sessions: impl IntoIterator<Item = (State, &'a [u8], u64, u64)>,
        top_users: usize,
    ) -> Metrics {
        let mut m = Metrics {
            top_limit: top_users,
            ..Metrics::default()
        };
        let mut per_user: HashMap<&[u8], u64> = HashMap::new();
        for (state, account, moved, rate) in sessions {
            match state {
                State::Idle => m.idle += 1,
                State::Download => {
                    m.download += 1;
                    m.download_bytes = m.download_bytes.saturating_add(moved);
                    m.download_rate = m.download_rate.saturating_add(rate);
                }
                State::Upload => {
                    m.upload += 1;
                    m.upload_bytes = m.upload_bytes.saturating_add(moved);
                    m.upload_rate = m.upload_rate.saturating_add(rate);
                }
                State::Free | State::Unknown(_) => {}
            }
            *per_user.entry(account).or_default() += 1;
        }
        m.users = per_user.len() as u64;
        let mut users: Vec<(String, u64)> = per_user
            .into_iter()
            .map(|(name, n)| (String::from_utf8_lossy(name).into_owned(), n))
            .collect();
        users.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        users.truncate(top_users);
        m.top_users = users;
        m
    }
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut dyn Write, name: &str, help: &str) -> io::Result<()> {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} gauge")
}

/// Writes the exposition of `metrics`, `# EOF` included.
pub fn render(metrics: &Metrics, out: &mut dyn Write) -> io::Result<()> {
    family(out, "pureftpd_sessions", "FTP sessions by state.")?;
    for (state, n) in [
        ("idle", metrics.idle),
        ("download", metrics.download),
        ("upload", metrics.upload),
    ] {
        writeln!(out, "pureftpd_sessions{{state=\"{state}\"}} {n}")?;
    }
    family(out, "pureftpd_users", "Accounts with at least one session.")?;
    writeln!(out, "pureftpd_users {}", metrics.users)?;
    family(
        out,
        "pureftpd_user_sessions",
        &format!(
            "Sessions per account, for the {} accounts with the most sessions.",
            metrics.top_limit
        ),
    )?;
    for (user, n) in &metrics.top_users {
        writeln!(
            out,
            "pureftpd_user_sessions{{user=\"{}\"}} {n}",
            escape_label(user)
        )?;
    }
    family(
        out,
        "pureftpd_transfer_bytes",
        "Bytes moved so far by the transfers in progress.",
    )?;
    writeln!(
        out,
        "pureftpd_transfer_bytes{{state=\"download\"}} {}",
        metrics.download_bytes
    )?;
    writeln!(
        out,
        "pureftpd_transfer_bytes{{state=\"upload\"}} {}",
        metrics.upload_bytes
    )?;
    family(
        out,
        "pureftpd_transfer_rate_bytes",
        "Summed speed of the transfers in progress, in bytes per second.",
    )?;
    writeln!(
        out,
        "pureftpd_transfer_rate_bytes{{state=\"download\"}} {}",
        metrics.download_rate
    )?;
    writeln!(
        out,
        "pureftpd_transfer_rate_bytes{{state=\"upload\"}} {}",
        metrics.upload_rate
    )?;
    writeln!(out, "# EOF")
}

/// Aggregates `sessions` and writes their exposition.
pub fn render_sessions(
    sessions: &[Session],
    top_users: usize,
    out: &mut dyn Write,
) -> io::Result<()> {
    render(&Metrics::from_sessions(sessions, top_users), out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let m = Metrics::from_transfers([(State::Idle, b"x\"\xff".as_slice(), 0, 0)], 5);
        let mut out = Vec::new();
        render(&m, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("pureftpd_user_sessions{user=\"x\\\"\u{fffd}\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn top_users_are_bounded_and_ordered() {
        let names: [&[u8]; 6] = [b"c", b"a", b"b", b"a", b"c", b"c"];
        let m = Metrics::from_transfers(names.iter().map(|n| (State::Idle, *n, 0, 0)), 2);
        assert_eq!(m.users, 3);
        assert_eq!(m.top_users, vec![("c".into(), 3), ("a".into(), 2)]);
        assert_eq!(m.idle, 6);
        let none = Metrics::from_transfers(names.iter().map(|n| (State::Idle, *n, 0, 0)), 0);
        assert!(none.top_users.is_empty());
    }

    proptest! {
        #[test]
        fn every_sample_line_is_well_formed(
            sessions in proptest::collection::vec(
                (0i32..5, proptest::collection::vec(any::<u8>(), 0..12), any::<u64>(), any::<u64>()),
                0..30,
            ),
            top in 0usize..8,
        ) {
            let m = Metrics::from_transfers(
                sessions.iter().map(|(s, a, b, r)| (State::from_raw(*s), a.as_slice(), *b, *r)),
                top,
            );
            let mut out = Vec::new();
            render(&m, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            prop_assert!(text.ends_with("\n# EOF\n"));
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let (_, value) = line.rsplit_once(' ').unwrap();
                prop_assert!(value.parse::<u64>().is_ok(), "{}", line);
                prop_assert!(line.starts_with("pureftpd_"));
            }
            prop_assert!(m.top_users.len() <= top);
        }
    }
}
