//! Validated command arguments and the text of every command we send.
//!
//! Nothing reaches the wire except through the builders here: quoted strings with `"` and `\`
//! escaped and CR, LF and NUL refused; mailbox names in modified UTF-7; sequence sets made from
//! numbers; search keys from a closed vocabulary. The builders are pure, so every refusal is
//! tested without a server.

use std::fmt;

use super::utf7::encode_mutf7;

/// A refused argument, naming the field as the caller spelled it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError {
    pub field: &'static str,
    pub reason: String,
}

impl ArgError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> ArgError {
        ArgError { field, reason: reason.into() }
    }
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ArgError {}

/// Longest mailbox name accepted, in bytes of UTF-8.
pub const MAX_MAILBOX_NAME_BYTES: usize = 1000;
/// Longest search string accepted, in characters.
pub const MAX_SEARCH_STRING_CHARS: usize = 1000;
/// Longest header field name accepted (RFC 5322 recommends lines of at most 78 characters).
pub const MAX_HEADER_NAME_CHARS: usize = 76;
/// Message-IDs per `search_related` call.
pub const MAX_RELATED_IDS: usize = 1000;
/// Message-IDs per SEARCH command sent by `search_related` (three keys each).
pub const RELATED_IDS_PER_COMMAND: usize = 50;
/// Longest Message-ID accepted (the RFC 5322 line limit).
pub const MAX_MESSAGE_ID_BYTES: usize = 998;

/// The reason a string holding a forbidden control character is refused, if it holds one.
fn line_break_or_nul(s: &str) -> Option<&'static str> {
    s.chars().find_map(|c| match c {
        '\r' => Some("contains a carriage return (CR)"),
        '\n' => Some("contains a line feed (LF)"),
        '\0' => Some("contains a NUL byte"),
        _ => None,
    })
}

/// A mailbox name as users see it (UTF-8). Its wire form is [`MailboxName::encoded`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MailboxName(String);

impl MailboxName {
    /// Refuses empty names, names over 1000 bytes, and names holding CR, LF, NUL or any other
    /// C0 control character or DEL.
    pub fn new(s: &str) -> Result<MailboxName, ArgError> {
        const FIELD: &str = "folder";
        if s.is_empty() {
            return Err(ArgError::new(FIELD, "must not be empty"));
        }
        if s.len() > MAX_MAILBOX_NAME_BYTES {
            return Err(ArgError::new(FIELD, format!("is longer than {MAX_MAILBOX_NAME_BYTES} bytes")));
        }
        if let Some(reason) = line_break_or_nul(s) {
            return Err(ArgError::new(FIELD, reason));
        }
        if s.chars().any(|c| c.is_ascii_control()) {
            return Err(ArgError::new(FIELD, "contains a control character"));
        }
        Ok(MailboxName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for INBOX in any letter case (RFC 3501 §5.1: INBOX is case-insensitive).
    pub fn is_inbox(&self) -> bool {
        self.0.eq_ignore_ascii_case("INBOX")
    }

    /// The modified UTF-7 form, unquoted (`Entw&APw-rfe`).
    pub fn wire(&self) -> String {
        if self.is_inbox() {
            "INBOX".to_string()
        } else {
            encode_mutf7(&self.0)
        }
    }

    /// The quoted modified UTF-7 wire form (`"Entw&APw-rfe"`), ready to go into a command.
    pub fn encoded(&self) -> String {
        quote_ascii(&self.wire())
    }
}

impl fmt::Display for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A calendar date, as used by SINCE and BEFORE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

impl Date {
    /// Parses `YYYY-MM-DD`: a real calendar day in the years 1900..=9999.
    pub fn parse(s: &str) -> Result<Date, ArgError> {
        let bad = || ArgError::new("date", format!("`{}` is not a date of the form YYYY-MM-DD", s.escape_debug()));
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Option<u16> {
            let part = &s[r];
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().ok()
            } else {
                None
            }
        };
        let (year, month, day) = match (num(0..4), num(5..7), num(8..10)) {
            (Some(y), Some(m), Some(d)) => (y, m, d),
            _ => return Err(bad()),
        };
        if !(1900..=9999).contains(&year) {
            return Err(ArgError::new("date", format!("year {year} is outside 1900..=9999")));
        }
        if !(1..=12).contains(&month) {
            return Err(ArgError::new("date", format!("month {month} does not exist")));
        }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if day == 0 || day > days {
            return Err(ArgError::new("date", format!("{s} is not a day of the calendar")));
        }
        Ok(Date { year, month: month as u8, day: day as u8 })
    }

    /// The IMAP search form, `1-Jan-2024`.
    pub fn imap(&self) -> String {
        format!("{}-{}-{}", self.day, MONTHS[usize::from(self.month - 1)], self.year)
    }
}

/// What to search for. Every set field narrows the result (the keys are ANDed).
#[derive(Clone, Debug, Default)]
pub struct SearchQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub cc: Option<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub text: Option<String>,
    pub since: Option<Date>,
    pub before: Option<Date>,
    pub seen: Option<bool>,
    pub flagged: Option<bool>,
    pub answered: Option<bool>,
    pub has_attachment: Option<bool>,
    pub larger: Option<u32>,
    pub smaller: Option<u32>,
    pub header: Option<(String, String)>,
    pub keyword: Option<String>,
}

fn check_search_string(field: &'static str, s: &str) -> Result<(), ArgError> {
    if let Some(reason) = line_break_or_nul(s) {
        return Err(ArgError::new(field, reason));
    }
    if s.chars().count() > MAX_SEARCH_STRING_CHARS {
        return Err(ArgError::new(field, format!("is longer than {MAX_SEARCH_STRING_CHARS} characters")));
    }
    Ok(())
}

/// RFC 5322 field name: printable ASCII except `:` (and space), at most 76 characters.
fn check_header_name(field: &'static str, s: &str) -> Result<(), ArgError> {
    if let Some(reason) = line_break_or_nul(s) {
        return Err(ArgError::new(field, reason));
    }
    if s.is_empty() {
        return Err(ArgError::new(field, "must not be empty"));
    }
    if s.len() > MAX_HEADER_NAME_CHARS {
        return Err(ArgError::new(field, format!("is longer than {MAX_HEADER_NAME_CHARS} characters")));
    }
    if !s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b':') {
        return Err(ArgError::new(field, "must be printable ASCII without spaces or ':'"));
    }
    Ok(())
}

/// IMAP atom characters (RFC 3501 §9): no specials, no wildcards, no controls, 7-bit only.
fn is_atom_char(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && !b"(){%*\"\\]".contains(&b)
}

