//! Feeds arbitrary bytes to the upload pipe parser, whole and in pieces
//! (split points taken from the input's first bytes), and checks that both
//! give the same events and that every record obeys the protocol's limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pureftpd_systemd::upload::pipe::{is_control, Event, Parser, MAX_PATH_LEN, MAX_USER_LEN};

fuzz_target!(|data: &[u8]| {
    let (seed, input) = match data.split_first() {
        Some((&seed, rest)) => (seed as usize, rest),
        None => return,
    };
    let mut whole = Vec::new();
    Parser::new().feed(input, &mut whole);
    for event in &whole {
        match event {
            Event::Record(r) => {
                assert!(r.user.len() <= MAX_USER_LEN);
                assert!(!r.path.is_empty() && r.path.len() <= MAX_PATH_LEN);
                assert!(!r.user.iter().chain(&r.path).any(|&b| is_control(b)));
            }
            Event::Rejected(r) => {
                assert!(r.user.len() <= MAX_USER_LEN && r.path.len() <= MAX_PATH_LEN)
            }
            Event::Skipped(n) => assert!(*n > 0),
        }
    }
    // Pieces of 1 + (seed-driven) bytes.
    let mut parser = Parser::new();
    let mut pieces = Vec::new();
    let mut rest = input;
    let mut step = seed;
    while !rest.is_empty() {
        let n = (1 + step % 37).min(rest.len());
        parser.feed(&rest[..n], &mut pieces);
        rest = &rest[n..];
        step = step.wrapping_mul(31).wrapping_add(7);
    }
    assert_eq!(pieces, whole);
    // Event by event.
    let mut parser = Parser::new();
    let mut stepped = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (used, event) = parser.next_event(rest);
        assert!(used > 0 && used <= rest.len());
        stepped.extend(event);
        rest = &rest[used..];
    }
    assert_eq!(stepped, whole);
});
