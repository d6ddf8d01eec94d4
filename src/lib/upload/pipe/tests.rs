use super::*;
use proptest::prelude::*;

fn record(user: &[u8], path: &[u8]) -> Vec<u8> {
    let mut v = vec![RECORD_START];
    v.extend_from_slice(user);
    v.push(USER_END);
    v.extend_from_slice(path);
    v.push(PATH_END);
    v
}

fn parse(input: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    Parser::new().feed(input, &mut events);
    events
}

fn rec(user: &[u8], file: &[u8]) -> Event {
    Event::Record(Record {
        user: user.to_vec(),
        path: file.to_vec(),
        file: file.to_vec(),
    })
}

fn reason(event: &Event) -> Option<Reason> {
    match event {
        Event::Rejected(r) => Some(r.reason),
        _ => None,
    }
}

#[test]
fn one_record_in_every_split() {
    let input = record(b"alice", b"/home/alice/report 2024.pdf");
    let expected = vec![rec(b"alice", b"/home/alice/report 2024.pdf")];
    assert_eq!(parse(&input), expected);
    for cut in 0..=input.len() {
        let mut parser = Parser::new();
        let mut events = Vec::new();
        parser.feed(&input[..cut], &mut events);
        assert!(events.is_empty() || cut == input.len(), "cut {cut}");
        parser.feed(&input[cut..], &mut events);
        assert_eq!(events, expected, "cut {cut}");
    }
    // Byte by byte, as the C reader reads.
    let mut parser = Parser::new();
    let mut events = Vec::new();
    for b in &input {
        parser.feed(std::slice::from_ref(b), &mut events);
    }
    assert_eq!(events, expected);
}

#[test]
fn next_event_stops_after_the_completing_byte() {
    let mut input = record(b"a", b"/1");
    let first = input.len();
    input.extend(record(b"b", b"/2"));
    let mut parser = Parser::new();
    let (used, event) = parser.next_event(&input);
    assert_eq!((used, event), (first, Some(rec(b"a", b"/1"))));
    let (used, event) = parser.next_event(&input[first..]);
    assert_eq!((used, event), (input.len() - first, Some(rec(b"b", b"/2"))));
    assert_eq!(parser.next_event(b"xyz"), (3, None));
    assert!(!parser.in_record());
    assert_eq!(parser.next_event(b"\x02ab"), (1, Some(Event::Skipped(3))));
    assert!(parser.in_record());
    assert_eq!(parser.next_event(b"ab"), (2, None));
}

#[test]
fn user_name_limit_is_128_bytes() {
    let user = vec![b'u'; MAX_USER_LEN];
    assert_eq!(parse(&record(&user, b"/f")), vec![rec(&user, b"/f")]);
    let long = vec![b'u'; MAX_USER_LEN + 1];
    let mut input = record(&long, b"/f");
    input.extend(record(b"next", b"/g"));
    let events = parse(&input);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(reason(&events[0]), Some(Reason::UserTooLong));
    assert_eq!(events[1], rec(b"next", b"/g"));
}

#[test]
fn path_limit_is_path_max_plus_63() {
    let mut path = b"/".to_vec();
    path.resize(MAX_PATH_LEN, b'p');
    assert_eq!(parse(&record(b"u", &path)), vec![rec(b"u", &path)]);
    path.push(b'p');
    let events = parse(&record(b"u", &path));
    assert_eq!(events.len(), 1);
    assert_eq!(reason(&events[0]), Some(Reason::PathTooLong));
}

#[test]
fn control_bytes_reject_the_record() {
    for b in (0u8..0x20).chain([0x7f]) {
        if b == RECORD_START {
            continue;
        }
        // In the user name (0x01 ends it, so it cannot be tested there).
        if b != USER_END {
            let mut input = vec![RECORD_START, b'a', b];
            input.extend_from_slice(b"b\x01/f\x00");
            let events = parse(&input);
            assert_eq!(events.len(), 1, "{b:#x}: {events:?}");
            assert_eq!(reason(&events[0]), Some(Reason::ControlInUser(b)));
        }
        // In the file name (0x00 ends it).
        if b != PATH_END {
            let mut input = b"\x02a\x01/f".to_vec();
            input.push(b);
            input.extend_from_slice(b"g\x00");
            let events = parse(&input);
            assert_eq!(events.len(), 1, "{b:#x}: {events:?}");
            assert_eq!(reason(&events[0]), Some(Reason::ControlInPath(b)));
            let Event::Rejected(r) = &events[0] else {
                unreachable!()
            };
            assert_eq!((&r.user[..], &r.path[..]), (&b"a"[..], &b"/f"[..]));
        }
    }
}

