//! The tools end to end: the built binary, driven over stdin/stdout in both eras, against a real
//! Dovecot seeded with the standard sample mail (see tests/common/dovecot.rs).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::dovecot::{self as dc, Dovecot, Seed};
use common::mcp::{self, Client, MODERN};
use serde_json::{json, Value};

struct Env {
    dc: Dovecot,
    config: PathBuf,
}

fn env(seed: &Seed, posture: &str) -> Env {
    let dc = Dovecot::start(seed);
    let config = dc.dir.join("mailmoat.toml");
    dc.write_mailmoat_config(&config, posture);
    Env { dc, config }
}

impl Env {
    fn client(&self, revision: &str) -> Client {
        let mut c = Client::spawn(&self.config, revision, &[]);
        if revision != MODERN {
            c.initialize();
        }
        c
    }
}

fn ok(result: &Value) -> &Value {
    assert_eq!(result["isError"], json!(false), "tool failed: {result}");
    &result["structuredContent"]
}

/// The id of the only message in `folder` whose subject contains `subject`.
fn id_by_subject(c: &mut Client, folder: &str, subject: &str) -> String {
    let r = c.call("search", json!({"folder": folder, "subject": subject}));
    let sc = ok(&r);
    assert_eq!(sc["meta"]["total"], json!(1), "subject {subject:?}: {sc}");
    sc["meta"]["messages"][0]["id"].as_str().unwrap().to_string()
}

fn assert_no_secret(c: &Client, e: &Env) {
    let all = serde_json::to_string(&c.transcript).unwrap() + &serde_json::to_string(&c.notifications).unwrap();
    assert!(!all.contains(&e.dc.password), "password leaked into MCP output");
    assert!(!c.stderr.lock().unwrap().contains(&e.dc.password), "password leaked into stderr");
}

#[test]
fn list_folders_roles_and_counts_in_both_eras() {
    let e = env(&Seed::Standard, "readonly");
    for rev in [MODERN, "2025-06-18"] {
        let mut c = e.client(rev);
        let r = c.call("list_folders", json!({}));
        let folders = ok(&r)["meta"]["folders"].as_array().unwrap().clone();
        let by_name =
            |n: &str| folders.iter().find(|f| f["name"] == json!(n)).unwrap_or_else(|| panic!("no folder {n} in {folders:?}")).clone();
        assert_eq!(folders[0]["name"], json!("INBOX"));
        assert_eq!(by_name("INBOX")["role"], json!("inbox"));
        assert_eq!(by_name("INBOX")["messages"], json!(dc::INBOX_COUNT));
        assert_eq!(by_name("INBOX")["unseen"], json!(dc::INBOX_UNSEEN_COUNT));
        assert_eq!(by_name(dc::ARCHIVE)["messages"], json!(dc::ARCHIVE_COUNT));
        assert_eq!(by_name(dc::ARCHIVE)["unseen"], json!(dc::ARCHIVE_UNSEEN_COUNT));
        assert_eq!(by_name(dc::ARCHIVE)["role"], json!("archive"));
        assert_eq!(by_name(dc::ARCHIVE_2024)["messages"], json!(dc::ARCHIVE_2024_COUNT));
        assert_eq!(by_name(dc::ARCHIVE_2024)["delimiter"], json!("/"));
        assert_eq!(by_name(dc::ENTWUERFE)["messages"], json!(dc::ENTWUERFE_COUNT));
        for (name, role) in [("Drafts", "drafts"), ("Sent", "sent"), ("Trash", "trash"), ("Junk", "junk")] {
            assert_eq!(by_name(name)["role"], json!(role));
        }
        assert!(by_name("INBOX")["uidvalidity"].as_u64().unwrap() > 0);
        assert!(mcp::text(&r).contains("- Entwürfe messages=2"));
        assert_no_secret(&c, &e);
    }
}

