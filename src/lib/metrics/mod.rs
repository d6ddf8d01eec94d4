//! Prometheus metrics over HTTP: `pureftpd-exporter`, a socket-activated
//! sibling of the responder that serves `GET /metrics`.
//!
//! [`http`] reads a request head (bounded in size and time) and writes the
//! answers, [`exposition`] gathers nothing but renders a scrape in the
//! Prometheus text format or OpenMetrics (negotiated on `Accept`),
//! [`server`] collects the numbers (the scoreboard's sessions and the
//! upload readers' published counters) and serves them, and [`settings`]
//! is the exporter's configuration.
//!
//! This module reads what [`crate::ftpwho`] and [`crate::upload`] provide;
//! nothing but the command line depends on it.

pub mod exposition;
pub mod http;
pub mod server;
pub mod settings;
