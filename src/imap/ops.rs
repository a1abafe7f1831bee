//! The read operations, each written against one leased session. Arguments arrive already
//! validated and built (see `args`); every folder is opened with EXAMINE and every body is
//! fetched with BODY.PEEK, so nothing here changes the mailbox.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::args::{self, Criteria, MailboxName};
use super::conn::{Bounds, Conn};
use super::error::ImapError;
use super::parse::{self, has_cap, Selected, StatusValues};
use super::utf7::decode_mutf7;
use super::{FetchedMessage, FolderInfo, OpCtx, SearchResult, Summary};

/// Runs a parser under `catch_unwind` (imap-proto panics on some malformed input).
pub(crate) fn parsed<T>(context: &'static str, f: impl FnOnce() -> Result<T, ImapError>) -> Result<T, ImapError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(Err(ImapError::Panicked { context }))
}

/// True when the server accepts non-synchronizing literals for our strings (all ≤ 4000 bytes,
/// within LITERAL-'s 4096).
pub(crate) fn literal_plus(caps: &[String]) -> bool {
    has_cap(caps, "LITERAL+") || has_cap(caps, "LITERAL-")
}

/// Opens the folder read-only.
pub(crate) fn examine(conn: &mut Conn, ctx: &OpCtx<'_>, folder: &MailboxName) -> Result<Selected, ImapError> {
    let data = conn.run("examine", &args::examine_command(folder), Some(ctx.cancel)).map_err(|e| match e {
        ImapError::Server { status: "NO", text } if means_missing(&text) => {
            ImapError::FolderNotFound { folder: folder.as_str().to_string() }
        }
        other => other,
    })?;
    parsed("examine", || parse::selected(&data))
}

/// RFC 5530 codes and the usual wording for "no such mailbox".
pub(crate) fn means_missing(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.starts_with("[nonexistent]") || t.starts_with("[trycreate]") || t.contains("not exist") || t.contains("doesn't exist")
}

fn check_validity(folder: &MailboxName, expected: u32, sel: &Selected) -> Result<(), ImapError> {
    if sel.uidvalidity != expected {
        return Err(ImapError::UidValidityChanged { folder: folder.as_str().to_string(), expected, actual: sel.uidvalidity });
    }
    Ok(())
}

/// Removes duplicates, keeping the first occurrence.
fn dedup_keep_order(v: &mut Vec<u32>) {
    let mut seen = HashSet::with_capacity(v.len());
    v.retain(|u| seen.insert(*u));
}

pub(crate) fn search(conn: &mut Conn, ctx: &OpCtx<'_>, folder: &MailboxName, query: &args::SearchQuery) -> Result<SearchResult, ImapError> {
    let criteria = args::build_search(query, literal_plus(&conn.caps))?;
    let sel = examine(conn, ctx, folder)?;
    let sort = has_cap(&conn.caps, "SORT");
    let sorted_by = if sort { "date" } else { "arrival" };
    let mut uids = Vec::new();
    if sel.exists > 0 {
        let (what, cmd) = if sort { ("uid sort", args::sort_command(&criteria)) } else { ("uid search", args::search_command(&criteria)) };
        let data = conn.run(what, &cmd, Some(ctx.cancel))?;
        uids = parsed(what, || parse::ids(&data))?;
        uids.retain(|&u| u != 0);
        if sort {
            // Ascending by date with ties in ascending UID; reversed: newest first, ties by
            // descending UID.
            uids.reverse();
            dedup_keep_order(&mut uids);
        } else {
            // Arrival order: UIDs grow with arrival, so newest first is descending UID.
            uids.sort_unstable_by(|a, b| b.cmp(a));
            uids.dedup();
        }
    }
    Ok(SearchResult { uidvalidity: sel.uidvalidity, uidnext: sel.uidnext, exists: sel.exists, uids, sorted_by })
}

/// How many UIDs one summary FETCH may cover so that its worst case fits the response limit.
fn summary_chunk(max_response_bytes: u64, max_header_bytes: u64) -> usize {
    // Per message: the header plus FLAGS, INTERNALDATE and framing.
    let per = max_header_bytes.saturating_add(1024).max(1);
    usize::try_from((max_response_bytes / per).max(1)).unwrap_or(usize::MAX)
}

pub(crate) fn fetch_summaries(
    conn: &mut Conn,
    ctx: &OpCtx<'_>,
    folder: &MailboxName,
    expect_uidvalidity: Option<u32>,
    uids: &[u32],
    max_response_bytes: u64,
    max_header_bytes: u64,
) -> Result<(u32, Vec<Summary>), ImapError> {
    let sel = examine(conn, ctx, folder)?;
    if let Some(expected) = expect_uidvalidity {
        check_validity(folder, expected, &sel)?;
    }
    Ok((sel.uidvalidity, summaries_of_selected(conn, ctx, uids, max_response_bytes, max_header_bytes)?))
}

