//! Mailboxes: parsing `Name <addr>` / `addr`, validating the address and the display name, and
//! writing them into a header as ASCII (RFC 2047 words for a non-ASCII name).

use super::encode::{encoded_words, is_atext, quoted_string};
use super::ComposeError;

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest address (RFC 5321 §4.5.3.1.3 path limit, minus the brackets).
const MAX_ADDRESS_BYTES: usize = 254;
/// Longest local part (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_BYTES: usize = 64;
/// Longest domain (RFC 1035).
const MAX_DOMAIN_BYTES: usize = 253;

/// A display name and an address, both validated (see [`Mailbox::new`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    /// Display name: no control characters, at most 200 characters.
    pub name: Option<String>,
    /// An addr-spec: a dot-atom local part (ASCII, or UTF-8 for SMTPUTF8 servers), one `@`, and
    /// a host name (or `localhost`).
    pub email: String,
}

impl Mailbox {
    /// A validated mailbox. An empty or blank name counts as none.
    pub fn new(name: Option<&str>, email: &str) -> Result<Mailbox, ComposeError> {
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        if let Some(n) = name {
            validate_name("name", n)?;
        }
        validate_email("address", email)?;
        Ok(Mailbox { name: name.map(str::to_string), email: email.to_string() })
    }

    /// Parses `Name <a@b>`, `"Name, with comma" <a@b>`, `<a@b>` or `a@b`.
    pub fn parse(s: &str) -> Result<Mailbox, ComposeError> {
        refuse_breaks("address", s)?;
        let s = s.trim();
        let Some(inner) = s.strip_suffix('>') else {
            return Mailbox::new(None, s);
        };
        let lt = inner.rfind('<').ok_or_else(|| invalid("address", "has a `>` without a matching `<`"))?;
        let email = &inner[lt + 1..];
        let raw_name = inner[..lt].trim();
        let name = if raw_name.len() >= 2 && raw_name.starts_with('"') && raw_name.ends_with('"') {
            unquote(&raw_name[1..raw_name.len() - 1])?
        } else {
            if raw_name.contains(['<', '>']) {
                return Err(invalid("name", "contains `<` or `>` outside quotes"));
            }
            if raw_name.contains('"') {
                return Err(invalid("name", "has unbalanced quotes (quote the whole name)"));
            }
            raw_name.to_string()
        };
        Mailbox::new(Some(&name), email)
    }

    /// Validates both parts, naming `field` ("to", "cc", ...) in errors.
    pub(crate) fn validate(&self, field: &'static str) -> Result<(), ComposeError> {
        if let Some(n) = &self.name {
            validate_name(field, n)?;
        }
        validate_email(field, &self.email)
    }

    /// Header tokens for this mailbox (the caller joins them with spaces and folds between
    /// them): the name as an atom phrase, a quoted string or RFC 2047 words, then `<addr>`.
    pub(crate) fn header_tokens(&self) -> Vec<String> {
        let mut tokens = Vec::new();
        if let Some(name) = self.name.as_deref().filter(|n| !n.is_empty()) {
            if !name.is_ascii() || name.contains("=?") {
                tokens.extend(encoded_words(name));
            } else if name.split(' ').all(|w| !w.is_empty() && w.chars().all(is_atext)) {
                tokens.extend(name.split(' ').map(str::to_string));
            } else {
                tokens.push(quoted_string(name));
            }
            tokens.push(format!("<{}>", self.email));
        } else {
            tokens.push(self.email.clone());
        }
        tokens
    }
}

fn invalid(field: &'static str, reason: &str) -> ComposeError {
    ComposeError::Invalid { field, reason: reason.to_string() }
}

/// Refuses CR, LF and NUL with a reason that says which.
pub(crate) fn refuse_breaks(field: &'static str, s: &str) -> Result<(), ComposeError> {
    if s.contains(['\r', '\n']) {
        return Err(invalid(field, "contains a line break"));
    }
    if s.contains('\0') {
        return Err(invalid(field, "contains a NUL byte"));
    }
    Ok(())
}

/// Refuses line breaks, NUL and every other control character except tab.
pub(crate) fn refuse_controls(field: &'static str, s: &str) -> Result<(), ComposeError> {
    refuse_breaks(field, s)?;
    if s.chars().any(|c| c.is_control() && c != '\t') {
        return Err(invalid(field, "contains a control character"));
    }
    Ok(())
}

fn unquote(s: &str) -> Result<String, ComposeError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().ok_or_else(|| invalid("name", "ends with a lone backslash"))?),
            '"' => return Err(invalid("name", "has an unescaped quote inside the quotes")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A display name: no control characters, at most [`MAX_NAME_CHARS`] characters.
pub(crate) fn validate_name(field: &'static str, name: &str) -> Result<(), ComposeError> {
    refuse_controls(field, name)?;
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ComposeError::TooLarge { limit: "display name characters", max: MAX_NAME_CHARS as u64 });
    }
    Ok(())
}

