//! The client side: connect, send one request, read one answer.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{ErrorCode, ProtocolError, Request, Response};

/// Default socket of the responder.
pub const DEFAULT_SOCKET: &str = "/run/pure-ftpwho.sock";

/// Longest answer a client accepts (a scoreboard of 100,000 sessions in the
/// verbose HTML format is well below this).
pub const MAX_RESPONSE_BYTES: u64 = 512 * 1024 * 1024;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No responder at the socket (missing, refused, not a socket).
    #[error("cannot connect to {path}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The socket or the responder refused us.
    #[error("{0}")]
    PermissionDenied(String),
    /// The responder answered with an error.
    #[error("the responder refused the request: {0}")]
    Server(ProtocolError),
    /// The connection broke, timed out, or the answer was not understood.
    #[error("talking to {path}: {message}")]
    Transport {
        /// The socket.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Sends `request` to the responder at `socket` and returns its answer;
/// error answers become [`ClientError::Server`] or
/// [`ClientError::PermissionDenied`].
pub fn query(socket: &Path, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let stream = UnixStream::connect(socket).map_err(|source| {
        if source.kind() == io::ErrorKind::PermissionDenied {
            ClientError::PermissionDenied(format!(
                "permission denied: cannot connect to {} (it is for root and the group \
                 of the responder, usually ftpwho)",
                socket.display()
            ))
        } else {
            ClientError::Connect {
                path: socket.to_owned(),
                source,
            }
        }
    })?;
    let transport = |message: String| ClientError::Transport {
        path: socket.to_owned(),
        message,
    };
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| transport(e.to_string()))?;
    let line = exchange(&stream, &request.to_line()).map_err(|e| {
        transport(if e.kind() == io::ErrorKind::WouldBlock {
            format!("no answer within {timeout:?}")
        } else {
            e.to_string()
        })
    })?;
    let response = Response::from_line(&line)
        .map_err(|e| transport(format!("the answer is not a protocol response: {e}")))?;
    if response.ok {
        return Ok(response);
    }
    let error = response.error.unwrap_or_else(|| {
        ProtocolError::new(ErrorCode::Other, "error answer without an explanation")
    });
    if error.code == ErrorCode::PermissionDenied {
        Err(ClientError::PermissionDenied(error.message))
    } else {
        Err(ClientError::Server(error))
    }
}

/// Writes `line` and reads one answer line, as raw bytes.
pub fn exchange(mut stream: &UnixStream, line: &[u8]) -> io::Result<Vec<u8>> {
    // A refusal (busy, too large) may come before the request is read, and
    // then closing makes our write fail: still read what was answered.
    let written = stream.write_all(line);
    let mut reader = BufReader::new(stream.take(MAX_RESPONSE_BYTES));
    let mut answer = Vec::new();
    let read = reader.read_until(b'\n', &mut answer);
    match (read, written) {
        (Ok(_), _) if answer.ends_with(b"\n") => Ok(answer),
        (Ok(_), Err(e)) => Err(e),
        (Ok(_), Ok(())) if answer.is_empty() => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the responder closed the connection without answering",
        )),
        (Ok(_), Ok(())) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the answer was cut short",
        )),
        (Err(e), _) => Err(e),
    }
}
