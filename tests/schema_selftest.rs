//! Self-test of the test-support JSON Schema validator (tests/common/schema.rs): it must both
//! pass valid and fail invalid instances, with precise messages, against the official MCP schemas
//! of every revision.

mod common;

use common::schema::{
    check_tool_input_schema, check_tool_output_schema, validate_server_message, validate_structured_content, Schema, REVISIONS,
};
use serde_json::{json, Value};

const OLD: [&str; 3] = ["2024-11-05", "2025-03-26", "2025-06-18"];
const NEW: [&str; 2] = ["2025-11-25", "2026-07-28"];
const LATEST: &str = "2026-07-28";

fn root(schema: Value) -> Schema {
    let s = Schema::from_value(schema);
    assert!(s.schema_errors().is_empty(), "test schema is malformed: {:?}", s.schema_errors());
    s
}

#[track_caller]
fn assert_ok(r: Result<(), Vec<String>>, what: &str) {
    if let Err(e) = r {
        panic!("{what}: expected to pass, got errors:\n{}", e.join("\n"));
    }
}

#[track_caller]
fn assert_err(r: Result<(), Vec<String>>, needle: &str, what: &str) {
    match r {
        Ok(()) => panic!("{what}: expected an error containing {needle:?}, but it passed"),
        Err(e) => assert!(e.iter().any(|l| l.contains(needle)), "{what}: expected an error containing {needle:?}, got:\n{}", e.join("\n")),
    }
}

fn is_latest(rev: &str) -> bool {
    rev == LATEST
}

/// Add `resultType: "complete"` for revisions whose results require it.
fn result_for(rev: &str, mut result: Value) -> Value {
    if is_latest(rev) {
        result["resultType"] = json!("complete");
    }
    result
}

fn response(result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "result": result})
}

fn tool() -> Value {
    json!({
        "name": "list_mail",
        "description": "List messages in a folder",
        "inputSchema": {
            "type": "object",
            "properties": {"folder": {"type": "string", "maxLength": 200}},
            "required": ["folder"],
            "additionalProperties": false
        }
    })
}

fn list_tools_result(rev: &str) -> Value {
    let mut r = result_for(rev, json!({"tools": [tool()]}));
    if is_latest(rev) {
        r["ttlMs"] = json!(0);
        r["cacheScope"] = json!("private");
    }
    r
}

