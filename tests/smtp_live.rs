//! The SMTP client against a real Postfix that delivers into a real Dovecot: messages arrive
//! byte for byte, Bcc stays hidden, refusals are reported per recipient, and every security
//! rule (TLS, STARTTLS, pin, credentials, sizes) holds against a real server.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::dovecot::{Dovecot, Seed, TestCa, USER};
use common::smtpd::{strip_trace_headers, SmtpMode, Smtpd, MESSAGE_SIZE_LIMIT, UNKNOWN_RECIPIENT, UTF8_RECIPIENT};
use mailmoat::compose::{self, AttachmentData, Draft, Mailbox};
use mailmoat::config::{Account, Config, Limits};
use mailmoat::content;
use mailmoat::imap::CancelToken;
use mailmoat::smtp::{SmtpClient, SmtpError};

const BOB: &str = "bob@example.test";
const CAROL: &str = "carol@example.test";
const DAVE: &str = "dave@example.test";
/// A password source that cannot be resolved: reaching it would be a `secret_error`.
const UNRESOLVABLE: &str = "{ env = \"MAILMOAT_TEST_UNSET_SMTP_PASSWORD\" }";

fn account(config: &str) -> Account {
    Config::parse(config, Path::new("smtp_live.toml")).unwrap_or_else(|e| panic!("{e}\n{config}")).accounts["test"].clone()
}

fn client(config: &str) -> SmtpClient {
    client_with(config, Limits::default())
}

fn client_with(config: &str, limits: Limits) -> SmtpClient {
    SmtpClient::new(Arc::new(account(config)), Arc::new(limits)).expect("the account has an smtp table")
}

/// The config with the smtp password source replaced.
fn with_password(smtpd: &Smtpd, config: &str, source: &str) -> String {
    let current = format!("{{ file = \"{}\" }}\nca_file", smtpd.password_file.display());
    assert!(config.contains(&current), "{config}");
    config.replace(&current, &format!("{source}\nca_file"))
}

fn draft(to: &[&str], cc: &[&str], bcc: &[&str], seed: &str) -> Draft {
    let list = |v: &[&str]| v.iter().map(|s| Mailbox::parse(s).unwrap()).collect::<Vec<_>>();
    Draft {
        from: Mailbox::parse(&format!("Alice Example <{USER}>")).unwrap(),
        to: list(to),
        cc: list(cc),
        bcc: list(bcc),
        subject: format!("Live test {seed}"),
        body_text: "Hello,\n\nthis went through a real SMTP server.\n-- \nAlice\n".into(),
        body_html: None,
        in_reply_to: None,
        references: vec![],
        attachments: vec![],
        forward_rfc822: None,
        date_epoch: 1_795_310_072,
        message_id: compose::message_id("example.test", seed.as_bytes()),
    }
}

