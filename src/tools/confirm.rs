//! Human confirmation for dangerous tools (send, delete, expunge, delete folder).
//!
//! Three mechanisms, chosen by the `confirm` config key and what the client can do:
//! - legacy era (2025-06-18+, client declared `elicitation`): a server→client
//!   `elicitation/create` request, answered on stdin;
//! - modern era (client declares `elicitation` in `_meta`): an `input_required` result carrying
//!   the elicitation and an opaque `requestState` (HMAC-SHA256 over the tool, the exact
//!   arguments and an expiry); the client retries the same call with `inputResponses`;
//! - token: an error result with a preview and a one-time `confirmation_token`, bound to the
//!   exact arguments and valid for five minutes, that a second identical call must carry. A
//!   token is a speed bump for the model, not a human gate.
//!
//! Request states and tokens are single-use: their nonce is remembered once consumed.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{ids, CallCtx, ToolError};
use crate::config::Confirm;

/// How long a request state or token stays valid.
pub const CONFIRM_TTL: Duration = Duration::from_secs(300);
/// The argument carrying a token.
pub const TOKEN_ARG: &str = "confirmation_token";
/// The key of our elicitation in `inputRequests` / `inputResponses`.
const INPUT_KEY: &str = "confirm";

/// What the tool should do after asking.
pub enum Gate {
    /// Confirmed (or no confirmation configured): act.
    Proceed,
    /// Answer the call with this result instead of acting.
    Respond(Value),
}

/// What the human is asked to approve.
pub struct Preview {
    /// One line: "Send an email to 2 recipients", "Permanently delete 3 messages from INBOX".
    pub action: String,
    /// Details, one per line (recipients, subject, first lines; or counts and folder).
    pub details: Vec<String>,
}

impl Preview {
    fn message(&self) -> String {
        let mut m = format!("mailmoat: an AI agent asks to {}.", self.action);
        for d in &self.details {
            m.push('\n');
            m.push_str(d);
        }
        m.push_str("\nApprove?");
        m
    }
}

struct Keys {
    mac_key: [u8; 32],
    used: Mutex<HashSet<String>>,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut k = [0u8; 32];
        k.copy_from_slice(&Sha256::digest(super::random_bytes(32))[..]);
        Keys { mac_key: k, used: Mutex::new(HashSet::new()) }
    })
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The arguments that a confirmation binds: everything but the token itself, canonical JSON.
fn canonical_args(arguments: &Value) -> String {
    let mut a = arguments.clone();
    if let Some(o) = a.as_object_mut() {
        o.remove(TOKEN_ARG);
    }
    // serde_json's Map is ordered by key, so this serialization is canonical.
    a.to_string()
}

fn mac_hex(kind: &str, tool: &str, args: &str, expiry: u64, nonce: &str) -> String {
    let msg = format!("{kind}\0{tool}\0{args}\0{expiry}\0{nonce}");
    ids::to_hex(&hmac_sha256(&keys().mac_key, msg.as_bytes()))
}

/// Mints `<kind>1.<expiry>.<nonce>.<mac>`.
fn mint(kind: &str, tool: &str, arguments: &Value) -> String {
    let expiry = now_ms() + CONFIRM_TTL.as_millis() as u64;
    let nonce = ids::to_hex(&super::random_bytes(12));
    let mac = mac_hex(kind, tool, &canonical_args(arguments), expiry, &nonce);
    format!("{kind}1.{expiry}.{nonce}.{mac}")
}

