//! Feeds arbitrary bytes to the queue file's decoder, raw and behind a
//! valid header: never a panic; every entry found encodes back to a frame
//! that decodes to it; the undamaged start re-decodes to the same entries;
//! replaying the entries and their snapshot gives the same queue.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pureftpd_systemd::upload::queue::format::{self, check_header, decode, decode_frame};
use pureftpd_systemd::upload::queue::state::Queue;

fuzz_target!(|data: &[u8]| {
    let mut framed = format::header().to_vec();
    framed.extend_from_slice(data);
    for input in [data, &framed[..]] {
        if check_header(input).is_err() {
            continue;
        }
        let decoded = decode(input);
        assert!(decoded.good_len <= input.len());
        for entry in &decoded.entries {
            let mut bytes = Vec::new();
            format::encode(entry, &mut bytes);
            assert_eq!(decode_frame(&bytes).map(|(e, _)| e), Ok(entry.clone()));
        }
        let start = decode(&input[..decoded.good_len]);
        assert_eq!(start.damage, None);
        assert!(decoded.entries.starts_with(&start.entries));
        let queue = Queue::replay(&decoded.entries);
        let again = Queue::replay(&queue.snapshot());
        assert!(queue.items().eq(again.items()));
        assert_eq!(queue.next_id(), again.next_id());
    }
});