/// [`fetch_summaries`] in the folder this session has open (no EXAMINE): for a search's page,
/// fetched right after the search on the same session.
pub(crate) fn summaries_of_selected(
    conn: &mut Conn,
    ctx: &OpCtx<'_>,
    uids: &[u32],
    max_response_bytes: u64,
    max_header_bytes: u64,
) -> Result<Vec<Summary>, ImapError> {
    let mut wanted = uids.to_vec();
    dedup_keep_order(&mut wanted);
    let mut sorted = wanted.clone();
    sorted.sort_unstable();
    let total = sorted.len() as u64;
    let mut found: HashMap<u32, Summary> = HashMap::with_capacity(sorted.len());
    let mut done = 0u64;
    for chunk in sorted.chunks(summary_chunk(max_response_bytes, max_header_bytes)) {
        let set = args::uid_set("uids", chunk)?;
        let data = conn.run("uid fetch", &args::summary_fetch_command(&set, max_header_bytes), Some(ctx.cancel))?;
        let asked: HashSet<u32> = chunk.iter().copied().collect();
        let items = parsed("uid fetch", || parse::fetches_of(&data, |u| asked.contains(&u)))?;
        for item in items {
            // Unsolicited FETCH (flag changes of other messages) carry other or no UIDs.
            let Some(uid) = item.uid.filter(|u| asked.contains(u)) else { continue };
            let Some(mut header) = item.header else { continue };
            header.truncate(usize::try_from(max_header_bytes).unwrap_or(usize::MAX));
            found.insert(
                uid,
                Summary {
                    uid,
                    flags: item.flags.unwrap_or_default(),
                    size: item.size.unwrap_or(0),
                    internal_date: item.internal_date,
                    header,
                },
            );
        }
        done += chunk.len() as u64;
        (ctx.progress)(done, Some(total));
    }
    Ok(wanted.iter().filter_map(|u| found.remove(u)).collect())
}

pub(crate) fn fetch_message(
    conn: &mut Conn,
    ctx: &OpCtx<'_>,
    folder: &MailboxName,
    uidvalidity: u32,
    uid: u32,
    max_message_bytes: u64,
) -> Result<FetchedMessage, ImapError> {
    let sel = examine(conn, ctx, folder)?;
    check_validity(folder, uidvalidity, &sel)?;
    // The caller's bound is the bound: a response of the message plus framing.
    let bounds = Bounds { response_bytes: Some(max_message_bytes.saturating_add(64 * 1024)), upload_bytes: 0 };
    let data = conn.run_bounded("uid fetch", &args::message_fetch_command(uid, max_message_bytes), Some(ctx.cancel), bounds)?;
    let items = parsed("uid fetch", || parse::fetches_of(&data, |u| u == uid))?;
    let item = items
        .into_iter()
        .find(|i| i.uid == Some(uid) && i.body.is_some())
        .ok_or_else(|| ImapError::NotFound { what: format!("message uid {uid} in folder \"{}\"", folder.as_str().escape_debug()) })?;
    let mut raw = item.body.unwrap_or_default();
    let cap = usize::try_from(max_message_bytes).unwrap_or(usize::MAX);
    let over = raw.len() > cap;
    raw.truncate(cap);
    let size = item.size.unwrap_or(u32::try_from(raw.len()).unwrap_or(u32::MAX));
    let truncated = over || (raw.len() as u64) < u64::from(size);
    (ctx.progress)(raw.len() as u64, Some(u64::from(size)));
    Ok(FetchedMessage { uid, flags: item.flags.unwrap_or_default(), size, raw, truncated })
}

pub(crate) fn search_related(
    conn: &mut Conn,
    ctx: &OpCtx<'_>,
    folder: &MailboxName,
    uidvalidity: u32,
    message_ids: &[String],
) -> Result<Vec<u32>, ImapError> {
    let chunks: Vec<Criteria> = args::build_related(message_ids, literal_plus(&conn.caps))?;
    let sel = examine(conn, ctx, folder)?;
    check_validity(folder, uidvalidity, &sel)?;
    let mut all = Vec::new();
    if sel.exists > 0 {
        let total = chunks.len() as u64;
        for (i, c) in chunks.iter().enumerate() {
            let data = conn.run("uid search", &args::search_command(c), Some(ctx.cancel))?;
            all.extend(parsed("uid search", || parse::ids(&data))?);
            (ctx.progress)(i as u64 + 1, Some(total));
        }
    }
    all.retain(|&u| u != 0);
    all.sort_unstable();
    all.dedup();
    Ok(all)
}

