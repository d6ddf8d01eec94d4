//! One message with at most one descriptor attached (`SCM_RIGHTS`) over a
//! `SOCK_SEQPACKET` unix socket, whose message boundaries the kernel keeps.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::{
    accept4, connect, recvmsg, sendmsg, socket, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType, UnixAddr,
};

/// Connects a close-on-exec `SOCK_SEQPACKET` socket to `path`.
pub fn connect_seqpacket(path: &Path) -> io::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    connect(fd.as_raw_fd(), &addr)?;
    Ok(fd)
}

/// Accepts a connection on the listening socket `listener`, close-on-exec.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    loop {
        match accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
            // SAFETY: accept4 returned a new descriptor that nothing else
            // owns.
            Ok(raw) => return Ok(unsafe { OwnedFd::from_raw_fd(raw) }),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sends `bytes` as one message, with `fd` attached if given.
pub fn send(sock: BorrowedFd<'_>, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let iov = [IoSlice::new(bytes)];
    let fds: Vec<RawFd> = fd.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsgs };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(_) => return Err(io::Error::other("message cut short")),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// What [`receive`] got.
#[derive(Debug)]
pub struct Received {
    /// The message; empty at end of stream.
    pub bytes: Vec<u8>,
    /// The descriptor attached, if any (close-on-exec).
    pub fd: Option<OwnedFd>,
    /// The message or its descriptors did not fit and were cut.
    pub truncated: bool,
}

/// Receives one message of at most `max` bytes and its descriptors (any
/// beyond the first are closed).
pub fn receive(sock: BorrowedFd<'_>, max: usize) -> io::Result<Received> {
    let mut buf = vec![0u8; max];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => msg,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut fds = Vec::new();
        let mut truncated = msg
            .flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
        match msg.cmsgs() {
            Ok(cmsgs) => {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmRights(list) = c {
                        for raw in list {
                            // SAFETY: descriptors received with SCM_RIGHTS are
                            // new and ours.
                            fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                        }
                    }
                }
            }
            Err(_) => truncated = true,
        }
        let n = msg.bytes;
        let mut fds = fds.into_iter();
        let fd = fds.next();
        if fds.next().is_some() {
            truncated = true;
        }
        buf.truncate(n);
        return Ok(Received {
            bytes: buf,
            fd,
            truncated,
        });
    }
}

/// The uid of the peer of a connected unix socket.
pub fn peer_uid(sock: BorrowedFd<'_>) -> io::Result<u32> {
    let creds = nix::sys::socket::getsockopt(&sock, nix::sys::socket::sockopt::PeerCredentials)?;
    Ok(creds.uid())
}

/// A connected `SOCK_SEQPACKET` pair, for tests.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = nix::sys::socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_message_and_a_descriptor_cross() {
        let (a, b) = seqpacket_pair().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"checked").unwrap();
        file.rewind().unwrap();
        send(a.as_fd(), b"hello", Some(file.as_fd())).unwrap();
        send(a.as_fd(), b"second", None).unwrap();
        let got = receive(b.as_fd(), 64).unwrap();
        assert_eq!(got.bytes, b"hello");
        assert!(!got.truncated);
        let mut passed = std::fs::File::from(got.fd.unwrap());
        let mut text = String::new();
        passed.read_to_string(&mut text).unwrap();
        assert_eq!(text, "checked");
        let got = receive(b.as_fd(), 3).unwrap();
        assert_eq!(got.bytes, b"sec");
        assert!(got.truncated && got.fd.is_none());
        drop(a);
        assert!(receive(b.as_fd(), 64).unwrap().bytes.is_empty());
    }

    #[test]
    fn a_connection_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let server = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        nix::sys::socket::bind(server.as_raw_fd(), &UnixAddr::new(&path).unwrap()).unwrap();
        nix::sys::socket::listen(&server, nix::sys::socket::Backlog::new(1).unwrap()).unwrap();
        let client = connect_seqpacket(&path).unwrap();
        let conn = accept(server.as_fd()).unwrap();
        send(client.as_fd(), b"ping", None).unwrap();
        assert_eq!(receive(conn.as_fd(), 8).unwrap().bytes, b"ping");
        let e = accept(client.as_fd()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }
}
