//! Audit records: the event vocabulary, bounded and sanitized fields, the canonical form that is
//! hashed, the keyed subject digest and the timestamp format. Pure: no IO.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::content::date::civil_from_days;

/// `prev` of the very first record of a log.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Characters kept of `detail`.
pub const MAX_DETAIL_CHARS: usize = 200;
/// Characters kept of `account`, `tool` and the client's name and version.
pub const MAX_NAME_CHARS: usize = 64;
/// Characters kept of one target (a message id, a folder name or an address).
pub const MAX_TARGET_CHARS: usize = 320;
/// Entries kept of each target list; the number left out is recorded as `targets.more`.
pub const MAX_TARGETS: usize = 100;
/// Characters kept of a string JSON-RPC request id.
pub const MAX_REQUEST_ID_CHARS: usize = 128;
/// Hex digits of the keyed subject digest.
pub const SUBJECT_DIGEST_HEX: usize = 16;

/// What happened. The spelling in the log is [`Event::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The server started serving.
    Startup,
    /// The configuration was read and validated.
    ConfigLoaded,
    /// A tool was called (for a mutating tool: its intent, written durably before acting).
    ToolCall,
    /// A tool finished, with its outcome and duration.
    ToolResult,
    /// A call was refused by posture or policy.
    Denied,
    /// A call was refused by a rate limit.
    RateLimited,
    /// A dangerous action is waiting for the human's confirmation.
    ConfirmationRequested,
    /// The human confirmed.
    ConfirmationGranted,
    /// The human refused, or the confirmation expired.
    ConfirmationRefused,
    /// The IMAP or SMTP server refused the credentials.
    AuthFailure,
    /// An account's circuit breaker opened.
    CircuitOpen,
    /// The server is stopping.
    Shutdown,
    /// First record of a file started by rotation; `prev` is the previous file's head hash.
    Rotated,
}

impl Event {
    /// Every event, for tests and documentation.
    pub const ALL: [Event; 13] = [
        Event::Startup,
        Event::ConfigLoaded,
        Event::ToolCall,
        Event::ToolResult,
        Event::Denied,
        Event::RateLimited,
        Event::ConfirmationRequested,
        Event::ConfirmationGranted,
        Event::ConfirmationRefused,
        Event::AuthFailure,
        Event::CircuitOpen,
        Event::Shutdown,
        Event::Rotated,
    ];

    /// The log's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Startup => "startup",
            Event::ConfigLoaded => "config_loaded",
            Event::ToolCall => "tool_call",
            Event::ToolResult => "tool_result",
            Event::Denied => "denied",
            Event::RateLimited => "rate_limited",
            Event::ConfirmationRequested => "confirmation_requested",
            Event::ConfirmationGranted => "confirmation_granted",
            Event::ConfirmationRefused => "confirmation_refused",
            Event::AuthFailure => "auth_failure",
            Event::CircuitOpen => "circuit_open",
            Event::Shutdown => "shutdown",
            Event::Rotated => "rotated",
        }
    }

    /// The event a log spelling names.
    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// How a call ended: `ok`, or the stable error code the client saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A stable code such as `imap_error`, `timeout`, `rate_limited`.
    Error(String),
}

/// What a call touched. Empty lists are left out of the record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    /// Opaque message ids as the client sees them.
    pub message_ids: Vec<String>,
    /// Folder names (source and destination).
    pub folders: Vec<String>,
    /// Recipient addresses of a send (to, cc and bcc).
    pub recipients: Vec<String>,
}

impl Targets {
    fn is_empty(&self) -> bool {
        self.message_ids.is_empty() && self.folders.is_empty() && self.recipients.is_empty()
    }
}

/// The MCP client, from `initialize`'s `clientInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub name: String,
    pub version: String,
}

