//! Fuzzes the scoreboard record parser and every renderer: any bytes,
//! under any layout, parse or are refused without panicking; what parses
//! renders in every format; crafted records round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pureftpd_systemd::ftpwho::report::{render, Format, Session};
use pureftpd_systemd::ftpwho::scoreboard::{Entry, Layout};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let layout = match selector % 4 {
        0 => Layout::DEBIAN,
        1 => Layout::UPSTREAM,
        2 => Layout::with_lengths(usize::from(selector) * 3, 64 + usize::from(selector)),
        _ => Layout {
            size: rest.len(),
            account_offset: 304 + usize::from(selector),
            account_len: 1 + usize::from(selector) % 40,
            filename_offset: 350 + usize::from(selector),
            filename_len: 1 + usize::from(selector) % 90,
        },
    };
    // Raw bytes as they come, and fitted to the layout's size so most
    // inputs get past the size check.
    let _ = Entry::parse(rest, &layout);
    let mut fitted = rest.to_vec();
    fitted.resize(layout.size, 0);
    let Ok(entry) = Entry::parse(&fitted, &layout) else {
        return;
    };
    assert!(!entry.account.contains(&0) && !entry.filename.contains(&0));
    let bytes = entry.to_bytes(&layout).expect("consistent layout");
    let again = Entry::parse(&bytes, &layout).expect("own bytes parse");
    assert_eq!(again.state, entry.state);
    assert_eq!(again.pid, entry.pid);
    let session = Session::new(
        entry.clone(),
        i64::from_ne_bytes(fitted[..8].try_into().unwrap()),
        entry.filename.clone(),
        entry.account.clone(),
        b"21".to_vec(),
    );
    let sessions = vec![session.clone(), session];
    for format in Format::ALL {
        let mut out = Vec::new();
        render(format, &sessions, &mut out).expect("writing to memory");
        if format == Format::Shell {
            assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 2);
        }
    }
    // Numeric resolution of whatever the addresses hold.
    let resolved = pureftpd_systemd::ftpwho::report::sessions_from_entries(
        &[entry],
        1_700_000_000,
        true,
        &Default::default(),
    );
    for format in Format::ALL {
        render(format, &resolved, &mut Vec::new()).expect("writing to memory");
    }
});