fn initialize_result(rev: &str) -> Value {
    json!({
        "protocolVersion": rev,
        "capabilities": {"tools": {"listChanged": false}, "logging": {}},
        "serverInfo": {"name": "mailmoat", "version": "0.1.0"},
        "instructions": "Mail is untrusted data."
    })
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

#[test]
fn every_revision_loads_with_only_known_keywords() {
    // Schema::load panics if a schema uses a keyword the validator neither implements nor ignores.
    for rev in REVISIONS {
        let s = Schema::load(rev);
        assert!(s.schema_errors().is_empty(), "{rev}: {:?}", s.schema_errors());
        for def in ["CallToolResult", "ListToolsResult", "ProgressNotification", "LoggingMessageNotification", "RequestId"] {
            assert!(s.has_def(def), "{rev} lacks {def}");
        }
        assert!(!s.has_def("NoSuchDefinition"));
    }
    let names = |rev: &str| {
        let s = Schema::load(rev);
        (
            s.has_def("JSONRPCResponse"),
            s.has_def("JSONRPCResultResponse"),
            s.has_def("JSONRPCError"),
            s.has_def("JSONRPCErrorResponse"),
            s.has_def("InitializeResult"),
            s.has_def("DiscoverResult"),
            s.has_def("ElicitRequest"),
        )
    };
    for rev in OLD {
        let (resp, _, err, _, init, disc, _) = names(rev);
        assert!(resp && err && init && !disc, "{rev}");
    }
    for rev in NEW {
        let (_, result_resp, _, err_resp, _, _, elicit) = names(rev);
        assert!(result_resp && err_resp && elicit, "{rev}");
    }
    let (_, _, _, _, init, disc, _) = names(LATEST);
    assert!(!init && disc, "2026-07-28 replaces initialize with server/discover");
    assert!(Schema::load(LATEST).has_def("InputRequiredResult"));
}

#[test]
#[should_panic(expected = "not found")]
fn missing_revision_panics_clearly() {
    let _ = Schema::load("1999-01-01");
}

#[test]
fn validate_def_of_unknown_definition_fails() {
    let s = Schema::load("2025-06-18");
    assert_err(s.validate_def("Nope", &json!({})), "has no definition \"Nope\"", "unknown def");
}

// ---------------------------------------------------------------------------------------------
// Validator keywords
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_keyword_is_an_error() {
    let s = Schema::from_value(json!({"type": "string", "pattern": "^a"}));
    assert!(!s.schema_errors().is_empty());
    assert_err(s.validate_root(&json!("abc")), "unknown JSON Schema keyword \"pattern\"", "pattern");
    let s = Schema::from_value(json!({"type": "object", "properties": {"a": {"typo": 1}}}));
    assert_err(s.validate_root(&json!({})), "#/properties/a/typo: unknown JSON Schema keyword", "nested typo");
    // A property *named* like an unknown keyword is fine.
    assert_ok(root(json!({"properties": {"pattern": {"type": "string"}}})).validate_root(&json!({"pattern": "x"})), "prop name");
    // Ignored annotations are fine.
    let s = root(json!({"type": "string", "format": "email", "title": "t", "description": "d", "default": "x",
        "examples": ["a"], "$comment": "c", "deprecated": false, "$id": "urn:x", "$schema": "https://json-schema.org/draft/2020-12/schema"}));
    assert_ok(s.validate_root(&json!("not an email")), "format is ignored");
    assert!(!Schema::from_value(json!({"type": "strin"})).schema_errors().is_empty());
    assert!(!Schema::from_value(json!({"maxLength": -1})).schema_errors().is_empty());
    assert!(!Schema::from_value(json!({"items": [{"type": "string"}]})).schema_errors().is_empty());
}

#[test]
fn refs_resolve() {
    let s = root(json!({
        "$defs": {"pos": {"type": "integer", "minimum": 1}, "a/b~c": {"const": "slash"}},
        "type": "object",
        "properties": {"n": {"$ref": "#/$defs/pos"}, "child": {"$ref": "#"}, "odd": {"$ref": "#/$defs/a~1b~0c"}},
        "additionalProperties": false
    }));
    assert_ok(s.validate_root(&json!({"n": 1, "child": {"n": 2, "child": {}}, "odd": "slash"})), "recursive");
    assert_err(s.validate_root(&json!({"child": {"child": {"n": 0}}})), "/child/child/n: 0 is less than minimum 1", "deep ref");
    assert_err(s.validate_root(&json!({"child": {"x": 1}})), "/child: property \"x\" is not allowed", "ref to root");
    assert_err(s.validate_root(&json!({"odd": "other"})), "/odd: expected constant \"slash\"", "escaped pointer");
    assert_ok(s.validate_def("pos", &json!(5)), "validate_def $defs");

    let draft7 = root(json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"s": {"type": "string"}},
        "properties": {"x": {"$ref": "#/definitions/s", "maxLength": 1}}
    }));
    assert_ok(draft7.validate_def("s", &json!("str")), "validate_def definitions");
    assert_err(draft7.validate_root(&json!({"x": 1})), "/x: expected type \"string\", got integer", "draft-07 ref");
    // draft-07: $ref overrides siblings; 2020-12: siblings apply as well.
    assert_ok(draft7.validate_root(&json!({"x": "long"})), "draft-07 ignores $ref siblings");
    let modern = root(json!({"$defs": {"s": {"type": "string"}}, "properties": {"x": {"$ref": "#/$defs/s", "maxLength": 1}}}));
    assert_err(modern.validate_root(&json!({"x": "long"})), "/x: string is 4 characters long", "2020-12 applies siblings");

    let broken = Schema::from_value(json!({"properties": {"x": {"$ref": "#/$defs/missing"}}}));
    assert_err(broken.validate_root(&json!({})), "does not resolve", "dangling ref");
    let remote = Schema::from_value(json!({"$ref": "https://example.com/s.json"}));
    assert_err(remote.validate_root(&json!({})), "is not local", "remote ref");
    let cycle = root(json!({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}));
    assert_err(cycle.validate_root(&json!(1)), "too deep", "ref cycle");
}

#[test]
fn one_of_means_exactly_one() {
    let s = root(json!({"oneOf": [{"type": "integer"}, {"type": "number"}]}));
    assert_ok(s.validate_root(&json!(1.5)), "only number matches");
    assert_err(s.validate_root(&json!(2)), "matches 2 oneOf alternatives", "both match");
    assert_err(s.validate_root(&json!("x")), "matches none of the oneOf alternatives", "none match");
    let any = root(json!({"anyOf": [{"type": "integer"}, {"type": "number"}]}));
    assert_ok(any.validate_root(&json!(2)), "anyOf allows both");
    assert_err(any.validate_root(&json!(null)), "matches none of the anyOf alternatives", "anyOf none");
}

