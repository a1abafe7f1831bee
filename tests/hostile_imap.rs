//! Hostile and broken IMAP servers (issue #5), driven through the real binary over MCP.
//!
//! Each test starts a mailmoat process whose config has two accounts: `bad`, served by a
//! scripted fake (`tests/common/fakeimap.rs`) that misbehaves on its next connection, and
//! `good`, served by a well-behaved fake. For every case the test asserts: the exact error code
//! and message (or the exact result when mailmoat copes), an answer within the configured
//! timeout plus a margin, the process still up (it answers `ping`), its peak RSS (VmHWM) under
//! 64 MiB, the `good` account answering during the hostile call and after it, and the next call
//! on `bad` working once its server behaves again. Timeouts are short ([limits] below) and the
//! circuit breaker is out of the way (a high threshold), except in the test about it.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::dovecot::{base64, TestCa};
use common::fakeimap::{self, FakeImap, Plan, Step, Transport};
use common::mcp::{self, Client};
use serde_json::{json, Value};

const REVISION: &str = "2025-11-25";
const CONNECT_MS: u64 = 1000;
const GREETING_MS: u64 = 1000;
const COMMAND_MS: u64 = 1500;
/// On top of a configured timeout: the guard's 200 ms tick, and scheduling on a busy machine.
const MARGIN: Duration = Duration::from_millis(1500);
/// What a call that involves no timeout may take (connect, TLS, login and a few commands).
const QUICK: Duration = Duration::from_millis(3000);
const RSS_LIMIT_KIB: u64 = 64 * 1024;
const MIB: u64 = 1024 * 1024;
/// `limits.max_response_bytes` in these tests. The imap crate buffers a whole response, so a
/// hostile server can make one call hold this much; the default (48 MiB) on top of the debug
/// binary's ~24 MiB would not fit the 64 MiB bound (measured: 73 MiB).
const MAX_RESPONSE: u64 = 16 * MIB;
const MAX_MESSAGE: u64 = 8 * MIB;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!("mm-hostile-{}-{}-{name}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_private(path: &std::path::Path, body: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).unwrap();
    f.write_all(body.as_bytes()).unwrap();
}

fn toml_path(p: &std::path::Path) -> String {
    format!("{:?}", p.to_str().unwrap())
}

/// A message id as mailmoat mints them (`src/tools/ids.rs`).
fn msg_id(account: &str, folder: &str, uidvalidity: u32, uid: u32) -> String {
    let scope: Vec<u8> = [account.as_bytes(), b"\0", folder.as_bytes()].concat();
    let hex: String = scope.iter().map(|b| format!("{b:02x}")).collect();
    format!("m1.{hex}.{uidvalidity}.{uid}")
}

/// How the `bad` account is set up.
struct Setup {
    /// Address the bad fake listens on.
    bind: &'static str,
    /// `host` in the config.
    host: &'static str,
    tls: &'static str,
    /// The `[circuit_breaker]` table's body.
    breaker: &'static str,
    /// Extra `[limits]` lines.
    limits: &'static str,
    /// `limits.command_timeout_ms`.
    command_ms: u64,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup { bind: "127.0.0.1", host: "localhost", tls: "implicit", breaker: "failures = 1000\n", limits: "", command_ms: COMMAND_MS }
    }
}

struct Rig {
    // Field order is drop order: the process first, then the servers.
    c: Client,
    bad: FakeImap,
    good: FakeImap,
    dir: PathBuf,
    canary: String,
    next_id: i64,
}

