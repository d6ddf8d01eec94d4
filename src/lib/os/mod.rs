//! Operating-system and systemd plumbing shared by both products: the
//! service manager's notifications and descriptors ([`systemd`]), logging to
//! the journal ([`journal`]) and configuration files with drop-in
//! directories ([`config`]). Nothing here knows about FTP.

pub mod cgroup;
pub mod config;
pub mod journal;
pub mod passfd;
pub mod resolve;
pub mod spawn;
pub mod systemd;
