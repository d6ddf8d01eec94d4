//! Reading one record from its open file: under a shared lock that
//! conflicts with the server's write lock, in as few `pread`s as possible.

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::uio::pread;

use super::layout::Layout;
use super::note::{SkipReason, Unlocked};

/// Reads `buf.len()` bytes at `offset` unless the file ends first;
/// returns how many were read.
pub(super) fn pread_full(fd: impl AsFd, buf: &mut [u8], offset: usize) -> nix::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match pread(fd.as_fd(), &mut buf[done..], (offset + done) as libc::off_t) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Bytes of the file name read with the head of a record; the rest is
/// read only when the name is longer.
const FILENAME_HEAD: usize = 64;

/// Reads a record of `layout` into `record`: the head up to the account
/// and the start of the file name in one `pread`, the rest of the file
/// name only when no NUL ends it in the head. What follows that NUL is
/// never looked at ([`Entry::parse`](super::Entry::parse) stops at it)
/// and is left as it was.
pub(super) fn read_record(
    fd: impl AsFd,
    layout: &Layout,
    record: &mut [u8],
) -> Result<(), SkipReason> {
    let size = record.len();
    let filename_end = layout.filename_offset + layout.filename_len;
    let head = size.min(
        (layout.account_offset + layout.account_len).max(layout.filename_offset + FILENAME_HEAD),
    );
    let fd = fd.as_fd();
    let read = |record: &mut [u8], from: usize, to: usize| match pread_full(
        fd,
        &mut record[from..to],
        from,
    ) {
        Ok(n) if n == to - from => Ok(()),
        Ok(n) => Err(SkipReason::ShortRead { bytes: from + n }),
        Err(err) => Err(SkipReason::CannotRead(err)),
    };
    read(record, 0, head)?;
    let name_ended = filename_end <= head || record[layout.filename_offset..head].contains(&0);
    if name_ended {
        Ok(())
    } else {
        read(record, head, size)
    }
}

/// What this system allows, learnt while scanning: open file description
/// locks (per descriptor, safe with threads) or, on old kernels, process
/// locks; `O_NOATIME` for root, unless it lacks `CAP_FOWNER`.
#[derive(Clone, Copy, Default)]
pub(super) struct Support {
    pub(super) process_locks: bool,
    pub(super) atime_needed: bool,
}

/// Takes a shared lock on the whole file, polling for at most `timeout`
/// while a writer holds it. `Err` says why the record is read unlocked.
pub(super) fn lock_shared(
    fd: impl AsFd,
    timeout: Duration,
    support: &mut Support,
) -> Result<(), Unlocked> {
    let fl = libc::flock {
        l_type: libc::F_RDLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    let fd = fd.as_fd().as_raw_fd();
    let mut started: Option<Instant> = None;
    let mut pause = Duration::from_micros(500);
    loop {
        let arg = if support.process_locks {
            FcntlArg::F_SETLK(&fl)
        } else {
            FcntlArg::F_OFD_SETLK(&fl)
        };
        match fcntl(fd, arg) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(Errno::EINVAL) if !support.process_locks => {
                support.process_locks = true;
                continue;
            }
            Err(Errno::EAGAIN | Errno::EACCES) => {
                let started = *started.get_or_insert_with(Instant::now);
                let waited = started.elapsed();
                if waited >= timeout {
                    return Err(Unlocked::Held {
                        timeout_ms: timeout.as_millis(),
                    });
                }
                std::thread::sleep(pause.min(timeout - waited));
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(Unlocked::CannotLock(e)),
        }
    }
}
