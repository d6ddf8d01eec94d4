//! The little HTTP the exporter speaks: one request per connection, read
//! with `httparse` under a size bound, and the answer's status line and
//! headers.
//!
//! Only `GET` and `HEAD` of [`METRICS_PATH`] are served; everything else
//! gets a [`Status`] saying why, and the connection is closed after every
//! answer.

use std::fmt;

/// The one path served.
pub const METRICS_PATH: &str = "/metrics";

/// Headers read at most (more is a malformed request).
const MAX_HEADERS: usize = 32;

/// Request methods the exporter tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`: the metrics.
    Get,
    /// `HEAD`: the headers `GET` would get.
    Head,
    /// Anything else: `405 Method Not Allowed`.
    Other,
}

/// A complete request head, as far as the exporter cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The target's path, without the query string.
    pub path: String,
    /// The `Accept` headers' values, joined with commas.
    pub accept: Option<String>,
}

/// The answers the exporter gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200: the metrics.
    Ok,
    /// 400: not an HTTP request.
    BadRequest,
    /// 404: not [`METRICS_PATH`].
    NotFound,
    /// 405: not `GET` or `HEAD`.
    MethodNotAllowed,
    /// 408: the request did not arrive within the time limit.
    RequestTimeout,
    /// 431: the request head is larger than the bound.
    HeaderTooLarge,
    /// 500: the metrics could not be gathered.
    InternalError,
    /// 503: too many connections at once.
    Unavailable,
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::HeaderTooLarge => 431,
            Status::InternalError => 500,
            Status::Unavailable => 503,
        }
    }

    /// The reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::HeaderTooLarge => "Request Header Fields Too Large",
            Status::InternalError => "Internal Server Error",
            Status::Unavailable => "Service Unavailable",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.reason())
    }
}

/// What the bytes received so far amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A complete request head.
    Complete(Request),
    /// More bytes are needed (and allowed).
    Partial,
    /// The request is refused with this status.
    Refused(Status),
}

/// Parses the head of a request from `buf`, which holds at most
/// `max_bytes` (more was not read): a head that is still incomplete at the
/// bound is [`Status::HeaderTooLarge`].
pub fn parse(buf: &[u8], max_bytes: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) if buf.len() >= max_bytes => {
            return Parsed::Refused(Status::HeaderTooLarge)
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Refused(Status::HeaderTooLarge),
        Err(_) => return Parsed::Refused(Status::BadRequest),
    }
    let method = match request.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => Method::Other,
    };
    let target = request.path.unwrap_or("");
    let path = target.split(['?', '#']).next().unwrap_or("").to_owned();
    let accepts: Vec<&str> = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("accept"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .collect();
    Parsed::Complete(Request {
        method,
        path,
        accept: (!accepts.is_empty()).then(|| accepts.join(",")),
    })
}

/// The status a complete request gets before any metrics are gathered:
/// `None` when it is a request for the metrics.
pub fn route(request: &Request) -> Option<Status> {
    if request.path != METRICS_PATH {
        Some(Status::NotFound)
    } else if request.method == Method::Other {
        Some(Status::MethodNotAllowed)
    } else {
        None
    }
}

/// The status line and headers of an answer with a body of `length`
/// bytes of `content_type`.
pub fn head(status: Status, content_type: &str, length: usize) -> String {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n"
    );
    match status {
        Status::Ok => head.push_str("Vary: Accept\r\n"),
        Status::MethodNotAllowed => head.push_str("Allow: GET, HEAD\r\n"),
        _ => {}
    }
    head.push_str("Cache-Control: no-store\r\nConnection: close\r\n\r\n");
    head
}

/// A whole plain-text error answer.
pub fn error_answer(status: Status) -> Vec<u8> {
    let body = format!("{status}\n");
    let mut out = head(status, "text/plain; charset=utf-8", body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn complete(bytes: &[u8]) -> Request {
        match parse(bytes, 4096) {
            Parsed::Complete(r) => r,
            other => panic!("{other:?} for {bytes:?}"),
        }
    }

    #[test]
    fn a_scrape_request() {
        let r = complete(
            b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: text/plain;version=0.0.4\r\n\
              accept: */*;q=0.1\r\n\r\n",
        );
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/metrics");
        assert_eq!(
            r.accept.as_deref(),
            Some("text/plain;version=0.0.4,*/*;q=0.1")
        );
        assert_eq!(route(&r), None);
        let r = complete(b"HEAD /metrics HTTP/1.0\r\n\r\n");
        assert_eq!((r.method, r.accept), (Method::Head, None));
    }

    #[test]
    fn routes() {
        let r = complete(b"POST /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(route(&r), Some(Status::MethodNotAllowed));
        let r = complete(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(route(&r), Some(Status::NotFound));
        let r = complete(b"GET /metrics/ HTTP/1.1\r\n\r\n");
        assert_eq!(route(&r), Some(Status::NotFound));
        let r = complete(b"DELETE /elsewhere HTTP/1.1\r\n\r\n");
        assert_eq!(route(&r), Some(Status::NotFound));
    }

    #[test]
    fn incomplete_oversized_and_garbage_requests() {
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost:", 4096),
            Parsed::Partial
        );
        assert_eq!(parse(b"", 4096), Parsed::Partial);
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
        assert_eq!(
            parse(&long.as_bytes()[..64], 64),
            Parsed::Refused(Status::HeaderTooLarge)
        );
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        let many = format!("GET /metrics HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            parse(many.as_bytes(), 4096),
            Parsed::Refused(Status::HeaderTooLarge)
        );
        for garbage in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            b"\0\0\0\0\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET /metrics HTTP/9.9\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nNo colon\r\n\r\n",
            b"SSH-2.0-OpenSSH_9.2\r\n",
        ] {
            assert_eq!(
                parse(garbage, 4096),
                Parsed::Refused(Status::BadRequest),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn answers_say_their_length_and_close() {
        let answer = String::from_utf8(error_answer(Status::MethodNotAllowed)).unwrap();
        assert!(answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(answer.contains("Allow: GET, HEAD\r\n"));
        assert!(answer.contains("Connection: close\r\n"));
        assert!(answer.ends_with("\r\n\r\n405 Method Not Allowed\n"));
        assert!(answer.contains("Content-Length: 23\r\n"));
    }

    proptest! {
        #[test]
        fn any_bytes_get_a_verdict(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let max = 512;
            let bytes = &bytes[..bytes.len().min(max)];
            match parse(bytes, max) {
                Parsed::Partial => prop_assert!(bytes.len() < max),
                Parsed::Complete(r) => prop_assert!(r.path.len() < max),
                Parsed::Refused(status) => prop_assert!(status.code() >= 400),
            }
        }
    }
}
