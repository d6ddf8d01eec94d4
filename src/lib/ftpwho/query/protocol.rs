//! The wire format: one JSON object per line in each direction.
//!
//! A client sends a [`Request`] line, the responder answers with exactly one
//! [`Response`] line; a connection may carry several requests in turn.
//! Requests are checked strictly (unknown fields, versions and operations
//! are refused with an [`ErrorCode`]); responses may grow new fields, which
//! clients ignore.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ftpwho::report::Format;
use crate::ftpwho::scoreboard::State;

/// The protocol version this crate speaks.
pub const VERSION: u32 = 1;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// The sessions, rendered in a [`Format`].
    List,
    /// How many sessions a user (or everyone) has.
    Count,
    /// Liveness check; answers without reading the scoreboard.
    Ping,
    /// Counters of the responder and a summary of the scoreboard.
    Stats,
}

impl Op {
    /// Every operation, in the order the documentation lists them.
    pub const ALL: [Op; 4] = [Op::List, Op::Count, Op::Ping, Op::Stats];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Op::List => "list",
            Op::Count => "count",
            Op::Ping => "ping",
            Op::Stats => "stats",
        }
    }
}

/// One request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Protocol version, [`VERSION`].
    pub v: u32,
    /// The operation.
    pub op: Op,
    /// Output format of `list` (default `text`).
    #[serde(default)]
    pub format: Option<Format>,
    /// Only these accounts' sessions (`list`), the accounts to count
    /// (`count`); empty for every session. Wire field `user`: null, one
    /// string, or an array of strings.
    #[serde(rename = "user", default, with = "one_or_many")]
    pub users: Vec<String>,
    /// Only sessions in these states (`list`, `count`); empty for every
    /// state. Wire field `state`: null, one name, or an array of names.
    #[serde(rename = "state", default, with = "one_or_many")]
    pub states: Vec<State>,
    /// Print addresses, never host names (`pure-ftpwho -n`).
    #[serde(default)]
    pub numeric: bool,
}

/// The field names a version 1 request may carry.
pub const REQUEST_FIELDS: [&str; 6] = ["v", "op", "format", "user", "state", "numeric"];

impl Request {
    /// A request for `op` with every option at its default.
    pub fn new(op: Op) -> Request {
        Request {
            v: VERSION,
            op,
            format: None,
            users: Vec::new(),
            states: Vec::new(),
            numeric: false,
        }
    }

    /// A `list` request in `format`.
    pub fn list(format: Format) -> Request {
        Request {
            format: Some(format),
            ..Request::new(Op::List)
        }
    }

    /// The request as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("a request always serializes");
        line.push(b'\n');
        line
    }
}

/// A request's `user` and `state`: null, one value, or an array of values
/// (several since the array form was added; a single value is still sent
/// as itself, so that responders which know only that form understand it).
mod one_or_many {
    use serde::de::{DeserializeOwned, Error};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn serialize<T: Serialize, S: Serializer>(values: &[T], s: S) -> Result<S::Ok, S::Error> {
        match values {
            [] => s.serialize_none(),
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        let one = |v: Value| T::deserialize(v).map_err(D::Error::custom);
        match Value::deserialize(d)? {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items.into_iter().map(one).collect(),
            value => one(value).map(|v| vec![v]),
        }
    }
}

/// Why a request was refused, or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// Not JSON, not an object, or a required field missing.
    Malformed,
    /// `v` is not a version this responder speaks.
    UnknownVersion,
    /// `op` is not a known operation.
    UnknownOp,
    /// The request has a field this version does not define.
    UnknownField,
    /// A field has the wrong type or an unknown value.
    BadValue,
    /// The same key appears twice in an object of the request.
    BadRequest,
    /// The request line is longer than the responder accepts.
    TooLarge,
    /// The request did not arrive in time.
    Timeout,
    /// The peer may not see this.
    PermissionDenied,
    /// Too many connections at once; try again.
    Busy,
    /// The scoreboard could not be read.
    Scoreboard,
    /// Anything else that went wrong on the responder's side.
    Internal,
    /// A code this client does not know (a newer responder).
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::UnknownVersion => "unknown-version",
            ErrorCode::UnknownOp => "unknown-op",
            ErrorCode::UnknownField => "unknown-field",
            ErrorCode::BadValue => "bad-value",
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::Timeout => "timeout",
            ErrorCode::PermissionDenied => "permission-denied",
            ErrorCode::Busy => "busy",
            ErrorCode::Scoreboard => "scoreboard",
            ErrorCode::Internal => "internal",
            ErrorCode::Other => "other",
        }
    }
}

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({})", code.name())]
pub struct ProtocolError {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

impl ProtocolError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ProtocolError {
        ProtocolError {
            code,
            message: message.into(),
        }
    }
}

