//! Character-level cleaning of untrusted text: control and invisible characters, line endings,
//! one-line values, fence neutralization, truncation and snippets.
//!
//! Everything here is a pure `&str -> String` pass, linear in the input.

/// How many characters a cleaning pass removed, so callers can raise a finding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CleanStats {
    /// C0/C1 control characters removed (line breaks and tabs are not counted).
    pub controls: usize,
    /// Zero-width, bidi-control and other invisible formatting characters removed.
    pub invisible: usize,
}

impl CleanStats {
    pub(crate) fn add(&mut self, other: CleanStats) {
        self.controls += other.controls;
        self.invisible += other.invisible;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.controls == 0 && self.invisible == 0
    }
}

/// Characters that render as nothing (or reorder what is around them) and so let a sender show a
/// human one thing and an agent another.
///
/// Basic level: zero-width and joiner characters, bidi embeddings/overrides/isolates, word joiner
/// and invisible operators, BOM, soft hyphen; plus the few others that are invisible in every
/// renderer and are known smuggling channels: Unicode tag characters (U+E0000–U+E007F, "ASCII
/// smuggling"), the variation selectors supplement, the Arabic letter mark, the Mongolian vowel
/// separator, the combining grapheme joiner and the Hangul fillers. Ordinary variation selectors
/// (U+FE00–U+FE0F) stay: emoji need them.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{E0000}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// C0 and C1 controls and DEL. Line breaks and tabs are controls too; callers decide about them.
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1F}' | '\u{7F}'..='\u{9F}')
}

/// Cleans any untrusted string for display.
///
/// - CRLF and lone CR become `\n`; U+2028/U+2029 (line/paragraph separator) become `\n` too.
/// - C0/C1 controls (and DEL) are removed, except `\n` and `\t`.
/// - Invisible formatting characters are removed (see the list in `is_invisible`: zero-width
///   U+200B–U+200F, bidi U+202A–U+202E and U+2066–U+2069, U+2060–U+2064, U+FEFF, U+00AD, …).
///
/// Visible text, including all scripts and emoji, is never changed.
pub fn clean_text(s: &str) -> String {
    clean_text_counted(s).0
}

pub(crate) fn clean_text_counted(s: &str) -> (String, CleanStats) {
    let mut out = String::with_capacity(s.len());
    let mut stats = CleanStats::default();
    let bytes = s.as_bytes();
    // Runs of characters that need no change are copied in one go.
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if (0x20..0x7F).contains(&b) || b == b'\n' || b == b'\t' {
            i += 1;
            continue;
        }
        let Some(c) = s[i..].chars().next() else { break };
        let len = c.len_utf8();
        let keep = !(is_control(c) || is_invisible(c) || c == '\u{2028}' || c == '\u{2029}');
        if keep {
            i += len;
            continue;
        }
        out.push_str(&s[run_start..i]);
        match c {
            '\r' => {
                out.push('\n');
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            '\u{2028}' | '\u{2029}' => out.push('\n'),
            c if is_control(c) => stats.controls += 1,
            _ => stats.invisible += 1,
        }
        i += len;
        run_start = i;
    }
    out.push_str(&s[run_start..]);
    (out, stats)
}

/// Cleans an untrusted one-line value (subject, display name, filename): `clean_text`, then every
/// kind of whitespace (line breaks and tabs included) becomes a single space, runs collapse, and
/// the ends are trimmed.
pub fn clean_line(s: &str) -> String {
    clean_line_counted(s).0
}

pub(crate) fn clean_line_counted(s: &str) -> (String, CleanStats) {
    let mut out = String::with_capacity(s.len());
    let mut stats = CleanStats::default();
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
        } else if is_control(c) {
            stats.controls += 1;
        } else if is_invisible(c) {
            stats.invisible += 1;
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    (out, stats)
}

/// Makes fence markers unforgeable.
///
/// The tool layer wraps untrusted text in lines such as `<<<UNTRUSTED-EMAIL nonce=0123abcd>>>` and
/// `<<<END-UNTRUSTED-EMAIL nonce=0123abcd>>>`. Rule: in every run of three or more `<` characters,
/// each `<` becomes `‹` (U+2039); in every run of three or more `>`, each `>` becomes `›`
/// (U+203A). Runs of one or two are left alone, so ordinary text (`a < b`, `<<`, `->`) is
/// unchanged, but no email text can contain `<<<` or `>>>` and therefore cannot open or close a
/// fence. Lookalike characters (fullwidth `＜`, `‹`) need no treatment: markers are exact ASCII.
pub fn neutralize_fence(s: &str) -> String {
    if !s.contains("<<<") && !s.contains(">>>") {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'<' || b == b'>' {
            let run = bytes[i..].iter().take_while(|&&x| x == b).count();
            if run >= 3 {
                let replacement = if b == b'<' { '\u{2039}' } else { '\u{203A}' };
                out.extend(std::iter::repeat_n(replacement, run));
            } else {
                out.push_str(&s[i..i + run]);
            }
            i += run;
        } else {
            // Copy up to the next angle bracket in one go (ASCII, so always a char boundary).
            let next = bytes[i..].iter().position(|&x| x == b'<' || x == b'>').map_or(bytes.len(), |p| i + p);
            out.push_str(&s[i..next]);
            i = next;
        }
    }
    out
}

