//! The read-only tools: list_accounts, list_folders, search, fetch_message, fetch_thread,
//! list_attachments. None of them changes the mailbox (EXAMINE and BODY.PEEK underneath).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::defs::{self, account_arg, addresses, array, boolean, id_arg, input, int, nullable, object, string};
use super::ids::{Cursor, MessageRef};
use super::{Args, CallCtx, Output, Registry, ToolDef, ToolError};
use crate::config::Posture;
use crate::content::{self, Address, Finding, Headers};
use crate::imap::{Date, MailboxName, SearchQuery, Summary};

/// Default number of search results.
const SEARCH_DEFAULT_LIMIT: u64 = 20;
/// Most search results per page.
const SEARCH_MAX_LIMIT: u64 = 100;
/// Longest snippet of a subject or name in text renderings.
const LINE_MAX: usize = 300;

pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef {
            name: "list_accounts",
            title: "List mail accounts",
            description: "List the configured mail accounts with their address and posture (what mailmoat lets you do with each).",
            min_posture: Posture::Readonly,
            read_only: true,
            destructive: false,
            idempotent: true,
            input_schema: || input(json!({}), &[]),
            output_parts: || {
                let acct = object(
                    json!({"name": {"type": "string"}, "email": {"type": "string"}, "posture": {"type": "string"}, "host": {"type": "string"}, "tls": {"type": "string"}}),
                    &[],
                );
                (object(json!({"accounts": array(acct)}), &[]), object(json!({}), &[]))
            },
            handler: list_accounts,
        },
        ToolDef {
            name: "list_folders",
            title: "List folders",
            description:
                "List an account's folders with their role (inbox, sent, drafts, trash, junk, archive), message and unseen counts.",
            min_posture: Posture::Readonly,
            read_only: true,
            destructive: false,
            idempotent: true,
            input_schema: || input(json!({"account": account_arg()}), &[]),
            output_parts: || {
                let folder = object(
                    json!({
                        "name": {"type": "string"}, "delimiter": nullable("string"), "role": nullable("string"),
                        "attributes": array(json!({"type": "string"})), "selectable": {"type": "boolean"},
                        "messages": nullable("integer"), "unseen": nullable("integer"),
                        "uidvalidity": nullable("integer"), "uidnext": nullable("integer"),
                    }),
                    &[],
                );
                (object(json!({"account": {"type": "string"}, "folders": array(folder)}), &[]), object(json!({}), &[]))
            },
            handler: list_folders,
        },
        ToolDef {
            name: "search",
            title: "Search messages",
            description:
                "Search one folder (default INBOX), newest first. All filters combine with AND; with none, lists the newest messages. \
Returns message ids for fetch_message, the total match count, and a cursor for the next page.",
            min_posture: Posture::Readonly,
            read_only: true,
            destructive: false,
            idempotent: true,
            input_schema: search_input,
            output_parts: || (search_meta(), object(json!({"messages": array(summary_untrusted())}), &[])),
            handler: search,
        },
        ToolDef {
            name: "fetch_message",
            title: "Read a message",
            description: "Read one message: decoded headers, the text a human would see (HTML reduced to text), and its attachment list. \
Never marks the message as read.",
            min_posture: Posture::Readonly,
            read_only: true,
            destructive: false,
            idempotent: true,
            input_schema: || {
                input(
                    json!({
                        "id": id_arg(),
                        "max_body_chars": int(100, 1_000_000, "Longest body text to return (default from limits.max_body_chars)."),
                        "include_html": boolean("Also return the sanitized HTML (hidden content, scripts, styles and remote content removed)."),
                        "include_headers": {"type": "array", "maxItems": content::MAX_INCLUDE_HEADERS, "items": {"type": "string", "maxLength": 76},
                                            "description": "Header names whose decoded values to return, e.g. [\"X-Mailer\", \"Received\"]."},
                    }),
                    &["id"],
                )
            },
            output_parts: || {
                let meta = object(
                    json!({
                        "id": {"type": "string"}, "account": {"type": "string"}, "folder": {"type": "string"}, "uid": {"type": "integer"},
                        "flags": array(json!({"type": "string"})), "size": {"type": "integer"}, "fetch_truncated": {"type": "boolean"},
                        "text_source": nullable("string"), "text_truncated": {"type": "boolean"}, "attachments": array(attachment_meta()),
                        "alternative_mismatch": {"type": "boolean"},
                        "authentication": object(json!({"dkim": nullable("string"), "spf": nullable("string"), "dmarc": nullable("string"),
                                                        "aligned": nullable("boolean"), "trusted": {"type": "boolean"}}), &[]),
                        "provenance": object(json!({"list_id": nullable("string"), "list_unsubscribe": {"type": "boolean"}, "precedence": nullable("string"),
                                                    "auto_submitted": nullable("string"), "bulk": {"type": "boolean"}}), &[]),
                    }),
                    &[],
                );
                let untrusted = object(
                    json!({
                        "from": addresses(), "sender": addresses(), "to": addresses(), "cc": addresses(), "reply_to": addresses(),
                        "date": nullable("string"), "subject": nullable("string"), "message_id": nullable("string"),
                        "in_reply_to": array(json!({"type": "string"})), "list_id": nullable("string"), "body": {"type": "string"},
                        "attachments": array(attachment_untrusted()),
                        "links": array(object(json!({"text": {"type": "string"}, "target": {"type": "string"}, "domain": {"type": "string"}}), &[])),
                        "html": nullable("string"),
                        "headers": array(object(json!({"name": {"type": "string"}, "value": {"type": "string"}}), &[])),
                    }),
                    &["html", "headers"],
                );
                (meta, untrusted)
            },
            handler: fetch_message,
        },
        ToolDef {
            name: "fetch_thread",
            title: "Read a thread",
            description: "List the messages of the conversation a message belongs to (same folder), oldest first, as summaries with ids.",
            min_posture: Posture::Readonly,
            read_only: true,
            destructive: false,
            idempotent: true,
            input_schema: || {
                input(
                    json!({"id": id_arg(), "max_messages": int(1, 1000, "Most messages to return (default limits.max_thread_messages).")}),
                    &["id"],
                )
            },
            output_parts: || {
                let meta = object(
                    json!({"account": {"type": "string"}, "folder": {"type": "string"}, "root_id": {"type": "string"}, "count": {"type": "integer"},
                           "complete": {"type": "boolean"}, "method": {"type": "string"}, "messages": array(summary_meta())}),
                    &[],
                );
                (meta, object(json!({"messages": array(summary_untrusted())}), &[]))
            },
            handler: fetch_thread,
        },
        ToolDef {
            name: "list_attachments",
            title: "List attachments",
            description: "List a message's attachments with their part numbers, sizes, declared types and (untrusted) filenames.",
            min_posture: Posture::Readonly,
            read_only: true,
            destructive: false,
            idempotent: true,
            input_schema: || input(json!({"id": id_arg()}), &["id"]),
            output_parts: || {
                (
                    object(
                        json!({"id": {"type": "string"}, "fetch_truncated": {"type": "boolean"}, "attachments": array(attachment_meta())}),
                        &[],
                    ),
                    object(json!({"attachments": array(attachment_untrusted())}), &[]),
                )
            },
            handler: list_attachments,
        },
    ]
}