fn all(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The header block of a message (up to the blank line), with CRLF line ends (Maildir files
/// have LF).
fn head(raw: &[u8]) -> String {
    let raw = common::dovecot::crlf(raw);
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(raw.len(), |p| p + 2);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

fn has_field(raw: &[u8], name: &str) -> bool {
    head(raw).split("\r\n").any(|l| l.len() > name.len() && l[..name.len()].eq_ignore_ascii_case(name) && l.as_bytes()[name.len()] == b':')
}

#[test]
fn implicit_tls_delivers_intact_and_bcc_stays_hidden() {
    let dc = Dovecot::start(&Seed::Empty);
    let smtpd = Smtpd::start(&dc);
    let c = client(&smtpd.mailmoat_config(&dc, "full", SmtpMode::Implicit));
    let d = draft(&[&format!("Bob <{BOB}>")], &[CAROL], &[&format!("Dave Secret <{DAVE}>")], "implicit");
    let wire = compose::build(&d, false).unwrap();
    let report = c.send(&CancelToken::new(), USER, &all(&[BOB, CAROL, DAVE]), &wire).unwrap();
    assert_eq!(report.accepted, all(&[BOB, CAROL, DAVE]));
    assert!(report.rejected.is_empty());
    assert_eq!(report.message_size, wire.len());
    assert!(report.queue_reply.starts_with("250 2.0.0 Ok: queued as "), "{}", report.queue_reply);

    for rcpt in [BOB, CAROL, DAVE] {
        let stored = smtpd.wait_for_message(&Smtpd::folder_for(rcpt), &d.message_id);
        assert!(head(&stored).starts_with(&format!("Return-Path: <{USER}>\r\n")), "{}", head(&stored));
        // Plain ASCII mail: no SMTPUTF8 was declared (ESMTPSA = ESMTP + TLS + AUTH).
        assert!(head(&stored).contains("with ESMTPSA id"), "{}", head(&stored));
        assert_eq!(String::from_utf8_lossy(&strip_trace_headers(&stored)), String::from_utf8_lossy(&wire), "copy for {rcpt}");
    }
    let copies = smtpd.copies(&d.message_id);
    assert_eq!(copies.len(), 3, "{:?}", copies.iter().map(|c| &c.0).collect::<Vec<_>>());
    for (folder, raw) in &copies {
        assert!(!has_field(raw, "Bcc"), "Bcc header in the copy in {folder}");
        assert!(!String::from_utf8_lossy(raw).contains("Dave Secret"), "the Bcc name leaked into {folder}");
    }
}

#[test]
fn starttls_non_ascii_and_attachments_arrive_decodable() {
    let dc = Dovecot::start(&Seed::Empty);
    let smtpd = Smtpd::start(&dc);
    let c = client(&smtpd.mailmoat_config(&dc, "full", SmtpMode::Starttls));
    let mut d = draft(&["Jürgen Müller <bob@example.test>"], &[], &[], "starttls-utf8");
    d.from = Mailbox::parse(&format!("Zoë Saldaña <{USER}>")).unwrap();
    d.subject = "Grüße aus München – Café ☕ 東京".into();
    d.body_text = "Die Straße vor dem Büro.\n.\n..\n".into();
    let pdf: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    d.attachments = vec![
        AttachmentData { filename: "Prüfbericht Übersicht.pdf".into(), content_type: "application/pdf".into(), data: pdf.clone() },
        AttachmentData { filename: "東京.txt".into(), content_type: "text/plain".into(), data: "こんにちは\n".as_bytes().to_vec() },
    ];
    let wire = compose::build(&d, false).unwrap();
    let report = c.send(&CancelToken::new(), USER, &all(&[BOB]), &wire).unwrap();
    assert_eq!(report.accepted, all(&[BOB]));
    let stored = smtpd.wait_for_message("bob", &d.message_id);
    let got = strip_trace_headers(&stored);
    assert_eq!(got, wire);

    let r = content::render(&got, false, &content::Limits::default());
    assert_eq!(r.headers.subject.as_deref(), Some(d.subject.as_str()));
    assert_eq!(r.headers.from[0].name.as_deref(), Some("Zoë Saldaña"));
    assert_eq!(r.headers.to[0].name.as_deref(), Some("Jürgen Müller"));
    assert_eq!(r.text, d.body_text);
    let names: Vec<_> = r.attachments.iter().map(|a| (a.filename.clone().unwrap_or_default(), a.size)).collect();
    assert_eq!(names, vec![("Prüfbericht Übersicht.pdf".to_string(), pdf.len()), ("東京.txt".to_string(), 16)]);
    let parsed = mailparse::parse_mail(&got).unwrap();
    assert_eq!(parsed.subparts[1].get_body_raw().unwrap(), pdf);
}

#[test]
fn a_non_ascii_address_goes_with_smtputf8() {
    let dc = Dovecot::start(&Seed::Empty);
    let smtpd = Smtpd::start(&dc);
    let c = client(&smtpd.mailmoat_config(&dc, "full", SmtpMode::Implicit));
    let d = draft(&[&format!("Ünïcödé <{UTF8_RECIPIENT}>")], &[], &[], "smtputf8");
    let wire = compose::build(&d, false).unwrap();
    assert!(!wire.is_ascii(), "the To header carries the address as UTF-8");
    let report = c.send(&CancelToken::new(), USER, &all(&[UTF8_RECIPIENT]), &wire).unwrap();
    assert_eq!(report.accepted, all(&[UTF8_RECIPIENT]));
    let stored = smtpd.wait_for_message("INBOX", &d.message_id);
    assert_eq!(strip_trace_headers(&stored), wire);
    let h = content::parse_headers(&stored, &content::Limits::default(), &mut Vec::new());
    assert_eq!(h.to[0].email, UTF8_RECIPIENT);
    // Postfix records the protocol in its Received line: UTF8SMTPSA = SMTPUTF8 + TLS + AUTH.
    assert!(head(&stored).contains("with UTF8SMTPSA"), "{}", head(&stored));
}

#[test]
fn dot_stuffing_and_line_ends_survive_a_real_server() {
    let dc = Dovecot::start(&Seed::Empty);
    let smtpd = Smtpd::start(&dc);
    let c = client(&smtpd.mailmoat_config(&dc, "full", SmtpMode::Starttls));
    // Raw, not composed: bare LF line ends, a lone ".", lines starting with "." and "..", and
    // no final line break.
    let id = "<dots-1@example.test>";
    let raw = format!(
        "From: {USER}\nTo: {BOB}\nSubject: dots\nMessage-ID: {id}\nDate: Sun, 22 Nov 2026 01:14:32 +0000\n\nfirst\n.\n..\n.hidden\n..two\n. \nlast line"
    );
    c.send(&CancelToken::new(), USER, &all(&[BOB]), raw.as_bytes()).unwrap();
    let stored = smtpd.wait_for_message("bob", id);
    let want = raw.replace('\n', "\r\n") + "\r\n";
    assert_eq!(String::from_utf8(strip_trace_headers(&stored)).unwrap(), want);
}

#[test]
fn refused_recipients_are_reported_and_the_rest_get_the_mail() {
    let dc = Dovecot::start(&Seed::Empty);
    let smtpd = Smtpd::start(&dc);
    let c = client(&smtpd.mailmoat_config(&dc, "full", SmtpMode::Implicit));
    let d = draft(&[BOB, UNKNOWN_RECIPIENT], &[CAROL], &[], "partial");
    let wire = compose::build(&d, false).unwrap();
    let report = c.send(&CancelToken::new(), USER, &all(&[BOB, UNKNOWN_RECIPIENT, CAROL, "Bob@Example.test"]), &wire).unwrap();
    assert_eq!(report.accepted, all(&[BOB, CAROL]));
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].0, UNKNOWN_RECIPIENT);
    assert!(report.rejected[0].1.starts_with("550 5.1.1 "), "{}", report.rejected[0].1);
    assert!(report.rejected[0].1.contains("User unknown"), "{}", report.rejected[0].1);
    smtpd.wait_for_message("bob", &d.message_id);
    smtpd.wait_for_message("carol", &d.message_id);

    // Nobody accepted: nothing is sent.
    let d2 = draft(&[UNKNOWN_RECIPIENT], &[], &[], "none");
    let wire2 = compose::build(&d2, false).unwrap();
    let err = c.send(&CancelToken::new(), USER, &all(&[UNKNOWN_RECIPIENT, "ghost@example.test"]), &wire2).unwrap_err();
    let SmtpError::AllRecipientsRejected(list) = &err else { panic!("{err}") };
    assert_eq!(list.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(), [UNKNOWN_RECIPIENT, "ghost@example.test"]);
    assert_eq!(err.code(), "smtp_rejected");
    // Outside the test domain: refused as relaying.
    let err = c.send(&CancelToken::new(), USER, &all(&["someone@elsewhere.example"]), &wire2).unwrap_err();
    assert!(err.to_string().contains("Relay access denied"), "{err}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(smtpd.copies(&d2.message_id).is_empty());
}

#[test]
fn wrong_password_fails_without_echoing_it() {
    let dc = Dovecot::start(&Seed::Empty);
    let smtpd = Smtpd::start(&dc);
    let canary = "CANARY-smtp-wrong-7f3a9";
    let pw = smtpd.dir.join("wrong-password");
    std::fs::write(&pw, format!("{canary}\n")).unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let base = smtpd.mailmoat_config(&dc, "full", SmtpMode::Implicit);
    let config = with_password(&smtpd, &base, &format!("{{ file = \"{}\" }}", pw.display()));
    let err = client(&config).send(&CancelToken::new(), USER, &all(&[BOB]), b"Subject: x\r\n\r\nx\r\n").unwrap_err();
    assert_eq!(err.code(), "auth_failed", "{err}");
    assert!(err.to_string().starts_with("smtp authentication failed: 535 5.7.8 "), "{err}");
    assert!(!err.to_string().contains(canary) && !format!("{err:?}").contains(canary), "{err:?}");
    // And the check says the same.
    let err = client(&config).check().unwrap_err();
    assert_eq!(err.code(), "auth_failed");
}

#[test]
fn unknown_ca_and_wrong_pin_are_refused_before_the_password_is_read() {
    let dc = Dovecot::start(&Seed::Empty);
    let smtpd = Smtpd::start(&dc);
    let other = TestCa::create_other(&smtpd.dir.join("other-ca"));
    for mode in [SmtpMode::Implicit, SmtpMode::Starttls] {
        let config = with_password(&smtpd, &smtpd.mailmoat_config(&dc, "full", mode), UNRESOLVABLE);
        let config = config.replace(&smtpd.ca.ca_pem.display().to_string(), &other.ca_pem.display().to_string());
        let err = client(&config).send(&CancelToken::new(), USER, &all(&[BOB]), b"Subject: x\r\n\r\nx\r\n").unwrap_err();
        assert_eq!(err.code(), "tls_error", "{mode:?}: {err}");
        assert!(err.to_string().contains("certificate verify failed"), "{err}");
    }
    let unresolvable = with_password(&smtpd, &smtpd.mailmoat_config(&dc, "full", SmtpMode::Implicit), UNRESOLVABLE);
    let wrong_pin = format!("{unresolvable}pin_sha256 = \"{}\"\n", "ab".repeat(32));
    let err = client(&wrong_pin).check().unwrap_err();
    assert_eq!(err.code(), "pin_mismatch", "{err}");
    assert!(err.to_string().contains(&smtpd.ca.leaf_sha256_hex), "{err}");
    // The right CA and no pin: only now is the password needed.
    let err = client(&unresolvable).check().unwrap_err();
    assert_eq!(err.code(), "secret_error", "{err}");
}

#[test]
fn missing_starttls_stops_before_auth() {
    let dc = Dovecot::start(&Seed::Empty);
    let smtpd = Smtpd::start(&dc);
    let config = with_password(&smtpd, &smtpd.mailmoat_config(&dc, "full", SmtpMode::StarttlsMissing), UNRESOLVABLE);
    let err = client(&config).send(&CancelToken::new(), USER, &all(&[BOB]), b"Subject: x\r\n\r\nx\r\n").unwrap_err();
    assert_eq!(err.code(), "starttls_unavailable", "{err}");
    // The server offered AUTH in plaintext; the session shows EHLO and QUIT only.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(&smtpd.log_path).unwrap_or_default();
        if let Some(line) = log.lines().rfind(|l| l.contains("disconnect from") && l.contains("ehlo=")) {
            assert!(line.ends_with("ehlo=1 quit=1 commands=2"), "{line}");
            assert!(!log.contains("sasl_method"), "{log}");
            break;
        }
        assert!(Instant::now() < deadline, "no disconnect line in the Postfix log:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn size_limits_are_checked_before_data() {
    let dc = Dovecot::start(&Seed::Empty);
    let smtpd = Smtpd::start(&dc);
    let config = smtpd.mailmoat_config(&dc, "full", SmtpMode::Implicit);
    let mut d = draft(&[BOB], &[], &[], "too-big");
    d.attachments =
        vec![AttachmentData { filename: "big.bin".into(), content_type: "application/octet-stream".into(), data: vec![7u8; 800_000] }];
    let wire = compose::build(&d, false).unwrap();
    assert!(wire.len() as u64 > MESSAGE_SIZE_LIMIT);
    let err = client(&config).send(&CancelToken::new(), USER, &all(&[BOB]), &wire).unwrap_err();
    assert_eq!(err.code(), "limit_exceeded", "{err}");
    assert_eq!(err.to_string(), format!("message is larger than the {MESSAGE_SIZE_LIMIT} bytes the smtp server accepts"));
    // Our own limits are checked before connecting at all.
    let limits = Limits { max_send_bytes: 100_000, ..Limits::default() };
    let err = client_with(&config, limits).send(&CancelToken::new(), USER, &all(&[BOB]), &wire).unwrap_err();
    assert_eq!(err.to_string(), "message is larger than limits.max_send_bytes (100000 bytes)");
    let limits = Limits { max_recipients: 2, ..Limits::default() };
    let err = client_with(&config, limits).send(&CancelToken::new(), USER, &all(&[BOB, CAROL, DAVE]), b"x").unwrap_err();
    assert_eq!(err.to_string(), "too many recipients: at most 2 (limits.max_recipients)");
    // No MAIL FROM reached the server in any of these (one session: EHLO, AUTH, QUIT).
    std::thread::sleep(Duration::from_millis(300));
    let log = std::fs::read_to_string(&smtpd.log_path).unwrap_or_default();
    assert!(!log.contains("mail=1"), "{log}");
    assert_eq!(log.matches("sasl_method").count(), 0, "{log}");
    assert_eq!(log.lines().filter(|l| l.contains("disconnect from") && l.contains("auth=1")).count(), 1, "{log}");
}

#[test]
fn check_reports_the_server() {
    let dc = Dovecot::start(&Seed::Empty);
    let smtpd = Smtpd::start(&dc);
    for mode in [SmtpMode::Implicit, SmtpMode::Starttls] {
        let config = format!("{}pin_sha256 = \"{}\"\n", smtpd.mailmoat_config(&dc, "full", mode), smtpd.ca.leaf_sha256_hex);
        let check = client(&config).check().unwrap_or_else(|e| panic!("{mode:?}: {e}\n{}", smtpd.log_tail()));
        assert_eq!(check.cert_sha256, smtpd.ca.leaf_sha256_hex);
        assert_eq!(check.auth_mechanism, "PLAIN");
        assert_eq!(check.size_limit, Some(MESSAGE_SIZE_LIMIT));
        assert!(check.greeting.starts_with("220 mx.example.test ESMTP"), "{}", check.greeting);
        for ext in ["8BITMIME", "SMTPUTF8", "AUTH PLAIN LOGIN"] {
            assert!(check.extensions.iter().any(|e| e == ext), "{ext} not in {:?}", check.extensions);
        }
        assert!(!check.extensions.iter().any(|e| e == "STARTTLS"), "STARTTLS is not offered again over TLS: {:?}", check.extensions);
        assert_eq!(check.tls, if mode == SmtpMode::Implicit { "implicit" } else { "starttls" });
    }
}

#[test]
fn cancelled_before_sending_sends_nothing() {
    let dc = Dovecot::start(&Seed::Empty);
    let smtpd = Smtpd::start(&dc);
    let c = client(&smtpd.mailmoat_config(&dc, "full", SmtpMode::Implicit));
    let cancel = CancelToken::new();
    cancel.cancel();
    let d = draft(&[BOB], &[], &[], "cancelled");
    let err = c.send(&cancel, USER, &all(&[BOB]), &compose::build(&d, false).unwrap()).unwrap_err();
    assert_eq!(err.code(), "cancelled");
    std::thread::sleep(Duration::from_millis(300));
    assert!(smtpd.copies(&d.message_id).is_empty());
}
