//! `compose`: builds RFC 5322 / MIME messages from validated parts. Pure: no IO, no clock, no
//! randomness (the caller passes the date and the nonce for the Message-ID).
//!
//! Header injection is impossible by construction: every value that reaches a header is
//! validated first (CR, LF and NUL are refused with an error naming the field; addresses,
//! message ids, MIME types are checked against their grammar) and then written as ASCII by our
//! own encoders (RFC 2047 words for non-ASCII text, RFC 2231 for non-ASCII file names). Bodies
//! are quoted-printable or base64 unless they are short-lined ASCII, and every multipart
//! boundary is checked against the content it encloses.
//!
//! Architecture Invariant: `compose` never does IO.

mod address;
mod encode;

use std::fmt;

use sha2::{Digest, Sha256};

/// For `smtp`, which checks envelope addresses by the same rules and encodes AUTH with base64.
pub(crate) use address::validate_email as validate_address;
pub use address::{Mailbox, MAX_NAME_CHARS};
pub(crate) use encode::base64_into;

use address::{refuse_breaks, refuse_controls};
use encode::{
    base64_lines, crlf, crlf_bytes, encoded_words, fold_tokens, fold_unstructured, hex, is_token_char, mime_param, quoted_printable,
};

/// Longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 2000;
/// Longest attachment file name, in characters.
pub const MAX_FILENAME_CHARS: usize = 255;
/// Attachments per message.
pub const MAX_ATTACHMENTS: usize = 100;
/// Addresses in To, Cc and Bcc together.
pub const MAX_ADDRESSES: usize = 1000;
/// Message ids written into References; a longer chain keeps its root and the newest ids.
pub const MAX_REFERENCES: usize = 100;
/// Longest message id, brackets included.
const MAX_MESSAGE_ID_CHARS: usize = 250;
/// Lines of the original [`quote_text`] keeps.
pub const MAX_QUOTE_LINES: usize = 2000;
/// Characters of the original [`quote_text`] keeps.
pub const MAX_QUOTE_CHARS: usize = 100_000;

/// A file to attach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentData {
    /// The name shown to the recipient: no control characters, no `/` or `\`, at most 255
    /// characters.
    pub filename: String,
    /// `type/subtype` (RFC 2045 tokens); `multipart/*` and `message/*` are refused.
    pub content_type: String,
    pub data: Vec<u8>,
}

/// Everything a message is built from. Fields are public so callers can fill them directly;
/// [`build`] validates every one of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    /// `<id@host>` of the message replied to.
    pub in_reply_to: Option<String>,
    /// `<id@host>` each, oldest first.
    pub references: Vec<String>,
    pub attachments: Vec<AttachmentData>,
    /// A whole message to attach as `message/rfc822` (a forward).
    pub forward_rfc822: Option<Vec<u8>>,
    /// Seconds since the Unix epoch; written as UTC.
    pub date_epoch: i64,
    /// `<id@host>`, from [`message_id`].
    pub message_id: String,
}

/// Why a message could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComposeError {
    /// A field's value is not acceptable; `field` names it ("to", "subject", "attachment filename", ...).
    Invalid { field: &'static str, reason: String },
    /// A size or count limit; `limit` names what was counted.
    TooLarge { limit: &'static str, max: u64 },
}

impl fmt::Display for ComposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComposeError::Invalid { field, reason } => write!(f, "invalid {field}: {reason}"),
            ComposeError::TooLarge { limit, max } => write!(f, "too large: at most {max} {limit} allowed"),
        }
    }
}

impl std::error::Error for ComposeError {}

/// A Message-ID `<32 hex digits@domain>`: SHA-256 of `unique_seed` (pass fresh random bytes).
/// A `domain` that is not a plain ASCII host name is replaced by `mailmoat.invalid`.
pub fn message_id(domain: &str, unique_seed: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"mailmoat message-id\0");
    h.update(unique_seed);
    let digest = h.finalize();
    let domain = domain.trim().to_ascii_lowercase();
    let plain = !domain.is_empty()
        && domain.len() <= 200
        && domain.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let domain = if plain { domain.as_str() } else { "mailmoat.invalid" };
    format!("<{}@{domain}>", hex(&digest[..16]))
}

/// The subject of a reply: `Re: ` in front, unless it already starts with `Re:` (any case) or
/// `Re[n]:`. Control characters become spaces; the result fits [`MAX_SUBJECT_CHARS`].
pub fn reply_subject(original: &str) -> String {
    prefixed_subject(original, "Re:", &["re"])
}

/// The subject of a forward: `Fwd: ` in front, unless it already starts with `Fwd:` or `Fw:`.
pub fn forward_subject(original: &str) -> String {
    prefixed_subject(original, "Fwd:", &["fwd", "fw"])
}

