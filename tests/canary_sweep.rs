//! Canary sweep: every path that touches a secret, at the most verbose log level
//! (`MAILMOAT_LOG=debug`), and the secrets appear nowhere: stdout (every MCP message), stderr,
//! the audit log, the auth-block file, tool results, error messages, `check`, `--print-config`.
//!
//! Paths: good login (IMAP and SMTP) and every tool; a refused password; a certificate that does
//! not verify; a server that never greets (timeout); config errors with secrets in the wrong
//! place; `check` for each; `check --print-config` with secret-looking helper arguments.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::dovecot::{self as dc, Dovecot, Seed, TestCa};
use common::mcp::{self, Client, MODERN};
use common::smtpd::{SmtpMode, Smtpd};
use serde_json::{json, Map, Value};

const DEBUG: &[(&str, &str)] = &[("MAILMOAT_LOG", "debug")];

/// Everything a run left behind, for the canary check.
#[derive(Default)]
struct Seen {
    text: String,
}

impl Seen {
    fn client(&mut self, c: &Client) {
        self.text.push_str(&serde_json::to_string(&c.transcript).unwrap());
        self.text.push_str(&serde_json::to_string(&c.notifications).unwrap());
        self.text.push_str(&c.stderr.lock().unwrap());
    }

    fn command(&mut self, args: &[&str], config: &Path) -> (bool, String) {
        let out = Command::new(mcp::bin()).args(args).arg("--config").arg(config).envs(DEBUG.iter().copied()).output().unwrap();
        let all = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        self.text.push_str(&all);
        (out.status.success(), all)
    }

    /// Every file under `dir` whose name starts with `audit` or `auth-blocks`.
    fn state_files(&mut self, dir: &Path) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("audit") || name.starts_with("auth-blocks") {
                self.text.push_str(&String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()));
            }
        }
    }

    fn assert_clean(&self, canaries: &[&str]) {
        for c in canaries {
            assert!(c.len() >= 8, "weak canary {c}");
            assert!(!self.text.contains(c), "canary {c} leaked:\n{}", excerpt(&self.text, c));
        }
    }
}

fn excerpt(text: &str, needle: &str) -> String {
    let at = text.find(needle).unwrap_or(0);
    let start = text[..at].char_indices().rev().nth(200).map_or(0, |(i, _)| i);
    text[start..].chars().take(400).collect()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Arguments for `tool` from its input schema, filled from `values`; panics when a required
/// argument has no value (so that no tool is silently skipped).
fn arguments(tool: &Value, values: &Map<String, Value>) -> Value {
    let schema = &tool["inputSchema"];
    let mut args = Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for name in props.keys() {
            if let Some(v) = values.get(name) {
                args.insert(name.clone(), v.clone());
            }
        }
    }
    for r in schema["required"].as_array().into_iter().flatten() {
        let r = r.as_str().unwrap();
        assert!(args.contains_key(r), "no value for {}'s required argument {r}", tool["name"]);
    }
    Value::Object(args)
}

/// Destructive tools last, so that the others still find their messages and folders.
fn order(name: &str) -> u8 {
    match name {
        n if n.starts_with("delete") || n.starts_with("expunge") => 2,
        n if n.starts_with("move") => 1,
        _ => 0,
    }
}