/// What a caller reports; the log adds `seq`, `ts`, `pid`, `prev` and `hash`, and turns the subject
/// into its keyed digest. Every text field is sanitized and clipped when written.
#[derive(Clone, PartialEq)]
pub struct Record {
    pub event: Event,
    pub account: Option<String>,
    pub tool: Option<String>,
    /// The JSON-RPC request id (a string or a number).
    pub request_id: Option<Value>,
    pub client: Option<ClientInfo>,
    pub targets: Targets,
    pub outcome: Option<Outcome>,
    pub duration_ms: Option<u64>,
    /// Held in clear only in memory: the log writes `subject_digest`, never this.
    pub subject: Option<String>,
    /// A short note for the operator. Never a body, a header value from mail, or a secret.
    pub detail: Option<String>,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("event", &self.event)
            .field("account", &self.account)
            .field("tool", &self.tool)
            .field("request_id", &self.request_id)
            .field("client", &self.client)
            .field("targets", &self.targets)
            .field("outcome", &self.outcome)
            .field("duration_ms", &self.duration_ms)
            .field("subject", &self.subject.as_ref().map(|_| "<digested>"))
            .field("detail", &self.detail)
            .finish()
    }
}

impl Record {
    /// A record of this event with every optional field empty.
    pub fn new(event: Event) -> Record {
        Record {
            event,
            account: None,
            tool: None,
            request_id: None,
            client: None,
            targets: Targets::default(),
            outcome: None,
            duration_ms: None,
            subject: None,
            detail: None,
        }
    }

    pub fn account(mut self, account: impl Into<String>) -> Record {
        self.account = Some(account.into());
        self
    }

    pub fn tool(mut self, tool: impl Into<String>) -> Record {
        self.tool = Some(tool.into());
        self
    }

    /// The JSON-RPC id exactly as received.
    pub fn request_id(mut self, id: Value) -> Record {
        self.request_id = Some(id);
        self
    }

    pub fn client(mut self, name: impl Into<String>, version: impl Into<String>) -> Record {
        self.client = Some(ClientInfo { name: name.into(), version: version.into() });
        self
    }

    pub fn message_ids<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Record {
        self.targets.message_ids.extend(ids.into_iter().map(Into::into));
        self
    }

    pub fn folders<S: Into<String>>(mut self, folders: impl IntoIterator<Item = S>) -> Record {
        self.targets.folders.extend(folders.into_iter().map(Into::into));
        self
    }