/// A keyword (user flag) is an atom; system flags (`\Seen`) are not keywords.
fn check_keyword(field: &'static str, s: &str) -> Result<(), ArgError> {
    if let Some(reason) = line_break_or_nul(s) {
        return Err(ArgError::new(field, reason));
    }
    if s.is_empty() {
        return Err(ArgError::new(field, "must not be empty"));
    }
    if s.len() > MAX_SEARCH_STRING_CHARS {
        return Err(ArgError::new(field, format!("is longer than {MAX_SEARCH_STRING_CHARS} characters")));
    }
    if s.starts_with('\\') {
        return Err(ArgError::new(field, "system flags (starting with '\\') are not keywords"));
    }
    if !s.bytes().all(is_atom_char) {
        return Err(ArgError::new(field, "must be an IMAP atom: printable ASCII without spaces or ( ) { % * \" \\ ]"));
    }
    Ok(())
}

impl SearchQuery {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ArgError> {
        let strings = [
            ("from", &self.from),
            ("to", &self.to),
            ("cc", &self.cc),
            ("subject", &self.subject),
            ("body", &self.body),
            ("text", &self.text),
        ];
        for (field, value) in strings {
            if let Some(v) = value {
                check_search_string(field, v)?;
            }
        }
        if let Some((name, value)) = &self.header {
            check_header_name("header.name", name)?;
            check_search_string("header.value", value)?;
        }
        if let Some(k) = &self.keyword {
            check_keyword("keyword", k)?;
        }
        Ok(())
    }

    /// True when no field is set (the search is `ALL`).
    pub fn is_empty(&self) -> bool {
        let SearchQuery {
            from,
            to,
            cc,
            subject,
            body,
            text,
            since,
            before,
            seen,
            flagged,
            answered,
            has_attachment,
            larger,
            smaller,
            header,
            keyword,
        } = self;
        from.is_none()
            && to.is_none()
            && cc.is_none()
            && subject.is_none()
            && body.is_none()
            && text.is_none()
            && since.is_none()
            && before.is_none()
            && seen.is_none()
            && flagged.is_none()
            && answered.is_none()
            && has_attachment.is_none()
            && larger.is_none()
            && smaller.is_none()
            && header.is_none()
            && keyword.is_none()
    }
}