fn search_input() -> Value {
    let s = |d: &str| string(defs::QUERY_MAX, d);
    input(
        json!({
            "account": account_arg(),
            "folder": string(defs::FOLDER_MAX, "Folder to search (default INBOX), as named by list_folders."),
            "from": s("Sender address or name contains this."),
            "to": s("A To recipient contains this."),
            "cc": s("A Cc recipient contains this."),
            "subject": s("Subject contains this."),
            "body": s("Body text contains this."),
            "text": s("Headers or body contain this."),
            "since": {"type": "string", "maxLength": 10, "format": "date", "description": "On or after this date (YYYY-MM-DD)."},
            "before": {"type": "string", "maxLength": 10, "format": "date", "description": "Before this date (YYYY-MM-DD)."},
            "seen": boolean("Only read (true) or unread (false) messages."),
            "flagged": boolean("Only flagged (true) or unflagged (false) messages."),
            "answered": boolean("Only answered (true) or unanswered (false) messages."),
            "has_attachment": boolean("Only messages with (true) or without (false) attachments, judged by a multipart/mixed Content-Type."),
            "larger": int(0, u32::MAX as u64, "Larger than this many bytes."),
            "smaller": int(1, u32::MAX as u64, "Smaller than this many bytes."),
            "header": {
                "type": "object",
                "properties": {"name": string(76, "Header field name."), "value": s("Header value contains this.")},
                "required": ["name", "value"],
                "additionalProperties": false,
                "description": "Header field contains a value.",
            },
            "keyword": string(200, "Has this IMAP keyword (user flag)."),
            "limit": int(1, SEARCH_MAX_LIMIT, "Results per page (default 20)."),
            "cursor": string(200, "Cursor from a previous page of the same search."),
        }),
        &[],
    )
}

