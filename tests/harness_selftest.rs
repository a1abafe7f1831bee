//! Checks that the throwaway Dovecot harness (tests/common/dovecot.rs) really works.
mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::dovecot::*;

/// The number in the first `* N <what>` line.
fn untagged_num(lines: &[String], what: &str) -> usize {
    lines
        .iter()
        .find_map(|l| {
            let mut it = l.split(' ');
            (it.next() == Some("*")).then_some(())?;
            let n = it.next()?.parse().ok()?;
            (it.next() == Some(what)).then_some(n)
        })
        .unwrap_or_else(|| panic!("no `* N {what}` in {lines:#?}"))
}

/// The numbers of the `* SEARCH` line.
fn search_nums(lines: &[String]) -> Vec<usize> {
    let l = lines.iter().find(|l| l.starts_with("* SEARCH")).unwrap_or_else(|| panic!("no SEARCH in {lines:#?}"));
    l["* SEARCH".len()..].split_whitespace().map(|n| n.parse().unwrap()).collect()
}

/// `(MESSAGES n)` etc. of a STATUS reply.
fn status_item(lines: &[String], item: &str) -> usize {
    let l = lines.iter().find(|l| l.starts_with("* STATUS")).unwrap_or_else(|| panic!("no STATUS in {lines:#?}"));
    let at = l.find(&format!("{item} ")).unwrap_or_else(|| panic!("no {item} in {l}")) + item.len() + 1;
    l[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

/// Plain TCP: reads the greeting, sends each command, collects lines up to its tagged reply.
fn plain_session(host: &str, port: u16, commands: &[&str]) -> Vec<String> {
    let s = TcpStream::connect((host, port)).unwrap_or_else(|e| panic!("connect {host}:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut out = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("read greeting");
        out.push(line.trim_end().to_string());
        if !line.starts_with("* OK Waiting for") {
            break;
        }
    }
    for (i, cmd) in commands.iter().enumerate() {
        let tag = format!("p{i}");
        w.write_all(format!("{tag} {cmd}\r\n").as_bytes()).unwrap();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return out;
            }
            out.push(line.trim_end().to_string());
            if line.starts_with(&format!("{tag} ")) {
                break;
            }
        }
    }
    out
}

#[test]
fn standard_seed_over_implicit_tls() {
    let dc = Dovecot::start(&Seed::Standard);
    println!("Standard: seeding {:?}, seeding+start {:?}", dc.seed_time, dc.start_time);
    let mut imap = dc.imap();

    let caps = imap.ok("CAPABILITY").join(" ");
    for cap in ["SORT", "THREAD=REFERENCES", "UIDPLUS", "MOVE", "SPECIAL-USE", "ESEARCH", "IDLE"] {
        assert!(caps.split(' ').any(|c| c == cap), "missing {cap}: {caps}");
    }

    let sel = imap.ok("SELECT INBOX");
    assert_eq!(untagged_num(&sel, "EXISTS"), INBOX_COUNT);
    assert!(sel.last().unwrap().contains("[READ-WRITE]"), "{sel:?}");

    // UIDs follow seed order, INTERNALDATE is the Date header, sizes are exact.
    let inbox = standard_inbox();
    let fetch = imap.ok("FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)");
    for (i, m) in inbox.iter().enumerate() {
        let seq = i + 1;
        let line = fetch.iter().find(|l| l.starts_with(&format!("* {seq} FETCH "))).unwrap();
        assert!(line.contains(&format!("UID {seq} ")), "{line}");
        assert!(line.contains(&format!("INTERNALDATE \"{}\"", imap_internaldate(m.date))), "{} {line}", m.key);
        assert!(line.contains(&format!("RFC822.SIZE {}", m.raw.len())), "{} {line}", m.key);
        assert_eq!(line.contains("\\Seen"), m.seen(), "{} {line}", m.key);
    }

    assert_eq!(search_nums(&imap.ok("SEARCH UNSEEN")).len(), INBOX_UNSEEN_COUNT);
    assert_eq!(search_nums(&imap.ok("SEARCH SEEN")).len(), INBOX_SEEN_COUNT);
    assert_eq!(search_nums(&imap.ok("SEARCH FLAGGED")), vec![FLAGGED_SEQ]);
    assert_eq!(search_nums(&imap.ok("SEARCH ANSWERED")), vec![THREAD_SEQS[0]]);
    assert_eq!(search_nums(&imap.ok(&format!("SEARCH FROM {BOB}"))).len(), BOB_INBOX_COUNT);
    assert_eq!(search_nums(&imap.ok(&format!("SEARCH HEADER Message-ID {}", imap_quote(THREAD_ROOT_ID)))), vec![THREAD_SEQS[0]]);
    assert_eq!(search_nums(&imap.ok(&format!("SEARCH HEADER List-Id {}", imap_quote("rust-announce")))).len(), 1);
    assert_eq!(search_nums(&imap.ok(&format!("SEARCH SUBJECT {}", imap_quote(FLAGGED_SUBJECT)))), vec![FLAGGED_SEQ]);
    // Dovecot decodes RFC 2047 for SEARCH, so the UTF-8 subject is findable.
    assert_eq!(search_nums(&imap.ok("SEARCH CHARSET UTF-8 SUBJECT \"M\u{fc}nchen\"")).len(), 1);

    let thread = imap.ok("THREAD REFERENCES UTF-8 ALL").join(" ");
    assert!(thread.contains(THREAD_REFERENCES_SHAPE), "{thread}");

    // The CRLF-smuggling subject is one encoded word on the wire.
    let crlf_seq = inbox.iter().position(|m| m.key == "hostile-crlf").unwrap() + 1;
    let hdr = imap.ok(&format!("FETCH {crlf_seq} BODY.PEEK[HEADER.FIELDS (SUBJECT)]")).join("\n");
    assert!(hdr.contains("Subject: =?UTF-8?B?"), "{hdr}");

    let st = imap.ok(&format!("STATUS {ARCHIVE} (MESSAGES UNSEEN)"));
    assert_eq!(status_item(&st, "MESSAGES"), ARCHIVE_COUNT);
    assert_eq!(status_item(&st, "UNSEEN"), ARCHIVE_UNSEEN_COUNT);
    assert_eq!(status_item(&imap.ok(&format!("STATUS {} (MESSAGES)", imap_quote(ARCHIVE_2024))), "MESSAGES"), ARCHIVE_2024_COUNT);
    assert_eq!(status_item(&imap.ok(&format!("STATUS {} (MESSAGES)", imap_quote(ENTWUERFE_MUTF7))), "MESSAGES"), ENTWUERFE_COUNT);
    assert_eq!(status_item(&imap.ok(&format!("STATUS {SENT} (MESSAGES)")), "MESSAGES"), SENT_COUNT);

    let list = imap.ok("LIST \"\" \"*\"");
    let names: HashSet<String> =
        list.iter().filter(|l| l.starts_with("* LIST")).map(|l| l.rsplit(' ').next().unwrap().trim_matches('"').to_string()).collect();
    for want in ["INBOX", ARCHIVE, ARCHIVE_2024, ENTWUERFE_MUTF7, "Drafts", "Sent", "Trash", "Junk"] {
        assert!(names.contains(want), "{want} not listed: {list:#?}");
    }
    let special = imap.ok("LIST (SPECIAL-USE) \"\" \"*\"").join("\n");
    for (name, flag) in SPECIAL_USE {
        assert!(special.lines().any(|l| l.contains(flag) && l.ends_with(name)), "{name} {flag}: {special}");
    }

    imap.ok(&format!("EXAMINE {ARCHIVE}"));
    assert_eq!(search_nums(&imap.ok(&format!("SEARCH FROM {ARCHIVE_KNOWN_SENDER}"))).len(), ARCHIVE_KNOWN_SENDER_COUNT);
    let last = imap.ok(&format!("FETCH {ARCHIVE_COUNT} (INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")).join("\n");
    assert!(last.contains(&archive_subject(ARCHIVE_COUNT)), "{last}");
    assert!(last.contains(&imap_internaldate(archive_date(ARCHIVE_COUNT))), "{last}");
}

#[test]
fn starttls_port_advertises_starttls_and_logindisabled() {
    let dc = Dovecot::start(&Seed::Empty);
    let Some(remote) = dc.remote_host.clone() else {
        eprintln!("127.0.0.2 is not routable here; skipping the LOGINDISABLED check");
        return;
    };
    let s = plain_session(&remote, dc.imap_port, &["CAPABILITY", &format!("LOGIN {} {}", imap_quote(&dc.user), imap_quote(&dc.password))]);
    let caps = s.iter().find(|l| l.starts_with("* CAPABILITY")).unwrap_or_else(|| panic!("{s:#?}"));
    assert!(caps.contains(" STARTTLS"), "{caps}");
    assert!(caps.contains(" LOGINDISABLED"), "{caps}");
    let login = s.last().unwrap();
    assert!(login.starts_with("p1 NO") || login.starts_with("p1 BAD"), "plaintext LOGIN must fail: {s:#?}");

    // Connections from 127.0.0.1 to 127.0.0.1 count as "secured" for Dovecot: STARTTLS is still offered.
    let local = plain_session(&dc.host, dc.imap_port, &["CAPABILITY"]);
    assert!(local.iter().any(|l| l.starts_with("* CAPABILITY") && l.contains(" STARTTLS")), "{local:#?}");

    // After STARTTLS the login works (openssl does the STARTTLS exchange).
    let mut c = dc.connect(ClientTls::Starttls, &remote).unwrap();
    c.login(&dc.user, &dc.password);
    assert_eq!(untagged_num(&c.ok("SELECT INBOX"), "EXISTS"), 0);
}

#[test]
fn certificate_checks() {
    let dc = Dovecot::start(&Seed::Empty);
    // The pin is the SHA-256 of the leaf's DER.
    let out = Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256", "-in"]).arg(&dc.ca.cert_pem).output().unwrap();
    let fp = String::from_utf8_lossy(&out.stdout);
    let fp = fp.trim().rsplit('=').next().unwrap().replace(':', "").to_ascii_lowercase();
    assert_eq!(fp, dc.ca.leaf_sha256_hex);

    // Valid for localhost and both loopback addresses.
    for name in ["localhost", "127.0.0.1", "127.0.0.2"] {
        let out = Command::new("openssl")
            .args(["verify", "-purpose", "sslserver"])
            .args(if name.starts_with("127.") { ["-verify_ip", name] } else { ["-verify_hostname", name] })
            .arg("-CAfile")
            .arg(&dc.ca.ca_pem)
            .arg(&dc.ca.cert_pem)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }

    // An unrelated CA is rejected, and so is a wrong host name.
    let other = TestCa::create_other(&dc.dir.join("other-ca"));
    assert_ne!(other.leaf_sha256_hex, dc.ca.leaf_sha256_hex);
    let err = ImapClient::connect(&dc.host, dc.imaps_port, &other.ca_pem, ClientTls::Implicit, Some("localhost"), &dc.dir.join("clients"))
        .err()
        .expect("a foreign CA must not verify");
    assert!(err.contains("verify") || err.contains("certificate"), "{err}");
    let err =
        ImapClient::connect(&dc.host, dc.imaps_port, &dc.ca.ca_pem, ClientTls::Implicit, Some("mail.example.com"), &dc.dir.join("clients"))
            .err()
            .expect("a wrong host name must not verify");
    assert!(err.contains("verify") || err.contains("hostname"), "{err}");

    // TLS 1.1 is refused.
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{}", dc.imaps_port), "-tls1_1"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("* OK"), "TLS 1.1 handshake succeeded");
}

#[test]
fn wrong_password_is_refused_without_penalty() {
    let dc = Dovecot::start(&Seed::Empty);
    let mut times = Vec::new();
    for _ in 0..3 {
        let mut c = dc.connect(ClientTls::Implicit, &dc.host).unwrap();
        let t = Instant::now();
        let r = c.command(&format!("LOGIN {} \"wrong\"", imap_quote(&dc.user))).unwrap();
        times.push(t.elapsed());
        assert!(r.last().unwrap().contains("NO [AUTHENTICATIONFAILED]"), "{r:?}");
    }
    println!("failed LOGIN took {times:?}");
    assert!(times.iter().all(|t| *t < Duration::from_secs(2)), "auth penalty is active: {times:?}");
    dc.imap().ok("SELECT INBOX");
}

#[test]
fn parallel_instances_are_independent_and_cleaned_up() {
    let handles: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                let dc = Dovecot::start(&Seed::Empty);
                assert_eq!(untagged_num(&dc.imap().ok("SELECT INBOX"), "EXISTS"), 0);
                (dc.dir.clone(), dc.imaps_port, dc.imap_port, dc.password.clone(), dc)
            })
        })
        .collect();
    let started: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ports: HashSet<u16> = started.iter().flat_map(|s| [s.1, s.2]).collect();
    assert_eq!(ports.len(), 6, "ports must be distinct");
    let passwords: HashSet<&String> = started.iter().map(|s| &s.3).collect();
    assert_eq!(passwords.len(), 3);
    for (dir, imaps, _, _, dc) in started {
        drop(dc);
        assert!(!dir.exists(), "{} not removed", dir.display());
        assert!(TcpStream::connect(("127.0.0.1", imaps)).is_err(), "port {imaps} still open after drop");
    }
}

