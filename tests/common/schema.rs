//! A small JSON Schema validator (std + serde_json only) for the MCP protocol schemas and for
//! the schemas our tools publish.
//!
//! Supported keywords: `$ref` (local JSON pointers only: `#`, `#/definitions/X`, `#/$defs/X`, ...),
//! `type`, `properties`, `required`, `additionalProperties`, `items` (single schema),
//! `prefixItems`, `enum`, `const`, `anyOf`, `oneOf` (exactly one), `allOf`, `not`, `minimum`,
//! `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (numeric form), `multipleOf`, `minLength`,
//! `maxLength` (counted in Unicode scalar values), `minItems`, `maxItems`, `uniqueItems`,
//! `minProperties`, `maxProperties`, boolean schemas, and the `definitions` / `$defs` containers.
//!
//! Ignored (annotations only): see [`IGNORED_KEYWORDS`]. Every other keyword (for example
//! `pattern`, `patternProperties`, `if`) is reported as an error, so a schema that relies on
//! something this validator does not check is noticed instead of silently passing. The five MCP
//! schema revisions were scanned: they use only `$schema`, `definitions`/`$defs`, `description`,
//! `properties`, `items`, `$ref`, `type`, `minimum`, `maximum`, `format`, `required`, `const`,
//! `additionalProperties`, `anyOf`, `allOf`, `enum` and `maxItems`.
//!
//! `$ref` siblings: for draft-04/06/07 documents (by `$schema`) a `$ref` replaces its sibling
//! keywords, as those drafts specify; otherwise (2020-12, or no `$schema`) siblings apply too.

use serde_json::{Number, Value};
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// The MCP schema revisions available in the shared schema directory.
pub const REVISIONS: [&str; 5] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];

/// Keywords accepted but not checked (annotations, and `format`, which is advisory).
pub const IGNORED_KEYWORDS: [&str; 9] =
    ["$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated", "format"];

/// Keywords this validator implements (plus the `definitions` / `$defs` containers).
pub const IMPLEMENTED_KEYWORDS: [&str; 27] = [
    "$ref",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "definitions",
    "$defs",
];

const TYPE_NAMES: [&str; 7] = ["null", "boolean", "integer", "number", "string", "array", "object"];

/// Deepest chain of nested schema applications (guards against `$ref` cycles that do not
/// consume any of the instance).
const MAX_DEPTH: usize = 256;

/// Directory holding `<revision>.json`: `$MAILMOAT_SCHEMA_DIR` if set, else `../shared/mcp-schema`
/// next to the crate.
pub fn schema_dir() -> PathBuf {
    match std::env::var_os("MAILMOAT_SCHEMA_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/mcp-schema")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    /// draft-04/06/07: `$ref` overrides its siblings.
    Draft07,
    /// 2019-09 / 2020-12 (and the default): `$ref` applies alongside its siblings.
    Draft2020,
}

/// A parsed schema document (the root against which `$ref`s resolve).
pub struct Schema {
    root: Value,
    dialect: Dialect,
    /// Problems with the schema document itself (unknown keywords, bad `$ref`s, malformed
    /// keyword values). Every validation fails with these while they are present.
    schema_errors: Vec<String>,
    /// Where the document came from, for messages.
    origin: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The instance has the wrong JSON type for the schema.
    Type,
    /// `const` / `enum` mismatch.
    Value,
    Other,
}

/// One validation failure; `details` are sub-failures (alternatives of anyOf/oneOf).
#[derive(Clone, Debug)]
struct Failure {
    path: String,
    msg: String,
    kind: Kind,
    details: Vec<Failure>,
}

impl Failure {
    fn new(path: &str, kind: Kind, msg: String) -> Failure {
        Failure { path: path.to_owned(), msg, kind, details: Vec::new() }
    }

    fn render(&self, indent: usize, out: &mut Vec<String>) {
        out.push(format!("{}{}: {}", "  ".repeat(indent), display_path(&self.path), self.msg));
        for d in &self.details {
            d.render(indent + 1, out);
        }
    }
}

fn render_all(failures: &[Failure]) -> Vec<String> {
    let mut out = Vec::new();
    for f in failures {
        f.render(0, &mut out);
    }
    out
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "(root)"
    } else {
        path
    }
}

fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn child(path: &str, token: &str) -> String {
    format!("{path}/{}", escape_token(token))
}

/// Short JSON rendering of a value for messages.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn instance_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integral(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integral(n: &Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => matches!(v, Value::Number(n) if is_integral(n)),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

fn as_i128(n: &Number) -> Option<i128> {
    n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
}

/// Mathematical comparison of two JSON numbers (exact for integers).
fn cmp_num(a: &Number, b: &Number) -> Ordering {
    if let (Some(x), Some(y)) = (as_i128(a), as_i128(b)) {
        return x.cmp(&y);
    }
    let x = a.as_f64().unwrap_or(f64::NAN);
    let y = b.as_f64().unwrap_or(f64::NAN);
    x.partial_cmp(&y).unwrap_or(Ordering::Equal)
}

