//! The encoders a message needs, by hand: base64, quoted-printable, RFC 2047 encoded words,
//! RFC 2231 parameters, header folding and the RFC 5322 date.
//!
//! Every function here returns ASCII (7-bit) text except where it says otherwise, so nothing a
//! caller passes can reach the wire as a raw line break.

use crate::content::date::civil_from_days;

/// Longest header line we aim for (RFC 5322 §2.1.1 "SHOULD"), CRLF excluded.
pub(crate) const FOLD_AT: usize = 78;
/// Longest line anywhere in a message (RFC 5322 §2.1.1 "MUST"), CRLF excluded.
pub(crate) const MAX_LINE: usize = 998;
/// Base64 and quoted-printable line length (RFC 2045).
const ENCODED_LINE: usize = 76;
/// Bytes of UTF-8 per RFC 2047 "B" word: 42 bytes are 56 base64 characters, and with
/// `=?UTF-8?B?` and `?=` the word is 68 characters, so even `Subject: ` and one word fit in 78.
const WORD_BYTES: usize = 42;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, on one line.
pub(crate) fn base64(data: &[u8]) -> String {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    base64_into(data, &mut out);
    // Base64 output is ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends standard base64 of `data` to `out`. For a zeroizing buffer, reserve the capacity
/// first (`len.div_ceil(3) * 4`) so that no reallocation leaves a copy behind.
pub(crate) fn base64_into(data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        out.push(B64[(n >> 18) as usize & 63]);
        out.push(B64[(n >> 12) as usize & 63]);
        out.push(if chunk.len() > 1 { B64[(n >> 6) as usize & 63] } else { b'=' });
        out.push(if chunk.len() > 2 { B64[n as usize & 63] } else { b'=' });
    }
}

/// Base64 in lines of 76 characters, each ending in CRLF.
pub(crate) fn base64_lines(data: &[u8]) -> Vec<u8> {
    let flat = base64(data);
    let mut out = Vec::with_capacity(flat.len() + flat.len() / ENCODED_LINE * 2 + 2);
    for line in flat.as_bytes().chunks(ENCODED_LINE) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Quoted-printable (RFC 2045 §6.7) of text whose line breaks are CRLF: the breaks stay hard
/// breaks, every line is at most 76 characters (soft breaks `=` added), space and tab are
/// encoded at the end of a line, and everything but printable ASCII is `=XX`. Text that does
/// not end with a line break ends with a soft break, so the CRLF that must end the message
/// decodes to nothing and the text comes back exactly.
pub(crate) fn quoted_printable(text: &[u8]) -> Vec<u8> {
    let soft_end = !text.is_empty() && !text.ends_with(b"\r\n");
    let mut out = Vec::with_capacity(text.len() * 3 / 2);
    let mut lines = split_crlf(text).peekable();
    while let Some(line) = lines.next() {
        let mut col = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let literal = matches!(b, 33..=60 | 62..=126) || ((b == b' ' || b == b'\t') && !last);
            let width = if literal { 1 } else { 3 };
            // Keep room for the soft break's "=" (76 including it), unless this is the last
            // character of the line, which may use the 76th column itself.
            let room = if last && !soft_end { ENCODED_LINE } else { ENCODED_LINE - 1 };
            if col + width > room {
                out.extend_from_slice(b"=\r\n");
                col = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(format!("={b:02X}").as_bytes());
            }
            col += width;
        }
        if lines.peek().is_some() {
            out.extend_from_slice(b"\r\n");
        }
    }
    if soft_end {
        out.extend_from_slice(b"=\r\n");
    }
    out
}

/// Splits at CRLF (the input has been normalized); the pieces exclude the CRLF.
fn split_crlf(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.windows(2).position(|w| w == b"\r\n") {
            Some(p) => {
                rest = Some(&r[p + 2..]);
                Some(&r[..p])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Text with every line break (CRLF, bare LF, bare CR) turned into CRLF.
pub(crate) fn crlf(text: &str) -> Vec<u8> {
    crlf_bytes(text.as_bytes())
}

/// Bytes with every line break (CRLF, bare LF, bare CR) turned into CRLF.
pub(crate) fn crlf_bytes(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 32);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if b.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// RFC 2047 "B" encoded words for `text`, split at character boundaries so that each word
/// decodes on its own (a multi-byte character is never split across two words).
pub(crate) fn encoded_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        let next = i + c.len_utf8();
        if next - start > WORD_BYTES {
            words.push(format!("=?UTF-8?B?{}?=", base64(&text.as_bytes()[start..end])));
            start = end;
        }
        end = next;
    }
    if end > start || words.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", base64(&text.as_bytes()[start..end])));
    }
    words
}