/// Which sessions a `list` or `count` answer covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    /// Every session (root or a member of the group).
    All,
    /// Only the peer's own sessions (per-user view).
    Own,
}

/// Counters of a responder and a summary of the scoreboard (`stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Live sessions.
    pub sessions: u64,
    /// Sessions without a transfer.
    pub idle: u64,
    /// Sessions downloading.
    pub download: u64,
    /// Sessions uploading.
    pub upload: u64,
    /// Distinct accounts logged in.
    pub users: u64,
    /// Scoreboard files passed over in this scan (stale, foreign, locked).
    pub skipped: u64,
    /// Requests answered by this responder since it started (this one
    /// included).
    pub requests: u64,
    /// Connections accepted since it started.
    pub connections: u64,
    /// Connections open now (this one included).
    pub active_connections: u64,
    /// Requests refused for lack of permission.
    pub denied: u64,
    /// Requests answered with another error.
    pub errors: u64,
    /// Milliseconds since the responder started.
    pub uptime_ms: u64,
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Response {
    /// Protocol version of the answer, [`VERSION`].
    pub v: u32,
    /// True when the request was served; false with [`Response::error`].
    pub ok: bool,
    /// The operation answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Op>,
    /// The format of `output` or `data` (`list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Which sessions the answer covers (`list`, `count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<View>,
    /// The rendered output of a text format, when it is valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The rendered output, base64, when it is not valid UTF-8 (file and
    /// account names are bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_base64: Option<String>,
    /// The structured document of the `json` format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The answer of `count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The answer of `stats`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
    /// Name and version of the responder (`ping`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Why the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ProtocolError>,
}

impl Response {
    /// A successful answer to `op`, to be filled in.
    pub fn ok(op: Op) -> Response {
        Response {
            v: VERSION,
            ok: true,
            op: Some(op),
            ..Response::default()
        }
    }

    /// A failure.
    pub fn error(error: ProtocolError) -> Response {
        Response {
            v: VERSION,
            ok: false,
            error: Some(error),
            ..Response::default()
        }
    }

    /// Stores rendered bytes: as a string when they are UTF-8, in base64
    /// otherwise.
    pub fn set_output(&mut self, bytes: Vec<u8>) {
        match String::from_utf8(bytes) {
            Ok(text) => self.output = Some(text),
            Err(e) => self.output_base64 = Some(base64_encode(e.as_bytes())),
        }
    }

    /// The rendered bytes of `output` or `output_base64`, if any.
    pub fn output_bytes(&self) -> Result<Option<Vec<u8>>, ProtocolError> {
        if let Some(text) = &self.output {
            return Ok(Some(text.clone().into_bytes()));
        }
        match &self.output_base64 {
            Some(b64) => base64_decode(b64).map(Some).ok_or_else(|| {
                ProtocolError::new(ErrorCode::Malformed, "output_base64 is not valid base64")
            }),
            None => Ok(None),
        }
    }