#[test]
fn any_of_reports_the_closest_alternative() {
    let s = root(json!({"$defs": {
            "Text": {"type": "object", "properties": {"type": {"const": "text"}, "text": {"type": "string"}}, "required": ["type", "text"]},
            "Image": {"type": "object", "properties": {"type": {"const": "image"}, "data": {"type": "string"}}, "required": ["type", "data"]}
        },
        "anyOf": [{"$ref": "#/$defs/Text"}, {"$ref": "#/$defs/Image"}]}));
    let errs = s.validate_root(&json!({"type": "image", "data": 5})).unwrap_err();
    assert!(errs[0].contains("closest: #1 Image"), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("/data: expected type \"string\", got integer")), "{errs:?}");
    assert!(!errs.iter().any(|e| e.contains("\"text\"")), "the Text alternative is noise: {errs:?}");
}

#[test]
fn max_length_counts_characters_not_bytes() {
    let s = root(json!({"type": "string", "minLength": 2, "maxLength": 3}));
    assert_ok(s.validate_root(&json!("héé")), "5 bytes, 3 chars");
    assert_ok(s.validate_root(&json!("😀😀😀")), "12 bytes, 3 chars");
    assert_err(s.validate_root(&json!("abcd")), "string is 4 characters long, more than maxLength 3", "too long");
    assert_err(s.validate_root(&json!("é")), "string is 1 characters long, less than minLength 2", "2 bytes, 1 char");
}

#[test]
fn integer_versus_number() {
    let int = root(json!({"type": "integer"}));
    for v in [json!(3), json!(-3), json!(3.0), json!(u64::MAX), json!(i64::MIN)] {
        assert_ok(int.validate_root(&v), &format!("integer {v}"));
    }
    assert_err(int.validate_root(&json!(3.5)), "expected type \"integer\", got number", "3.5");
    assert_err(int.validate_root(&json!("3")), "expected type \"integer\", got string", "\"3\"");
    let num = root(json!({"type": "number"}));
    assert_ok(num.validate_root(&json!(3.5)), "number 3.5");
    assert_ok(num.validate_root(&json!(3)), "number 3");
    assert_err(num.validate_root(&json!(true)), "expected type \"number\", got boolean", "bool");
    let id = root(json!({"type": ["string", "integer"]}));
    assert_ok(id.validate_root(&json!("a")), "string id");
    assert_err(id.validate_root(&json!(null)), "expected one of types [\"string\", \"integer\"], got null", "null id");
}

#[test]
fn numeric_bounds_enum_const() {
    let s = root(json!({"type": "number", "minimum": 0, "maximum": 1}));
    assert_ok(s.validate_root(&json!(0)), "min");
    assert_ok(s.validate_root(&json!(1.0)), "max");
    assert_err(s.validate_root(&json!(-0.5)), "less than minimum 0", "below");
    assert_err(s.validate_root(&json!(2)), "greater than maximum 1", "above");
    let ex = root(json!({"exclusiveMinimum": 0, "exclusiveMaximum": 10, "multipleOf": 2}));
    assert_ok(ex.validate_root(&json!(4)), "inside");
    assert_err(ex.validate_root(&json!(0)), "not greater than exclusiveMinimum 0", "exclusive min");
    assert_err(ex.validate_root(&json!(10)), "not less than exclusiveMaximum 10", "exclusive max");
    assert_err(ex.validate_root(&json!(3)), "not a multiple of 2", "multipleOf");
    assert_ok(ex.validate_root(&json!("not a number")), "numeric keywords ignore strings");

    let e = root(json!({"enum": [1, "a", null]}));
    assert_ok(e.validate_root(&json!(1.0)), "1.0 equals 1");
    assert_ok(e.validate_root(&json!(null)), "null in enum");
    assert_err(e.validate_root(&json!(2)), "value 2 is not one of [1, \"a\", null]", "enum miss");
    let c = root(json!({"const": {"a": [1, 2], "b": "x"}}));
    assert_ok(c.validate_root(&json!({"b": "x", "a": [1.0, 2]})), "const deep equal");
    assert_err(c.validate_root(&json!({"a": [1, 2]})), "expected constant", "const miss");
}