/// JSON equality as JSON Schema defines it (1 == 1.0; object key order irrelevant).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => cmp_num(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w))),
        _ => a == b,
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Resolve a local `$ref` (`#` or `#/json/pointer`) against `root`.
fn resolve_ref<'a>(root: &'a Value, reference: &str) -> Result<&'a Value, String> {
    let Some(fragment) = reference.strip_prefix('#') else {
        return Err(format!("$ref {reference:?} is not local (only \"#...\" references are supported)"));
    };
    let pointer = percent_decode(fragment).ok_or_else(|| format!("$ref {reference:?} has bad percent-encoding"))?;
    if pointer.is_empty() {
        return Ok(root);
    }
    if !pointer.starts_with('/') {
        return Err(format!("$ref {reference:?}: anchors are not supported, only JSON pointers"));
    }
    let mut node = root;
    for raw in pointer[1..].split('/') {
        let token = raw.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Object(map) => map.get(&token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
        .ok_or_else(|| format!("$ref {reference:?} does not resolve (no {token:?})"))?;
    }
    Ok(node)
}

fn ref_label(schema: &Value, index: usize) -> String {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => format!("#{index} {}", r.rsplit('/').next().unwrap_or(r)),
        None => format!("#{index}"),
    }
}

/// Is `path` the direct child of `parent` (`parent/<token>`)?
fn is_direct_child(path: &str, parent: &str) -> bool {
    path.strip_prefix(parent).and_then(|rest| rest.strip_prefix('/')).is_some_and(|rest| !rest.contains('/'))
}

/// A branch that failed right away on a discriminator (wrong JSON type, or a `const`/`enum`
/// mismatch on the value itself or one of its direct properties) is an alternative that was never
/// meant to match; its errors are noise when another branch got further.
fn rejected_early(failures: &[Failure], path: &str) -> bool {
    failures.iter().any(|f| {
        (f.path == path && matches!(f.kind, Kind::Type | Kind::Value)) || (f.kind == Kind::Value && is_direct_child(&f.path, path))
    })
}

