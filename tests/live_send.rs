//! Sending through MCP: a real Postfix on loopback that delivers into the test Dovecot, so the
//! tests see what recipients really receive (headers, Bcc hidden, threading) and the Sent copy.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::dovecot::{self as dc, Dovecot, Seed};
use common::mcp::{self, Client, MODERN};
use common::smtpd::{SmtpMode, Smtpd};
use serde_json::{json, Value};

struct Env {
    dc: Dovecot,
    smtp: Smtpd,
    config: PathBuf,
}

fn env(posture: &str, top: &str, account_extra: &str) -> Env {
    let dc = Dovecot::start(&Seed::Standard);
    let smtp = Smtpd::start(&dc);
    let config = dc.dir.join("mailmoat.toml");
    let mut text = smtp.mailmoat_config(&dc, posture, SmtpMode::Implicit);
    if !account_extra.is_empty() {
        text = text.replace("[accounts.test]\n", &format!("[accounts.test]\n{account_extra}\n"));
    }
    std::fs::write(&config, format!("{top}\n{text}")).unwrap();
    Env { dc, smtp, config }
}

fn ok(result: &Value) -> &Value {
    assert_eq!(result["isError"], json!(false), "tool failed: {result}");
    &result["structuredContent"]
}

fn header(raw: &[u8], name: &str) -> Option<String> {
    dc::header_value(raw, name)
}

#[test]
fn send_email_delivers_hides_bcc_threads_and_keeps_a_sent_copy() {
    let e = env("full", "confirm = \"none\"", "");
    let mut c = Client::spawn(&e.config, MODERN, &[]);
    let r = c.call("search", json!({"header": {"name": "Message-ID", "value": "<plain@example.test>"}}));
    let orig = ok(&r)["meta"]["messages"][0]["id"].as_str().unwrap().to_string();
    let r = c.call(
        "send_email",
        json!({
            "to": ["Bob Builder <bob@example.test>"], "cc": ["carol@example.test"], "bcc": ["dave@example.test"],
            "body_text": "Friday at noon works.\n.\n..leading dots survive", "reply_to_id": orig, "quote": false,
        }),
    );
    let sc = ok(&r).clone();
    let mid = sc["meta"]["message_id"].as_str().unwrap().to_string();
    assert_eq!(sc["meta"]["accepted"].as_array().unwrap().len(), 3);
    for rcpt in ["bob@example.test", "carol@example.test", "dave@example.test"] {
        let raw = e.smtp.wait_for_message(&Smtpd::folder_for(rcpt), &mid);
        assert_eq!(header(&raw, "Subject").as_deref(), Some("Re: Lunch on Friday?"), "{rcpt}");
        assert_eq!(header(&raw, "In-Reply-To").as_deref(), Some("<plain@example.test>"));
        assert_eq!(header(&raw, "From").as_deref(), Some(dc::USER));
        assert!(header(&raw, "Bcc").is_none(), "Bcc leaked to {rcpt}");
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("dave@example.test") || rcpt == "dave@example.test" && !text.contains("Bcc:"), "{rcpt}");
        assert!(text.contains("\n.\n..leading dots survive"), "dot-stuffing: {text}");
    }
    // The Sent copy keeps the Bcc line for the user.
    let sent_id = sc["meta"]["sent_copy"].as_str().expect("APPENDUID of the Sent copy").to_string();
    let r = c.call("fetch_message", json!({"id": sent_id, "include_headers": ["Bcc"]}));
    let s = ok(&r);
    assert_eq!(s["untrusted"]["message_id"], json!(mid));
    assert!(s["meta"]["flags"].as_array().unwrap().contains(&json!("\\Seen")));
    assert_eq!(s["untrusted"]["headers"][0]["value"], json!("dave@example.test"));
    // Every message the agent sent was logged with its recipients.
    let log = std::fs::read_to_string(e.dc.dir.join("audit.jsonl")).unwrap();
    assert!(log.contains("\"send_email\"") && log.contains("dave@example.test"));
}

#[test]
fn check_reports_imap_and_smtp() {
    let e = env("full", "", "");
    let out = std::process::Command::new(mcp::bin()).args(["check", "--config"]).arg(&e.config).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("  smtp ok: localhost:") && stdout.contains("authenticated with PLAIN"), "{stdout}");
    assert!(stdout.contains("smtp extensions: ") && stdout.contains("SIZE"), "{stdout}");
    assert!(stdout.contains("  smtp tls: TLSv1.3, TLS_"), "{stdout}");
    assert!(!stdout.contains(&e.smtp.password) && !stdout.contains(&e.dc.password));
}

