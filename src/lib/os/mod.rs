//! Operating-system and systemd plumbing shared by both products: the
//! service manager's notifications and descriptors ([`systemd`]), logging to
//! the journal ([`journal`]) and configuration files with drop-in
//! directories ([`config`]). Nothing here knows about FTP.

pub mod config;
pub mod fs;
pub mod journal;
pub mod systemd;