/// Quotes a string known to be free of CR, LF and NUL.
fn quote_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Search criteria text plus whether it carries non-ASCII strings (and so needs `CHARSET UTF-8`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Criteria {
    pub text: String,
    pub utf8: bool,
}

/// Accumulates search keys. Non-ASCII strings go out as non-synchronizing literals when the
/// server advertises LITERAL+ (RFC 7888), else as quoted UTF-8 (which Dovecot and most servers
/// accept with `CHARSET UTF-8`, although RFC 3501 quoted strings are 7-bit).
pub(crate) struct KeyWriter {
    text: String,
    utf8: bool,
    literal_plus: bool,
}

impl KeyWriter {
    pub(crate) fn new(literal_plus: bool) -> KeyWriter {
        KeyWriter { text: String::new(), utf8: false, literal_plus }
    }

    fn sep(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with(' ') {
            self.text.push(' ');
        }
    }

    /// A fixed keyword from our own vocabulary (never user text).
    fn word(&mut self, w: &str) {
        self.sep();
        self.text.push_str(w);
    }

    /// A user string as an IMAP string (the caller has validated it).
    fn string(&mut self, field: &'static str, s: &str) -> Result<(), ArgError> {
        if let Some(reason) = line_break_or_nul(s) {
            return Err(ArgError::new(field, reason));
        }
        self.sep();
        if s.is_ascii() {
            self.text.push_str(&quote_ascii(s));
        } else {
            self.utf8 = true;
            if self.literal_plus {
                self.text.push_str(&format!("{{{}+}}\r\n", s.len()));
                self.text.push_str(s);
            } else {
                self.text.push_str(&quote_ascii(s));
            }
        }
        Ok(())
    }

    fn finish(self) -> Criteria {
        Criteria { text: self.text, utf8: self.utf8 }
    }
}

/// Builds the search keys for a query (`ALL` when empty).
///
/// `has_attachment` is a server-side approximation: IMAP cannot search MIME structure, so
/// "has an attachment" becomes `HEADER Content-Type "multipart/mixed"` (and `NOT` that for
/// false). It misses attachments in other structures (e.g. a PDF as the only part) and counts
/// multipart/mixed messages without real attachments; callers should treat it as a filter hint.
pub(crate) fn build_search(q: &SearchQuery, literal_plus: bool) -> Result<Criteria, ArgError> {
    q.validate()?;
    let mut w = KeyWriter::new(literal_plus);
    let strings = [
        ("from", "FROM", &q.from),
        ("to", "TO", &q.to),
        ("cc", "CC", &q.cc),
        ("subject", "SUBJECT", &q.subject),
        ("body", "BODY", &q.body),
        ("text", "TEXT", &q.text),
    ];
    for (field, key, value) in strings {
        if let Some(v) = value {
            w.word(key);
            w.string(field, v)?;
        }
    }
    if let Some(d) = q.since {
        w.word("SINCE");
        w.word(&d.imap());
    }
    if let Some(d) = q.before {
        w.word("BEFORE");
        w.word(&d.imap());
    }
    let flags = [(q.seen, "SEEN", "UNSEEN"), (q.flagged, "FLAGGED", "UNFLAGGED"), (q.answered, "ANSWERED", "UNANSWERED")];
    for (value, yes, no) in flags {
        match value {
            Some(true) => w.word(yes),
            Some(false) => w.word(no),
            None => {}
        }
    }
    match q.has_attachment {
        Some(true) => w.word("HEADER Content-Type \"multipart/mixed\""),
        Some(false) => w.word("NOT HEADER Content-Type \"multipart/mixed\""),
        None => {}
    }
    if let Some(n) = q.larger {
        w.word(&format!("LARGER {n}"));
    }
    if let Some(n) = q.smaller {
        w.word(&format!("SMALLER {n}"));
    }
    if let Some((name, value)) = &q.header {
        w.word("HEADER");
        w.string("header.name", name)?;
        w.string("header.value", value)?;
    }
    if let Some(k) = &q.keyword {
        // Validated as an atom above.
        w.word("KEYWORD");
        w.word(k);
    }
    if w.text.is_empty() {
        w.word("ALL");
    }
    Ok(w.finish())
}

/// `UID SORT (DATE) UTF-8 <criteria>`: oldest first by the Date header (RFC 5256 falls back to
/// the internal date when Date is missing); the caller reverses it. Not `(REVERSE DATE)`:
/// RFC 5256 breaks ties by ascending sequence number whatever the criteria, so reversing an
/// ascending sort is the only way to get ties newest (highest UID) first. SORT always names a
/// charset; UTF-8 is mandatory for servers that offer SORT.
pub(crate) fn sort_command(c: &Criteria) -> String {
    format!("UID SORT (DATE) UTF-8 {}", c.text)
}

/// `UID SEARCH [CHARSET UTF-8] <criteria>`.
pub(crate) fn search_command(c: &Criteria) -> String {
    if c.utf8 {
        format!("UID SEARCH CHARSET UTF-8 {}", c.text)
    } else {
        format!("UID SEARCH {}", c.text)
    }
}

/// Checks the Message-IDs given to `search_related`.
pub(crate) fn check_message_ids(ids: &[String]) -> Result<(), ArgError> {
    const FIELD: &str = "message_ids";
    if ids.len() > MAX_RELATED_IDS {
        return Err(ArgError::new(FIELD, format!("more than {MAX_RELATED_IDS} ids")));
    }
    for (i, id) in ids.iter().enumerate() {
        if let Some(reason) = line_break_or_nul(id) {
            return Err(ArgError::new(FIELD, format!("item {i} {reason}")));
        }
        if id.trim().is_empty() {
            return Err(ArgError::new(FIELD, format!("item {i} is empty")));
        }
        if id.len() > MAX_MESSAGE_ID_BYTES {
            return Err(ArgError::new(FIELD, format!("item {i} is longer than {MAX_MESSAGE_ID_BYTES} bytes")));
        }
    }
    Ok(())
}

/// One SEARCH criteria per chunk of at most [`RELATED_IDS_PER_COMMAND`] ids: every message
/// whose Message-ID, In-Reply-To or References contains one of them. The OR tree is balanced
/// (`OR OR a b OR c d`) so that its depth stays logarithmic; prefix OR needs no parentheses.
pub(crate) fn build_related(ids: &[String], literal_plus: bool) -> Result<Vec<Criteria>, ArgError> {
    check_message_ids(ids)?;
    let mut out = Vec::new();
    for chunk in ids.chunks(RELATED_IDS_PER_COMMAND) {
        let mut keys = Vec::with_capacity(chunk.len() * 3);
        for id in chunk {
            for header in ["Message-ID", "In-Reply-To", "References"] {
                let mut w = KeyWriter::new(literal_plus);
                w.word("HEADER");
                w.word(header);
                w.string("message_ids", id.trim())?;
                keys.push(w.finish());
            }
        }
        let utf8 = keys.iter().any(|k| k.utf8);
        let mut text = String::new();
        or_tree(&keys, &mut text);
        out.push(Criteria { text, utf8 });
    }
    Ok(out)
}

fn or_tree(keys: &[Criteria], out: &mut String) {
    match keys {
        [] => out.push_str("ALL"),
        [one] => out.push_str(&one.text),
        _ => {
            let (left, right) = keys.split_at(keys.len() / 2);
            out.push_str("OR ");
            or_tree(left, out);
            out.push(' ');
            or_tree(right, out);
        }
    }
}

/// A compact sequence set from UIDs: sorted, deduplicated, runs collapsed (`1:3,7,9:10`).
/// UID 0 does not exist and is refused.
pub(crate) fn uid_set(field: &'static str, uids: &[u32]) -> Result<String, ArgError> {
    if uids.contains(&0) {
        return Err(ArgError::new(field, "uid 0 does not exist (uids start at 1)"));
    }
    let mut v = uids.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if end == start {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    Ok(out)
}

/// `EXAMINE <mailbox>`: read-only selection, so nothing we do changes the mailbox.
pub(crate) fn examine_command(m: &MailboxName) -> String {
    format!("EXAMINE {}", m.encoded())
}

/// `STATUS <mailbox> (MESSAGES UNSEEN UIDVALIDITY UIDNEXT)`, from the server's own wire name.
pub(crate) fn status_command(wire_name: &str) -> Result<String, ArgError> {
    if let Some(reason) = line_break_or_nul(wire_name) {
        return Err(ArgError::new("folder", reason));
    }
    Ok(format!("STATUS {} (MESSAGES UNSEEN UIDVALIDITY UIDNEXT)", quote_ascii(wire_name)))
}

/// `LIST "" "*"`, with RFC 5258 return options when the server offers them.
pub(crate) fn list_command(special_use: bool, list_status: bool) -> String {
    let mut opts = Vec::new();
    if special_use {
        opts.push("SPECIAL-USE");
    }
    if list_status {
        opts.push("STATUS (MESSAGES UNSEEN UIDVALIDITY UIDNEXT)");
    }
    if opts.is_empty() {
        "LIST \"\" \"*\"".to_string()
    } else {
        format!("LIST \"\" \"*\" RETURN ({})", opts.join(" "))
    }
}

/// `UID FETCH <set> (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER]<0.N>)`.
pub(crate) fn summary_fetch_command(set: &str, max_header_bytes: u64) -> String {
    let n = max_header_bytes.clamp(1, u64::from(u32::MAX));
    format!("UID FETCH {set} (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER]<0.{n}>)")
}

/// `UID FETCH <uid> (UID FLAGS RFC822.SIZE BODY.PEEK[]<0.N>)`: never more than N bytes of
/// body, and PEEK so that \Seen is not set.
pub(crate) fn message_fetch_command(uid: u32, max_bytes: u64) -> String {
    let n = max_bytes.clamp(1, u64::from(u32::MAX));
    format!("UID FETCH {uid} (UID FLAGS RFC822.SIZE BODY.PEEK[]<0.{n}>)")
}

// ---- write commands ----

/// Longest keyword (user flag) a caller may set or clear, in bytes.
pub const MAX_KEYWORD_BYTES: usize = 200;
/// Deepest body part number accepted by `fetch_part` (`1.2.3` has three levels).
pub const MAX_SECTION_LEVELS: usize = 20;

/// A flag a caller may set or clear: one of the system flags, or a keyword.
///
/// `\Recent` is not here: the server manages it and RFC 3501 forbids storing it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Flag {
    Seen,
    Flagged,
    Answered,
    Deleted,
    Draft,
    /// An IMAP atom without `\` and without specials, at most [`MAX_KEYWORD_BYTES`] bytes
    /// (`$PendingReview`, `$Label1`, `todo`).
    Keyword(String),
}

impl Flag {
    /// Parses `\Seen`, `\Flagged`, `\Answered`, `\Deleted`, `\Draft` (any letter case) or a
    /// keyword atom.
    pub fn parse(s: &str) -> Result<Flag, ArgError> {
        Flag::parse_as("flags", s)
    }

    pub(crate) fn parse_as(field: &'static str, s: &str) -> Result<Flag, ArgError> {
        if let Some(reason) = line_break_or_nul(s) {
            return Err(ArgError::new(field, reason));
        }
        if let Some(name) = s.strip_prefix('\\') {
            const SYSTEM: [(&str, Flag); 5] = [
                ("Seen", Flag::Seen),
                ("Flagged", Flag::Flagged),
                ("Answered", Flag::Answered),
                ("Deleted", Flag::Deleted),
                ("Draft", Flag::Draft),
            ];
            if let Some((_, f)) = SYSTEM.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return Ok(f.clone());
            }
            if name.eq_ignore_ascii_case("Recent") {
                return Err(ArgError::new(field, "\\Recent is managed by the server and cannot be set or cleared"));
            }
            return Err(ArgError::new(
                field,
                format!(
                    "`{}` is not a system flag (\\Seen, \\Flagged, \\Answered, \\Deleted, \\Draft); keywords do not start with '\\'",
                    s.escape_debug()
                ),
            ));
        }
        check_keyword(field, s)?;
        if s.len() > MAX_KEYWORD_BYTES {
            return Err(ArgError::new(field, format!("keyword is longer than {MAX_KEYWORD_BYTES} bytes")));
        }
        Ok(Flag::Keyword(s.to_string()))
    }

    /// The flag as it goes on the wire (`\Seen`, `$PendingReview`).
    pub fn as_imap(&self) -> String {
        match self {
            Flag::Seen => "\\Seen".to_string(),
            Flag::Flagged => "\\Flagged".to_string(),
            Flag::Answered => "\\Answered".to_string(),
            Flag::Deleted => "\\Deleted".to_string(),
            Flag::Draft => "\\Draft".to_string(),
            Flag::Keyword(k) => k.clone(),
        }
    }

    /// Keywords compare case-insensitively (RFC 3501 §2.3.2), so `$label` and `$Label` are one.
    pub(crate) fn same(&self, other: &Flag) -> bool {
        self.as_imap().eq_ignore_ascii_case(&other.as_imap())
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_imap())
    }
}