/// An addr-spec we are willing to put in a header and on the SMTP envelope: a dot-atom local
/// part (quoted local parts are refused), exactly one `@`, and a host name of letters, digits
/// and hyphens (non-ASCII letters allowed for SMTPUTF8) with at least two labels, or
/// `localhost`.
pub(crate) fn validate_email(field: &'static str, email: &str) -> Result<(), ComposeError> {
    refuse_breaks(field, email)?;
    let bad = |reason: &str| Err(invalid(field, reason));
    if email.is_empty() {
        return bad("is empty");
    }
    if email.len() > MAX_ADDRESS_BYTES {
        return bad("address is longer than 254 bytes");
    }
    if email.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("address contains whitespace or a control character");
    }
    if email.matches('@').count() != 1 {
        return bad("address must contain exactly one @");
    }
    let (local, domain) = email.split_once('@').unwrap_or_default();
    if local.is_empty() || domain.is_empty() {
        return bad("address needs a local part and a domain around the @");
    }
    if local.len() > MAX_LOCAL_BYTES {
        return bad("local part is longer than 64 bytes");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return bad("local part has a misplaced dot");
    }
    if let Some(c) = local.chars().find(|&c| c != '.' && !is_atext(c) && c.is_ascii()) {
        return Err(invalid(field, &format!("local part contains `{}`", c.escape_default())));
    }
    if domain.len() > MAX_DOMAIN_BYTES {
        return bad("domain is longer than 253 bytes");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 && !domain.eq_ignore_ascii_case("localhost") {
        return bad("domain must have at least two labels (like example.com)");
    }
    for label in labels {
        if label.is_empty() || label.len() > 63 {
            return bad("domain has an empty or over-long label");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("domain label starts or ends with a hyphen");
        }
        if let Some(c) = label.chars().find(|&c| c != '-' && !c.is_alphanumeric()) {
            return Err(invalid(field, &format!("domain contains `{}`", c.escape_default())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Mailbox {
        Mailbox::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parse_forms() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("a@example.com", None, "a@example.com"),
            ("  <a@example.com> ", None, "a@example.com"),
            ("Alice Smith <a@example.com>", Some("Alice Smith"), "a@example.com"),
            ("\"Smith, Alice\" <a@example.com>", Some("Smith, Alice"), "a@example.com"),
            ("\"Al \\\"the pal\\\" \\\\ x\" <a@example.com>", Some("Al \"the pal\" \\ x"), "a@example.com"),
            ("Smith, Alice <a@example.com>", Some("Smith, Alice"), "a@example.com"),
            ("Jürgen Müller <j@example.de>", Some("Jürgen Müller"), "j@example.de"),
            ("δοκιμή@παράδειγμα.δοκιμή", None, "δοκιμή@παράδειγμα.δοκιμή"),
            ("root@localhost", None, "root@localhost"),
            ("o'brien+tag@sub.example.co.uk", None, "o'brien+tag@sub.example.co.uk"),
            ("\"\" <a@example.com>", None, "a@example.com"),
        ];
        for (input, name, email) in cases {
            let m = ok(input);
            assert_eq!((m.name.as_deref(), m.email.as_str()), (*name, *email), "{input}");
        }
    }

    #[test]
    fn parse_refusals_name_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("a@b@example.com", "invalid address: address must contain exactly one @"),
            ("a@example.com\r\nBcc: x@evil.test", "invalid address: contains a line break"),
            ("Name\n <a@example.com>", "invalid address: contains a line break"),
            ("a\0@example.com", "invalid address: contains a NUL byte"),
            ("Al\u{7}ice <a@example.com>", "invalid name: contains a control character"),
            ("Al <ice> <a@example.com>", "invalid name: contains `<` or `>` outside quotes"),
            ("Al \"ice <a@example.com>", "invalid name: has unbalanced quotes (quote the whole name)"),
            ("\"Al\"ice\" <a@example.com>", "invalid name: has an unescaped quote inside the quotes"),
            ("a@example.com>", "invalid address: has a `>` without a matching `<`"),
            ("<a@example.com", "invalid address: local part contains `<`"),
            ("\"quoted local\"@example.com", "invalid address: address contains whitespace or a control character"),
            ("a,b@example.com", "invalid address: local part contains `,`"),
            ("a@example", "invalid address: domain must have at least two labels (like example.com)"),
            ("a@-x.com", "invalid address: domain label starts or ends with a hyphen"),
            ("a@ex_ample.com", "invalid address: domain contains `_`"),
            ("a@[127.0.0.1]", "invalid address: domain contains `[`"),
            (".a@example.com", "invalid address: local part has a misplaced dot"),
            ("a..b@example.com", "invalid address: local part has a misplaced dot"),
            ("", "invalid address: is empty"),
            ("@example.com", "invalid address: address needs a local part and a domain around the @"),
        ];
        for (input, want) in cases {
            let err = Mailbox::parse(input).unwrap_err();
            assert_eq!(err.to_string(), *want, "{input:?}");
        }
        let long = format!("{} <a@example.com>", "n".repeat(201));
        assert_eq!(Mailbox::parse(&long).unwrap_err(), ComposeError::TooLarge { limit: "display name characters", max: 200 });
        assert!(Mailbox::parse(&format!("{} <a@example.com>", "n".repeat(200))).is_ok());
        assert!(Mailbox::parse(&format!("{}@example.com", "l".repeat(65))).is_err());
    }

    #[test]
    fn header_tokens() {
        let cases: &[(&str, &[&str])] = &[
            ("a@example.com", &["a@example.com"]),
            ("Alice Smith <a@example.com>", &["Alice", "Smith", "<a@example.com>"]),
            ("\"Smith, Alice\" <a@example.com>", &["\"Smith, Alice\"", "<a@example.com>"]),
            ("\"a  b\" <a@example.com>", &["\"a  b\"", "<a@example.com>"]),
            ("\"=?utf-8?q?x?=\" <a@example.com>", &["=?UTF-8?B?PT91dGYtOD9xP3g/PQ==?=", "<a@example.com>"]),
            ("Zoë <z@example.com>", &["=?UTF-8?B?Wm/Dqw==?=", "<z@example.com>"]),
        ];
        for (input, want) in cases {
            assert_eq!(ok(input).header_tokens(), want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{input}");
        }
    }
}
