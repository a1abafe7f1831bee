//! Protocol tests: spawn the binary and drive it over stdin/stdout in both eras, validating
//! every message it writes against the official schema of the revision in use.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::mcp::{self, Client, LEGACY, MODERN};
use common::schema;
use serde_json::{json, Value};

/// What the default posture (draft-safe) lists, in tools/list order.
const DEFAULT_TOOLS: [&str; 13] = [
    "list_accounts",
    "list_folders",
    "search",
    "fetch_message",
    "fetch_thread",
    "list_attachments",
    "read_attachment",
    "download_attachment",
    "update_flags",
    "update_labels",
    "move_messages",
    "copy_messages",
    "create_draft",
];
/// Tools that only read.
const READ_ONLY: [&str; 8] = [
    "list_accounts",
    "list_folders",
    "search",
    "fetch_message",
    "fetch_thread",
    "list_attachments",
    "read_attachment",
    "download_attachment",
];

/// A config whose single account points at a closed port (no test here needs the network).
fn config(extra_global: &str, account_extra: &str) -> (PathBuf, tempdir::Dir) {
    let dir = tempdir::Dir::new("protocol");
    let path = dir.path.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "{extra_global}\n[audit]\npath = \"{}\"\n[accounts.test]\nemail = \"alice@example.test\"\n{account_extra}\n[accounts.test.imap]\nhost = \"127.0.0.1\"\nport = 1\nusername = \"alice\"\npassword = {{ env = \"MAILMOAT_TEST_PW\" }}\n",
            dir.path.join("audit.jsonl").display()
        ),
    )
    .unwrap();
    (path, dir)
}

