//! Acting on mail through MCP against a real Dovecot: flags, labels, moves, copies, deletes,
//! expunges, folders, drafts, attachments, confirmation flows and the posture matrix. After every
//! action, nothing outside the requested messages may have changed.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::dovecot::{self as dc, Dovecot, Seed};
use common::mcp::{self, Client, MODERN};
use serde_json::{json, Value};

struct Env {
    dc: Dovecot,
    config: PathBuf,
}

fn env(posture: &str, extra: &str) -> Env {
    let dc = Dovecot::start(&Seed::Standard);
    let config = dc.dir.join("mailmoat.toml");
    dc.write_mailmoat_config(&config, posture);
    if !extra.is_empty() {
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("{extra}\n{text}")).unwrap();
    }
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

fn code(result: &Value) -> String {
    mcp::error_code(result).unwrap_or_else(|| panic!("expected an error: {result}"))
}

/// uid → flags of every message in a folder, as mailmoat's search reports them.
fn flags_of(c: &mut Client, folder: &str) -> BTreeMap<u64, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = json!({"folder": folder, "limit": 100});
        if let Some(cur) = &cursor {
            args["cursor"] = json!(cur);
        }
        let r = c.call("search", args);
        let sc = ok(&r).clone();
        for m in sc["meta"]["messages"].as_array().unwrap() {
            let flags = m["flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect();
            out.insert(m["uid"].as_u64().unwrap(), flags);
        }
        match sc["meta"]["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => return out,
        }
    }
}

fn ids(c: &mut Client, folder: &str, subject: &str) -> Vec<(u64, String)> {
    let r = c.call("search", json!({"folder": folder, "subject": subject, "limit": 100}));
    ok(&r)["meta"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["uid"].as_u64().unwrap(), m["id"].as_str().unwrap().to_string()))
        .collect()
}

fn count(c: &mut Client, folder: &str) -> u64 {
    let r = c.call("search", json!({"folder": folder, "limit": 1}));
    ok(&r)["meta"]["total"].as_u64().unwrap()
}

#[test]
fn update_flags_touches_only_the_named_messages() {
    let e = env("draft-safe", "");
    let mut c = e.client(MODERN);
    let before = flags_of(&mut c, "INBOX");
    let targets = ids(&mut c, "INBOX", "Quarterly planning");
    let chosen: Vec<&(u64, String)> = targets.iter().take(2).collect();
    let r = c.call(
        "update_flags",
        json!({"ids": chosen.iter().map(|t| &t.1).collect::<Vec<_>>(), "add": ["\\Flagged", "$Important"], "remove": ["\\Seen"]}),
    );
    let sc = ok(&r);
    assert_eq!(sc["meta"]["updated"].as_array().unwrap().len(), 2);
    let after = flags_of(&mut c, "INBOX");
    for (uid, flags) in &before {
        let now = &after[uid];
        if chosen.iter().any(|t| t.0 == *uid) {
            assert!(now.contains(&"\\Flagged".to_string()) && now.contains(&"$Important".to_string()), "{uid}: {now:?}");
            assert!(!now.contains(&"\\Seen".to_string()));
        } else {
            assert_eq!(now, flags, "message {uid} changed");
        }
    }
    for (bad, want) in [
        ("\\Deleted", "cannot be changed"),
        ("\\Draft", "cannot be changed"),
        ("$PendingReview", "cannot be changed"),
        ("a\r\nb", "control character"),
    ] {
        let r = c.call("update_flags", json!({"ids": [chosen[0].1], "add": [bad]}));
        assert_eq!(code(&r), "invalid_argument");
        assert!(mcp::text(&r).contains(want), "{bad}: {r}");
    }
    // Ids from two folders in one call are refused, naming the odd one out.
    let other = ids(&mut c, dc::ARCHIVE, &dc::archive_subject(7));
    let r = c.call("update_flags", json!({"ids": [chosen[0].1, other[0].1], "add": ["\\Seen"]}));
    assert_eq!(code(&r), "invalid_argument");
    assert!(mcp::text(&r).contains(&other[0].1));
    assert_eq!(flags_of(&mut c, "INBOX"), after);
}