fn summary_meta() -> Value {
    object(
        json!({"id": {"type": "string"}, "uid": {"type": "integer"}, "flags": array(json!({"type": "string"})), "size": {"type": "integer"},
               "internal_date": nullable("string"), "has_attachments": {"type": "boolean"}}),
        &[],
    )
}

fn summary_untrusted() -> Value {
    object(
        json!({"id": {"type": "string"}, "date": nullable("string"), "from": addresses(), "to": addresses(), "subject": nullable("string"),
               "message_id": nullable("string"), "in_reply_to": array(json!({"type": "string"}))}),
        &[],
    )
}

fn search_meta() -> Value {
    object(
        json!({"account": {"type": "string"}, "folder": {"type": "string"}, "uidvalidity": {"type": "integer"}, "total": {"type": "integer"},
               "returned": {"type": "integer"}, "sorted_by": {"type": "string"}, "next_cursor": nullable("string"), "messages": array(summary_meta())}),
        &[],
    )
}

fn attachment_meta() -> Value {
    object(json!({"part": {"type": "string"}, "size": {"type": "integer"}, "disposition": nullable("string")}), &[])
}

fn attachment_untrusted() -> Value {
    object(json!({"part": {"type": "string"}, "filename": nullable("string"), "content_type": {"type": "string"}}), &[])
}

// ---- helpers ----

pub(super) fn addr_json(list: &[Address]) -> Value {
    Value::Array(list.iter().map(|a| json!({"name": a.name, "email": a.email})).collect())
}

