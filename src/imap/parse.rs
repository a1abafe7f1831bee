//! Reading the untagged data of a response, with `imap-proto`, into plain owned values.
//!
//! We do not use the `imap` crate's typed results: its parsers panic on legal-but-unexpected
//! input (`* NO [ALERT]` during SELECT hits an `unreachable!`) and hide raw values we need
//! (INTERNALDATE as sent). Everything here tolerates unknown untagged responses by skipping
//! them, and refuses bytes it cannot parse with a protocol error.

use std::collections::HashMap;

use imap_proto::types::{
    AttributeValue, Capability, MailboxDatum, MessageSection, NameAttribute, Response, ResponseCode, SectionPath, Status, StatusAttribute,
};

use super::error::{sanitize, ImapError};

fn unparseable() -> ImapError {
    ImapError::Protocol { reason: "unparseable response from the server".into() }
}

/// Splits the untagged part of a response into parsed responses.
pub(crate) fn responses(data: &[u8]) -> Result<Vec<Response<'_>>, ImapError> {
    let mut rest = data;
    let mut out = Vec::new();
    while !rest.is_empty() {
        match imap_proto::parser::parse_response(rest) {
            Ok((r, resp)) => {
                out.push(resp);
                rest = r;
            }
            Err(_) => return Err(unparseable()),
        }
    }
    Ok(out)
}

/// A capability as the server spells it.
pub(crate) fn capability_name(c: &Capability<'_>) -> String {
    match c {
        Capability::Imap4rev1 => "IMAP4rev1".to_string(),
        Capability::Auth(m) => format!("AUTH={m}"),
        Capability::Atom(a) => a.to_string(),
    }
}

/// Capabilities from `* CAPABILITY` data or a `[CAPABILITY ...]` response code.
pub(crate) fn capabilities_in(resp: &Response<'_>) -> Option<Vec<String>> {
    match resp {
        Response::Capabilities(caps) => Some(caps.iter().map(capability_name).collect()),
        Response::Data { code: Some(ResponseCode::Capabilities(caps)), .. }
        | Response::Done { code: Some(ResponseCode::Capabilities(caps)), .. } => Some(caps.iter().map(capability_name).collect()),
        _ => None,
    }
}

/// The last capability list in a CAPABILITY response.
pub(crate) fn capabilities(data: &[u8]) -> Result<Vec<String>, ImapError> {
    let mut found = None;
    for r in responses(data)? {
        if let Some(c) = capabilities_in(&r) {
            found = Some(c);
        }
    }
    found.ok_or_else(|| ImapError::Protocol { reason: "server sent no capability list".into() })
}

/// True if `caps` holds `name` (capabilities are case-insensitive atoms).
pub(crate) fn has_cap(caps: &[String], name: &str) -> bool {
    caps.iter().any(|c| c.eq_ignore_ascii_case(name))
}

/// What EXAMINE reports about the opened folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Selected {
    pub exists: u32,
    pub uidvalidity: u32,
    pub uidnext: Option<u32>,
}

pub(crate) fn selected(data: &[u8]) -> Result<Selected, ImapError> {
    let mut exists = None;
    let mut uidvalidity = None;
    let mut uidnext = None;
    for r in responses(data)? {
        match r {
            Response::MailboxData(MailboxDatum::Exists(n)) => exists = Some(n),
            Response::Data { status: Status::Ok, code: Some(ResponseCode::UidValidity(v)), .. } => uidvalidity = Some(v),
            Response::Data { status: Status::Ok, code: Some(ResponseCode::UidNext(v)), .. } => uidnext = Some(v),
            // Alerts, FLAGS, RECENT, PERMANENTFLAGS, HIGHESTMODSEQ, notices: not needed.
            _ => {}
        }
    }
    let uidvalidity = uidvalidity.ok_or_else(|| ImapError::Protocol { reason: "server did not report the folder's UIDVALIDITY".into() })?;
    Ok(Selected { exists: exists.unwrap_or(0), uidvalidity, uidnext })
}