/// Checks and consumes a state or token. Errors name what is wrong without revealing the key.
fn redeem(kind: &str, tool: &str, arguments: &Value, presented: &str) -> Result<(), ToolError> {
    let invalid = |why: &str| ToolError::new("confirmation_invalid", format!("the confirmation {why}; ask again"));
    let mut parts = presented.split('.');
    let (Some(head), Some(expiry), Some(nonce), Some(mac), None) = (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("is malformed"));
    };
    if head != format!("{kind}1") || nonce.len() != 24 || mac.len() != 64 {
        return Err(invalid("is malformed"));
    }
    let expiry: u64 = expiry.parse().map_err(|_| invalid("is malformed"))?;
    let want = mac_hex(kind, tool, &canonical_args(arguments), expiry, nonce);
    // Constant-time comparison of the hex MACs.
    let diff = want.bytes().zip(mac.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(invalid("does not match this call (tool or arguments differ, or it was altered)"));
    }
    if now_ms() > expiry {
        return Err(invalid("has expired"));
    }
    let mut used = keys().used.lock().unwrap_or_else(|e| e.into_inner());
    if !used.insert(nonce.to_string()) {
        return Err(invalid("was already used"));
    }
    Ok(())
}

/// The elicitation we ask for: one boolean.
fn elicitation_params(p: &Preview, modern: bool) -> Value {
    let mut params = json!({
        "message": p.message(),
        "requestedSchema": {
            "type": "object",
            "properties": {"confirm": {"type": "boolean", "title": "Approve", "description": p.action}},
            "required": ["confirm"],
        },
    });
    if modern {
        params["mode"] = json!("form");
    }
    params
}

/// Whether an ElicitResult approves.
fn approved(result: &Value) -> Result<(), ToolError> {
    match result.get("action").and_then(Value::as_str) {
        Some("accept") if result.get("content").and_then(|c| c.get("confirm")) == Some(&json!(true)) => Ok(()),
        Some("accept") => Err(ToolError::new("confirmation_refused", "the user did not approve")),
        Some("decline") => Err(ToolError::new("confirmation_refused", "the user declined")),
        Some("cancel") => Err(ToolError::new("confirmation_refused", "the user cancelled")),
        _ => Err(ToolError::new("confirmation_invalid", "the client's answer to the confirmation request is malformed")),
    }
}

/// Asks for confirmation of `tool` with these exact `arguments`, as configured.
pub fn gate(mode: Confirm, ctx: &CallCtx, tool: &str, arguments: &Value, preview: &Preview) -> Result<Gate, ToolError> {
    if mode == Confirm::None {
        return Ok(Gate::Proceed);
    }
    let token = arguments.get(TOKEN_ARG).and_then(Value::as_str);
    let can_elicit = ctx.client_can_elicit;
    if mode == Confirm::Token || (mode == Confirm::Auto && !can_elicit) || token.is_some() && mode != Confirm::Elicit {
        return token_gate(ctx, tool, arguments, preview, token);
    }
    if !can_elicit {
        return Err(ToolError::new(
            "confirmation_unavailable",
            format!("{tool} needs a human's confirmation (confirm = \"elicit\") and this client cannot ask (no elicitation capability)"),
        ));
    }
    if ctx.revision.is_modern() {
        if let Some(state) = ctx.request_state {
            redeem("s", tool, arguments, state)?;
            let answer = ctx
                .input_responses
                .and_then(|r| r.get(INPUT_KEY))
                .ok_or_else(|| ToolError::new("confirmation_invalid", "requestState given without inputResponses.confirm"))?;
            approved(answer)?;
            return Ok(Gate::Proceed);
        }
        let request = json!({"method": "elicitation/create", "params": elicitation_params(preview, true)});
        return Ok(Gate::Respond(json!({
            "resultType": "input_required",
            "inputRequests": {INPUT_KEY: request},
            "requestState": mint("s", tool, arguments),
        })));
    }
    let answer = (ctx.elicit)(elicitation_params(preview, ctx.revision >= crate::server::Revision::V2025_11_25))
        .map_err(|why| ToolError::new("confirmation_refused", format!("no confirmation: {why}")))?;
    approved(&answer)?;
    Ok(Gate::Proceed)
}