fn prefixed_subject(original: &str, prefix: &str, known: &[&str]) -> String {
    let clean: String = original.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let t = clean.trim();
    let lower = t.to_ascii_lowercase();
    let already = known.iter().any(|p| {
        let Some(rest) = lower.strip_prefix(p) else { return false };
        // "Re:", or "Re[2]:" / "Re(2):" as some clients count replies.
        rest.starts_with(':')
            || ((rest.starts_with('[') || rest.starts_with('('))
                && rest[1..]
                    .find([']', ')'])
                    .is_some_and(|end| end > 0 && rest[1..1 + end].bytes().all(|b| b.is_ascii_digit()) && rest[2 + end..].starts_with(':')))
    });
    let out = if already {
        t.to_string()
    } else if t.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix} {t}")
    };
    out.chars().take(MAX_SUBJECT_CHARS).collect()
}

/// The original text quoted for a reply: the attribution line (line breaks and control
/// characters removed, at most 300 characters), then each line with `> ` in front (`>` for an
/// empty line or one that is already quoted). At most [`MAX_QUOTE_LINES`] lines and
/// [`MAX_QUOTE_CHARS`] characters of the original are kept; a cut ends with `> [...]`.
pub fn quote_text(original_text: &str, attribution: &str) -> String {
    let attribution: String = attribution.chars().map(|c| if c.is_control() { ' ' } else { c }).take(300).collect();
    let mut out = String::with_capacity(original_text.len().min(MAX_QUOTE_CHARS) + original_text.len() / 20 + attribution.len() + 8);
    out.push_str(attribution.trim());
    out.push('\n');
    let text = original_text.trim_end_matches(['\r', '\n']);
    let mut chars = 0;
    let mut cut = false;
    for (n, line) in text.lines().enumerate() {
        let line: String = line.chars().filter(|c| !c.is_control() || *c == '\t').collect();
        let len = line.chars().count();
        if n == MAX_QUOTE_LINES || chars + len > MAX_QUOTE_CHARS {
            cut = true;
            break;
        }
        chars += len;
        if line.is_empty() {
            out.push('>');
        } else if line.starts_with('>') {
            out.push('>');
            out.push_str(&line);
        } else {
            out.push_str("> ");
            out.push_str(&line);
        }
        out.push('\n');
    }
    if cut {
        out.push_str("> [...]\n");
    }
    out
}

/// One MIME entity: its header fields (already encoded, CRLF-terminated) and its body.
struct Part {
    headers: Vec<u8>,
    body: Vec<u8>,
}

impl Part {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.headers.len() + 2 + self.body.len());
        out.extend_from_slice(&self.headers);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// The RFC 5322 message for `d`. Bcc is written only when `include_bcc` (a draft keeps it; a
/// transmitted copy never carries it).
pub fn build(d: &Draft, include_bcc: bool) -> Result<Vec<u8>, ComposeError> {
    validate(d)?;
    let mut head = Vec::with_capacity(1024);
    head.extend_from_slice(format!("Date: {}\r\n", encode::rfc5322_date(d.date_epoch)).as_bytes());
    head.extend_from_slice(&address_field("From", std::slice::from_ref(&d.from)));
    if !d.to.is_empty() {
        head.extend_from_slice(&address_field("To", &d.to));
    }
    if !d.cc.is_empty() {
        head.extend_from_slice(&address_field("Cc", &d.cc));
    }
    if include_bcc && !d.bcc.is_empty() {
        head.extend_from_slice(&address_field("Bcc", &d.bcc));
    }
    if !d.subject.is_empty() {
        head.extend_from_slice(&subject_field(&d.subject));
    }
    head.extend_from_slice(format!("Message-ID: {}\r\n", d.message_id).as_bytes());
    if let Some(id) = &d.in_reply_to {
        head.extend_from_slice(format!("In-Reply-To: {id}\r\n").as_bytes());
    }
    if !d.references.is_empty() {
        let refs = &d.references;
        let kept: Vec<String> = if refs.len() > MAX_REFERENCES {
            std::iter::once(&refs[0]).chain(&refs[refs.len() - (MAX_REFERENCES - 1)..]).cloned().collect()
        } else {
            refs.clone()
        };
        head.extend_from_slice(&fold_tokens("References", &kept));
    }
    head.extend_from_slice(b"MIME-Version: 1.0\r\n");

    let seed = d.message_id.as_bytes();
    let mut counter = 0u32;
    let mut body = match &d.body_html {
        Some(html) => multipart("alternative", vec![text_part("plain", &d.body_text), text_part("html", html)], seed, &mut counter),
        None => text_part("plain", &d.body_text),
    };
    if !d.attachments.is_empty() || d.forward_rfc822.is_some() {
        let mut parts = vec![body];
        parts.extend(d.attachments.iter().map(attachment_part));
        if let Some(raw) = &d.forward_rfc822 {
            parts.push(forward_part(raw));
        }
        body = multipart("mixed", parts, seed, &mut counter);
    }
    head.extend_from_slice(&body.headers);
    let mut out = head;
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body.body);
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

