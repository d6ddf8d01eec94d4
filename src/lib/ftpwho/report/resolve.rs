//! Turning scoreboard addresses into text with `getnameinfo`, exactly as
//! `pure-ftpwho` calls it, or from answers found beforehand (the
//! responder's bounded lookups, see [`HostNames`]).

use std::collections::HashMap;

use crate::ftpwho::scoreboard::{Entry, RawSockaddr};
use crate::os::net::getnameinfo;

/// What one `getnameinfo` call gave: host, and service when asked;
/// `None` when the address cannot be turned into text at all.
pub type Names = Option<(Vec<u8>, Vec<u8>)>;

/// Bytes of a socket address `getnameinfo` may read (`sockaddr_in6`).
const ADDR_BYTES: usize = 28;

/// One address translation as `pure-ftpwho` asks for it: the bytes
/// `getnameinfo` reads, and whether the service (the port) is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lookup {
    addr: [u8; ADDR_BYTES],
    len: u8,
    service: bool,
}

impl Lookup {
    /// The two translations a session needs: its peer (host only) and its
    /// local address (host and port). C passes the peer's length for both.
    pub fn of_entry(entry: &Entry) -> [Lookup; 2] {
        let len = if i32::from(entry.peer.family()) == libc::AF_INET {
            std::mem::size_of::<libc::sockaddr_in>()
        } else {
            std::mem::size_of::<libc::sockaddr_in6>()
        };
        let lookup = |addr: &RawSockaddr, service| {
            let mut bytes = [0u8; ADDR_BYTES];
            bytes[..len].copy_from_slice(&addr.0[..len]);
            Lookup {
                addr: bytes,
                len: len as u8,
                service,
            }
        };
        [lookup(&entry.peer, false), lookup(&entry.local, true)]
    }

    fn call(&self, flags: libc::c_int) -> Result<(Vec<u8>, Vec<u8>), libc::c_int> {
        let serv_flag = if self.service {
            libc::NI_NUMERICSERV
        } else {
            0
        };
        getnameinfo(
            &self.addr,
            usize::from(self.len),
            self.service,
            flags | serv_flag,
        )
        .map(|n| (n.host, n.service))
    }

    /// The numeric address (and port), never asking a name service.
    pub fn numeric(&self) -> Names {
        self.call(libc::NI_NUMERICHOST).ok()
    }

    /// The host name as `pure-ftpwho` finds it: looked up, falling back
    /// to the numeric address when the name service has none. May block
    /// as long as the name service takes.
    pub fn resolve(&self) -> Names {
        match self.call(0) {
            Ok(names) => Some(names),
            Err(eai) if eai == libc::EAI_NONAME || eai == libc::EAI_SYSTEM => self.numeric(),
            Err(_) => None,
        }
    }
}

/// Answers to [`Lookup`]s found beforehand; addresses without one are
/// printed numerically.
#[derive(Debug, Clone, Default)]
pub struct HostNames(pub HashMap<Lookup, Names>);

/// How a [`Resolver`] turns an address into text.
enum Mode {
    /// Numeric addresses only (`-n`).
    Numeric,
    /// Looked up as C does, waiting as long as the name service takes.
    Lookup,
    /// From answers found beforehand, numeric for the others.
    Known(HostNames),
}

/// Resolves entries' addresses, remembering answers: the same address
/// always gets the same name within one listing.
pub(crate) struct Resolver {
    mode: Mode,
    cache: HashMap<Lookup, Names>,
}

impl Resolver {
    pub(crate) fn new(numeric: bool) -> Resolver {
        Resolver {
            mode: if numeric { Mode::Numeric } else { Mode::Lookup },
            cache: HashMap::new(),
        }
    }

    pub(crate) fn with_names(names: HostNames) -> Resolver {
        Resolver {
            mode: Mode::Known(names),
            cache: HashMap::new(),
        }
    }

    /// Peer host, local host and local port of `entry`, or `None` when C
    /// would skip the entry.
    pub(crate) fn resolve(&mut self, entry: &Entry) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        if !matches!(self.mode, Mode::Lookup) {
            if let Some(names) = numeric_ipv4(entry, &self.mode) {
                return Some(names);
            }
        }
        let [peer, local] = Lookup::of_entry(entry);
        let (host, _) = self.lookup(&peer)?;
        let (local_host, local_port) = self.lookup(&local)?;
        Some((host, local_host, local_port))
    }

    fn lookup(&mut self, lookup: &Lookup) -> Names {
        if let Some(found) = self.cache.get(lookup) {
            return found.clone();
        }
        let found = match &self.mode {
            Mode::Numeric => lookup.numeric(),
            Mode::Lookup => lookup.resolve(),
            Mode::Known(names) => match names.0.get(lookup) {
                Some(found) => found.clone(),
                None => lookup.numeric(),
            },
        };
        self.cache.insert(*lookup, found.clone());
        found
    }
}

/// Numeric names of an IPv4 peer and local address, as `inet_ntop` and
/// `NI_NUMERICSERV` print them, without a library call; `None` when not
/// both IPv4, or when `mode` knows a name for one of them.
fn numeric_ipv4(entry: &Entry, mode: &Mode) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let (std::net::SocketAddr::V4(peer), std::net::SocketAddr::V4(local)) =
        (entry.peer.to_socket_addr()?, entry.local.to_socket_addr()?)
    else {
        return None;
    };
    if let Mode::Known(names) = mode {
        if Lookup::of_entry(entry)
            .iter()
            .any(|l| names.0.contains_key(l))
        {
            return None;
        }
    }
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
