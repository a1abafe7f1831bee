//! Mailbox actions: update_flags, update_labels, move_messages, copy_messages, delete_messages,
//! expunge_messages, create_folder, rename_folder, delete_folder.
//!
//! Every batch names its messages by id; all ids must come from one account, one folder and one
//! UIDVALIDITY, and only those UIDs are ever touched (UID commands only, never a bare EXPUNGE).

use serde_json::{json, Value};

use super::confirm::{self, Gate, Preview};
use super::defs::{self, account_arg, array, input, object, string};
use super::ids::MessageRef;
use super::read::no_progress;
use super::{Args, CallCtx, Output, Registry, ToolDef, ToolError};
use crate::config::{Account, Posture};
use crate::content;
use crate::imap::{Flag, ImapClient, MailboxName, OpCtx};

/// The review mark create_draft sets; the agent may never clear it.
pub const PENDING_REVIEW: &str = "$PendingReview";
/// Longest flag or label name.
const FLAG_MAX: usize = 200;
/// Most flags or labels added or removed in one call.
const FLAGS_MAX_ITEMS: usize = 20;

fn ids_arg() -> Value {
    json!({"type": "array", "minItems": 1, "maxItems": 100, "items": {"type": "string", "maxLength": super::ids::MAX_ID_LEN},
           "description": "Message ids (from search, fetch_message or fetch_thread), all from one folder; at most 100."})
}

fn flag_list(desc: &str) -> Value {
    json!({"type": "array", "maxItems": FLAGS_MAX_ITEMS, "items": {"type": "string", "maxLength": FLAG_MAX}, "description": desc})
}

fn token_arg() -> Value {
    string(200, "Only when a previous call answered confirmation_required: the token it returned, with otherwise identical arguments.")
}

fn updated_meta() -> Value {
    object(
        json!({"account": {"type": "string"}, "folder": {"type": "string"}, "updated": array(object(json!({"id": {"type": "string"}, "flags": array(json!({"type": "string"}))}), &[])), "missing": array(json!({"type": "string"}))}),
        &[],
    )
}

fn moved_meta() -> Value {
    object(
        json!({"account": {"type": "string"}, "from_folder": {"type": "string"}, "to_folder": {"type": "string"}, "method": {"type": "string"},
               "moved": array(object(json!({"id": {"type": "string"}, "new_id": {"type": ["string", "null"]}}), &[]))}),
        &[],
    )
}

fn empty() -> Value {
    object(json!({}), &[])
}

pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef {
            name: "update_flags",
            title: "Mark messages",
            description: "Add or remove flags on messages: \\Seen (read), \\Flagged (starred), \\Answered, or keywords. \\Deleted, \\Draft and $PendingReview cannot be changed.",
            min_posture: Posture::DraftSafe,
            read_only: false,
            destructive: false,
            idempotent: true,
            input_schema: || {
                input(json!({"ids": ids_arg(), "add": flag_list("Flags to add, e.g. \\\\Seen."), "remove": flag_list("Flags to remove.")}), &["ids"])
            },
            output_parts: || (updated_meta(), empty()),
            handler: update_flags,
        },
        ToolDef {
            name: "update_labels",
            title: "Label messages",
            description: "Add or remove labels: Gmail labels when the server supports them, IMAP keywords otherwise (the result says which).",
            min_posture: Posture::DraftSafe,
            read_only: false,
            destructive: false,
            idempotent: true,
            input_schema: || input(json!({"ids": ids_arg(), "add": flag_list("Labels to add."), "remove": flag_list("Labels to remove.")}), &["ids"]),
            output_parts: || {
                let meta = object(
                    json!({"account": {"type": "string"}, "folder": {"type": "string"}, "mechanism": {"type": "string"},
                           "updated": array(object(json!({"id": {"type": "string"}, "labels": array(json!({"type": "string"}))}), &[]))}),
                    &[],
                );
                (meta, empty())
            },
            handler: update_labels,
        },
        ToolDef {
            name: "move_messages",
            title: "Move messages",
            description: "Move messages to another folder of the same account. Returns the messages' new ids.",
            min_posture: Posture::DraftSafe,
            read_only: false,
            destructive: false,
            idempotent: false,
            input_schema: || input(json!({"ids": ids_arg(), "to_folder": string(defs::FOLDER_MAX, "Destination folder, as named by list_folders.")}), &["ids", "to_folder"]),
            output_parts: || (moved_meta(), empty()),
            handler: move_messages,
        },
        ToolDef {
            name: "copy_messages",
            title: "Copy messages",
            description: "Copy messages to another folder of the same account. Returns the copies' ids.",
            min_posture: Posture::DraftSafe,
            read_only: false,
            destructive: false,
            idempotent: false,
            input_schema: || input(json!({"ids": ids_arg(), "to_folder": string(defs::FOLDER_MAX, "Destination folder, as named by list_folders.")}), &["ids", "to_folder"]),
            output_parts: || (moved_meta(), empty()),
            handler: copy_messages,
        },
        ToolDef {
            name: "delete_messages",
            title: "Delete messages (to Trash)",
            description: "Move messages to the Trash folder (recoverable). Fails when the account has no folder with the Trash role. May ask the user to confirm.",
            min_posture: Posture::Full,
            read_only: false,
            destructive: true,
            idempotent: false,
            input_schema: || input(json!({"ids": ids_arg(), "confirmation_token": token_arg()}), &["ids"]),
            output_parts: || (moved_meta(), empty()),
            handler: delete_messages,
        },
        ToolDef {
            name: "expunge_messages",
            title: "Permanently delete messages",
            description: "Permanently remove exactly these messages (no Trash, no undo). Asks the user to confirm when the client can.",
            min_posture: Posture::Destructive,
            read_only: false,
            destructive: true,
            idempotent: false,
            input_schema: || input(json!({"ids": ids_arg(), "confirmation_token": token_arg()}), &["ids"]),
            output_parts: || {
                (object(json!({"account": {"type": "string"}, "folder": {"type": "string"}, "expunged": array(json!({"type": "string"}))}), &[]), empty())
            },
            handler: expunge_messages,
        },
        ToolDef {
            name: "create_folder",
            title: "Create a folder",
            description: "Create a folder (use the delimiter from list_folders for a subfolder, e.g. Projects/2025).",
            min_posture: Posture::Full,
            read_only: false,
            destructive: false,
            idempotent: false,
            input_schema: || input(json!({"account": account_arg(), "name": string(defs::FOLDER_MAX, "The new folder's name.")}), &["name"]),
            output_parts: || (object(json!({"account": {"type": "string"}, "folder": {"type": "string"}}), &[]), empty()),
            handler: create_folder,
        },
        ToolDef {
            name: "rename_folder",
            title: "Rename a folder",
            description: "Rename a folder. INBOX and special folders (Sent, Drafts, Trash, Junk, Archive, …) cannot be renamed.",
            min_posture: Posture::Full,
            read_only: false,
            destructive: false,
            idempotent: false,
            input_schema: || {
                input(
                    json!({"account": account_arg(), "from": string(defs::FOLDER_MAX, "Current name."), "to": string(defs::FOLDER_MAX, "New name.")}),
                    &["from", "to"],
                )
            },
            output_parts: || (object(json!({"account": {"type": "string"}, "from": {"type": "string"}, "to": {"type": "string"}}), &[]), empty()),
            handler: rename_folder,
        },
        ToolDef {
            name: "delete_folder",
            title: "Delete a folder",
            description: "Delete a folder and everything in it, permanently. INBOX and special folders are protected. Asks the user to confirm when the client can.",
            min_posture: Posture::Destructive,
            read_only: false,
            destructive: true,
            idempotent: false,
            input_schema: || input(json!({"account": account_arg(), "name": string(defs::FOLDER_MAX, "Folder to delete."), "confirmation_token": token_arg()}), &["name"]),
            output_parts: || (object(json!({"account": {"type": "string"}, "folder": {"type": "string"}}), &[]), empty()),
            handler: delete_folder,
        },
    ]
}

