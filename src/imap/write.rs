//! The operations that change the mailbox, each written against one leased session.
//!
//! Every message operation opens its folder (SELECT, or EXAMINE where reading suffices),
//! checks UIDVALIDITY against the caller's, and names messages only by UID with UID-prefixed
//! commands: a sequence number or a bare EXPUNGE (which removes every `\Deleted` message, also
//! ones we were not asked about) is never sent. Once the first changing command has gone out,
//! the rest of the operation ignores cancellation (only the timeouts still apply), so that a
//! cancelled move cannot stop between its COPY and its EXPUNGE; and a session that had a folder
//! selected read-write goes back to the pool with it deselected.

use std::collections::HashSet;

use super::args::{self, Flag, MailboxName};
use super::conn::{Bounds, Conn};
use super::error::ImapError;
use super::ops::{self, means_missing, parsed};
use super::parse::{self, has_cap, Selected};
use super::utf7::decode_mutf7;
use super::{FetchedPart, MoveResult, OpCtx, UidValues};

/// Special-use roles `folder_with_role` knows (RFC 6154 plus `inbox`).
pub(crate) const ROLES: [&str; 8] = ["inbox", "drafts", "sent", "trash", "junk", "archive", "all", "flagged"];

/// Maps "no such mailbox" answers about `folder` to [`ImapError::FolderNotFound`] and
/// "already exists" to [`ImapError::AlreadyExists`].
fn about_folder(folder: &MailboxName) -> impl Fn(ImapError) -> ImapError + '_ {
    move |e| match e {
        ImapError::Server { status: "NO", text } if means_missing(&text) => ImapError::FolderNotFound { folder: folder.to_string() },
        ImapError::Server { status: "NO", text } if text.to_ascii_lowercase().starts_with("[alreadyexists]") => {
            ImapError::AlreadyExists { folder: folder.to_string() }
        }
        other => other,
    }
}

fn check_validity(folder: &MailboxName, expected: u32, sel: &Selected) -> Result<(), ImapError> {
    if sel.uidvalidity != expected {
        return Err(ImapError::UidValidityChanged { folder: folder.to_string(), expected, actual: sel.uidvalidity });
    }
    Ok(())
}

/// SELECTs the folder read-write; returns what it reported and its PERMANENTFLAGS.
fn select(conn: &mut Conn, ctx: &OpCtx<'_>, folder: &MailboxName) -> Result<(Selected, Option<Vec<String>>), ImapError> {
    let data = conn.run("select", &args::select_command(folder), Some(ctx.cancel)).map_err(about_folder(folder))?;
    let sel = parsed("select", || parse::selected(&data))?;
    let permanent = parsed("select", || parse::permanent_flags(&data))?;
    Ok((sel, permanent))
}

/// Runs `body` with `folder` selected read-write (after checking UIDVALIDITY), then deselects
/// it (UNSELECT, or EXAMINE of the same folder where UNSELECT is not offered; never CLOSE,
/// which would expunge), so that no pooled session is left able to change the folder. A
/// failed SELECT leaves nothing selected (RFC 3501 §6.3.1); a failed deselect discards the
/// session.
fn with_selected<T>(
    conn: &mut Conn,
    ctx: &OpCtx<'_>,
    folder: &MailboxName,
    uidvalidity: u32,
    body: impl FnOnce(&mut Conn, Option<Vec<String>>) -> Result<T, ImapError>,
) -> Result<T, ImapError> {
    let (sel, permanent) = select(conn, ctx, folder)?;
    let result = check_validity(folder, uidvalidity, &sel).and_then(|()| body(conn, permanent));
    if matches!(&result, Err(e) if e.is_connection_level()) {
        return result;
    }
    let deselected = if has_cap(&conn.caps, "UNSELECT") {
        conn.run("unselect", "UNSELECT", None).map(drop)
    } else {
        conn.run("examine", &args::examine_command(folder), None).map(drop)
    };
    if deselected.is_err() {
        conn.discard = true;
    }
    result
}

