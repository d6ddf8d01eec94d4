//! Operating-system and systemd plumbing shared by both products: the
//! service manager's notifications and descriptors ([`systemd`]), logging to
//! the journal ([`journal`]), configuration files with drop-in directories
//! ([`config`]), the daemon process itself (stdio, fork, stop signals,
//! identity, pid file: [`process`]), descriptor helpers ([`fd`]), and the
//! safe wrappers of the few raw calls: file system ([`fs`]: directory
//! streams, `openat`, the clock, `SIGPIPE`), sockets ([`net`]:
//! `getnameinfo`, peer groups) and the allocator ([`memory`]); for the
//! runs of upload programs: paths opened without symbolic links
//! ([`resolve`]), descriptors passed over unix sockets ([`passfd`]), the
//! unit's cgroup ([`cgroup`]), starting a program in it ([`spawn`]) and
//! the names of the uploaded files' owners ([`users`]).
//! Nothing here knows about FTP. System calls that need `unsafe` go here,
//! each with the reason it is sound.

pub mod cgroup;
pub mod config;
pub mod fd;
pub mod fs;
pub mod journal;
pub mod memory;
pub mod net;
pub mod passfd;
pub mod process;
pub mod resolve;
pub mod spawn;
pub mod systemd;
pub mod users;