/// A validated batch: one account, folder and UIDVALIDITY.
pub(super) struct Batch<'r> {
    pub account: &'r Account,
    pub client: &'r ImapClient,
    pub folder: MailboxName,
    pub uidvalidity: u32,
    pub uids: Vec<u32>,
}

impl Batch<'_> {
    pub fn id(&self, uid: u32) -> String {
        MessageRef { account: self.account.name.clone(), folder: self.folder.as_str().to_string(), uidvalidity: self.uidvalidity, uid }
            .encode()
    }
}

pub(super) fn parse_batch<'r>(reg: &'r Registry, tool: &str, args: &mut Args) -> Result<Batch<'r>, ToolError> {
    let max = reg.limits().max_batch;
    let ids = args.str_list("ids", max, super::ids::MAX_ID_LEN)?.ok_or_else(|| ToolError::invalid("argument `ids` is required"))?;
    if ids.is_empty() {
        return Err(ToolError::invalid("argument `ids` must name at least one message"));
    }
    let mut first: Option<MessageRef> = None;
    let mut uids = Vec::with_capacity(ids.len());
    for raw in &ids {
        let r = MessageRef::decode(raw)
            .ok_or_else(|| ToolError::invalid(format!("`{}` is not a message id issued by mailmoat", content::clean_line(raw))))?;
        if let Some(f) = &first {
            if f.account != r.account || f.folder != r.folder || f.uidvalidity != r.uidvalidity {
                return Err(ToolError::invalid(format!(
                    "all ids must come from one folder of one account; `{raw}` does not match the first id"
                )));
            }
        }
        if !uids.contains(&r.uid) {
            uids.push(r.uid);
        }
        first.get_or_insert(r);
    }
    let first = first.ok_or_else(|| ToolError::invalid("argument `ids` must name at least one message"))?;
    let (account, client) = reg.account(Some(&first.account))?;
    reg.check_posture(tool, account)?;
    let folder = MailboxName::new(&first.folder)?;
    Ok(Batch { account, client, folder, uidvalidity: first.uidvalidity, uids })
}

fn parse_flags(list: Option<Vec<String>>, what: &str) -> Result<Vec<Flag>, ToolError> {
    let mut out = Vec::new();
    for f in list.unwrap_or_default() {
        if f.eq_ignore_ascii_case("\\Deleted") || f.eq_ignore_ascii_case("\\Draft") || f.eq_ignore_ascii_case(PENDING_REVIEW) {
            return Err(ToolError::invalid(format!(
                "{what} {f} cannot be changed with update_flags (use delete_messages / expunge_messages; drafts keep their review mark)"
            )));
        }
        out.push(Flag::parse(&f)?);
    }
    Ok(out)
}

fn update_flags(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let b = parse_batch(reg, "update_flags", &mut args)?;
    let add = parse_flags(args.str_list("add", FLAGS_MAX_ITEMS, FLAG_MAX)?, "flag")?;
    let remove = parse_flags(args.str_list("remove", FLAGS_MAX_ITEMS, FLAG_MAX)?, "flag")?;
    args.finish()?;
    if add.is_empty() && remove.is_empty() {
        return Err(ToolError::invalid("give flags to `add` or `remove`"));
    }
    let op = OpCtx { cancel: ctx.cancel, progress: &no_progress };
    let result = b.client.store_flags(&op, &b.folder, b.uidvalidity, &b.uids, &add, &remove)?;
    let mut text = format!("updated flags in {}/{}:\n", b.account.name, content::clean_line(b.folder.as_str()));
    let updated: Vec<Value> = result
        .iter()
        .map(|(uid, flags)| {
            let flags = super::read::visible_flags(flags);
            text.push_str(&format!("- {}: {}\n", b.id(*uid), super::read::flags_text(&flags)));
            json!({"id": b.id(*uid), "flags": flags})
        })
        .collect();
    let missing: Vec<String> = b.uids.iter().filter(|u| !result.iter().any(|(r, _)| r == *u)).map(|u| b.id(*u)).collect();
    if !missing.is_empty() {
        text.push_str(&format!("{} message(s) no longer exist\n", missing.len()));
    }
    Ok(Output {
        meta: json!({"account": b.account.name, "folder": b.folder.as_str(), "updated": updated, "missing": missing}),
        untrusted: json!({}),
        warnings: vec![],
        meta_text: text,
        untrusted_text: String::new(),
    })
}

