//! Counting a user's sessions as the server counts them at login
//! (`ftpwho_read_count`), which reads less than a scan and trusts file
//! names more.

use nix::fcntl::OFlag;
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::layout::Layout;
use super::liveness::Liveness;
use super::read::pread_full;
use super::record::c_string;
use super::scan::{Scoreboard, ScoreboardError, FILE_PREFIX};
use crate::os::fs::open_at;

impl Scoreboard {
    /// How many sessions `user` has, as the server counts them at login
    /// (`ftpwho_read_count`): case-insensitive account match. As in C, the
    /// pid is taken from the file name, stale files are removed (when
    /// [`ScanOptions::remove_stale`](super::ScanOptions::remove_stale) is
    /// set) and not counted, and a file whose account cannot be read in
    /// full counts as a session. The account is read at the forced
    /// layout's offset, or Debian's.
    pub fn count_sessions(&self, user: &[u8]) -> Result<usize, ScoreboardError> {
        self.count_sessions_of(&[user])
    }

    /// How many sessions any of `users` have, each counted as
    /// [`count_sessions`](Self::count_sessions) counts it, in one pass over
    /// the directory; a session is counted once, and an account named
    /// twice (in any case) counts once.
    pub fn count_sessions_of(&self, users: &[&[u8]]) -> Result<usize, ScoreboardError> {
        let mut dir = self.open_dir()?;
        let dir_fd = dir.fd();
        let layout = self.options.layout.unwrap_or(Layout::DEBIAN);
        let users: Vec<Vec<u8>> = users.iter().map(|u| c_string(u)).collect();
        let mut account = vec![0u8; layout.account_len];
        let mut count = 0usize;
        let mut live = Liveness::default();
        while let Some(name) = dir.next_name() {
            let Ok(name) = name else { break };
            let bytes = name.to_bytes();
            if !bytes.starts_with(FILE_PREFIX.as_bytes()) {
                continue;
            }
            // C skips names no longer than the prefix plus one, and reads
            // the pid after the prefix's length counting its NUL.
            if bytes.len() <= FILE_PREFIX.len() + 1 {
                continue;
            }
            let pid = c_strtoul(&bytes[FILE_PREFIX.len() + 1..]) as i32;
            if !live.exists(pid) {
                if self.options.remove_stale {
                    let _ = unlinkat(Some(dir_fd), name, UnlinkatFlags::NoRemoveDir);
                }
                continue;
            }
            let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
            let Ok(fd) = open_at(dir_fd, name, flags) else {
                continue;
            };
            match pread_full(&fd, &mut account, layout.account_offset) {
                Ok(n) if n == account.len() => {
                    let found = c_string(&account[..account.len() - 1]);
                    if users.iter().any(|u| found.eq_ignore_ascii_case(u)) {
                        count += 1;
                    }
                }
                _ => count += 1,
            }
        }
        Ok(count)
    }
}

/// C's `strtoul` on a file name tail: leading white space, an optional
/// sign, decimal digits; saturates at `ULONG_MAX`, negates modulo 2^64.
fn c_strtoul(s: &[u8]) -> u64 {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    while i < s.len() && s[i].is_ascii_digit() {
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(s[i] - b'0')))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if overflow {
        u64::MAX
    } else if negative {
        value.wrapping_neg()
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::c_strtoul;

    #[test]
    fn strtoul_like_c() {
        assert_eq!(c_strtoul(b"0012345"), 12345);
        assert_eq!(c_strtoul(b" +42x"), 42);
        assert_eq!(c_strtoul(b"-1"), u64::MAX);
        assert_eq!(c_strtoul(b"abc"), 0);
        assert_eq!(c_strtoul(b"99999999999999999999999"), u64::MAX);
        assert_eq!(c_strtoul(b""), 0);
        assert_eq!(c_strtoul(b"+"), 0);
        assert_eq!(c_strtoul(b"\xff\x00-9"), 0);
    }
}