/// Re-checks flags built by hand (`Flag::Keyword` is a public variant): every keyword must be
/// one [`Flag::parse`] would accept.
pub(crate) fn check_flags(flags: &[Flag]) -> Result<(), ArgError> {
    for f in flags {
        if let Flag::Keyword(k) = f {
            if !matches!(Flag::parse(k)?, Flag::Keyword(_)) {
                return Err(ArgError::new("flags", format!("`{}` is a system flag, not a keyword", k.escape_debug())));
            }
        }
    }
    Ok(())
}

/// A message to APPEND: not empty, at most `max` bytes (`limits.max_send_bytes`), no NUL
/// (not allowed in an IMAP literal without the BINARY extension).
pub(crate) fn check_message(raw: &[u8], max: u64) -> Result<(), ArgError> {
    const FIELD: &str = "message";
    if raw.is_empty() {
        return Err(ArgError::new(FIELD, "is empty"));
    }
    if raw.len() as u64 > max {
        return Err(ArgError::new(FIELD, format!("is {} bytes, more than limits.max_send_bytes ({max})", raw.len())));
    }
    if raw.contains(&0) {
        return Err(ArgError::new(FIELD, "contains a NUL byte"));
    }
    Ok(())
}

/// Refuses a flag that is both added and removed in one call.
pub(crate) fn check_flag_sets(add: &[Flag], remove: &[Flag]) -> Result<(), ArgError> {
    if let Some(f) = add.iter().find(|a| remove.iter().any(|r| r.same(a))) {
        return Err(ArgError::new("flags", format!("{f} is both added and removed")));
    }
    Ok(())
}

/// `(\Seen $Label1)`, duplicates (by IMAP's case rules) removed.
fn flag_list(flags: &[Flag]) -> String {
    let mut seen: Vec<&Flag> = Vec::with_capacity(flags.len());
    for f in flags {
        if !seen.iter().any(|s| s.same(f)) {
            seen.push(f);
        }
    }
    let parts: Vec<String> = seen.iter().map(|f| f.as_imap()).collect();
    format!("({})", parts.join(" "))
}

/// The UIDs of one write: at least one, at most `max`, none zero. Returns the compact set.
pub(crate) fn write_uid_set(uids: &[u32], max: usize) -> Result<String, ArgError> {
    if uids.is_empty() {
        return Err(ArgError::new("uids", "must name at least one message"));
    }
    let mut distinct = uids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() > max {
        return Err(ArgError::new("uids", format!("more than {max} messages in one call (limits.max_batch)")));
    }
    uid_set("uids", &distinct)
}

/// A Gmail label for `X-GM-LABELS`: a quoted modified UTF-7 string, or a system label atom
/// (`\Important`, `\Starred`, `\Inbox`, ...) when it starts with `\`.
pub(crate) fn gmail_label(s: &str) -> Result<String, ArgError> {
    const FIELD: &str = "labels";
    if let Some(reason) = line_break_or_nul(s) {
        return Err(ArgError::new(FIELD, reason));
    }
    if s.trim().is_empty() {
        return Err(ArgError::new(FIELD, "must not be empty"));
    }
    if s.len() > MAX_MAILBOX_NAME_BYTES {
        return Err(ArgError::new(FIELD, format!("label is longer than {MAX_MAILBOX_NAME_BYTES} bytes")));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(ArgError::new(FIELD, "contains a control character"));
    }
    if let Some(name) = s.strip_prefix('\\') {
        if name.is_empty() || name.len() > 30 || !name.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ArgError::new(FIELD, "a label starting with '\\' must be a Gmail system label such as \\Important"));
        }
        return Ok(s.to_string());
    }
    Ok(quote_ascii(&encode_mutf7(s)))
}

/// Checks a body part number (`1`, `2.1.3`): dot-separated non-zero numbers without leading
/// zeros, at most [`MAX_SECTION_LEVELS`] levels. Returns the numbers.
pub(crate) fn check_section(s: &str) -> Result<Vec<u32>, ArgError> {
    const FIELD: &str = "part";
    if let Some(reason) = line_break_or_nul(s) {
        return Err(ArgError::new(FIELD, reason));
    }
    let bad = || ArgError::new(FIELD, format!("`{}` is not a part number like 1 or 2.1.3", s.escape_debug()));
    let levels: Vec<&str> = s.split('.').collect();
    if levels.len() > MAX_SECTION_LEVELS {
        return Err(ArgError::new(FIELD, format!("more than {MAX_SECTION_LEVELS} levels")));
    }
    let mut out = Vec::with_capacity(levels.len());
    for l in levels {
        if l.is_empty() || l.len() > 9 || !l.bytes().all(|b| b.is_ascii_digit()) || l.starts_with('0') {
            return Err(bad());
        }
        out.push(l.parse().map_err(|_| bad())?);
    }
    Ok(out)
}

/// `SELECT <mailbox>`: read-write, for the write commands only.
pub(crate) fn select_command(m: &MailboxName) -> String {
    format!("SELECT {}", m.encoded())
}

/// `UID STORE <set> +FLAGS.SILENT (...)` or `-FLAGS.SILENT`.
pub(crate) fn store_flags_command(set: &str, add: bool, flags: &[Flag]) -> String {
    let sign = if add { '+' } else { '-' };
    format!("UID STORE {set} {sign}FLAGS.SILENT {}", flag_list(flags))
}

/// `UID STORE <set> +X-GM-LABELS.SILENT (...)`; `labels` are already encoded by [`gmail_label`].
pub(crate) fn store_labels_command(set: &str, add: bool, labels: &[String]) -> String {
    let sign = if add { '+' } else { '-' };
    let mut distinct: Vec<&String> = Vec::with_capacity(labels.len());
    for l in labels {
        if !distinct.contains(&l) {
            distinct.push(l);
        }
    }
    let parts: Vec<&str> = distinct.iter().map(|l| l.as_str()).collect();
    format!("UID STORE {set} {sign}X-GM-LABELS.SILENT ({})", parts.join(" "))
}