    /// The response as one line, newline included. Strings are escaped by
    /// JSON, so the only newline is the terminator.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("a response always serializes");
        line.push(b'\n');
        line
    }

    /// Parses a response line (trailing newline optional). Unknown fields
    /// are ignored, for newer responders.
    pub fn from_line(line: &[u8]) -> Result<Response, serde_json::Error> {
        serde_json::from_slice(trim_line(line))
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses and checks one request line (trailing `\n` or `\r\n` optional).
///
/// The checks run in a fixed order, so that each kind of mistake gets its
/// own code: not a JSON object → `malformed`; `v` missing → `malformed`,
/// not [`VERSION`] → `unknown-version` (checked before anything else, so a
/// newer client gets a clear answer); a field outside [`REQUEST_FIELDS`] →
/// `unknown-field`; `op` missing → `malformed`, unknown → `unknown-op`;
/// wrong types or values → `bad-value`.
pub fn parse_request(line: &[u8]) -> Result<Request, ProtocolError> {
    let line = trim_line(line);
    let value = match serde_json::from_slice::<strict::Strict>(line) {
        Ok(strict::Strict(value)) => value,
        // The only data error the strict reader raises is a repeated key.
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(ProtocolError::new(ErrorCode::BadRequest, e.to_string()))
        }
        Err(e) => {
            return Err(ProtocolError::new(
                ErrorCode::Malformed,
                format!("not a JSON request: {e}"),
            ))
        }
    };
    let Value::Object(object) = &value else {
        return Err(ProtocolError::new(
            ErrorCode::Malformed,
            "a request is a JSON object",
        ));
    };
    match object.get("v") {
        None => {
            return Err(ProtocolError::new(
                ErrorCode::Malformed,
                "missing field `v` (the protocol version, 1)",
            ))
        }
        Some(v) if v.as_u64() == Some(u64::from(VERSION)) => {}
        Some(v) if v.is_number() => {
            return Err(ProtocolError::new(
                ErrorCode::UnknownVersion,
                format!(
                "protocol version {v} is not supported; this responder speaks version {VERSION}"
            ),
            ))
        }
        Some(v) => {
            return Err(ProtocolError::new(
                ErrorCode::BadValue,
                format!("`v` must be a number, not {v}"),
            ))
        }
    }
    if let Some(unknown) = object
        .keys()
        .find(|k| !REQUEST_FIELDS.contains(&k.as_str()))
    {
        return Err(ProtocolError::new(
            ErrorCode::UnknownField,
            format!(
                "unknown field {unknown:?}; version {VERSION} knows {}",
                REQUEST_FIELDS.join(", ")
            ),
        ));
    }
    match object.get("op") {
        None => {
            return Err(ProtocolError::new(
                ErrorCode::Malformed,
                "missing field `op` (list, count, ping or stats)",
            ))
        }
        Some(Value::String(op)) if !Op::ALL.iter().any(|o| o.name() == op) => {
            return Err(ProtocolError::new(
                ErrorCode::UnknownOp,
                format!("unknown op {op:?}; expected list, count, ping or stats"),
            ))
        }
        Some(_) => {}
    }
    serde_json::from_value(value)
        .map_err(|e| ProtocolError::new(ErrorCode::BadValue, e.to_string()))
}

/// A JSON document read into a [`Value`], refusing an object that has the
/// same key twice (serde_json would keep the last one silently), at any
/// depth.
mod strict {
    use std::fmt;