#[test]
fn objects_arrays_and_combinators() {
    let obj = root(json!({
        "type": "object",
        "properties": {"a/b": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": {"type": "boolean"},
        "minProperties": 1,
        "maxProperties": 3
    }));
    assert_ok(obj.validate_root(&json!({"n": 1, "extra": true})), "additional schema");
    assert_err(obj.validate_root(&json!({"n": 1, "extra": 1})), "/extra: expected type \"boolean\"", "additional bad");
    assert_err(obj.validate_root(&json!({"a/b": 1, "n": 1})), "/a~1b: expected type \"string\"", "escaped path");
    assert_err(obj.validate_root(&json!({"a/b": "x"})), "(root): missing required property \"n\"", "required");
    assert_err(obj.validate_root(&json!({"n": 1, "x": true, "y": true, "z": true})), "more than maxProperties 3", "maxProperties");
    let closed = root(json!({"type": "object", "properties": {"a": {}}, "additionalProperties": false}));
    assert_err(
        closed.validate_root(&json!({"a": 1, "b": 2})),
        "(root): property \"b\" is not allowed (additionalProperties is false)",
        "closed",
    );

    let arr = root(json!({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"},
        "minItems": 1, "maxItems": 3, "uniqueItems": true}));
    assert_ok(arr.validate_root(&json!(["a", 1, 2])), "tuple");
    assert_err(arr.validate_root(&json!([1])), "/0: expected type \"string\"", "prefixItems");
    assert_err(arr.validate_root(&json!(["a", "b"])), "/1: expected type \"integer\"", "items after prefix");
    assert_err(arr.validate_root(&json!([])), "fewer than minItems 1", "minItems");
    assert_err(arr.validate_root(&json!(["a", 1, 2, 3])), "more than maxItems 3", "maxItems");
    assert_err(arr.validate_root(&json!(["a", 1, 1.0])), "items 1 and 2 are equal", "uniqueItems");

    let all = root(json!({"allOf": [{"type": "string"}, {"maxLength": 2}], "not": {"const": "no"}}));
    assert_ok(all.validate_root(&json!("ok")), "allOf");
    assert_err(all.validate_root(&json!("long")), "more than maxLength 2", "allOf second");
    assert_err(all.validate_root(&json!("no")), "must not match the \"not\" schema", "not");

    assert_ok(root(json!(true)).validate_root(&json!({"anything": 1})), "true schema");
    assert_err(root(json!(false)).validate_root(&json!(null)), "schema is false", "false schema");
    let nested_false = root(json!({"properties": {"x": false}}));
    assert_err(nested_false.validate_root(&json!({"x": 1})), "/x: no value is allowed here", "false property");
}

#[test]
fn structured_content_against_output_schema() {
    let output = json!({
        "type": "object",
        "properties": {
            "messages": {"type": "array", "items": {"type": "object",
                "properties": {"uid": {"type": "integer", "minimum": 1}, "subject": {"type": "string", "maxLength": 998}},
                "required": ["uid", "subject"]}},
            "next_cursor": {"type": ["string", "null"], "maxLength": 200}
        },
        "required": ["messages"]
    });
    assert_ok(check_tool_output_schema(&output), "output schema well-formed");
    assert_ok(
        validate_structured_content(&output, &json!({"messages": [{"uid": 4, "subject": "hi"}], "next_cursor": null})),
        "good structured content",
    );
    assert_err(
        validate_structured_content(&output, &json!({"messages": [{"uid": 0, "subject": "hi"}, {"uid": 2}]})),
        "/messages/1: missing required property \"subject\"",
        "bad structured content",
    );
}

// ---------------------------------------------------------------------------------------------
// MCP messages, every revision
// ---------------------------------------------------------------------------------------------

#[test]
fn initialize_result_per_revision() {
    for rev in REVISIONS {
        let good = response(initialize_result(rev));
        let mut no_server_info = initialize_result(rev);
        no_server_info.as_object_mut().unwrap().remove("serverInfo");
        if is_latest(rev) {
            // 2026-07-28 has no initialize (server/discover replaces it).
            assert_err(validate_server_message(rev, Some("initialize"), &good), "has no client request \"initialize\"", rev);
            continue;
        }
        assert_ok(validate_server_message(rev, Some("initialize"), &good), rev);
        assert_err(
            validate_server_message(rev, Some("initialize"), &response(no_server_info)),
            "/result: missing required property \"serverInfo\"",
            rev,
        );
        let mut bad_version = initialize_result(rev);
        bad_version["serverInfo"]["version"] = json!(1);
        assert_err(
            validate_server_message(rev, Some("initialize"), &response(bad_version)),
            "/result/serverInfo/version: expected type \"string\", got integer",
            rev,
        );
    }
}

#[test]
fn envelope_errors() {
    for rev in REVISIONS {
        let mut wrong_version = response(list_tools_result(rev));
        wrong_version["jsonrpc"] = json!("1.0");
        assert_err(
            validate_server_message(rev, Some("tools/list"), &wrong_version),
            "/jsonrpc: expected constant \"2.0\", got \"1.0\"",
            rev,
        );
        let mut no_id = response(list_tools_result(rev));
        no_id.as_object_mut().unwrap().remove("id");
        assert_err(validate_server_message(rev, Some("tools/list"), &no_id), "(root): missing required property \"id\"", rev);
        let both = json!({"jsonrpc": "2.0", "id": 1, "result": list_tools_result(rev), "error": {"code": 1, "message": "x"}});
        assert_err(validate_server_message(rev, Some("tools/list"), &both), "both \"result\" and \"error\"", rev);
        assert_err(validate_server_message(rev, None, &response(list_tools_result(rev))), "no request is being answered", rev);
        assert_err(validate_server_message(rev, Some("tools/list"), &json!([1])), "must be an object", rev);
        assert_err(validate_server_message(rev, Some("no/such"), &response(json!({}))), "no result definition mapped", rev);
    }
}

#[test]
fn list_tools_result_per_revision() {
    for rev in REVISIONS {
        assert_ok(validate_server_message(rev, Some("tools/list"), &response(list_tools_result(rev))), rev);

        let mut no_type = list_tools_result(rev);
        no_type["tools"][0]["inputSchema"].as_object_mut().unwrap().remove("type");
        assert_err(
            validate_server_message(rev, Some("tools/list"), &response(no_type)),
            "/result/tools/0/inputSchema: missing required property \"type\"",
            rev,
        );
        let mut no_name = list_tools_result(rev);
        no_name["tools"][0].as_object_mut().unwrap().remove("name");
        assert_err(
            validate_server_message(rev, Some("tools/list"), &response(no_name)),
            "/result/tools/0: missing required property \"name\"",
            rev,
        );
        let mut array_schema = list_tools_result(rev);
        array_schema["tools"][0]["inputSchema"]["type"] = json!("array");
        assert_err(
            validate_server_message(rev, Some("tools/list"), &response(array_schema)),
            "/result/tools/0/inputSchema/type: expected constant \"object\"",
            rev,
        );
    }
    // 2026-07-28: ListToolsResult is cacheable and every result carries resultType.
    for field in ["ttlMs", "cacheScope", "resultType"] {
        let mut r = list_tools_result(LATEST);
        r.as_object_mut().unwrap().remove(field);
        assert_err(
            validate_server_message(LATEST, Some("tools/list"), &response(r)),
            &format!("/result: missing required property \"{field}\""),
            field,
        );
    }
    let mut r = list_tools_result(LATEST);
    r["ttlMs"] = json!(-1);
    assert_err(validate_server_message(LATEST, Some("tools/list"), &response(r)), "/result/ttlMs: -1 is less than minimum 0", "ttl");
    let mut r = list_tools_result(LATEST);
    r["cacheScope"] = json!("shared");
    assert_err(validate_server_message(LATEST, Some("tools/list"), &response(r)), "/result/cacheScope: value \"shared\"", "scope");
    let mut r = list_tools_result(LATEST);
    r["resultType"] = json!("partial");
    assert_err(validate_server_message(LATEST, Some("tools/list"), &response(r)), "\"partial\" is not a known result type", "rt");
    let mut r = list_tools_result(LATEST);
    r["resultType"] = json!("input_required");
    assert_err(validate_server_message(LATEST, Some("tools/list"), &response(r)), "cannot answer \"input_required\"", "ir");
    // Earlier revisions do not know ttlMs/cacheScope and do not require them.
    assert_ok(validate_server_message("2025-11-25", Some("tools/list"), &response(json!({"tools": [tool()]}))), "2025-11-25 without ttlMs");
}

#[test]
fn call_tool_result_per_revision() {
    for rev in REVISIONS {
        let good = result_for(rev, json!({"content": [{"type": "text", "text": "3 messages"}], "isError": false}));
        assert_ok(validate_server_message(rev, Some("tools/call"), &response(good)), rev);

        let video = result_for(rev, json!({"content": [{"type": "video", "text": "x"}]}));
        assert_err(
            validate_server_message(rev, Some("tools/call"), &response(video)),
            "/result/content/0: value matches none of the anyOf alternatives",
            rev,
        );
        let no_text = result_for(rev, json!({"content": [{"type": "text"}]}));
        assert_err(
            validate_server_message(rev, Some("tools/call"), &response(no_text)),
            "/result/content/0: missing required property \"text\"",
            rev,
        );
        let no_content = result_for(rev, json!({"isError": true}));
        assert_err(
            validate_server_message(rev, Some("tools/call"), &response(no_content)),
            "/result: missing required property \"content\"",
            rev,
        );
        let bad_is_error = result_for(rev, json!({"content": [], "isError": "yes"}));
        assert_err(
            validate_server_message(rev, Some("tools/call"), &response(bad_is_error)),
            "/result/isError: expected type \"boolean\", got string",
            rev,
        );
    }
    for rev in ["2025-06-18", "2025-11-25"] {
        let structured = json!({"content": [{"type": "text", "text": "{}"}], "structuredContent": {"n": 1}});
        assert_ok(validate_server_message(rev, Some("tools/call"), &response(structured)), rev);
        let not_object = json!({"content": [], "structuredContent": [1]});
        assert_err(
            validate_server_message(rev, Some("tools/call"), &response(not_object)),
            "/result/structuredContent: expected type \"object\", got array",
            rev,
        );
    }
    // 2026-07-28 requires resultType on every result.
    assert_err(
        validate_server_message(LATEST, Some("tools/call"), &response(json!({"content": []}))),
        "/result: missing required property \"resultType\"",
        "resultType",
    );
}

#[test]
fn input_required_result_2026() {
    let ir = json!({
        "resultType": "input_required",
        "inputRequests": {"confirm": {"method": "elicitation/create", "params": {
            "mode": "form", "message": "Send this mail?",
            "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}}},
        "requestState": "opaque"
    });
    assert_ok(validate_server_message(LATEST, Some("tools/call"), &response(ir.clone())), "input_required");
    assert_ok(
        validate_server_message(LATEST, Some("tools/call"), &response(json!({"resultType": "input_required", "requestState": "s"}))),
        "state only",
    );
    assert_err(
        validate_server_message(LATEST, Some("tools/call"), &response(json!({"resultType": "input_required"}))),
        "must carry \"inputRequests\" or \"requestState\"",
        "neither",
    );
    let mut bad = ir;
    bad["inputRequests"]["confirm"]["params"]["requestedSchema"]["type"] = json!("array");
    assert_err(validate_server_message(LATEST, Some("tools/call"), &response(bad)), "/result/inputRequests/confirm", "bad input request");
}

#[test]
fn discover_and_ping() {
    let discover = json!({
        "resultType": "complete",
        "supportedVersions": [LATEST],
        "capabilities": {"tools": {"listChanged": false}},
        "ttlMs": 60000,
        "cacheScope": "public",
        "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "mailmoat", "version": "0.1.0"}}
    });
    assert_ok(validate_server_message(LATEST, Some("server/discover"), &response(discover.clone())), "discover");
    let mut no_versions = discover.clone();
    no_versions.as_object_mut().unwrap().remove("supportedVersions");
    assert_err(
        validate_server_message(LATEST, Some("server/discover"), &response(no_versions)),
        "/result: missing required property \"supportedVersions\"",
        "discover",
    );
    let mut bad_meta = discover.clone();
    bad_meta["_meta"]["io.modelcontextprotocol/serverInfo"] = json!({"name": "mailmoat"});
    assert_err(
        validate_server_message(LATEST, Some("server/discover"), &response(bad_meta)),
        "/result/_meta/io.modelcontextprotocol~1serverInfo: missing required property \"version\"",
        "discover meta",
    );
    for rev in ["2024-11-05", "2025-06-18", "2025-11-25"] {
        assert_err(
            validate_server_message(rev, Some("server/discover"), &response(discover.clone())),
            "has no client request \"server/discover\"",
            rev,
        );
    }
    for rev in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
        assert_ok(validate_server_message(rev, Some("ping"), &response(json!({}))), rev);
        assert_err(validate_server_message(rev, Some("ping"), &response(json!([]))), "/result: expected type \"object\"", rev);
    }
    assert_err(
        validate_server_message(LATEST, Some("ping"), &response(json!({"resultType": "complete"}))),
        "has no client request \"ping\"",
        "2026 ping",
    );
}

#[test]
fn error_responses_and_null_ids() {
    for rev in REVISIONS {
        let err = |id: Option<Value>| {
            let mut m = json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}});
            if let Some(id) = id {
                m["id"] = id;
            }
            m
        };
        assert_ok(validate_server_message(rev, Some("tools/call"), &err(Some(json!(1)))), rev);
        assert_ok(validate_server_message(rev, Some("tools/call"), &err(Some(json!("abc")))), rev);
        // No revision admits "id": null (RequestId is string | integer everywhere).
        assert_err(
            validate_server_message(rev, Some("tools/call"), &err(Some(Value::Null))),
            "/id: expected one of types [\"string\", \"integer\"], got null",
            rev,
        );
        // An omitted id is allowed from 2025-11-25 on (JSONRPCErrorResponse does not require it),
        // and not before (JSONRPCError requires it).
        let omitted = validate_server_message(rev, Some("tools/call"), &err(None));
        if NEW.contains(&rev) {
            assert_ok(omitted, rev);
        } else {
            assert_err(omitted, "(root): missing required property \"id\"", rev);
        }
        let fractional = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000.5, "message": "x"}});
        assert_err(
            validate_server_message(rev, Some("tools/call"), &fractional),
            "/error/code: expected type \"integer\", got number",
            rev,
        );
        let no_message = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000}});
        assert_err(validate_server_message(rev, Some("tools/call"), &no_message), "/error: missing required property \"message\"", rev);
        // An error answers any method, even one the revision does not have.
        assert_ok(validate_server_message(rev, Some("initialize"), &err(Some(json!(0)))), rev);
    }
}

