//! Drafts and sending: create_draft (draft-safe), send_email and send_draft (full).
//!
//! Drafts are appended to the \Drafts folder with \Draft and `$PendingReview`; the agent cannot
//! clear that mark, and send_draft refuses a draft that still carries it, so only a draft a human
//! re-saved (or unmarked) in their mail client can be sent as it is.

use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};

use super::act::{confirmed, PENDING_REVIEW};
use super::confirm::{self, Preview};
use super::defs::{self, account_arg, array, boolean, input, object, string};
use super::ids::MessageRef;
use super::read::{content_limits, no_progress, resolve_id};
use super::{Args, CallCtx, Output, Registry, ToolDef, ToolError};
use crate::compose::{self, AttachmentData, Draft, Mailbox};
use crate::config::{Account, Posture, SaveSent};
use crate::content;
use crate::imap::{Flag, ImapClient, MailboxName, OpCtx};
use crate::smtp::{self, SmtpClient};

/// Longest subject accepted.
const SUBJECT_MAX: usize = 998;
/// Longest body accepted (characters).
const BODY_MAX: usize = 1_000_000;
/// Most attachments on one message.
const ATTACHMENTS_MAX: usize = 20;
/// Longest address string.
const ADDRESS_MAX: usize = 320;

fn addresses_arg(desc: &str) -> Value {
    json!({"type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": ADDRESS_MAX}, "description": desc})
}

fn compose_props() -> serde_json::Map<String, Value> {
    let v = json!({
        "account": account_arg(),
        "to": addresses_arg("Recipients: \"Name <a@example.com>\" or \"a@example.com\"."),
        "cc": addresses_arg("Cc recipients."),
        "bcc": addresses_arg("Bcc recipients (never shown to the other recipients)."),
        "subject": string(SUBJECT_MAX, "Subject. For a reply or forward, defaults to Re:/Fwd: and the original subject."),
        "body_text": {"type": "string", "maxLength": BODY_MAX, "description": "Plain-text body."},
        "body_html": {"type": "string", "maxLength": BODY_MAX, "description": "Optional HTML body (sent as multipart/alternative with the text)."},
        "reply_to_id": string(super::ids::MAX_ID_LEN, "Message id this replies to: sets In-Reply-To/References and a Re: subject."),
        "quote": boolean("For a reply: quote the original's text below the body (default true)."),
        "forward_id": string(super::ids::MAX_ID_LEN, "Message id to forward."),
        "forward_mode": {"type": "string", "enum": ["attach", "quote"], "maxLength": 6, "description": "Forward as an attached message (default) or quoted below the body."},
        "attachments": {
            "type": "array", "maxItems": ATTACHMENTS_MAX, "description": "Files from the workspace to attach.",
            "items": {"type": "object", "additionalProperties": false, "required": ["path"], "properties": {
                "path": string(1024, "Path relative to the configured workspace."),
                "filename": string(255, "Name shown to recipients (default: the file's name)."),
                "content_type": string(255, "MIME type (default: guessed from the content)."),
            }},
        },
    });
    v.as_object().cloned().unwrap_or_default()
}

fn send_meta() -> Value {
    object(
        json!({"account": {"type": "string"}, "message_id": {"type": "string"}, "accepted": array(json!({"type": "string"})),
               "rejected": array(object(json!({"address": {"type": "string"}, "reply": {"type": "string"}}), &[])),
               "size": {"type": "integer"}, "sent_copy": {"type": ["string", "null"]}}),
        &[],
    )
}

pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef {
            name: "create_draft",
            title: "Save a draft",
            description: "Write a message and save it in the Drafts folder for the user to review and send (marked $PendingReview). \
Supports replies (reply_to_id), forwards (forward_id) and attachments from the workspace. Nothing is sent.",
            min_posture: Posture::DraftSafe,
            read_only: false,
            destructive: false,
            idempotent: false,
            input_schema: || input(Value::Object(compose_props()), &[]),
            output_parts: || {
                (
                    object(json!({"account": {"type": "string"}, "id": {"type": ["string", "null"]}, "folder": {"type": "string"}, "message_id": {"type": "string"}, "size": {"type": "integer"}}), &[]),
                    object(json!({"subject": {"type": "string"}}), &[]),
                )
            },
            handler: create_draft,
        },
        ToolDef {
            name: "send_email",
            title: "Send an email",
            description: "Send a message now (same fields as create_draft) and keep a copy in Sent. Asks the user to confirm when the client can. \
Prefer create_draft when the user should review first.",
            min_posture: Posture::Full,
            read_only: false,
            destructive: true,
            idempotent: false,
            input_schema: || {
                let mut p = compose_props();
                p.insert("confirmation_token".into(), string(200, "Only when a previous call answered confirmation_required: the token it returned, with otherwise identical arguments."));
                input(Value::Object(p), &[])
            },
            output_parts: || (send_meta(), object(json!({"subject": {"type": "string"}}), &[])),
            handler: send_email,
        },
        ToolDef {
            name: "send_draft",
            title: "Send a reviewed draft",
            description: "Send a draft from the Drafts folder exactly as stored, after a human reviewed it. A draft still marked $PendingReview (as create_draft leaves it) is refused. Asks the user to confirm when the client can.",
            min_posture: Posture::Full,
            read_only: false,
            destructive: true,
            idempotent: false,
            input_schema: || {
                input(
                    json!({"id": defs::id_arg(), "confirmation_token": string(200, "Only when a previous call answered confirmation_required: the token it returned.")}),
                    &["id"],
                )
            },
            output_parts: || (send_meta(), object(json!({"subject": {"type": "string"}}), &[])),
            handler: send_draft,
        },
    ]
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn mailboxes(list: Option<Vec<String>>, field: &str) -> Result<Vec<Mailbox>, ToolError> {
    list.unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, s)| Mailbox::parse(s).map_err(|e| ToolError::invalid(format!("argument `{field}[{i}]`: {e}"))))
        .collect()
}

/// Resolves a workspace path: relative, no `..`, no symlink anywhere below the workspace.
pub(super) fn workspace_file(reg: &Registry, rel: &str) -> Result<PathBuf, ToolError> {
    let ws = reg
        .config()
        .workspace
        .as_ref()
        .ok_or_else(|| ToolError::new("workspace_not_configured", "no workspace is configured (set `workspace` in the config)"))?;
    let p = Path::new(rel);
    if p.is_absolute() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(ToolError::invalid(format!(
            "attachment path `{}` must be relative to the workspace, without `..`",
            content::clean_line(rel)
        )));
    }
    let mut cur = ws.clone();
    for c in p.components() {
        cur.push(c);
        let meta =
            std::fs::symlink_metadata(&cur).map_err(|e| ToolError::new("not_found", format!("{}: {e}", content::clean_line(rel))))?;
        if meta.file_type().is_symlink() {
            return Err(ToolError::invalid(format!(
                "attachment path `{}` goes through a symbolic link; refused",
                content::clean_line(rel)
            )));
        }
    }
    Ok(cur)
}

struct Composed {
    draft: Draft,
    /// The original's text, quoted (for replies), only for the preview.
    subject: String,
}

