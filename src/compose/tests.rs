//! Round trips through the repo's own reader (`content`) and through mailparse, golden bytes
//! for a simple message, and a table of injection attempts against every header input.

use super::*;
use crate::content::{self, Address};

fn mb(s: &str) -> Mailbox {
    Mailbox::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn base() -> Draft {
    Draft {
        from: mb("Alice Example <alice@example.test>"),
        to: vec![mb("Bob <bob@example.test>"), mb("carol@example.test")],
        cc: vec![mb("\"Smith, Dave \\\"D\\\"\" <dave@example.test>")],
        bcc: vec![mb("Eve Hidden <eve@example.test>")],
        subject: "Quarterly planning: agenda".into(),
        body_text: "Hello Bob,\n\nsee you at 10.\n.\n..dots stay\n--\nAlice\n".into(),
        body_html: None,
        in_reply_to: Some("<thread-1@example.test>".into()),
        references: vec!["<thread-0@example.test>".into(), "<thread-1@example.test>".into()],
        attachments: vec![],
        forward_rfc822: None,
        date_epoch: 1_795_310_072,
        message_id: message_id("example.test", b"seed-1"),
    }
}

fn addr(name: Option<&str>, email: &str) -> Address {
    Address { name: name.map(str::to_string), email: email.to_string() }
}

fn headers_of(raw: &[u8]) -> content::Headers {
    let mut findings = Vec::new();
    let h = content::parse_headers(raw, &content::Limits::default(), &mut findings);
    assert!(findings.is_empty(), "{findings:?}");
    h
}

/// The header block as text (up to the blank line).
fn head_text(raw: &[u8]) -> String {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("header end") + 2;
    String::from_utf8(raw[..end].to_vec()).unwrap()
}

fn assert_wire_shape(raw: &[u8]) {
    assert!(raw.ends_with(b"\r\n"));
    for (i, w) in raw.windows(2).enumerate() {
        if w[1] == b'\n' {
            assert_eq!(w[0], b'\r', "bare LF at {i}");
        }
        if w[0] == b'\r' {
            assert_eq!(w[1], b'\n', "bare CR at {i}");
        }
    }
    assert!(!raw.contains(&0));
    for line in raw.split(|&b| b == b'\n') {
        assert!(line.len() <= 999, "line of {} bytes", line.len());
    }
    for line in head_text(raw).split("\r\n") {
        assert!(line.chars().count() <= 78, "long header line: {line}");
    }
}

#[test]
fn golden_plain_message() {
    let raw = build(&base(), false).unwrap();
    let id = base().message_id;
    let want = format!(
        "Date: Sun, 22 Nov 2026 01:14:32 +0000\r\n\
         From: Alice Example <alice@example.test>\r\n\
         To: Bob <bob@example.test>, carol@example.test\r\n\
         Cc: \"Smith, Dave \\\"D\\\"\" <dave@example.test>\r\n\
         Subject: Quarterly planning: agenda\r\n\
         Message-ID: {id}\r\n\
         In-Reply-To: <thread-1@example.test>\r\n\
         References: <thread-0@example.test> <thread-1@example.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 7bit\r\n\
         \r\n\
         Hello Bob,\r\n\
         \r\n\
         see you at 10.\r\n\
         .\r\n\
         ..dots stay\r\n\
         --\r\n\
         Alice\r\n"
    );
    assert_eq!(String::from_utf8(raw).unwrap(), want);
}

#[test]
fn headers_and_body_round_trip_through_content() {
    let d = base();
    for include_bcc in [false, true] {
        let raw = build(&d, include_bcc).unwrap();
        assert_wire_shape(&raw);
        let h = headers_of(&raw);
        assert_eq!(h.from, vec![addr(Some("Alice Example"), "alice@example.test")]);
        assert_eq!(h.to, vec![addr(Some("Bob"), "bob@example.test"), addr(None, "carol@example.test")]);
        assert_eq!(h.cc, vec![addr(Some("Smith, Dave \"D\""), "dave@example.test")]);
        let bcc = if include_bcc { vec![addr(Some("Eve Hidden"), "eve@example.test")] } else { vec![] };
        assert_eq!(h.bcc, bcc);
        assert_eq!(String::from_utf8_lossy(&raw).contains("eve@"), include_bcc);
        assert_eq!(h.subject.as_deref(), Some("Quarterly planning: agenda"));
        assert_eq!(h.date.as_deref(), Some("2026-11-22T01:14:32Z"));
        assert_eq!(h.message_id.as_deref(), Some(d.message_id.as_str()));
        assert_eq!(h.in_reply_to, vec!["<thread-1@example.test>".to_string()]);
        assert_eq!(h.references, d.references);
        assert_eq!(h.content_type.as_deref(), Some("text/plain"));
        let r = content::render(&raw, false, &content::Limits::default());
        assert_eq!(r.text, d.body_text);
        assert!(r.attachments.is_empty());
    }
}

#[test]
fn non_ascii_name_subject_body_and_filename() {
    let mut d = base();
    d.from = mb("Jürgen Müller <alice@example.test>");
    d.to = vec![mb("東京 太郎 <taro@example.test>"), mb("\"=?utf-8?q?not_a_word?=\" <x@example.test>")];
    d.subject = "Grüße aus München – Café ☕ 東京, and a long tail to force folding of the encoded words".into();
    d.body_text = "Die Straße vor dem Büro.\nZweite Zeile – mit Gedankenstrich.\n".into();
    d.attachments = vec![AttachmentData {
        filename: "Prüfbericht Übersicht – ein sehr langer Dateiname mit Umlauten äöü.txt".into(),
        content_type: "Text/Plain".into(),
        data: "Prüfbericht Q1\nAlles in Ordnung.\n".as_bytes().to_vec(),
    }];
    let raw = build(&d, false).unwrap();
    assert_wire_shape(&raw);
    assert!(raw.is_ascii(), "{}", String::from_utf8_lossy(&raw));
    let h = headers_of(&raw);
    assert_eq!(h.from, vec![addr(Some("Jürgen Müller"), "alice@example.test")]);
    assert_eq!(h.to, vec![addr(Some("東京 太郎"), "taro@example.test"), addr(Some("=?utf-8?q?not_a_word?="), "x@example.test")]);
    assert_eq!(h.subject.as_deref(), Some(d.subject.as_str()));
    assert_eq!(h.content_type.as_deref(), Some("multipart/mixed"));
    let r = content::render(&raw, false, &content::Limits::default());
    assert_eq!(r.text, d.body_text);
    assert_eq!(r.attachments.len(), 1);
    assert_eq!(r.attachments[0].filename.as_deref(), Some(d.attachments[0].filename.as_str()));
    assert_eq!(r.attachments[0].content_type, "text/plain");
    assert_eq!(r.attachments[0].size, d.attachments[0].data.len());
    assert_eq!(r.attachments[0].disposition.as_deref(), Some("attachment"));
    // An independent decoder agrees on the bytes.
    let parsed = mailparse::parse_mail(&raw).unwrap();
    assert_eq!(parsed.subparts.len(), 2);
    assert_eq!(parsed.subparts[0].get_body().unwrap(), d.body_text.replace('\n', "\r\n"));
    assert_eq!(parsed.subparts[1].get_body_raw().unwrap(), d.attachments[0].data);
    let disp = parsed.subparts[1].get_content_disposition();
    assert_eq!(disp.params.get("filename").map(String::as_str), Some(d.attachments[0].filename.as_str()));
}

#[test]
fn alternative_attachments_and_forward() {
    let mut d = base();
    d.body_text = "plain version\n".into();
    d.body_html = Some("<p>html version with a very long line that goes on and on and on and on and on and on and on</p>\n".into());
    let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    d.attachments = vec![
        AttachmentData { filename: "data.bin".into(), content_type: "application/octet-stream".into(), data: binary.clone() },
        AttachmentData { filename: "empty.txt".into(), content_type: "text/plain".into(), data: vec![] },
    ];
    let original = "From: x@example.org\nSubject: Original – 8bit\n\nBody ünicode\n.\n".as_bytes().to_vec();
    d.forward_rfc822 = Some(original.clone());
    let raw = build(&d, false).unwrap();
    assert_wire_shape(&raw);
    let parsed = mailparse::parse_mail(&raw).unwrap();
    assert_eq!(parsed.ctype.mimetype, "multipart/mixed");
    assert_eq!(parsed.subparts.len(), 4);
    let alt = &parsed.subparts[0];
    assert_eq!(alt.ctype.mimetype, "multipart/alternative");
    assert_eq!(alt.subparts[0].get_body().unwrap(), "plain version\r\n");
    assert_eq!(alt.subparts[1].ctype.mimetype, "text/html");
    assert_eq!(alt.subparts[1].get_body().unwrap(), d.body_html.as_deref().unwrap().replace('\n', "\r\n"));
    assert_eq!(parsed.subparts[1].get_body_raw().unwrap(), binary);
    assert_eq!(parsed.subparts[2].get_body_raw().unwrap(), Vec::<u8>::new());
    let fwd = &parsed.subparts[3];
    assert_eq!(fwd.ctype.mimetype, "message/rfc822");
    assert_eq!(fwd.get_body_raw().unwrap(), String::from_utf8(original).unwrap().replace('\n', "\r\n").into_bytes());
    // Which alternative the reader shows is its own policy; both must be readable.
    let r = content::render(&raw, false, &content::Limits::default());
    assert!(r.text.starts_with("plain version") || r.text.starts_with("html version"), "{:?}", r.text);
    let names: Vec<_> = r.attachments.iter().map(|a| (a.filename.clone(), a.content_type.clone(), a.size)).collect();
    assert_eq!(names[0], (Some("data.bin".to_string()), "application/octet-stream".to_string(), 5000));
    assert_eq!(names[1], (Some("empty.txt".to_string()), "text/plain".to_string(), 0));
    assert_eq!(names[2].1, "message/rfc822");
}

#[test]
fn forward_that_cannot_travel_as_rfc822_is_base64() {
    let mut d = base();
    let mut original = b"Subject: has a NUL\r\n\r\n".to_vec();
    original.extend_from_slice(&[b'a', 0, b'b', b'\r', b'\n']);
    d.forward_rfc822 = Some(original.clone());
    let raw = build(&d, false).unwrap();
    assert_wire_shape(&raw);
    let parsed = mailparse::parse_mail(&raw).unwrap();
    assert_eq!(parsed.subparts[1].ctype.mimetype, "application/octet-stream");
    assert_eq!(parsed.subparts[1].get_body_raw().unwrap(), original);
}

#[test]
fn transfer_encoding_choice() {
    let cases: &[(&str, &str)] = &[
        ("short ascii\n.\n", "7bit"),
        (&"x".repeat(79), "quoted-printable"),
        ("trailing blank \n", "quoted-printable"),
        ("tab\tinside is fine\n", "7bit"),
        ("bell \u{7} byte", "quoted-printable"),
        ("mostly ascii with ü", "quoted-printable"),
        ("東京都の天気は晴れです", "base64"),
    ];
    for (text, want) in cases {
        let mut d = base();
        d.body_text = text.to_string();
        let raw = build(&d, false).unwrap();
        assert_wire_shape(&raw);
        assert!(head_text(&raw).contains(&format!("Content-Transfer-Encoding: {want}\r\n")), "{text:?}: {}", head_text(&raw));
        let parsed = mailparse::parse_mail(&raw).unwrap();
        let mut expect = text.replace('\n', "\r\n");
        if *want == "7bit" && !expect.ends_with("\r\n") {
            expect.push_str("\r\n");
        }
        assert_eq!(parsed.get_body().unwrap(), expect, "{text:?}");
    }
}

#[test]
fn boundary_is_never_in_the_content() {
    let mut d = base();
    d.attachments = vec![AttachmentData { filename: "a.txt".into(), content_type: "text/plain".into(), data: b"x".to_vec() }];
    let raw = build(&d, false).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let boundary = text.split("boundary=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    // A 7bit body that contains the boundary the first attempt would use gets another one.
    d.body_text = format!("look:\n--{boundary}\nstill the body\n");
    let raw = build(&d, false).unwrap();
    let text2 = String::from_utf8(raw.clone()).unwrap();
    assert!(text2.contains("Content-Transfer-Encoding: 7bit"));
    let boundary2 = text2.split("boundary=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert_ne!(boundary, boundary2);
    let parsed = mailparse::parse_mail(&raw).unwrap();
    assert_eq!(parsed.subparts.len(), 2);
    assert_eq!(parsed.subparts[0].get_body().unwrap(), d.body_text.replace('\n', "\r\n"));
}

#[test]
fn long_subjects() {
    // 2,000 characters with spaces: folded, unchanged after unfolding.
    let words: String = (0..400).map(|i| format!("w{i:03} ")).collect::<String>();
    let subject: String = words.chars().take(1999).collect::<String>() + "z";
    assert_eq!(subject.chars().count(), 2000);
    let mut d = base();
    d.subject = subject.clone();
    let raw = build(&d, false).unwrap();
    assert_wire_shape(&raw);
    let limits = content::Limits { max_header_value_chars: 5000, ..content::Limits::default() };
    let h = content::parse_headers(&raw, &limits, &mut Vec::new());
    assert_eq!(h.subject.as_deref(), Some(subject.as_str()));
    // 2,000 characters without a space: encoded words (which can be split anywhere).
    d.subject = "x".repeat(2000);
    let raw = build(&d, false).unwrap();
    assert_wire_shape(&raw);
    assert!(head_text(&raw).contains("=?UTF-8?B?"));
    let h = content::parse_headers(&raw, &limits, &mut Vec::new());
    assert_eq!(h.subject.as_deref(), Some(d.subject.as_str()));
    d.subject = "x".repeat(2001);
    assert_eq!(build(&d, false).unwrap_err(), ComposeError::TooLarge { limit: "subject characters", max: 2000 });
    assert_eq!(build(&d, false).unwrap_err().to_string(), "too large: at most 2000 subject characters allowed");
}

#[test]
fn many_references_keep_root_and_newest() {
    let mut d = base();
    d.references = (0..150).map(|i| format!("<r{i}@example.test>")).collect();
    let raw = build(&d, false).unwrap();
    assert_wire_shape(&raw);
    let h = headers_of(&raw);
    assert_eq!(h.references.len(), 100);
    assert_eq!(h.references[0], "<r0@example.test>");
    assert_eq!(h.references[1], "<r51@example.test>");
    assert_eq!(h.references[99], "<r149@example.test>");
}

/// Every header input, with CR, LF and NUL in turn: refused, and the error names the field.
#[test]
fn injection_attempts_are_refused_naming_the_field() {
    type Setter = fn(&mut Draft, &str);
    let fields: &[(&str, Setter)] = &[
        ("from", |d, s| d.from.name = Some(format!("Alice{s}Bcc: x@evil.test"))),
        ("from", |d, s| d.from.email = format!("alice@example.test{s}")),
        ("to", |d, s| d.to[0].name = Some(format!("Bob{s}X-Injected: 1"))),
        ("to", |d, s| d.to[1].email = format!("carol@example.test{s}bcc@evil.test")),
        ("cc", |d, s| d.cc[0].email = format!("dave{s}@example.test")),
        ("bcc", |d, s| d.bcc[0].name = Some(format!("Eve{s}"))),
        ("subject", |d, s| d.subject = format!("Invoice{s}Bcc: attacker@evil.test")),
        ("message_id", |d, s| d.message_id = format!("<a{s}b@example.test>")),
        ("in_reply_to", |d, s| d.in_reply_to = Some(format!("<x@example.test>{s}Bcc: y@evil.test"))),
        ("references", |d, s| d.references.push(format!("<z@example.test>{s}"))),
        ("attachment filename", |d, s| {
            d.attachments = vec![AttachmentData { filename: format!("a{s}.txt"), content_type: "text/plain".into(), data: vec![] }]
        }),
        ("attachment content_type", |d, s| {
            d.attachments = vec![AttachmentData { filename: "a.txt".into(), content_type: format!("text/plain{s}X: y"), data: vec![] }]
        }),
    ];
    for (field, set) in fields {
        for (bad, reason) in [
            ("\r", "contains a line break"),
            ("\n", "contains a line break"),
            ("\r\n", "contains a line break"),
            ("\0", "contains a NUL byte"),
        ] {
            let mut d = base();
            set(&mut d, bad);
            let err = build(&d, true).unwrap_err();
            assert_eq!(err, ComposeError::Invalid { field, reason: reason.into() }, "{field} with {bad:?}");
        }
    }
    // NUL in the bodies.
    let mut d = base();
    d.body_text = "a\0b".into();
    assert_eq!(build(&d, false).unwrap_err().to_string(), "invalid body_text: contains a NUL byte");
    let mut d = base();
    d.body_html = Some("<p>\0</p>".into());
    assert_eq!(build(&d, false).unwrap_err().to_string(), "invalid body_html: contains a NUL byte");
}

#[test]
fn other_refusals() {
    type Setter = fn(&mut Draft);
    let cases: &[(Setter, &str)] = &[
        (|d| d.to[0].email = "a@b@example.test".into(), "invalid to: address must contain exactly one @"),
        (|d| d.from.email = "nobody".into(), "invalid from: address must contain exactly one @"),
        (|d| d.subject = "bell\u{7}".into(), "invalid subject: contains a control character"),
        (|d| d.message_id = "no-brackets@example.test".into(), "invalid message_id: message id must look like <id@host>"),
        (
            |d| d.references = vec!["<a b@example.test>".into()],
            "invalid references: message id contains whitespace, a quote, a bracket or non-ASCII",
        ),
        (|d| d.in_reply_to = Some("<noat>".into()), "invalid in_reply_to: message id must look like <id@host>"),
        (
            |d| d.attachments = vec![AttachmentData { filename: "../etc/passwd".into(), content_type: "text/plain".into(), data: vec![] }],
            "invalid attachment filename: contains a path separator",
        ),
        (
            |d| d.attachments = vec![AttachmentData { filename: " ".into(), content_type: "text/plain".into(), data: vec![] }],
            "invalid attachment filename: is empty",
        ),
        (
            |d| d.attachments = vec![AttachmentData { filename: "a".into(), content_type: "textplain".into(), data: vec![] }],
            "invalid attachment content_type: must be type/subtype, like application/pdf",
        ),
        (
            |d| d.attachments = vec![AttachmentData { filename: "a".into(), content_type: "text/plain; charset=x".into(), data: vec![] }],
            "invalid attachment content_type: must be type/subtype, like application/pdf",
        ),
        (
            |d| d.attachments = vec![AttachmentData { filename: "a".into(), content_type: "message/rfc822".into(), data: vec![] }],
            "invalid attachment content_type: multipart and message types cannot be attached as files",
        ),
        (
            |d| d.attachments = vec![AttachmentData { filename: "n".repeat(256), content_type: "text/plain".into(), data: vec![] }],
            "too large: at most 255 filename characters allowed",
        ),
        (|d| d.to[0].name = Some("x".repeat(201)), "too large: at most 200 display name characters allowed"),
    ];
    for (set, want) in cases {
        let mut d = base();
        set(&mut d);
        assert_eq!(build(&d, true).unwrap_err().to_string(), *want);
    }
}

#[test]
fn utf8_addresses_are_written_raw() {
    let mut d = base();
    d.to = vec![mb("Δοκιμή <δοκιμή@παράδειγμα.δοκιμή>")];
    let raw = build(&d, false).unwrap();
    assert_wire_shape(&raw);
    let h = headers_of(&raw);
    assert_eq!(h.to, vec![addr(Some("Δοκιμή"), "δοκιμή@παράδειγμα.δοκιμή")]);
}

#[test]
fn subjects_for_replies_and_forwards() {
    let replies: &[(&str, &str)] = &[
        ("Lunch", "Re: Lunch"),
        ("Re: Lunch", "Re: Lunch"),
        ("RE: Lunch", "RE: Lunch"),
        ("re:Lunch", "re:Lunch"),
        ("Re[2]: Lunch", "Re[2]: Lunch"),
        ("Re(3): Lunch", "Re(3): Lunch"),
        ("Re[x]: Lunch", "Re: Re[x]: Lunch"),
        ("Fwd: Lunch", "Re: Fwd: Lunch"),
        ("Regarding lunch", "Re: Regarding lunch"),
        ("  spaced  ", "Re: spaced"),
        ("", "Re:"),
        ("a\r\nBcc: x@evil.test", "Re: a  Bcc: x@evil.test"),
    ];
    for (orig, want) in replies {
        assert_eq!(reply_subject(orig), *want, "{orig:?}");
    }
    let forwards: &[(&str, &str)] = &[("Lunch", "Fwd: Lunch"), ("FW: Lunch", "FW: Lunch"), ("fwd: x", "fwd: x"), ("Re: x", "Fwd: Re: x")];
    for (orig, want) in forwards {
        assert_eq!(forward_subject(orig), *want, "{orig:?}");
    }
    assert_eq!(reply_subject(&"y".repeat(3000)).chars().count(), MAX_SUBJECT_CHARS);
    // The result always builds.
    let mut d = base();
    d.subject = reply_subject("x\u{0}\u{1b}[31m\r\n");
    assert!(build(&d, false).is_ok());
}

#[test]
fn quoting() {
    let q = quote_text("Hi,\n\n> earlier\nthanks\r\n", "On 2025-01-06, Bob\r\nBcc: x wrote:");
    assert_eq!(q, "On 2025-01-06, Bob  Bcc: x wrote:\n> Hi,\n>\n>> earlier\n> thanks\n");
    let long: String = (0..3000).map(|i| format!("line {i}\n")).collect();
    let q = quote_text(&long, "On x, y wrote:");
    assert_eq!(q.lines().count(), 1 + MAX_QUOTE_LINES + 1);
    assert!(q.ends_with("> [...]\n"));
    let wide = "z".repeat(MAX_QUOTE_CHARS + 10);
    let q = quote_text(&wide, "a");
    assert_eq!(q, "a\n> [...]\n");
}

#[test]
fn message_ids() {
    let a = message_id("Example.TEST", b"nonce-a");
    assert_eq!(a, message_id("example.test", b"nonce-a"));
    assert_ne!(a, message_id("example.test", b"nonce-b"));
    assert!(a.starts_with('<') && a.ends_with("@example.test>") && a.len() == 1 + 32 + 1 + 12 + 1, "{a}");
    for bad in ["", "ex ample.com", "a\r\n.com", "παράδειγμα.δοκιμή", "a..b"] {
        assert!(message_id(bad, b"n").ends_with("@mailmoat.invalid>"), "{bad:?}");
    }
    assert!(validate_msg_id("message_id", &a).is_ok());
}
