//! What goes on the wire: the envelope (validated, deduplicated addresses) and the message
//! (CRLF line ends, dot-stuffed, bounded), both checked before any connection is made.

use super::error::SmtpError;
use crate::compose;

/// Longest line of a message (RFC 5321 §4.5.3.1.6), CRLF excluded.
const MAX_LINE: usize = 998;

/// Validated sender and recipients.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub from: String,
    /// In the caller's order, duplicates (ignoring ASCII case) removed.
    pub recipients: Vec<String>,
    /// Some address is not ASCII: the server must offer SMTPUTF8.
    pub utf8: bool,
}

/// Checks the sender and every recipient by the same address rules as `compose` (so no CR, LF,
/// space or bracket can reach an SMTP command), removes duplicates, and applies the cap.
pub(crate) fn envelope(from: &str, recipients: &[String], max_recipients: usize) -> Result<Envelope, SmtpError> {
    compose::validate_address("sender", from).map_err(|e| SmtpError::Invalid(e.to_string()))?;
    if recipients.is_empty() {
        return Err(SmtpError::Invalid("no recipients".into()));
    }
    let mut unique: Vec<String> = Vec::with_capacity(recipients.len());
    for r in recipients {
        compose::validate_address("recipient", r).map_err(|e| SmtpError::Invalid(e.to_string()))?;
        if !unique.iter().any(|u| u.eq_ignore_ascii_case(r)) {
            unique.push(r.clone());
        }
    }
    if unique.len() > max_recipients {
        return Err(SmtpError::TooLarge { limit: "limits.max_recipients", max: max_recipients as u64 });
    }
    let utf8 = !from.is_ascii() || unique.iter().any(|r| !r.is_ascii());
    Ok(Envelope { from: from.to_string(), recipients: unique, utf8 })
}

/// A message ready for DATA.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Prepared {
    /// CRLF line ends, dot-stuffed, ending with CRLF; the terminating `.` CRLF is not included.
    pub wire: Vec<u8>,
    /// Bytes after CRLF normalization, before dot-stuffing: what `SIZE=` declares.
    pub size: usize,
    /// Some byte is not ASCII: BODY=8BITMIME is needed.
    pub eight_bit: bool,
    /// The header block is not ASCII (RFC 6532 headers): SMTPUTF8 is needed.
    pub utf8_headers: bool,
}

