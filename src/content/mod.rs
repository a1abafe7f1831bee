//! `content`: turns hostile message bytes into sanitized text plus findings. Pure: no IO, no
//! clock, no globals, and it cannot fail: limits and damage become findings, never errors or
//! panics.
//!
//! Layout:
//! - `headers`: header-block splitting, RFC 2047, addresses, message ids → [`Headers`].
//! - `mime`: the MIME tree (our own iterative walker), part numbers, attachments, body choice,
//!   transfer and charset decoding → [`Rendered`].
//! - `tokenizer` + `html`: a linear HTML tokenizer and element model → readable text, plus
//!   findings (active/remote/hidden content).
//! - `entities`: the WHATWG named character references.
//! - `text`: character cleaning, fence neutralization, truncation, snippets.
//! - `date`: RFC 5322 date parsing and RFC 3339 formatting.
//!
//! Invariant: every string this module returns (header values, names, filenames, body text) has
//! been through [`clean_text`] or [`clean_line`] and [`neutralize_fence`], so callers may fence
//! it without further treatment.

mod date;
mod entities;
mod headers;
mod html;
mod mime;
mod text;
mod tokenizer;

pub use date::format_rfc3339_utc;
pub use html::html_to_text;
pub use text::{clean_line, clean_text, neutralize_fence, snippet};

/// Stable finding codes. Tools and the audit log match on these strings; never rename one.
pub mod code {
    /// A header value carried a line break (encoded, or a bare CR): the classic way to smuggle
    /// extra headers. The break was replaced with a space.
    pub const HEADER_INJECTION: &str = "header_injection";
    /// Zero-width, bidi-control, tag or control characters were removed.
    pub const INVISIBLE_CHARACTERS: &str = "invisible_characters";
    /// HTML contained scripts, event handlers, `javascript:` URLs, forms, frames or plugins;
    /// they never reach the text.
    pub const ACTIVE_CONTENT_REMOVED: &str = "active_content_removed";
    /// HTML referenced remote images or stylesheets; nothing was fetched.
    pub const REMOTE_CONTENT_REMOVED: &str = "remote_content_removed";
    /// Something was cut to a limit (body, header value, address list, or the fetch itself).
    pub const TRUNCATED: &str = "truncated";
    /// The MIME structure exceeded a limit (depth, part count, decoded size, header count) or
    /// could not be parsed; the affected parts were skipped, the rest is readable.
    pub const MIME_LIMIT: &str = "mime_limit";
    /// Text that a mail client would not show (hidden by CSS or the `hidden` attribute, inside
    /// inline SVG) was left out of the text.
    pub const HIDDEN_CONTENT: &str = "hidden_content";
}

/// Bounds on the work done for one message. Every limit that fires produces a finding.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Characters of body text returned (default 100,000).
    pub max_body_chars: usize,
    /// Characters of one header value, display name or address (default 2,000).
    pub max_header_value_chars: usize,
    /// Addresses kept per header field (default 100).
    pub max_addresses: usize,
    /// MIME nesting levels below the message that are read (default 16).
    pub max_mime_depth: usize,
    /// MIME parts read, multiparts included (default 256).
    pub max_parts: usize,
    /// Bytes of decoded body content per message (default 32 MiB).
    pub max_decoded_bytes: usize,
    /// Header fields read per header block (default 500).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_chars: 100_000,
            max_header_value_chars: 2_000,
            max_addresses: 100,
            max_mime_depth: 16,
            max_parts: 256,
            max_decoded_bytes: 32 * 1024 * 1024,
            max_headers: 500,
        }
    }
}

/// How much a finding matters to the person reading the mail through the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; nothing suspicious by itself (e.g. remote images, truncation).
    Info,
    /// Unusual and possibly deceptive (e.g. invisible characters, hidden text, scripts).
    Warning,
    /// A deliberate attack pattern (e.g. header injection).
    Danger,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Danger => "danger",
        }
    }
}

/// Something the sanitizer noticed or changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// One of the constants in [`code`].
    pub code: &'static str,
    pub severity: Severity,
    /// Where: "header:Subject", "body", "part:2", "part:1.2 filename", "message", "headers".
    pub location: String,
    /// One line for humans; never contains message text.
    pub detail: String,
}

impl Finding {
    pub fn new(code: &'static str, severity: Severity, location: String, detail: String) -> Finding {
        Finding { code, severity, location, detail }
    }
}