mod tempdir {
    pub struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = std::env::temp_dir().join(format!("mailmoat-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn spawn(revision: &str) -> (Client, tempdir::Dir) {
    let (cfg, dir) = config("", "");
    (Client::spawn(&cfg, revision, &[("MAILMOAT_TEST_PW", "CANARY-pw-protocol")]), dir)
}

fn tool_names(tools: &[Value]) -> Vec<String> {
    tools.iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn legacy_handshake_and_tools_in_every_revision() {
    for rev in LEGACY {
        let (mut c, _d) = spawn(rev);
        let init = c.initialize();
        assert_eq!(init["result"]["protocolVersion"], json!(rev));
        assert_eq!(init["result"]["serverInfo"]["name"], json!("mailmoat"));
        assert_eq!(init["result"]["capabilities"], json!({"tools": {"listChanged": false}}));
        assert_eq!(c.request("ping", Value::Null)["result"], json!({}));
        let tools = c.list_tools();
        assert_eq!(tool_names(&tools), DEFAULT_TOOLS);
        for t in &tools {
            schema::check_tool_input_schema(&t["inputSchema"]).unwrap_or_else(|e| panic!("{rev} {}: {e:?}", t["name"]));
            assert!(t["description"].as_str().unwrap().len() > 20);
            let has_structured = rev >= "2025-06-18";
            assert_eq!(t.get("outputSchema").is_some(), has_structured, "{rev}");
            assert_eq!(t.get("title").is_some(), has_structured, "{rev}");
            assert_eq!(t.get("annotations").is_some(), rev >= "2025-03-26", "{rev}");
            if rev >= "2025-03-26" {
                let read_only = READ_ONLY.contains(&t["name"].as_str().unwrap());
                assert_eq!(t["annotations"]["readOnlyHint"], json!(read_only), "{}", t["name"]);
                assert_eq!(t["annotations"]["destructiveHint"], json!(false), "{}", t["name"]);
            }
        }
        assert!(c.transcript.iter().all(|m| m.get("resultType").is_none()));
    }
}

#[test]
fn legacy_unknown_version_gets_newest_legacy() {
    let (cfg, _d) = config("", "");
    let mut c = Client::spawn(&cfg, "2025-11-25", &[]);
    let r =
        c.request("initialize", json!({"protocolVersion": "1999-01-01", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}));
    assert_eq!(r["result"]["protocolVersion"], json!("2025-11-25"));
}

#[test]
fn legacy_requests_before_initialize_are_refused() {
    let (mut c, _d) = spawn("2025-06-18");
    let r = c.request("tools/list", json!({}));
    assert_eq!(r["error"]["code"], json!(-32002));
    assert!(r["error"]["message"].as_str().unwrap().contains("initialize"));
    // ping is allowed before initialization.
    assert_eq!(c.request("ping", Value::Null)["result"], json!({}));
}

#[test]
fn modern_discover_list_and_errors() {
    let (mut c, _d) = spawn(MODERN);
    let p = c.params(json!({}));
    let d = c.request("server/discover", p);
    let r = &d["result"];
    assert_eq!(r["resultType"], json!("complete"));
    assert_eq!(r["supportedVersions"][0], json!(MODERN));
    assert_eq!(r["cacheScope"], json!("private"));
    assert_eq!(r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], json!("mailmoat"));

    let p = c.params(json!({}));
    let l = c.request("tools/list", p);
    assert_eq!(l["result"]["resultType"], json!("complete"));
    assert_eq!(l["result"]["cacheScope"], json!("private"));
    assert!(l["result"]["ttlMs"].as_u64().unwrap() > 0);
    assert_eq!(tool_names(l["result"]["tools"].as_array().unwrap()), DEFAULT_TOOLS);

    // Same order every time.
    let p = c.params(json!({}));
    let l2 = c.request("tools/list", p);
    assert_eq!(l["result"]["tools"], l2["result"]["tools"]);

    // ping does not exist in this era.
    let p = c.params(json!({}));
    assert_eq!(c.request("ping", p)["error"]["code"], json!(-32601));

    // An unsupported version names what we support.
    let r = c.request(
        "tools/list",
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2030-01-01", "io.modelcontextprotocol/clientCapabilities": {}}}),
    );
    assert_eq!(r["error"]["code"], json!(-32022));
    assert_eq!(r["error"]["data"], json!({"supported": [MODERN], "requested": "2030-01-01"}));
    let r = c.request(
        "tools/list",
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2025-06-18", "io.modelcontextprotocol/clientCapabilities": {}}}),
    );
    assert_eq!(r["error"]["code"], json!(-32022));
}

#[test]
fn modern_requests_are_stateless_alongside_legacy() {
    // A legacy client initialized at 2025-03-26; a modern request on the same stdin is still modern.
    let (mut c, _d) = spawn("2025-03-26");
    c.initialize();
    c.revision = MODERN.into();
    let p = c.params(json!({}));
    let l = c.request("tools/list", p);
    assert_eq!(l["result"]["resultType"], json!("complete"));
    assert!(l["result"]["tools"][0].get("outputSchema").is_some());
    c.revision = "2025-03-26".into();
    let l = c.request("tools/list", json!({}));
    assert!(l["result"].get("resultType").is_none());
    assert!(l["result"]["tools"][0].get("outputSchema").is_none());
}

#[test]
fn framing_errors() {
    let (mut c, _d) = spawn("2025-11-25");
    c.send_raw("{not json");
    let r = c.recv(Duration::from_secs(10), None);
    assert_eq!(r, json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error: not valid JSON"}}));
    c.send_raw("[]");
    assert_eq!(c.recv(Duration::from_secs(10), None)["error"]["code"], json!(-32600));
    c.send_raw(r#"{"jsonrpc":"2.0","id":5}"#);
    // An error response validates the same whatever the method was; "ping" selects the shape.
    let r = c.recv(Duration::from_secs(10), Some("ping"));
    assert_eq!((r["id"].clone(), r["error"]["code"].clone()), (json!(5), json!(-32600)));
    // A line longer than the 4 MiB default is refused without killing the server.
    let big = format!("{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"x\":\"{}\"}}}}", "a".repeat(4 * 1024 * 1024 + 10));
    c.send_raw(&big);
    let r = c.recv(Duration::from_secs(20), None);
    assert_eq!(r["error"]["code"], json!(-32600));
    assert_eq!(r["id"], Value::Null);
    c.initialize();
    assert_eq!(c.request("nope/nothing", json!({}))["error"]["code"], json!(-32601));
    let r = c.request("tools/call", json!({"name": "no_such_tool", "arguments": {}}));
    assert_eq!(r["error"]["code"], json!(-32602));
    let r = c.request("tools/call", json!({"name": "search", "arguments": [1]}));
    assert_eq!(r["error"]["code"], json!(-32602));
    // String ids are echoed with their type.
    c.send(&json!({"jsonrpc": "2.0", "id": "abc", "method": "ping"}));
    assert_eq!(c.recv(Duration::from_secs(10), Some("ping"))["id"], json!("abc"));
}

/// A loopback "IMAP server" that accepts connections and never says a word.
fn stalled_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

fn stalled_config(port: u16) -> (PathBuf, tempdir::Dir) {
    let dir = tempdir::Dir::new("stall");
    let cfg = dir.path.join("config.toml");
    std::fs::write(
        &cfg,
        format!("[audit]\npath = \"{}\"\n[accounts.stall]\nemail = \"a@example.test\"\n[accounts.stall.imap]\nhost = \"127.0.0.1\"\nport = {port}\nusername = \"a\"\npassword = {{ env = \"P\" }}\n", dir.path.join("audit.jsonl").display()),
    )
    .unwrap();
    (cfg, dir)
}

#[test]
fn eof_exits_zero_promptly_even_with_requests_in_flight() {
    let (cfg, _d) = stalled_config(stalled_server());
    let mut c = Client::spawn(&cfg, "2025-11-25", &[("P", "x")]);
    c.initialize();
    for id in 100..104 {
        c.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "list_folders", "arguments": {}}}));
    }
    std::thread::sleep(Duration::from_millis(300));
    c.close_stdin();
    let start = Instant::now();
    let status = c.wait_exit(Duration::from_secs(3)).expect("exited");
    assert!(status.success());
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
}

