//! Reading the untagged data of a response, with `imap-proto`, into plain owned values.
//!
//! We do not use the `imap` crate's typed results: its parsers panic on legal-but-unexpected
//! input (`* NO [ALERT]` during SELECT hits an `unreachable!`) and hide raw values we need
//! (INTERNALDATE as sent). Everything here tolerates unknown untagged responses by skipping
//! them, and refuses bytes it cannot parse with a protocol error.

use std::collections::HashMap;

use imap_proto::types::{
    AttributeValue, Capability, MailboxDatum, MessageSection, NameAttribute, Response, ResponseCode, SectionPath, Status, StatusAttribute,
    UidSetMember,
};

use super::error::{sanitize, ImapError};

fn unparseable() -> ImapError {
    ImapError::Protocol { reason: "unparseable response from the server".into() }
}

/// Splits the untagged part of a response into parsed responses, all at once (for the fuzz
/// target; the parsers here use [`each_response`]).
#[allow(dead_code, reason = "the entry point of the imap_response fuzz target")]
pub(crate) fn responses(data: &[u8]) -> Result<Vec<Response<'_>>, ImapError> {
    each_response(data).collect()
}

/// The parsed responses of `data`, one at a time. A parsed `Response` is about ten times the
/// size of a short line (`* 1 EXPUNGE`), so collecting them first let a flood of a million
/// lines (13 MB, within the response limit) take 140 MB; one at a time, parsing costs no more
/// memory than the largest single response.
pub(crate) fn each_response(data: &[u8]) -> Responses<'_> {
    Responses { rest: data }
}