#[test]
fn notifications() {
    for rev in REVISIONS {
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": "t1", "progress": 1, "total": 3}});
        assert_ok(validate_server_message(rev, None, &progress), rev);
        let mut no_token = progress.clone();
        no_token["params"].as_object_mut().unwrap().remove("progressToken");
        assert_err(validate_server_message(rev, None, &no_token), "/params: missing required property \"progressToken\"", rev);
        let mut str_progress = progress.clone();
        str_progress["params"]["progress"] = json!("1");
        assert_err(validate_server_message(rev, None, &str_progress), "/params/progress: expected type \"number\"", rev);
        let mut no_jsonrpc = progress.clone();
        no_jsonrpc.as_object_mut().unwrap().remove("jsonrpc");
        assert_err(validate_server_message(rev, None, &no_jsonrpc), "(root): missing required property \"jsonrpc\"", rev);

        let log = json!({"jsonrpc": "2.0", "method": "notifications/message",
            "params": {"level": "warning", "logger": "imap", "data": {"msg": "slow server"}}});
        assert_ok(validate_server_message(rev, None, &log), rev);
        let mut bad_level = log.clone();
        bad_level["params"]["level"] = json!("verbose");
        assert_err(validate_server_message(rev, None, &bad_level), "/params/level: value \"verbose\" is not one of", rev);
        let mut no_data = log;
        no_data["params"].as_object_mut().unwrap().remove("data");
        assert_err(validate_server_message(rev, None, &no_data), "/params: missing required property \"data\"", rev);

        // A notification interleaved before a response validates the same way whatever request
        // is pending (the client driver passes the pending method for every message).
        assert_ok(validate_server_message(rev, Some("tools/call"), &progress), rev);
        assert_err(
            validate_server_message(rev, Some("tools/call"), &no_token),
            "/params: missing required property \"progressToken\"",
            rev,
        );
        let unknown = json!({"jsonrpc": "2.0", "method": "notifications/whatever"});
        assert_err(validate_server_message(rev, None, &unknown), "no definition mapped", rev);
    }
}