/// Builds the Draft from compose arguments (shared by create_draft and send_email).
fn compose_from_args(
    reg: &Registry,
    ctx: &CallCtx,
    account: &Account,
    client: &ImapClient,
    args: &mut Args,
) -> Result<Composed, ToolError> {
    let limits = reg.limits();
    let to = mailboxes(args.str_list("to", limits.max_recipients, ADDRESS_MAX)?, "to")?;
    let cc = mailboxes(args.str_list("cc", limits.max_recipients, ADDRESS_MAX)?, "cc")?;
    let bcc = mailboxes(args.str_list("bcc", limits.max_recipients, ADDRESS_MAX)?, "bcc")?;
    if to.len() + cc.len() + bcc.len() > limits.max_recipients {
        return Err(ToolError::new("limit_exceeded", format!("more than limits.max_recipients ({}) recipients", limits.max_recipients)));
    }
    let subject = args.str_opt("subject", SUBJECT_MAX)?;
    let mut body_text = args.text_opt("body_text", BODY_MAX)?.unwrap_or_default();
    let body_html = args.text_opt("body_html", BODY_MAX)?;
    let reply_to = args.str_opt("reply_to_id", super::ids::MAX_ID_LEN)?;
    let quote = args.bool_opt("quote")?.unwrap_or(true);
    let forward = args.str_opt("forward_id", super::ids::MAX_ID_LEN)?;
    let forward_quote = match args.str_opt("forward_mode", 6)?.as_deref() {
        None | Some("attach") => false,
        Some("quote") => true,
        Some(_) => return Err(ToolError::invalid("argument `forward_mode` must be \"attach\" or \"quote\"")),
    };
    let attachment_args = args.object_list("attachments", ATTACHMENTS_MAX)?.unwrap_or_default();

    let op = OpCtx { cancel: ctx.cancel, progress: &no_progress };
    let mut in_reply_to = None;
    let mut references = Vec::new();
    let mut subject_final = subject.clone();
    if let Some(id) = reply_to {
        let r =
            MessageRef::decode(&id).ok_or_else(|| ToolError::invalid("argument `reply_to_id` is not a message id issued by mailmoat"))?;
        if r.account != account.name {
            return Err(ToolError::invalid("argument `reply_to_id` belongs to another account"));
        }
        let folder = MailboxName::new(&r.folder)?;
        let orig = client.fetch_message(&op, &folder, r.uidvalidity, r.uid)?;
        let rendered = content::render(&orig.raw, orig.truncated, &content_limits(reg, Some(20_000)));
        let h = &rendered.headers;
        if let Some(mid) = &h.message_id {
            in_reply_to = Some(mid.clone());
            references = h.references.iter().rev().take(30).rev().cloned().collect();
            references.push(mid.clone());
        }
        if subject_final.is_none() {
            subject_final = Some(compose::reply_subject(h.subject.as_deref().unwrap_or("")));
        }
        if quote {
            let who =
                h.from.first().map(|a| a.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| a.email.clone())).unwrap_or_default();
            let attribution = format!("On {}, {} wrote:", h.date.as_deref().unwrap_or("an earlier date"), who);
            body_text = format!("{body_text}\n\n{}", compose::quote_text(&rendered.text, &attribution));
        }
    }
    let mut forward_rfc822 = None;
    if let Some(id) = forward {
        let r =
            MessageRef::decode(&id).ok_or_else(|| ToolError::invalid("argument `forward_id` is not a message id issued by mailmoat"))?;
        if r.account != account.name {
            return Err(ToolError::invalid("argument `forward_id` belongs to another account"));
        }
        let folder = MailboxName::new(&r.folder)?;
        let orig = client.fetch_raw(&op, &folder, r.uidvalidity, r.uid, limits.max_send_bytes)?;
        if orig.truncated {
            return Err(ToolError::new("limit_exceeded", "the message to forward is larger than limits.max_send_bytes"));
        }
        let rendered = content::render(&orig.raw, false, &content_limits(reg, Some(20_000)));
        if subject_final.is_none() {
            subject_final = Some(compose::forward_subject(rendered.headers.subject.as_deref().unwrap_or("")));
        }
        if forward_quote {
            let h = &rendered.headers;
            let from = h.from.first().map(|a| a.email.clone()).unwrap_or_default();
            let attribution = format!(
                "---------- Forwarded message ----------\nFrom: {from}\nDate: {}\nSubject: {}",
                h.date.as_deref().unwrap_or(""),
                h.subject.as_deref().unwrap_or("")
            );
            body_text = format!("{body_text}\n\n{attribution}\n\n{}", rendered.text);
        } else {
            forward_rfc822 = Some(orig.raw);
        }
    }
    let mut attachments = Vec::new();
    let mut total = 0u64;
    for mut a in attachment_args {
        let path = a.str_req("path", 1024)?;
        let filename = a.str_opt("filename", 255)?;
        let content_type = a.str_opt("content_type", 255)?;
        a.finish()?;
        let file = workspace_file(reg, &path)?;
        let meta = std::fs::metadata(&file).map_err(|e| ToolError::new("not_found", format!("{}: {e}", content::clean_line(&path))))?;
        if !meta.is_file() {
            return Err(ToolError::invalid(format!("`{}` is not a regular file", content::clean_line(&path))));
        }
        total += meta.len();
        if meta.len() > limits.max_attachment_bytes || total > limits.max_send_bytes {
            return Err(ToolError::new(
                "limit_exceeded",
                format!("attachments exceed limits.max_attachment_bytes / limits.max_send_bytes ({})", content::clean_line(&path)),
            ));
        }
        let data = std::fs::read(&file).map_err(|e| ToolError::new("io_error", format!("{}: {e}", content::clean_line(&path))))?;
        let name =
            filename.unwrap_or_else(|| file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "attachment".into()));
        let ct = content_type.unwrap_or_else(|| content::sniff_type(&data).unwrap_or("application/octet-stream").to_string());
        attachments.push(AttachmentData { filename: name, content_type: ct, data });
    }
    if to.is_empty() && cc.is_empty() && bcc.is_empty() {
        return Err(ToolError::invalid("give at least one recipient in `to`, `cc` or `bcc`"));
    }
    let subject = subject_final.unwrap_or_default();
    let domain = account.domain();
    let draft = Draft {
        from: Mailbox { name: None, email: account.email.clone() },
        to,
        cc,
        bcc,
        subject: subject.clone(),
        body_text,
        body_html,
        in_reply_to,
        references,
        attachments,
        forward_rfc822,
        date_epoch: now_epoch(),
        message_id: compose::message_id(&domain, &super::random_bytes(16)),
    };
    Ok(Composed { draft, subject })
}