fn update_labels(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let b = parse_batch(reg, "update_labels", &mut args)?;
    let add = args.str_list("add", FLAGS_MAX_ITEMS, FLAG_MAX)?.unwrap_or_default();
    let remove = args.str_list("remove", FLAGS_MAX_ITEMS, FLAG_MAX)?.unwrap_or_default();
    args.finish()?;
    if add.is_empty() && remove.is_empty() {
        return Err(ToolError::invalid("give labels to `add` or `remove`"));
    }
    for l in add.iter().chain(remove.iter()) {
        if l.eq_ignore_ascii_case(PENDING_REVIEW) || l.starts_with('\\') {
            return Err(ToolError::invalid(format!("label {l} cannot be changed with update_labels")));
        }
    }
    let op = OpCtx { cancel: ctx.cancel, progress: &no_progress };
    let (mechanism, result) = b.client.store_labels(&op, &b.folder, b.uidvalidity, &b.uids, &add, &remove)?;
    let mut text = format!("updated labels in {}/{} using {mechanism}:\n", b.account.name, content::clean_line(b.folder.as_str()));
    let updated: Vec<Value> = result
        .iter()
        .map(|(uid, labels)| {
            let labels: Vec<String> =
                labels.iter().map(|l| content::clean_line(l)).filter(|l| !l.eq_ignore_ascii_case("\\Recent")).collect();
            text.push_str(&format!("- {}: {}\n", b.id(*uid), labels.join(" ")));
            json!({"id": b.id(*uid), "labels": labels})
        })
        .collect();
    Ok(Output {
        meta: json!({"account": b.account.name, "folder": b.folder.as_str(), "mechanism": mechanism, "updated": updated}),
        untrusted: json!({}),
        warnings: vec![],
        meta_text: text,
        untrusted_text: String::new(),
    })
}

fn transfer(reg: &Registry, ctx: &CallCtx, mut args: Args, tool: &str, copy: bool) -> Result<Output, ToolError> {
    let b = parse_batch(reg, tool, &mut args)?;
    let to = MailboxName::new(&args.str_req("to_folder", defs::FOLDER_MAX)?)?;
    args.finish()?;
    if to == b.folder {
        return Err(ToolError::invalid("the destination is the folder the messages are already in"));
    }
    do_transfer(ctx, &b, &to, copy)
}

fn do_transfer(ctx: &CallCtx, b: &Batch, to: &MailboxName, copy: bool) -> Result<Output, ToolError> {
    let op = OpCtx { cancel: ctx.cancel, progress: &no_progress };
    let r = if copy {
        b.client.copy_messages(&op, &b.folder, b.uidvalidity, &b.uids, to)?
    } else {
        b.client.move_messages(&op, &b.folder, b.uidvalidity, &b.uids, to)?
    };
    let new_id = |old: u32| -> Option<String> {
        let (_, new) = r.mapping.iter().find(|(o, _)| *o == old)?;
        let uv = r.dest_uidvalidity?;
        Some(MessageRef { account: b.account.name.clone(), folder: to.as_str().to_string(), uidvalidity: uv, uid: *new }.encode())
    };
    let verb = if copy { "copied" } else { "moved" };
    let mut text = format!(
        "{verb} {} message(s) from {} to {} ({}):\n",
        b.uids.len(),
        content::clean_line(b.folder.as_str()),
        content::clean_line(to.as_str()),
        r.method
    );
    let moved: Vec<Value> = b
        .uids
        .iter()
        .map(|u| {
            let n = new_id(*u);
            text.push_str(&format!("- {} -> {}\n", b.id(*u), n.as_deref().unwrap_or("(new id not reported by the server)")));
            json!({"id": b.id(*u), "new_id": n})
        })
        .collect();
    Ok(Output {
        meta: json!({"account": b.account.name, "from_folder": b.folder.as_str(), "to_folder": to.as_str(), "method": r.method, "moved": moved}),
        untrusted: json!({}),
        warnings: vec![],
        meta_text: text,
        untrusted_text: String::new(),
    })
}