/// `UID FETCH <set> (UID FLAGS)`.
pub(crate) fn fetch_flags_command(set: &str) -> String {
    format!("UID FETCH {set} (UID FLAGS)")
}

/// `UID FETCH <set> (UID X-GM-LABELS)`.
pub(crate) fn fetch_labels_command(set: &str) -> String {
    format!("UID FETCH {set} (UID X-GM-LABELS)")
}

/// `UID MOVE <set> <mailbox>` (RFC 6851).
pub(crate) fn move_command(set: &str, to: &MailboxName) -> String {
    format!("UID MOVE {set} {}", to.encoded())
}

/// `UID COPY <set> <mailbox>`.
pub(crate) fn copy_command(set: &str, to: &MailboxName) -> String {
    format!("UID COPY {set} {}", to.encoded())
}

/// `UID EXPUNGE <set>` (RFC 4315): removes only those of the set that are `\Deleted`.
pub(crate) fn uid_expunge_command(set: &str) -> String {
    format!("UID EXPUNGE {set}")
}

/// `UID SEARCH UID <set>`: which of these UIDs exist.
pub(crate) fn existing_uids_command(set: &str) -> String {
    format!("UID SEARCH UID {set}")
}

pub(crate) fn create_command(m: &MailboxName) -> String {
    format!("CREATE {}", m.encoded())
}

pub(crate) fn subscribe_command(m: &MailboxName) -> String {
    format!("SUBSCRIBE {}", m.encoded())
}

pub(crate) fn unsubscribe_command(m: &MailboxName) -> String {
    format!("UNSUBSCRIBE {}", m.encoded())
}

pub(crate) fn rename_command(from: &MailboxName, to: &MailboxName) -> String {
    format!("RENAME {} {}", from.encoded(), to.encoded())
}

pub(crate) fn delete_command(m: &MailboxName) -> String {
    format!("DELETE {}", m.encoded())
}

/// The APPEND command up to and including its literal announcement:
/// `APPEND <mailbox> (<flags>) {<len>+}` (non-synchronizing, RFC 7888) or `{<len>}`.
/// The caller sends CRLF and the message after it.
pub(crate) fn append_command(m: &MailboxName, flags: &[Flag], len: usize, non_sync: bool) -> String {
    let plus = if non_sync { "+" } else { "" };
    format!("APPEND {} {} {{{len}{plus}}}", m.encoded(), flag_list(flags))
}

/// Fetches one body part: the first `max + 1` bytes (one more than allowed, so that
/// truncation is exact), its MIME header (at most `max_header` bytes) and, for part 1, the
/// message header too (a non-multipart message has no MIME header of its own).
pub(crate) fn part_fetch_command(uid: u32, section: &str, max: u64, max_header: u64) -> String {
    let n = max.saturating_add(1).clamp(1, u64::from(u32::MAX));
    let h = max_header.clamp(1, u64::from(u32::MAX));
    let message_header = if section == "1" { format!(" BODY.PEEK[HEADER]<0.{h}>") } else { String::new() };
    format!("UID FETCH {uid} (UID BODY.PEEK[{section}]<0.{n}> BODY.PEEK[{section}.MIME]<0.{h}>{message_header})")
}