#[test]
fn allowed_recipients_refuse_before_any_smtp() {
    let e = env("full", "confirm = \"none\"", "allowed_recipients = [\"*@example.test\"]");
    let mut c = Client::spawn(&e.config, MODERN, &[]);
    let r = c.call("send_email", json!({"to": ["bob@example.test", "mallory@evil.test"], "subject": "x", "body_text": "x"}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("recipient_not_allowed"), "{r}");
    assert!(mcp::text(&r).contains("mallory@evil.test"));
    // Nothing was submitted: the server logged no AUTH or message at all.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!e.smtp.log_tail().contains("sasl_username"), "{}", e.smtp.log_tail());
    let r = c.call("send_email", json!({"to": ["bob@example.test"], "subject": "inside", "body_text": "x"}));
    ok(&r);
}

#[test]
fn drafts_need_human_review_before_send_draft() {
    let e = env("full", "confirm = \"none\"", "");
    let mut c = Client::spawn(&e.config, MODERN, &[]);
    let r = c.call(
        "create_draft",
        json!({"to": ["carol@example.test"], "bcc": ["dave@example.test"], "subject": "Zürich trip ✈", "body_text": "Draft body"}),
    );
    let sc = ok(&r).clone();
    let id = sc["meta"]["id"].as_str().unwrap().to_string();
    let mid = sc["meta"]["message_id"].as_str().unwrap().to_string();
    let r = c.call("send_draft", json!({"id": id}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("draft_pending_review"), "{r}");
    // The human reviews it in their mail client and clears the mark.
    let uid = id.rsplit('.').next().unwrap();
    let mut imap = e.dc.imap();
    imap.ok("SELECT Drafts");
    imap.ok(&format!("UID STORE {uid} -FLAGS ($PendingReview)"));
    imap.ok("LOGOUT");
    let r = c.call("send_draft", json!({"id": id}));
    let sc = ok(&r);
    assert_eq!(sc["meta"]["accepted"].as_array().unwrap().len(), 2);
    for rcpt in ["carol@example.test", "dave@example.test"] {
        let raw = e.smtp.wait_for_message(&Smtpd::folder_for(rcpt), &mid);
        assert!(header(&raw, "Bcc").is_none(), "Bcc leaked to {rcpt}");
        let r = mailmoat::content::render(&raw, false, &mailmoat::content::Limits::default());
        assert_eq!(r.headers.subject.as_deref(), Some("Zürich trip ✈"));
    }
}

#[test]
fn sending_is_confirmed_limited_and_needs_smtp() {
    let e = env("full", "confirm = \"token\"", "");
    let text = std::fs::read_to_string(&e.config).unwrap();
    std::fs::write(&e.config, format!("{text}\n[rate_limits]\nsend_per_hour = 1\n")).unwrap();
    let mut c = Client::spawn(&e.config, "2025-11-25", &[]);
    c.initialize();
    let args = json!({"to": ["bob@example.test"], "subject": "Quarterly numbers", "body_text": "Here they are.\nLine two."});
    let r = c.call("send_email", args.clone());
    assert_eq!(mcp::error_code(&r).as_deref(), Some("confirmation_required"));
    let preview = r["structuredContent"]["error"]["preview"].to_string();
    assert!(
        preview.contains("bob@example.test") && preview.contains("Quarterly numbers") && preview.contains("Here they are."),
        "{preview}"
    );
    let mut with = args.clone();
    with["confirmation_token"] = r["structuredContent"]["error"]["confirmation_token"].clone();
    ok(&c.call("send_email", with));
    // The hourly send window is now used up: a second send, once confirmed, is refused.
    // (Only messages that really go out count; asking for confirmation does not.)
    let r = c.call("send_email", args.clone());
    assert_eq!(mcp::error_code(&r).as_deref(), Some("confirmation_required"));
    let mut with = args;
    with["confirmation_token"] = r["structuredContent"]["error"]["confirmation_token"].clone();
    let r = c.call("send_email", with);
    assert_eq!(mcp::error_code(&r).as_deref(), Some("rate_limited"), "{r}");
    assert!(r["structuredContent"]["error"]["retry_after_ms"].as_u64().unwrap() > 3_000_000);

    // Without [accounts.*.smtp] there is nothing to send with.
    let cfg = e.dc.dir.join("nosmtp.toml");
    e.dc.write_mailmoat_config(&cfg, "full");
    let mut c = Client::spawn(&cfg, MODERN, &[]);
    let r = c.call("send_email", json!({"to": ["bob@example.test"], "body_text": "x"}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("smtp_not_configured"));
}