pub(crate) struct Responses<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Responses<'a> {
    type Item = Result<Response<'a>, ImapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match imap_proto::parser::parse_response(self.rest) {
            Ok((rest, resp)) => {
                self.rest = rest;
                Some(Ok(resp))
            }
            Err(_) => {
                self.rest = &[];
                Some(Err(unparseable()))
            }
        }
    }
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
    for r in each_response(data) {
        let r = r?;
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

/// The PERMANENTFLAGS a SELECT reported (`\*` means any new keyword may be stored).
/// `None` when the server did not say (RFC 3501: then all FLAGS are permanent).
pub(crate) fn permanent_flags(data: &[u8]) -> Result<Option<Vec<String>>, ImapError> {
    let mut out = None;
    for r in each_response(data) {
        let r = r?;
        if let Response::Data { status: Status::Ok, code: Some(ResponseCode::PermanentFlags(f)), .. } = r {
            out = Some(f.iter().map(|s| s.to_string()).collect());
        }
    }
    Ok(out)
}

pub(crate) fn selected(data: &[u8]) -> Result<Selected, ImapError> {
    let mut exists = None;
    let mut uidvalidity = None;
    let mut uidnext = None;
    for r in each_response(data) {
        let r = r?;
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
    for r in each_response(data) {
        let r = r?;
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
    for r in each_response(data) {
        let r = r?;
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
    /// Gmail labels (X-GM-LABELS), decoded from modified UTF-7 where possible.
    pub labels: Option<Vec<String>>,
    /// Other body sections by name (`2`, `1.2.MIME`, `HEADER` of a part...); `None` for NIL.
    pub sections: Vec<(String, Option<Vec<u8>>)>,
}

/// Longest INTERNALDATE string kept (`dd-Mon-yyyy hh:mm:ss +zzzz` is 26).
const MAX_DATE_CHARS: usize = 40;

/// Body sections kept per message (we ask for at most two: a part and its MIME header).
const MAX_SECTIONS: usize = 8;

/// FETCH responses, one item per `* n FETCH` line (unsolicited ones included), for the fuzz
/// target; the operations use [`fetches_of`].
#[allow(dead_code, reason = "the entry point of the imap_response fuzz target")]
pub(crate) fn fetches(data: &[u8]) -> Result<Vec<FetchItem>, ImapError> {
    let mut out = Vec::new();
    for r in each_response(data) {
        if let Response::Fetch(_, attrs) = r? {
            out.push(fetch_item(attrs));
        }
    }
    Ok(out)
}

/// The FETCH data of the UIDs `wanted` accepts, one item per UID, in the order they first came:
/// FETCH lines of other messages (unsolicited flag updates) are dropped as they are parsed, and
/// data a server splits over several lines for one message is merged (later values replace
/// earlier ones). Keeping every line cost ten times the response's size in memory: 500,000
/// unsolicited flag updates (16 MB) took 145 MiB.
pub(crate) fn fetches_of(data: &[u8], wanted: impl Fn(u32) -> bool) -> Result<Vec<FetchItem>, ImapError> {
    let mut out: Vec<FetchItem> = Vec::new();
    let mut index: HashMap<u32, usize> = HashMap::new();
    for r in each_response(data) {
        let Response::Fetch(_, attrs) = r? else { continue };
        let uid = attrs.iter().find_map(|a| if let AttributeValue::Uid(u) = a { Some(*u) } else { None });
        let Some(uid) = uid.filter(|&u| wanted(u)) else { continue };
        let item = fetch_item(attrs);
        match index.get(&uid) {
            Some(&i) => out[i].merge(item),
            None => {
                index.insert(uid, out.len());
                out.push(item);
            }
        }
    }
    Ok(out)
}

impl FetchItem {
    fn merge(&mut self, later: FetchItem) {
        let FetchItem { uid, flags, size, internal_date, header, body, labels, sections } = later;
        self.uid = uid.or(self.uid);
        self.flags = flags.or(self.flags.take());
        self.size = size.or(self.size);
        self.internal_date = internal_date.or(self.internal_date.take());
        self.header = header.or(self.header.take());
        self.body = body.or(self.body.take());
        self.labels = labels.or(self.labels.take());
        for (name, data) in sections {
            if let Some(s) = self.sections.iter_mut().find(|(n, _)| *n == name) {
                s.1 = data;
            } else if self.sections.len() < MAX_SECTIONS {
                self.sections.push((name, data));
            }
        }
    }
}

fn fetch_item(attrs: Vec<AttributeValue<'_>>) -> FetchItem {
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
            AttributeValue::BodySection { section: Some(SectionPath::Part(path, sub)), data, .. } if item.sections.len() < MAX_SECTIONS => {
                item.sections.push((section_name(&path, sub.as_ref()), data.map(|d| d.into_owned())));
            }
            AttributeValue::GmailLabels(labels) => {
                item.labels = Some(labels.iter().map(|l| gmail_label(l)).collect());
            }
            _ => {}
        }
    }
    item
}

/// `1.2`, `1.2.MIME`, `1.2.HEADER`, `1.2.TEXT`.
fn section_name(path: &[u32], sub: Option<&MessageSection>) -> String {
    let mut name = path.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
    match sub {
        None => {}
        Some(MessageSection::Mime) => name.push_str(".MIME"),
        Some(MessageSection::Header) => name.push_str(".HEADER"),
        Some(MessageSection::Text) => name.push_str(".TEXT"),
    }
    name
}

/// A label as imap-proto hands it over: a system label atom (`\Important`) as is; a quoted
/// string with its escapes still in place, possibly modified UTF-7.
fn gmail_label(raw: &str) -> String {
    let system = raw.strip_prefix('\\').is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_alphabetic()));
    if system {
        return sanitize(raw);
    }
    let plain = unescape_quoted(raw);
    let decoded = super::utf7::decode_mutf7(&plain).unwrap_or(plain);
    sanitize(&decoded)
}

