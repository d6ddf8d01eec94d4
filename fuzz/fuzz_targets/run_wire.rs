//! Feeds arbitrary bytes to the decoders of the run socket's messages (the
//! reader's request and the run unit's answer): never a panic; a request
//! that decodes encodes back to the same value; an answer does once its
//! encoding has cut what is too long to send.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pureftpd_systemd::upload::runner::wire::{Answer, Request, MAX_MESSAGE};

fuzz_target!(|data: &[u8]| {
    for kind in [b'Q', b'A'] {
        // Raw bytes, and the same bytes behind a valid header.
        let mut framed = b"PURN\x01".to_vec();
        framed.push(kind);
        framed.extend_from_slice(data);
        for input in [data, &framed[..]] {
            if let Ok(request) = Request::decode(input) {
                let again = request.encode();
                assert!(again.len() <= MAX_MESSAGE);
                assert_eq!(Request::decode(&again), Ok(request));
            }
            if let Ok(answer) = Answer::decode(input) {
                let sent = answer.encode();
                assert!(sent.len() <= MAX_MESSAGE);
                let cut = Answer::decode(&sent).expect("an encoded answer decodes");
                assert_eq!(Answer::decode(&cut.encode()), Ok(cut));
            }
        }
    }
});