#[test]
fn delivered_message_appears() {
    let dc = Dovecot::start(&Seed::Empty);
    let mut imap = dc.imap();
    assert_eq!(untagged_num(&imap.ok("SELECT INBOX"), "EXISTS"), 0);
    let raw = crlf("Date: Tue, 4 Mar 2025 10:00:00 +0000\nFrom: x@example.test\nSubject: late\nMessage-ID: <late@example.test>\n\nhi\n");
    dc.deliver("INBOX", &raw, "F");
    dc.deliver("Projects/Alpha", &raw, "");
    let noop = imap.ok("NOOP");
    assert_eq!(untagged_num(&noop, "EXISTS"), 1);
    let f = imap.ok("FETCH 1 (FLAGS INTERNALDATE)").join(" ");
    assert!(f.contains("\\Flagged") && f.contains("04-Mar-2025 10:00:00 +0000"), "{f}");
    assert_eq!(status_item(&imap.ok("STATUS \"Projects/Alpha\" (MESSAGES)"), "MESSAGES"), 1);
}

#[test]
fn custom_seed_and_extra_config() {
    let mut mb = Mailbox::new("日本語/Ünter");
    mb.push(crlf("Date: Wed, 1 Jan 2020 00:00:00 +0100\nSubject: one\n\n1\n"), "S");
    mb.push(crlf("Date: Tue, 31 Dec 2019 23:00:00 +0000\nSubject: two\n\n2\n"), "");
    let dc = Dovecot::start_with(&Seed::Custom(vec![mb]), "imap_capability = IMAP4rev1 LITERAL+\n");
    let mut imap = dc.imap();
    let caps = imap.ok("CAPABILITY").join(" ");
    assert!(!caps.contains("MOVE") && !caps.contains("UIDPLUS"), "{caps}");
    let name = mutf7("日本語/Ünter");
    let sel = imap.ok(&format!("SELECT {}", imap_quote(&name)));
    assert_eq!(untagged_num(&sel, "EXISTS"), 2);
    // Same instant, seed order kept as UID order.
    let f = imap.ok("FETCH 1:2 (UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])").join("\n");
    assert!(f.contains("31-Dec-2019 23:00:00 +0000"), "{f}");
    assert!(f.find("one").unwrap() < f.find("two").unwrap(), "{f}");
}