pub(super) fn addr_text(list: &[Address]) -> String {
    list.iter()
        .map(|a| match &a.name {
            Some(n) if !n.is_empty() => format!("{} <{}>", content::snippet(n, LINE_MAX), a.email),
            _ => format!("<{}>", a.email),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn opt_text(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

pub(super) fn no_progress(_: u64, _: Option<u64>) {}

/// The per-account context the content firewall judges senders and links against.
pub(super) fn content_context(a: &crate::config::Account) -> content::Context {
    content::Context {
        own_domain: a.domain(),
        trusted_domains: a.trusted_domains.clone(),
        trusted_authserv_id: a.trusted_authserv_id.clone(),
    }
}

pub(super) fn content_limits(reg: &Registry, max_body_chars: Option<usize>) -> content::Limits {
    content::Limits { max_body_chars: max_body_chars.unwrap_or(reg.limits().max_body_chars), ..content::Limits::default() }
}

/// Parses an id argument and checks it belongs to a configured account this tool may use.
pub(super) fn resolve_id<'r>(
    reg: &'r Registry,
    tool: &str,
    args: &mut Args,
) -> Result<(MessageRef, &'r crate::imap::ImapClient, MailboxName), ToolError> {
    let raw = args.str_req("id", super::ids::MAX_ID_LEN)?;
    let r = MessageRef::decode(&raw).ok_or_else(|| ToolError::invalid("argument `id` is not a message id issued by mailmoat"))?;
    let (account, client) = reg.account(Some(&r.account))?;
    reg.check_posture(tool, account)?;
    let folder = MailboxName::new(&r.folder)?;
    Ok((r, client, folder))
}

pub(super) fn summary_parts(
    account: &str,
    folder: &str,
    uidvalidity: u32,
    s: &Summary,
    warnings: &mut Vec<Finding>,
) -> (Value, Value, String, Headers) {
    let mut findings = Vec::new();
    let h = content::parse_headers(&s.header, &content::Limits::default(), &mut findings);
    for mut f in findings {
        f.location = format!("uid {}: {}", s.uid, f.location);
        warnings.push(f);
    }
    let id = MessageRef { account: account.to_string(), folder: folder.to_string(), uidvalidity, uid: s.uid }.encode();
    let has_attachments = h.content_type.as_deref() == Some("multipart/mixed");
    let meta = json!({"id": id, "uid": s.uid, "flags": visible_flags(&s.flags), "size": s.size, "internal_date": s.internal_date, "has_attachments": has_attachments});
    let untrusted = json!({
        "id": id, "date": h.date, "from": addr_json(&h.from), "to": addr_json(&h.to), "subject": h.subject,
        "message_id": h.message_id, "in_reply_to": h.in_reply_to,
    });
    let text = format!(
        "[{id}] {} | from: {} | subject: {}",
        opt_text(&h.date),
        addr_text(&h.from),
        content::snippet(opt_text(&h.subject), LINE_MAX)
    );
    (meta, untrusted, text, h)
}

/// Flags as the agent sees them: `\Recent` is per-session noise and is left out.
pub(super) fn visible_flags(flags: &[String]) -> Vec<String> {
    flags.iter().filter(|f| !f.eq_ignore_ascii_case("\\Recent")).cloned().collect()
}

pub(super) fn flags_text(flags: &[String]) -> String {
    if flags.is_empty() {
        "-".into()
    } else {
        flags.join(" ")
    }
}

// ---- handlers ----

fn list_accounts(reg: &Registry, _ctx: &CallCtx, args: Args) -> Result<Output, ToolError> {
    args.finish()?;
    let mut list = Vec::new();
    let mut text = String::from("accounts:\n");
    for a in reg.config().accounts.values() {
        let tls = match a.imap.tls {
            crate::config::TlsMode::Implicit => "implicit",
            crate::config::TlsMode::Starttls => "starttls",
        };
        list.push(json!({"name": a.name, "email": a.email, "posture": a.posture.as_str(), "host": a.imap.host, "tls": tls}));
        text.push_str(&format!("- {} <{}> posture={} host={} tls={}\n", a.name, a.email, a.posture.as_str(), a.imap.host, tls));
    }
    Ok(Output { meta: json!({"accounts": list}), untrusted: json!({}), warnings: vec![], meta_text: text, untrusted_text: String::new() })
}

fn list_folders(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let account = args.str_opt("account", defs::ACCOUNT_MAX)?;
    args.finish()?;
    let (acct, client) = reg.account(account.as_deref())?;
    reg.check_posture("list_folders", acct)?;
    let op = reg.op(ctx, &no_progress);
    let folders = client.list_folders(&op)?;
    let mut text = format!("folders of {}:\n", acct.name);
    let list: Vec<Value> = folders
        .iter()
        .map(|f| {
            let name = content::clean_line(&f.name);
            text.push_str(&format!(
                "- {name}{} messages={} unseen={}\n",
                f.role.map(|r| format!(" ({r})")).unwrap_or_default(),
                f.messages.map_or("?".into(), |n| n.to_string()),
                f.unseen.map_or("?".into(), |n| n.to_string())
            ));
            json!({
                "name": name, "delimiter": f.delimiter, "role": f.role, "attributes": f.attributes, "selectable": f.selectable,
                "messages": f.messages, "unseen": f.unseen, "uidvalidity": f.uidvalidity, "uidnext": f.uidnext,
            })
        })
        .collect();
    Ok(Output {
        meta: json!({"account": acct.name, "folders": list}),
        untrusted: json!({}),
        warnings: vec![],
        meta_text: text,
        untrusted_text: String::new(),
    })
}

fn parse_date(args: &mut Args, name: &str) -> Result<Option<Date>, ToolError> {
    match args.str_opt(name, 10)? {
        None => Ok(None),
        Some(s) => Date::parse(&s).map(Some).map_err(|e| ToolError::invalid(format!("argument `{name}`: {}", e.reason))),
    }
}

fn search(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let account = args.str_opt("account", defs::ACCOUNT_MAX)?;
    let folder_name = args.str_opt("folder", defs::FOLDER_MAX)?.unwrap_or_else(|| "INBOX".into());
    let q_str = |a: &mut Args, n: &str| a.str_opt(n, defs::QUERY_MAX);
    let mut q = SearchQuery {
        from: q_str(&mut args, "from")?,
        to: q_str(&mut args, "to")?,
        cc: q_str(&mut args, "cc")?,
        subject: q_str(&mut args, "subject")?,
        body: q_str(&mut args, "body")?,
        text: q_str(&mut args, "text")?,
        since: parse_date(&mut args, "since")?,
        before: parse_date(&mut args, "before")?,
        seen: args.bool_opt("seen")?,
        flagged: args.bool_opt("flagged")?,
        answered: args.bool_opt("answered")?,
        has_attachment: args.bool_opt("has_attachment")?,
        larger: args.u64_opt("larger", 0, u32::MAX as u64)?.map(|v| v as u32),
        smaller: args.u64_opt("smaller", 1, u32::MAX as u64)?.map(|v| v as u32),
        header: None,
        keyword: args.str_opt("keyword", 200)?,
    };
    if let Some(mut h) = args.object_opt("header")? {
        let name = h.str_req("name", 76)?;
        let value = h.str_req("value", defs::QUERY_MAX)?;
        h.finish()?;
        q.header = Some((name, value));
    }
    let limit = args.u64_opt("limit", 1, SEARCH_MAX_LIMIT)?.unwrap_or(SEARCH_DEFAULT_LIMIT) as usize;
    let cursor = match args.str_opt("cursor", 200)? {
        None => None,
        Some(c) => Some(Cursor::decode(&c).ok_or_else(|| ToolError::invalid("argument `cursor` is not a cursor issued by mailmoat"))?),
    };
    args.finish()?;
    q.validate()?;
    let folder = MailboxName::new(&folder_name)?;
    let (acct, client) = reg.account(account.as_deref())?;
    reg.check_posture("search", acct)?;

    let digest = Cursor::digest(&format!("{}\0{}\0{:?}", acct.name, folder.as_str(), q));
    if cursor.as_ref().is_some_and(|c| c.query != digest) {
        return Err(ToolError::invalid("argument `cursor` belongs to a different search"));
    }
    // Where the page starts in a search result; `None` when the cursor is from an older
    // incarnation of the folder.
    let start_in = |found: &crate::imap::SearchResult| match &cursor {
        None => Some(0),
        Some(c) if c.uidvalidity != found.uidvalidity => None,
        Some(c) => Some(found.uids.iter().position(|&u| u == c.last_uid).map_or(c.offset.min(found.uids.len()), |p| p + 1)),
    };
    let page_of = |found: &crate::imap::SearchResult| match start_in(found) {
        Some(start) => found.uids.iter().skip(start).take(limit).copied().collect(),
        None => Vec::new(),
    };
    (ctx.progress)(0.0, Some(2.0), "searching");
    let op = reg.op(ctx, &no_progress);
    let (found, summaries) = client.search_page(&op, &folder, &q, |found| {
        (ctx.progress)(1.0, Some(2.0), "fetching summaries");
        page_of(found)
    })?;
    let Some(start) = start_in(&found) else {
        return Err(ToolError::new(
            "uidvalidity_changed",
            format!("folder {} was recreated (UIDVALIDITY changed); start the search again", folder.as_str()),
        ));
    };
    let page = page_of(&found);
    let uidvalidity = found.uidvalidity;
    (ctx.progress)(2.0, Some(2.0), "done");
    let end = start + page.len();
    let next_cursor = (end < found.uids.len() && !page.is_empty())
        .then(|| Cursor { query: digest, uidvalidity, offset: end, last_uid: *page.last().unwrap_or(&0) }.encode());

    let mut warnings = Vec::new();
    let (mut metas, mut untrusted, mut lines) = (Vec::new(), Vec::new(), Vec::new());
    for s in &summaries {
        let (m, u, line, _) = summary_parts(&acct.name, folder.as_str(), uidvalidity, s, &mut warnings);
        metas.push(m);
        untrusted.push(u);
        lines.push(format!("{line} | flags: {}", flags_text(&visible_flags(&s.flags))));
    }
    let meta_text = format!(
        "search in {}/{}: {} matching, showing {}-{} (sorted by {}){}",
        acct.name,
        content::clean_line(folder.as_str()),
        found.uids.len(),
        if page.is_empty() { 0 } else { start + 1 },
        end,
        found.sorted_by,
        next_cursor.as_ref().map(|c| format!("\nnext_cursor: {c}")).unwrap_or_default()
    );
    Ok(Output {
        meta: json!({
            "account": acct.name, "folder": folder.as_str(), "uidvalidity": uidvalidity, "total": found.uids.len(),
            "returned": metas.len(), "sorted_by": found.sorted_by, "next_cursor": next_cursor, "messages": metas,
        }),
        untrusted: json!({"messages": untrusted}),
        warnings,
        meta_text,
        untrusted_text: lines.join("\n"),
    })
}

fn fetch_message(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let (r, client, folder) = resolve_id(reg, "fetch_message", &mut args)?;
    let max_chars = args.u64_opt("max_body_chars", 100, 1_000_000)?.map(|v| v as usize);
    let include_html = args.bool_opt("include_html")?.unwrap_or(false);
    let include_headers = args.str_list("include_headers", content::MAX_INCLUDE_HEADERS, 76)?;
    args.finish()?;
    let (account, _) = reg.account(Some(&r.account))?;
    let opts = content::RenderOptions { include_html, include_headers: include_headers.clone().unwrap_or_default() };
    let op = reg.op(ctx, &no_progress);
    let msg = client.fetch_message(&op, &folder, r.uidvalidity, r.uid)?;
    let rendered = content::render_with(&msg.raw, msg.truncated, &content_limits(reg, max_chars), &content_context(account), &opts);
    let h = &rendered.headers;
    let id = r.encode();
    let att_meta: Vec<Value> =
        rendered.attachments.iter().map(|a| json!({"part": a.part, "size": a.size, "disposition": a.disposition})).collect();
    let att_untrusted: Vec<Value> =
        rendered.attachments.iter().map(|a| json!({"part": a.part, "filename": a.filename, "content_type": a.content_type})).collect();
    let meta_text = format!(
        "message {id}\naccount: {} folder: {} uid: {} size: {} flags: {}{}{}",
        r.account,
        content::clean_line(&r.folder),
        r.uid,
        msg.size,
        flags_text(&visible_flags(&msg.flags)),
        if msg.truncated { "\nnote: message larger than limits.max_message_bytes; only its beginning was read" } else { "" },
        if rendered.text_truncated { "\nnote: body text truncated (max_body_chars)" } else { "" },
    );
    let mut text = String::new();
    for (label, list) in [("From", &h.from), ("Sender", &h.sender), ("To", &h.to), ("Cc", &h.cc), ("Reply-To", &h.reply_to)] {
        if !list.is_empty() || label == "From" {
            text.push_str(&format!("{label}: {}\n", addr_text(list)));
        }
    }
    text.push_str(&format!("Date: {}\nSubject: {}\n", opt_text(&h.date), opt_text(&h.subject)));
    if let Some(l) = &h.list_id {
        text.push_str(&format!("List-Id: {l}\n"));
    }
    for a in &rendered.attachments {
        text.push_str(&format!(
            "Attachment part {}: {} ({}, {} bytes)\n",
            a.part,
            a.filename.as_deref().unwrap_or("(no name)"),
            a.content_type,
            a.size
        ));
    }
    for (name, value) in &rendered.headers_raw {
        text.push_str(&format!("{name}: {value}\n"));
    }
    text.push('\n');
    text.push_str(&rendered.text);
    if !rendered.links.is_empty() {
        text.push_str("\n\nLinks:\n");
        for l in &rendered.links {
            text.push_str(&format!("- {} -> {}\n", if l.text.is_empty() { "(no text)" } else { &l.text }, l.target));
        }
    }
    if let Some(html) = &rendered.html {
        text.push_str(&format!("\n\nSanitized HTML:\n{html}"));
    }
    let auth = &rendered.auth;
    let prov = &rendered.provenance;
    let mut untrusted = json!({
        "from": addr_json(&h.from), "sender": addr_json(&h.sender), "to": addr_json(&h.to), "cc": addr_json(&h.cc),
        "reply_to": addr_json(&h.reply_to), "date": h.date, "subject": h.subject, "message_id": h.message_id,
        "in_reply_to": h.in_reply_to, "list_id": h.list_id, "body": rendered.text, "attachments": att_untrusted,
        "links": rendered.links.iter().map(|l| json!({"text": l.text, "target": l.target, "domain": l.domain})).collect::<Vec<_>>(),
    });
    if include_html {
        untrusted["html"] = json!(rendered.html);
    }
    if include_headers.is_some() {
        untrusted["headers"] = Value::Array(rendered.headers_raw.iter().map(|(n, v)| json!({"name": n, "value": v})).collect());
    }
    Ok(Output {
        meta: json!({
            "id": id, "account": r.account, "folder": r.folder, "uid": r.uid, "flags": visible_flags(&msg.flags), "size": msg.size,
            "fetch_truncated": msg.truncated, "text_source": rendered.text_source, "text_truncated": rendered.text_truncated,
            "attachments": att_meta, "alternative_mismatch": rendered.alternative_mismatch,
            "authentication": {"dkim": auth.dkim, "spf": auth.spf, "dmarc": auth.dmarc, "aligned": auth.aligned, "trusted": auth.trusted},
            "provenance": {"list_id": prov.list_id, "list_unsubscribe": prov.list_unsubscribe, "precedence": prov.precedence,
                           "auto_submitted": prov.auto_submitted, "bulk": prov.bulk},
        }),
        untrusted,
        warnings: rendered.findings,
        meta_text,
        untrusted_text: text,
    })
}

fn list_attachments(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let (r, client, folder) = resolve_id(reg, "list_attachments", &mut args)?;
    args.finish()?;
    let op = reg.op(ctx, &no_progress);
    let msg = client.fetch_message(&op, &folder, r.uidvalidity, r.uid)?;
    let rendered = content::render(&msg.raw, msg.truncated, &content_limits(reg, None));
    let id = r.encode();
    let mut text = String::new();
    for a in &rendered.attachments {
        text.push_str(&format!("part {}: {} ({})\n", a.part, a.filename.as_deref().unwrap_or("(no name)"), a.content_type));
    }
    let meta_text = format!("message {id}: {} attachment(s)", rendered.attachments.len());
    Ok(Output {
        meta: json!({
            "id": id, "fetch_truncated": msg.truncated,
            "attachments": rendered.attachments.iter().map(|a| json!({"part": a.part, "size": a.size, "disposition": a.disposition})).collect::<Vec<_>>(),
        }),
        untrusted: json!({
            "attachments": rendered.attachments.iter().map(|a| json!({"part": a.part, "filename": a.filename, "content_type": a.content_type})).collect::<Vec<_>>(),
        }),
        warnings: rendered.findings.into_iter().filter(|f| f.location.starts_with("part") || f.code == "truncated").collect(),
        meta_text,
        untrusted_text: text.trim_end().to_string(),
    })
}

/// Walks References/In-Reply-To links inside one folder until no new message appears.
fn fetch_thread(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let (r, client, folder) = resolve_id(reg, "fetch_thread", &mut args)?;
    let max = args.u64_opt("max_messages", 1, 1000)?.map_or(reg.limits().max_thread_messages, |v| v as usize);
    args.finish()?;
    let op = reg.op(ctx, &no_progress);

    let (uidvalidity, root) = client.fetch_summaries(&op, &folder, Some(r.uidvalidity), &[r.uid])?;
    let Some(root) = root.into_iter().next() else {
        return Err(ToolError::new("not_found", format!("message {} no longer exists", r.encode())));
    };
    let mut warnings = Vec::new();
    let mut found: BTreeMap<u32, Summary> = BTreeMap::new();
    let mut known_ids: BTreeSet<String> = BTreeSet::new();
    let mut frontier: Vec<String> = Vec::new();
    let absorb = |s: &Summary, known: &mut BTreeSet<String>, frontier: &mut Vec<String>| {
        let mut ignored = Vec::new();
        let h = content::parse_headers(&s.header, &content::Limits::default(), &mut ignored);
        for id in h.message_id.iter().chain(h.in_reply_to.iter()).chain(h.references.iter()) {
            if known.insert(id.clone()) {
                frontier.push(id.clone());
            }
        }
    };
    absorb(&root, &mut known_ids, &mut frontier);
    let root_uid = root.uid;
    found.insert(root.uid, root);
    let mut complete = true;
    let mut round = 0u32;
    // The server's own THREAD=REFERENCES when it has it; our References walk otherwise.
    let mut method = "references-walk";
    (ctx.progress)(0.0, None, "asking the server for the thread");
    if let Some(thread) = client.thread_references(&op, &folder, uidvalidity, root_uid)? {
        if thread.contains(&root_uid) {
            method = "server-thread";
            frontier.clear();
            let others: Vec<u32> = thread.into_iter().filter(|u| *u != root_uid).collect();
            complete = others.len() < max;
            let take: Vec<u32> = others.into_iter().take(max.saturating_sub(1)).collect();
            if !take.is_empty() {
                let (_, summaries) = client.fetch_summaries(&op, &folder, Some(uidvalidity), &take)?;
                for s in summaries {
                    found.insert(s.uid, s);
                }
            }
        }
    }
    // Each round finds messages linked to the ids learned in the previous one.
    while !frontier.is_empty() {
        round += 1;
        if round > 20 || found.len() >= max {
            complete = frontier.is_empty();
            break;
        }
        (ctx.progress)(round as f64, None, "walking thread references");
        let ids: Vec<String> = std::mem::take(&mut frontier);
        let uids = client.search_related(&op, &folder, uidvalidity, &ids)?;
        let new: Vec<u32> = uids.into_iter().filter(|u| !found.contains_key(u)).collect();
        if new.is_empty() {
            continue;
        }
        let room = max.saturating_sub(found.len());
        if new.len() > room {
            complete = false;
        }
        let take: Vec<u32> = new.into_iter().take(room).collect();
        let (_, summaries) = client.fetch_summaries(&op, &folder, Some(uidvalidity), &take)?;
        for s in summaries {
            absorb(&s, &mut known_ids, &mut frontier);
            found.insert(s.uid, s);
        }
    }
    // Oldest first: by Date header, then UID.
    let mut rows: Vec<(Option<String>, u32, Value, Value, String)> = found
        .values()
        .map(|s| {
            let (m, u, line, h) = summary_parts(&r.account, folder.as_str(), uidvalidity, s, &mut warnings);
            (h.date, s.uid, m, u, line)
        })
        .collect();
    rows.sort_by(|a, b| (a.0.is_none(), &a.0, a.1).cmp(&(b.0.is_none(), &b.0, b.1)));
    let count = rows.len();
    let meta_text = format!(
        "thread of {} in {}/{}: {} message(s){}",
        r.encode(),
        r.account,
        content::clean_line(folder.as_str()),
        count,
        if complete { "" } else { " (stopped at the limit; more may exist)" }
    );
    let untrusted_text = rows.iter().map(|row| row.4.clone()).collect::<Vec<_>>().join("\n");
    let (metas, untrusted): (Vec<Value>, Vec<Value>) = rows.into_iter().map(|row| (row.2, row.3)).unzip();
    Ok(Output {
        meta: json!({"account": r.account, "folder": r.folder, "root_id": r.encode(), "count": count, "complete": complete, "method": method, "messages": metas}),
        untrusted: json!({"messages": untrusted}),
        warnings,
        meta_text,
        untrusted_text,
    })
}