fn token_gate(ctx: &CallCtx, tool: &str, arguments: &Value, preview: &Preview, token: Option<&str>) -> Result<Gate, ToolError> {
    if let Some(t) = token {
        redeem("t", tool, arguments, t)?;
        return Ok(Gate::Proceed);
    }
    let t = mint("t", tool, arguments);
    let mut text = format!(
        "confirmation required: {}.\n{}\nTo go ahead, call {tool} again with exactly the same arguments plus \"{TOKEN_ARG}\": \"{t}\" (valid for {} minutes, once).",
        preview.action,
        preview.details.join("\n"),
        CONFIRM_TTL.as_secs() / 60
    );
    text.push_str("\nShow the user what will happen before you do.");
    let mut result = json!({"content": [{"type": "text", "text": text}], "isError": true});
    if ctx.revision.has_structured() {
        result["structuredContent"] = json!({"error": {
            "code": "confirmation_required",
            "message": format!("confirmation required: {}", preview.action),
            "confirmation_token": t,
            "expires_in_ms": CONFIRM_TTL.as_millis() as u64,
            "preview": preview.details,
        }});
    }
    Ok(Gate::Respond(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(ids::to_hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn tokens_bind_tool_and_arguments_and_are_single_use() {
        let args = json!({"to": ["a@example.com"], "subject": "hi"});
        let t = mint("t", "send_email", &args);
        let mut with = args.clone();
        with[TOKEN_ARG] = json!(t);
        // Different arguments, different tool, different kind: refused.
        let other = json!({"to": ["b@example.com"], "subject": "hi"});
        assert_eq!(redeem("t", "send_email", &other, &t).unwrap_err().code, "confirmation_invalid");
        assert_eq!(redeem("t", "send_draft", &args, &t).unwrap_err().code, "confirmation_invalid");
        assert_eq!(redeem("s", "send_email", &args, &t).unwrap_err().code, "confirmation_invalid");
        // The right call redeems once.
        redeem("t", "send_email", &with, &t).unwrap();
        let again = redeem("t", "send_email", &with, &t).unwrap_err();
        assert_eq!(again.message, "the confirmation was already used; ask again");
        // Tampering with any part is caught.
        let t2 = mint("t", "send_email", &args);
        let mut bytes: Vec<char> = t2.chars().collect();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == '0' { '1' } else { '0' };
        let forged: String = bytes.into_iter().collect();
        assert_eq!(
            redeem("t", "send_email", &args, &forged).unwrap_err().message,
            "the confirmation does not match this call (tool or arguments differ, or it was altered); ask again"
        );
        let parts: Vec<&str> = t2.split('.').collect();
        let later = format!("{}.{}.{}.{}", parts[0], parts[1].parse::<u64>().unwrap() + 1000, parts[2], parts[3]);
        assert_eq!(redeem("t", "send_email", &args, &later).unwrap_err().code, "confirmation_invalid");
        assert_eq!(redeem("t", "send_email", &args, "t1.x").unwrap_err().message, "the confirmation is malformed; ask again");
    }

    #[test]
    fn expired_states_are_refused() {
        let args = json!({});
        let nonce = "00".repeat(12);
        let expiry = now_ms() - 1;
        let mac = mac_hex("s", "delete_folder", &canonical_args(&args), expiry, &nonce);
        let state = format!("s1.{expiry}.{nonce}.{mac}");
        assert_eq!(redeem("s", "delete_folder", &args, &state).unwrap_err().message, "the confirmation has expired; ask again");
    }

    #[test]
    fn elicitation_answers() {
        assert!(approved(&json!({"action": "accept", "content": {"confirm": true}})).is_ok());
        assert_eq!(approved(&json!({"action": "accept", "content": {"confirm": false}})).unwrap_err().code, "confirmation_refused");
        assert_eq!(approved(&json!({"action": "decline"})).unwrap_err().code, "confirmation_refused");
        assert_eq!(approved(&json!({"action": "cancel"})).unwrap_err().code, "confirmation_refused");
        assert_eq!(approved(&json!({"nope": 1})).unwrap_err().code, "confirmation_invalid");
    }
}