/// Whether `c` may stand in an RFC 5322 atom (atext).
pub(crate) fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// An RFC 2045 token character (for MIME types and parameter names).
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?=".contains(c)
}

/// `s` as an RFC 5322 quoted-string (the caller has refused CR, LF and NUL).
pub(crate) fn quoted_string(s: &str) -> String {
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

/// A MIME parameter `name=value`: a quoted string when the value is printable ASCII and short,
/// else RFC 2231 `name*0*=UTF-8''...; name*1*=...` percent-encoded pieces. Returns the pieces,
/// each to be written after "; " (the caller folds between them).
pub(crate) fn mime_param(name: &str, value: &str) -> Vec<String> {
    let plain = value.chars().all(|c| c == ' ' || c.is_ascii_graphic()) && !value.contains("=?");
    if plain && value.len() <= 60 {
        return vec![format!("{name}={}", quoted_string(value))];
    }
    let mut encoded = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let first = "UTF-8''";
    if encoded.len() + first.len() <= 60 {
        return vec![format!("{name}*={first}{encoded}")];
    }
    // Continuations of at most 60 characters, never splitting a %XX escape.
    let bytes = encoded.as_bytes();
    let mut pieces = Vec::new();
    let mut at = 0;
    let mut n = 0;
    while at < bytes.len() {
        let mut end = (at + 60).min(bytes.len());
        while end < bytes.len() && end > at + 2 && (bytes[end - 1] == b'%' || bytes[end - 2] == b'%') {
            end -= 1;
        }
        let prefix = if n == 0 { first } else { "" };
        pieces.push(format!("{name}*{n}*={prefix}{}", &encoded[at..end]));
        at = end;
        n += 1;
    }
    pieces
}

/// One header field, `Name: ` followed by `tokens` joined with single spaces, folded before a
/// token when the line would pass 78 characters. Tokens contain no whitespace-only pieces and
/// no line breaks; a token longer than a line gets a line of its own.
pub(crate) fn fold_tokens(name: &str, tokens: &[String]) -> Vec<u8> {
    let mut out = String::with_capacity(name.len() + 2 + tokens.iter().map(|t| t.len() + 1).sum::<usize>());
    out.push_str(name);
    out.push(':');
    let mut col = out.len();
    for (i, t) in tokens.iter().enumerate() {
        let width = t.chars().count();
        if i > 0 && col + 1 + width > FOLD_AT {
            out.push_str("\r\n ");
            col = 1;
        } else {
            out.push(' ');
            col += 1;
        }
        out.push_str(t);
        col += width;
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// One unstructured header field with `value` kept byte for byte: line breaks are inserted
/// only before a space or tab that follows a non-blank character, so unfolding (removing the
/// CRLFs) gives back `value` exactly. Returns `None` when some line would still exceed
/// [`MAX_LINE`] (a very long run without whitespace): the caller then uses encoded words.
pub(crate) fn fold_unstructured(name: &str, value: &str) -> Option<Vec<u8>> {
    let mut out = String::with_capacity(name.len() + value.len() + 8);
    out.push_str(name);
    out.push_str(": ");
    let chars: Vec<char> = value.chars().collect();
    let blank = |c: char| c == ' ' || c == '\t';
    let fold_point = |j: usize| blank(chars[j]) && !blank(chars[j - 1]);
    let mut col = name.chars().count() + 2;
    let mut i = 0;
    while i < chars.len() {
        // The next piece: this character and everything up to the next fold opportunity.
        let mut j = i + 1;
        while j < chars.len() && !fold_point(j) {
            j += 1;
        }
        let piece: String = chars[i..j].iter().collect();
        let width = j - i;
        if i > 0 && col + width > FOLD_AT {
            out.push_str("\r\n");
            col = 0;
        }
        out.push_str(&piece);
        col += width;
        if col > MAX_LINE {
            return None;
        }
        i = j;
    }
    out.push_str("\r\n");
    Some(out.into_bytes())
}

/// RFC 5322 date in UTC, e.g. `Sat, 22 Nov 2026 01:14:32 +0000`. Years outside 1900..=9999
/// are clamped to that range (a date header must have four digits).
pub(crate) fn rfc5322_date(epoch: i64) -> String {
    const MIN: i64 = -2_208_988_800; // 1900-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let t = epoch.clamp(MIN, MAX);
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    let month = MONTHS[(m - 1) as usize];
    format!("{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} +0000", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        // RFC 4648 §10.
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (raw, want) in cases {
            assert_eq!(base64(raw.as_bytes()), *want);
        }
        let lines = base64_lines(&[0xffu8; 100]);
        let text = String::from_utf8(lines).unwrap();
        let v: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(v.iter().map(|l| l.len()).collect::<Vec<_>>(), vec![76, 60, 0]);
    }

    #[test]
    fn quoted_printable_rules() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain\r\n", "plain\r\n"),
            (b"no final break", "no final break=\r\n"),
            (b"a=b\r\n", "a=3Db\r\n"),
            (b"trailing \r\nnext\t", "trailing=20\r\nnext=09=\r\n"),
            ("Grüße\r\n".as_bytes(), "Gr=C3=BC=C3=9Fe\r\n"),
            (b".\r\n..\r\n", ".\r\n..\r\n"),
        ];
        for (raw, want) in cases {
            assert_eq!(String::from_utf8(quoted_printable(raw)).unwrap(), *want, "{raw:?}");
        }
        let long = "é".repeat(60) + "\r\n";
        let qp = String::from_utf8(quoted_printable(long.as_bytes())).unwrap();
        for line in qp.split("\r\n") {
            assert!(line.len() <= 76, "{line}");
            // Soft breaks never split an escape.
            assert!(line.trim_end_matches('=').split('=').skip(1).all(|e| e.len() >= 2), "{line}");
        }
        assert_eq!(qp.replace("=\r\n", ""), "=C3=A9".repeat(60) + "\r\n");
        let exact = "x".repeat(76) + "\r\n";
        assert_eq!(String::from_utf8(quoted_printable(exact.as_bytes())).unwrap(), exact);
        let over = "x".repeat(77) + "\r\n";
        assert_eq!(String::from_utf8(quoted_printable(over.as_bytes())).unwrap(), format!("{}=\r\nxx\r\n", "x".repeat(75)));
        let soft = "x".repeat(76);
        assert_eq!(String::from_utf8(quoted_printable(soft.as_bytes())).unwrap(), format!("{}=\r\nx=\r\n", "x".repeat(75)));
    }

    #[test]
    fn crlf_normalization() {
        assert_eq!(crlf("a\nb\r\nc\rd\r"), b"a\r\nb\r\nc\r\nd\r\n".to_vec());
        assert_eq!(crlf("\r\r\n"), b"\r\n\r\n".to_vec());
    }

    #[test]
    fn encoded_words_split_at_characters() {
        let text = "東京".repeat(20);
        let words = encoded_words(&text);
        assert!(words.len() > 1);
        for w in &words {
            assert!(w.len() <= 68, "{w}");
        }
        assert_eq!(encoded_words(""), vec!["=?UTF-8?B??=".to_string()]);
        assert_eq!(encoded_words("é"), vec!["=?UTF-8?B?w6k=?=".to_string()]);
        assert!(encoded_words(&"x".repeat(100)).iter().all(|w| w.len() <= 68));
    }

    #[test]
    fn rfc2231_params() {
        assert_eq!(mime_param("filename", "report.pdf"), vec!["filename=\"report.pdf\"".to_string()]);
        assert_eq!(mime_param("filename", "a \"b\".txt"), vec!["filename=\"a \\\"b\\\".txt\"".to_string()]);
        assert_eq!(mime_param("filename", "Prüf.txt"), vec!["filename*=UTF-8''Pr%C3%BCf.txt".to_string()]);
        let long = mime_param("filename", &"ü".repeat(40));
        assert!(long.len() > 1);
        assert!(long[0].starts_with("filename*0*=UTF-8''%C3%BC"));
        assert!(long[1].starts_with("filename*1*=%"));
        let joined: String = long.iter().map(|p| p.split_once("*=").unwrap().1.trim_start_matches("UTF-8''")).collect();
        assert_eq!(joined, "%C3%BC".repeat(40));
    }

    #[test]
    fn folding_keeps_values_exact() {
        let value = "word ".repeat(40) + "end";
        let folded = String::from_utf8(fold_unstructured("Subject", &value).unwrap()).unwrap();
        assert!(folded.split("\r\n").all(|l| l.len() <= 78), "{folded}");
        assert_eq!(folded.trim_end_matches("\r\n").replace("\r\n", ""), format!("Subject: {value}"));
        // Runs of blanks: never folded after a blank, so no line ends in whitespace.
        let spaced = format!("{}   {}", "a".repeat(70), "b".repeat(20));
        let folded = String::from_utf8(fold_unstructured("Subject", &spaced).unwrap()).unwrap();
        assert!(folded.split("\r\n").all(|l| !l.ends_with(' ')), "{folded:?}");
        assert_eq!(folded.trim_end_matches("\r\n").replace("\r\n", ""), format!("Subject: {spaced}"));
        assert!(fold_unstructured("Subject", &"x".repeat(1200)).is_none());
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(1_795_310_072), "Sun, 22 Nov 2026 01:14:32 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(rfc5322_date(i64::MIN), "Mon, 01 Jan 1900 00:00:00 +0000");
        assert_eq!(rfc5322_date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 +0000");
    }
}