fn move_messages(reg: &Registry, ctx: &CallCtx, args: Args) -> Result<Output, ToolError> {
    transfer(reg, ctx, args, "move_messages", false)
}

fn copy_messages(reg: &Registry, ctx: &CallCtx, args: Args) -> Result<Output, ToolError> {
    transfer(reg, ctx, args, "copy_messages", true)
}

/// Runs the confirmation gate; `Some(result)` means answer with it instead of acting.
pub(super) fn confirmed(reg: &Registry, ctx: &CallCtx, tool: &str, raw_args: &Value, preview: Preview) -> Result<Option<Value>, ToolError> {
    match confirm::gate(reg.config().confirm, ctx, tool, raw_args, &preview)? {
        Gate::Proceed => Ok(None),
        Gate::Respond(v) => Ok(Some(v)),
    }
}

fn delete_messages(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let raw_args = args.snapshot();
    let b = parse_batch(reg, "delete_messages", &mut args)?;
    args.str_opt(confirm::TOKEN_ARG, 200)?;
    args.finish()?;
    let op = OpCtx { cancel: ctx.cancel, progress: &no_progress };
    let trash = b.client.folder_with_role(&op, "trash")?.ok_or_else(|| {
        ToolError::new("no_trash_folder", format!("account {} has no folder with the Trash role; nothing was deleted", b.account.name))
    })?;
    if trash == b.folder {
        return Err(ToolError::invalid("these messages are already in Trash; expunge_messages removes them permanently"));
    }
    let preview = Preview {
        action: format!(
            "move {} message(s) from {} to {}",
            b.uids.len(),
            content::clean_line(b.folder.as_str()),
            content::clean_line(trash.as_str())
        ),
        details: vec![format!("account: {}", b.account.name)],
    };
    if let Some(answer) = confirmed(reg, ctx, "delete_messages", &raw_args, preview)? {
        return Err(ToolError::respond(answer));
    }
    do_transfer(ctx, &b, &trash, false)
}

fn expunge_messages(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let raw_args = args.snapshot();
    let b = parse_batch(reg, "expunge_messages", &mut args)?;
    args.str_opt(confirm::TOKEN_ARG, 200)?;
    args.finish()?;
    let preview = Preview {
        action: format!("permanently delete {} message(s) from {} (no undo)", b.uids.len(), content::clean_line(b.folder.as_str())),
        details: vec![format!("account: {}", b.account.name)],
    };
    if let Some(answer) = confirmed(reg, ctx, "expunge_messages", &raw_args, preview)? {
        return Err(ToolError::respond(answer));
    }
    let op = OpCtx { cancel: ctx.cancel, progress: &no_progress };
    let gone = b.client.expunge_messages(&op, &b.folder, b.uidvalidity, &b.uids)?;
    let ids: Vec<String> = gone.iter().map(|u| b.id(*u)).collect();
    let text = format!("permanently deleted {} message(s) from {}/{}", ids.len(), b.account.name, content::clean_line(b.folder.as_str()));
    Ok(Output {
        meta: json!({"account": b.account.name, "folder": b.folder.as_str(), "expunged": ids}),
        untrusted: json!({}),
        warnings: vec![],
        meta_text: text,
        untrusted_text: String::new(),
    })
}