/// Refuses to store a flag the folder's PERMANENTFLAGS does not allow (the server would accept
/// it for this session only, and the caller would believe it stored).
fn check_permanent(folder: &MailboxName, permanent: Option<&Vec<String>>, add: &[Flag]) -> Result<(), ImapError> {
    let Some(allowed) = permanent else { return Ok(()) };
    let any_keyword = allowed.iter().any(|f| f == "\\*");
    for f in add {
        let wire = f.as_imap();
        let ok = allowed.iter().any(|a| a.eq_ignore_ascii_case(&wire)) || (matches!(f, Flag::Keyword(_)) && any_keyword);
        if !ok {
            return Err(ImapError::Unsupported {
                what: format!("storing the flag {wire} permanently in folder \"{}\"", folder.as_str().escape_debug()),
            });
        }
    }
    Ok(())
}

/// `(uid, values)` for the asked UIDs that came back, in the caller's order (first occurrence).
fn in_caller_order(uids: &[u32], found: UidValues) -> UidValues {
    let mut by_uid: std::collections::HashMap<u32, Vec<String>> = found.into_iter().collect();
    let mut out = Vec::with_capacity(by_uid.len());
    for u in uids {
        if let Some(v) = by_uid.remove(u) {
            out.push((*u, v));
        }
    }
    out
}

/// FLAGS (or X-GM-LABELS) of exactly the asked UIDs; unsolicited FETCH data of other
/// messages is ignored.
fn fetch_values(conn: &mut Conn, set: &str, uids: &[u32], labels: bool) -> Result<UidValues, ImapError> {
    let cmd = if labels { args::fetch_labels_command(set) } else { args::fetch_flags_command(set) };
    let data = conn.run("uid fetch", &cmd, None)?;
    let asked: HashSet<u32> = uids.iter().copied().collect();
    let items = parsed("uid fetch", || parse::fetches_of(&data, |u| asked.contains(&u)))?;
    let mut found = Vec::new();
    for item in items {
        let Some(uid) = item.uid.filter(|u| asked.contains(u)) else { continue };
        let values = if labels { item.labels } else { item.flags };
        if let Some(mut v) = values {
            // \Recent is per session (our SELECT just took it over); it is not a flag anyone set.
            v.retain(|f| !f.eq_ignore_ascii_case("\\Recent"));
            found.push((uid, v));
        }
    }
    Ok(in_caller_order(uids, found))
}

#[allow(clippy::too_many_arguments)] // reason: one operation's full description; a struct would only rename them
pub(crate) fn store_flags(
    conn: &mut Conn,
    ctx: &OpCtx<'_>,
    folder: &MailboxName,
    uidvalidity: u32,
    uids: &[u32],
    set: &str,
    add: &[Flag],
    remove: &[Flag],
) -> Result<UidValues, ImapError> {
    with_selected(conn, ctx, folder, uidvalidity, |conn, permanent| {
        check_permanent(folder, permanent.as_ref(), add)?;
        if !add.is_empty() {
            conn.run_mutation("uid store", &args::store_flags_command(set, true, add), None)?;
        }
        if !remove.is_empty() {
            conn.run_mutation("uid store", &args::store_flags_command(set, false, remove), None)?;
        }
        fetch_values(conn, set, uids, false)
    })
}

