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
//! - `css`: the CSS that decides visibility (style sheets, selectors, colours, lengths).
//! - `deception`: sender, reply-to and link domains against the account's trusted domains
//!   (confusable skeletons, punycode, mixed scripts), display-name spoofing,
//!   Authentication-Results and provenance.
//! - `attach`: attachment filenames, magic bytes, dangerous types, part decoding and
//!   attachment text (text, HTML, forwarded messages, calendar invitations).
//! - `instructions`: the advisory `instruction_like_text` rules.
//!
//! Invariant: every string this module returns (header values, names, filenames, body text,
//! sanitized HTML, link texts and targets) has been through [`clean_text`] or [`clean_line`]
//! and [`neutralize_fence`], so callers may fence it without further treatment. Delivered body
//! text and names are also NFKC-normalized. Findings never contain message text that was
//! hidden (hidden text, tag-character payloads): only counts, reasons, rule names and
//! locations.
//!
//! Account context ([`Context`]) and options ([`RenderOptions`]) go through [`render_with`] and
//! [`parse_headers_with`]; [`render`] and [`parse_headers`] use empty defaults.

mod attach;
mod css;
pub(crate) mod date;
mod deception;
mod entities;
mod headers;
mod html;
mod instructions;
mod mime;
mod text;
mod tokenizer;

pub use attach::{attachment_text, decode_part, sanitize_filename, sniff_type};
pub use date::format_rfc3339_utc;
pub use html::html_to_text;
pub use mime::{part_header, PartHeader};
pub use text::{clean_line, clean_text, neutralize_fence, snippet};

/// Stable finding codes. Tools and the audit log match on these strings; never rename one.
pub mod code {
    /// A header value carried a line break (encoded, or a bare CR): the classic way to smuggle
    /// extra headers. The break was replaced with a space.
    pub const HEADER_INJECTION: &str = "header_injection";
    /// Invisible or smuggled characters were removed: zero-width, bidi controls and marks,
    /// soft hyphens, variation selectors, Unicode tag characters (a hidden ASCII message),
    /// private-use and noncharacters, controls. The detail counts them by class.
    pub const INVISIBLE_CHARACTERS: &str = "invisible_characters";
    /// HTML contained scripts, event handlers, `javascript:`/`data:` URLs, forms, frames or
    /// plugins; they never reach the text or the sanitized HTML.
    pub const ACTIVE_CONTENT_REMOVED: &str = "active_content_removed";
    /// HTML referenced remote images, trackers or stylesheets; nothing was fetched.
    pub const REMOTE_CONTENT_REMOVED: &str = "remote_content_removed";
    /// Something was cut to a limit (body, header value, address list, HTML, or the fetch).
    pub const TRUNCATED: &str = "truncated";
    /// The MIME structure exceeded a limit (depth, part count, decoded size, header count) or
    /// could not be parsed; the affected parts were skipped, the rest is readable.
    pub const MIME_LIMIT: &str = "mime_limit";
    /// Text that a mail client would not show (CSS or attribute hiding, colour equal to the
    /// background, comments, `<template>`, `<noscript>`, `<title>`, a text/plain alternative
    /// that differs from the HTML one) was left out. `info` for a newsletter preheader and
    /// other benign cases, `warning` for hidden text with new content, `danger` when the hidden
    /// text addresses an AI agent. Never echoes the hidden text.
    pub const HIDDEN_CONTENT: &str = "hidden_content";
    /// A domain label (sender, reply-to, link) mixes scripts, e.g. Latin with Cyrillic.
    pub const MIXED_SCRIPT: &str = "mixed_script";
    /// A sender, reply-to or link domain looks like a trusted domain without being it
    /// (Unicode confusable skeleton, or punycode decoding to one).
    pub const CONFUSABLE_DOMAIN: &str = "confusable_domain";
    /// The display name contains an address or domain other than the sender's, or names a
    /// trusted domain the address does not belong to.
    pub const DISPLAY_NAME_SPOOF: &str = "display_name_spoof";
    /// Reply-To points outside the sender's domain.
    pub const REPLY_TO_MISMATCH: &str = "reply_to_mismatch";
    /// A link's visible text names a different domain than its target.
    pub const LINK_MISMATCH: &str = "link_mismatch";
    /// An attachment uses a bidi trick, a double extension, an executable type or a path in
    /// its name.
    pub const DANGEROUS_ATTACHMENT: &str = "dangerous_attachment";
    /// An attachment's declared type (or extension) disagrees with its magic bytes.
    pub const ATTACHMENT_TYPE_MISMATCH: &str = "attachment_type_mismatch";
    /// No trusted Authentication-Results header reports a DKIM, SPF or DMARC pass aligned
    /// with the From domain (only raised when the account names its `trusted_authserv_id`).
    pub const SENDER_UNAUTHENTICATED: &str = "sender_unauthenticated";
    /// A trusted Authentication-Results header reports a DKIM, SPF or DMARC failure.
    pub const AUTHENTICATION_FAILED: &str = "authentication_failed";
    /// Advisory: the text addresses an AI agent, tries to override instructions, or names this
    /// server's tools. The detail names the matching rules; nothing is blocked.
    pub const INSTRUCTION_LIKE_TEXT: &str = "instruction_like_text";
}

/// Per-account context for the deception checks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    /// The account's own domain, e.g. "example.com" (lowercase ASCII or Unicode).
    pub own_domain: String,
    /// Further domains the account trusts (its bank, employer, …).
    pub trusted_domains: Vec<String>,
    /// The authserv-id the account's own receiving server writes into Authentication-Results;
    /// headers with any other id are attacker-written and ignored.
    pub trusted_authserv_id: Option<String>,
}