/// `imap-proto` returns quoted strings with their backslash escapes in place.
pub(crate) fn unescape_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn name_attribute(a: &NameAttribute<'_>) -> String {
    match a {
        NameAttribute::NoInferiors => "\\Noinferiors".into(),
        NameAttribute::NoSelect => "\\Noselect".into(),
        NameAttribute::Marked => "\\Marked".into(),
        NameAttribute::Unmarked => "\\Unmarked".into(),
        NameAttribute::All => "\\All".into(),
        NameAttribute::Archive => "\\Archive".into(),
        NameAttribute::Drafts => "\\Drafts".into(),
        NameAttribute::Flagged => "\\Flagged".into(),
        NameAttribute::Junk => "\\Junk".into(),
        NameAttribute::Sent => "\\Sent".into(),
        NameAttribute::Trash => "\\Trash".into(),
        NameAttribute::Extension(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

/// One `* LIST` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListEntry {
    pub attributes: Vec<String>,
    pub delimiter: Option<String>,
    /// The name as sent (modified UTF-7, escapes removed).
    pub wire_name: String,
}

/// STATUS values for one folder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StatusValues {
    pub messages: Option<u32>,
    pub unseen: Option<u32>,
    pub uidvalidity: Option<u32>,
    pub uidnext: Option<u32>,
}

fn status_values(attrs: &[StatusAttribute]) -> StatusValues {
    let mut v = StatusValues::default();
    for a in attrs {
        match a {
            StatusAttribute::Messages(n) => v.messages = Some(*n),
            StatusAttribute::Unseen(n) => v.unseen = Some(*n),
            StatusAttribute::UidValidity(n) => v.uidvalidity = Some(*n),
            StatusAttribute::UidNext(n) => v.uidnext = Some(*n),
            _ => {}
        }
    }
    v
}

/// LIST entries plus any STATUS data sent with them (LIST-STATUS), keyed by wire name.
pub(crate) fn list(data: &[u8]) -> Result<(Vec<ListEntry>, HashMap<String, StatusValues>), ImapError> {
    let mut entries = Vec::new();
    let mut statuses = HashMap::new();
    for r in responses(data)? {
        match r {
            Response::MailboxData(MailboxDatum::List { name_attributes, delimiter, name }) => entries.push(ListEntry {
                attributes: name_attributes.iter().map(name_attribute).collect(),
                delimiter: delimiter.map(|d| unescape_quoted(&d)),
                wire_name: unescape_quoted(&name),
            }),
            Response::MailboxData(MailboxDatum::Status { mailbox, status }) => {
                statuses.insert(unescape_quoted(&mailbox), status_values(&status));
            }
            _ => {}
        }
    }
    Ok((entries, statuses))
}

/// The STATUS values for `wire_name` in a STATUS response.
pub(crate) fn status(data: &[u8], wire_name: &str) -> Result<Option<StatusValues>, ImapError> {
    let (_, statuses) = list(data)?;
    if let Some(v) = statuses.get(wire_name) {
        return Ok(Some(*v));
    }
    // INBOX is case-insensitive; imap-proto normalizes it to upper case.
    if wire_name.eq_ignore_ascii_case("INBOX") {
        return Ok(statuses.get("INBOX").copied());
    }
    Ok(None)
}

/// UIDs from SEARCH or SORT data, in the order the server sent them.
pub(crate) fn ids(data: &[u8]) -> Result<Vec<u32>, ImapError> {
    let mut out = Vec::new();
    for r in responses(data)? {
        match r {
            Response::MailboxData(MailboxDatum::Search(v)) | Response::MailboxData(MailboxDatum::Sort(v)) => out.extend(v),
            _ => {}
        }
    }
    Ok(out)
}

/// One message's FETCH data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FetchItem {
    pub uid: Option<u32>,
    pub flags: Option<Vec<String>>,
    pub size: Option<u32>,
    pub internal_date: Option<String>,
    pub header: Option<Vec<u8>>,
    pub body: Option<Vec<u8>>,
}

/// Longest INTERNALDATE string kept (`dd-Mon-yyyy hh:mm:ss +zzzz` is 26).
const MAX_DATE_CHARS: usize = 40;

/// FETCH responses, one item per `* n FETCH` line (unsolicited ones included; callers match UIDs).
pub(crate) fn fetches(data: &[u8]) -> Result<Vec<FetchItem>, ImapError> {
    let mut out = Vec::new();
    for r in responses(data)? {
        let Response::Fetch(_, attrs) = r else { continue };
        let mut item = FetchItem::default();
        for a in attrs {
            match a {
                AttributeValue::Uid(u) => item.uid = Some(u),
                AttributeValue::Flags(f) => item.flags = Some(f.iter().map(|s| s.to_string()).collect()),
                AttributeValue::Rfc822Size(n) => item.size = Some(n),
                AttributeValue::InternalDate(d) => {
                    let d = sanitize(&d);
                    if !d.is_empty() && d.chars().count() <= MAX_DATE_CHARS {
                        item.internal_date = Some(d);
                    }
                }
                AttributeValue::BodySection { section: Some(SectionPath::Full(MessageSection::Header)), data, .. } => {
                    item.header = Some(data.map(|d| d.into_owned()).unwrap_or_default());
                }
                AttributeValue::BodySection { section: None, data, .. } => {
                    item.body = Some(data.map(|d| d.into_owned()).unwrap_or_default());
                }
                _ => {}
            }
        }
        out.push(item);
    }
    Ok(out)
}

