//! `make demo`: starts a throwaway Dovecot with sample mail (hostile messages included), writes a
//! config, runs `mailmoat check`, then a short scripted MCP session, printing what the model sees.

#[path = "../tests/common/dovecot.rs"]
#[allow(dead_code, reason = "the demo uses only part of the test harness")]
mod dovecot;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

fn mailmoat_bin() -> PathBuf {
    // target/<profile>/examples/demo → target/<profile>/mailmoat
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe.parent().and_then(|p| p.parent()).map(|p| p.join("mailmoat")).expect("target dir");
    assert!(bin.exists(), "{} not built: run `cargo build --release` first", bin.display());
    bin
}

fn banner(s: &str) {
    println!("\n\x1b[1m=== {s} ===\x1b[0m");
}

struct Session {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
    next: i64,
}

impl Session {
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let line = serde_json::to_string(&msg).unwrap();
        println!("\x1b[2m→ {}\x1b[0m", clip(&line, 200));
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        loop {
            let mut resp = String::new();
            if self.out.read_line(&mut resp).unwrap() == 0 {
                panic!("mailmoat exited");
            }
            let v: Value = serde_json::from_str(&resp).unwrap();
            if v["id"] == json!(id) {
                return v;
            }
        }
    }

    fn call(&mut self, name: &str, arguments: Value) -> Value {
        let r = self.request("tools/call", json!({"name": name, "arguments": arguments}));
        r["result"].clone()
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn show_text(result: &Value) {
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    for line in text.lines() {
        println!("  │ {line}");
    }
}

fn main() {
    banner("starting a throwaway Dovecot with sample mail");
    let server = dovecot::Dovecot::start(&dovecot::Seed::Standard);
    println!("{}", server.summary());
    let config = server.dir.join("mailmoat.toml");
    server.write_mailmoat_config(&config, "readonly");
    banner(&format!("config ({})", config.display()));
    print!("{}", std::fs::read_to_string(&config).unwrap());

    let bin = mailmoat_bin();
    banner("mailmoat check");
    let status = Command::new(&bin).arg("check").arg("--config").arg(&config).status().unwrap();
    println!("(exit status: {})", status.code().unwrap_or(-1));

    banner("a scripted MCP session (legacy handshake, revision 2025-11-25)");
    let mut child = Command::new(&bin)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut s = Session { child, out, next: 1 };
    let init = s.request(
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "demo", "version": "1"}}),
    );
    println!("server: {} {}", init["result"]["serverInfo"]["name"], init["result"]["serverInfo"]["version"]);
    let tools = s.request("tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    println!("tools (posture readonly): {}", names.join(", "));

    banner("list_folders");
    show_text(&s.call("list_folders", json!({})));

    banner("search: the 8 newest messages in INBOX");
    show_text(&s.call("search", json!({"limit": 8})));

    let find = |s: &mut Session, subject: &str| -> String {
        let r = s.call("search", json!({"subject": subject, "limit": 1}));
        r["structuredContent"]["meta"]["messages"][0]["id"].as_str().unwrap_or_default().to_string()
    };
    for (title, subject) in [
        ("hostile: hidden HTML instructions (display:none, zero font, white on white)", dovecot::HOSTILE_HIDDEN_SUBJECT),
        ("hostile: fake end-of-email markers trying to break out of the fence", dovecot::HOSTILE_FENCE_SUBJECT),
        ("hostile: display name pretending to be PayPal", dovecot::HOSTILE_PAYPAL_SUBJECT),
        ("hostile: CR/LF smuggled through an encoded subject", "X-Smuggled"),
    ] {
        banner(&format!("fetch_message — {title}"));
        let id = find(&mut s, subject);
        let r = s.call("fetch_message", json!({"id": id}));
        show_text(&r);
    }

    banner("the same server, modern era (2026-07-28): server/discover, no handshake");
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let d = s.request("server/discover", json!({"_meta": meta}));
    println!("supportedVersions: {}", d["result"]["supportedVersions"]);
    let r = s.request(
        "tools/call",
        json!({"_meta": meta, "name": "search", "arguments": {"folder": "Archive", "from": dovecot::ARCHIVE_KNOWN_SENDER, "limit": 3}}),
    );
    show_text(&r["result"]);

    drop(s.child.stdin.take());
    let _ = s.child.wait();
    banner("done: the Dovecot instance and its files are removed");
}
