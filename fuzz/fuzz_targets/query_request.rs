//! Any bytes as a request line: parsed or refused with a coded error, and
//! the answer is always exactly one line; what parses survives a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pureftpd_systemd::ftpwho::query::protocol::{parse_request, Response};

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(request) => {
            assert_eq!(parse_request(&request.to_line()).unwrap(), request);
        }
        Err(error) => {
            assert!(!error.message.is_empty());
            let line = Response::error(error.clone()).to_line();
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            let back = Response::from_line(&line).unwrap();
            assert_eq!(back.error, Some(error));
        }
    }
    // Responses from a hostile responder must not crash the client either.
    if let Ok(response) = Response::from_line(data) {
        let _ = response.output_bytes();
    }
});