#[test]
fn labels_fall_back_to_keywords_on_dovecot() {
    let e = env("draft-safe", "");
    let mut c = e.client("2025-11-25");
    let t = ids(&mut c, "INBOX", dc::PLAIN_SUBJECT);
    let r = c.call("update_labels", json!({"ids": [t[0].1], "add": ["ProjectX"]}));
    let sc = ok(&r);
    assert_eq!(sc["meta"]["mechanism"], json!("keywords"));
    assert!(sc["meta"]["updated"][0]["labels"].as_array().unwrap().contains(&json!("ProjectX")));
    let r = c.call("search", json!({"keyword": "ProjectX"}));
    assert_eq!(ok(&r)["meta"]["total"], json!(1));
}

#[test]
fn move_copy_delete_and_expunge_exactly_what_was_named() {
    let e = env("destructive", "confirm = \"none\"");
    let mut c = e.client(MODERN);
    let inbox = count(&mut c, "INBOX");
    let dest = count(&mut c, dc::ARCHIVE_2024);
    let targets = ids(&mut c, "INBOX", "Quarterly planning");
    let two: Vec<String> = targets.iter().take(2).map(|t| t.1.clone()).collect();
    let r = c.call("move_messages", json!({"ids": two, "to_folder": dc::ARCHIVE_2024}));
    let sc = ok(&r).clone();
    assert_eq!(sc["meta"]["method"], json!("move"));
    assert_eq!(count(&mut c, "INBOX"), inbox - 2);
    assert_eq!(count(&mut c, dc::ARCHIVE_2024), dest + 2);
    // The new ids read the same messages.
    for m in sc["meta"]["moved"].as_array().unwrap() {
        let r = c.call("fetch_message", json!({"id": m["new_id"]}));
        assert!(ok(&r)["untrusted"]["subject"].as_str().unwrap().contains("Quarterly planning"));
        let r = c.call("fetch_message", json!({"id": m["id"]}));
        assert_eq!(code(&r), "not_found");
    }
    // Copy leaves the source alone.
    let t = ids(&mut c, "INBOX", dc::PLAIN_SUBJECT);
    let r = c.call("copy_messages", json!({"ids": [t[0].1], "to_folder": dc::ENTWUERFE}));
    assert_eq!(ok(&r)["meta"]["method"], json!("copy"));
    assert_eq!(count(&mut c, "INBOX"), inbox - 2);
    assert_eq!(count(&mut c, dc::ENTWUERFE), dc::ENTWUERFE_COUNT as u64 + 1);
    // delete_messages moves to Trash.
    let r = c.call("delete_messages", json!({"ids": [t[0].1]}));
    assert_eq!(ok(&r)["meta"]["to_folder"], json!("Trash"));
    assert_eq!(count(&mut c, "Trash"), 1);
    assert_eq!(count(&mut c, "INBOX"), inbox - 3);

    // Expunge removes exactly one message, even with another message already marked \Deleted.
    let mut imap = e.dc.imap();
    imap.ok("SELECT INBOX");
    imap.ok("UID STORE 2 +FLAGS.SILENT (\\Deleted)");
    imap.ok("LOGOUT");
    let victim = ids(&mut c, "INBOX", dc::BASE64_BODY_SUBJECT);
    let r = c.call("expunge_messages", json!({"ids": [victim[0].1]}));
    assert_eq!(ok(&r)["meta"]["expunged"], json!([victim[0].1]));
    assert_eq!(count(&mut c, "INBOX"), inbox - 4);
    let flags = flags_of(&mut c, "INBOX");
    assert!(flags[&2].contains(&"\\Deleted".to_string()), "uid 2 must still exist: {flags:?}");
}

#[test]
fn folders_with_hostile_names_and_protection() {
    let e = env("destructive", "confirm = \"none\"");
    let mut c = e.client("2025-06-18");
    for name in ["Quote\"d", "Back\\slash", "Lit {3}", "Ünïcødé & Co", "Projects/2025"] {
        let r = c.call("create_folder", json!({"name": name}));
        ok(&r);
        let r = c.call("list_folders", json!({}));
        let names: Vec<Value> = ok(&r)["meta"]["folders"].as_array().unwrap().iter().map(|f| f["name"].clone()).collect();
        assert!(names.contains(&json!(name)), "{name}: {names:?}");
        let r = c.call("search", json!({"folder": name}));
        assert_eq!(ok(&r)["meta"]["total"], json!(0));
    }
    ok(&c.call("rename_folder", json!({"from": "Lit {3}", "to": "Lit renamed"})));
    ok(&c.call("delete_folder", json!({"name": "Lit renamed"})));
    for protected in ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"] {
        assert_eq!(code(&c.call("rename_folder", json!({"from": protected, "to": "X"}))), "protected_folder", "{protected}");
        assert_eq!(code(&c.call("delete_folder", json!({"name": protected}))), "protected_folder", "{protected}");
    }
    assert_eq!(code(&c.call("create_folder", json!({"name": "a\r\nb"}))), "invalid_argument");
    assert_eq!(code(&c.call("create_folder", json!({"name": "nul\u{0}"}))), "invalid_argument");
}