/// The special-use role of a folder, from its attributes (RFC 6154) or the INBOX name.
pub(crate) fn role(name: &str, attributes: &[String]) -> Option<&'static str> {
    if name == "INBOX" {
        return Some("inbox");
    }
    const ROLES: [(&str, &str); 7] = [
        ("\\Drafts", "drafts"),
        ("\\Sent", "sent"),
        ("\\Trash", "trash"),
        ("\\Junk", "junk"),
        ("\\Archive", "archive"),
        ("\\All", "all"),
        ("\\Flagged", "flagged"),
    ];
    ROLES.iter().find(|(attr, _)| attributes.iter().any(|a| a.eq_ignore_ascii_case(attr))).map(|(_, r)| *r)
}

pub(crate) fn list_folders(conn: &mut Conn, ctx: &OpCtx<'_>) -> Result<Vec<FolderInfo>, ImapError> {
    let special_use = has_cap(&conn.caps, "SPECIAL-USE");
    let list_status = has_cap(&conn.caps, "LIST-STATUS");
    let data = conn.run("list", &args::list_command(special_use, list_status), Some(ctx.cancel))?;
    let (entries, statuses) = parsed("list", || parse::list(&data))?;

    let mut seen = HashSet::new();
    let mut folders = Vec::with_capacity(entries.len());
    let mut need_status = Vec::new();
    for e in entries {
        if !seen.insert(e.wire_name.clone()) {
            continue;
        }
        // A name we cannot decode (or could not send back) is shown escaped and not selectable.
        let decoded = if e.wire_name == "INBOX" {
            Some("INBOX".to_string())
        } else {
            decode_mutf7(&e.wire_name).filter(|n| MailboxName::new(n).is_ok())
        };
        let usable = decoded.is_some();
        let name = decoded.unwrap_or_else(|| e.wire_name.escape_debug().to_string());
        let no_select = e.attributes.iter().any(|a| a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent"));
        let selectable = usable && !no_select;
        let status = if selectable { statuses.get(&e.wire_name).copied() } else { None };
        if selectable && status.is_none() {
            need_status.push(folders.len());
        }
        let st = status.unwrap_or_default();
        folders.push((
            e.wire_name,
            FolderInfo {
                role: role(&name, &e.attributes),
                name,
                delimiter: e.delimiter,
                attributes: e.attributes,
                selectable,
                messages: st.messages,
                unseen: st.unseen,
                uidvalidity: st.uidvalidity,
                uidnext: st.uidnext,
            },
        ));
    }

    let total = need_status.len() as u64;
    for (n, &i) in need_status.iter().enumerate() {
        let (wire, info) = &mut folders[i];
        let cmd = args::status_command(wire)?;
        match conn.run("status", &cmd, Some(ctx.cancel)) {
            Ok(data) => {
                let st: StatusValues = parsed("status", || parse::status(&data, wire))?.unwrap_or_default();
                info.messages = st.messages;
                info.unseen = st.unseen;
                info.uidvalidity = st.uidvalidity;
                info.uidnext = st.uidnext;
            }
            // A folder that vanished or is not readable keeps empty counts.
            Err(e) if !e.is_connection_level() => {}
            Err(e) => return Err(e),
        }
        (ctx.progress)(n as u64 + 1, Some(total));
    }

    let mut out: Vec<FolderInfo> = folders.into_iter().map(|(_, f)| f).collect();
    out.sort_by(|a, b| (a.name != "INBOX", &a.name).cmp(&(b.name != "INBOX", &b.name)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_from_attributes() {
        let attrs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(role("INBOX", &[]), Some("inbox"));
        assert_eq!(role("Sent Items", &attrs(&["\\HasNoChildren", "\\Sent"])), Some("sent"));
        assert_eq!(role("x", &attrs(&["\\junk"])), Some("junk"));
        assert_eq!(role("Trash", &attrs(&["\\HasNoChildren"])), None);
    }

    #[test]
    fn missing_folder_wording() {
        assert!(means_missing("[NONEXISTENT] Mailbox doesn't exist: Foo"));
        assert!(means_missing("[TRYCREATE] no"));
        assert!(means_missing("Mailbox does not exist"));
        assert!(!means_missing("[NOPERM] Permission denied"));
    }

    #[test]
    fn summary_chunks_fit_the_response_limit() {
        assert_eq!(summary_chunk(48 * 1024 * 1024, 64 * 1024), 756);
        assert_eq!(summary_chunk(1000, 64 * 1024), 1);
        assert_eq!(summary_chunk(10 * 1024, 0), 10);
    }

    #[test]
    fn dedup_keeps_first() {
        let mut v = vec![5, 3, 5, 1, 3];
        dedup_keep_order(&mut v);
        assert_eq!(v, [5, 3, 1]);
    }
}