#[test]
fn start_failure_panics_with_log_tail() {
    // Force every attempt onto a port that is taken: the harness retries, then panics with the log.
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let extra = format!("service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n}}\n");
    let err = std::panic::catch_unwind(|| Dovecot::start_with(&Seed::Empty, &extra)).err().expect("start must fail");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("did not start") && msg.contains("Address already in use"), "{msg}");
    let conf = msg.split(" config ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_else(|| panic!("{msg}"));
    let dir = Path::new(conf).parent().and_then(Path::parent).unwrap();
    assert!(dir.file_name().unwrap().to_string_lossy().starts_with("mmdc-"), "{msg}");
    assert!(!dir.exists(), "failed start left {} behind", dir.display());
}

#[test]
fn mailmoat_config_is_written() {
    let dc = Dovecot::start(&Seed::Empty);
    let path = dc.dir.join("config.toml");
    dc.write_mailmoat_config(&path, "readonly");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("posture = \"readonly\"\n"), "{text}");
    assert!(text.contains(&format!("port = {}\n", dc.imaps_port)), "{text}");
    assert!(text.contains("host = \"localhost\"") && text.contains("tls = \"implicit\""), "{text}");
    assert!(text.contains(&format!("ca_file = \"{}\"", dc.ca.ca_pem.display())), "{text}");
    assert!(text.contains(&format!("password = {{ file = \"{}\" }}", dc.password_file.display())), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&dc.password_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&dc.password_file).unwrap(), format!("{}\n", dc.password));
    println!("{text}\n{}", dc.summary());
}