/// The full matrix: which tools each posture lists, and that calls outside it are refused.
#[test]
fn posture_matrix() {
    let matrix: [(&str, &[&str]); 4] = [
        (
            "readonly",
            &[
                "list_accounts",
                "list_folders",
                "search",
                "fetch_message",
                "fetch_thread",
                "list_attachments",
                "read_attachment",
                "download_attachment",
            ],
        ),
        ("draft-safe", &["update_flags", "update_labels", "move_messages", "copy_messages", "create_draft"]),
        ("full", &["send_email", "send_draft", "delete_messages", "create_folder", "rename_folder", "fetch_raw"]),
        ("destructive", &["expunge_messages", "delete_folder"]),
    ];
    let all: Vec<&str> = matrix.iter().flat_map(|(_, t)| t.iter().copied()).collect();
    let e = env("readonly", "");
    for (i, (posture, _)) in matrix.iter().enumerate() {
        let text = std::fs::read_to_string(&e.config).unwrap();
        let text = text
            .lines()
            .map(|l| if l.starts_with("posture = ") { format!("posture = \"{posture}\"") } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n");
        let cfg = e.dc.dir.join(format!("matrix-{posture}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let mut c = Client::spawn(&cfg, MODERN, &[]);
        let listed: Vec<String> = c.list_tools().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
        let allowed: Vec<&str> = matrix[..=i].iter().flat_map(|(_, t)| t.iter().copied()).collect();
        let mut want: Vec<&str> = allowed.clone();
        want.sort();
        let mut got: Vec<&str> = listed.iter().map(String::as_str).collect();
        got.sort();
        assert_eq!(got, want, "posture {posture}");
        for tool in &all {
            if !allowed.contains(tool) {
                let r = c.call(tool, json!({}));
                assert_eq!(code(&r), "posture_denied", "{posture}: {tool}: {r}");
            }
        }
    }
}

#[test]
fn drafts_are_marked_for_review_and_threaded() {
    let e = env("draft-safe", "");
    let ws = e.dc.dir.join("workspace");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("notes.txt"), "attached notes\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", ws.join("link.txt")).unwrap();
    let mut c = e.client(MODERN);
    let r = c.call("search", json!({"header": {"name": "Message-ID", "value": "<plain@example.test>"}}));
    let orig_id = ok(&r)["meta"]["messages"][0]["id"].as_str().unwrap().to_string();
    let r = c.call(
        "create_draft",
        json!({"to": ["Bob Builder <bob@example.test>"], "body_text": "Friday works for me.", "reply_to_id": orig_id, "attachments": [{"path": "notes.txt"}]}),
    );
    let sc = ok(&r).clone();
    let draft_id = sc["meta"]["id"].as_str().expect("APPENDUID gives the draft's id").to_string();
    let r = c.call("fetch_message", json!({"id": draft_id}));
    let d = ok(&r).clone();
    assert!(d["meta"]["flags"].as_array().unwrap().contains(&json!("\\Draft")));
    assert!(d["meta"]["flags"].as_array().unwrap().contains(&json!("$PendingReview")));
    assert_eq!(d["untrusted"]["subject"], json!("Re: Lunch on Friday?"));
    assert_eq!(d["untrusted"]["in_reply_to"], json!(["<plain@example.test>"]));
    assert!(d["untrusted"]["body"].as_str().unwrap().starts_with("Friday works for me."));
    assert!(d["untrusted"]["body"].as_str().unwrap().contains("wrote:"));
    assert_eq!(d["untrusted"]["attachments"][0]["filename"], json!("notes.txt"));
    assert_eq!(d["untrusted"]["from"][0]["email"], json!(dc::USER));
    // The review mark cannot be cleared by the agent.
    let r = c.call("update_flags", json!({"ids": [draft_id], "remove": ["$PendingReview"]}));
    assert_eq!(code(&r), "invalid_argument");
    // Workspace confinement.
    for (path, want) in [("../mailmoat.toml", "without `..`"), ("/etc/passwd", "relative"), ("link.txt", "symbolic link")] {
        let r = c.call("create_draft", json!({"to": ["bob@example.test"], "body_text": "x", "attachments": [{"path": path}]}));
        assert_eq!(code(&r), "invalid_argument", "{path}");
        assert!(mcp::text(&r).contains(want), "{path}: {r}");
    }
    // Forwards: attached as message/rfc822 (default) or quoted.
    let r = c.call("create_draft", json!({"to": ["carol@example.test"], "body_text": "FYI", "forward_id": orig_id}));
    let fwd = ok(&r)["meta"]["id"].as_str().unwrap().to_string();
    let r = c.call("fetch_message", json!({"id": fwd}));
    let d = ok(&r);
    assert_eq!(d["untrusted"]["subject"], json!("Fwd: Lunch on Friday?"));
    assert_eq!(d["untrusted"]["attachments"][0]["content_type"], json!("message/rfc822"));
    let r =
        c.call("create_draft", json!({"to": ["carol@example.test"], "body_text": "FYI", "forward_id": orig_id, "forward_mode": "quote"}));
    let fwd = ok(&r)["meta"]["id"].as_str().unwrap().to_string();
    let r = c.call("fetch_message", json!({"id": fwd}));
    let body = ok(&r)["untrusted"]["body"].as_str().unwrap().to_string();
    assert!(body.starts_with("FYI") && body.contains("Forwarded message") && body.contains("From: bob@example.test"), "{body}");
    // Header injection through any field is impossible.
    for (field, v) in [("subject", json!("hi\r\nBcc: evil@example.test")), ("to", json!(["a@example.test\r\nBcc: evil@example.test"]))] {
        let mut args = json!({"to": ["bob@example.test"], "body_text": "x"});
        args[field] = v;
        assert_eq!(code(&c.call("create_draft", args)), "invalid_argument", "{field}");
    }
}

#[test]
fn attachments_download_read_and_raw() {
    let e = env("full", "");
    let mut c = e.client(MODERN);
    let t = ids(&mut c, "INBOX", dc::ATTACHMENTS_SUBJECT);
    let r = c.call("download_attachment", json!({"id": t[0].1, "part": "3"}));
    let sc = ok(&r).clone();
    let path = PathBuf::from(sc["meta"]["path"].as_str().unwrap());
    assert!(path.starts_with(e.dc.dir.join("workspace")));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), dc::ATTACHMENT_TXT_CONTENT);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(sc["meta"]["size"], json!(dc::ATTACHMENT_TXT_CONTENT.len()));
    // Twice is fine (same content), and read_attachment extracts the text.
    ok(&c.call("download_attachment", json!({"id": t[0].1, "part": "3"})));
    let r = c.call("read_attachment", json!({"id": t[0].1, "part": "3"}));
    assert_eq!(ok(&r)["untrusted"]["text"].as_str().unwrap().trim_end(), dc::ATTACHMENT_TXT_CONTENT.trim_end());
    for bad in ["0x", "1..2", "", "1.a", "2\r\n"] {
        assert_eq!(code(&c.call("read_attachment", json!({"id": t[0].1, "part": bad}))), "invalid_argument", "{bad}");
    }
    let r = c.call("fetch_raw", json!({"id": t[0].1, "max_bytes": 100}));
    let sc = ok(&r);
    assert_eq!(sc["meta"]["returned"], json!(100));
    assert_eq!(sc["meta"]["truncated"], json!(true));
    assert_eq!(sc["meta"]["sanitized"], json!(false));
}