#[test]
fn high_bytes_are_accepted() {
    let user: Vec<u8> = (0x80..=0xffu8).take(100).collect();
    let mut path = b"/".to_vec();
    path.extend(0x20..=0xffu8);
    path.retain(|&b| b != 0x7f);
    assert_eq!(parse(&record(&user, &path)), vec![rec(&user, &path)]);
    let euro = "/srv/ftp/€ ünï ✓ 😀".as_bytes();
    assert_eq!(
        parse(&record(b"jos\xc3\xa9", euro)),
        vec![rec(b"jos\xc3\xa9", euro)]
    );
}

#[test]
fn empty_user_is_fine_empty_path_is_not() {
    assert_eq!(parse(b"\x02\x01/f\x00"), vec![rec(b"", b"/f")]);
    let events = parse(b"\x02u\x01\x00");
    assert_eq!(reason(&events[0]), Some(Reason::EmptyPath));
}

#[test]
fn garbage_is_skipped_and_counted() {
    let mut input = b"garbage\x00\x01\xff".to_vec();
    input.extend(record(b"u", b"/f"));
    input.extend_from_slice(b"\n\n");
    input.extend(record(b"v", b"/g"));
    input.extend_from_slice(b"trailing");
    assert_eq!(
        parse(&input),
        vec![
            Event::Skipped(10),
            rec(b"u", b"/f"),
            Event::Skipped(2),
            rec(b"v", b"/g"),
        ]
    );
}

#[test]
fn the_rest_of_a_rejected_record_is_not_counted_as_garbage() {
    let mut input = b"\x02u\x05ser\x01/f\x00".to_vec();
    input.extend(record(b"v", b"/g"));
    let events = parse(&input);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(reason(&events[0]), Some(Reason::ControlInUser(5)));
    assert_eq!(events[1], rec(b"v", b"/g"));
}

#[test]
fn a_start_byte_inside_a_record_starts_the_next_one() {
    let events = parse(b"\x02a\x02b\x01/f\x00");
    assert_eq!(events.len(), 2);
    assert_eq!(reason(&events[0]), Some(Reason::Interrupted));
    assert_eq!(events[1], rec(b"b", b"/f"));
    let events = parse(b"\x02a\x01/trunc\x02b\x01/g\x00");
    assert_eq!(reason(&events[0]), Some(Reason::Interrupted));
    assert_eq!(events[1], rec(b"b", b"/g"));
}

#[test]
fn virtual_hosts_are_mapped_like_checkvirtual() {
    let dir = DEFAULT_VHOST_DIR.as_bytes();
    let cases: &[(&[u8], Option<&[u8]>)] = &[
        (b"/abs/a:/b", None),
        (b"relative/file", None),
        (
            b"10.0.0.1:/pub/f",
            Some(b"/etc/pure-ftpd/pure-ftpd/10.0.0.1/pub/f"),
        ),
        (b"[::1]:/f", Some(b"/etc/pure-ftpd/pure-ftpd/[::1]/f")),
        (b"a:b:/c:/d", Some(b"/etc/pure-ftpd/pure-ftpd/a:b/c:/d")),
        (b":/x", Some(b"/etc/pure-ftpd/pure-ftpd//x")),
        (b"host:x", None),
    ];
    for (path, want) in cases {
        assert_eq!(
            map_virtual(path, dir).unwrap().as_deref(),
            *want,
            "{}",
            String::from_utf8_lossy(path)
        );
    }
    assert_eq!(
        map_virtual(b"1.2.3.4:/f", b"/etc/pure-ftpd").unwrap(),
        Some(b"/etc/pure-ftpd/1.2.3.4/f".to_vec())
    );
    let events = parse(&record(b"u", b"10.0.0.1:/pub/f"));
    assert_eq!(
        events,
        vec![Event::Record(Record {
            user: b"u".to_vec(),
            path: b"10.0.0.1:/pub/f".to_vec(),
            file: b"/etc/pure-ftpd/pure-ftpd/10.0.0.1/pub/f".to_vec(),
        })]
    );
}