fn compose_err(e: compose::ComposeError) -> ToolError {
    match e {
        compose::ComposeError::TooLarge { .. } => ToolError::new("limit_exceeded", e.to_string()),
        _ => ToolError::invalid(e.to_string()),
    }
}

fn create_draft(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let account = args.str_opt("account", defs::ACCOUNT_MAX)?;
    let (acct, client) = reg.account(account.as_deref())?;
    reg.check_posture("create_draft", acct)?;
    let c = compose_from_args(reg, ctx, acct, client, &mut args)?;
    args.finish()?;
    let raw = compose::build(&c.draft, true).map_err(compose_err)?;
    if raw.len() as u64 > reg.limits().max_send_bytes {
        return Err(ToolError::new("limit_exceeded", "the draft is larger than limits.max_send_bytes"));
    }
    let op = OpCtx { cancel: ctx.cancel, progress: &no_progress };
    let drafts = client
        .folder_with_role(&op, "drafts")?
        .ok_or_else(|| ToolError::new("no_drafts_folder", format!("account {} has no folder with the Drafts role", acct.name)))?;
    let flags = [Flag::Draft, Flag::Keyword(PENDING_REVIEW.into())];
    let appended = client.append(&op, &drafts, &flags, &raw)?;
    let id = appended
        .map(|(uv, uid)| MessageRef { account: acct.name.clone(), folder: drafts.as_str().to_string(), uidvalidity: uv, uid }.encode());
    let text = format!(
        "draft saved in {}/{} ({} bytes, marked {PENDING_REVIEW}){}\nmessage-id: {}",
        acct.name,
        content::clean_line(drafts.as_str()),
        raw.len(),
        id.as_ref().map(|i| format!("\nid: {i}")).unwrap_or_default(),
        c.draft.message_id
    );
    Ok(Output {
        meta: json!({"account": acct.name, "id": id, "folder": drafts.as_str(), "message_id": c.draft.message_id, "size": raw.len()}),
        untrusted: json!({"subject": content::clean_line(&c.subject)}),
        warnings: vec![],
        meta_text: text,
        untrusted_text: format!("Subject: {}", content::clean_line(&c.subject)),
    })
}

fn check_recipients(account: &Account, rcpts: &[String]) -> Result<(), ToolError> {
    if account.allowed_recipients.is_empty() {
        return Ok(());
    }
    for r in rcpts {
        if !smtp::recipient_allowed(&account.allowed_recipients, r) {
            return Err(ToolError::new(
                "recipient_not_allowed",
                format!("{} is not in accounts.{}.allowed_recipients; nothing was sent", content::clean_line(r), account.name),
            ));
        }
    }
    Ok(())
}