/// Labels through X-GM-LABELS (Gmail), else keywords.
#[allow(clippy::too_many_arguments)] // reason: as store_flags
pub(crate) fn store_labels(
    conn: &mut Conn,
    ctx: &OpCtx<'_>,
    folder: &MailboxName,
    uidvalidity: u32,
    uids: &[u32],
    set: &str,
    add: &[String],
    remove: &[String],
) -> Result<(&'static str, UidValues), ImapError> {
    if has_cap(&conn.caps, "X-GM-EXT-1") {
        let encode = |v: &[String]| v.iter().map(|l| args::gmail_label(l)).collect::<Result<Vec<_>, _>>();
        let (add, remove) = (encode(add)?, encode(remove)?);
        if let Some(l) = add.iter().find(|a| remove.contains(a)) {
            return Err(args::ArgError::new("labels", format!("label {l} is both added and removed")).into());
        }
        let result = with_selected(conn, ctx, folder, uidvalidity, |conn, _| {
            if !add.is_empty() {
                conn.run_mutation("uid store", &args::store_labels_command(set, true, &add), None)?;
            }
            if !remove.is_empty() {
                conn.run_mutation("uid store", &args::store_labels_command(set, false, &remove), None)?;
            }
            fetch_values(conn, set, uids, true)
        })?;
        return Ok(("x-gm-labels", result));
    }
    let keywords = |v: &[String]| v.iter().map(|l| Flag::parse_as("labels", l)).collect::<Result<Vec<_>, _>>();
    let (add, remove) = (keywords(add)?, keywords(remove)?);
    if let Some(f) = add.iter().chain(&remove).find(|f| !matches!(f, Flag::Keyword(_))) {
        return Err(
            args::ArgError::new("labels", format!("{f} is a system flag, not a label; this server has no labels, only keywords")).into()
        );
    }
    args::check_flag_sets(&add, &remove).map_err(|e| args::ArgError::new("labels", e.reason))?;
    let flags = store_flags(conn, ctx, folder, uidvalidity, uids, set, &add, &remove)?;
    let keywords_only = flags.into_iter().map(|(u, f)| (u, f.into_iter().filter(|f| !f.starts_with('\\')).collect())).collect();
    Ok(("keywords", keywords_only))
}

fn copy_result(method: &'static str, data: &[u8], uids: &[u32]) -> Result<MoveResult, ImapError> {
    let copied = parsed("copyuid", || parse::copyuid(data, uids, uids.len()))?;
    let (dest_uidvalidity, mapping) = match copied {
        Some((v, pairs)) => (Some(v), pairs),
        None => (None, Vec::new()),
    };
    Ok(MoveResult { method, mapping, dest_uidvalidity })
}

/// Checked before any connection (see `ImapClient::move_messages`) and again here.
pub(crate) fn refuse_same_folder(folder: &MailboxName, to: &MailboxName) -> Result<(), ImapError> {
    if folder.wire() == to.wire() {
        return Err(args::ArgError::new("to_folder", "is the folder the messages are in").into());
    }
    Ok(())
}

pub(crate) fn move_messages(
    conn: &mut Conn,
    ctx: &OpCtx<'_>,
    folder: &MailboxName,
    uidvalidity: u32,
    uids: &[u32],
    set: &str,
    to: &MailboxName,
) -> Result<MoveResult, ImapError> {
    refuse_same_folder(folder, to)?;
    let has_move = has_cap(&conn.caps, "MOVE");
    if !has_move && !has_cap(&conn.caps, "UIDPLUS") {
        return Err(ImapError::Unsupported {
            what: "moving messages: the server offers neither MOVE nor UIDPLUS (UID EXPUNGE), and a plain EXPUNGE \
                   would also remove other messages marked \\Deleted"
                .into(),
        });
    }
    with_selected(conn, ctx, folder, uidvalidity, |conn, _| {
        if has_move {
            let data = conn.run_mutation("uid move", &args::move_command(set, to), None).map_err(about_folder(to))?;
            return copy_result("move", &data, uids);
        }
        // Only UIDs that exist now: a requested UID at or above UIDNEXT could otherwise be
        // given to a message arriving between the COPY and the EXPUNGE, which would then be
        // expunged without having been copied. UIDs are never reused, so this set is exact.
        let present = present_of(conn, set, uids)?;
        if present.is_empty() {
            return Ok(MoveResult { method: "copy+expunge", mapping: Vec::new(), dest_uidvalidity: None });
        }
        let present = args::uid_set("uids", &present)?;
        let data = conn.run_mutation("uid copy", &args::copy_command(&present, to), None).map_err(about_folder(to))?;
        let result = copy_result("copy+expunge", &data, uids)?;
        conn.run_mutation("uid store", &args::store_flags_command(&present, true, &[Flag::Deleted]), None)?;
        conn.run_mutation("uid expunge", &args::uid_expunge_command(&present), None)?;
        Ok(result)
    })
}