pub(crate) fn invisible_finding(location: String, stats: text::CleanStats) -> Finding {
    let invisible = format!("{} invisible formatting character(s) (zero-width, bidi control, …)", stats.invisible);
    let controls = format!("{} control character(s)", stats.controls);
    let detail = match (stats.invisible > 0, stats.controls > 0) {
        (true, true) => format!("removed {invisible} and {controls}"),
        (true, false) => format!("removed {invisible}"),
        _ => format!("removed {controls}"),
    };
    Finding::new(code::INVISIBLE_CHARACTERS, Severity::Warning, location, detail)
}

/// A mailbox. `email` is empty when the entry could not be parsed as an address; its cleaned
/// text is then in `name`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Address {
    pub name: Option<String>,
    pub email: String,
}

/// The header fields an agent needs, decoded and cleaned.
#[derive(Clone, Debug, Default)]
pub struct Headers {
    pub from: Vec<Address>,
    pub sender: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub reply_to: Vec<Address>,
    /// RFC 3339 UTC, e.g. "2024-03-09T14:05:00Z"; `None` if missing or unparseable.
    pub date: Option<String>,
    pub subject: Option<String>,
    /// In `<id@host>` form.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    /// At most the last 100 (the nearest ancestors).
    pub references: Vec<String>,
    pub list_id: Option<String>,
    /// Lowercased MIME type of the top part, e.g. "multipart/mixed".
    pub content_type: Option<String>,
}

/// Parses the header block at the start of `raw` (a header block alone, or a whole message:
/// parsing stops at the first blank line).
pub fn parse_headers(raw: &[u8], limits: &Limits, findings: &mut Vec<Finding>) -> Headers {
    let block = headers::split_header_block(raw, limits.max_headers);
    headers::headers_from_block(&block, limits, findings)
}

/// A MIME part an agent may want to fetch separately.
#[derive(Clone, Debug)]
pub struct Attachment {
    /// IMAP section number (RFC 3501 §6.4.5), e.g. "2" or "1.2".
    pub part: String,
    /// Cleaned: no controls, bidi or invisible characters, no path components, at most 255
    /// characters (the extension is kept when cutting).
    pub filename: Option<String>,
    /// Lowercased MIME type, e.g. "application/pdf".
    pub content_type: String,
    /// Decoded size in bytes (computed for base64, the encoded size otherwise).
    pub size: usize,
    /// "attachment" or "inline" when the part says so.
    pub disposition: Option<String>,
    /// In `<id>` form.
    pub content_id: Option<String>,
}

/// A message made safe to show to an agent.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub headers: Headers,
    /// Cleaned, fence-neutralized body text, at most `max_body_chars` characters.
    pub text: String,
    /// "text/plain" or "text/html" (reduced to text), or `None` when there is no text part.
    pub text_source: Option<&'static str>,
    /// The text was cut (to `max_body_chars`, or because a decoding limit fired).
    pub text_truncated: bool,
    pub attachments: Vec<Attachment>,
    pub findings: Vec<Finding>,
}

/// Renders a raw RFC 5322 message. `fetch_truncated` says the bytes are only the beginning of
/// the message (the fetch limit cut it).
///
/// Never panics: the walk is iterative and bounded by `limits`, and as a last resort a panic in
/// a dependency is caught and turned into a `mime_limit` finding with an empty body.
pub fn render(raw: &[u8], fetch_truncated: bool, limits: &Limits) -> Rendered {
    let result = std::panic::catch_unwind(|| mime::render_message(raw, limits));
    let mut rendered = result.unwrap_or_else(|_| {
        let mut findings = Vec::new();
        // Headers alone are parsed by our own code and are very unlikely to be what panicked;
        // still, guard them separately so a header panic cannot take the finding with it.
        let headers = std::panic::catch_unwind(|| {
            let mut f = Vec::new();
            let h = parse_headers(raw, limits, &mut f);
            (h, f)
        });
        let headers = match headers {
            Ok((h, f)) => {
                findings.extend(f);
                h
            }
            Err(_) => Headers::default(),
        };
        findings.push(Finding::new(
            code::MIME_LIMIT,
            Severity::Warning,
            "message".to_owned(),
            "the message structure could not be parsed; the body was not read".to_owned(),
        ));
        Rendered { headers, text: String::new(), text_source: None, text_truncated: false, attachments: Vec::new(), findings }
    });
    if fetch_truncated {
        rendered.findings.push(Finding::new(
            code::TRUNCATED,
            Severity::Warning,
            "message".to_owned(),
            "message larger than the fetch limit; only the beginning was read".to_owned(),
        ));
    }
    rendered
}