impl Drop for Rig {
    fn drop(&mut self) {
        if std::env::var_os("MAILMOAT_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The result of one tool call and how long it took.
struct Answer {
    result: Value,
    took: Duration,
    at: Instant,
}

impl Answer {
    fn code(&self) -> Option<String> {
        mcp::error_code(&self.result)
    }

    fn message(&self) -> &str {
        self.result["structuredContent"]["error"]["message"].as_str().unwrap_or("")
    }

    fn sc(&self) -> &Value {
        assert_eq!(self.result["isError"], json!(false), "tool failed: {}", self.result);
        &self.result["structuredContent"]
    }
}

impl Rig {
    fn new(name: &str, setup: Setup) -> Rig {
        let dir = temp_dir(name);
        let bad = FakeImap::start(&dir.join("bad"), setup.bind);
        let good = FakeImap::start(&dir.join("good"), "127.0.0.1");
        let canary = format!("CANARY-pw-{}-{}", std::process::id(), name);
        write_private(&dir.join("bad-password"), &format!("{canary}\n"));
        write_private(&dir.join("good-password"), "good-password\n");
        std::fs::create_dir_all(dir.join("workspace")).unwrap();
        let config = format!(
            "posture = \"draft-safe\"\nworkspace = {ws}\n\n\
             [accounts.bad]\nemail = \"bad@example.test\"\n\n\
             [accounts.bad.imap]\nhost = \"{host}\"\nport = {bport}\ntls = \"{tls}\"\nusername = \"bad-user\"\npassword = {{ file = {bpw} }}\nca_file = {bca}\n\n\
             [accounts.good]\nemail = \"good@example.test\"\n\n\
             [accounts.good.imap]\nhost = \"localhost\"\nport = {gport}\ntls = \"implicit\"\nusername = \"good-user\"\npassword = {{ file = {gpw} }}\nca_file = {gca}\n\n\
             [limits]\nconnect_timeout_ms = {CONNECT_MS}\ngreeting_timeout_ms = {GREETING_MS}\ncommand_timeout_ms = {command_ms}\npool_wait_ms = 5000\nmax_response_bytes = {MAX_RESPONSE}\nmax_message_bytes = {MAX_MESSAGE}\n{limits}\n\
             [circuit_breaker]\n{breaker}\n\
             [audit]\npath = {audit}\n",
            ws = toml_path(&dir.join("workspace")),
            host = setup.host,
            bport = bad.port,
            tls = setup.tls,
            bpw = toml_path(&dir.join("bad-password")),
            bca = toml_path(&bad.ca.ca_pem),
            gport = good.port,
            gpw = toml_path(&dir.join("good-password")),
            gca = toml_path(&good.ca.ca_pem),
            limits = setup.limits,
            command_ms = setup.command_ms,
            breaker = setup.breaker,
            audit = toml_path(&dir.join("audit.jsonl")),
        );
        let config_path = dir.join("mailmoat.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut c = Client::spawn(&config_path, REVISION, &[]);
        c.initialize();
        c.list_tools();
        Rig { c, bad, good, dir, canary, next_id: 1000 }
    }

    /// Sends a tools/call without waiting; returns its id.
    fn start(&mut self, tool: &str, args: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let p = self.c.params(json!({"name": tool, "arguments": args}));
        self.c.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": p}));
        id
    }

    /// Waits for the answers to these calls (at most `limit` in all).
    fn collect(&mut self, calls: &[(i64, &str, Instant)], limit: Duration) -> HashMap<i64, Answer> {
        let deadline = Instant::now() + limit;
        let mut got = HashMap::new();
        while got.len() < calls.len() {
            let left = deadline.saturating_duration_since(Instant::now()).max(ms(1));
            let v = self.c.recv(left, Some("tools/call"));
            let Some(id) = v.get("id").and_then(Value::as_i64) else { continue };
            let Some(&(_, tool, sent)) = calls.iter().find(|(i, _, _)| *i == id) else { continue };
            let result = v.get("result").unwrap_or_else(|| panic!("{tool}: JSON-RPC error {v}")).clone();
            let at = Instant::now();
            got.insert(id, Answer { result, took: at - sent, at });
        }
        for (id, tool, _) in calls {
            self.c.check_structured(tool, &got[id].result);
        }
        got
    }

    fn call(&mut self, tool: &str, args: Value) -> Answer {
        let id = self.start(tool, args);
        let mut got = self.collect(&[(id, tool, Instant::now())], Duration::from_secs(30));
        got.remove(&id).unwrap()
    }

    /// VmHWM of the mailmoat process, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.c.child.id())).expect("read /proc/<pid>/status");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM line");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The process is up, answers ping, and stayed under the memory bound.
    fn assert_up(&mut self, case: &str) -> u64 {
        assert!(self.c.child.try_wait().unwrap().is_none(), "{case}: mailmoat exited; stderr: {}", self.c.stderr.lock().unwrap());
        assert_eq!(self.c.request_timeout("ping", Value::Null, Duration::from_secs(10))["result"], json!({}), "{case}");
        let rss = self.peak_rss_kib();
        println!("{case}: peak RSS {} KiB ({:.1} MiB)", rss, rss as f64 / 1024.0);
        assert!(rss < RSS_LIMIT_KIB, "{case}: peak RSS {rss} KiB is over {RSS_LIMIT_KIB} KiB");
        rss
    }

    /// The password never reached MCP output or stderr.
    fn assert_no_leak(&self, case: &str) {
        let all = serde_json::to_string(&self.c.transcript).unwrap() + &serde_json::to_string(&self.c.notifications).unwrap();
        assert!(!all.contains(&self.canary), "{case}: password in MCP output");
        assert!(!self.c.stderr.lock().unwrap().contains(&self.canary), "{case}: password on stderr");
    }

    /// What the bad server received contains no trace of the password.
    fn assert_password_never_sent(&self, case: &str) {
        let got = self.bad.received();
        let forms = [self.canary.clone(), base64(format!("\0bad-user\0{}", self.canary).as_bytes()), base64(self.canary.as_bytes())];
        for f in &forms {
            assert!(!contains(&got, f.as_bytes()), "{case}: the fake server received the password ({f})");
        }
        let cmds = self.bad.commands();
        assert!(
            !cmds.iter().any(|c| c.to_ascii_uppercase().starts_with("AUTHENTICATE") || c.to_ascii_uppercase().starts_with("LOGIN")),
            "{case}: a login was attempted: {cmds:?}"
        );
    }

    /// The well-behaved account's INBOX search.
    fn assert_good(&self, case: &str, a: &Answer) {
        let sc = a.sc();
        assert_eq!(sc["meta"]["total"], json!(3), "{case}: good account: {sc}");
        let ids: Vec<&str> = sc["meta"]["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [msg_id("good", "INBOX", 7, 3), msg_id("good", "INBOX", 7, 2), msg_id("good", "INBOX", 7, 1)], "{case}");
    }

    /// Runs one hostile call on `bad` with a call on `good` started right after it, checks the
    /// answer time, the good account, the process; returns the hostile call's answer.
    fn hostile(&mut self, case: &str, plans: Vec<Plan>, tool: &str, args: Value, within: Duration) -> Answer {
        for p in plans {
            self.bad.push(p);
        }
        let bad_sent = Instant::now();
        let bad_id = self.start(tool, args);
        let good_sent = Instant::now();
        let good_id = self.start("search", json!({"account": "good"}));
        let mut got = self.collect(&[(bad_id, tool, bad_sent), (good_id, "search", good_sent)], within + Duration::from_secs(30));
        let bad = got.remove(&bad_id).unwrap();
        let good = got.remove(&good_id).unwrap();
        println!("{case}: {tool} answered in {:?}: {:?} {:?}; good account in {:?}", bad.took, bad.code(), bad.message(), good.took);
        assert!(bad.took <= within, "{case}: answered after {:?}, more than {within:?}", bad.took);
        self.assert_good(case, &good);
        assert!(self.good.errors().is_empty() && self.good.connections() >= 1, "{case}: good server: {:?}", self.good.errors());
        assert!(good.took < QUICK, "{case}: the good account took {:?}", good.took);
        if bad.took > ms(1000) {
            assert!(good.at < bad.at, "{case}: the good account waited for the hostile call");
        }
        self.assert_up(case);
        assert_eq!(self.bad.queued(), 0, "{case}: not every scripted connection was made");
        assert!(self.bad.errors().is_empty(), "{case}: script: {:?}", self.bad.errors());
        bad
    }

    /// After the hostile call: with the server behaving, `bad` answers a search (a fresh
    /// session logs in with the password: the control for the canary check), and so does `good`.
    fn assert_recovers(&mut self, case: &str) {
        let a = self.call("search", json!({"account": "bad"}));
        assert_eq!(a.code(), None, "{case}: bad account after recovery: {}", a.result);
        assert_eq!(a.sc()["meta"]["total"], json!(3), "{case}");
        let g = self.call("search", json!({"account": "good"}));
        self.assert_good(case, &g);
        self.assert_up(case);
        self.assert_no_leak(case);
    }

    /// The control for [`Rig::assert_password_never_sent`]: a good login shows the password
    /// (base64 of the SASL PLAIN response) in what the server received.
    fn assert_login_seen(&self, case: &str) {
        let want = base64(format!("\0bad-user\0{}", self.canary).as_bytes());
        assert!(contains(&self.bad.received(), want.as_bytes()), "{case}: the control login is not in the recording");
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn error_is(case: &str, a: &Answer, code: &str, message: &str) {
    assert_eq!((a.code().as_deref(), a.message()), (Some(code), message), "{case}: {}", a.result);
}

fn timeout_message(limit: &str, ms: u64) -> String {
    format!("timed out after {ms} ms ({limit})")
}

/// An EXAMINE answer for INBOX as the fake's mailbox has it, with `extra` untagged lines.
fn examine_answer(extra: &str) -> String {
    format!(
        "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)\r\n{extra}* 3 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 4] ok\r\n{{tag}} OK [READ-ONLY] done\r\n"
    )
}

// ---- the cases ----

#[test]
fn wrong_tag() {
    let case = "wrong tag";
    let mut rig = Rig::new("wrongtag", Setup::default());
    let a = rig.hostile(
        case,
        vec![Plan::at("EXAMINE", vec![Step::reply("* 3 EXISTS\r\nX999 OK [READ-ONLY] done\r\n")])],
        "search",
        json!({"account": "bad"}),
        QUICK,
    );
    error_is(case, &a, "protocol_error", "imap protocol error: response tag mismatch during examine");
    rig.assert_recovers(case);
}

#[test]
fn alert_during_examine_and_select() {
    // `* NO [ALERT]` inside EXAMINE's answer: legal, and a panic in the imap crate's own SELECT
    // parser; mailmoat parses the raw answer, so the search works.
    let case = "NO [ALERT] during EXAMINE";
    let mut rig = Rig::new("alert-examine", Setup::default());
    let plan = Plan::at("EXAMINE", vec![Step::reply(examine_answer("* NO [ALERT] Your mailbox is 99% full\r\n"))]);
    let a = rig.hostile(case, vec![plan], "search", json!({"account": "bad"}), QUICK);
    assert_eq!(a.code(), None, "{case}: {}", a.result);
    let ids: Vec<&str> = a.sc()["meta"]["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [msg_id("bad", "INBOX", 7, 3), msg_id("bad", "INBOX", 7, 2), msg_id("bad", "INBOX", 7, 1)]);
    rig.assert_recovers(case);

    // The same during SELECT (update_flags opens the folder read-write).
    let case = "NO [ALERT] during SELECT";
    let mut rig = Rig::new("alert-select", Setup::default());
    let select = "* FLAGS (\\Seen \\Flagged)\r\n* NO [ALERT] Your mailbox is 99% full\r\n* OK [PERMANENTFLAGS (\\Seen \\Flagged \\*)] ok\r\n* 3 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 4] ok\r\n{tag} OK [READ-WRITE] done\r\n";
    let plan = Plan::at("SELECT", vec![Step::reply(select)]);
    let a = rig.hostile(case, vec![plan], "update_flags", json!({"ids": [msg_id("bad", "INBOX", 7, 2)], "add": ["\\Flagged"]}), QUICK);
    assert_eq!(a.code(), None, "{case}: {}", a.result);
    let flags = rig.bad.mailbox(|m| m.folders[0].messages[1].flags.clone());
    assert_eq!(flags, ["\\Flagged"], "{case}");
    assert!(rig.bad.commands().iter().any(|c| c == "UID STORE 2 +FLAGS.SILENT (\\Flagged)"), "{:?}", rig.bad.commands());
    rig.assert_recovers(case);
}

#[test]
fn internaldate_nil() {
    let case = "INTERNALDATE NIL";
    let mut rig = Rig::new("internaldate", Setup::default());
    let fetch = "* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 20 INTERNALDATE NIL BODY[HEADER]<0> {12}\r\nSubject: x\r\n)\r\n{tag} OK done\r\n";
    let a = rig.hostile(case, vec![Plan::at("UID FETCH", vec![Step::reply(fetch)])], "search", json!({"account": "bad"}), QUICK);
    error_is(case, &a, "internal_error", "internal error in the imap client during uid fetch; the connection was discarded");
    rig.assert_recovers(case);
}

#[test]
fn literal_of_4_gb_then_silence() {
    let case = "4 GB literal, then silence";
    let mut rig = Rig::new("literal4g", Setup::default());
    let announce = "* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 4294967295 BODY[]<0> {4294967295}\r\nFrom: a@example.test\r\n";
    let plan = Plan::at("UID FETCH 1 ", vec![Step::reply(announce), Step::Stall]);
    let a = rig.hostile(case, vec![plan], "fetch_message", json!({"id": msg_id("bad", "INBOX", 7, 1)}), ms(COMMAND_MS) + MARGIN);
    error_is(case, &a, "timeout", &timeout_message("limits.command_timeout_ms", COMMAND_MS));
    assert!(a.took >= ms(COMMAND_MS), "{case}: {:?}", a.took);
    rig.assert_recovers(case);

    // One more than u32 can count: the announcement itself is refused.
    let case = "literal of 2^32 bytes";
    let announce = "* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 1 BODY[]<0> {4294967296}\r\nFrom: a@example.test\r\n";
    let plan = Plan::at("UID FETCH 1 ", vec![Step::reply(announce), Step::Stall]);
    let mut rig = Rig::new("literal4g1", Setup::default());
    let a = rig.hostile(case, vec![plan], "fetch_message", json!({"id": msg_id("bad", "INBOX", 7, 1)}), ms(COMMAND_MS) + MARGIN);
    error_is(case, &a, "protocol_error", "imap protocol error: the server sent a response the imap library cannot parse during uid fetch");
    rig.assert_recovers(case);
}

#[test]
fn literal_of_200_mb_streamed() {
    let case = "200 MB literal";
    let mut rig = Rig::new("literal200m", Setup::default());
    let size = 200 * MIB;
    let plan = Plan::at(
        "UID FETCH 1 ",
        vec![
            Step::reply(format!("* 1 FETCH (UID 1 FLAGS () RFC822.SIZE {size} BODY[]<0> {{{size}}}\r\n")),
            Step::Stream { total: size, fill: b'A' },
            Step::reply(")\r\n{tag} OK done\r\n"),
        ],
    );
    let a = rig.hostile(case, vec![plan], "fetch_message", json!({"id": msg_id("bad", "INBOX", 7, 1)}), ms(COMMAND_MS) + MARGIN);
    error_is(case, &a, "limit_exceeded", &format!("server response exceeded limits.max_response_bytes ({MAX_RESPONSE})"));
    rig.assert_recovers(case);
}

#[test]
fn line_of_50_mb_without_crlf() {
    let case = "50 MB line without CRLF";
    let mut rig = Rig::new("line50m", Setup::default());
    let plan = Plan::at("EXAMINE", vec![Step::reply("* 1 FETCH (X-JUNK "), Step::Stream { total: 50 * MIB, fill: b'x' }, Step::Stall]);
    let a = rig.hostile(case, vec![plan], "search", json!({"account": "bad"}), ms(COMMAND_MS) + MARGIN);
    error_is(case, &a, "limit_exceeded", &format!("server response exceeded limits.max_response_bytes ({MAX_RESPONSE})"));
    rig.assert_recovers(case);
}

#[test]
fn one_byte_per_second() {
    let case = "greeting at one byte per second";
    let mut rig = Rig::new("drip", Setup::default());
    let plan = Plan::script(vec![Step::Drip(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] slow\r\n".to_vec(), ms(1000))]);
    let a = rig.hostile(case, vec![plan], "search", json!({"account": "bad"}), ms(GREETING_MS) + MARGIN);
    error_is(case, &a, "timeout", &timeout_message("limits.greeting_timeout_ms", GREETING_MS));
    rig.assert_recovers(case);

    let case = "response at one byte per second";
    let plan = Plan::at(
        "UID FETCH 1 ",
        vec![Step::Drip(b"* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 5 BODY[]<0> {5}\r\nhello)\r\n".to_vec(), ms(1000))],
    );
    // A fresh process: the pooled session from the recovery above would otherwise serve it.
    let mut rig = Rig::new("drip2", Setup::default());
    let a = rig.hostile(case, vec![plan], "fetch_message", json!({"id": msg_id("bad", "INBOX", 7, 1)}), ms(COMMAND_MS) + MARGIN);
    error_is(case, &a, "timeout", &timeout_message("limits.command_timeout_ms", COMMAND_MS));
    rig.assert_recovers(case);
}

#[test]
fn disconnect_mid_literal() {
    let case = "disconnect mid-literal";
    let mut rig = Rig::new("midliteral", Setup::default());
    let plan = Plan::at(
        "UID FETCH 1 ",
        vec![Step::reply("* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 1000 BODY[]<0> {1000}\r\n"), Step::Send(vec![b'a'; 500]), Step::Close],
    );
    let a = rig.hostile(case, vec![plan], "fetch_message", json!({"id": msg_id("bad", "INBOX", 7, 1)}), QUICK);
    error_is(case, &a, "protocol_error", "imap protocol error: connection lost during uid fetch");
    rig.assert_recovers(case);
}

#[test]
fn bye_mid_response() {
    let case = "BYE mid-response";
    let mut rig = Rig::new("bye", Setup::default());
    let plan = Plan::at(
        "UID FETCH 1 ",
        vec![Step::reply("* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n* BYE [UNAVAILABLE] shutting down\r\n"), Step::Close],
    );
    let a = rig.hostile(case, vec![plan], "fetch_message", json!({"id": msg_id("bad", "INBOX", 7, 1)}), QUICK);
    error_is(case, &a, "protocol_error", "imap protocol error: connection lost during uid fetch");
    rig.assert_recovers(case);
}

/// One FETCH item of the summary form mailmoat asks for, with this header and extra items.
fn summary_item(seq: u32, uid: u32, extra: &[u8], header: &[u8]) -> Vec<u8> {
    let mut v = format!("* {seq} FETCH (UID {uid} FLAGS () RFC822.SIZE {} INTERNALDATE \"06-Jan-2025 10:00:00 +0000\" ", header.len() + 6)
        .into_bytes();
    v.extend_from_slice(extra);
    v.extend_from_slice(format!("BODY[HEADER]<0> {{{}}}\r\n", header.len()).as_bytes());
    v.extend_from_slice(header);
    v.extend_from_slice(b")\r\n");
    v
}

fn plain_header(uid: u32) -> Vec<u8> {
    format!("Date: Mon, 06 Jan 2025 10:0{uid}:00 +0000\r\nFrom: sender{uid}@example.test\r\nSubject: Message {uid}\r\n\r\n").into_bytes()
}

#[test]
fn nul_and_invalid_utf8_in_folder_names() {
    let case = "NUL and invalid UTF-8 in folder names";
    let mut rig = Rig::new("names", Setup::default());
    let list: &[u8] = b"* LIST (\\HasNoChildren) \"/\" {9}\r\nBad\0Name!\r\n* LIST (\\HasNoChildren) \"/\" \"Caf\xe9\xff\"\r\n\
* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n* LIST (\\HasNoChildren) \"/\" \"Archive\"\r\n{tag} OK done\r\n";
    let a = rig.hostile(case, vec![Plan::at("LIST", vec![Step::reply(list)])], "list_folders", json!({"account": "bad"}), QUICK);
    assert_eq!(a.code(), None, "{case}: {}", a.result);
    let folders = a.sc()["meta"]["folders"].as_array().unwrap().clone();
    let view: Vec<(String, bool, Value)> = folders
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_string(), f["selectable"].as_bool().unwrap(), f["messages"].clone()))
        .collect();
    println!("{case}: {view:?}");
    assert_eq!(
        view,
        [
            ("INBOX".to_string(), true, json!(3)),
            ("Archive".to_string(), true, json!(1)),
            ("Bad\\0Name!".to_string(), false, Value::Null),
            ("Caf\\u{7f}\\u{7f}".to_string(), false, Value::Null),
        ],
        "{case}"
    );
    // No NUL reaches the client, and no STATUS was sent for the broken names.
    assert!(!serde_json::to_string(&a.result).unwrap().contains("\\u0000"), "{case}: {}", a.result);
    let statuses: Vec<String> = rig.bad.commands().into_iter().filter(|c| c.starts_with("STATUS")).collect();
    assert_eq!(
        statuses,
        ["STATUS \"INBOX\" (MESSAGES UNSEEN UIDVALIDITY UIDNEXT)", "STATUS \"Archive\" (MESSAGES UNSEEN UIDVALIDITY UIDNEXT)"]
    );
    rig.assert_recovers(case);
}

#[test]
fn nul_and_invalid_utf8_in_envelopes() {
    let case = "NUL and invalid UTF-8 in headers and an unasked ENVELOPE";
    let mut rig = Rig::new("envelopes", Setup::default());
    let hostile_header: &[u8] = b"Date: Mon, 06 Jan 2025 10:01:00 +0000\r\nFrom: Ev\0il \xff <ev\0il@example.test>\r\n\
Subject: Hello\0World \xff\xfe caf\xe9\r\nMessage-ID: <x\0y@example.test>\r\n\r\n";
    // ENVELOPE was not asked for; its subject is a literal with a NUL and invalid UTF-8.
    let envelope: &[u8] = b"ENVELOPE (NIL {7}\r\nSub\0j\xff! NIL NIL NIL NIL NIL NIL NIL NIL) ";
    let mut fetch = summary_item(1, 1, envelope, hostile_header);
    fetch.extend(summary_item(2, 2, b"", &plain_header(2)));
    fetch.extend(summary_item(3, 3, b"", &plain_header(3)));
    fetch.extend_from_slice(b"{tag} OK done\r\n");
    let a = rig.hostile(case, vec![Plan::at("UID FETCH", vec![Step::Reply(fetch)])], "search", json!({"account": "bad"}), QUICK);
    println!("{case}: {}", a.result);
    assert_eq!(a.code(), None, "{case}: {}", a.result);
    let sc = a.sc();
    assert_eq!(sc["meta"]["total"], json!(3));
    let m = &sc["untrusted"]["messages"];
    // The NUL is removed (and reported), invalid UTF-8 becomes U+FFFD.
    assert_eq!(m[2]["subject"], json!("HelloWorld \u{fffd}\u{fffd} caf\u{fffd}"), "{case}: {sc}");
    assert_eq!(m[2]["from"], json!([{"email": "evil@example.test", "name": "Evil \u{fffd}"}]), "{case}: {sc}");
    let warnings: Vec<(&str, &str)> = sc["security_warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["code"].as_str().unwrap(), w["location"].as_str().unwrap()))
        .collect();
    assert_eq!(warnings, [("invisible_characters", "uid 1: header:From"), ("invisible_characters", "uid 1: header:Subject")]);
    assert!(!serde_json::to_string(&a.result).unwrap().contains("\\u0000"), "{case}: {}", a.result);
    rig.assert_recovers(case);
}

/// A BODYSTRUCTURE of `depth` nested multiparts around one text part.
fn nested_bodystructure(depth: usize) -> Vec<u8> {
    let mut v = b"(".repeat(depth);
    v.extend_from_slice(b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 1)");
    v.extend_from_slice(&b" \"mixed\")".repeat(depth));
    v
}

fn bodystructure_case(name: &str, depth: usize) -> Answer {
    let mut rig = Rig::new(name, Setup::default());
    // Not asked for (summaries fetch headers only), sent anyway.
    let mut extra = b"BODYSTRUCTURE ".to_vec();
    extra.extend(nested_bodystructure(depth));
    extra.push(b' ');
    let mut fetch = summary_item(1, 1, &extra, &plain_header(1));
    fetch.extend(summary_item(2, 2, b"", &plain_header(2)));
    fetch.extend(summary_item(3, 3, b"", &plain_header(3)));
    fetch.extend_from_slice(b"{tag} OK done\r\n");
    let a = rig.hostile(name, vec![Plan::at("UID FETCH", vec![Step::Reply(fetch)])], "search", json!({"account": "bad"}), QUICK);
    rig.assert_recovers(name);
    a
}

const NESTING_REFUSED: &str = "imap protocol error: the server sent a response the imap library cannot parse during uid fetch";

#[test]
fn nested_bodystructure_500_levels_unasked() {
    // This aborted the process (stack overflow in imap-proto's recursive parser, even on the
    // 8 MiB request stack); the tap now stops nesting at 64 levels (src/imap/tap.rs).
    let case = "500-level BODYSTRUCTURE, unasked";
    let a = bodystructure_case(case, 500);
    error_is(case, &a, "protocol_error", NESTING_REFUSED);

    let case = "100,000-level BODYSTRUCTURE, unasked";
    let a = bodystructure_case(case, 100_000);
    error_is(case, &a, "protocol_error", NESTING_REFUSED);

    // Within the limit, an unasked BODYSTRUCTURE is simply ignored.
    let case = "60-level BODYSTRUCTURE, unasked";
    let a = bodystructure_case(case, 60);
    assert_eq!(a.code(), None, "{case}: {}", a.result);
    let subjects: Vec<&str> = a.sc()["untrusted"]["messages"].as_array().unwrap().iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["Message 3", "Message 2", "Message 1"], "{case}");
}

#[test]
fn uidvalidity_changes_between_calls() {
    let case = "UIDVALIDITY change between calls";
    let mut rig = Rig::new("uidvalidity", Setup::default());
    let a = rig.call("search", json!({"account": "bad"}));
    let old_id = a.sc()["meta"]["messages"][2]["id"].as_str().unwrap().to_string();
    assert_eq!(old_id, msg_id("bad", "INBOX", 7, 1));
    // The folder is recreated: new UIDVALIDITY, and UID 1 is now another message.
    rig.bad.mailbox(|m| {
        let inbox = &mut m.folders[0];
        inbox.uidvalidity = 8;
        inbox.messages = (1..=3).map(|i| fakeimap::message(i, &format!("Other message {i}"), "Not the one you meant.")).collect();
    });
    let before = rig.bad.commands().len();
    let a = rig.hostile(case, vec![], "fetch_message", json!({"id": old_id}), QUICK);
    error_is(case, &a, "uidvalidity_changed", "uidvalidity of folder \"INBOX\" changed from 7 to 8; earlier uids are no longer valid");
    let a = rig.hostile(case, vec![], "update_flags", json!({"ids": [old_id], "add": ["\\Flagged"]}), QUICK);
    error_is(case, &a, "uidvalidity_changed", "uidvalidity of folder \"INBOX\" changed from 7 to 8; earlier uids are no longer valid");
    // Nothing was fetched or changed after the change.
    let after: Vec<String> = rig.bad.commands()[before..].to_vec();
    println!("{case}: commands after the change: {after:?}");
    assert!(!after.iter().any(|c| c.starts_with("UID FETCH") || c.starts_with("UID STORE")), "{case}: {after:?}");
    assert!(rig.bad.mailbox(|m| m.folders[0].messages.iter().all(|m| m.flags.is_empty())));
    // A new search issues new ids, which work.
    let a = rig.call("search", json!({"account": "bad"}));
    let new_id = a.sc()["meta"]["messages"][2]["id"].as_str().unwrap().to_string();
    assert_eq!(new_id, msg_id("bad", "INBOX", 8, 1));
    let m = rig.call("fetch_message", json!({"id": new_id}));
    assert_eq!(m.sc()["untrusted"]["subject"], json!("Other message 1"));
    rig.assert_recovers(case);
}

#[test]
fn flood_of_untagged_expunge() {
    // A million lines (13 MB, within the response limit): the debug binary parses about 40,000
    // lines a second, so the command times out, promptly.
    let case = "1,000,000 untagged EXPUNGE";
    let mut rig = Rig::new("expunge", Setup::default());
    let flood = |n: usize| {
        Plan::at("UID SEARCH", vec![Step::Repeat(b"* 1 EXPUNGE\r\n".to_vec(), n), Step::reply("* SEARCH 1 2 3\r\n{tag} OK done\r\n")])
    };
    let a = rig.hostile(case, vec![flood(1_000_000)], "search", json!({"account": "bad"}), ms(COMMAND_MS) + MARGIN);
    error_is(case, &a, "timeout", &timeout_message("limits.command_timeout_ms", COMMAND_MS));
    rig.assert_recovers(case);

    // Given the time, 400,000 lines are read and parsed whole. Parsed all at once they took
    // 10 bytes of memory per byte of flood (a million lines: 143 MiB); one at a time they take
    // none (src/imap/parse.rs, each_response).
    let case = "400,000 untagged EXPUNGE, with time to read them";
    let mut rig = Rig::new("expunge2", Setup { command_ms: 60_000, ..Setup::default() });
    let a = rig.hostile(case, vec![flood(400_000)], "search", json!({"account": "bad"}), ms(60_000));
    assert_eq!(a.code(), None, "{case}: {}", a.result);
    assert_eq!(a.sc()["meta"]["total"], json!(3), "{case}");
    rig.assert_recovers(case);
}

#[test]
fn no_greeting() {
    let case = "no greeting";
    let mut rig = Rig::new("nogreeting", Setup::default());
    let a = rig.hostile(case, vec![Plan::script(vec![Step::Stall])], "search", json!({"account": "bad"}), ms(GREETING_MS) + MARGIN);
    error_is(case, &a, "timeout", &timeout_message("limits.greeting_timeout_ms", GREETING_MS));
    rig.assert_password_never_sent(case);
    rig.assert_recovers(case);
    rig.assert_login_seen(case);

    let case = "closed instead of a greeting";
    let mut rig = Rig::new("nogreeting2", Setup::default());
    let a = rig.hostile(case, vec![Plan::script(vec![Step::Close])], "search", json!({"account": "bad"}), QUICK);
    error_is(case, &a, "protocol_error", "imap protocol error: connection lost before login");
    rig.assert_password_never_sent(case);
    rig.assert_recovers(case);
}

#[test]
fn stalled_tls_handshake() {
    let case = "stalled TLS handshake";
    let mut rig = Rig::new("tlsstall", Setup::default());
    let plan = Plan::script(vec![]).transport(Transport::Silent);
    let a = rig.hostile(case, vec![plan], "search", json!({"account": "bad"}), ms(GREETING_MS) + MARGIN);
    error_is(case, &a, "timeout", &timeout_message("limits.greeting_timeout_ms", GREETING_MS));
    rig.assert_password_never_sent(case);
    rig.assert_recovers(case);
}

#[test]
fn wrong_certificate() {
    let case = "certificate from another CA";
    let mut rig = Rig::new("othercert", Setup::default());
    let other = TestCa::create_other(&rig.dir.join("other-ca"));
    let plan = Plan::good().transport(Transport::TlsWith(fakeimap::acceptor(&other)));
    let a = rig.hostile(case, vec![plan], "search", json!({"account": "bad"}), QUICK);
    assert_eq!(a.code().as_deref(), Some("tls_error"), "{case}: {}", a.result);
    println!("{case}: {}", a.message());
    assert!(a.message().starts_with("tls failed: ") && a.message().contains("certificate verify failed"), "{case}: {}", a.message());
    rig.assert_password_never_sent(case);
    rig.assert_recovers(case);
    rig.assert_login_seen(case);

    let case = "certificate for another host name";
    let mut rig = Rig::new("wrongname", Setup::default());
    let plan =
        Plan::good().transport(Transport::TlsWith(fakeimap::acceptor_for_name(&rig.bad.ca, "imap.wrong.example", &rig.dir.join("leaf"))));
    let a = rig.hostile(case, vec![plan], "search", json!({"account": "bad"}), QUICK);
    assert_eq!(a.code().as_deref(), Some("tls_error"), "{case}: {}", a.result);
    println!("{case}: {}", a.message());
    assert!(a.message().starts_with("tls failed: ") && a.message().contains("certificate verify failed"), "{case}: {}", a.message());
    rig.assert_password_never_sent(case);
    rig.assert_recovers(case);
}

#[test]
fn login_disabled() {
    let case = "LOGINDISABLED";
    let mut rig = Rig::new("logindisabled", Setup::default());
    let plan = Plan::good().caps("IMAP4rev1 LOGINDISABLED");
    let a = rig.hostile(case, vec![plan], "search", json!({"account": "bad"}), QUICK);
    error_is(case, &a, "unsupported", "not supported by the server: login: the server disabled LOGIN and offers no AUTH=PLAIN");
    rig.assert_password_never_sent(case);
    // No credential was sent, so this is not a refused login: the account is not blocked, and
    // the next call works once the server behaves.
    rig.assert_recovers(case);
    rig.assert_login_seen(case);
}

#[test]
fn plain_port() {
    let case = "plain port without STARTTLS";
    let mut rig = Rig::new("plain-starttls", Setup { tls: "starttls", ..Setup::default() });
    rig.bad.set_default(Plan::good().transport(Transport::Starttls));
    let plan = Plan::good().transport(Transport::Plain);
    let a = rig.hostile(case, vec![plan], "search", json!({"account": "bad"}), QUICK);
    error_is(case, &a, "starttls_unavailable", "server does not offer starttls; refusing to send credentials without tls");
    rig.assert_password_never_sent(case);
    let received = String::from_utf8_lossy(&rig.bad.received()).into_owned();
    assert_eq!(received, "m1 CAPABILITY\r\n", "{case}: only CAPABILITY may be sent");
    rig.assert_recovers(case);
    rig.assert_login_seen(case);

    let case = "plain port, implicit TLS configured";
    let mut rig = Rig::new("plain-implicit", Setup::default());
    let a = rig.hostile(case, vec![Plan::good().transport(Transport::Plain)], "search", json!({"account": "bad"}), QUICK);
    assert_eq!(a.code().as_deref(), Some("tls_error"), "{case}: {}", a.result);
    println!("{case}: {}", a.message());
    rig.assert_password_never_sent(case);
    rig.assert_recovers(case);
}

#[test]
fn nested_greeting() {
    // The greeting is parsed before the tap exists (src/imap/conn.rs, PreAuth), with
    // imap-proto's recursive parser; pre-login lines are held to the tap's nesting limit.
    let case = "greeting nested 5,000 levels";
    let mut rig = Rig::new("deepgreeting", Setup::default());
    let mut greeting = b"* 1 FETCH (BODYSTRUCTURE ".to_vec();
    greeting.extend(nested_bodystructure(5_000));
    greeting.extend_from_slice(b")\r\n");
    let a = rig.hostile(case, vec![Plan::script(vec![Step::Send(greeting), Step::Stall])], "search", json!({"account": "bad"}), QUICK);
    assert_eq!(a.code().as_deref(), Some("protocol_error"), "{case}: {}", a.result);
    rig.assert_password_never_sent(case);
    rig.assert_recovers(case);
}

#[test]
fn circuit_breaker_opens_and_recovers() {
    let case = "circuit breaker";
    let breaker = "failures = 2\nwindow_ms = 60000\nopen_ms = 1000\nmax_open_ms = 8000\nprobe_timeout_ms = 5000\n";
    let mut rig = Rig::new("breaker", Setup { breaker, ..Setup::default() });
    let closed = || Plan::script(vec![Step::Close]);
    let lost = "imap protocol error: connection lost before login";
    // Two failures in the window open the circuit.
    for _ in 0..2 {
        let a = rig.hostile(case, vec![closed()], "search", json!({"account": "bad"}), QUICK);
        error_is(case, &a, "protocol_error", lost);
    }
    assert_eq!(rig.bad.connections(), 2);
    // Open: refused at once, without a connection, with a retry hint; `good` is not affected.
    let a = rig.hostile(case, vec![], "search", json!({"account": "bad"}), ms(500));
    assert_eq!(a.code().as_deref(), Some("circuit_open"), "{case}: {}", a.result);
    assert!(
        a.message().starts_with("account bad: failing fast after 2 connection failure(s) (circuit open); next attempt in "),
        "{}",
        a.message()
    );
    let retry = a.result["structuredContent"]["error"]["retry_after_ms"].as_u64().unwrap();
    assert!((1..=1000).contains(&retry), "{case}: retry_after_ms {retry}");
    assert_eq!(rig.bad.connections(), 2, "{case}: an open circuit must not connect");
    // After the open time one probe goes through; it fails, and the circuit reopens for twice
    // as long.
    std::thread::sleep(ms(retry + 50));
    let a = rig.hostile(case, vec![closed()], "search", json!({"account": "bad"}), QUICK);
    error_is(case, &a, "protocol_error", lost);
    let a = rig.call("search", json!({"account": "bad"}));
    assert_eq!(a.code().as_deref(), Some("circuit_open"), "{case}: {}", a.result);
    let retry = a.result["structuredContent"]["error"]["retry_after_ms"].as_u64().unwrap();
    assert!((1000..=2000).contains(&retry), "{case}: retry_after_ms {retry} after a failed probe");
    assert_eq!(rig.bad.connections(), 3);
    // The server behaves again: the next probe succeeds and closes the circuit.
    std::thread::sleep(ms(retry + 50));
    let a = rig.hostile(case, vec![], "search", json!({"account": "bad"}), QUICK);
    assert_eq!(a.code(), None, "{case}: probe: {}", a.result);
    assert_eq!(a.sc()["meta"]["total"], json!(3));
    rig.assert_recovers(case);
}

#[test]
fn flood_of_unsolicited_fetch() {
    // Flag updates of another message, 250,000 of them (8 MB), then the answer asked for. Each
    // became a parsed item kept to the end: ten times the flood's size in memory (500,000 took
    // 145 MiB); only the asked UIDs are kept now (src/imap/parse.rs, fetches_of).
    let case = "250,000 unsolicited FETCH";
    let mut rig = Rig::new("fetchflood", Setup { command_ms: 60_000, ..Setup::default() });
    let mut answer = summary_item(1, 1, b"", &plain_header(1));
    answer.extend(summary_item(2, 2, b"", &plain_header(2)));
    answer.extend(summary_item(3, 3, b"", &plain_header(3)));
    answer.extend_from_slice(b"{tag} OK done\r\n");
    let plan = Plan::at("UID FETCH", vec![Step::Repeat(b"* 9 FETCH (UID 9 FLAGS (\\Seen))\r\n".to_vec(), 250_000), Step::Reply(answer)]);
    let a = rig.hostile(case, vec![plan], "search", json!({"account": "bad"}), ms(60_000));
    assert_eq!(a.code(), None, "{case}: {}", a.result);
    let subjects: Vec<&str> = a.sc()["untrusted"]["messages"].as_array().unwrap().iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["Message 3", "Message 2", "Message 1"], "{case}");
    rig.assert_recovers(case);
}

#[test]
fn list_of_a_million_flags() {
    // One 3 MB line (within the response limit) took 100 MiB, and 4,000,000 flags 339 MiB:
    // imap-proto's vector of items plus our strings. The tap now cuts a parenthesized list
    // after 10,000 items.
    let case = "one FETCH line with 1,000,000 flags";
    let mut rig = Rig::new("flags", Setup { command_ms: 30_000, ..Setup::default() });
    let mut line = b"* 1 FETCH (UID 1 FLAGS (".to_vec();
    line.extend(b"\\a ".repeat(1_000_000));
    line.extend_from_slice(b"\\b))\r\n");
    let plan = Plan::at("UID FETCH", vec![Step::Reply(line), Step::reply("{tag} OK done\r\n")]);
    let a = rig.hostile(case, vec![plan], "search", json!({"account": "bad"}), ms(30_000));
    error_is(case, &a, "protocol_error", NESTING_REFUSED);
    assert!(a.took < QUICK, "{case}: {:?}", a.took);
    rig.assert_recovers(case);
}
