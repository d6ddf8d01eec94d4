//! Property tests: random records and sessions never make the parser or
//! the renderers panic, and crafted records round-trip.

use proptest::prelude::*;
use pureftpd_systemd::ftpwho::report::{render, Format, Session};
use pureftpd_systemd::ftpwho::scoreboard::{Entry, Layout, RawSockaddr, State};

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::DEBIAN),
        Just(Layout::UPSTREAM),
        (0usize..300, 1usize..2048).prop_map(|(u, f)| Layout::with_lengths(u, f)),
        (
            0usize..3000,
            0usize..3000,
            0usize..3000,
            0usize..3000,
            0usize..3000
        )
            .prop_map(
                |(size, account_offset, account_len, filename_offset, filename_len)| Layout {
                    size,
                    account_offset,
                    account_len,
                    filename_offset,
                    filename_len,
                }
            ),
    ]
}

fn sockaddr() -> impl Strategy<Value = RawSockaddr> {
    prop_oneof![
        any::<([u8; 4], u16)>().prop_map(|(ip, port)| RawSockaddr::from_socket_addr(
            std::net::SocketAddr::from((ip, port))
        )),
        any::<([u8; 16], u16, u32)>().prop_map(|(ip, port, scope)| {
            RawSockaddr::from_socket_addr(
                std::net::SocketAddrV6::new(ip.into(), port, 0, scope % 4).into(),
            )
        }),
        prop::collection::vec(any::<u8>(), 128).prop_map(|v| {
            let mut raw = [0u8; 128];
            raw.copy_from_slice(&v);
            RawSockaddr(raw)
        }),
    ]
}

fn name(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=255, 0..max)
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        any::<i32>(),
        any::<i32>(),
        sockaddr(),
        sockaddr(),
        any::<[i64; 5]>(),
        name(200),
        name(1100),
    )
        .prop_map(|(state, pid, peer, local, n, account, filename)| Entry {
            state: State::from_raw(state),
            pid,
            peer,
            local,
            date: n[0],
            xfer_date: n[1],
            restart_at: n[2],
            total_size: n[3],
            current_size: n[4],
            account,
            filename,
        })
}

fn session() -> impl Strategy<Value = Session> {
    (entry(), any::<i64>(), name(1100), name(1100), name(40)).prop_map(
        |(entry, now, host, local_host, local_port)| {
            Session::new(entry, now, host, local_host, local_port)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_random_bytes_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..3000),
        layout in layout(),
    ) {
        let parsed = Entry::parse(&bytes, &layout);
        if layout.is_consistent() && bytes.len() == layout.size {
            let e = parsed.expect("a consistent layout parses bytes of its size");
            prop_assert!(!e.account.contains(&0) && !e.filename.contains(&0));
            prop_assert!(e.account.len() <= layout.size - layout.account_offset);
            prop_assert!(e.filename.len() <= layout.size - layout.filename_offset);
        } else {
            prop_assert!(parsed.is_err());
        }
    }

    #[test]
    fn records_round_trip(e in entry(), layout in layout()) {
        prop_assume!(layout.is_consistent());
        let bytes = e.to_bytes(&layout).unwrap();
        prop_assert_eq!(bytes.len(), layout.size);
        let back = Entry::parse(&bytes, &layout).unwrap();
        let mut want = e.clone();
        want.account.truncate(layout.account_len - 1);
        want.filename.truncate(layout.filename_len - 1);
        prop_assert_eq!(back, want);
    }

    #[test]
    fn layout_specs_never_panic(spec in ".{0,40}") {
        if let Ok(layout) = spec.parse::<Layout>() {
            prop_assert!(layout.is_consistent());
        }
    }

    #[test]
    fn rendering_never_panics(sessions in prop::collection::vec(session(), 0..6)) {
        for format in Format::ALL {
            let mut out = Vec::new();
            render(format, &sessions, &mut out).unwrap();
            prop_assert!(!out.is_empty() || format == Format::Shell);
        }
        // One line per session in shell output: control bytes are escaped.
        let mut out = Vec::new();
        render(Format::Shell, &sessions, &mut out).unwrap();
        prop_assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), sessions.len());
        // JSON is always valid and lossless.
        let mut out = Vec::new();
        render(Format::Json, &sessions, &mut out).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let objects = json.as_array().unwrap();
        prop_assert_eq!(objects.len(), sessions.len());
        for (o, s) in objects.iter().zip(&sessions) {
            let account = o["account"].as_str().unwrap();
            let account = if o["account_escaped"] == true {
                pureftpd_systemd::ftpwho::report::json::unescape(account)
            } else {
                account.as_bytes().to_vec()
            };
            prop_assert_eq!(account, s.entry.account.clone());
        }
    }

    #[test]
    fn sessions_from_random_entries_never_panic(
        entries in prop::collection::vec(entry(), 0..8),
        now in any::<i64>(),
    ) {
        let sessions = pureftpd_systemd::ftpwho::report::sessions_from_entries(
            &entries, now, true, &Default::default());
        prop_assert!(sessions.len() <= entries.len());
        for format in Format::ALL {
            render(format, &sessions, &mut Vec::new()).unwrap();
        }
    }
}