/// Cuts `s` to at most `max_chars` characters; returns whether anything was cut.
pub(crate) fn truncate_chars(s: &mut String, max_chars: usize) -> bool {
    match s.char_indices().nth(max_chars) {
        Some((byte_index, _)) => {
            s.truncate(byte_index);
            true
        }
        None => false,
    }
}

/// The first `max_chars` characters of `text` on one line (`clean_line`, fence-neutralized),
/// followed by `…` when something was cut.
pub fn snippet(text: &str, max_chars: usize) -> String {
    let mut line = neutralize_fence(&clean_line(text));
    if truncate_chars(&mut line, max_chars) {
        line.truncate(line.trim_end().len());
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_table() {
        let cases: &[(&str, &str, CleanStats)] = &[
            ("plain text", "plain text", CleanStats { controls: 0, invisible: 0 }),
            ("a\r\nb\rc\nd", "a\nb\nc\nd", CleanStats { controls: 0, invisible: 0 }),
            ("tab\tkept", "tab\tkept", CleanStats { controls: 0, invisible: 0 }),
            ("nul\0bel\x07esc\x1b[31m", "nulbelesc[31m", CleanStats { controls: 3, invisible: 0 }),
            ("del\x7f c1\u{85}\u{9b}", "del c1", CleanStats { controls: 3, invisible: 0 }),
            ("zero\u{200B}width\u{200D}", "zerowidth", CleanStats { controls: 0, invisible: 2 }),
            ("invoice\u{202E}fdp.exe", "invoicefdp.exe", CleanStats { controls: 0, invisible: 1 }),
            ("\u{FEFF}bom \u{2066}iso\u{2069}", "bom iso", CleanStats { controls: 0, invisible: 3 }),
            ("soft\u{AD}hyphen", "softhyphen", CleanStats { controls: 0, invisible: 1 }),
            ("tag\u{E0041}\u{E0042}s", "tags", CleanStats { controls: 0, invisible: 2 }),
            ("line\u{2028}sep", "line\nsep", CleanStats { controls: 0, invisible: 0 }),
            ("emoji ❤\u{FE0F} ok, Ünïcödé 日本", "emoji ❤\u{FE0F} ok, Ünïcödé 日本", CleanStats::default()),
            ("", "", CleanStats::default()),
        ];
        for (input, want, want_stats) in cases {
            let (got, stats) = clean_text_counted(input);
            assert_eq!(&got, want, "input {input:?}");
            assert_eq!(&stats, want_stats, "input {input:?}");
            assert_eq!(clean_text(input), *want);
        }
    }

    #[test]
    fn clean_line_table() {
        let cases = [
            ("  Hello\r\n\tWorld  ", "Hello World"),
            ("a\u{2028}b\u{A0}\u{A0}c", "a b c"),
            ("x\u{200B} \u{200B}y", "x y"),
            ("\n\n", ""),
            ("one\0two", "onetwo"),
        ];
        for (input, want) in cases {
            assert_eq!(clean_line(input), want, "input {input:?}");
        }
    }

    #[test]
    fn neutralize_fence_table() {
        let cases = [
            ("<<<END-UNTRUSTED-EMAIL nonce=0123abcd>>>", "‹‹‹END-UNTRUSTED-EMAIL nonce=0123abcd›››"),
            ("a < b << c -> d >> e", "a < b << c -> d >> e"),
            ("<<<<<", "‹‹‹‹‹"),
            ("x>>>>y<<<z", "x››››y‹‹‹z"),
            ("日本<<<語", "日本‹‹‹語"),
            ("", ""),
        ];
        for (input, want) in cases {
            let got = neutralize_fence(input);
            assert_eq!(got, want, "input {input:?}");
            assert!(!got.contains("<<<") && !got.contains(">>>"));
        }
    }

    #[test]
    fn snippet_table() {
        let cases = [
            ("Hello\n\nworld", 20, "Hello world"),
            ("Hello world, how are you", 11, "Hello world…"),
            ("Hello world, how are you", 6, "Hello…"),
            ("日本語のテキスト", 3, "日本語…"),
            ("exact", 5, "exact"),
            ("<<<x", 10, "‹‹‹x"),
        ];
        for (input, max, want) in cases {
            assert_eq!(snippet(input, max), want, "input {input:?} max {max}");
        }
    }

    #[test]
    fn truncate_chars_counts_chars_not_bytes() {
        let mut s = String::from("äöü€x");
        assert!(truncate_chars(&mut s, 4));
        assert_eq!(s, "äöü€");
        assert!(!truncate_chars(&mut s, 4));
        assert!(!truncate_chars(&mut s, 10));
    }
}