#[test]
fn bad_arguments_are_tool_errors_before_any_network() {
    let (mut c, _d) = spawn("2025-06-18");
    c.initialize();
    let cases: &[(&str, Value, &str)] = &[
        ("search", json!({"subject": "a\r\nA1 DELETE INBOX"}), "argument `subject` contains a control character (U+000D)"),
        ("search", json!({"folder": "INBOX\u{0}"}), "argument `folder` contains a control character (U+0000)"),
        ("search", json!({"header": {"name": "X-A", "value": "v\nx"}}), "argument `value` contains a control character (U+000A)"),
        ("search", json!({"limit": 0}), "argument `limit` must be an integer from 1 to 100"),
        ("search", json!({"limit": 101}), "argument `limit` must be an integer from 1 to 100"),
        ("search", json!({"since": "2024-02-30"}), "argument `since`: 2024-02-30 is not a day of the calendar"),
        ("search", json!({"before": "yesterday"}), "argument `before`: "),
        ("search", json!({"bogus": 1}), "unknown argument `bogus`"),
        ("search", json!({"cursor": "c1.zz"}), "argument `cursor` is not a cursor issued by mailmoat"),
        ("search", json!({"account": "nobody"}), "no account named nobody"),
        ("fetch_message", json!({}), "argument `id` is required"),
        ("fetch_message", json!({"id": "m1.00.1.1"}), "argument `id` is not a message id issued by mailmoat"),
        ("fetch_message", json!({"id": "x\r\ny"}), "argument `id` contains a control character (U+000D)"),
        ("list_accounts", json!({"x": 1}), "unknown argument `x`"),
    ];
    for (tool, args, want) in cases {
        let r = c.call(tool, args.clone());
        assert_eq!(r["isError"], json!(true), "{tool} {args}: {r}");
        let code = r["structuredContent"]["error"]["code"].as_str().unwrap();
        let msg = r["structuredContent"]["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(want) || msg.contains(want), "{tool} {args}: got {code}: {msg}");
        assert!(code == "invalid_argument" || code == "not_found", "{code}");
        assert!(mcp::text(&r).contains(want));
    }
}

#[test]
fn list_accounts_needs_no_network_and_leaks_no_secret() {
    let (mut c, _d) = spawn(MODERN);
    let r = c.call("list_accounts", json!({}));
    assert_eq!(r["isError"], json!(false));
    assert_eq!(r["resultType"], json!("complete"));
    assert_eq!(
        r["structuredContent"]["meta"]["accounts"],
        json!([{"name": "test", "email": "alice@example.test", "posture": "draft-safe", "host": "127.0.0.1", "tls": "implicit"}])
    );
    // The secret env var was never needed; and it never appears anywhere.
    let all = serde_json::to_string(&c.transcript).unwrap();
    assert!(!all.contains("CANARY"));
}

#[test]
fn connection_failure_is_a_clear_tool_error() {
    let (mut c, _d) = spawn("2025-11-25");
    c.initialize();
    let r = c.call("list_folders", json!({}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("connect_failed"), "{r}");
    assert!(!mcp::text(&r).contains("CANARY"));
}

/// The full posture matrix is tested against a real server in live_actions; here: overrides.
#[test]
fn tool_overrides_hide_and_refuse() {
    for denied in DEFAULT_TOOLS {
        let (cfg, _d) = config(&format!("[tools]\n{denied} = \"deny\""), "");
        let mut c = Client::spawn(&cfg, MODERN, &[]);
        let names = tool_names(&c.list_tools());
        let want: Vec<&str> = DEFAULT_TOOLS.iter().copied().filter(|t| t != &denied).collect();
        assert_eq!(names, want);
        let r = c.call(denied, json!({}));
        assert_eq!(mcp::error_code(&r).as_deref(), Some("posture_denied"), "{denied}: {r}");
    }
    // "allow" lifts the global posture...
    let (cfg, _d) = config("posture = \"readonly\"\n[tools]\nexpunge_messages = \"allow\"", "");
    let mut c = Client::spawn(&cfg, MODERN, &[]);
    let names = tool_names(&c.list_tools());
    assert_eq!(names, READ_ONLY.iter().copied().chain(["expunge_messages"]).collect::<Vec<_>>());
    // ...but never an account's own narrower posture.
    let (cfg, _d) = config("posture = \"destructive\"\n[tools]\nexpunge_messages = \"allow\"", "posture = \"readonly\"");
    let mut c = Client::spawn(&cfg, MODERN, &[]);
    assert_eq!(tool_names(&c.list_tools()), READ_ONLY);
}

#[test]
fn cancellation_suppresses_the_response_and_the_server_keeps_serving() {
    let (cfg, _d) = stalled_config(stalled_server());
    let mut c = Client::spawn(&cfg, "2025-11-25", &[("P", "x")]);
    c.initialize();
    c.send(&json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": {"name": "list_folders", "arguments": {}}}));
    std::thread::sleep(Duration::from_millis(300));
    c.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 77, "reason": "test"}}));
    // The server keeps answering other requests, and never answers id 77.
    let r = c.request("ping", Value::Null);
    assert_eq!(r["result"], json!({}));
    let later = c.drain(Duration::from_millis(1500));
    assert!(later.iter().all(|m| m.get("id") != Some(&json!(77))), "{later:?}");
    assert!(c.notifications.iter().all(|m| m.get("id") != Some(&json!(77))));
}