    pub fn recipients<S: Into<String>>(mut self, addresses: impl IntoIterator<Item = S>) -> Record {
        self.targets.recipients.extend(addresses.into_iter().map(Into::into));
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Record {
        self.outcome = Some(outcome);
        self
    }

    /// Outcome `ok`.
    pub fn ok(self) -> Record {
        self.outcome(Outcome::Ok)
    }

    /// Outcome: this stable error code.
    pub fn error(self, code: impl Into<String>) -> Record {
        self.outcome(Outcome::Error(code.into()))
    }

    pub fn duration(mut self, d: Duration) -> Record {
        self.duration_ms = Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// The subject of the message concerned; only its keyed digest is written.
    pub fn subject(mut self, subject: impl Into<String>) -> Record {
        self.subject = Some(subject.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Record {
        self.detail = Some(detail.into());
        self
    }

    /// The record as written, without `hash`. `subject_digest` is computed by the caller.
    pub(crate) fn to_map(&self, seq: u64, ts: String, pid: u32, prev: &str, subject_digest: Option<String>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("seq".into(), seq.into());
        m.insert("ts".into(), ts.into());
        m.insert("event".into(), self.event.as_str().into());
        m.insert("pid".into(), pid.into());
        m.insert("prev".into(), prev.into());
        if let Some(a) = &self.account {
            m.insert("account".into(), clean(a, MAX_NAME_CHARS).into());
        }
        if let Some(t) = &self.tool {
            m.insert("tool".into(), clean(t, MAX_NAME_CHARS).into());
        }
        if let Some(id) = &self.request_id {
            m.insert("request_id".into(), clean_request_id(id));
        }
        if let Some(c) = &self.client {
            let mut cm = Map::new();
            cm.insert("name".into(), clean(&c.name, MAX_NAME_CHARS).into());
            cm.insert("version".into(), clean(&c.version, MAX_NAME_CHARS).into());
            m.insert("client".into(), Value::Object(cm));
        }
        if !self.targets.is_empty() {
            let mut tm = Map::new();
            let mut more = 0usize;
            for (key, list) in
                [("message_ids", &self.targets.message_ids), ("folders", &self.targets.folders), ("recipients", &self.targets.recipients)]
            {
                if list.is_empty() {
                    continue;
                }
                more += list.len().saturating_sub(MAX_TARGETS);
                let kept: Vec<Value> = list.iter().take(MAX_TARGETS).map(|s| clean(s, MAX_TARGET_CHARS).into()).collect();
                tm.insert(key.into(), Value::Array(kept));
            }
            if more > 0 {
                tm.insert("more".into(), more.into());
            }
            m.insert("targets".into(), Value::Object(tm));
        }
        if let Some(o) = &self.outcome {
            let s = match o {
                Outcome::Ok => "ok".to_string(),
                Outcome::Error(code) => clean(code, MAX_NAME_CHARS),
            };
            m.insert("outcome".into(), s.into());
        }
        if let Some(d) = self.duration_ms {
            m.insert("duration_ms".into(), d.into());
        }
        if let Some(d) = subject_digest {
            m.insert("subject_digest".into(), d.into());
        }
        if let Some(d) = &self.detail {
            m.insert("detail".into(), clean(d, MAX_DETAIL_CHARS).into());
        }
        m
    }
}

/// Seals a record: adds `hash` (SHA-256 of the canonical form without it) and returns the line
/// to write (without its newline) and the hash.
pub(crate) fn seal(mut m: Map<String, Value>) -> (String, String) {
    m.remove("hash");
    let hash = sha256_hex(canonical_object(&m).as_bytes());
    m.insert("hash".into(), hash.clone().into());
    (canonical_object(&m), hash)
}

/// Compact JSON with object keys sorted bytewise at every level: the form that is hashed and
/// written. Sorted explicitly so that it does not depend on serde_json's `preserve_order` feature.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

/// [`canonical`] of an object.
pub fn canonical_object(m: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_object(m, &mut out);
    out
}

fn write_object(m: &Map<String, Value>, out: &mut String) {
    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(k.clone()).to_string());
        out.push(':');
        write_canonical(v, out);
    }
    out.push('}');
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => write_object(m, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        leaf => out.push_str(&leaf.to_string()),
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Whether `s` is 64 lowercase hex digits.
pub(crate) fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// HMAC-SHA256 (RFC 2104) over sha2: one small function instead of another crate.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for i in 0..BLOCK {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = Sha256::new().chain_update(ipad).chain_update(message).finalize();
    let outer = Sha256::new().chain_update(opad).chain_update(inner).finalize();
    k.zeroize();
    ipad.zeroize();
    opad.zeroize();
    outer.into()
}

/// The subject as written: HMAC-SHA256 under the log's key, first 16 hex digits.
pub(crate) fn subject_digest(key: &[u8; 32], subject: &str) -> String {
    let mut h = hex(&hmac_sha256(key, subject.as_bytes()));
    h.truncate(SUBJECT_DIGEST_HEX);
    h
}

/// UTC RFC 3339 with milliseconds, e.g. `2026-01-31T23:59:59.123Z`. A clock before 1970 reads as 1970.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (year, month, day) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2));
    let rem = secs % 86_400;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem / 60 % 60, rem % 60, d.subsec_millis())
}

/// Clips to `max` characters (marking the cut with `…`) and replaces control and bidi-override
/// characters, so that a log line read in a terminal shows what it says.
pub(crate) fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}');
        out.push(if c.is_control() || bidi { '\u{fffd}' } else { c });
    }
    out
}