#[test]
fn seed_data_is_consistent() {
    let inbox = standard_inbox();
    assert_eq!(inbox.len(), INBOX_COUNT);
    assert_eq!(inbox.iter().filter(|m| !m.seen()).count(), INBOX_UNSEEN_COUNT);
    assert_eq!(inbox.iter().filter(|m| m.flags.contains('F')).map(|m| m.subject.as_str()).collect::<Vec<_>>(), [FLAGGED_SUBJECT]);
    assert_eq!(inbox[FLAGGED_SEQ - 1].subject, FLAGGED_SUBJECT);
    assert_eq!(inbox.iter().filter(|m| m.flags.contains('R')).map(|m| m.subject.as_str()).collect::<Vec<_>>(), [ANSWERED_SUBJECT]);
    assert_eq!(inbox.iter().filter(|m| m.from_addr == BOB).count(), BOB_INBOX_COUNT);
    for (i, seq) in THREAD_SEQS.iter().enumerate() {
        let m = &inbox[seq - 1];
        let id = if i < 5 { THREAD_IDS[i] } else { THREAD_LOOSE_REPLY_ID };
        assert_eq!(m.message_id, id);
    }
    let all = standard_messages();
    let counts = |f: &str| all.iter().filter(|m| m.folder == f).count();
    assert_eq!(counts(ENTWUERFE), ENTWUERFE_COUNT);
    assert_eq!(counts(ARCHIVE_2024), ARCHIVE_2024_COUNT);
    assert_eq!(counts(SENT), SENT_COUNT);
    assert_eq!(all.iter().map(|m| &m.message_id).collect::<HashSet<_>>().len(), all.len(), "Message-IDs must be unique");
    for m in &all {
        for (i, &b) in m.raw.iter().enumerate() {
            assert!(b != b'\n' || (i > 0 && m.raw[i - 1] == b'\r'), "{}: bare LF", m.key);
            assert!(b != b'\r' || m.raw.get(i + 1) == Some(&b'\n'), "{}: bare CR", m.key);
        }
        assert_eq!(header_value(&m.raw, "Date").and_then(|d| parse_rfc5322_date(&d)), Some(m.date), "{}", m.key);
        assert_eq!(header_value(&m.raw, "Message-ID").as_deref(), Some(m.message_id.as_str()));
    }
    // Dates are increasing within INBOX (so UID order is date order).
    assert!(inbox.windows(2).all(|w| w[0].date < w[1].date));
    assert!((1..ARCHIVE_COUNT).all(|i| archive_date(i) < archive_date(i + 1)));
    assert_eq!((1..=ARCHIVE_COUNT).filter(|&i| archive_sender(i) == ARCHIVE_KNOWN_SENDER).count(), ARCHIVE_KNOWN_SENDER_COUNT);
    let a = archive_message(7);
    assert_eq!(header_value(&a, "Subject").unwrap(), "Report 0007");
    assert_eq!(header_value(&standard_message("long-subject").raw, "Subject").unwrap(), LONG_SUBJECT);
}