/// What `render_with` produces besides the text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RenderOptions {
    /// Produce `Rendered::html`.
    pub include_html: bool,
    /// Header names (case-insensitive) whose values go to `Rendered::headers_raw`; at most
    /// [`MAX_INCLUDE_HEADERS`] are used.
    pub include_headers: Vec<String>,
}

/// Header names honoured in `RenderOptions::include_headers`.
pub const MAX_INCLUDE_HEADERS: usize = 50;

/// A link found in the body. All of it is untrusted text.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The visible link text (cleaned, at most 200 characters; empty for image links and
    /// links found in plain text).
    pub text: String,
    /// The target URL (http, https or mailto; cleaned, at most 2048 characters).
    pub target: String,
    /// The target's host, lowercased (punycode labels decoded to Unicode for display).
    pub domain: String,
}

/// Authentication results from the trusted Authentication-Results header only.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuthSummary {
    /// "pass", "fail", "none", … for the best DKIM result.
    pub dkim: Option<String>,
    pub spf: Option<String>,
    pub dmarc: Option<String>,
    /// Whether a passing result is aligned with the From domain (`None` without results).
    pub aligned: Option<bool>,
    /// A header from the trusted authserv-id was found.
    pub trusted: bool,
}

/// Where the message comes from, as its headers claim.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Provenance {
    pub list_id: Option<String>,
    pub list_unsubscribe: bool,
    /// Lowercased Precedence value ("bulk", "list", "junk", …).
    pub precedence: Option<String>,
    /// Lowercased Auto-Submitted value other than "no".
    pub auto_submitted: Option<String>,
    /// Bulk mail: a mailing list, Precedence bulk/list/junk, or List-Unsubscribe.
    pub bulk: bool,
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
    /// Bytes of sanitized HTML returned when asked for (default 400,000).
    pub max_html_bytes: usize,
    /// Links listed (default 200).
    pub max_links: usize,
    /// Values returned in `headers_raw` (default 200).
    pub max_raw_headers: usize,
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
            max_html_bytes: 400_000,
            max_links: 200,
            max_raw_headers: 200,
        }
    }
}

/// How much a finding matters to the person reading the mail through the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

pub(crate) fn invisible_finding(location: String, stats: &text::CleanStats) -> Finding {
    let mut detail = format!("removed {}", stats.describe());
    let severity = if stats.tags > 0 {
        detail.push_str(&format!(
            "; the tag characters spelled a hidden ASCII message of {} character(s) (not shown)",
            stats.tag_payload.chars().count()
        ));
        Severity::Danger
    } else {
        Severity::Warning
    };
    Finding::new(code::INVISIBLE_CHARACTERS, severity, location, detail)
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
    parse_headers_with(raw, limits, &Context::default(), findings)
}

/// [`parse_headers`] plus the sender-deception checks against `ctx`: confusable and
/// mixed-script sender/reply-to domains, display-name spoofing, reply-to mismatch, and the
/// trusted Authentication-Results.
pub fn parse_headers_with(raw: &[u8], limits: &Limits, ctx: &Context, findings: &mut Vec<Finding>) -> Headers {
    let block = headers::split_header_block(raw, limits.max_headers);
    let h = headers::headers_from_block(&block, limits, findings);
    deception::check_senders(&h, &block, &deception::references(ctx), findings);
    let _ = deception::authentication(&h, &block, ctx, findings);
    h
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
    /// Lowercased Content-Transfer-Encoding ("base64", "quoted-printable", …; "" if absent).
    pub encoding: String,
    /// What the part's first bytes are (see [`sniff_type`]), when they were in the fetch.
    pub sniffed_type: Option<String>,
}

/// A message made safe to show to an agent.
#[derive(Clone, Debug, Default)]
pub struct Rendered {
    pub headers: Headers,
    /// Cleaned, NFKC-normalized, fence-neutralized body text, at most `max_body_chars`
    /// characters.
    pub text: String,
    /// "text/plain" or "text/html" (reduced to text), or `None` when there is no text part.
    /// In a multipart/alternative the HTML part is delivered when it has text (it is what a
    /// person sees).
    pub text_source: Option<&'static str>,
    /// The text was cut (to `max_body_chars`, or because a decoding limit fired).
    pub text_truncated: bool,
    pub attachments: Vec<Attachment>,
    pub findings: Vec<Finding>,
    /// Sanitized HTML of the delivered HTML part (hidden content removed, allow-listed
    /// elements only, no attributes but link targets), when `include_html` was asked and the
    /// body is HTML.
    pub html: Option<String>,
    /// The requested headers, decoded and cleaned, in message order: (name, value).
    pub headers_raw: Vec<(String, String)>,
    /// Links in the delivered body (untrusted).
    pub links: Vec<Link>,
    pub auth: AuthSummary,
    pub provenance: Provenance,
    /// The text/plain and text/html alternatives say materially different things.
    pub alternative_mismatch: bool,
}

/// Renders a raw RFC 5322 message. `fetch_truncated` says the bytes are only the beginning of
/// the message (the fetch limit cut it).
///
/// Never panics: the walk is iterative and bounded by `limits`, and as a last resort a panic in
/// a dependency is caught and turned into a `mime_limit` finding with an empty body.
pub fn render(raw: &[u8], fetch_truncated: bool, limits: &Limits) -> Rendered {
    render_with(raw, fetch_truncated, limits, &Context::default(), &RenderOptions::default())
}

/// [`render`] with the account context (deception checks, authentication results) and options
/// (sanitized HTML, raw headers).
pub fn render_with(raw: &[u8], fetch_truncated: bool, limits: &Limits, ctx: &Context, opts: &RenderOptions) -> Rendered {
    let result = std::panic::catch_unwind(|| mime::render_message(raw, limits, ctx, opts));
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
        Rendered { headers, findings, ..Rendered::default() }
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