#[test]
fn search_pages_a_folder_of_thousands_newest_first() {
    let e = env(&Seed::Standard, "readonly");
    let mut c = e.client(MODERN);
    let mut seen = BTreeSet::new();
    let mut dates = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = json!({"folder": dc::ARCHIVE, "limit": 100});
        if let Some(cur) = &cursor {
            args["cursor"] = json!(cur);
        }
        let r = c.call("search", args);
        let sc = ok(&r).clone();
        assert_eq!(sc["meta"]["total"], json!(dc::ARCHIVE_COUNT));
        pages += 1;
        for (m, u) in sc["meta"]["messages"].as_array().unwrap().iter().zip(sc["untrusted"]["messages"].as_array().unwrap()) {
            assert_eq!(m["id"], u["id"]);
            assert!(seen.insert(m["uid"].as_u64().unwrap()), "duplicate uid {m}");
            dates.push(u["date"].as_str().unwrap().to_string());
        }
        match sc["meta"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, dc::ARCHIVE_COUNT / 100);
    assert_eq!(seen.len(), dc::ARCHIVE_COUNT);
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted, "not newest first");
    // The newest archive message comes first with the default limit of 20.
    let r = c.call("search", json!({"folder": dc::ARCHIVE}));
    let sc = ok(&r);
    assert_eq!(sc["meta"]["returned"], json!(20));
    let newest = dc::ARCHIVE_COUNT; // archive messages are numbered from 1
    assert_eq!(sc["untrusted"]["messages"][0]["subject"], json!(dc::archive_subject(newest)));
    assert_eq!(sc["meta"]["sorted_by"], json!("date"));
}

#[test]
fn search_filters() {
    let e = env(&Seed::Standard, "readonly");
    let mut c = e.client("2025-11-25");
    let total = |c: &mut Client, args: Value| -> u64 {
        let r = c.call("search", args.clone());
        ok(&r)["meta"]["total"].as_u64().unwrap_or_else(|| panic!("{args}: {r}"))
    };
    assert_eq!(total(&mut c, json!({})), dc::INBOX_COUNT as u64);
    assert_eq!(total(&mut c, json!({"from": dc::BOB})), dc::BOB_INBOX_COUNT as u64);
    assert_eq!(total(&mut c, json!({"seen": false})), dc::INBOX_UNSEEN_COUNT as u64);
    assert_eq!(total(&mut c, json!({"seen": true})), dc::INBOX_SEEN_COUNT as u64);
    assert_eq!(total(&mut c, json!({"folder": dc::ARCHIVE, "from": dc::ARCHIVE_KNOWN_SENDER})), dc::ARCHIVE_KNOWN_SENDER_COUNT as u64);
    assert_eq!(total(&mut c, json!({"folder": dc::ARCHIVE, "subject": dc::archive_subject(1234)})), 1);
    assert_eq!(total(&mut c, json!({"subject": "München"})), 1);
    assert_eq!(total(&mut c, json!({"header": {"name": "List-Id", "value": "rust-announce"}})), 1);
    assert_eq!(total(&mut c, json!({"keyword": "$NoSuchKeyword"})), 0);
    assert_eq!(total(&mut c, json!({"subject": "\"quoted\" \\ {3}"})), 0);
    let r = c.call("search", json!({"flagged": true}));
    let sc = ok(&r);
    assert_eq!(sc["meta"]["total"], json!(1));
    assert_eq!(sc["untrusted"]["messages"][0]["subject"], json!(dc::FLAGGED_SUBJECT));
    assert!(sc["meta"]["messages"][0]["flags"].as_array().unwrap().contains(&json!("\\Flagged")));
    // Date range on the archive: exactly the messages whose INTERNALDATE falls in it.
    let day = |t: i64| {
        let d = t.div_euclid(86_400);
        let (y, m, dd) = civil(d);
        format!("{y:04}-{m:02}-{dd:02}")
    };
    let first = dc::archive_date(100);
    let last = dc::archive_date(199);
    let expected = (1..=dc::ARCHIVE_COUNT)
        .filter(|&i| {
            let d = dc::archive_date(i).div_euclid(86_400);
            d >= first.div_euclid(86_400) && d < last.div_euclid(86_400)
        })
        .count();
    assert_eq!(total(&mut c, json!({"folder": dc::ARCHIVE, "since": day(first), "before": day(last)})), expected as u64);
    let r = c.call("search", json!({"has_attachment": true}));
    let subjects: Vec<Value> = ok(&r)["untrusted"]["messages"].as_array().unwrap().iter().map(|m| m["subject"].clone()).collect();
    assert!(subjects.contains(&json!(dc::ATTACHMENTS_SUBJECT)), "{subjects:?}");
    assert!(!subjects.contains(&json!(dc::PLAIN_SUBJECT)));
}

fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[test]
fn progress_notifications_for_a_search() {
    let e = env(&Seed::Standard, "readonly");
    let mut c = e.client(MODERN);
    let p = c.params(json!({"name": "search", "arguments": {"folder": dc::ARCHIVE}, "_meta": {"progressToken": "tok-1"}}));
    let r = c.request("tools/call", p);
    assert_eq!(r["result"]["isError"], json!(false));
    let progress: Vec<&Value> = c.notifications.iter().filter(|n| n["method"] == json!("notifications/progress")).collect();
    assert_eq!(progress.len(), 3, "{progress:?}");
    assert!(progress.iter().all(|n| n["params"]["progressToken"] == json!("tok-1")));
    let values: Vec<f64> = progress.iter().map(|n| n["params"]["progress"].as_f64().unwrap()).collect();
    assert_eq!(values, vec![0.0, 1.0, 2.0]);
}

#[test]
fn fetch_message_decodes_headers_and_never_sets_seen() {
    let e = env(&Seed::Standard, "readonly");
    let msg = dc::standard_message("utf8-b");
    assert!(!msg.seen());
    let mut c = e.client(MODERN);
    let id = id_by_subject(&mut c, "INBOX", "München");
    let r = c.call("fetch_message", json!({"id": id}));
    let sc = ok(&r);
    assert_eq!(sc["untrusted"]["subject"], json!(dc::UTF8_B_SUBJECT));
    assert_eq!(sc["untrusted"]["from"][0]["name"], json!(dc::UTF8_B_FROM_NAME));
    assert_eq!(sc["untrusted"]["from"][0]["email"], json!("juergen@example.de"));
    assert_eq!(sc["untrusted"]["message_id"], json!(msg.message_id));
    assert!(!sc["meta"]["flags"].as_array().unwrap().contains(&json!("\\Seen")));
    // Twice, then look with a separate IMAP client: still unseen.
    ok(&c.call("fetch_message", json!({"id": id})));
    ok(&c.call("list_attachments", json!({"id": id})));
    ok(&c.call("fetch_thread", json!({"id": id})));
    let mut imap = e.dc.imap();
    imap.ok("EXAMINE INBOX");
    let lines = imap.ok("SEARCH UNSEEN");
    let unseen: Vec<&str> = lines.iter().find(|l| l.starts_with("* SEARCH")).unwrap().split_whitespace().skip(2).collect();
    assert_eq!(unseen.len(), dc::INBOX_UNSEEN_COUNT, "{lines:?}");
    let r = c.call("search", json!({"seen": false}));
    assert_eq!(ok(&r)["meta"]["total"], json!(dc::INBOX_UNSEEN_COUNT));
}

#[test]
fn fetch_message_bodies_and_attachments() {
    let e = env(&Seed::Standard, "readonly");
    let mut c = e.client("2025-06-18");
    let id = id_by_subject(&mut c, "INBOX", dc::QP_BODY_SUBJECT);
    let r = c.call("fetch_message", json!({"id": id}));
    assert!(ok(&r)["untrusted"]["body"].as_str().unwrap().contains(dc::QP_BODY_SNIPPET));
    let id = id_by_subject(&mut c, "INBOX", dc::BASE64_BODY_SUBJECT);
    let r = c.call("fetch_message", json!({"id": id}));
    assert!(ok(&r)["untrusted"]["body"].as_str().unwrap().contains(dc::BASE64_BODY_SNIPPET));

    let id = id_by_subject(&mut c, "INBOX", dc::ATTACHMENTS_SUBJECT);
    let r = c.call("list_attachments", json!({"id": id}));
    let sc = ok(&r);
    let names: Vec<Value> = sc["untrusted"]["attachments"].as_array().unwrap().iter().map(|a| a["filename"].clone()).collect();
    assert_eq!(names, vec![json!(dc::ATTACHMENT_PDF_NAME), json!(dc::ATTACHMENT_TXT_NAME)]);
    let parts: Vec<Value> = sc["meta"]["attachments"].as_array().unwrap().iter().map(|a| a["part"].clone()).collect();
    assert_eq!(parts, vec![json!("2"), json!("3")]);
    assert_eq!(sc["meta"]["attachments"][1]["size"], json!(dc::ATTACHMENT_TXT_CONTENT.len()));
    let r = c.call("fetch_message", json!({"id": id, "max_body_chars": 100}));
    assert_eq!(ok(&r)["untrusted"]["attachments"].as_array().unwrap().len(), 2);

    // HTML-only: scripts and styles never reach the text.
    let id = id_by_subject(&mut c, "INBOX", dc::HTML_ONLY_SUBJECT);
    let r = c.call("fetch_message", json!({"id": id}));
    let sc = ok(&r);
    assert_eq!(sc["meta"]["text_source"], json!("text/html"));
    let body = sc["untrusted"]["body"].as_str().unwrap();
    assert!(!body.contains("<script") && !body.contains("function") && !body.contains('{'), "{body}");
}

