//! The ftpwho responder and its client: who is online, over a unix socket,
//! for members of a group.
//!
//! [`protocol`] is the wire format (newline-delimited JSON, versioned),
//! [`server`] the socket-activated responder's accept loop (`ftpwhod`),
//! [`worker`] its pool of workers, one function per operation,
//! [`snapshot`] the shared scan and its single flight, [`answer`] an
//! answer streamed through a fixed buffer, [`names`] host names in
//! bounded time, [`limits`] connection slots and log rate limits,
//! [`auth`] the peer credential checks, [`client`] what `ftpwho-query`
//! uses.
//!
//! ```
//! use std::os::unix::net::{UnixListener, UnixStream};
//! use std::time::Duration;
//! use pureftpd_systemd::ftpwho::query::{client, server};
//! use pureftpd_systemd::ftpwho::settings::Settings;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("ftpwho.sock");
//! let listener = UnixListener::bind(&path).unwrap();
//! let settings = Settings {
//!     idle_timeout: Some(Duration::from_millis(300)),
//!     ..Settings::default()
//! };
//! let responder = server::Server::new(listener, settings).unwrap();
//! let running = std::thread::spawn(move || responder.run().unwrap());
//!
//! let stream = UnixStream::connect(&path).unwrap();
//! let answer = client::exchange(&stream, b"{\"v\":1,\"op\":\"ping\"}\n").unwrap();
//! assert_eq!(
//!     String::from_utf8(answer).unwrap(),
//!     format!(
//!         "{{\"v\":1,\"ok\":true,\"op\":\"ping\",\"server\":\"ftpwhod {}\"}}\n",
//!         env!("CARGO_PKG_VERSION")
//!     )
//! );
//! let answer = client::exchange(&stream, b"{\"v\":7,\"op\":\"ping\"}\n").unwrap();
//! assert_eq!(
//!     String::from_utf8(answer).unwrap(),
//!     "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"unknown-version\",\
//!      \"message\":\"protocol version 7 is not supported; this responder speaks version 1\"}}\n"
//! );
//! drop(stream);
//! // No client for the idle timeout: the responder returns.
//! assert_eq!(running.join().unwrap().requests, 2);
//! ```

pub mod answer;
pub mod auth;
pub mod client;
pub mod limits;
pub mod names;
pub mod protocol;
pub mod server;
pub mod snapshot;
pub mod worker;

pub use protocol::{ErrorCode, Op, ProtocolError, Request, Response};