impl Schema {
    /// Load `<schema_dir>/<revision>.json`. Panics with a clear message if the file is missing,
    /// is not JSON, or uses a keyword this validator does not know.
    pub fn load(revision: &str) -> Schema {
        let file = schema_dir().join(format!("{revision}.json"));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "MCP schema for revision {revision:?} not found at {} ({e}); set MAILMOAT_SCHEMA_DIR to the directory \
                 holding <revision>.json (known revisions: {REVISIONS:?})",
                file.display()
            )
        });
        let root: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("MCP schema {} is not valid JSON: {e}", file.display()));
        let mut schema = Schema::from_value(root);
        schema.origin = format!("{revision} ({})", file.display());
        if !schema.schema_errors.is_empty() {
            panic!(
                "MCP schema {} uses constructs the test validator does not support:\n{}",
                file.display(),
                schema.schema_errors.join("\n")
            );
        }
        schema
    }

    /// Wrap a schema document (e.g. a tool's outputSchema). Problems with the schema itself are
    /// reported by every validation (and by [`Schema::schema_errors`]).
    pub fn from_value(root: Value) -> Schema {
        let dialect = match root.get("$schema").and_then(Value::as_str) {
            Some(s) if s.contains("draft-07") || s.contains("draft-06") || s.contains("draft-04") => Dialect::Draft07,
            _ => Dialect::Draft2020,
        };
        let mut schema_errors = Vec::new();
        scan_schema(&root, &root, "#", &mut schema_errors);
        Schema { root, dialect, schema_errors, origin: "inline schema".to_owned() }
    }

    /// Problems with the schema document itself (empty when it is well-formed).
    pub fn schema_errors(&self) -> &[String] {
        &self.schema_errors
    }

    /// The raw schema document.
    pub fn root(&self) -> &Value {
        &self.root
    }

    fn def_value(&self, def: &str) -> Option<&Value> {
        self.root.get("definitions").and_then(|d| d.get(def)).or_else(|| self.root.get("$defs").and_then(|d| d.get(def)))
    }

    /// The JSON pointer of a definition (`#/definitions/X` or `#/$defs/X`).
    pub fn def_pointer(&self, def: &str) -> Option<String> {
        if self.root.get("definitions").and_then(|d| d.get(def)).is_some() {
            Some(format!("#/definitions/{def}"))
        } else if self.root.get("$defs").and_then(|d| d.get(def)).is_some() {
            Some(format!("#/$defs/{def}"))
        } else {
            None
        }
    }

    /// Does the document define `#/definitions/<def>` or `#/$defs/<def>`?
    pub fn has_def(&self, def: &str) -> bool {
        self.def_value(def).is_some()
    }

    /// The raw definition, if present.
    pub fn def(&self, def: &str) -> Option<&Value> {
        self.def_value(def)
    }

    /// Validate `instance` against `#/definitions/<def>` or `#/$defs/<def>`.
    pub fn validate_def(&self, def: &str, instance: &Value) -> Result<(), Vec<String>> {
        self.validate_def_at(def, instance, "")
    }

    /// Like [`Schema::validate_def`], with error paths prefixed by `base_path` (a JSON pointer
    /// such as `/result`).
    pub fn validate_def_at(&self, def: &str, instance: &Value, base_path: &str) -> Result<(), Vec<String>> {
        let Some(schema) = self.def_value(def) else {
            return Err(vec![format!("schema {} has no definition {def:?}", self.origin)]);
        };
        self.run(schema, instance, base_path)
    }

    /// Validate `instance` against the whole document.
    pub fn validate_root(&self, instance: &Value) -> Result<(), Vec<String>> {
        self.run(&self.root, instance, "")
    }

    fn run(&self, schema: &Value, instance: &Value, base_path: &str) -> Result<(), Vec<String>> {
        if !self.schema_errors.is_empty() {
            let mut errs = vec![format!("schema {} is not usable:", self.origin)];
            errs.extend(self.schema_errors.iter().map(|e| format!("  {e}")));
            return Err(errs);
        }
        let mut failures = Vec::new();
        self.check(schema, instance, base_path, 0, &mut failures);
        if failures.is_empty() {
            Ok(())
        } else {
            Err(render_all(&failures))
        }
    }

    fn check(&self, schema: &Value, inst: &Value, path: &str, depth: usize, out: &mut Vec<Failure>) {
        if depth > MAX_DEPTH {
            out.push(Failure::new(path, Kind::Other, "schema nesting too deep ($ref cycle?)".to_owned()));
            return;
        }
        let map = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                out.push(Failure::new(path, Kind::Other, "no value is allowed here (schema is false)".to_owned()));
                return;
            }
            Value::Object(map) => map,
            _ => {
                out.push(Failure::new(path, Kind::Other, format!("invalid schema {}", short(schema))));
                return;
            }
        };

        if let Some(r) = map.get("$ref") {
            let reference = r.as_str().unwrap_or_default();
            match resolve_ref(&self.root, reference) {
                Ok(target) => self.check(target, inst, path, depth + 1, out),
                Err(e) => out.push(Failure::new(path, Kind::Other, e)),
            }
            if self.dialect == Dialect::Draft07 {
                return;
            }
        }

        // type
        if let Some(t) = map.get("type") {
            let names: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !names.iter().any(|n| type_matches(n, inst)) {
                let expected = if names.len() == 1 { format!("type {:?}", names[0]) } else { format!("one of types {names:?}") };
                out.push(Failure::new(path, Kind::Type, format!("expected {expected}, got {}", instance_type(inst))));
            }
        }

        // const / enum
        if let Some(c) = map.get("const") {
            if !json_eq(c, inst) {
                out.push(Failure::new(path, Kind::Value, format!("expected constant {}, got {}", short(c), short(inst))));
            }
        }
        if let Some(Value::Array(options)) = map.get("enum") {
            if !options.iter().any(|o| json_eq(o, inst)) {
                let list: Vec<String> = options.iter().map(short).collect();
                out.push(Failure::new(path, Kind::Value, format!("value {} is not one of [{}]", short(inst), list.join(", "))));
            }
        }

        match inst {
            Value::Number(n) => self.check_number(map, n, path, out),
            Value::String(s) => {
                let len = s.chars().count() as u64;
                if let Some(max) = map.get("maxLength").and_then(Value::as_u64) {
                    if len > max {
                        out.push(Failure::new(path, Kind::Other, format!("string is {len} characters long, more than maxLength {max}")));
                    }
                }
                if let Some(min) = map.get("minLength").and_then(Value::as_u64) {
                    if len < min {
                        out.push(Failure::new(path, Kind::Other, format!("string is {len} characters long, less than minLength {min}")));
                    }
                }
            }
            Value::Array(items) => self.check_array(map, items, path, depth, out),
            Value::Object(obj) => self.check_object(map, obj, path, depth, out),
            Value::Null | Value::Bool(_) => {}
        }

        // combinators
        if let Some(Value::Array(subs)) = map.get("allOf") {
            for sub in subs {
                self.check(sub, inst, path, depth + 1, out);
            }
        }
        if let Some(Value::Array(subs)) = map.get("anyOf") {
            let mut branches = Vec::with_capacity(subs.len());
            let mut matched = false;
            for sub in subs {
                let mut f = Vec::new();
                self.check(sub, inst, path, depth + 1, &mut f);
                if f.is_empty() {
                    matched = true;
                    break;
                }
                branches.push(f);
            }
            if !matched {
                out.push(self.no_match(subs, branches, path, "anyOf"));
            }
        }
        if let Some(Value::Array(subs)) = map.get("oneOf") {
            let mut branches = Vec::with_capacity(subs.len());
            let mut matching = Vec::new();
            for (i, sub) in subs.iter().enumerate() {
                let mut f = Vec::new();
                self.check(sub, inst, path, depth + 1, &mut f);
                if f.is_empty() {
                    matching.push(ref_label(sub, i));
                }
                branches.push(f);
            }
            match matching.len() {
                0 => out.push(self.no_match(subs, branches, path, "oneOf")),
                1 => {}
                _ => out.push(Failure::new(
                    path,
                    Kind::Other,
                    format!("value matches {} oneOf alternatives ({}); exactly one must match", matching.len(), matching.join(", ")),
                )),
            }
        }
        if let Some(sub) = map.get("not") {
            let mut f = Vec::new();
            self.check(sub, inst, path, depth + 1, &mut f);
            if f.is_empty() {
                out.push(Failure::new(path, Kind::Other, format!("value must not match the \"not\" schema {}", short(sub))));
            }
        }
    }

    fn no_match(&self, subs: &[Value], branches: Vec<Vec<Failure>>, path: &str, keyword: &str) -> Failure {
        let labelled: Vec<(String, Vec<Failure>)> = subs.iter().enumerate().map(|(i, s)| ref_label(s, i)).zip(branches).collect();
        let close: Vec<&(String, Vec<Failure>)> = labelled.iter().filter(|(_, f)| !rejected_early(f, path)).collect();
        let mut failure = Failure::new(path, Kind::Other, String::new());
        if close.is_empty() {
            let names: Vec<&str> = labelled.iter().map(|(l, _)| l.as_str()).collect();
            failure.msg = format!("value matches none of the {keyword} alternatives [{}]", names.join(", "));
            for (label, f) in &labelled {
                if let Some(first) = f.first() {
                    let mut d = first.clone();
                    d.msg = format!("{} (alternative {label})", d.msg);
                    d.details.clear();
                    failure.details.push(d);
                }
            }
        } else {
            let names: Vec<&str> = close.iter().map(|(l, _)| l.as_str()).collect();
            failure.msg = format!("value matches none of the {} {keyword} alternatives; closest: {}", labelled.len(), names.join(", "));
            for (label, f) in close {
                for d in f {
                    let mut d = d.clone();
                    if names.len() > 1 {
                        d.msg = format!("{} (alternative {label})", d.msg);
                    }
                    failure.details.push(d);
                }
            }
        }
        // The anyOf failed as a whole; if every alternative failed on its type, so did this.
        if labelled.iter().all(|(_, f)| f.iter().any(|x| x.path == path && x.kind == Kind::Type)) {
            failure.kind = Kind::Type;
        }
        failure
    }

    fn check_number(&self, map: &serde_json::Map<String, Value>, n: &Number, path: &str, out: &mut Vec<Failure>) {
        let bound = |k: &str| map.get(k).and_then(Value::as_number);
        if let Some(b) = bound("minimum") {
            if cmp_num(n, b) == Ordering::Less {
                out.push(Failure::new(path, Kind::Other, format!("{n} is less than minimum {b}")));
            }
        }
        if let Some(b) = bound("maximum") {
            if cmp_num(n, b) == Ordering::Greater {
                out.push(Failure::new(path, Kind::Other, format!("{n} is greater than maximum {b}")));
            }
        }
        if let Some(b) = bound("exclusiveMinimum") {
            if cmp_num(n, b) != Ordering::Greater {
                out.push(Failure::new(path, Kind::Other, format!("{n} is not greater than exclusiveMinimum {b}")));
            }
        }
        if let Some(b) = bound("exclusiveMaximum") {
            if cmp_num(n, b) != Ordering::Less {
                out.push(Failure::new(path, Kind::Other, format!("{n} is not less than exclusiveMaximum {b}")));
            }
        }
        if let Some(m) = bound("multipleOf") {
            let ok = match (as_i128(n), as_i128(m)) {
                (Some(x), Some(y)) if y != 0 => x % y == 0,
                _ => {
                    let q = n.as_f64().unwrap_or(f64::NAN) / m.as_f64().unwrap_or(f64::NAN);
                    q.is_finite() && (q - q.round()).abs() < 1e-9
                }
            };
            if !ok {
                out.push(Failure::new(path, Kind::Other, format!("{n} is not a multiple of {m}")));
            }
        }
    }

    fn check_array(&self, map: &serde_json::Map<String, Value>, items: &[Value], path: &str, depth: usize, out: &mut Vec<Failure>) {
        let len = items.len() as u64;
        if let Some(max) = map.get("maxItems").and_then(Value::as_u64) {
            if len > max {
                out.push(Failure::new(path, Kind::Other, format!("array has {len} items, more than maxItems {max}")));
            }
        }
        if let Some(min) = map.get("minItems").and_then(Value::as_u64) {
            if len < min {
                out.push(Failure::new(path, Kind::Other, format!("array has {len} items, fewer than minItems {min}")));
            }
        }
        if map.get("uniqueItems") == Some(&Value::Bool(true)) {
            'outer: for i in 0..items.len() {
                for j in i + 1..items.len() {
                    if json_eq(&items[i], &items[j]) {
                        out.push(Failure::new(
                            path,
                            Kind::Other,
                            format!("items {i} and {j} are equal ({}) but uniqueItems is true", short(&items[i])),
                        ));
                        break 'outer;
                    }
                }
            }
        }
        let mut start = 0;
        if let Some(Value::Array(prefix)) = map.get("prefixItems") {
            for (i, (sub, item)) in prefix.iter().zip(items).enumerate() {
                self.check(sub, item, &child(path, &i.to_string()), depth + 1, out);
            }
            start = prefix.len();
        }
        if let Some(sub) = map.get("items") {
            for (i, item) in items.iter().enumerate().skip(start) {
                self.check(sub, item, &child(path, &i.to_string()), depth + 1, out);
            }
        }
    }

    fn check_object(
        &self,
        map: &serde_json::Map<String, Value>,
        obj: &serde_json::Map<String, Value>,
        path: &str,
        depth: usize,
        out: &mut Vec<Failure>,
    ) {
        if let Some(Value::Array(required)) = map.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(name) {
                    out.push(Failure::new(path, Kind::Other, format!("missing required property {name:?}")));
                }
            }
        }
        let len = obj.len() as u64;
        if let Some(max) = map.get("maxProperties").and_then(Value::as_u64) {
            if len > max {
                out.push(Failure::new(path, Kind::Other, format!("object has {len} properties, more than maxProperties {max}")));
            }
        }
        if let Some(min) = map.get("minProperties").and_then(Value::as_u64) {
            if len < min {
                out.push(Failure::new(path, Kind::Other, format!("object has {len} properties, fewer than minProperties {min}")));
            }
        }
        let props = map.get("properties").and_then(Value::as_object);
        for (key, value) in obj {
            let p = child(path, key);
            match props.and_then(|ps| ps.get(key)) {
                Some(sub) => self.check(sub, value, &p, depth + 1, out),
                None => match map.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(Failure::new(
                        path,
                        Kind::Other,
                        format!("property {key:?} is not allowed (additionalProperties is false)"),
                    )),
                    Some(sub) => self.check(sub, value, &p, depth + 1, out),
                    None => {}
                },
            }
        }
    }
}