    use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    pub struct Strict(pub Value);

    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
            d.deserialize_any(StrictVisitor).map(Strict)
        }
    }

    struct StrictVisitor;

    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(Strict(item)) = seq.next_element()? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut object = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let Strict(value) = map.next_value()?;
                if object.contains_key(&key) {
                    return Err(A::Error::custom(format_args!(
                        "the key {key:?} appears twice"
                    )));
                }
                object.insert(key, value);
            }
            Ok(Value::Object(object))
        }
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard padded base64; `None` on anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if text.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| BASE64.iter().position(|&b| b == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let quads = text.len() / 4;
    for (i, quad) in text.chunks(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Bits dropped by the padding must be zero (canonical form).
        if bytes[3 - pad..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(line: &str) -> ErrorCode {
        parse_request(line.as_bytes()).unwrap_err().code
    }

    #[test]
    fn the_documented_request_parses() {
        let line = br#"{"v":1,"op":"list","format":"shell","user":null,"state":null}"#;
        let request = parse_request(line).unwrap();
        assert_eq!(request, Request::list(Format::Shell));
        let request = parse_request(
            b"{\"v\":1,\"op\":\"count\",\"user\":\"alice\",\"state\":\"upload\",\"numeric\":true}\r\n",
        )
        .unwrap();
        assert_eq!(request.op, Op::Count);
        assert_eq!(request.users, ["alice"]);
        assert_eq!(request.states, [State::Upload]);
        assert!(request.numeric);
    }

    #[test]
    fn user_and_state_take_one_value_or_several() {
        let request = parse_request(
            br#"{"v":1,"op":"list","user":["alice","bob"],"state":["idle","upload"]}"#,
        )
        .unwrap();
        assert_eq!(request.users, ["alice", "bob"]);
        assert_eq!(request.states, [State::Idle, State::Upload]);
        // One value travels as itself, as version 1 first defined it, so
        // that older responders understand it; several as an array.
        let one = Request {
            users: vec!["alice".into()],
            states: vec![State::Idle],
            ..Request::new(Op::List)
        };
        assert_eq!(
            one.to_line(),
            b"{\"v\":1,\"op\":\"list\",\"format\":null,\"user\":\"alice\",\"state\":\"idle\",\"numeric\":false}\n"
        );
        let line = String::from_utf8(request.to_line()).unwrap();
        assert!(
            line.contains(r#""user":["alice","bob"],"state":["idle","upload"]"#),
            "{line}"
        );
        assert_eq!(
            parse_request(br#"{"v":1,"op":"list","user":[],"state":null}"#).unwrap(),
            Request::new(Op::List)
        );
        for bad in [
            r#"{"v":1,"op":"list","user":5}"#,
            r#"{"v":1,"op":"list","user":["a",5]}"#,
            r#"{"v":1,"op":"list","user":[["a"]]}"#,
            r#"{"v":1,"op":"list","user":{"a":1}}"#,
            r#"{"v":1,"op":"list","state":["idle","sleeping"]}"#,
            r#"{"v":1,"op":"list","state":[null]}"#,
        ] {
            assert_eq!(code(bad), ErrorCode::BadValue, "{bad}");
        }
        let message = parse_request(br#"{"v":1,"op":"list","state":["idle","busy"]}"#)
            .unwrap_err()
            .message;
        assert!(message.contains("busy"), "{message}");
    }

    #[test]
    fn requests_round_trip() {
        for format in Format::ALL {
            for op in Op::ALL {
                let request = Request {
                    format: Some(format),
                    users: vec!["bob \"x\"".into()],
                    states: vec![State::Download],
                    numeric: true,
                    ..Request::new(op)
                };
                let line = request.to_line();
                assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
                assert_eq!(parse_request(&line).unwrap(), request);
            }
        }
    }

    #[test]
    fn wire_names_match_serde() {
        for format in Format::ALL {
            assert_eq!(
                serde_json::to_value(format).unwrap(),
                Value::String(format.name().into())
            );
        }
        for op in Op::ALL {
            assert_eq!(
                serde_json::to_value(op).unwrap(),
                Value::String(op.name().into())
            );
        }
        for code in [
            ErrorCode::UnknownVersion,
            ErrorCode::PermissionDenied,
            ErrorCode::BadRequest,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                Value::String(code.name().into())
            );
        }
    }

    #[test]
    fn each_mistake_has_its_code() {
        assert_eq!(code(""), ErrorCode::Malformed);
        assert_eq!(code("{"), ErrorCode::Malformed);
        assert_eq!(code("[1]"), ErrorCode::Malformed);
        assert_eq!(code("\"ping\""), ErrorCode::Malformed);
        assert_eq!(code(r#"{"op":"ping"}"#), ErrorCode::Malformed);
        assert_eq!(code(r#"{"v":2,"op":"ping"}"#), ErrorCode::UnknownVersion);
        assert_eq!(code(r#"{"v":0,"op":"ping"}"#), ErrorCode::UnknownVersion);
        assert_eq!(code(r#"{"v":1.5,"op":"ping"}"#), ErrorCode::UnknownVersion);
        // A newer client's new field gets the version error, not a field error.
        assert_eq!(
            code(r#"{"v":2,"op":"ping","deadline":3}"#),
            ErrorCode::UnknownVersion
        );
        assert_eq!(code(r#"{"v":"1","op":"ping"}"#), ErrorCode::BadValue);
        assert_eq!(code(r#"{"v":1}"#), ErrorCode::Malformed);
        assert_eq!(code(r#"{"v":1,"op":"kill"}"#), ErrorCode::UnknownOp);
        assert_eq!(code(r#"{"v":1,"op":3}"#), ErrorCode::BadValue);
        assert_eq!(
            code(r#"{"v":1,"op":"list","colour":"red"}"#),
            ErrorCode::UnknownField
        );
        assert_eq!(
            code(r#"{"v":1,"op":"list","format":"csv"}"#),
            ErrorCode::BadValue
        );
        assert_eq!(
            code(r#"{"v":1,"op":"list","state":"sleeping"}"#),
            ErrorCode::BadValue
        );
        assert_eq!(
            code(r#"{"v":1,"op":"list","numeric":"yes"}"#),
            ErrorCode::BadValue
        );
        assert_eq!(code("{\"v\":1,\"op\":\"ping\"} x"), ErrorCode::Malformed);
        // A repeated key is refused, not resolved by the last one winning,
        // at any depth and whatever the key.
        for twice in [
            r#"{"v":1,"op":"list","op":"ping"}"#,
            r#"{"v":1,"v":1,"op":"ping"}"#,
            r#"{"v":1,"op":"list","user":"alice","user":"bob"}"#,
            r#"{"v":1,"op":"list","numeric":true,"numeric":false}"#,
            r#"{"v":1,"op":"list","colour":1,"colour":2}"#,
            r#"{"v":1,"op":"list","user":[{"a":1,"a":2}]}"#,
        ] {
            assert_eq!(code(twice), ErrorCode::BadRequest, "{twice}");
        }
        let message = parse_request(br#"{"v":1,"op":"list","op":"ping"}"#)
            .unwrap_err()
            .message;
        assert!(message.contains("\"op\" appears twice"), "{message}");
        let message = parse_request(br#"{"v":1,"op":"list","colour":1}"#)
            .unwrap_err()
            .message;
        assert!(message.contains("colour"), "{message}");
    }

    #[test]
    fn responses_round_trip_and_tolerate_new_fields() {
        let mut response = Response::ok(Op::List);
        response.format = Some(Format::Text);
        response.set_output(b"a\nb\"c\n".to_vec());
        let line = response.to_line();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(Response::from_line(&line).unwrap(), response);
        let newer = br#"{"v":1,"ok":false,"error":{"code":"overheated","message":"m"},"extra":1}"#;
        let parsed = Response::from_line(newer).unwrap();
        assert_eq!(parsed.error.unwrap().code, ErrorCode::Other);
    }

    #[test]
    fn non_utf8_output_travels_as_base64() {
        let mut response = Response::ok(Op::List);
        response.set_output(b"caf\xe9\n".to_vec());
        assert!(response.output.is_none());
        assert_eq!(response.output_base64.as_deref(), Some("Y2Fm6Qo="));
        let back = Response::from_line(&response.to_line()).unwrap();
        assert_eq!(back.output_bytes().unwrap().unwrap(), b"caf\xe9\n");
    }

    #[test]
    fn base64_known_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), coded);
            assert_eq!(base64_decode(coded).unwrap(), plain.as_bytes());
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zh==", "Zm9*", "é"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn base64_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(base64_decode(&base64_encode(&bytes)).unwrap(), bytes);
        }

        #[test]
        fn base64_decode_never_panics(text in ".{0,40}") {
            let _ = base64_decode(&text);
        }

        #[test]
        fn any_bytes_give_a_request_or_a_coded_error(
            bytes in proptest::collection::vec(any::<u8>(), 0..300)
        ) {
            match parse_request(&bytes) {
                Ok(request) => prop_assert_eq!(request.v, VERSION),
                Err(e) => {
                    prop_assert!(!e.message.is_empty());
                    let line = Response::error(e).to_line();
                    prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
                }
            }
        }

        #[test]
        fn json_objects_never_panic(
            v in prop_oneof![Just(Value::from(1)), any::<i64>().prop_map(Value::from), ".{0,4}".prop_map(Value::from)],
            op in prop_oneof![Just("list".to_string()), Just("count".to_string()), ".{0,6}"],
            key in prop_oneof![Just("format".to_string()), Just("user".to_string()), Just("state".to_string()), "[a-z]{1,6}"],
            value in prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                ".{0,8}".prop_map(Value::from),
                any::<i32>().prop_map(Value::from),
                proptest::collection::vec(prop_oneof![Just("idle".to_string()), ".{0,5}"], 0..4)
                    .prop_map(Value::from),
            ],
        ) {
            let mut object = serde_json::Map::new();
            object.insert("v".into(), v);
            object.insert("op".into(), Value::String(op));
            object.insert(key, value);
            let line = serde_json::to_vec(&Value::Object(object)).unwrap();
            if let Ok(request) = parse_request(&line) {
                prop_assert_eq!(parse_request(&request.to_line()).unwrap(), request);
            }
        }
    }
}