/// Sends, then keeps a copy in Sent as configured. Returns the Output.
#[allow(clippy::too_many_arguments, reason = "one call site per send tool; a struct would only rename the arguments")]
fn deliver(
    reg: &Registry,
    ctx: &CallCtx,
    acct: &Account,
    client: &ImapClient,
    smtp: &SmtpClient,
    rcpts: &[String],
    wire: &[u8],
    sent_copy: &[u8],
    message_id: &str,
    subject: &str,
    tool: &str,
) -> Result<Output, ToolError> {
    reg.check_send(&acct.name, tool)?;
    let report = smtp.send(ctx.cancel, &acct.email, rcpts, wire).map_err(|e| ToolError::new(e.code(), e.to_string()))?;
    let op = OpCtx { cancel: ctx.cancel, progress: &no_progress };
    let caps = client.capabilities(&op).unwrap_or_default();
    let gmail = caps.iter().any(|c| c.eq_ignore_ascii_case("X-GM-EXT-1"));
    let save = match acct.save_sent {
        SaveSent::Never => false,
        SaveSent::Always => true,
        SaveSent::Auto => !gmail,
    };
    let mut sent_id = None;
    let mut note = String::new();
    if save {
        match client.folder_with_role(&op, "sent") {
            Ok(Some(sent)) => match client.append(&op, &sent, &[Flag::Seen], sent_copy) {
                Ok(Some((uv, uid))) => {
                    sent_id =
                        Some(MessageRef { account: acct.name.clone(), folder: sent.as_str().to_string(), uidvalidity: uv, uid }.encode())
                }
                Ok(None) => note = format!("\ncopy saved in {}", content::clean_line(sent.as_str())),
                Err(e) => note = format!("\nthe message was sent, but saving a copy in Sent failed: {e}"),
            },
            Ok(None) => note = "\nthe message was sent; the account has no Sent folder, so no copy was kept".into(),
            Err(e) => note = format!("\nthe message was sent, but saving a copy in Sent failed: {e}"),
        }
    } else {
        note = "\nno copy appended to Sent (save_sent setting or the server saves it)".into();
    }
    let rejected: Vec<Value> = report.rejected.iter().map(|(a, r)| json!({"address": a, "reply": r})).collect();
    let text = format!(
        "sent {message_id} from {} to {} recipient(s){}{}{}",
        acct.email,
        report.accepted.len(),
        if report.rejected.is_empty() { String::new() } else { format!("; {} rejected", report.rejected.len()) },
        sent_id.as_ref().map(|i| format!("\nsent copy: {i}")).unwrap_or_default(),
        note
    );
    Ok(Output {
        meta: json!({"account": acct.name, "message_id": message_id, "accepted": report.accepted, "rejected": rejected, "size": report.message_size, "sent_copy": sent_id}),
        untrusted: json!({"subject": content::clean_line(subject)}),
        warnings: vec![],
        meta_text: text,
        untrusted_text: format!("Subject: {}", content::clean_line(subject)),
    })
}

fn first_lines(text: &str, n: usize) -> Vec<String> {
    text.lines().filter(|l| !l.trim().is_empty()).take(n).map(|l| format!("  | {}", content::snippet(l, 120))).collect()
}

fn send_email(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let raw_args = args.snapshot();
    let account = args.str_opt("account", defs::ACCOUNT_MAX)?;
    let (acct, client) = reg.account(account.as_deref())?;
    reg.check_posture("send_email", acct)?;
    let c = compose_from_args(reg, ctx, acct, client, &mut args)?;
    args.str_opt(confirm::TOKEN_ARG, 200)?;
    args.finish()?;
    let smtp = SmtpClient::new(std::sync::Arc::new(acct.clone()), std::sync::Arc::new(reg.limits().clone())).ok_or_else(|| {
        ToolError::new("smtp_not_configured", format!("account {} has no [accounts.{}.smtp] table", acct.name, acct.name))
    })?;
    let rcpts: Vec<String> = c.draft.to.iter().chain(&c.draft.cc).chain(&c.draft.bcc).map(|m| m.email.clone()).collect();
    check_recipients(acct, &rcpts)?;
    let wire = compose::build(&c.draft, false).map_err(compose_err)?;
    if wire.len() as u64 > reg.limits().max_send_bytes {
        return Err(ToolError::new("limit_exceeded", "the message is larger than limits.max_send_bytes"));
    }
    let mut details = vec![
        format!("from: {}", acct.email),
        format!("to: {}", c.draft.to.iter().map(|m| m.email.as_str()).collect::<Vec<_>>().join(", ")),
    ];
    if !c.draft.cc.is_empty() {
        details.push(format!("cc: {}", c.draft.cc.iter().map(|m| m.email.as_str()).collect::<Vec<_>>().join(", ")));
    }
    if !c.draft.bcc.is_empty() {
        details.push(format!("bcc: {}", c.draft.bcc.iter().map(|m| m.email.as_str()).collect::<Vec<_>>().join(", ")));
    }
    details.push(format!("subject: {}", content::snippet(&c.subject, 200)));
    details.extend(first_lines(&c.draft.body_text, 3));
    if !c.draft.attachments.is_empty() {
        details.push(format!("{} attachment(s)", c.draft.attachments.len()));
    }
    let preview = Preview { action: format!("send an email to {} recipient(s)", rcpts.len()), details };
    if let Some(answer) = confirmed(reg, ctx, "send_email", &raw_args, preview)? {
        return Err(ToolError::respond(answer));
    }
    let sent_copy = compose::build(&c.draft, true).map_err(compose_err)?;
    deliver(reg, ctx, acct, client, &smtp, &rcpts, &wire, &sent_copy, &c.draft.message_id, &c.subject, "send_email")
}