/// A JSON-RPC id is a string or a number; anything else is recorded as null.
fn clean_request_id(id: &Value) -> Value {
    match id {
        Value::String(s) => clean(s, MAX_REQUEST_ID_CHARS).into(),
        Value::Number(n) => Value::Number(n.clone()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_are_rfc3339_utc_with_millis() {
        let cases: &[(u64, u32, &str)] = &[
            (0, 0, "1970-01-01T00:00:00.000Z"),
            (951_782_400, 7_000_000, "2000-02-29T00:00:00.007Z"),
            (1_700_000_000, 123_999_999, "2023-11-14T22:13:20.123Z"),
            (4_102_444_799, 999_000_000, "2099-12-31T23:59:59.999Z"),
        ];
        for &(secs, nanos, want) in cases {
            assert_eq!(rfc3339_millis(UNIX_EPOCH + Duration::new(secs, nanos)), want);
        }
        assert_eq!(rfc3339_millis(UNIX_EPOCH - Duration::from_secs(5)), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn hmac_matches_rfc4231() {
        // RFC 4231 test cases 2 and 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn canonical_sorts_keys_at_every_level_and_is_compact() {
        let v = json!({"b": 1, "a": {"z": [ {"y": 2, "x": "é\n"} ], "c": null}});
        assert_eq!(canonical(&v), r#"{"a":{"c":null,"z":[{"x":"é\n","y":2}]},"b":1}"#);
        assert_eq!(canonical(&v), serde_json::to_string(&v).unwrap(), "agrees with serde_json's BTreeMap order");
    }

    #[test]
    fn fields_are_sanitized_and_bounded() {
        let long = "x".repeat(500);
        let rec = Record::new(Event::ToolCall)
            .account("work\u{1b}[31m")
            .tool("send_email")
            .request_id(json!({"nested": true}))
            .recipients((0..150).map(|i| format!("r{i}@example.com")))
            .detail(format!("a\u{202e}b{long}"));
        let m = rec.to_map(7, "ts".into(), 1, ZERO_HASH, None);
        assert_eq!(m["account"], "work\u{fffd}[31m");
        assert_eq!(m["request_id"], Value::Null);
        assert_eq!(m["targets"]["recipients"].as_array().unwrap().len(), MAX_TARGETS);
        assert_eq!(m["targets"]["more"], 50);
        assert!(m["targets"].get("folders").is_none());
        let detail = m["detail"].as_str().unwrap();
        assert_eq!(detail.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(detail.starts_with("a\u{fffd}bxx") && detail.ends_with('…'));
        let id = Record::new(Event::ToolCall).request_id(json!("q".repeat(300))).to_map(1, "t".into(), 1, ZERO_HASH, None);
        assert_eq!(id["request_id"].as_str().unwrap().chars().count(), MAX_REQUEST_ID_CHARS + 1);
    }

    #[test]
    fn seal_hashes_the_record_without_its_hash() {
        let m = Record::new(Event::Startup).detail("hi").to_map(1, "2026-01-01T00:00:00.000Z".into(), 42, ZERO_HASH, None);
        let without = canonical(&Value::Object(m.clone()));
        let (line, hash) = seal(m);
        assert_eq!(hash, sha256_hex(without.as_bytes()));
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["hash"], hash.as_str());
        assert_eq!(canonical(&parsed), line);
        assert!(is_hash(&hash) && !is_hash(&hash.to_uppercase()));
    }

    #[test]
    fn event_spellings_round_trip() {
        for e in Event::ALL {
            assert_eq!(Event::parse(e.as_str()), Some(e));
        }
        assert_eq!(Event::parse("Startup"), None);
    }

    #[test]
    fn debug_never_shows_the_subject() {
        let rec = Record::new(Event::ToolCall).subject("CANARY-debug-subject");
        assert!(!format!("{rec:?}").contains("CANARY"));
    }
}