fn expunge_args(c: &mut Client) -> Value {
    let t = ids(c, "INBOX", dc::BASE64_BODY_SUBJECT);
    json!({"ids": [t[0].1]})
}

#[test]
fn confirmation_by_token() {
    let e = env("destructive", "confirm = \"token\"");
    let mut c = e.client("2025-11-25");
    let args = expunge_args(&mut c);
    let before = count(&mut c, "INBOX");
    let r = c.call("expunge_messages", args.clone());
    assert_eq!(code(&r), "confirmation_required");
    let token = r["structuredContent"]["error"]["confirmation_token"].as_str().unwrap().to_string();
    assert_eq!(count(&mut c, "INBOX"), before, "nothing happens before confirmation");
    // A token for other arguments is refused.
    let other = json!({"ids": [ids(&mut c, "INBOX", dc::PLAIN_SUBJECT)[0].1], "confirmation_token": token});
    assert_eq!(code(&c.call("expunge_messages", other)), "confirmation_invalid");
    let mut with = args.clone();
    with["confirmation_token"] = json!(token);
    ok(&c.call("expunge_messages", with.clone()));
    assert_eq!(count(&mut c, "INBOX"), before - 1);
    // Replay is refused.
    assert_eq!(code(&c.call("expunge_messages", with)), "confirmation_invalid");
}