#[test]
fn encoders() {
    assert_eq!(mutf7("Entwürfe"), ENTWUERFE_MUTF7);
    assert_eq!(mutf7("INBOX"), "INBOX");
    assert_eq!(mutf7("A&B"), "A&-B");
    assert_eq!(mutf7("日本語"), "&ZeVnLIqe-");
    assert_eq!(mutf7("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
    assert_eq!(mutf7("😀"), "&2D3eAA-");
    assert_eq!(base64(b"hello"), "aGVsbG8=");
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(enc_q("UTF-8", "a b=ü".as_bytes()), "=?UTF-8?Q?a_b=3D=C3=BC?=");
    let q = qp("x".repeat(100).as_bytes());
    assert!(q.lines().all(|l| l.len() <= 76), "{q}");
    assert_eq!(q.replace("=\n", ""), "x".repeat(100));
    assert_eq!(epoch(1970, 1, 1, 0, 0, 0), 0);
    assert_eq!(epoch(2025, 1, 6, 8, 0, 0), 1_736_150_400);
    assert_eq!(rfc5322_date(1_736_150_400, 60), "Mon, 6 Jan 2025 09:00:00 +0100");
    assert_eq!(rfc5322_date(0, -300), "Wed, 31 Dec 1969 19:00:00 -0500");
    assert_eq!(parse_rfc5322_date("Mon, 6 Jan 2025 09:00:00 +0100 (CET)"), Some(1_736_150_400));
    assert_eq!(parse_rfc5322_date("6 Jan 25 03:00 EST"), Some(1_736_150_400));
    assert_eq!(imap_internaldate(1_736_150_400), "06-Jan-2025 08:00:00 +0000");
    assert!(Path::new("/").exists());
}

fn large_seed(n: usize) {
    let t = Instant::now();
    let dc = Dovecot::start(&Seed::Large(n));
    let started = t.elapsed();
    let mut imap = dc.imap();
    let t2 = Instant::now();
    let sel = imap.ok(&format!("EXAMINE {LARGE}"));
    let first_select = t2.elapsed();
    assert_eq!(untagged_num(&sel, "EXISTS"), n);
    let last = imap.ok(&format!("FETCH {n} (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")).join("\n");
    assert!(last.contains(&large_subject(n)), "{last}");
    println!(
        "Large({n}): seeding {:?}, seeding+start {:?} (measured {started:?}), first EXAMINE (index build) {first_select:?}",
        dc.seed_time, dc.start_time
    );
}

#[test]
fn large_seed_20k() {
    large_seed(20_000);
}

#[test]
#[ignore = "benchmark: 100,000 messages (about 0.6 GB of files); run with --ignored"]
fn large_seed_100k() {
    large_seed(100_000);
}
