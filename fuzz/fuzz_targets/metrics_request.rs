//! Any bytes as an HTTP request head to the metrics exporter: a verdict for
//! every prefix (more wanted only below the size bound, refusals with an
//! error status), the same verdict however the bytes arrive, and an
//! `Accept` value always picks a format. The upload readers' state file
//! parser gets the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pureftpd_systemd::metrics::exposition::negotiate;
use pureftpd_systemd::metrics::http::{parse, route, Parsed};
use pureftpd_systemd::upload::metrics::UploadCounters;

const MAX: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX)];
    match parse(data, MAX) {
        Parsed::Partial => assert!(data.len() < MAX),
        Parsed::Refused(status) => assert!(status.code() >= 400),
        Parsed::Complete(request) => {
            if let Some(status) = route(&request) {
                assert!(matches!(status.code(), 404 | 405));
            }
            let _ = negotiate(request.accept.as_deref());
        }
    }
    // A complete head stays complete with more bytes after it (a body).
    if let Parsed::Complete(request) = parse(data, MAX) {
        let mut longer = data.to_vec();
        longer.extend_from_slice(b"trailing body");
        assert_eq!(parse(&longer, MAX + 64), Parsed::Complete(request));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = negotiate(Some(text));
    }
    if let Some(counters) = UploadCounters::parse(data) {
        let again = serde_json::to_vec(&counters).unwrap();
        assert!(UploadCounters::parse(&again).is_some());
    }
});
