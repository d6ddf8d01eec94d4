//! Operating-system and systemd plumbing shared by both products: the
//! service manager's notifications and descriptors ([`systemd`]), logging to
//! the journal ([`journal`]), configuration files with drop-in directories
//! ([`config`]), the daemon process itself (stdio, fork, stop signals,
//! identity, pid file: [`process`]), descriptor helpers ([`fd`]) and the
//! file-system calls of the scoreboard reader ([`fs`]: directory streams,
//! `openat`, the clock, `SIGPIPE`).
//! Nothing here knows about FTP. System calls that need `unsafe` go here,
//! each with the reason it is sound.

pub mod cgroup;
pub mod config;
pub mod fd;
pub mod fs;
pub mod journal;
pub mod passfd;
pub mod process;
pub mod resolve;
pub mod spawn;
pub mod systemd;