/// Folder names in a plain LIST response (for `check`).
pub(crate) fn list_count(data: &[u8]) -> Result<usize, ImapError> {
    Ok(list(data)?.0.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examine_with_alert_and_unknown_codes() {
        // `* NO [ALERT]` makes the imap crate's own parser hit unreachable!(); we skip it.
        let data = b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n\
* NO [ALERT] Your quota is nearly exhausted\r\n\
* 17 EXISTS\r\n\
* 0 RECENT\r\n\
* OK [UIDVALIDITY 1795308042] UIDs valid\r\n\
* OK [UIDNEXT 4392] Predicted next UID\r\n\
* OK [HIGHESTMODSEQ 99] Highest\r\n\
* OK [NOMODSEQ] whatever\r\n";
        assert_eq!(selected(data).unwrap(), Selected { exists: 17, uidvalidity: 1795308042, uidnext: Some(4392) });
        let missing = b"* 3 EXISTS\r\n";
        assert_eq!(selected(missing).unwrap_err().code(), "protocol_error");
        assert_eq!(selected(b"* THREAD (1 2)\r\n").unwrap_err().code(), "protocol_error");
    }

    #[test]
    fn list_with_status_and_escapes() {
        let data = b"* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts\r\n\
* STATUS Drafts (MESSAGES 2 UNSEEN 1 UIDVALIDITY 7 UIDNEXT 3)\r\n\
* LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe\"\r\n\
* LIST (\\Noselect \\HasChildren) \"/\" \"Say \\\"hi\\\"\"\r\n\
* LIST (\\HasNoChildren) \"\\\\\" {5}\r\nin(1)\r\n\
* LIST (\\HasNoChildren) NIL inbox\r\n\
* STATUS INBOX (MESSAGES 10 UIDNEXT 11 UIDVALIDITY 1408806928 UNSEEN 0)\r\n";
        let (entries, statuses) = list(data).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.wire_name.as_str()).collect();
        assert_eq!(names, ["Drafts", "Entw&APw-rfe", "Say \"hi\"", "in(1)", "INBOX"]);
        assert_eq!(entries[0].attributes, ["\\HasNoChildren", "\\Drafts"]);
        assert_eq!(entries[2].attributes, ["\\Noselect", "\\HasChildren"]);
        assert_eq!(entries[3].delimiter.as_deref(), Some("\\"));
        assert_eq!(entries[4].delimiter, None);
        assert_eq!(statuses["Drafts"], StatusValues { messages: Some(2), unseen: Some(1), uidvalidity: Some(7), uidnext: Some(3) });
        assert_eq!(status(data, "inbox").unwrap().unwrap().messages, Some(10));
        assert_eq!(status(data, "Nope").unwrap(), None);
    }

    #[test]
    fn search_and_sort_ids() {
        assert_eq!(ids(b"* SEARCH 3 1 2\r\n").unwrap(), [3, 1, 2]);
        assert_eq!(ids(b"* SEARCH\r\n").unwrap(), Vec::<u32>::new());
        assert_eq!(ids(b"* 4 EXISTS\r\n* SORT 9 7 8\r\n").unwrap(), [9, 7, 8]);
        assert_eq!(ids(b"* OK Searched 91% of the mailbox, ETA 0:01\r\n* SEARCH 5\r\n").unwrap(), [5]);
    }

    #[test]
    fn fetch_items() {
        let data = b"* 1 FETCH (UID 5 FLAGS (\\Seen $Label1) RFC822.SIZE 1234 INTERNALDATE \"09-Mar-2024 10:00:00 +0000\" BODY[HEADER]<0> {13}\r\nSubject: hi\r\n)\r\n\
* 2 FETCH (FLAGS (\\Deleted))\r\n\
* 3 FETCH (UID 9 RFC822.SIZE 3 FLAGS () BODY[]<0> {3}\r\nabc)\r\n";
        let items = fetches(data).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(
            items[0],
            FetchItem {
                uid: Some(5),
                flags: Some(vec!["\\Seen".into(), "$Label1".into()]),
                size: Some(1234),
                internal_date: Some("09-Mar-2024 10:00:00 +0000".into()),
                header: Some(b"Subject: hi\r\n".to_vec()),
                body: None,
            }
        );
        assert_eq!(items[1].uid, None);
        assert_eq!(items[2].body.as_deref(), Some(&b"abc"[..]));
        assert_eq!(items[2].flags, Some(vec![]));
    }

    #[test]
    fn capability_sources() {
        let caps = capabilities(b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN LITERAL+\r\n").unwrap();
        assert_eq!(caps, ["IMAP4rev1", "STARTTLS", "AUTH=PLAIN", "LITERAL+"]);
        assert!(has_cap(&caps, "literal+") && has_cap(&caps, "auth=plain") && !has_cap(&caps, "SORT"));
        let (_, greeting) = imap_proto::parser::parse_response(b"* OK [CAPABILITY IMAP4rev1 SASL-IR] ready\r\n").unwrap();
        assert_eq!(capabilities_in(&greeting).unwrap(), ["IMAP4rev1", "SASL-IR"]);
        assert_eq!(capabilities(b"* OK nothing\r\n").unwrap_err().code(), "protocol_error");
    }
}
