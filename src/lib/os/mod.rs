//! Operating-system and systemd plumbing shared by both products: the
//! service manager's notifications and descriptors ([`systemd`]), logging to
//! the journal ([`journal`]), configuration files with drop-in
//! directories ([`config`]), and the safe wrappers of the few raw calls:
//! file system ([`fs`]), sockets ([`net`]) and the allocator
//! ([`memory`]). Nothing here knows about FTP.

pub mod config;
pub mod fs;
pub mod journal;
pub mod memory;
pub mod net;
pub mod systemd;