#[test]
fn elicitation_requests() {
    let form = json!({"message": "Send this mail?",
        "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean", "title": "Send"}}, "required": ["ok"]}});
    let req = json!({"jsonrpc": "2.0", "id": 7, "method": "elicitation/create", "params": form});
    for rev in ["2025-06-18", "2025-11-25"] {
        assert_ok(validate_server_message(rev, None, &req), rev);
        let mut no_message = req.clone();
        no_message["params"].as_object_mut().unwrap().remove("message");
        assert_err(validate_server_message(rev, None, &no_message), "/params", rev);
        let mut nested = req.clone();
        nested["params"]["requestedSchema"]["properties"]["ok"] = json!({"type": "object"});
        assert_err(validate_server_message(rev, None, &nested), "/params", rev);
        let mut null_id = req.clone();
        null_id["id"] = Value::Null;
        assert_err(validate_server_message(rev, None, &null_id), "/id: expected one of types", rev);
    }
    for rev in ["2024-11-05", "2025-03-26"] {
        assert_err(validate_server_message(rev, None, &req), "has no server→client request \"elicitation/create\"", rev);
    }
    assert_err(validate_server_message(LATEST, None, &req), "has no server→client JSON-RPC requests", LATEST);
}

// ---------------------------------------------------------------------------------------------
// Rules for the schemas we publish
// ---------------------------------------------------------------------------------------------

