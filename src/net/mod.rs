//! What IMAP and SMTP share: the guard adapter below TLS that enforces deadlines, byte budgets
//! and cancellation on the raw socket, and the rule that makes server text safe to show.

pub mod guard;

/// Longest server text kept in an error, in characters.
pub(crate) const MAX_SERVER_TEXT_CHARS: usize = 200;

/// Server text made safe to show: control characters (including bidi controls) removed,
/// whitespace runs collapsed, at most [`MAX_SERVER_TEXT_CHARS`] characters.
pub(crate) fn sanitize(text: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_whitespace() { ' ' } else { c };
        if c.is_control() || is_format_char(c) || (c == ' ' && last_space) {
            continue;
        }
        if count == MAX_SERVER_TEXT_CHARS {
            break;
        }
        out.push(c);
        count += 1;
        last_space = c == ' ';
    }
    out.trim_end().to_string()
}

/// Bidi overrides, isolates and zero-width characters that can disguise text.
fn is_format_char(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