#[test]
fn confirmation_by_modern_input_required() {
    let e = env("destructive", "");
    let mut c = e.client(MODERN);
    let args = expunge_args(&mut c);
    let before = count(&mut c, "INBOX");
    let mut meta = c.modern_meta();
    meta["io.modelcontextprotocol/clientCapabilities"] = json!({"elicitation": {"form": {}}});
    let call = |c: &mut Client, extra: Value| {
        let mut p = json!({"_meta": meta.clone(), "name": "expunge_messages", "arguments": args.clone()});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        c.request("tools/call", p)["result"].clone()
    };
    let r = call(&mut c, json!({}));
    assert_eq!(r["resultType"], json!("input_required"), "{r}");
    let state = r["requestState"].as_str().unwrap().to_string();
    assert_eq!(r["inputRequests"]["confirm"]["method"], json!("elicitation/create"));
    assert!(r["inputRequests"]["confirm"]["params"]["message"].as_str().unwrap().contains("permanently delete 1 message(s) from INBOX"));
    assert_eq!(count(&mut c, "INBOX"), before);
    // Tampered state: refused.
    let mut bad = state.clone();
    bad.replace_range(bad.len() - 2.., "00");
    let r = call(&mut c, json!({"requestState": bad, "inputResponses": {"confirm": {"action": "accept", "content": {"confirm": true}}}}));
    assert_eq!(r["structuredContent"]["error"]["code"], json!("confirmation_invalid"), "{r}");
    // Declined: refused, nothing happens.
    let r = call(&mut c, json!({"requestState": state, "inputResponses": {"confirm": {"action": "decline"}}}));
    assert_eq!(r["structuredContent"]["error"]["code"], json!("confirmation_refused"));
    assert_eq!(count(&mut c, "INBOX"), before);
    // A fresh state, accepted.
    let r = call(&mut c, json!({}));
    let state = r["requestState"].as_str().unwrap().to_string();
    let r = call(&mut c, json!({"requestState": state, "inputResponses": {"confirm": {"action": "accept", "content": {"confirm": true}}}}));
    assert_eq!(r["isError"], json!(false), "{r}");
    assert_eq!(count(&mut c, "INBOX"), before - 1);
}

#[test]
fn confirmation_by_legacy_elicitation() {
    let e = env("destructive", "confirm = \"elicit\"");
    // A client without the capability cannot confirm at all.
    let mut plain = e.client("2025-06-18");
    let args = expunge_args(&mut plain);
    assert_eq!(code(&plain.call("expunge_messages", args.clone())), "confirmation_unavailable");

    let mut c = Client::spawn(&e.config, "2025-06-18", &[]);
    c.initialize_with(json!({"elicitation": {}}));
    let before = count(&mut c, "INBOX");
    c.elicitation_answer = Some(json!({"action": "decline"}));
    assert_eq!(code(&c.call("expunge_messages", args.clone())), "confirmation_refused");
    assert_eq!(c.elicitations.len(), 1);
    assert!(c.elicitations[0]["params"]["message"].as_str().unwrap().contains("permanently delete"));
    assert_eq!(count(&mut c, "INBOX"), before);
    c.elicitation_answer = Some(json!({"action": "accept", "content": {"confirm": true}}));
    ok(&c.call("expunge_messages", args));
    assert_eq!(count(&mut c, "INBOX"), before - 1);
}