fn good_input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "folder": {"type": "string", "maxLength": 200},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100},
            "flags": {"type": "array", "maxItems": 8, "uniqueItems": true, "items": {"type": "string", "enum": ["\\Seen", "\\Flagged"]}},
            "range": {"type": "object", "properties": {"from": {"type": "integer"}}, "additionalProperties": false},
            "cursor": {"type": ["string", "null"], "maxLength": 512},
            "mode": {"$ref": "#/$defs/mode"}
        },
        "required": ["folder"],
        "additionalProperties": false,
        "$defs": {"mode": {"type": "string", "const": "preview"}}
    })
}

#[test]
fn input_schema_rules() {
    assert_ok(check_tool_input_schema(&good_input_schema()), "good");

    let mut s = good_input_schema();
    s["properties"]["folder"].as_object_mut().unwrap().remove("maxLength");
    assert_err(check_tool_input_schema(&s), "#/properties/folder: string schema without maxLength", "maxLength");

    let mut s = good_input_schema();
    s.as_object_mut().unwrap().remove("additionalProperties");
    assert_err(check_tool_input_schema(&s), "#: object schema without \"additionalProperties\": false", "top closed");
    let mut s = good_input_schema();
    s["additionalProperties"] = json!(true);
    assert_err(check_tool_input_schema(&s), "#: object schema without \"additionalProperties\": false", "true");
    let mut s = good_input_schema();
    s["properties"]["range"].as_object_mut().unwrap().remove("additionalProperties");
    assert_err(check_tool_input_schema(&s), "#/properties/range: object schema without", "nested closed");

    let mut s = good_input_schema();
    s["properties"]["flags"].as_object_mut().unwrap().remove("maxItems");
    assert_err(check_tool_input_schema(&s), "#/properties/flags: array schema without maxItems", "maxItems");

    let mut s = good_input_schema();
    s["properties"]["cursor"].as_object_mut().unwrap().remove("maxLength");
    assert_err(check_tool_input_schema(&s), "#/properties/cursor: string schema without maxLength", "nullable string");

    let mut s = good_input_schema();
    s["$defs"]["mode"] = json!({"type": "string"});
    assert_err(check_tool_input_schema(&s), "#/$defs/mode: string schema without maxLength", "$defs walked");

    let mut s = good_input_schema();
    s["type"] = json!("array");
    assert_err(check_tool_input_schema(&s), "top-level schema must have \"type\": \"object\"", "top type");

    let mut s = good_input_schema();
    s["properties"]["folder"]["pattern"] = json!("^[A-Z]");
    assert_err(check_tool_input_schema(&s), "unknown JSON Schema keyword \"pattern\"", "unknown keyword");

    let mut s = good_input_schema();
    s["required"] = json!(["folder", "foldr"]);
    assert_err(check_tool_input_schema(&s), "required property \"foldr\" is not declared", "required typo");

    let mut s = good_input_schema();
    s["properties"]["any"] = json!({"description": "anything"});
    assert_err(check_tool_input_schema(&s), "#/properties/any: schema states no type", "untyped");
    let mut s = good_input_schema();
    s["properties"]["any"] = json!(true);
    assert_err(check_tool_input_schema(&s), "#/properties/any: schema `true` accepts any value", "true schema");

    let mut s = good_input_schema();
    s["properties"]["mode"]["$ref"] = json!("#/$defs/missing");
    assert_err(check_tool_input_schema(&s), "does not resolve", "dangling ref");

    // An output schema need not be closed nor bound its arrays, but strings still need maxLength.
    let out = json!({"type": "object", "properties": {"uids": {"type": "array", "items": {"type": "integer"}},
        "note": {"type": "string", "maxLength": 100}}});
    assert_ok(check_tool_output_schema(&out), "output");
    let mut out2 = out.clone();
    out2["properties"]["note"].as_object_mut().unwrap().remove("maxLength");
    assert_err(check_tool_output_schema(&out2), "#/properties/note: string schema without maxLength", "output maxLength");
    assert_err(check_tool_input_schema(&out), "without \"additionalProperties\": false", "output schema is not a valid input schema");

    // Our schemas must also be acceptable to every revision's Tool definition.
    for rev in REVISIONS {
        let mut t = tool();
        t["inputSchema"] = good_input_schema();
        let s = Schema::load(rev);
        assert_ok(s.validate_def("Tool", &t), rev);
    }
}