/// Normalizes line ends (CRLF, bare LF and bare CR all become CRLF), adds a final CRLF when
/// missing, and dot-stuffs (RFC 5321 §4.5.2). Refuses an empty message, NUL bytes, lines over
/// 998 bytes, and more than `max_bytes` after normalization.
pub(crate) fn prepare(message: &[u8], max_bytes: u64) -> Result<Prepared, SmtpError> {
    if message.is_empty() {
        return Err(SmtpError::Invalid("the message is empty".into()));
    }
    if message.contains(&0) {
        return Err(SmtpError::Invalid("the message contains a NUL byte".into()));
    }
    // Normalized size first, without allocating: every line break becomes two bytes.
    let mut size = 0usize;
    let mut i = 0;
    while i < message.len() {
        match message[i] {
            b'\r' if message.get(i + 1) == Some(&b'\n') => {
                size += 2;
                i += 1;
            }
            b'\r' | b'\n' => size += 2,
            _ => size += 1,
        }
        i += 1;
    }
    if !matches!(message.last(), Some(b'\n' | b'\r')) {
        size += 2;
    }
    if size as u64 > max_bytes {
        return Err(SmtpError::TooLarge { limit: "limits.max_send_bytes", max: max_bytes });
    }
    let mut wire = Vec::with_capacity(size + size / 64 + 8);
    let mut line_start = true;
    let mut line_len = 0usize;
    let mut line_no = 1usize;
    let mut i = 0;
    while i < message.len() {
        let b = message[i];
        if b == b'\r' || b == b'\n' {
            if b == b'\r' && message.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            wire.extend_from_slice(b"\r\n");
            line_start = true;
            line_len = 0;
            line_no += 1;
        } else {
            if line_start && b == b'.' {
                wire.push(b'.');
            }
            wire.push(b);
            line_start = false;
            line_len += 1;
            if line_len > MAX_LINE {
                return Err(SmtpError::Invalid(format!("line {line_no} of the message is longer than 998 bytes")));
            }
        }
        i += 1;
    }
    if !line_start {
        wire.extend_from_slice(b"\r\n");
    }
    let header_end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(wire.len());
    Ok(Prepared { size, eight_bit: !message.is_ascii(), utf8_headers: !wire[..header_end].is_ascii(), wire })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn envelope_rules() {
        let e = envelope("me@example.com", &s(&["a@x.org", "A@X.org", "b@x.org"]), 5).unwrap();
        assert_eq!(e, Envelope { from: "me@example.com".into(), recipients: s(&["a@x.org", "b@x.org"]), utf8: false });
        assert!(envelope("me@example.com", &s(&["δοκιμή@x.org"]), 5).unwrap().utf8);
        let cases: Vec<(&str, Vec<String>, &str)> = vec![
            ("me@example.com", vec![], "no recipients"),
            ("me@example.com", s(&["a@x.org>\r\nRCPT TO:<evil@x.org"]), "invalid recipient: contains a line break"),
            ("me@example.com", s(&["a@x.org> NOTIFY=NEVER"]), "invalid recipient: address contains whitespace or a control character"),
            ("me@example.com", s(&["<a@x.org>"]), "invalid recipient: local part contains `<`"),
            ("me@example.com\r\nRSET", s(&["a@x.org"]), "invalid sender: contains a line break"),
            ("", s(&["a@x.org"]), "invalid sender: is empty"),
        ];
        for (from, rcpts, want) in cases {
            assert_eq!(envelope(from, &rcpts, 5).unwrap_err().to_string(), want, "{from:?} {rcpts:?}");
        }
        let many: Vec<String> = (0..4).map(|i| format!("r{i}@x.org")).collect();
        assert_eq!(envelope("me@example.com", &many, 3).unwrap_err().to_string(), "too many recipients: at most 3 (limits.max_recipients)");
    }

    #[test]
    fn normalization_and_dot_stuffing() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"a\r\nb\r\n", b"a\r\nb\r\n"),
            (b"a\nb", b"a\r\nb\r\n"),
            (b"a\rb\r", b"a\r\nb\r\n"),
            (b"S: x\r\n\r\n.\r\n..\r\n.x\r\nx.\r\n", b"S: x\r\n\r\n..\r\n...\r\n..x\r\nx.\r\n"),
            (b".", b"..\r\n"),
            (b"\n.\n", b"\r\n..\r\n"),
        ];
        for (input, want) in cases {
            let p = prepare(input, 1 << 20).unwrap();
            assert_eq!(p.wire, *want, "{:?}", String::from_utf8_lossy(input));
        }
        let p = prepare(b"S: x\n\n.\n", 1 << 20).unwrap();
        assert_eq!((p.size, p.eight_bit, p.utf8_headers), (11, false, false));
        let p = prepare("Subject: x\r\n\r\nbody é\r\n".as_bytes(), 1 << 20).unwrap();
        assert_eq!((p.eight_bit, p.utf8_headers), (true, false));
        let p = prepare("To: δ@x.org\r\n\r\nbody\r\n".as_bytes(), 1 << 20).unwrap();
        assert_eq!((p.eight_bit, p.utf8_headers), (true, true));
    }

    #[test]
    fn refusals() {
        assert_eq!(prepare(b"", 100).unwrap_err().to_string(), "the message is empty");
        assert_eq!(prepare(b"a\0b", 100).unwrap_err().to_string(), "the message contains a NUL byte");
        let long = format!("S: x\r\n\r\n{}\r\n", "y".repeat(999));
        assert_eq!(prepare(long.as_bytes(), 1 << 20).unwrap_err().to_string(), "line 3 of the message is longer than 998 bytes");
        assert!(prepare(format!("{}\r\n", "y".repeat(998)).as_bytes(), 1 << 20).is_ok());
        // The limit applies to the normalized size: 50 bare LFs become 100 bytes.
        assert!(prepare(&[b'\n'; 50], 100).is_ok());
        assert_eq!(prepare(&[b'\n'; 51], 100).unwrap_err().to_string(), "message is larger than limits.max_send_bytes (100 bytes)");
        assert_eq!(prepare(b"abc", 4).unwrap_err().code(), "limit_exceeded");
        assert!(prepare(b"abc", 5).is_ok());
    }
}