fn is_nonneg_int(v: &Value) -> bool {
    v.as_u64().is_some()
}

/// Check the schema document itself: every keyword is known, keyword values are well-formed and
/// every `$ref` resolves. `at` is the schema location (`#/...`).
fn scan_schema(root: &Value, schema: &Value, at: &str, errs: &mut Vec<String>) {
    let map = match schema {
        Value::Bool(_) => return,
        Value::Object(map) => map,
        _ => {
            errs.push(format!("{at}: a schema must be an object or a boolean, got {}", short(schema)));
            return;
        }
    };
    for (key, value) in map {
        let here = format!("{at}/{}", escape_token(key));
        let bad = |errs: &mut Vec<String>, what: &str| errs.push(format!("{here}: {what}, got {}", short(value)));
        match key.as_str() {
            "$ref" => match value.as_str() {
                Some(r) => {
                    if let Err(e) = resolve_ref(root, r) {
                        errs.push(format!("{here}: {e}"));
                    }
                }
                None => bad(errs, "$ref must be a string"),
            },
            "type" => {
                let names: Vec<Option<&str>> = match value {
                    Value::String(s) => vec![Some(s.as_str())],
                    Value::Array(a) if !a.is_empty() => a.iter().map(Value::as_str).collect(),
                    _ => vec![None],
                };
                for n in names {
                    match n {
                        Some(n) if TYPE_NAMES.contains(&n) => {}
                        Some(n) => errs.push(format!("{here}: unknown type name {n:?}")),
                        None => bad(errs, "type must be a type name or a non-empty array of them"),
                    }
                }
            }
            "properties" | "definitions" | "$defs" => match value.as_object() {
                Some(subs) => {
                    for (name, sub) in subs {
                        scan_schema(root, sub, &format!("{here}/{}", escape_token(name)), errs);
                    }
                }
                None => bad(errs, "must be an object of schemas"),
            },
            "additionalProperties" | "not" => scan_schema(root, value, &here, errs),
            "items" => {
                if value.is_array() {
                    bad(errs, "items must be a single schema (the draft-07 array form is not supported; use prefixItems)");
                } else {
                    scan_schema(root, value, &here, errs);
                }
            }
            "prefixItems" | "anyOf" | "oneOf" | "allOf" => match value.as_array() {
                Some(subs) if !subs.is_empty() => {
                    for (i, sub) in subs.iter().enumerate() {
                        scan_schema(root, sub, &format!("{here}/{i}"), errs);
                    }
                }
                _ => bad(errs, "must be a non-empty array of schemas"),
            },
            "required" => {
                if !value.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
                    bad(errs, "required must be an array of strings");
                }
            }
            "enum" => {
                if !value.is_array() {
                    bad(errs, "enum must be an array");
                }
            }
            "const" => {}
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                if !value.is_number() {
                    bad(errs, "must be a number (the draft-04 boolean form is not supported)");
                }
            }
            "multipleOf" => {
                if !value.as_f64().is_some_and(|m| m > 0.0) {
                    bad(errs, "multipleOf must be a number greater than 0");
                }
            }
            "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties" | "maxProperties" => {
                if !is_nonneg_int(value) {
                    bad(errs, "must be a non-negative integer");
                }
            }
            "uniqueItems" => {
                if !value.is_boolean() {
                    bad(errs, "uniqueItems must be a boolean");
                }
            }
            k if IGNORED_KEYWORDS.contains(&k) => {}
            k => errs.push(format!(
                "{here}: unknown JSON Schema keyword {k:?} (neither implemented nor listed as ignored by the test validator)"
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MCP messages
// ---------------------------------------------------------------------------------------------

/// The revision's schema, loaded once per test binary.
pub fn schema_for(revision: &str) -> Arc<Schema> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Schema>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(s) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(revision) {
        return Arc::clone(s);
    }
    let loaded = Arc::new(Schema::load(revision));
    let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
    Arc::clone(guard.entry(revision.to_owned()).or_insert(loaded))
}

/// The result definition answering a client request `method` (independent of revision; whether
/// the revision has it is checked separately).
pub fn result_def_for_method(method: &str) -> Option<&'static str> {
    Some(match method {
        "initialize" => "InitializeResult",
        "ping" | "logging/setLevel" | "resources/subscribe" | "resources/unsubscribe" => "EmptyResult",
        "server/discover" => "DiscoverResult",
        "tools/list" => "ListToolsResult",
        "tools/call" => "CallToolResult",
        "resources/list" => "ListResourcesResult",
        "resources/templates/list" => "ListResourceTemplatesResult",
        "resources/read" => "ReadResourceResult",
        "prompts/list" => "ListPromptsResult",
        "prompts/get" => "GetPromptResult",
        "completion/complete" => "CompleteResult",
        "subscriptions/listen" => "SubscriptionsListenResult",
        _ => return None,
    })
}

/// The definition of a server-sent notification, by method.
pub fn notification_def_for_method(method: &str) -> Option<&'static str> {
    Some(match method {
        "notifications/progress" => "ProgressNotification",
        "notifications/message" => "LoggingMessageNotification",
        "notifications/cancelled" => "CancelledNotification",
        "notifications/tools/list_changed" => "ToolListChangedNotification",
        "notifications/resources/list_changed" => "ResourceListChangedNotification",
        "notifications/resources/updated" => "ResourceUpdatedNotification",
        "notifications/prompts/list_changed" => "PromptListChangedNotification",
        _ => return None,
    })
}

