//! One test per output format: three sessions rendered at a fixed time,
//! compared with what Debian's C `pure-ftpwho -n` printed for the same
//! scoreboard at that time (`tests/golden/*.out`, recorded once; the
//! differential test compares against the live C tool).

use pureftpd_systemd::ftpwho::report::{render, sessions_from_entries, Filter, Format, Report};
use pureftpd_systemd::ftpwho::scoreboard::{Entry, RawSockaddr, State};

const NOW: i64 = 1_795_724_350;
const PID: i32 = 4692;

fn addr(s: &str) -> RawSockaddr {
    RawSockaddr::from_socket_addr(s.parse().unwrap())
}

/// The recorded scoreboard, in the C tool's directory order.
fn entries() -> Vec<Entry> {
    vec![
        Entry {
            state: State::Download,
            pid: PID,
            peer: addr("192.0.2.7:50000"),
            local: addr("192.0.2.1:21"),
            date: NOW - 3725,
            xfer_date: NOW - 10,
            restart_at: 1000,
            total_size: (4 << 20) + 1,
            current_size: (1 << 20) + 1000,
            account: b"caf\xe9<&>".to_vec(),
            filename: b"/pub/a|b\\c & d.iso".to_vec(),
        },
        Entry {
            state: State::Upload,
            pid: PID,
            peer: addr("198.51.100.4:4000"),
            local: addr("192.0.2.1:21"),
            date: NOW - 86400 * 5,
            xfer_date: NOW - 2,
            restart_at: 0,
            total_size: 777,
            current_size: 5000,
            account: b"bob".to_vec(),
            filename: b"/up/\x01x".to_vec(),
        },
        Entry {
            state: State::Idle,
            pid: PID,
            peer: addr("[2001:db8::7]:1"),
            local: addr("[2001:db8::1]:2121"),
            date: NOW - 59,
            xfer_date: 0,
            restart_at: 0,
            total_size: 0,
            current_size: 0,
            account: Vec::new(),
            filename: Vec::new(),
        },
    ]
}

fn check(format: Format, golden: &[u8]) {
    check_with_cgi_header(format, false, golden);
}

fn check_with_cgi_header(format: Format, cgi_header: bool, golden: &[u8]) {
    let sessions = sessions_from_entries(&entries(), NOW, true, &Filter::default());
    assert_eq!(sessions.len(), 3);
    let mut out = Vec::new();
    let mut report = Report::new(format, &mut out).with_cgi_header(cgi_header);
    for session in &sessions {
        report.session(session).unwrap();
    }
    report.finish().unwrap();
    let mut whole = Vec::new();
    render(format, &sessions, &mut whole).unwrap();
    if !cgi_header {
        assert_eq!(whole, out, "render and Report agree");
    }
    assert_eq!(
        out.escape_ascii().to_string(),
        golden.escape_ascii().to_string(),
        "{format:?}"
    );
}

#[test]
fn text() {
    check(Format::Text, include_bytes!("golden/text.out"));
}

#[test]
fn verbose_text() {
    check(Format::Verbose, include_bytes!("golden/verbose.out"));
}

#[test]
fn html_page() {
    check(Format::Html, include_bytes!("golden/page.out"));
}

#[test]
fn embedded_html() {
    check(Format::HtmlEmbedded, include_bytes!("golden/embedded.out"));
}

#[test]
fn cgi() {
    check_with_cgi_header(Format::HtmlEmbedded, true, include_bytes!("golden/cgi.out"));
    // The header is for HTML only.
    check_with_cgi_header(Format::Shell, true, include_bytes!("golden/shell.out"));
}

#[test]
fn xml() {
    check(Format::Xml, include_bytes!("golden/xml.out"));
}

#[test]
fn plist() {
    check(Format::Plist, include_bytes!("golden/plist.out"));
}

#[test]
fn shell() {
    check(Format::Shell, include_bytes!("golden/shell.out"));
}

#[test]
fn json() {
    let sessions = sessions_from_entries(&entries(), NOW, true, &Filter::default());
    let mut out = Vec::new();
    render(Format::Json, &sessions, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let expected = concat!(
        "[\n",
        r#"  {"pid":4692,"account":"caf\\xe9<&>","account_escaped":true,"state":"download","#,
        r#""state_code":2,"start":1795720625,"time":3725,"transfer_start":1795724340,"#,
        r#""transfer_time":10,"file":"/pub/a|b\\c & d.iso","host":"192.0.2.7","#,
        r#""local_host":"192.0.2.1","local_port":21,"resume":1000,"current_size":1049576,"#,
        r#""total_size":4194305,"percentage":25,"bandwidth":104857},"#,
        "\n",
        r#"  {"pid":4692,"account":"bob","state":"upload","state_code":3,"start":1795292350,"#,
        r#""time":432000,"transfer_start":1795724348,"transfer_time":2,"file":"/up/\u0001x","#,
        r#""host":"198.51.100.4","local_host":"192.0.2.1","local_port":21,"resume":0,"#,
        r#""current_size":5000,"total_size":0,"percentage":null,"bandwidth":2500},"#,
        "\n",
        r#"  {"pid":4692,"account":"","state":"idle","state_code":1,"start":1795724291,"#,
        r#""time":59,"transfer_start":0,"transfer_time":0,"file":"","host":"2001:db8::7","#,
        r#""local_host":"2001:db8::1","local_port":2121,"resume":0,"current_size":0,"#,
        r#""total_size":0,"percentage":null,"bandwidth":0}"#,
        "\n]\n"
    );
    assert_eq!(text, expected);
}