#[test]
fn mapped_names_are_limited_to_path_max() {
    let dir = b"/v";
    // "/v" + "/" + "h" + path: exactly PATH_MAX bytes is fine.
    let mut path = b"h:/".to_vec();
    path.resize(MAX_VIRTUAL_PATH_LEN - 2, b'x');
    let ok = map_virtual(&path, dir).unwrap().unwrap();
    assert_eq!(ok.len(), MAX_VIRTUAL_PATH_LEN);
    path.push(b'x');
    assert_eq!(map_virtual(&path, dir), Err(Reason::VirtualPathTooLong));
    let mut parser = Parser::with_vhost_dir(dir);
    let mut events = Vec::new();
    parser.feed(&record(b"u", &path), &mut events);
    assert_eq!(reason(&events[0]), Some(Reason::VirtualPathTooLong));
}

#[test]
fn reasons_read_well() {
    assert_eq!(
        Reason::ControlInPath(0x7f).to_string(),
        "control byte 0x7f in the file name"
    );
    assert_eq!(
        Reason::UserTooLong.to_string(),
        "user name longer than 128 bytes"
    );
}

/// Bytes that exercise the parser: separators, controls, ordinary bytes.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => Just(RECORD_START),
        4 => Just(USER_END),
        4 => Just(PATH_END),
        1 => Just(0x7f),
        1 => 0x03u8..0x20,
        10 => 0x20u8..0x7f,
        2 => 0x80u8..=0xff,
    ]
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => (
            proptest::collection::vec(0x20u8..0x7f, 0..20),
            proptest::collection::vec(0x20u8..=0xff, 0..40)
        )
            .prop_map(|(u, p)| {
                let p: Vec<u8> = p.into_iter().filter(|&b| b != 0x7f).collect();
                record(&u, &p)
            }),
        2 => proptest::collection::vec(interesting_byte(), 0..30),
        1 => proptest::collection::vec(any::<u8>(), 0..30),
        1 => (1usize..300).prop_map(|n| {
            let mut v = vec![RECORD_START];
            v.extend(std::iter::repeat_n(b'u', n));
            v.push(USER_END);
            v
        }),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

fn check_invariants(events: &[Event]) {
    for event in events {
        match event {
            Event::Record(r) => {
                assert!(r.user.len() <= MAX_USER_LEN);
                assert!(!r.path.is_empty() && r.path.len() <= MAX_PATH_LEN);
                assert!(r.file.len() <= MAX_PATH_LEN);
                assert!(!r.user.iter().any(|&b| is_control(b)));
                assert!(!r.path.iter().any(|&b| is_control(b)));
            }
            Event::Rejected(r) => {
                assert!(r.user.len() <= MAX_USER_LEN);
                assert!(r.path.len() <= MAX_PATH_LEN);
            }
            Event::Skipped(n) => assert!(*n > 0),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn splitting_never_changes_the_events(
        input in stream(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let whole = parse(&input);
        check_invariants(&whole);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut parser = Parser::new();
        let mut events = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([input.len()]) {
            parser.feed(&input[start..cut], &mut events);
            start = cut;
        }
        prop_assert_eq!(&events, &whole);
        // Event by event, as the daemon consumes.
        let mut parser = Parser::new();
        let mut rest = &input[..];
        let mut stepped = Vec::new();
        while !rest.is_empty() {
            let (used, event) = parser.next_event(rest);
            prop_assert!(used > 0 && used <= rest.len());
            if event.is_none() {
                prop_assert_eq!(used, rest.len());
            }
            stepped.extend(event);
            rest = &rest[used..];
        }
        prop_assert_eq!(stepped, whole);
    }

    #[test]
    fn a_valid_record_survives_any_garbage_before_it(
        garbage in proptest::collection::vec(any::<u8>(), 0..400),
        user in proptest::collection::vec(0x20u8..0x7f, 0..=MAX_USER_LEN),
        tail in proptest::collection::vec(0x20u8..0x7f, 0..100),
    ) {
        let mut path = b"/".to_vec();
        path.extend(tail);
        let mut input = garbage;
        input.extend(record(&user, &path));
        let events = parse(&input);
        check_invariants(&events);
        prop_assert_eq!(events.last(), Some(&rec(&user, &path)));
    }
}