/// Removes every `Bcc:` field (with its continuation lines) from a message's header block.
pub(super) fn strip_bcc(raw: &[u8]) -> Vec<u8> {
    let header_end =
        raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 2).or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 1));
    let Some(end) = header_end else { return raw.to_vec() };
    let (head, body) = raw.split_at(end);
    let mut out = Vec::with_capacity(raw.len());
    let mut skipping = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let continuation = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !continuation {
            skipping = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"bcc:");
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(body);
    out
}

fn send_draft(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let raw_args = args.snapshot();
    let (r, client, folder) = resolve_id(reg, "send_draft", &mut args)?;
    args.str_opt(confirm::TOKEN_ARG, 200)?;
    args.finish()?;
    let (acct, _) = reg.account(Some(&r.account))?;
    let smtp = SmtpClient::new(std::sync::Arc::new(acct.clone()), std::sync::Arc::new(reg.limits().clone())).ok_or_else(|| {
        ToolError::new("smtp_not_configured", format!("account {} has no [accounts.{}.smtp] table", acct.name, acct.name))
    })?;
    let op = OpCtx { cancel: ctx.cancel, progress: &no_progress };
    let msg = client.fetch_raw(&op, &folder, r.uidvalidity, r.uid, reg.limits().max_send_bytes)?;
    if msg.truncated {
        return Err(ToolError::new("limit_exceeded", "the draft is larger than limits.max_send_bytes"));
    }
    if msg.flags.iter().any(|f| f.eq_ignore_ascii_case(PENDING_REVIEW)) {
        return Err(ToolError::new(
            "draft_pending_review",
            "this draft is still marked $PendingReview: a human must review it in their mail client (saving it again, or removing the mark) before it can be sent",
        ));
    }
    let h = content::parse_headers(&msg.raw, &content::Limits::default(), &mut Vec::new());
    let from_ok = h.from.len() == 1 && h.from[0].email.eq_ignore_ascii_case(&acct.email);
    if !from_ok {
        return Err(ToolError::invalid(format!("the draft's From is not the account's address {}; refused", acct.email)));
    }
    let rcpts: Vec<String> = h.to.iter().chain(&h.cc).chain(&h.bcc).map(|a| a.email.clone()).filter(|e| !e.is_empty()).collect();
    if rcpts.is_empty() {
        return Err(ToolError::invalid("the draft has no recipients"));
    }
    if rcpts.len() > reg.limits().max_recipients {
        return Err(ToolError::new(
            "limit_exceeded",
            format!("more than limits.max_recipients ({}) recipients", reg.limits().max_recipients),
        ));
    }
    check_recipients(acct, &rcpts)?;
    let subject = h.subject.clone().unwrap_or_default();
    let body = content::render(&msg.raw, false, &content_limits(reg, Some(2000)));
    let mut details = vec![
        format!("from: {}", acct.email),
        format!("recipients: {}", rcpts.join(", ")),
        format!("subject: {}", content::snippet(&subject, 200)),
    ];
    details.extend(first_lines(&body.text, 3));
    let preview = Preview { action: format!("send the draft {} to {} recipient(s)", r.encode(), rcpts.len()), details };
    if let Some(answer) = confirmed(reg, ctx, "send_draft", &raw_args, preview)? {
        return Err(ToolError::respond(answer));
    }
    let wire = strip_bcc(&msg.raw);
    let message_id = h.message_id.clone().unwrap_or_default();
    deliver(reg, ctx, acct, client, &smtp, &rcpts, &wire, &msg.raw, &message_id, &subject, "send_draft")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_is_stripped_with_its_continuations() {
        let raw = b"From: a@x\r\nBcc: secret@x,\r\n  other@x\r\nTo: b@x\r\nbcc: c@x\r\nSubject: s\r\n\r\nBcc: in body stays\r\n";
        assert_eq!(strip_bcc(raw), b"From: a@x\r\nTo: b@x\r\nSubject: s\r\n\r\nBcc: in body stays\r\n".to_vec());
        assert_eq!(strip_bcc(b"no header end"), b"no header end".to_vec());
    }
}