#[test]
fn fetch_thread_walks_references() {
    let e = env(&Seed::Standard, "readonly");
    let mut c = e.client(MODERN);
    // Start from the middle of the thread.
    let r = c.call("search", json!({"header": {"name": "Message-ID", "value": dc::THREAD_IDS[2]}}));
    let id = ok(&r)["meta"]["messages"][0]["id"].as_str().unwrap().to_string();
    let p = c.params(json!({"name": "fetch_thread", "arguments": {"id": id}, "_meta": {"progressToken": 9}}));
    let r = c.request("tools/call", p);
    let sc = ok(&r["result"]);
    assert_eq!(sc["meta"]["count"], json!(6));
    assert_eq!(sc["meta"]["complete"], json!(true));
    assert_eq!(sc["meta"]["method"], json!("server-thread"), "Dovecot has THREAD=REFERENCES");
    let ids: BTreeSet<String> =
        sc["untrusted"]["messages"].as_array().unwrap().iter().map(|m| m["message_id"].as_str().unwrap().to_string()).collect();
    let want: BTreeSet<String> = dc::THREAD_IDS.iter().chain([&dc::THREAD_LOOSE_REPLY_ID]).map(|s| s.to_string()).collect();
    assert_eq!(ids, want);
    assert_eq!(sc["untrusted"]["messages"][0]["message_id"], json!(dc::THREAD_ROOT_ID));
    assert!(c.notifications.iter().any(|n| n["method"] == json!("notifications/progress") && n["params"]["progressToken"] == json!(9)));
    // A message and its one reply.
    let r = c.call("search", json!({"header": {"name": "Message-ID", "value": "<plain@example.test>"}}));
    let id = ok(&r)["meta"]["messages"][0]["id"].as_str().unwrap().to_string();
    let r = c.call("fetch_thread", json!({"id": id}));
    assert_eq!(ok(&r)["meta"]["count"], json!(2));
    // A thread of one.
    let id = id_by_subject(&mut c, "INBOX", dc::BASE64_BODY_SUBJECT);
    let r = c.call("fetch_thread", json!({"id": id}));
    assert_eq!(ok(&r)["meta"]["count"], json!(1));
}