/// Expands a UID set from a response code, at most `max` UIDs (a hostile `1:4294967295` is
/// refused, not expanded). Ranges may be written either way round (RFC 3501 `seq-range`).
fn expand_uid_set(set: &[UidSetMember], max: usize) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for m in set {
        match m {
            UidSetMember::Uid(u) => out.push(*u),
            UidSetMember::UidRange(r) => {
                let (a, b) = (*r.start().min(r.end()), *r.start().max(r.end()));
                let len = usize::try_from(u64::from(b - a) + 1).ok()?;
                if out.len().checked_add(len)? > max {
                    return None;
                }
                out.extend(a..=b);
            }
        }
        if out.len() > max {
            return None;
        }
    }
    Some(out)
}

/// COPYUID (RFC 4315) from an untagged OK (Dovecot's UID MOVE) or the tagged OK (UID COPY):
/// the destination UIDVALIDITY and (old UID, new UID) pairs. Pairs are kept only when both sets
/// have the same length, at most `max` entries, and every old UID is one of `asked`.
/// A COPYUID report: destination UIDVALIDITY and (old UID, new UID) pairs.
pub(crate) type CopyUid = (u32, Vec<(u32, u32)>);

pub(crate) fn copyuid(data: &[u8], asked: &[u32], max: usize) -> Result<Option<CopyUid>, ImapError> {
    // (UIDVALIDITY, old UID -> new UID); several codes (a server moving in chunks) add up.
    let mut found: Option<(u32, std::collections::BTreeMap<u32, u32>)> = None;
    for r in each_response(data) {
        let r = r?;
        match r {
            Response::Data { status: Status::Ok, code: Some(ResponseCode::CopyUid(v, src, dst)), .. }
            | Response::Done { status: Status::Ok, code: Some(ResponseCode::CopyUid(v, src, dst)), .. } => {
                let pairs = match (expand_uid_set(&src, max), expand_uid_set(&dst, max)) {
                    (Some(s), Some(d)) if s.len() == d.len() && s.iter().all(|u| asked.contains(u)) => {
                        s.into_iter().zip(d).collect::<Vec<_>>()
                    }
                    _ => Vec::new(),
                };
                let map = match &mut found {
                    None => &mut found.insert((v, Default::default())).1,
                    Some((fv, map)) if *fv == v => map,
                    Some(_) => return Ok(None),
                };
                for (old, new) in pairs {
                    // One old UID mapped to two new ones is a lie: no mapping is better than a
                    // wrong one (the agent would act on the wrong message).
                    if *map.entry(old).or_insert(new) != new {
                        return Ok(None);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(found.and_then(|(v, map)| {
        // Two old UIDs mapped to one new one: the same lie, the other way round.
        let mut dst: Vec<u32> = map.values().copied().collect();
        dst.sort_unstable();
        if dst.windows(2).any(|w| w[0] == w[1]) {
            return None;
        }
        Some((v, map.into_iter().collect()))
    }))
}

/// APPENDUID (RFC 4315) from the tagged OK of an APPEND: (UIDVALIDITY, UID).
pub(crate) fn appenduid(data: &[u8]) -> Result<Option<(u32, u32)>, ImapError> {
    for r in each_response(data) {
        let r = r?;
        if let Response::Done { status: Status::Ok, code: Some(ResponseCode::AppendUid(v, set)), .. } = r {
            if let Some([uid]) = expand_uid_set(&set, 1).as_deref() {
                return Ok(Some((v, *uid)));
            }
        }
    }
    Ok(None)
}

/// A status response's text with the response codes that matter for errors put back in front
/// (imap-proto takes known codes out of the text; unknown ones such as `[ALREADYEXISTS]` stay).
pub(crate) fn status_text(code: Option<&ResponseCode<'_>>, information: Option<&str>) -> String {
    let info = information.unwrap_or("");
    let prefix = match code {
        Some(ResponseCode::TryCreate) => "[TRYCREATE] ",
        Some(ResponseCode::Alert) => "[ALERT] ",
        Some(ResponseCode::Parse) => "[PARSE] ",
        Some(ResponseCode::ReadOnly) => "[READ-ONLY] ",
        Some(ResponseCode::BadCharset(_)) => "[BADCHARSET] ",
        _ => "",
    };
    sanitize(&format!("{prefix}{info}"))
}

/// The status and text of the tagged line at the end of `data` (a whole response).
pub(crate) fn tagged_status(data: &[u8]) -> Result<Option<(&'static str, String)>, ImapError> {
    let mut out = None;
    for r in each_response(data) {
        let r = r?;
        if let Response::Done { status, information, code, .. } = r {
            let s = match status {
                Status::Ok => "OK",
                Status::No => "NO",
                Status::Bad => "BAD",
                _ => "BYE",
            };
            out = Some((s, status_text(code.as_ref(), information.as_deref())));
        }
    }
    Ok(out)
}

/// RFC 5256 thread data from captured `* THREAD ...` lines: the top-level threads, each
/// flattened to its UIDs (in tree order). Iterative, so nesting depth costs no stack; any byte
/// outside the grammar's alphabet is refused.
pub(crate) fn threads(lines: &[Vec<u8>]) -> Result<Vec<Vec<u32>>, ImapError> {
    let bad = || ImapError::Protocol { reason: "unparseable THREAD response from the server".into() };
    let mut out = Vec::new();
    for line in lines {
        let rest = line.get(8..).ok_or_else(bad)?;
        if !line[..8].eq_ignore_ascii_case(b"* THREAD") {
            return Err(bad());
        }
        let rest = rest.strip_suffix(b"\r\n").ok_or_else(bad)?;
        let mut depth = 0usize;
        let mut current: Vec<u32> = Vec::new();
        let mut number: Option<u64> = None;
        for &b in rest {
            if b.is_ascii_digit() {
                let n = number.unwrap_or(0) * 10 + u64::from(b - b'0');
                if n > u64::from(u32::MAX) || depth == 0 {
                    return Err(bad());
                }
                number = Some(n);
                continue;
            }
            if let Some(n) = number.take() {
                current.push(u32::try_from(n).map_err(|_| bad())?);
            }
            match b {
                b' ' => {}
                b'(' => depth += 1,
                b')' => {
                    depth = depth.checked_sub(1).ok_or_else(bad)?;
                    if depth == 0 {
                        out.push(std::mem::take(&mut current));
                    }
                }
                _ => return Err(bad()),
            }
        }
        if number.is_some() || depth != 0 {
            return Err(bad());
        }
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
                ..Default::default()
            }
        );
        assert_eq!(items[1].uid, None);
        assert_eq!(items[2].body.as_deref(), Some(&b"abc"[..]));
        assert_eq!(items[2].flags, Some(vec![]));
    }

    #[test]
    fn fetch_items_of_asked_uids_merged() {
        let data = b"* 1 FETCH (UID 5 FLAGS (\\Seen) BODY[1] {2}\r\nab BODY[1.MIME] NIL)\r\n\
* 2 FETCH (FLAGS (\\Deleted))\r\n\
* 7 FETCH (UID 70 FLAGS (\\Deleted))\r\n\
* 3 FETCH (UID 9 RFC822.SIZE 3 BODY[]<0> {3}\r\nabc)\r\n\
* 1 FETCH (UID 5 FLAGS (\\Seen \\Flagged) RFC822.SIZE 10 BODY[1] {2}\r\ncd BODY[2] NIL)\r\n";
        let items = fetches_of(data, |u| u == 5 || u == 9).unwrap();
        assert_eq!(
            items,
            [
                FetchItem {
                    uid: Some(5),
                    flags: Some(vec!["\\Seen".into(), "\\Flagged".into()]),
                    size: Some(10),
                    sections: vec![("1".into(), Some(b"cd".to_vec())), ("1.MIME".into(), None), ("2".into(), None)],
                    ..Default::default()
                },
                FetchItem { uid: Some(9), size: Some(3), body: Some(b"abc".to_vec()), ..Default::default() },
            ]
        );
        // A flood of one message's data stays one item, with at most MAX_SECTIONS sections.
        let mut flood = Vec::new();
        for i in 0..1000 {
            flood.extend_from_slice(format!("* 1 FETCH (UID 5 FLAGS (\\Seen) BODY[{i}] NIL)\r\n").as_bytes());
        }
        let items = fetches_of(&flood, |u| u == 5).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].sections.len(), MAX_SECTIONS);
        assert_eq!(fetches_of(&flood, |u| u == 6).unwrap(), []);
        assert!(fetches_of(b"* 1 FETCH (UID 5 BODY[] {9}\r\nab)\r\n", |_| true).is_err());
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

    #[test]
    fn copyuid_from_untagged_or_tagged() {
        // Dovecot's UID MOVE: untagged OK with COPYUID, then EXPUNGEs, then the tagged OK.
        let moved =
            b"* OK [COPYUID 1795310449 3,5:6 10:12] Moved UIDs.\r\n* 3 EXPUNGE\r\n* 4 EXPUNGE\r\n* 4 EXPUNGE\r\na9 OK Move completed\r\n";
        assert_eq!(copyuid(moved, &[3, 5, 6], 3).unwrap(), Some((1795310449, vec![(3, 10), (5, 11), (6, 12)])));
        // UID COPY: in the tagged OK; a reversed range is the same range.
        let copied = b"a4 OK [COPYUID 7 2:1 9:8] Copy completed\r\n";
        assert_eq!(copyuid(copied, &[1, 2], 2).unwrap(), Some((7, vec![(1, 8), (2, 9)])));
        // No COPYUID at all.
        assert_eq!(copyuid(b"a4 OK done\r\n", &[1], 1).unwrap(), None);
        // Hostile: a huge range is not expanded, UIDs not asked for and mismatched lengths are
        // not believed (the move still happened: the mapping is just empty).
        assert_eq!(copyuid(b"a1 OK [COPYUID 7 1:4294967295 1:4294967295] x\r\n", &[1], 1).unwrap(), Some((7, vec![])));
        assert_eq!(copyuid(b"a1 OK [COPYUID 7 99 5] x\r\n", &[1], 1).unwrap(), Some((7, vec![])));
        assert_eq!(copyuid(b"a1 OK [COPYUID 7 1:2 5] x\r\n", &[1, 2], 2).unwrap(), Some((7, vec![])));
        // Two codes for different UIDVALIDITYs: not believed.
        let two = b"* OK [COPYUID 7 1 5] a\r\na1 OK [COPYUID 8 2 6] b\r\n";
        assert_eq!(copyuid(two, &[1, 2], 2).unwrap(), None);
        // Several codes add up; the same pair twice is one pair.
        let chunks = b"* OK [COPYUID 7 1 5] a\r\n* OK [COPYUID 7 1 5] a\r\na1 OK [COPYUID 7 2 6] b\r\n";
        assert_eq!(copyuid(chunks, &[1, 2], 2).unwrap(), Some((7, vec![(1, 5), (2, 6)])));
        // One old UID to two new ones, or two old UIDs to one new one: no mapping at all.
        let split = b"* OK [COPYUID 7 1 5] a\r\na1 OK [COPYUID 7 1 6] b\r\n";
        assert_eq!(copyuid(split, &[1], 1).unwrap(), None);
        let merged = b"* OK [COPYUID 7 1 5] a\r\na1 OK [COPYUID 7 2 5] b\r\n";
        assert_eq!(copyuid(merged, &[1, 2], 2).unwrap(), None);
        // Repeating codes cannot grow the mapping past what was asked.
        let mut flood = Vec::new();
        for i in 0..10u32 {
            flood.extend_from_slice(format!("* OK [COPYUID 7 1 {}] a\r\n", 100 + i).as_bytes());
        }
        assert_eq!(copyuid(&flood, &[1], 1).unwrap(), None);
    }

    #[test]
    fn appenduid_and_tagged_status() {
        assert_eq!(appenduid(b"a3 OK [APPENDUID 38505 3955] APPEND completed\r\n").unwrap(), Some((38505, 3955)));
        assert_eq!(appenduid(b"* 3 EXISTS\r\na3 OK [APPENDUID 1 2] done\r\n").unwrap(), Some((1, 2)));
        assert_eq!(appenduid(b"a3 OK [APPENDUID 38505 3955:3957] multi\r\n").unwrap(), None);
        assert_eq!(appenduid(b"a3 OK done\r\n").unwrap(), None);
        assert_eq!(
            tagged_status(b"a3 NO [TRYCREATE] Mailbox doesn't exist: X\r\n").unwrap(),
            Some(("NO", "[TRYCREATE] Mailbox doesn't exist: X".into()))
        );
        assert_eq!(tagged_status(b"* 1 EXISTS\r\n").unwrap(), None);
    }

    #[test]
    fn permanent_flags_from_select() {
        let data = b"* FLAGS (\\Seen $Foo)\r\n* OK [PERMANENTFLAGS (\\Seen \\Deleted $Foo \\*)] ok\r\n* 2 EXISTS\r\n";
        assert_eq!(permanent_flags(data).unwrap(), Some(vec!["\\Seen".into(), "\\Deleted".into(), "$Foo".into(), "\\*".into()]));
        assert_eq!(permanent_flags(b"* 2 EXISTS\r\n").unwrap(), None);
    }

    #[test]
    fn labels_and_sections_in_fetch() {
        let data = b"* 1 FETCH (UID 4 X-GM-LABELS (\\Inbox \\Important \"B&APw-ro\" \"say \\\"hi\\\"\" Work))\r\n\
* 2 FETCH (UID 7 BODY[2.1]<0> {3}\r\nabc BODY[2.1.MIME] {16}\r\nContent-Type: \r\n BODY[HEADER]<0> {4}\r\nH: x)\r\n\
* 3 FETCH (UID 8 BODY[3] NIL)\r\n";
        let items = fetches(data).unwrap();
        assert_eq!(items[0].labels, Some(vec!["\\Inbox".into(), "\\Important".into(), "Büro".into(), "say \"hi\"".into(), "Work".into()]));
        assert_eq!(
            items[1].sections,
            vec![("2.1".to_string(), Some(b"abc".to_vec())), ("2.1.MIME".to_string(), Some(b"Content-Type: \r\n".to_vec()))]
        );
        assert_eq!(items[1].header.as_deref(), Some(&b"H: x"[..]));
        assert_eq!(items[2].sections, vec![("3".to_string(), None)]);
    }

    #[test]
    fn thread_data() {
        let line = |s: &str| s.as_bytes().to_vec();
        let got = threads(&[line("* THREAD (1 32)(2)(11 (12 13 15)(14 16))((3)(5 6))\r\n")]).unwrap();
        assert_eq!(got, vec![vec![1, 32], vec![2], vec![11, 12, 13, 15, 14, 16], vec![3, 5, 6]]);
        assert_eq!(threads(&[line("* THREAD\r\n")]).unwrap(), Vec::<Vec<u32>>::new());
        assert_eq!(threads(&[line("* thread (4)\r\n"), line("* THREAD (5)\r\n")]).unwrap(), vec![vec![4], vec![5]]);
        // Deep nesting costs no stack.
        let deep = format!("* THREAD {}1{}\r\n", "(".repeat(100_000), ")".repeat(100_000));
        assert_eq!(threads(&[deep.into_bytes()]).unwrap(), vec![vec![1]]);
        for bad in [
            "* THREAD (1 2\r\n",
            "* THREAD 1 2\r\n",
            "* THREAD (1))\r\n",
            "* THREAD (1 x)\r\n",
            "* THREAD (4294967296)\r\n",
            "* THREAD (1) {3}\r\n",
            "* THREAD (1)",
            "* THREA",
            "* SEARCH (1)\r\n",
        ] {
            assert_eq!(threads(&[line(bad)]).unwrap_err().code(), "protocol_error", "{bad:?}");
        }
    }
}