#[test]
fn no_secret_leaks_on_any_path_at_debug_level() {
    let dc = Dovecot::start(&Seed::Standard);
    let smtp = Smtpd::start(&dc);
    let mut seen = Seen::default();
    let config = dc.dir.join("mailmoat.toml");
    let base = smtp.mailmoat_config(&dc, "destructive", SmtpMode::Implicit);
    write(&config, &format!("confirm = \"none\"\n{base}"));

    // 1. Good logins, and every tool.
    let mut c = Client::spawn(&config, MODERN, DEBUG);
    let tools = c.list_tools();
    assert_eq!(tools.len(), 21);
    let r = c.call("search", json!({"folder": "INBOX", "subject": dc::ATTACHMENTS_SUBJECT}));
    let id = r["structuredContent"]["meta"]["messages"][0]["id"].as_str().expect("attachment message").to_string();
    let r = c.call("list_attachments", json!({"id": id}));
    let part = r["structuredContent"]["meta"]["attachments"][0]["part"].clone();
    let workspace_file = dc.dir.join("workspace").join("note.txt");
    write(&workspace_file, "attached from the workspace\n");
    let values: Map<String, Value> = serde_json::from_value(json!({
        "account": "test", "folder": "INBOX", "id": id, "ids": [id], "part": part,
        "to_folder": "Archive", "name": "Sweep", "new_name": "Sweep2", "subject": "canary sweep",
        "to": ["bob@example.test"], "body_text": "hello", "add": ["\\Flagged"], "remove": [],
        "max_chars": 1000, "max_bytes": 1000, "limit": 5, "query": "kickoff",
        "attachments": [{"path": "note.txt"}], "filename": "saved.bin",
    }))
    .unwrap();
    let mut names: Vec<&Value> = tools.iter().collect();
    names.sort_by_key(|t| order(t["name"].as_str().unwrap()));
    let mut outcomes = BTreeSet::new();
    let mut draft_id = None;
    for tool in names {
        let name = tool["name"].as_str().unwrap();
        let mut v = values.clone();
        if name == "rename_folder" {
            v.insert("from".into(), json!("Sweep"));
            v.insert("to".into(), json!("Sweep2"));
        }
        if name == "delete_folder" {
            v.insert("name".into(), json!("Sweep2"));
        }
        if name == "search" {
            v.insert("to".into(), json!("bob@example.test"));
        }
        if name == "update_labels" {
            v.insert("add".into(), json!(["sweep-label"]));
        }
        if name == "send_draft" {
            v.insert("id".into(), draft_id.clone().expect("create_draft ran before send_draft"));
        }
        let r = c.call(name, arguments(tool, &v));
        outcomes.insert(format!("{name}: {}", mcp::error_code(&r).unwrap_or_else(|| "ok".into())));
        if name == "create_draft" {
            draft_id = Some(r["structuredContent"]["meta"]["id"].clone());
        }
    }
    // The sweep reached the servers: most tools succeeded (a few refuse these arguments, e.g.
    // labels on a non-Gmail server), and sending went through SMTP AUTH.
    // Every tool ran and worked; the one refusal is a draft that a human has not reviewed yet.
    let refused: Vec<&String> = outcomes.iter().filter(|o| !o.ends_with(": ok")).collect();
    assert_eq!(refused, ["send_draft: draft_pending_review"], "{outcomes:#?}");
    assert_eq!(outcomes.len(), 21);
    let stderr = c.stderr.lock().unwrap().clone();
    assert!(stderr.contains("mailmoat: debug: imap > ") && stderr.contains("mailmoat: debug: smtp > AUTH PLAIN"), "{stderr}");
    assert!(stderr.contains("mailmoat: info: tool send_email account test -> ok"), "{stderr}");
    seen.client(&c);
    drop(c);
    let (ok, out) = seen.command(&["check"], &config);
    assert!(ok && out.contains("authenticated with PLAIN"), "{out}");

    // 2. A refused password (IMAP), then check with it.
    let bad_pw = dc.dir.join("bad-password");
    write(&bad_pw, "CANARY-refused-3f9a1c\n");
    std::fs::set_permissions(&bad_pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let bad = dc.dir.join("bad.toml");
    let pw_line = format!("password = {{ file = {:?} }}", dc.password_file.to_string_lossy());
    assert!(base.contains(&pw_line));
    write(&bad, &base.replace(&pw_line, &format!("password = {{ file = {:?} }}", bad_pw.to_string_lossy())));
    let mut c = Client::spawn(&bad, MODERN, DEBUG);
    let r = c.call("list_folders", json!({}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("auth_failed"), "{r}");
    seen.client(&c);
    drop(c);
    let (ok, out) = seen.command(&["check"], &bad);
    assert!(!ok && out.contains("FAILED (auth_failed)"), "{out}");

    // 3. A certificate that does not verify (another CA), with the good password.
    let other = TestCa::create_other(&dc.dir.join("other-ca"));
    let tls_bad = dc.dir.join("tls.toml");
    let ca_line = format!("ca_file = {:?}", dc.ca.ca_pem.to_string_lossy());
    assert!(base.contains(&ca_line));
    write(&tls_bad, &base.replace(&ca_line, &format!("ca_file = {:?}", other.ca_pem.to_string_lossy())));
    let mut c = Client::spawn(&tls_bad, MODERN, DEBUG);
    let r = c.call("list_folders", json!({}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("tls_error"), "{r}");
    seen.client(&c);
    drop(c);
    seen.command(&["check"], &tls_bad);

    // 4. A server that accepts and never greets: a timeout, secret never sent.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let slow = dc.dir.join("slow.toml");
    let port_line = format!("port = {}", dc.imaps_port);
    assert!(base.contains(&port_line));
    write(&slow, &format!("{}\n[limits]\ngreeting_timeout_ms = 300\n", base.replace(&port_line, &format!("port = {port}"))));
    let mut c = Client::spawn(&slow, MODERN, DEBUG);
    let r = c.call("list_folders", json!({}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("timeout"), "{r}");
    seen.client(&c);
    drop(c);
    seen.command(&["check"], &slow);
    drop(silent);

    // 5. Config errors with secrets in the wrong places.
    for (i, broken) in [
        base.replace(&pw_line, "password = \"CANARY-literal-8e2d7b\""),
        base.replace(&pw_line, "password = { env = \"X\", command = [\"CANARY-argv-51c0ae\"] }"),
        base.replace(&pw_line, &format!("{pw_line}\ntoken = \"CANARY-unknown-key-0b7e44\"")),
        base.replace("tls = \"implicit\"", "tls = \"CANARY-variant-92f1aa\""),
        format!("{base}\n[limits]\ncommand_timeout_ms = \"CANARY-type-6d3c20\"\n"),
    ]
    .iter()
    .enumerate()
    {
        let p = dc.dir.join(format!("broken-{i}.toml"));
        write(&p, broken);
        let (ok, out) = seen.command(&["check"], &p);
        assert!(!ok && out.contains("config error"), "{out}");
        let mut c = Client::spawn(&p, MODERN, DEBUG);
        assert!(c.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.code() == Some(2)));
        seen.client(&c);
    }

    // 6. --print-config with secret-looking helper arguments.
    let helper = dc.dir.join("helper.toml");
    write(&helper, &base.replace(&pw_line, "password = { command = [\"pass\", \"show\", \"CANARY-helper-arg-1d4e\"] }"));
    let (ok, out) = seen.command(&["check", "--print-config"], &helper);
    assert!(ok && out.contains("<2 argument(s) redacted>"), "{out}");

    seen.state_files(&dc.dir);
    assert!(seen.text.contains("\"event\":\"tool_call\""), "the audit log was swept");
    let mut canaries = vec![dc.password.as_str(), smtp.password.as_str()];
    canaries.extend([
        "CANARY-refused-3f9a1c",
        "CANARY-literal-8e2d7b",
        "CANARY-argv-51c0ae",
        "CANARY-unknown-key-0b7e44",
        "CANARY-variant-92f1aa",
        "CANARY-type-6d3c20",
        "CANARY-helper-arg-1d4e",
    ]);
    seen.assert_clean(&canaries);
}