/// INBOX and every special-use folder are protected from rename and delete.
fn protected(client: &ImapClient, op: &OpCtx, name: &MailboxName) -> Result<Option<String>, ToolError> {
    if name.is_inbox() {
        return Ok(Some("INBOX".into()));
    }
    let folders = client.list_folders(op)?;
    Ok(folders.iter().find(|f| f.name == name.as_str()).and_then(|f| f.role).map(str::to_string))
}

fn folder_account<'r>(reg: &'r Registry, tool: &str, args: &mut Args) -> Result<(&'r Account, &'r ImapClient), ToolError> {
    let account = args.str_opt("account", defs::ACCOUNT_MAX)?;
    let (a, c) = reg.account(account.as_deref())?;
    reg.check_posture(tool, a)?;
    Ok((a, c))
}

fn simple(meta: Value, text: String) -> Output {
    Output { meta, untrusted: json!({}), warnings: vec![], meta_text: text, untrusted_text: String::new() }
}

fn create_folder(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let (a, c) = folder_account(reg, "create_folder", &mut args)?;
    let name = MailboxName::new(&args.str_req("name", defs::FOLDER_MAX)?)?;
    args.finish()?;
    let op = OpCtx { cancel: ctx.cancel, progress: &no_progress };
    c.create_folder(&op, &name)?;
    Ok(simple(json!({"account": a.name, "folder": name.as_str()}), format!("created folder {}", content::clean_line(name.as_str()))))
}

fn rename_folder(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let (a, c) = folder_account(reg, "rename_folder", &mut args)?;
    let from = MailboxName::new(&args.str_req("from", defs::FOLDER_MAX)?)?;
    let to = MailboxName::new(&args.str_req("to", defs::FOLDER_MAX)?)?;
    args.finish()?;
    let op = OpCtx { cancel: ctx.cancel, progress: &no_progress };
    if let Some(role) = protected(c, &op, &from)? {
        return Err(ToolError::new(
            "protected_folder",
            format!("{} is a protected folder ({role}) and cannot be renamed", content::clean_line(from.as_str())),
        ));
    }
    if to.is_inbox() {
        return Err(ToolError::invalid("a folder cannot be renamed to INBOX"));
    }
    c.rename_folder(&op, &from, &to)?;
    Ok(simple(
        json!({"account": a.name, "from": from.as_str(), "to": to.as_str()}),
        format!("renamed {} to {}", content::clean_line(from.as_str()), content::clean_line(to.as_str())),
    ))
}

fn delete_folder(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let raw_args = args.snapshot();
    let (a, c) = folder_account(reg, "delete_folder", &mut args)?;
    let name = MailboxName::new(&args.str_req("name", defs::FOLDER_MAX)?)?;
    args.str_opt(confirm::TOKEN_ARG, 200)?;
    args.finish()?;
    let op = OpCtx { cancel: ctx.cancel, progress: &no_progress };
    if let Some(role) = protected(c, &op, &name)? {
        return Err(ToolError::new(
            "protected_folder",
            format!("{} is a protected folder ({role}) and cannot be deleted", content::clean_line(name.as_str())),
        ));
    }
    let count = c.list_folders(&op)?.iter().find(|f| f.name == name.as_str()).and_then(|f| f.messages);
    let preview = Preview {
        action: format!(
            "delete the folder {} and its {} message(s), permanently",
            content::clean_line(name.as_str()),
            count.map_or("?".into(), |n| n.to_string())
        ),
        details: vec![format!("account: {}", a.name)],
    };
    if let Some(answer) = confirmed(reg, ctx, "delete_folder", &raw_args, preview)? {
        return Err(ToolError::respond(answer));
    }
    c.delete_folder(&op, &name)?;
    Ok(simple(json!({"account": a.name, "folder": name.as_str()}), format!("deleted folder {}", content::clean_line(name.as_str()))))
}
