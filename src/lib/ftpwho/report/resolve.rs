//! Turning scoreboard addresses into text with `getnameinfo`, exactly as
//! `pure-ftpwho` calls it.

use std::collections::HashMap;

use crate::ftpwho::scoreboard::{Entry, RawSockaddr};

const NI_MAXHOST: usize = 1025;
const NI_MAXSERV: usize = 32;

/// What one `getnameinfo` call gave: host, and service when asked.
type Names = Option<(Vec<u8>, Vec<u8>)>;

/// A cache key: the bytes `getnameinfo` reads, and whether the service
/// was asked for.
type Key = ([u8; 28], u8, bool);

/// Resolves entries' addresses, remembering answers: the same address
/// always gets the same name within one listing.
pub(crate) struct Resolver {
    numeric: bool,
    cache: HashMap<Key, Names>,
}

impl Resolver {
    pub(crate) fn new(numeric: bool) -> Resolver {
        Resolver {
            numeric,
            cache: HashMap::new(),
        }
    }

    /// Peer host, local host and local port of `entry`, or `None` when C
    /// would skip the entry.
    pub(crate) fn resolve(&mut self, entry: &Entry) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        if self.numeric {
            if let Some(names) = numeric_ipv4(entry) {
                return Some(names);
            }
        }
        // C passes the peer's length for both addresses.
        let len = if i32::from(entry.peer.family()) == libc::AF_INET {
            std::mem::size_of::<libc::sockaddr_in>()
        } else {
            std::mem::size_of::<libc::sockaddr_in6>()
        };
        let (host, _) = self.lookup(&entry.peer, len, false)?;
        let (local_host, local_port) = self.lookup(&entry.local, len, true)?;
        Some((host, local_host, local_port))
    }

    fn lookup(&mut self, addr: &RawSockaddr, len: usize, service: bool) -> Names {
        let mut bytes = [0u8; 28];
        bytes[..len].copy_from_slice(&addr.0[..len]);
        let key = (bytes, len as u8, service);
        if let Some(found) = self.cache.get(&key) {
            return found.clone();
        }
        let found = lookup_uncached(addr, len, service, self.numeric);
        self.cache.insert(key, found.clone());
        found
    }
}

/// Numeric names of an IPv4 peer and local address, as `inet_ntop` and
/// `NI_NUMERICSERV` print them, without a library call.
fn numeric_ipv4(entry: &Entry) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let (std::net::SocketAddr::V4(peer), std::net::SocketAddr::V4(local)) =
        (entry.peer.to_socket_addr()?, entry.local.to_socket_addr()?)
    else {
        return None;
    };
    let dotted = |ip: &std::net::Ipv4Addr| {
        let mut out = Vec::with_capacity(15);
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                out.push(b'.');
            }
            super::push_u64(&mut out, u64::from(octet));
        }
        out
    };
    let mut port = Vec::with_capacity(5);
    super::push_u64(&mut port, u64::from(local.port()));
    Some((dotted(peer.ip()), dotted(local.ip()), port))
}

fn lookup_uncached(addr: &RawSockaddr, len: usize, service: bool, numeric: bool) -> Names {
    let serv_flag = if service { libc::NI_NUMERICSERV } else { 0 };
    let numeric_flags = libc::NI_NUMERICHOST | serv_flag;
    let flags = if numeric { numeric_flags } else { serv_flag };
    match getnameinfo(addr, len, service, flags) {
        Ok(names) => Some(names),
        Err(eai) if (eai == libc::EAI_NONAME || eai == libc::EAI_SYSTEM) && !numeric => {
            getnameinfo(addr, len, service, numeric_flags).ok()
        }
        Err(_) => None,
    }
}

fn getnameinfo(
    addr: &RawSockaddr,
    len: usize,
    service: bool,
    flags: libc::c_int,
) -> Result<(Vec<u8>, Vec<u8>), libc::c_int> {
    // Copy into a properly aligned sockaddr_storage.
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: both are 128 bytes; `storage` is plain old data.
    unsafe {
        std::ptr::copy_nonoverlapping(
            addr.0.as_ptr(),
            (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
            addr.0
                .len()
                .min(std::mem::size_of::<libc::sockaddr_storage>()),
        )
    };
    let mut host = [0u8; NI_MAXHOST];
    let mut serv = [0u8; NI_MAXSERV];
    let (serv_ptr, serv_len) = if service {
        (serv.as_mut_ptr().cast::<libc::c_char>(), serv.len())
    } else {
        (std::ptr::null_mut(), 0)
    };
    // SAFETY: the buffers are valid for the lengths given, `storage` for
    // `len` <= 128 bytes.
    let eai = unsafe {
        libc::getnameinfo(
            (&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr>(),
            len as libc::socklen_t,
            host.as_mut_ptr().cast::<libc::c_char>(),
            host.len() as libc::socklen_t,
            serv_ptr,
            serv_len as libc::socklen_t,
            flags,
        )
    };
    if eai != 0 {
        return Err(eai);
    }
    let c = |b: &[u8]| b[..b.iter().position(|&x| x == 0).unwrap_or(b.len())].to_vec();
    Ok((c(&host), if service { c(&serv) } else { Vec::new() }))
}