fn validate(d: &Draft) -> Result<(), ComposeError> {
    d.from.validate("from")?;
    for (field, list) in [("to", &d.to), ("cc", &d.cc), ("bcc", &d.bcc)] {
        for m in list.iter() {
            m.validate(field)?;
        }
    }
    if d.to.len() + d.cc.len() + d.bcc.len() > MAX_ADDRESSES {
        return Err(ComposeError::TooLarge { limit: "recipients", max: MAX_ADDRESSES as u64 });
    }
    refuse_controls("subject", &d.subject)?;
    if d.subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err(ComposeError::TooLarge { limit: "subject characters", max: MAX_SUBJECT_CHARS as u64 });
    }
    if d.body_text.contains('\0') {
        return Err(ComposeError::Invalid { field: "body_text", reason: "contains a NUL byte".into() });
    }
    if d.body_html.as_deref().is_some_and(|h| h.contains('\0')) {
        return Err(ComposeError::Invalid { field: "body_html", reason: "contains a NUL byte".into() });
    }
    validate_msg_id("message_id", &d.message_id)?;
    if let Some(id) = &d.in_reply_to {
        validate_msg_id("in_reply_to", id)?;
    }
    for id in &d.references {
        validate_msg_id("references", id)?;
    }
    if d.attachments.len() > MAX_ATTACHMENTS {
        return Err(ComposeError::TooLarge { limit: "attachments", max: MAX_ATTACHMENTS as u64 });
    }
    for a in &d.attachments {
        validate_attachment(a)?;
    }
    Ok(())
}

/// `<left@right>`: printable ASCII, no whitespace, no brackets inside, one `@` at least.
fn validate_msg_id(field: &'static str, id: &str) -> Result<(), ComposeError> {
    refuse_breaks(field, id)?;
    let bad = |reason: &str| Err(ComposeError::Invalid { field, reason: reason.to_string() });
    if id.chars().count() > MAX_MESSAGE_ID_CHARS {
        return bad("message id is longer than 250 characters");
    }
    let Some(inner) = id.strip_prefix('<').and_then(|s| s.strip_suffix('>')) else {
        return bad("message id must look like <id@host>");
    };
    if !inner.bytes().all(|b| b.is_ascii_graphic() && !b"<>\"\\".contains(&b)) {
        return bad("message id contains whitespace, a quote, a bracket or non-ASCII");
    }
    match inner.rsplit_once('@') {
        Some((l, r)) if !l.is_empty() && !r.is_empty() => Ok(()),
        _ => bad("message id must look like <id@host>"),
    }
}

fn validate_attachment(a: &AttachmentData) -> Result<(), ComposeError> {
    refuse_controls("attachment filename", &a.filename)?;
    let name = a.filename.trim();
    if name.is_empty() {
        return Err(ComposeError::Invalid { field: "attachment filename", reason: "is empty".into() });
    }
    if name.contains(['/', '\\']) {
        return Err(ComposeError::Invalid { field: "attachment filename", reason: "contains a path separator".into() });
    }
    if name.chars().count() > MAX_FILENAME_CHARS {
        return Err(ComposeError::TooLarge { limit: "filename characters", max: MAX_FILENAME_CHARS as u64 });
    }
    refuse_breaks("attachment content_type", &a.content_type)?;
    let valid = a.content_type.split_once('/').is_some_and(|(t, s)| {
        !t.is_empty() && !s.is_empty() && t.len() + s.len() < 128 && t.chars().all(is_token_char) && s.chars().all(is_token_char)
    });
    if !valid {
        return Err(ComposeError::Invalid {
            field: "attachment content_type",
            reason: "must be type/subtype, like application/pdf".into(),
        });
    }
    let t = a.content_type.to_ascii_lowercase();
    if t.starts_with("multipart/") || t.starts_with("message/") {
        return Err(ComposeError::Invalid {
            field: "attachment content_type",
            reason: "multipart and message types cannot be attached as files".into(),
        });
    }
    Ok(())
}

fn address_field(name: &str, list: &[Mailbox]) -> Vec<u8> {
    let mut tokens = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let mut t = m.header_tokens();
        if i + 1 < list.len() {
            if let Some(last) = t.last_mut() {
                last.push(',');
            }
        }
        tokens.extend(t);
    }
    fold_tokens(name, &tokens)
}

