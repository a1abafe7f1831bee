//! Schema building blocks and the tools/list rendering of a tool for each protocol revision.

use serde_json::{json, Value};

use super::ToolDef;
use crate::server::Revision;

/// Longest account name accepted in arguments.
pub const ACCOUNT_MAX: usize = 64;
/// Longest folder name accepted in arguments.
pub const FOLDER_MAX: usize = 1000;
/// Longest search string accepted.
pub const QUERY_MAX: usize = 1000;

pub fn string(max: usize, description: &str) -> Value {
    json!({"type": "string", "maxLength": max, "description": description})
}

pub fn int(min: u64, max: u64, description: &str) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max, "description": description})
}

pub fn boolean(description: &str) -> Value {
    json!({"type": "boolean", "description": description})
}

/// An input schema: an object with these properties and nothing else.
pub fn input(properties: Value, required: &[&str]) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

pub fn account_arg() -> Value {
    string(ACCOUNT_MAX, "Account name from list_accounts; optional when only one account is configured.")
}

pub fn id_arg() -> Value {
    string(super::ids::MAX_ID_LEN, "Opaque message id returned by search, fetch_thread or fetch_message.")
}

/// Output schema of an object with these properties (all required unless listed as optional).
pub fn object(properties: Value, optional: &[&str]) -> Value {
    let required: Vec<&String> =
        properties.as_object().map(|o| o.keys().filter(|k| !optional.contains(&k.as_str())).collect()).unwrap_or_default();
    json!({"type": "object", "properties": properties, "required": required})
}

pub fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

pub fn nullable(t: &str) -> Value {
    json!({"type": [t, "null"]})
}

pub fn address() -> Value {
    object(json!({"name": nullable("string"), "email": {"type": "string"}}), &[])
}

pub fn addresses() -> Value {
    array(address())
}

fn finding() -> Value {
    object(
        json!({
            "code": {"type": "string"},
            "severity": {"enum": ["info", "warning", "danger"]},
            "location": {"type": "string"},
            "detail": {"type": "string"},
        }),
        &[],
    )
}

/// The result envelope every tool returns, or the error shape of a failed call.
pub fn output_schema(meta: Value, untrusted: Value) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "meta": meta,
            "untrusted": untrusted,
            "security_warnings": array(finding()),
            "error": object(json!({"code": {"type": "string"}, "message": {"type": "string"}}), &[]),
        },
        "anyOf": [
            {"required": ["meta", "untrusted", "security_warnings"]},
            {"required": ["error"]},
        ],
    })
}

/// The tools/list entry of a tool, shaped for what the revision knows.
pub fn describe(t: &ToolDef, revision: Revision) -> Value {
    let mut v = json!({"name": t.name, "description": t.description, "inputSchema": (t.input_schema)()});
    if revision.has_annotations() {
        v["annotations"] = json!({
            "title": t.title,
            "readOnlyHint": t.read_only,
            "destructiveHint": t.destructive,
            "idempotentHint": t.idempotent,
            "openWorldHint": true,
        });
    }
    if revision.has_structured() {
        v["title"] = json!(t.title);
        let (meta, untrusted) = (t.output_parts)();
        v["outputSchema"] = output_schema(meta, untrusted);
    }
    v
}