/// `UID THREAD REFERENCES UTF-8 ALL` (RFC 5256).
pub(crate) const THREAD_COMMAND: &str = "UID THREAD REFERENCES UTF-8 ALL";

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> SearchQuery {
        SearchQuery::default()
    }

    fn search(query: &SearchQuery) -> Result<String, ArgError> {
        build_search(query, false).map(|c| search_command(&c))
    }

    #[test]
    fn mailbox_names_are_checked() {
        let cases: &[(&str, &str)] = &[
            ("", "must not be empty"),
            ("a\rb", "contains a carriage return (CR)"),
            ("a\nb", "contains a line feed (LF)"),
            ("a\0b", "contains a NUL byte"),
            ("a\tb", "contains a control character"),
            ("a\u{1b}b", "contains a control character"),
            ("a\u{7f}b", "contains a control character"),
        ];
        for (name, reason) in cases {
            let e = MailboxName::new(name).unwrap_err();
            assert_eq!(e, ArgError::new("folder", *reason), "{name:?}");
        }
        let long = "x".repeat(1001);
        assert_eq!(MailboxName::new(&long).unwrap_err().reason, "is longer than 1000 bytes");
        assert!(MailboxName::new(&"x".repeat(1000)).is_ok());
        assert_eq!(MailboxName::new("a\nb").unwrap_err().to_string(), "invalid folder: contains a line feed (LF)");
    }

    #[test]
    fn mailbox_wire_forms() {
        let cases: &[(&str, &str)] = &[
            ("INBOX", "\"INBOX\""),
            ("inbox", "\"INBOX\""),
            ("Entwürfe", "\"Entw&APw-rfe\""),
            ("Say \"hi\"", "\"Say \\\"hi\\\"\""),
            ("back\\slash", "\"back\\\\slash\""),
            ("{3}", "\"{3}\""),
            ("a&b", "\"a&-b\""),
            ("Work/台北", "\"Work/&U,BTFw-\""),
        ];
        for (name, wire) in cases {
            assert_eq!(MailboxName::new(name).unwrap().encoded(), *wire, "{name}");
        }
        assert_eq!(examine_command(&MailboxName::new("Entwürfe").unwrap()), "EXAMINE \"Entw&APw-rfe\"");
    }

    #[test]
    fn dates() {
        let ok: &[(&str, &str)] = &[
            ("2024-01-01", "1-Jan-2024"),
            ("2024-03-09", "9-Mar-2024"),
            ("2024-02-29", "29-Feb-2024"),
            ("2000-02-29", "29-Feb-2000"),
            ("1900-12-31", "31-Dec-1900"),
            ("9999-11-30", "30-Nov-9999"),
        ];
        for (s, imap) in ok {
            assert_eq!(Date::parse(s).unwrap().imap(), *imap, "{s}");
        }
        let bad: &[(&str, &str)] = &[
            ("2023-02-29", "2023-02-29 is not a day of the calendar"),
            ("1900-02-29", "1900-02-29 is not a day of the calendar"),
            ("2024-04-31", "2024-04-31 is not a day of the calendar"),
            ("2024-00-10", "month 0 does not exist"),
            ("2024-13-10", "month 13 does not exist"),
            ("2024-01-00", "2024-01-00 is not a day of the calendar"),
            ("1899-12-31", "year 1899 is outside 1900..=9999"),
            ("24-01-01", "`24-01-01` is not a date of the form YYYY-MM-DD"),
            ("2024/01/01", "`2024/01/01` is not a date of the form YYYY-MM-DD"),
            ("2024-1-011", "`2024-1-011` is not a date of the form YYYY-MM-DD"),
            ("+024-01-01", "`+024-01-01` is not a date of the form YYYY-MM-DD"),
            ("2024-01-0\n", "`2024-01-0\\n` is not a date of the form YYYY-MM-DD"),
        ];
        for (s, reason) in bad {
            assert_eq!(Date::parse(s).unwrap_err(), ArgError::new("date", *reason), "{s:?}");
        }
    }

    #[test]
    fn every_search_string_field_refuses_line_breaks_and_nul() {
        type Setter = fn(&mut SearchQuery, String);
        let fields: &[(&str, Setter)] = &[
            ("from", |q, v| q.from = Some(v)),
            ("to", |q, v| q.to = Some(v)),
            ("cc", |q, v| q.cc = Some(v)),
            ("subject", |q, v| q.subject = Some(v)),
            ("body", |q, v| q.body = Some(v)),
            ("text", |q, v| q.text = Some(v)),
            ("header.name", |q, v| q.header = Some((v, "x".into()))),
            ("header.value", |q, v| q.header = Some(("X-Test".into(), v))),
            ("keyword", |q, v| q.keyword = Some(v)),
        ];
        let evil: &[(&str, &str)] = &[
            ("a\rb", "contains a carriage return (CR)"),
            ("a\nb", "contains a line feed (LF)"),
            ("a\r\nA1 DELETE INBOX", "contains a carriage return (CR)"),
            ("a\0b", "contains a NUL byte"),
        ];
        for (field, set) in fields {
            for (value, reason) in evil {
                let mut query = q();
                set(&mut query, value.to_string());
                let want = ArgError::new(field, *reason);
                assert_eq!(query.validate().unwrap_err(), want, "{field} {value:?}");
                assert_eq!(search(&query).unwrap_err(), want, "{field} {value:?}");
                assert_eq!(build_search(&query, true).unwrap_err(), want, "{field} {value:?}");
            }
        }
    }

    #[test]
    fn other_field_rules() {
        let cases: Vec<(SearchQuery, ArgError)> = vec![
            (SearchQuery { subject: Some("x".repeat(1001)), ..q() }, ArgError::new("subject", "is longer than 1000 characters")),
            (
                SearchQuery { header: Some(("X Foo".into(), "v".into())), ..q() },
                ArgError::new("header.name", "must be printable ASCII without spaces or ':'"),
            ),
            (
                SearchQuery { header: Some(("X-Foo:".into(), "v".into())), ..q() },
                ArgError::new("header.name", "must be printable ASCII without spaces or ':'"),
            ),
            (
                SearchQuery { header: Some(("Änderung".into(), "v".into())), ..q() },
                ArgError::new("header.name", "must be printable ASCII without spaces or ':'"),
            ),
            (SearchQuery { header: Some((String::new(), "v".into())), ..q() }, ArgError::new("header.name", "must not be empty")),
            (
                SearchQuery { header: Some(("X".repeat(77), "v".into())), ..q() },
                ArgError::new("header.name", "is longer than 76 characters"),
            ),
            (
                SearchQuery { keyword: Some("\\Seen".into()), ..q() },
                ArgError::new("keyword", "system flags (starting with '\\') are not keywords"),
            ),
            (
                SearchQuery { keyword: Some("two words".into()), ..q() },
                ArgError::new("keyword", "must be an IMAP atom: printable ASCII without spaces or ( ) { % * \" \\ ]"),
            ),
            (
                SearchQuery { keyword: Some("a)b".into()), ..q() },
                ArgError::new("keyword", "must be an IMAP atom: printable ASCII without spaces or ( ) { % * \" \\ ]"),
            ),
            (
                SearchQuery { keyword: Some("{3}".into()), ..q() },
                ArgError::new("keyword", "must be an IMAP atom: printable ASCII without spaces or ( ) { % * \" \\ ]"),
            ),
            (SearchQuery { keyword: Some(String::new()), ..q() }, ArgError::new("keyword", "must not be empty")),
        ];
        for (query, want) in cases {
            assert_eq!(query.validate().unwrap_err(), want);
        }
    }

    #[test]
    fn search_command_text() {
        let d = |s| Date::parse(s).unwrap();
        let cases: Vec<(SearchQuery, &str)> = vec![
            (q(), "UID SEARCH ALL"),
            (SearchQuery { from: Some("alice@example.com".into()), ..q() }, "UID SEARCH FROM \"alice@example.com\""),
            (SearchQuery { subject: Some("say \"hi\" \\o/".into()), ..q() }, r#"UID SEARCH SUBJECT "say \"hi\" \\o/""#),
            (SearchQuery { subject: Some("{3}".into()), ..q() }, "UID SEARCH SUBJECT \"{3}\""),
            (SearchQuery { body: Some("x {5+}".into()), ..q() }, "UID SEARCH BODY \"x {5+}\""),
            (SearchQuery { subject: Some(String::new()), ..q() }, "UID SEARCH SUBJECT \"\""),
            (SearchQuery { subject: Some("Grüße".into()), ..q() }, "UID SEARCH CHARSET UTF-8 SUBJECT \"Grüße\""),
            (
                SearchQuery { since: Some(d("2024-01-01")), before: Some(d("2024-03-09")), ..q() },
                "UID SEARCH SINCE 1-Jan-2024 BEFORE 9-Mar-2024",
            ),
            (SearchQuery { seen: Some(false), flagged: Some(true), answered: Some(false), ..q() }, "UID SEARCH UNSEEN FLAGGED UNANSWERED"),
            (SearchQuery { has_attachment: Some(true), ..q() }, "UID SEARCH HEADER Content-Type \"multipart/mixed\""),
            (SearchQuery { has_attachment: Some(false), ..q() }, "UID SEARCH NOT HEADER Content-Type \"multipart/mixed\""),
            (SearchQuery { larger: Some(1000), smaller: Some(5000), ..q() }, "UID SEARCH LARGER 1000 SMALLER 5000"),
            (
                SearchQuery { header: Some(("List-Id".into(), "<dev.lists.example>".into())), ..q() },
                "UID SEARCH HEADER \"List-Id\" \"<dev.lists.example>\"",
            ),
            (SearchQuery { keyword: Some("$Label1".into()), ..q() }, "UID SEARCH KEYWORD $Label1"),
            (
                SearchQuery { to: Some("bob".into()), cc: Some("carol".into()), text: Some("x".into()), ..q() },
                "UID SEARCH TO \"bob\" CC \"carol\" TEXT \"x\"",
            ),
        ];
        for (query, want) in cases {
            assert_eq!(search(&query).unwrap(), want);
        }
    }

    #[test]
    fn sort_and_literal_plus() {
        let query = SearchQuery { subject: Some("Grüße".into()), from: Some("bob".into()), ..q() };
        let c = build_search(&query, true).unwrap();
        assert!(c.utf8);
        assert_eq!(sort_command(&c), "UID SORT (DATE) UTF-8 FROM \"bob\" SUBJECT {7+}\r\nGrüße");
        assert_eq!(search_command(&c), "UID SEARCH CHARSET UTF-8 FROM \"bob\" SUBJECT {7+}\r\nGrüße");
        assert_eq!(sort_command(&build_search(&q(), true).unwrap()), "UID SORT (DATE) UTF-8 ALL");
    }

    #[test]
    fn uid_sets() {
        let cases: &[(&[u32], &str)] = &[
            (&[], ""),
            (&[5], "5"),
            (&[1, 2, 3, 7, 9, 10], "1:3,7,9:10"),
            (&[10, 9, 7, 3, 2, 1, 2], "1:3,7,9:10"),
            (&[4294967295, 4294967294], "4294967294:4294967295"),
            (&[1, 3, 5], "1,3,5"),
        ];
        for (uids, want) in cases {
            assert_eq!(uid_set("uids", uids).unwrap(), *want, "{uids:?}");
        }
        assert_eq!(uid_set("uids", &[3, 0]).unwrap_err(), ArgError::new("uids", "uid 0 does not exist (uids start at 1)"));
    }

    #[test]
    fn related_search_trees() {
        let ids = vec!["<a@x>".to_string()];
        let c = build_related(&ids, false).unwrap();
        assert_eq!(
            c,
            vec![Criteria {
                text: "OR HEADER Message-ID \"<a@x>\" OR HEADER In-Reply-To \"<a@x>\" HEADER References \"<a@x>\"".into(),
                utf8: false
            }]
        );
        let ids = vec!["<a@x>".to_string(), "<b\"q@x>".to_string()];
        let c = build_related(&ids, false).unwrap();
        assert_eq!(
            c[0].text,
            "OR OR HEADER Message-ID \"<a@x>\" OR HEADER In-Reply-To \"<a@x>\" HEADER References \"<a@x>\" \
             OR HEADER Message-ID \"<b\\\"q@x>\" OR HEADER In-Reply-To \"<b\\\"q@x>\" HEADER References \"<b\\\"q@x>\""
        );
        let many: Vec<String> = (0..120).map(|i| format!("<{i}@x>")).collect();
        let c = build_related(&many, false).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].text.matches("HEADER Message-ID").count(), 50);
        assert_eq!(c[2].text.matches("HEADER References").count(), 20);
        assert_eq!(c[0].text.matches("OR ").count(), 149);
        let utf = build_related(&["<ü@x>".to_string()], true).unwrap();
        assert!(utf[0].utf8);
        assert!(utf[0].text.contains("{6+}\r\n<ü@x>"));
    }

    #[test]
    fn related_ids_are_checked() {
        let cases: &[(&str, &str)] = &[
            ("<a@x>\r\nA1 LOGOUT", "item 1 contains a carriage return (CR)"),
            ("<a\n@x>", "item 1 contains a line feed (LF)"),
            ("<a\0@x>", "item 1 contains a NUL byte"),
            ("  ", "item 1 is empty"),
        ];
        for (bad, reason) in cases {
            let ids = vec!["<ok@x>".to_string(), bad.to_string()];
            assert_eq!(build_related(&ids, false).unwrap_err(), ArgError::new("message_ids", *reason));
        }
        let too_many: Vec<String> = (0..1001).map(|i| format!("<{i}@x>")).collect();
        assert_eq!(build_related(&too_many, false).unwrap_err(), ArgError::new("message_ids", "more than 1000 ids"));
        let long = vec![format!("<{}@x>", "a".repeat(1000))];
        assert_eq!(build_related(&long, false).unwrap_err(), ArgError::new("message_ids", "item 0 is longer than 998 bytes"));
    }

    #[test]
    fn other_commands() {
        assert_eq!(status_command("Entw&APw-rfe").unwrap(), "STATUS \"Entw&APw-rfe\" (MESSAGES UNSEEN UIDVALIDITY UIDNEXT)");
        assert_eq!(status_command("a\"b").unwrap(), "STATUS \"a\\\"b\" (MESSAGES UNSEEN UIDVALIDITY UIDNEXT)");
        assert_eq!(status_command("a\r\nb").unwrap_err(), ArgError::new("folder", "contains a carriage return (CR)"));
        assert_eq!(list_command(false, false), "LIST \"\" \"*\"");
        assert_eq!(list_command(true, true), "LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN UIDVALIDITY UIDNEXT))");
        assert_eq!(
            summary_fetch_command("1:3,7", 65536),
            "UID FETCH 1:3,7 (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER]<0.65536>)"
        );
        assert_eq!(message_fetch_command(42, 1024), "UID FETCH 42 (UID FLAGS RFC822.SIZE BODY.PEEK[]<0.1024>)");
    }

    #[test]
    fn flags_parse_and_print() {
        let ok: &[(&str, Flag, &str)] = &[
            ("\\Seen", Flag::Seen, "\\Seen"),
            ("\\seen", Flag::Seen, "\\Seen"),
            ("\\FLAGGED", Flag::Flagged, "\\Flagged"),
            ("\\Answered", Flag::Answered, "\\Answered"),
            ("\\Deleted", Flag::Deleted, "\\Deleted"),
            ("\\Draft", Flag::Draft, "\\Draft"),
            ("$PendingReview", Flag::Keyword("$PendingReview".into()), "$PendingReview"),
            ("todo", Flag::Keyword("todo".into()), "todo"),
        ];
        for (text, flag, wire) in ok {
            let f = Flag::parse(text).unwrap();
            assert_eq!(&f, flag, "{text}");
            assert_eq!(f.as_imap(), *wire);
        }
        let kw_rule = "must be an IMAP atom: printable ASCII without spaces or ( ) { % * \" \\ ]";
        let bad: &[(&str, &str)] = &[
            ("$a\r\nA1 EXPUNGE", "contains a carriage return (CR)"),
            ("$a\nb", "contains a line feed (LF)"),
            ("$a\0", "contains a NUL byte"),
            ("\\Seen\r\n", "contains a carriage return (CR)"),
            ("\\Recent", "\\Recent is managed by the server and cannot be set or cleared"),
            (
                "\\Important",
                "`\\\\Important` is not a system flag (\\Seen, \\Flagged, \\Answered, \\Deleted, \\Draft); keywords do not start with '\\'",
            ),
            ("", "must not be empty"),
            ("two words", kw_rule),
            ("a)", kw_rule),
            ("{3}", kw_rule),
            ("a]", kw_rule),
            ("a*", kw_rule),
            ("a%", kw_rule),
            ("\"q\"", kw_rule),
            ("Grüße", kw_rule),
        ];
        for (text, reason) in bad {
            assert_eq!(Flag::parse(text).unwrap_err(), ArgError::new("flags", *reason), "{text:?}");
        }
        assert!(Flag::parse(&"k".repeat(200)).is_ok());
        assert_eq!(Flag::parse(&"k".repeat(201)).unwrap_err().reason, "keyword is longer than 200 bytes");
        // A hand-built keyword is checked again at the API edge.
        assert_eq!(
            check_flags(&[Flag::Seen, Flag::Keyword("x\r\nA1 LOGOUT".into())]).unwrap_err().reason,
            "contains a carriage return (CR)"
        );
        assert_eq!(check_flags(&[Flag::Keyword("\\Seen".into())]).unwrap_err().reason, "`\\\\Seen` is a system flag, not a keyword");
        assert!(check_flags(&[Flag::Keyword("$Label1".into())]).is_ok());
        assert_eq!(
            check_flag_sets(&[Flag::Seen, Flag::Keyword("$Todo".into())], &[Flag::Keyword("$todo".into())]).unwrap_err(),
            ArgError::new("flags", "$Todo is both added and removed")
        );
    }

    #[test]
    fn write_command_text() {
        let inbox = MailboxName::new("INBOX").unwrap();
        let odd = MailboxName::new("Entwürfe \"neu\"").unwrap();
        let kw = Flag::Keyword("$PendingReview".into());
        assert_eq!(select_command(&odd), "SELECT \"Entw&APw-rfe \\\"neu\\\"\"");
        assert_eq!(
            store_flags_command("1:3,7", true, &[Flag::Seen, kw.clone(), Flag::Keyword("$pendingreview".into())]),
            "UID STORE 1:3,7 +FLAGS.SILENT (\\Seen $PendingReview)"
        );
        assert_eq!(store_flags_command("9", false, &[Flag::Flagged]), "UID STORE 9 -FLAGS.SILENT (\\Flagged)");
        assert_eq!(fetch_flags_command("1,4"), "UID FETCH 1,4 (UID FLAGS)");
        let labels = vec![gmail_label("Work").unwrap(), gmail_label("\\Important").unwrap(), gmail_label("Büro \"x\"").unwrap()];
        assert_eq!(labels, ["\"Work\"", "\\Important", "\"B&APw-ro \\\"x\\\"\""]);
        assert_eq!(
            store_labels_command("5", true, &labels),
            "UID STORE 5 +X-GM-LABELS.SILENT (\"Work\" \\Important \"B&APw-ro \\\"x\\\"\")"
        );
        assert_eq!(fetch_labels_command("5"), "UID FETCH 5 (UID X-GM-LABELS)");
        assert_eq!(move_command("2:4", &odd), "UID MOVE 2:4 \"Entw&APw-rfe \\\"neu\\\"\"");
        assert_eq!(copy_command("2", &inbox), "UID COPY 2 \"INBOX\"");
        assert_eq!(uid_expunge_command("2,5"), "UID EXPUNGE 2,5");
        assert_eq!(existing_uids_command("2,5"), "UID SEARCH UID 2,5");
        let braces = MailboxName::new("{3}").unwrap();
        assert_eq!(create_command(&braces), "CREATE \"{3}\"");
        assert_eq!(subscribe_command(&braces), "SUBSCRIBE \"{3}\"");
        assert_eq!(unsubscribe_command(&braces), "UNSUBSCRIBE \"{3}\"");
        assert_eq!(rename_command(&braces, &odd), "RENAME \"{3}\" \"Entw&APw-rfe \\\"neu\\\"\"");
        assert_eq!(delete_command(&MailboxName::new("back\\slash").unwrap()), "DELETE \"back\\\\slash\"");
        let drafts = MailboxName::new("Drafts").unwrap();
        assert_eq!(append_command(&drafts, &[Flag::Draft, kw.clone()], 1234, true), "APPEND \"Drafts\" (\\Draft $PendingReview) {1234+}");
        assert_eq!(append_command(&drafts, &[], 5, false), "APPEND \"Drafts\" () {5}");
        assert_eq!(part_fetch_command(7, "2.1", 1000, 65536), "UID FETCH 7 (UID BODY.PEEK[2.1]<0.1001> BODY.PEEK[2.1.MIME]<0.65536>)");
        assert_eq!(
            part_fetch_command(7, "1", 10, 100),
            "UID FETCH 7 (UID BODY.PEEK[1]<0.11> BODY.PEEK[1.MIME]<0.100> BODY.PEEK[HEADER]<0.100>)"
        );
        assert_eq!(THREAD_COMMAND, "UID THREAD REFERENCES UTF-8 ALL");
    }

    #[test]
    fn write_arguments_are_checked() {
        assert_eq!(write_uid_set(&[], 100).unwrap_err(), ArgError::new("uids", "must name at least one message"));
        assert_eq!(write_uid_set(&[1, 0], 100).unwrap_err(), ArgError::new("uids", "uid 0 does not exist (uids start at 1)"));
        let many: Vec<u32> = (1..=101).collect();
        assert_eq!(write_uid_set(&many, 100).unwrap_err(), ArgError::new("uids", "more than 100 messages in one call (limits.max_batch)"));
        assert_eq!(write_uid_set(&[3, 3, 2, 1], 3).unwrap(), "1:3");

        let label_cases: &[(&str, &str)] = &[
            ("a\r\nA1 DELETE INBOX", "contains a carriage return (CR)"),
            ("a\nb", "contains a line feed (LF)"),
            ("a\0b", "contains a NUL byte"),
            ("a\u{1b}b", "contains a control character"),
            ("  ", "must not be empty"),
            ("\\Bad Label", "a label starting with '\\' must be a Gmail system label such as \\Important"),
            ("\\", "a label starting with '\\' must be a Gmail system label such as \\Important"),
        ];
        for (label, reason) in label_cases {
            assert_eq!(gmail_label(label).unwrap_err(), ArgError::new("labels", *reason), "{label:?}");
        }
        assert_eq!(gmail_label("{3}").unwrap(), "\"{3}\"");

        let sections: &[(&str, Option<&[u32]>)] = &[
            ("1", Some(&[1])),
            ("2.1.3", Some(&[2, 1, 3])),
            ("0", None),
            ("01", None),
            ("1.", None),
            (".1", None),
            ("1..2", None),
            ("1.MIME", None),
            ("HEADER", None),
            ("", None),
            ("1 2", None),
            ("9999999999", None),
            ("-1", None),
        ];
        for (s, want) in sections {
            match want {
                Some(v) => assert_eq!(check_section(s).unwrap(), *v, "{s}"),
                None => assert_eq!(check_section(s).unwrap_err().field, "part", "{s}"),
            }
        }
        assert_eq!(check_section("1]\r\nA1 LOGOUT").unwrap_err(), ArgError::new("part", "contains a carriage return (CR)"));
        assert_eq!(check_section("1\n").unwrap_err(), ArgError::new("part", "contains a line feed (LF)"));
        assert_eq!(check_section("1\0").unwrap_err(), ArgError::new("part", "contains a NUL byte"));
        let deep = vec!["1"; 20].join(".");
        assert!(check_section(&deep).is_ok());
        assert_eq!(check_section(&format!("{deep}.1")).unwrap_err(), ArgError::new("part", "more than 20 levels"));

        assert_eq!(check_message(b"", 10).unwrap_err(), ArgError::new("message", "is empty"));
        assert_eq!(
            check_message(b"0123456789x", 10).unwrap_err(),
            ArgError::new("message", "is 11 bytes, more than limits.max_send_bytes (10)")
        );
        assert_eq!(check_message(b"a\0b", 10).unwrap_err(), ArgError::new("message", "contains a NUL byte"));
        assert!(check_message(b"Subject: x\r\n\r\nhi\r\n", 100).is_ok());
    }
}