/// The definition of a server→client request, by method.
pub fn server_request_def_for_method(method: &str) -> Option<&'static str> {
    Some(match method {
        "elicitation/create" => "ElicitRequest",
        "ping" => "PingRequest",
        "sampling/createMessage" => "CreateMessageRequest",
        "roots/list" => "ListRootsRequest",
        _ => return None,
    })
}

/// Methods the revision lists as client requests (the `method` consts of `ClientRequest`).
pub fn client_request_methods(schema: &Schema) -> BTreeSet<String> {
    let mut methods = BTreeSet::new();
    let Some(Value::Array(alts)) = schema.def("ClientRequest").and_then(|d| d.get("anyOf")) else {
        return methods;
    };
    for alt in alts {
        let target = alt.get("$ref").and_then(Value::as_str).and_then(|r| resolve_ref(schema.root(), r).ok());
        if let Some(m) = target.and_then(|t| t.pointer("/properties/method/const")).and_then(Value::as_str) {
            methods.insert(m.to_owned());
        }
    }
    methods
}

/// Definition names validate_server_message uses for a revision (the response envelopes).
pub struct RevisionNames {
    /// Envelope of a success response (`JSONRPCResponse` ≤ 2025-06-18, `JSONRPCResultResponse` after).
    pub result_response: &'static str,
    /// Envelope of an error response (`JSONRPCError` ≤ 2025-06-18, `JSONRPCErrorResponse` after).
    pub error_response: &'static str,
}