fn subject_field(subject: &str) -> Vec<u8> {
    // Plain ASCII goes as it is (folded without changing a byte). Non-ASCII, text that would
    // read as an encoded word, and unfoldable runs become RFC 2047 words.
    let plain = subject.is_ascii() && !subject.contains("=?") && subject.trim() == subject && !subject.contains('\t');
    if plain {
        if let Some(line) = fold_unstructured("Subject", subject) {
            return line;
        }
    }
    fold_tokens("Subject", &encoded_words(subject))
}

/// A text/plain or text/html part: 7bit when it is ASCII with lines of at most 78 characters
/// and no trailing blanks, else quoted-printable, or base64 when most of it is not ASCII.
fn text_part(subtype: &str, text: &str) -> Part {
    let body = crlf(text);
    let lines_ok = body.split(|&b| b == b'\n').all(|l| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        l.len() <= 78 && !l.ends_with(b" ") && !l.ends_with(b"\t")
    });
    let ascii = body.iter().all(|&b| b.is_ascii() && (b >= 0x20 || b == b'\r' || b == b'\n' || b == b'\t'));
    let non_ascii = body.iter().filter(|&&b| b >= 0x80).count();
    let (cte, encoded) = if ascii && lines_ok {
        ("7bit", body)
    } else if non_ascii * 3 > body.len() {
        ("base64", base64_lines(&body))
    } else {
        ("quoted-printable", quoted_printable(&body))
    };
    let headers = format!("Content-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n");
    Part { headers: headers.into_bytes(), body: encoded }
}

fn attachment_part(a: &AttachmentData) -> Part {
    let name = a.filename.trim();
    let mut ct = vec![format!("{};", a.content_type.to_ascii_lowercase())];
    ct.extend(params(mime_param("name", name)));
    let mut cd = vec!["attachment;".to_string()];
    cd.extend(params(mime_param("filename", name)));
    let mut headers = fold_tokens("Content-Type", &ct);
    headers.extend_from_slice(&fold_tokens("Content-Disposition", &cd));
    headers.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n");
    Part { headers, body: base64_lines(&a.data) }
}

/// `a; b; c` as tokens: every piece but the last ends with `;`.
fn params(pieces: Vec<String>) -> Vec<String> {
    let n = pieces.len();
    pieces.into_iter().enumerate().map(|(i, p)| if i + 1 < n { format!("{p};") } else { p }).collect()
}

/// The forwarded message as `message/rfc822` (7bit or 8bit, CRLF line ends). A message that
/// cannot travel that way (NUL bytes, lines over 998 bytes) is attached as base64
/// `application/octet-stream` instead, since RFC 2046 allows no other encoding for
/// `message/rfc822`.
fn forward_part(raw: &[u8]) -> Part {
    let body = crlf_bytes(raw);
    let clean = !body.contains(&0) && body.split(|&b| b == b'\n').all(|l| l.len() <= encode::MAX_LINE + 1);
    if clean {
        let cte = if body.is_ascii() { "7bit" } else { "8bit" };
        let headers = format!(
            "Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"forwarded.eml\"\r\nContent-Transfer-Encoding: {cte}\r\n"
        );
        Part { headers: headers.into_bytes(), body }
    } else {
        let headers = "Content-Type: application/octet-stream; name=\"forwarded.eml\"\r\n\
                       Content-Disposition: attachment; filename=\"forwarded.eml\"\r\n\
                       Content-Transfer-Encoding: base64\r\n";
        Part { headers: headers.as_bytes().to_vec(), body: base64_lines(&body) }
    }
}

/// A multipart entity. The boundary is derived from the Message-ID and a counter (compose has
/// no randomness of its own) and re-derived until it occurs in none of the parts.
fn multipart(subtype: &str, parts: Vec<Part>, seed: &[u8], counter: &mut u32) -> Part {
    let rendered: Vec<Vec<u8>> = parts.iter().map(Part::bytes).collect();
    let boundary = loop {
        *counter += 1;
        let mut h = Sha256::new();
        h.update(b"mailmoat boundary\0");
        h.update(seed);
        h.update(counter.to_be_bytes());
        // "=_" cannot occur in base64 or quoted-printable text.
        let b = format!("=_mm_{}", hex(&h.finalize()[..12]));
        if !rendered.iter().any(|r| r.windows(b.len()).any(|w| w == b.as_bytes())) {
            break b;
        }
    };
    let mut body = Vec::with_capacity(rendered.iter().map(|r| r.len() + boundary.len() + 8).sum::<usize>() + 64);
    for r in &rendered {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(r);
        // This CRLF belongs to the next delimiter (RFC 2046 §5.1.1), so the part keeps its own
        // final line break, if it has one.
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let headers = format!("Content-Type: multipart/{subtype};\r\n boundary=\"{boundary}\"\r\n");
    Part { headers: headers.into_bytes(), body }
}

#[cfg(test)]
mod tests;