#[test]
fn rate_limits_answer_with_retry_after() {
    let (cfg, _d) = config("[rate_limits]\nread_burst = 3\nread_per_second = 0.01", "");
    let mut c = Client::spawn(&cfg, MODERN, &[]);
    for _ in 0..3 {
        assert_eq!(c.call("list_accounts", json!({}))["isError"], json!(false));
    }
    let r = c.call("list_accounts", json!({}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("rate_limited"), "{r}");
    let retry = r["structuredContent"]["error"]["retry_after_ms"].as_u64().unwrap();
    assert!((90_000..=100_000).contains(&retry), "{retry}");
    assert!(mcp::text(&r).contains("rate_limits.read_burst") || mcp::text(&r).contains("rate_limits.read"), "{r}");
    // Other tools have their own bucket.
    assert_eq!(mcp::error_code(&c.call("search", json!({"limit": 0}))).as_deref(), Some("invalid_argument"));
}

#[test]
fn the_circuit_opens_after_repeated_connection_failures() {
    let (cfg, _d) = config("[circuit_breaker]\nfailures = 2\nopen_ms = 60000", "");
    let mut c = Client::spawn(&cfg, MODERN, &[("MAILMOAT_TEST_PW", "x")]);
    for _ in 0..2 {
        assert_eq!(mcp::error_code(&c.call("list_folders", json!({}))).as_deref(), Some("connect_failed"));
    }
    let start = Instant::now();
    let r = c.call("list_folders", json!({}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("circuit_open"), "{r}");
    assert!(r["structuredContent"]["error"]["retry_after_ms"].as_u64().unwrap() > 50_000);
    assert!(start.elapsed() < Duration::from_millis(500), "fails fast");
    // list_accounts needs no server, so an open circuit does not block it.
    assert_eq!(c.call("list_accounts", json!({}))["isError"], json!(false));
}

/// CR/LF/NUL in every string field (and every string inside an array or nested object) of every
/// tool, taken from the tools' own input schemas, is refused before any network traffic (the
/// account points at a closed port, so a value that got through would fail with connect_failed
/// instead of invalid_argument). Body text fields legitimately hold newlines and are skipped.
#[test]
fn control_characters_are_refused_in_every_string_field_of_every_tool() {
    let (cfg, _d) = config("posture = \"destructive\"\nconfirm = \"none\"\nworkspace = \"/tmp\"", "");
    let mut c = Client::spawn(&cfg, MODERN, &[("MAILMOAT_TEST_PW", "x")]);
    let tools = c.list_tools();
    assert_eq!(tools.len(), 21);
    // A syntactically valid id for account "test", folder INBOX.
    let id = "m1.7465737400494e424f58.1.1";
    let valid = |name: &str, schema: &Value| -> Value {
        match name {
            "id" | "reply_to_id" | "forward_id" => json!(id),
            "ids" => json!([id]),
            "account" => json!("test"),
            "part" => json!("2"),
            "to" if schema["type"] == "array" => json!(["bob@example.test"]),
            "cc" | "bcc" => json!(["bob@example.test"]),
            "add" | "remove" => json!(["\\Seen"]),
            "since" | "before" => json!("2024-01-01"),
            "forward_mode" => json!("quote"),
            "header" => json!({"name": "X-A", "value": "v"}),
            "attachments" => json!([{"path": "a.txt"}]),
            _ => match schema["type"].as_str() {
                Some("string") => json!("ok"),
                Some("integer") => json!(schema["minimum"].as_u64().unwrap_or(1).max(1)),
                Some("boolean") => json!(true),
                Some("array") => json!(["ok"]),
                _ => json!({}),
            },
        }
    };
    let mut checked = 0;
    for t in &tools {
        let name = t["name"].as_str().unwrap();
        let props = t["inputSchema"]["properties"].as_object().unwrap();
        let required: Vec<&str> = t["inputSchema"]["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let base: serde_json::Map<String, Value> =
            props.iter().filter(|(k, _)| required.contains(&k.as_str())).map(|(k, v)| (k.clone(), valid(k, v))).collect();
        for (field, schema) in props {
            if matches!(field.as_str(), "body_text" | "body_html") {
                continue;
            }
            for bad in ["a\r\nA1 LOGOUT", "a\nb", "a\u{0}b"] {
                let mut args = base.clone();
                let v = match schema["type"].as_str() {
                    Some("string") => json!(bad),
                    Some("array") if schema["items"]["type"] == "string" => json!([bad]),
                    Some("array") => json!([{"path": bad}]),
                    Some("object") => json!({"name": "X-A", "value": bad}),
                    _ => continue,
                };
                args.insert(field.clone(), v);
                let r = c.call(name, Value::Object(args.clone()));
                let code = mcp::error_code(&r);
                assert_eq!(code.as_deref(), Some("invalid_argument"), "{name}.{field} = {bad:?}: {r}");
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} cases");
}

#[test]
fn print_config_redacts_and_help_lists_every_command() {
    let (cfg, _d) = config("", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("{ env = \"MAILMOAT_TEST_PW\" }", "{ command = [\"pw-helper\", \"--token\", \"CANARY-cli-arg-5\"] }");
    std::fs::write(&cfg, text).unwrap();
    let out = std::process::Command::new(mcp::bin()).args(["check", "--print-config", "--config"]).arg(&cfg).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("CANARY"), "{stdout}");
    assert!(stdout.contains("password = { command = [\"pw-helper\", <2 argument(s) redacted>] }"), "{stdout}");
    assert!(stdout.contains("max_body_chars: 100000"), "{stdout}");
    let help = std::process::Command::new(mcp::bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for cmd in ["serve", "check", "--dry-run", "--print-config", "audit verify", "--version", "--config"] {
        assert!(help.contains(cmd), "--help does not mention {cmd}");
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for line in help.lines().filter(|l| l.starts_with("    mailmoat ")) {
        let usage = line.split("  ").next().unwrap().trim();
        assert!(readme.contains(usage), "README's command list lacks `{usage}`");
    }
    let bad = std::process::Command::new(mcp::bin()).arg("--bogus").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// Each command's own help: the same text whichever way it is asked for, its usage lines and
/// options in the README, and never the general help.
#[test]
fn every_command_has_its_own_help_matching_the_readme() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(mcp::bin()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (ways, title, options) in [
        (
            &[&["serve", "--help"][..], &["help", "serve"], &["-h", "serve"]][..],
            "mailmoat serve — ",
            &["--config PATH", "MAILMOAT_LOG"][..],
        ),
        (
            &[&["check", "--help"][..], &["help", "check"], &["--dry-run", "--help"], &["check", "--print-config", "-h"]][..],
            "mailmoat check — ",
            &["--config PATH", "--print-config"][..],
        ),
        (
            &[&["audit", "verify", "--help"][..], &["help", "audit"], &["audit", "--help"]][..],
            "mailmoat audit verify — ",
            &["--config PATH"][..],
        ),
    ] {
        let text = run(ways[0]);
        assert!(text.starts_with(title), "{text}");
        for w in &ways[1..] {
            assert_eq!(run(w), text, "{w:?}");
        }
        assert!(text.contains("EXIT STATUS:"), "{text}");
        for line in text.lines().filter(|l| l.starts_with("    mailmoat ")) {
            assert!(readme.contains(line.trim()), "README lacks `{}`", line.trim());
        }
        for o in options {
            assert!(text.contains(o) && readme.contains(o), "{title}: {o}");
        }
    }
    assert!(run(&["--help"]).starts_with("mailmoat — a hardened MCP server"));
}