pub fn revision_names(schema: &Schema) -> RevisionNames {
    RevisionNames {
        result_response: if schema.has_def("JSONRPCResultResponse") { "JSONRPCResultResponse" } else { "JSONRPCResponse" },
        error_response: if schema.has_def("JSONRPCErrorResponse") { "JSONRPCErrorResponse" } else { "JSONRPCError" },
    }
}

/// Validate one message the server wrote to stdout. `method` is the method of the request it
/// answers (None for server-initiated messages: notifications or requests). A message that
/// carries its own `method` (notification / server→client request) is classified by that, so a
/// client driver may pass the pending request's method for everything it reads while waiting.
///
/// * success response: the whole message against the revision's success envelope
///   (`JSONRPCResponse` / `JSONRPCResultResponse`) and `result` against the method's result type;
///   for 2026-07-28 also against `<Result>Response` when the revision defines it, and a result
///   with `resultType: "input_required"` against `InputRequiredResult` (only for methods whose
///   `<Result>Response` admits it: tools/call, prompts/get, resources/read).
/// * error response: `JSONRPCError` / `JSONRPCErrorResponse`.
/// * notification: `JSONRPCNotification` and the method's definition (progress →
///   `ProgressNotification`, message → `LoggingMessageNotification`, ...), which must be one of
///   the revision's `ServerNotification`s.
/// * server→client request: `JSONRPCRequest` and the method's definition (elicitation/create →
///   `ElicitRequest`), which must be one of the revision's `ServerRequest`s (2026-07-28 has no
///   `ServerRequest`: input requests travel inside `InputRequiredResult`).
///
/// A few JSON-RPC / MCP rules the schemas cannot express are checked too (each error says so):
/// a response carries exactly one of `result` and `error` and no `method`; a 2026-07-28
/// `resultType` is "complete" or "input_required"; an `InputRequiredResult` has `inputRequests`
/// or `requestState`.
pub fn validate_server_message(revision: &str, method: Option<&str>, msg: &Value) -> Result<(), Vec<String>> {
    let schema = schema_for(revision);
    let names = revision_names(&schema);
    let mut errs: Vec<String> = Vec::new();
    // Run one definition; tag each top-level error line with the revision and definition.
    let run = |def: &str, instance: &Value, base: &str, errs: &mut Vec<String>| {
        if let Err(e) = schema.validate_def_at(def, instance, base) {
            let tag = schema.def_pointer(def).unwrap_or_else(|| def.to_owned());
            for line in e {
                if line.starts_with(' ') {
                    errs.push(line);
                } else {
                    errs.push(format!("{line}  [{revision} {tag}]"));
                }
            }
            false
        } else {
            true
        }
    };

    let Some(obj) = msg.as_object() else {
        return Err(vec![format!("(root): a JSON-RPC message must be an object, got {}", short(msg))]);
    };
    let has_result = obj.contains_key("result");
    let has_error = obj.contains_key("error");
    let msg_method = obj.get("method");

    if has_result || has_error {
        // ----- a response -----
        if has_result && has_error {
            errs.push("(root): a response must not carry both \"result\" and \"error\" (JSON-RPC 2.0)".to_owned());
        }
        if msg_method.is_some() {
            errs.push("(root): a response must not carry \"method\" (JSON-RPC 2.0)".to_owned());
        }
        let Some(method) = method else {
            errs.push("(root): a response was written but no request is being answered (method is None)".to_owned());
            return Err(errs);
        };
        if has_error {
            run(names.error_response, msg, "", &mut errs);
        } else {
            check_success(&schema, revision, method, msg, &names, &run, &mut errs);
        }
    } else if let Some(m) = msg_method {
        let Some(m) = m.as_str() else {
            return Err(vec![format!("/method: expected a string, got {}", short(m))]);
        };
        // `method` (the pending request) is irrelevant here: a server may send notifications and
        // requests while a request is pending, and the message names its own method.
        if obj.contains_key("id") {
            // ----- a server→client request -----
            if !schema.has_def("ServerRequest") {
                errs.push(format!(
                    "(root): revision {revision} has no server→client JSON-RPC requests (no ServerRequest definition), \
                     got request {m:?}"
                ));
                return Err(errs);
            }
            match server_request_def_for_method(m) {
                Some(def) if schema.has_def(def) && union_has(&schema, "ServerRequest", def) => {
                    run("JSONRPCRequest", msg, "", &mut errs);
                    run(def, msg, "", &mut errs);
                }
                Some(def) => {
                    errs.push(format!("(root): revision {revision} has no server→client request {m:?} ({def} is not a ServerRequest)"))
                }
                None => errs.push(format!("(root): no definition mapped for server→client request {m:?}")),
            }
        } else {
            // ----- a notification -----
            match notification_def_for_method(m) {
                Some(def) if schema.has_def(def) && union_has(&schema, "ServerNotification", def) => {
                    run("JSONRPCNotification", msg, "", &mut errs);
                    run(def, msg, "", &mut errs);
                }
                Some(def) => {
                    errs.push(format!("(root): revision {revision} has no server notification {m:?} ({def} is not a ServerNotification)"))
                }
                None => errs.push(format!("(root): no definition mapped for server notification {m:?}")),
            }
        }
    } else {
        errs.push(format!("(root): not a JSON-RPC message (no \"result\", \"error\" or \"method\"): {}", short(msg)));
    }

    let mut seen = BTreeSet::new();
    errs.retain(|e| seen.insert(e.clone()));
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Does the anyOf union `union` (e.g. ServerNotification) list `#/.../def`?
fn union_has(schema: &Schema, union: &str, def: &str) -> bool {
    let Some(Value::Array(alts)) = schema.def(union).and_then(|u| u.get("anyOf")) else {
        return false;
    };
    alts.iter().filter_map(|a| a.get("$ref").and_then(Value::as_str)).any(|r| r.rsplit('/').next() == Some(def))
}

/// Runs one definition against an instance at a base path, appending tagged errors.
type RunDef<'a> = dyn Fn(&str, &Value, &str, &mut Vec<String>) -> bool + 'a;

fn check_success(
    schema: &Schema,
    revision: &str,
    method: &str,
    msg: &Value,
    names: &RevisionNames,
    run: &RunDef<'_>,
    errs: &mut Vec<String>,
) {
    let before = errs.len();
    run(names.result_response, msg, "", errs);

    let Some(result_def) = result_def_for_method(method) else {
        errs.push(format!("(root): no result definition mapped for method {method:?}"));
        return;
    };
    let listed = client_request_methods(schema);
    if !listed.contains(method) {
        errs.push(format!(
            "(root): revision {revision} has no client request {method:?} (its ClientRequest methods: {})",
            listed.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
        return;
    }
    if !schema.has_def(result_def) {
        errs.push(format!("(root): revision {revision} has no definition {result_def:?} for {method:?}"));
        return;
    }
    let response_def = format!("{result_def}Response");
    let response_def = schema.has_def(&response_def).then_some(response_def);

    let result = msg.get("result").unwrap_or(&Value::Null);
    let result_type = result.get("resultType");
    let mut chosen = result_def;
    // resultType exists from 2026-07-28 on (required by Result there).
    if schema.def("Result").and_then(|r| r.pointer("/properties/resultType")).is_some() {
        match result_type.and_then(Value::as_str) {
            Some("complete") | None => {}
            Some("input_required") => {
                let admits =
                    response_def.as_deref().and_then(|d| schema.def(d)).is_some_and(|d| d.to_string().contains("/InputRequiredResult\""));
                if admits {
                    chosen = "InputRequiredResult";
                    let has_requests = result.get("inputRequests").is_some();
                    let has_state = result.get("requestState").is_some();
                    if !has_requests && !has_state {
                        errs.push(format!(
                            "/result: an InputRequiredResult must carry \"inputRequests\" or \"requestState\" \
                             (MCP rule, not expressible in the schema)  [{revision}]"
                        ));
                    }
                } else {
                    errs.push(format!(
                        "/result/resultType: {method:?} cannot answer \"input_required\" in {revision} \
                         ({result_def}Response does not admit InputRequiredResult)"
                    ));
                }
            }
            Some(other) => errs.push(format!(
                "/result/resultType: {other:?} is not a known result type (\"complete\" or \"input_required\")  [{revision}]"
            )),
        }
    }
    run(chosen, result, "/result", errs);

    // The method-specific envelope (2026-07-28) repeats the checks above; only report what it
    // adds, i.e. when everything else passed.
    if let Some(d) = response_def {
        if errs.len() == before {
            run(&d, msg, "", errs);
        }
    }
}

/// Validate a tool's `structuredContent` against the tool's own `outputSchema`.
pub fn validate_structured_content(output_schema: &Value, structured: &Value) -> Result<(), Vec<String>> {
    Schema::from_value(output_schema.clone()).validate_root(structured)
}

// ---------------------------------------------------------------------------------------------
// Rules for the schemas we publish
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Publish {
    Input,
    Output,
}

/// Check a tool `inputSchema` we publish: only keywords the validator knows, `$ref`s resolve,
/// `type: "object"` at the top, and — in every subschema — objects have
/// `additionalProperties: false` and every `required` name among `properties`, strings have
/// `maxLength` (unless bounded by `enum`/`const`), arrays have `maxItems`, every schema states a
/// `type` (or is a `$ref`/`enum`/`const`/combinator), and no `true` schema accepts anything.
pub fn check_tool_input_schema(schema: &Value) -> Result<(), Vec<String>> {
    check_published(schema, Publish::Input)
}

/// Check a tool `outputSchema` we publish: only keywords the validator knows, `$ref`s resolve,
/// `type: "object"` at the top, and strings have `maxLength` (unless bounded by `enum`/`const`).
pub fn check_tool_output_schema(schema: &Value) -> Result<(), Vec<String>> {
    check_published(schema, Publish::Output)
}

fn check_published(schema: &Value, mode: Publish) -> Result<(), Vec<String>> {
    let parsed = Schema::from_value(schema.clone());
    let mut errs: Vec<String> = parsed.schema_errors().to_vec();
    if schema.get("type") != Some(&Value::String("object".to_owned())) {
        errs.push(format!(
            "#: the top-level schema must have \"type\": \"object\", got {}",
            short(schema.get("type").unwrap_or(&Value::Null))
        ));
    }
    walk_published(schema, "#", mode, &mut errs);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

fn walk_published(schema: &Value, at: &str, mode: Publish, errs: &mut Vec<String>) {
    let map = match schema {
        Value::Bool(true) if mode == Publish::Input => {
            errs.push(format!("{at}: schema `true` accepts any value; state a type and bounds"));
            return;
        }
        Value::Object(map) => map,
        _ => return,
    };
    let types: Vec<&str> = match map.get("type") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let bounded_by_value = map.contains_key("enum") || map.contains_key("const");
    if types.contains(&"string") && !bounded_by_value && !map.contains_key("maxLength") {
        errs.push(format!("{at}: string schema without maxLength"));
    }
    if mode == Publish::Input {
        if types.contains(&"object") {
            if map.get("additionalProperties") != Some(&Value::Bool(false)) {
                errs.push(format!("{at}: object schema without \"additionalProperties\": false"));
            }
            if let Some(Value::Array(required)) = map.get("required") {
                let props = map.get("properties").and_then(Value::as_object);
                for name in required.iter().filter_map(Value::as_str) {
                    if !props.is_some_and(|p| p.contains_key(name)) {
                        errs.push(format!("{at}: required property {name:?} is not declared in properties"));
                    }
                }
            }
        }
        if types.contains(&"array") && !map.contains_key("maxItems") {
            errs.push(format!("{at}: array schema without maxItems"));
        }
        let constrained = !types.is_empty() || bounded_by_value || ["$ref", "anyOf", "oneOf", "allOf"].iter().any(|k| map.contains_key(*k));
        if !constrained {
            errs.push(format!("{at}: schema states no type (nor $ref/enum/const/anyOf/oneOf/allOf)"));
        }
    }
    for (key, value) in map {
        let here = format!("{at}/{}", escape_token(key));
        match key.as_str() {
            "properties" | "definitions" | "$defs" => {
                if let Some(subs) = value.as_object() {
                    for (name, sub) in subs {
                        walk_published(sub, &format!("{here}/{}", escape_token(name)), mode, errs);
                    }
                }
            }
            "additionalProperties" | "items" => walk_published(value, &here, mode, errs),
            // A `not` subschema excludes values; bounds inside it do not bound anything.
            "not" => {}
            "prefixItems" | "anyOf" | "oneOf" | "allOf" => {
                if let Some(subs) = value.as_array() {
                    for (i, sub) in subs.iter().enumerate() {
                        walk_published(sub, &format!("{here}/{i}"), mode, errs);
                    }
                }
            }
            _ => {}
        }
    }
}
