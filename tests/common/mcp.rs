//! A test MCP client: spawns the built binary, writes JSON-RPC lines, reads its stdout with
//! timeouts, and validates every message it emits against the official schema of the revision.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::schema;

pub const MODERN: &str = "2026-07-28";
pub const LEGACY: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mailmoat")
}

pub struct Client {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// The revision whose schema validates what the server sends.
    pub revision: String,
    next_id: i64,
    /// Every message received, for post-hoc checks (e.g. canaries).
    pub transcript: Vec<Value>,
    /// Notifications received while waiting for responses.
    pub notifications: Vec<Value>,
    /// Output schemas from tools/list, to validate every structuredContent against.
    pub output_schemas: std::collections::HashMap<String, Value>,
    /// How to answer the server's `elicitation/create` requests (the `result` object); None leaves them unanswered.
    pub elicitation_answer: Option<Value>,
    /// The elicitation requests the server sent.
    pub elicitations: Vec<Value>,
}

impl Client {
    /// Spawns `mailmoat serve --config <config>` with extra environment.
    pub fn spawn(config: &Path, revision: &str, env: &[(&str, &str)]) -> Client {
        let mut cmd = Command::new(bin());
        cmd.arg("serve").arg("--config").arg(config).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn mailmoat");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let err_buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let eb = err_buf.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut b = eb.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        });
        Client {
            stdin: Some(child.stdin.take().unwrap()),
            child,
            lines: rx,
            stderr: err_buf,
            revision: revision.to_string(),
            next_id: 1,
            transcript: Vec::new(),
            notifications: Vec::new(),
            output_schemas: std::collections::HashMap::new(),
            elicitation_answer: None,
            elicitations: Vec::new(),
        }
    }

    /// Writes one raw line.
    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    pub fn send(&mut self, msg: &Value) {
        self.send_raw(&serde_json::to_string(msg).unwrap());
    }

    /// Closes stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// The next message, validated; panics after `timeout`.
    pub fn recv(&mut self, timeout: Duration, method_for_validation: Option<&str>) -> Value {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("server wrote non-JSON line {line:?}: {e}"));
                if v.get("id") == Some(&Value::Null) {
                    // JSON-RPC 2.0 requires `id: null` when a request's id could not be read (parse
                    // error, invalid request); MCP's RequestId type has no null, so only the error
                    // object itself is checked here.
                    let e = &v["error"];
                    assert!(e["code"].is_i64() && e["message"].is_string() && v["jsonrpc"] == "2.0", "bad null-id error {v}");
                    assert_eq!(v.as_object().map(|o| o.len()), Some(3), "{v}");
                    self.transcript.push(v.clone());
                    return v;
                }
                if let Err(errs) = schema::validate_server_message(&self.revision, method_for_validation, &v) {
                    panic!("message fails the {} schema: {errs:#?}\nmessage: {v}", self.revision);
                }
                self.transcript.push(v.clone());
                v
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!("no message from the server within {timeout:?}; stderr: {}", self.stderr.lock().unwrap())
            }
            Err(RecvTimeoutError::Disconnected) => panic!("server closed stdout; stderr: {}", self.stderr.lock().unwrap()),
        }
    }

    /// Waits for nothing to arrive for `quiet`; returns whatever arrived (unvalidated lines as JSON).
    pub fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(quiet) {
            out.push(serde_json::from_str(&line).unwrap());
        }
        out
    }

    /// Sends a request and waits for the response with that id, collecting notifications on the way.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        self.request_timeout(method, params, Duration::from_secs(60))
    }

    pub fn request_timeout(&mut self, method: &str, params: Value, timeout: Duration) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null() {
            msg["params"] = params;
        }
        self.send(&msg);
        self.wait_for(&json!(id), method, timeout)
    }

    pub fn wait_for(&mut self, id: &Value, method: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.recv(left, Some(method));
            if v.get("id") == Some(id) && v.get("method").is_none() {
                return v;
            }
            if v["method"] == "elicitation/create" && v.get("id").is_some() {
                self.elicitations.push(v.clone());
                if let Some(answer) = self.elicitation_answer.clone() {
                    self.send(&json!({"jsonrpc": "2.0", "id": v["id"], "result": answer}));
                }
                continue;
            }
            self.notifications.push(v);
        }
    }

    /// Legacy handshake.
    pub fn initialize(&mut self) -> Value {
        self.initialize_with(json!({}))
    }

    /// Legacy handshake declaring these client capabilities.
    pub fn initialize_with(&mut self, capabilities: Value) -> Value {
        let r = self.request(
            "initialize",
            json!({"protocolVersion": self.revision, "capabilities": capabilities, "clientInfo": {"name": "mailmoat-tests", "version": "0"}}),
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        r
    }

    /// `_meta` for a modern request.
    pub fn modern_meta(&self) -> Value {
        json!({
            "io.modelcontextprotocol/protocolVersion": self.revision,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "mailmoat-tests", "version": "0"},
        })
    }

    fn is_modern(&self) -> bool {
        self.revision == MODERN
    }

    /// Adds the modern `_meta` when this client speaks the modern era.
    pub fn params(&self, mut p: Value) -> Value {
        if self.is_modern() {
            if p.is_null() {
                p = json!({});
            }
            let mut meta = self.modern_meta();
            if let Some(extra) = p.get("_meta").and_then(Value::as_object) {
                for (k, v) in extra {
                    meta[k] = v.clone();
                }
            }
            p["_meta"] = meta;
        }
        p
    }

    pub fn list_tools(&mut self) -> Vec<Value> {
        let p = self.params(json!({}));
        let r = self.request("tools/list", p);
        let tools = r["result"]["tools"].as_array().unwrap_or_else(|| panic!("no tools in {r}")).clone();
        for t in &tools {
            if let Some(s) = t.get("outputSchema") {
                self.output_schemas.insert(t["name"].as_str().unwrap().to_string(), s.clone());
            }
        }
        tools
    }

    /// Checks a tools/call result's structuredContent against the tool's outputSchema.
    pub fn check_structured(&mut self, name: &str, result: &Value) {
        if self.revision.as_str() < "2025-06-18" {
            assert!(result.get("structuredContent").is_none(), "{} has no structuredContent: {result}", self.revision);
            return;
        }
        if self.output_schemas.is_empty() {
            self.list_tools();
        }
        let Some(schema) = self.output_schemas.get(name) else { return };
        let sc = result.get("structuredContent").unwrap_or_else(|| panic!("{name}: no structuredContent in {result}"));
        if let Err(errs) = schema::validate_structured_content(schema, sc) {
            panic!("{name}: structuredContent does not match its outputSchema: {errs:#?}\n{sc}");
        }
    }

    /// Calls a tool; returns the `result` object (panics on a JSON-RPC error).
    pub fn call(&mut self, name: &str, arguments: Value) -> Value {
        let p = self.params(json!({"name": name, "arguments": arguments}));
        let r = self.request("tools/call", p);
        match r.get("result") {
            Some(res) => {
                let res = res.clone();
                self.check_structured(name, &res);
                res
            }
            None => panic!("tools/call {name} answered an error: {r}"),
        }
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tool result's structured error code, or None for a success.
pub fn error_code(result: &Value) -> Option<String> {
    if result["isError"] == json!(true) {
        Some(result["structuredContent"]["error"]["code"].as_str().unwrap_or("?").to_string())
    } else {
        None
    }
}

/// The text content of a tool result.
pub fn text(result: &Value) -> String {
    result["content"][0]["text"].as_str().unwrap_or_default().to_string()
}