#[test]
fn stale_and_missing_ids() {
    let e = env(&Seed::Standard, "readonly");
    let mut c = e.client(MODERN);
    let id = id_by_subject(&mut c, "INBOX", dc::BASE64_BODY_SUBJECT);
    let parts: Vec<&str> = id.split('.').collect();
    let stale = format!("{}.{}.{}.{}", parts[0], parts[1], parts[2].parse::<u32>().unwrap() + 1, parts[3]);
    for tool in ["fetch_message", "list_attachments", "fetch_thread"] {
        let r = c.call(tool, json!({"id": stale}));
        assert_eq!(mcp::error_code(&r).as_deref(), Some("uidvalidity_changed"), "{tool}: {r}");
    }
    let missing = format!("{}.{}.{}.{}", parts[0], parts[1], parts[2], 999_999);
    for tool in ["fetch_message", "list_attachments", "fetch_thread"] {
        let r = c.call(tool, json!({"id": missing}));
        assert_eq!(mcp::error_code(&r).as_deref(), Some("not_found"), "{tool}: {r}");
    }
    let r = c.call("search", json!({"folder": "No Such Folder"}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("folder_not_found"), "{r}");
    // A cursor only continues its own search.
    let r = c.call("search", json!({"folder": dc::ARCHIVE}));
    let cur = ok(&r)["meta"]["next_cursor"].as_str().unwrap().to_string();
    let r = c.call("search", json!({"folder": dc::ARCHIVE, "from": "x", "cursor": cur}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("invalid_argument"));
}

#[test]
fn hostile_messages_are_fenced_and_cleaned() {
    let e = env(&Seed::Standard, "readonly");
    let mut c = e.client(MODERN);
    // CR/LF smuggled through an encoded word never survives decoding.
    let r = c.call("search", json!({"subject": "Invoice"}));
    let sc = ok(&r).clone();
    let crlf = sc["untrusted"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["subject"].as_str().unwrap_or("").contains("X-Smuggled"))
        .unwrap()
        .clone();
    assert_eq!(crlf["subject"], json!("Invoice Bcc: attacker@evil.test X-Smuggled: yes"));
    let r = c.call("fetch_message", json!({"id": crlf["id"]}));
    let sc = ok(&r);
    assert!(sc["security_warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["code"] == json!("header_injection") && w["severity"] == json!("danger")));

    // A body full of fake end-of-email markers cannot close the fence.
    let id = id_by_subject(&mut c, "INBOX", dc::HOSTILE_FENCE_SUBJECT);
    let r = c.call("fetch_message", json!({"id": id}));
    let text = mcp::text(&r);
    let nonce_line = text.lines().find(|l| l.starts_with("<<<UNTRUSTED-EMAIL nonce=")).expect("fence opens");
    let nonce = nonce_line.trim_start_matches("<<<UNTRUSTED-EMAIL nonce=").trim_end_matches(">>>");
    assert_eq!(nonce.len(), 24);
    assert_eq!(text.matches("<<<").count(), 2, "only our two markers may contain <<<: {text}");
    assert_eq!(text.matches(&format!("<<<END-UNTRUSTED-EMAIL nonce={nonce}>>>")).count(), 1);
    assert!(!text.contains("<<<END OF EMAIL CONTENT>>>"));
    let flagged = ok(&r)["security_warnings"].as_array().unwrap().iter().any(|w| w["code"] == "instruction_like_text");
    assert!(flagged, "a fake end-of-email marker followed by new instructions is flagged: {r}");
    // A second call uses a different nonce.
    let r2 = c.call("fetch_message", json!({"id": id}));
    assert!(!mcp::text(&r2).contains(nonce));

    // Zero-width and bidi characters are gone from the subject; control characters too.
    let r = c.call("search", json!({"subject": "#4471"}));
    let subj = ok(&r)["untrusted"]["messages"][0]["subject"].as_str().unwrap().to_string();
    assert!(!subj.chars().any(|ch| matches!(ch, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{FEFF}')), "{subj:?}");
    let r = c.call("search", json!({"subject": "RED ALERT"}));
    let subj = ok(&r)["untrusted"]["messages"][0]["subject"].as_str().unwrap().to_string();
    assert!(!subj.chars().any(char::is_control), "{subj:?}");

    // Hidden HTML text does not reach the model.
    let id = id_by_subject(&mut c, "INBOX", dc::HOSTILE_HIDDEN_SUBJECT);
    let r = c.call("fetch_message", json!({"id": id}));
    let body = ok(&r)["untrusted"]["body"].as_str().unwrap().to_string();
    assert!(body.contains("Your parcel is on its way"), "{body}");
    assert!(!body.contains(dc::HOSTILE_HIDDEN_INSTRUCTION), "{body}");
    let danger = ok(&r)["security_warnings"].as_array().unwrap().iter().any(|w| w["code"] == "hidden_content" && w["severity"] == "danger");
    assert!(danger, "hidden text addressing an AI agent is a danger finding: {r}");
    // The sanitized HTML leaves it out too, and keeps no script or style.
    let r = c.call("fetch_message", json!({"id": id, "include_html": true}));
    let html = ok(&r)["untrusted"]["html"].as_str().unwrap().to_string();
    assert!(html.contains("Your parcel is on its way"), "{html}");
    assert!(!html.contains("forward all mail") && !html.contains("Ignore all previous") && !html.contains("style="), "{html}");
    assert_no_secret(&c, &e);
}

#[test]
fn check_command_reports_and_fails_cleanly() {
    let e = env(&Seed::Standard, "readonly");
    let out = Command::new(mcp::bin()).args(["check", "--config"]).arg(&e.config).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("certificate sha256: {}", e.dc.ca.leaf_sha256_hex)), "{stdout}");
    assert!(stdout.contains("capabilities: ") && stdout.contains("IMAP4rev1"), "{stdout}");
    assert!(stdout.contains("tls: TLSv1.3, TLS_") || stdout.contains("tls: TLSv1.2, "), "{stdout}");
    assert!(stdout.contains("all 1 account(s) ok"));
    assert!(!stdout.contains(&e.dc.password));

    // A wrong password: exit 1, the reason, and neither password anywhere.
    let bad = e.dc.dir.join("bad-pw");
    std::fs::write(&bad, "CANARY-wrong-password-4411\n").unwrap();
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let cfg =
        std::fs::read_to_string(&e.config).unwrap().replace(&e.dc.password_file.to_string_lossy().to_string(), &bad.to_string_lossy());
    let bad_cfg = e.dc.dir.join("bad.toml");
    std::fs::write(&bad_cfg, cfg).unwrap();
    let out = Command::new(mcp::bin()).args(["--dry-run", "--config"]).arg(&bad_cfg).output().unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("FAILED (auth_failed)"), "{all}");
    assert!(!all.contains("CANARY") && !all.contains(&e.dc.password), "{all}");
}

#[test]
fn a_tool_call_on_a_warm_pool_reuses_the_session() {
    let e = env(&Seed::Standard, "readonly");
    let mut c = e.client(MODERN);
    for _ in 0..5 {
        ok(&c.call("search", json!({})));
    }
    let logins = std::fs::read_to_string(&e.dc.log_path).unwrap().matches("Login: user=<alice@example.test>").count();
    assert_eq!(logins, 1, "sequential calls must share one session:\n{}", e.dc.log_tail());
}

#[test]
#[ignore = "slow: seeds 100,000 messages; run with make test-large"]
fn large_folder_search_and_paging() {
    let n: usize = std::env::var("MAILMOAT_LARGE").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let e = env(&Seed::Large(n), "readonly");
    let mut c = e.client(MODERN);
    let t = std::time::Instant::now();
    let r =
        c.request_timeout("tools/call", c.params(json!({"name": "search", "arguments": {"folder": dc::LARGE}})), Duration::from_secs(300));
    let sc = ok(&r["result"]).clone();
    eprintln!("first unfiltered search of {n}: {:?}", t.elapsed());
    assert_eq!(sc["meta"]["total"], json!(n));
    assert_eq!(sc["untrusted"]["messages"][0]["subject"], json!(dc::large_subject(n))); // numbered from 1
    let mut cursor = sc["meta"]["next_cursor"].as_str().unwrap().to_string();
    for page in 1..5 {
        let t = std::time::Instant::now();
        let r = c.call("search", json!({"folder": dc::LARGE, "cursor": cursor}));
        let sc = ok(&r).clone();
        eprintln!("page {page}: {:?}", t.elapsed());
        assert_eq!(sc["untrusted"]["messages"][0]["subject"], json!(dc::large_subject(n - 20 * page)));
        cursor = sc["meta"]["next_cursor"].as_str().unwrap().to_string();
    }
    let t = std::time::Instant::now();
    let r = c.call("search", json!({"folder": dc::LARGE, "subject": dc::large_subject(n / 2)}));
    assert_eq!(ok(&r)["meta"]["total"], json!(1));
    eprintln!("search by subject: {:?}", t.elapsed());
}

#[test]
fn every_call_is_audited_in_an_intact_chain_without_subjects_or_secrets() {
    let e = env(&Seed::Standard, "readonly");
    let log = e.dc.dir.join("audit.jsonl");
    {
        let mut c = e.client(MODERN);
        let id = id_by_subject(&mut c, "INBOX", dc::BASE64_BODY_SUBJECT);
        ok(&c.call("fetch_message", json!({"id": id})));
        let r = c.call("search", json!({"subject": "CANARY-subject-in-args"}));
        ok(&r);
        c.close_stdin();
        c.wait_exit(Duration::from_secs(5)).expect("exits");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let events: Vec<&str> = records.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(events.first(), Some(&"startup"));
    assert_eq!(events.last(), Some(&"shutdown"));
    assert_eq!(events.iter().filter(|e| **e == "tool_call").count(), 3, "{events:?}");
    assert_eq!(events.iter().filter(|e| **e == "tool_result").count(), 3, "{events:?}");
    let fetch = records.iter().find(|r| r["event"] == "tool_call" && r["tool"] == "fetch_message").unwrap();
    assert_eq!(fetch["account"], json!("test"));
    assert_eq!(fetch["client"]["name"], json!("mailmoat-tests"));
    assert!(!text.contains("CANARY-subject-in-args"), "subjects are only stored as a keyed digest");
    assert!(!text.contains(&e.dc.password));
    assert!(!text.contains(dc::BASE64_BODY_SNIPPET), "bodies never reach the audit log");
    let out = Command::new(mcp::bin()).args(["audit", "verify"]).arg(&log).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains(&format!("{} records", records.len())), "{report}");
    // Editing one record breaks the chain, and verify names the line.
    let tampered = text.replacen("\"fetch_message\"", "\"fetch_messagX\"", 1);
    std::fs::write(&log, tampered).unwrap();
    let out = Command::new(mcp::bin()).args(["audit", "verify"]).arg(&log).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn fetch_thread_walks_references_when_the_server_cannot_thread() {
    let dc = Dovecot::start_with(
        &Seed::Standard,
        "imap_capability = IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE SORT UIDPLUS MOVE SPECIAL-USE NAMESPACE",
    );
    let config = dc.dir.join("mailmoat.toml");
    dc.write_mailmoat_config(&config, "readonly");
    let e = Env { dc, config };
    let mut c = e.client(MODERN);
    let r = c.call("search", json!({"header": {"name": "Message-ID", "value": dc::THREAD_IDS[3]}}));
    let id = ok(&r)["meta"]["messages"][0]["id"].as_str().unwrap().to_string();
    let r = c.call("fetch_thread", json!({"id": id}));
    let sc = ok(&r);
    assert_eq!(sc["meta"]["method"], json!("references-walk"));
    assert_eq!(sc["meta"]["count"], json!(6));
    let r = c.call("fetch_thread", json!({"id": id, "max_messages": 3}));
    assert_eq!(ok(&r)["meta"]["count"], json!(3));
    assert_eq!(ok(&r)["meta"]["complete"], json!(false));
}

#[test]
fn sixty_four_concurrent_calls_are_all_answered_with_bounded_threads() {
    let e = env(&Seed::Standard, "readonly");
    let mut c = e.client(MODERN);
    let meta = c.modern_meta();
    for id in 1000..1064u64 {
        let args = match id % 4 {
            0 => json!({"folder": dc::ARCHIVE, "limit": 50}),
            1 => json!({"folder": dc::ARCHIVE, "from": dc::ARCHIVE_KNOWN_SENDER}),
            2 => json!({"subject": "Quarterly"}),
            _ => json!({}),
        };
        c.send(
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"_meta": meta, "name": "search", "arguments": args}}),
        );
    }
    // Cancel eight of them while the rest run.
    for id in 1040..1048u64 {
        c.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"_meta": meta, "requestId": id}}));
    }
    let pid = c.child.id();
    let threads = || -> usize {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("Threads:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let mut peak = threads();
    let mut answered = std::collections::BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while answered.len() < 56 && std::time::Instant::now() < deadline {
        peak = peak.max(threads());
        let v = c.recv(Duration::from_secs(60), Some("tools/call"));
        if let Some(id) = v["id"].as_u64() {
            assert!(answered.insert(id, v.clone()).is_none(), "two answers for {id}");
        }
    }
    for id in 1000..1064u64 {
        if (1040..1048).contains(&id) {
            continue;
        }
        let v = answered.get(&id).unwrap_or_else(|| panic!("no answer for {id}"));
        assert_eq!(v["result"]["isError"], json!(false), "{v}");
    }
    // At most 16 request threads (limits.max_in_flight) plus main, reader-side helpers and writer.
    assert!((2..=16 + 6).contains(&peak), "peak of {peak} threads");
    // Cancelled calls may have finished before the cancel arrived, but none is answered twice
    // and nothing else arrives.
    for v in c.drain(Duration::from_millis(500)) {
        let id = v["id"].as_u64().unwrap_or(0);
        assert!((1040..1048).contains(&id) && !answered.contains_key(&id), "unexpected {v}");
    }
}