/// UID COPY from the folder opened read-only (copying does not change the source).
pub(crate) fn copy_messages(
    conn: &mut Conn,
    ctx: &OpCtx<'_>,
    folder: &MailboxName,
    uidvalidity: u32,
    uids: &[u32],
    set: &str,
    to: &MailboxName,
) -> Result<MoveResult, ImapError> {
    refuse_same_folder(folder, to)?;
    let sel = ops::examine(conn, ctx, folder)?;
    check_validity(folder, uidvalidity, &sel)?;
    let data = conn.run_mutation("uid copy", &args::copy_command(set, to), None).map_err(about_folder(to))?;
    copy_result("copy", &data, uids)
}

/// The asked UIDs that exist now, ascending.
fn present_of(conn: &mut Conn, set: &str, uids: &[u32]) -> Result<Vec<u32>, ImapError> {
    let asked: HashSet<u32> = uids.iter().copied().collect();
    Ok(existing(conn, set)?.into_iter().filter(|u| asked.contains(u)).collect())
}

fn existing(conn: &mut Conn, set: &str) -> Result<Vec<u32>, ImapError> {
    let data = conn.run("uid search", &args::existing_uids_command(set), None)?;
    let mut v = parsed("uid search", || parse::ids(&data))?;
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// `\Deleted` plus UID EXPUNGE of exactly the UIDs that exist; returns those that are gone
/// afterwards (checked, not assumed).
pub(crate) fn expunge_messages(
    conn: &mut Conn,
    ctx: &OpCtx<'_>,
    folder: &MailboxName,
    uidvalidity: u32,
    uids: &[u32],
    set: &str,
) -> Result<Vec<u32>, ImapError> {
    if !has_cap(&conn.caps, "UIDPLUS") {
        return Err(ImapError::Unsupported {
            what: "expunging single messages: the server does not offer UIDPLUS (UID EXPUNGE), and a plain EXPUNGE \
                   would also remove other messages marked \\Deleted"
                .into(),
        });
    }
    with_selected(conn, ctx, folder, uidvalidity, |conn, _| {
        let before = present_of(conn, set, uids)?;
        if before.is_empty() {
            return Ok(Vec::new());
        }
        let present = args::uid_set("uids", &before)?;
        conn.run_mutation("uid store", &args::store_flags_command(&present, true, &[Flag::Deleted]), None)?;
        conn.run_mutation("uid expunge", &args::uid_expunge_command(&present), None)?;
        let after: HashSet<u32> = existing(conn, &present)?.into_iter().collect();
        Ok(before.into_iter().filter(|u| !after.contains(u)).collect())
    })
}

/// The folder's special-use role, from a fresh LIST (INBOX is `inbox`).
fn role_of(conn: &mut Conn, ctx: &OpCtx<'_>, folder: &MailboxName) -> Result<Option<&'static str>, ImapError> {
    if folder.is_inbox() {
        return Ok(Some("inbox"));
    }
    let wire = folder.wire();
    Ok(list_roles(conn, ctx)?.into_iter().find(|(w, _)| *w == wire).and_then(|(_, r)| r))
}

/// Every listed folder's wire name and role.
fn list_roles(conn: &mut Conn, ctx: &OpCtx<'_>) -> Result<Vec<(String, Option<&'static str>)>, ImapError> {
    let special_use = has_cap(&conn.caps, "SPECIAL-USE");
    let data = conn.run("list", &args::list_command(special_use, false), Some(ctx.cancel))?;
    let (entries, _) = parsed("list", || parse::list(&data))?;
    Ok(entries
        .into_iter()
        .map(|e| {
            let role = ops::role(&e.wire_name, &e.attributes);
            let selectable = !e.attributes.iter().any(|a| a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent"));
            (e.wire_name, role.filter(|_| selectable))
        })
        .collect())
}

/// INBOX and special-use folders are never renamed or deleted.
fn refuse_protected(conn: &mut Conn, ctx: &OpCtx<'_>, folder: &MailboxName, doing: &str) -> Result<(), ImapError> {
    match role_of(conn, ctx, folder)? {
        Some("inbox") => Err(args::ArgError::new("folder", format!("INBOX cannot be {doing}")).into()),
        Some(role) => Err(args::ArgError::new(
            "folder",
            format!("\"{}\" is the {role} folder; special-use folders cannot be {doing}", folder.as_str().escape_debug()),
        )
        .into()),
        None => Ok(()),
    }
}

/// Best effort: subscription lists are a convenience of mail clients.
fn subscription(conn: &mut Conn, cmd: &str) -> Result<(), ImapError> {
    match conn.run("subscribe", cmd, None) {
        Err(e) if e.is_connection_level() => Err(e),
        _ => Ok(()),
    }
}

/// The refusals of folder operations that need no server: INBOX exists already, and a folder
/// cannot be renamed to its own name.
pub(crate) fn check_folder_names(from: Option<&MailboxName>, to: &MailboxName) -> Result<(), ImapError> {
    if to.is_inbox() {
        return Err(ImapError::AlreadyExists { folder: "INBOX".into() });
    }
    if from.is_some_and(|f| f.wire() == to.wire()) {
        return Err(args::ArgError::new("to_folder", "is the folder's current name").into());
    }
    Ok(())
}

pub(crate) fn create_folder(conn: &mut Conn, _ctx: &OpCtx<'_>, name: &MailboxName) -> Result<(), ImapError> {
    check_folder_names(None, name)?;
    conn.run_mutation("create", &args::create_command(name), None).map_err(about_folder(name))?;
    subscription(conn, &args::subscribe_command(name))
}

pub(crate) fn rename_folder(conn: &mut Conn, ctx: &OpCtx<'_>, from: &MailboxName, to: &MailboxName) -> Result<(), ImapError> {
    check_folder_names(Some(from), to)?;
    refuse_protected(conn, ctx, from, "renamed")?;
    conn.run_mutation("rename", &args::rename_command(from, to), None).map_err(|e| match about_folder(to)(e) {
        ImapError::FolderNotFound { .. } => ImapError::FolderNotFound { folder: from.to_string() },
        other => other,
    })?;
    subscription(conn, &args::unsubscribe_command(from))?;
    subscription(conn, &args::subscribe_command(to))
}

pub(crate) fn delete_folder(conn: &mut Conn, ctx: &OpCtx<'_>, name: &MailboxName) -> Result<(), ImapError> {
    refuse_protected(conn, ctx, name, "deleted")?;
    conn.run_mutation("delete", &args::delete_command(name), None).map_err(about_folder(name))?;
    subscription(conn, &args::unsubscribe_command(name))
}

/// APPEND; returns (UIDVALIDITY, UID) when the server reports APPENDUID.
pub(crate) fn append(
    conn: &mut Conn,
    ctx: &OpCtx<'_>,
    folder: &MailboxName,
    flags: &[Flag],
    raw: &[u8],
) -> Result<Option<(u32, u32)>, ImapError> {
    // RFC 7889: a server may announce the largest message it accepts.
    let limit = conn.caps.iter().find_map(|c| c.get(..12).filter(|p| p.eq_ignore_ascii_case("APPENDLIMIT=")).and(c.get(12..)));
    if let Some(max) = limit.and_then(|n| n.parse::<u64>().ok()) {
        if raw.len() as u64 > max {
            return Err(ImapError::Unsupported { what: format!("a message of {} bytes (its APPENDLIMIT is {max})", raw.len()) });
        }
    }
    if ctx.cancel.is_cancelled() {
        return Err(ImapError::Cancelled);
    }
    let data = conn.append(folder, flags, raw, None).map_err(about_folder(folder))?;
    parsed("append", || parse::appenduid(&data))
}

/// True when a raw header declares a multipart Content-Type (folded lines joined).
fn is_multipart(header: &[u8]) -> bool {
    let mut value: Option<Vec<u8>> = None;
    for line in header.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match (&mut value, line.first()) {
            (Some(v), Some(b' ' | b'\t')) => v.extend_from_slice(line),
            (Some(_), _) => break,
            (None, _) => {
                if line.len() >= 13 && line[..13].eq_ignore_ascii_case(b"content-type:") {
                    value = Some(line[13..].to_vec());
                }
            }
        }
    }
    value.is_some_and(|v| {
        let t = String::from_utf8_lossy(&v).trim_start().to_ascii_lowercase();
        t.starts_with("multipart/")
    })
}

#[allow(clippy::too_many_arguments)] // reason: one operation's full description
pub(crate) fn fetch_part(
    conn: &mut Conn,
    ctx: &OpCtx<'_>,
    folder: &MailboxName,
    uidvalidity: u32,
    uid: u32,
    section: &str,
    max_bytes: u64,
    max_header_bytes: u64,
) -> Result<FetchedPart, ImapError> {
    let sel = ops::examine(conn, ctx, folder)?;
    check_validity(folder, uidvalidity, &sel)?;
    let cmd = args::part_fetch_command(uid, section, max_bytes, max_header_bytes);
    let bounds = Bounds {
        response_bytes: Some(max_bytes.saturating_add(max_header_bytes.saturating_mul(2)).saturating_add(64 * 1024)),
        upload_bytes: 0,
    };
    let data = conn.run_bounded("uid fetch", &cmd, Some(ctx.cancel), bounds)?;
    let items = parsed("uid fetch", || parse::fetches_of(&data, |u| u == uid))?;
    let not_found = || ImapError::NotFound { what: format!("message uid {uid} in folder \"{}\"", folder.as_str().escape_debug()) };
    let item = items.into_iter().find(|i| i.uid == Some(uid) && !i.sections.is_empty()).ok_or_else(not_found)?;
    let mime_name = format!("{section}.MIME");
    let mut data_part = None;
    let mut mime = None;
    for (name, bytes) in item.sections {
        if name == section {
            data_part = Some(bytes);
        } else if name == mime_name {
            mime = Some(bytes);
        }
    }
    let data_part = data_part.ok_or_else(|| ImapError::Protocol { reason: "the server did not return the requested part".into() })?;
    let mut mime_header = mime.flatten().unwrap_or_default();
    // Part 1 of a message that is not multipart is its body, and its header is the message's.
    if section == "1" {
        if let Some(h) = item.header.filter(|h| !is_multipart(h)) {
            mime_header = h;
        }
    }
    mime_header.truncate(usize::try_from(max_header_bytes).unwrap_or(usize::MAX));
    let Some(mut data) = data_part else {
        return Err(ImapError::NotFound { what: format!("part {section} of message uid {uid}") });
    };
    // Dovecot answers a part that does not exist with empty data and an empty MIME header.
    if data.is_empty() && mime_header.is_empty() {
        return Err(ImapError::NotFound { what: format!("part {section} of message uid {uid}") });
    }
    let cap = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let truncated = data.len() > cap;
    data.truncate(cap);
    (ctx.progress)(data.len() as u64, None);
    Ok(FetchedPart { mime_header, data, truncated })
}

/// The first selectable folder with this special-use role, in the server's LIST order.
pub(crate) fn folder_with_role(conn: &mut Conn, ctx: &OpCtx<'_>, role: &str) -> Result<Option<MailboxName>, ImapError> {
    if role == "inbox" {
        return Ok(Some(MailboxName::new("INBOX")?));
    }
    for (wire, r) in list_roles(conn, ctx)? {
        if r != Some(role) {
            continue;
        }
        if let Some(name) = decode_mutf7(&wire).and_then(|n| MailboxName::new(&n).ok()) {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// The UIDs (ascending) of the thread holding `uid`, by `UID THREAD REFERENCES`; `None` when
/// the server does not offer THREAD=REFERENCES.
pub(crate) fn thread_references(
    conn: &mut Conn,
    ctx: &OpCtx<'_>,
    folder: &MailboxName,
    uidvalidity: u32,
    uid: u32,
) -> Result<Option<Vec<u32>>, ImapError> {
    if !has_cap(&conn.caps, "THREAD=REFERENCES") {
        return Ok(None);
    }
    let sel = ops::examine(conn, ctx, folder)?;
    check_validity(folder, uidvalidity, &sel)?;
    let not_found = || ImapError::NotFound { what: format!("message uid {uid} in folder \"{}\"", folder.as_str().escape_debug()) };
    if sel.exists == 0 {
        return Err(not_found());
    }
    let lines = conn.run_thread(args::THREAD_COMMAND, Some(ctx.cancel))?;
    let threads = parsed("uid thread", || parse::threads(&lines))?;
    let mut thread = threads.into_iter().find(|t| t.contains(&uid)).ok_or_else(not_found)?;
    thread.retain(|&u| u != 0);
    thread.sort_unstable();
    thread.dedup();
    Ok(Some(thread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_detection() {
        let cases: &[(&[u8], bool)] = &[
            (b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n", true),
            (b"content-type:\r\n\tMultipart/Alternative;\r\n boundary=\"x\"\r\n\r\n", true),
            (b"Content-Type: text/plain\r\nX-Note: multipart/mixed\r\n\r\n", false),
            (b"Subject: multipart/mixed\r\n\r\n", false),
            (b"X-Content-Type: multipart/mixed\r\n", false),
            (b"", false),
        ];
        for (h, want) in cases {
            assert_eq!(is_multipart(h), *want, "{}", String::from_utf8_lossy(h));
        }
    }

    #[test]
    fn results_follow_the_callers_order() {
        let found = vec![(3, vec!["a".to_string()]), (1, vec![]), (9, vec!["b".to_string()])];
        let got = in_caller_order(&[9, 5, 1, 9, 3], found);
        assert_eq!(got.iter().map(|(u, _)| *u).collect::<Vec<_>>(), [9, 1, 3]);
    }

    #[test]
    fn permanent_flags_are_respected() {
        let f = MailboxName::new("INBOX").unwrap();
        let kw = Flag::Keyword("$Todo".into());
        let all = vec!["\\Seen".to_string(), "\\Flagged".to_string(), "\\*".to_string()];
        assert!(check_permanent(&f, Some(&all), &[Flag::Seen, kw.clone()]).is_ok());
        assert!(check_permanent(&f, None, &[Flag::Draft, kw.clone()]).is_ok());
        let fixed = vec!["\\Seen".to_string(), "$todo".to_string()];
        assert!(check_permanent(&f, Some(&fixed), &[Flag::Seen, kw.clone()]).is_ok());
        let e = check_permanent(&f, Some(&fixed), &[Flag::Flagged]).unwrap_err();
        assert_eq!(e.to_string(), "not supported by the server: storing the flag \\Flagged permanently in folder \"INBOX\"");
        let e = check_permanent(&f, Some(&vec![]), &[Flag::Keyword("$x".into())]).unwrap_err();
        assert_eq!(e.code(), "unsupported");
    }
}
