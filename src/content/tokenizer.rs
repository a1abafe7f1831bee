//! A linear HTML tokenizer for hostile input, following the WHATWG tokenization rules wherever
//! they decide what is text and what is markup: tags and attributes, comments (including
//! `<!-->`, `<!--->` and `--!>`), bogus comments, doctypes, character references (the full named
//! table), RCDATA/RAWTEXT elements, the script-data escape states and `<plaintext>`.
//!
//! Tree construction is not done here (see `html`). Where the tokenizer would need the tree to
//! be exact (foreign content), it errs towards treating more as markup or raw text, so that text
//! a browser would not show cannot leak out as text: `<style>`, `<title>` and friends are raw
//! text even inside `<svg>`, and `<![CDATA[` sections are dropped.
//!
//! Every step consumes input; nothing is re-scanned except a bounded look-ahead, so the work is
//! linear in the input length.

use std::borrow::Cow;

use super::entities::ENTITIES;

/// A start tag. Names are ASCII-lowercased; attribute values have character references decoded;
/// duplicate attributes after the first are dropped (as the spec says).
#[derive(Debug, PartialEq)]
pub(crate) struct Tag<'a> {
    pub name: Cow<'a, str>,
    pub attrs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub self_closing: bool,
}

impl Tag<'_> {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_ref())
    }
}

#[derive(Debug, PartialEq)]
pub(crate) enum Token<'a> {
    /// Character data, character references already decoded.
    Text(Cow<'a, str>),
    StartTag(Tag<'a>),
    EndTag(Cow<'a, str>),
    /// An element whose content the tokenizer reads as a unit: `script`, `style`, `title`,
    /// `textarea`, `xmp`, `iframe`, `noembed`, `noframes`, `noscript`, `plaintext`. `text` is the
    /// raw content (for `title`/`textarea` it still needs `decode_character_references`). The
    /// matching end tag, if any, has been consumed.
    Raw {
        tag: Tag<'a>,
        text: &'a str,
    },
    /// The text of an HTML comment (never shown; reported as hidden content when it holds text).
    Comment(&'a str),
}

/// How the content of a raw element is tokenized.
#[derive(Clone, Copy, PartialEq)]
enum RawKind {
    Rcdata,
    Rawtext,
    Script,
    Plaintext,
}

fn raw_kind(name: &str) -> Option<RawKind> {
    match name {
        "title" | "textarea" => Some(RawKind::Rcdata),
        // `noscript` is raw text when scripting is enabled, which is how mainstream HTML
        // parsers (html5ever included) are configured; its content is never shown.
        "style" | "xmp" | "iframe" | "noembed" | "noframes" | "noscript" => Some(RawKind::Rawtext),
        "script" => Some(RawKind::Script),
        "plaintext" => Some(RawKind::Plaintext),
        _ => None,
    }
}

fn is_tag_whitespace(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0C' | b' ')
}

/// Whether `b[i..]` starts with `</name` followed by whitespace, `/` or `>` (ASCII
/// case-insensitive), i.e. an end tag that closes a raw element.
fn is_end_tag_at(b: &[u8], i: usize, name: &str) -> bool {
    let n = name.len();
    b.len() > i + 2 + n
        && b[i] == b'<'
        && b[i + 1] == b'/'
        && b[i + 2..i + 2 + n].eq_ignore_ascii_case(name.as_bytes())
        && (is_tag_whitespace(b[i + 2 + n]) || b[i + 2 + n] == b'/' || b[i + 2 + n] == b'>')
}

/// Where the content of a `<script>` starting at `from` ends (the `<` of its end tag), following
/// the script-data escaped and double-escaped states: inside `<!-- <script> ... </script>`, the
/// inner `</script>` does not end the script.
fn find_script_end(b: &[u8], from: usize) -> Option<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        Data,
        Escaped,
        EscapedDash,
        EscapedDashDash,
        Double,
        DoubleDash,
        DoubleDashDash,
    }
    let terminator = |j: usize| b.get(j).is_some_and(|&c| is_tag_whitespace(c) || c == b'/' || c == b'>');
    let word_at = |j: usize| b.len() >= j + 6 && b[j..j + 6].eq_ignore_ascii_case(b"script");
    let mut s = S::Data;
    let mut i = from;
    while i < b.len() {
        let c = b[i];
        match s {
            S::Data => {
                if c == b'<' {
                    if is_end_tag_at(b, i, "script") {
                        return Some(i);
                    }
                    if b[i + 1..].starts_with(b"!--") {
                        s = S::EscapedDashDash;
                        i += 4;
                        continue;
                    }
                }
            }
            S::Escaped | S::EscapedDash | S::EscapedDashDash => match c {
                b'-' => s = if s == S::Escaped { S::EscapedDash } else { S::EscapedDashDash },
                b'<' => {
                    if is_end_tag_at(b, i, "script") {
                        return Some(i);
                    }
                    if word_at(i + 1) && terminator(i + 7) {
                        s = S::Double;
                        i += 7;
                        continue;
                    }
                    s = S::Escaped;
                }
                b'>' if s == S::EscapedDashDash => s = S::Data,
                _ => s = S::Escaped,
            },
            S::Double | S::DoubleDash | S::DoubleDashDash => match c {
                b'-' => s = if s == S::Double { S::DoubleDash } else { S::DoubleDashDash },
                b'<' => {
                    if b.get(i + 1) == Some(&b'/') && word_at(i + 2) && terminator(i + 8) {
                        s = S::Escaped;
                        i += 8;
                        continue;
                    }
                    s = S::Double;
                }
                b'>' if s == S::DoubleDashDash => s = S::Data,
                _ => s = S::Double,
            },
        }
        i += 1;
    }
    None
}

/// Windows-1252 meanings of numeric references 0x80–0x9F (WHATWG "numeric character reference
/// end state"); 0 means "keep the code point".
const C1_REPLACEMENTS: [u32; 32] = [
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019,
    0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
];

fn lookup_entity(name: &str) -> Option<&'static str> {
    ENTITIES.binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes())).ok().map(|i| ENTITIES[i].1)
}

/// Decodes the character reference at the start of `s` (which starts with `&`). Returns the
/// replacement and the number of bytes consumed, or `None` when the `&` is literal text.
fn character_reference(s: &str, in_attribute: bool) -> Option<(Cow<'static, str>, usize)> {
    let b = s.as_bytes();
    if b.get(1) == Some(&b'#') {
        let hex = matches!(b.get(2), Some(b'x' | b'X'));
        let start = if hex { 3 } else { 2 };
        let mut value: u32 = 0;
        let mut i = start;
        while let Some(&d) = b.get(i) {
            let digit = match d {
                b'0'..=b'9' => u32::from(d - b'0'),
                b'a'..=b'f' if hex => u32::from(d - b'a' + 10),
                b'A'..=b'F' if hex => u32::from(d - b'A' + 10),
                _ => break,
            };
            value = value.saturating_mul(if hex { 16 } else { 10 }).saturating_add(digit).min(0x11_0000);
            i += 1;
        }
        if i == start {
            return None;
        }
        if b.get(i) == Some(&b';') {
            i += 1;
        }
        let value = match value {
            0 | 0xD800..=0xDFFF | 0x11_0000.. => 0xFFFD,
            0x80..=0x9F if C1_REPLACEMENTS[(value - 0x80) as usize] != 0 => C1_REPLACEMENTS[(value - 0x80) as usize],
            v => v,
        };
        let c = char::from_u32(value).unwrap_or('\u{FFFD}');
        return Some((Cow::Owned(c.to_string()), i));
    }
    let name_len = b[1..].iter().take(32).take_while(|c| c.is_ascii_alphanumeric()).count();
    if name_len == 0 {
        return None;
    }
    let name = &s[1..1 + name_len];
    if b.get(1 + name_len) == Some(&b';') {
        if let Some(value) = lookup_entity(&s[1..2 + name_len]) {
            return Some((Cow::Borrowed(value), name_len + 2));
        }
    }
    // Legacy references without a semicolon ("&amp", "&copy", "&eacute"): the longest prefix
    // that is one of them. None is longer than six characters.
    for len in (1..=name_len.min(6)).rev() {
        if let Some(value) = lookup_entity(&name[..len]) {
            let next = b.get(1 + len).copied();
            if in_attribute && next.is_some_and(|c| c == b'=' || c.is_ascii_alphanumeric()) {
                return None;
            }
            return Some((Cow::Borrowed(value), len + 1));
        }
    }
    None
}

/// Decodes every character reference in `s` (used for attribute values and RCDATA content).
pub(crate) fn decode_character_references(s: &str, in_attribute: bool) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        match character_reference(rest, in_attribute) {
            Some((value, used)) => {
                out.push_str(&value);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

pub(crate) struct Tokenizer<'a> {
    input: &'a str,
    pos: usize,
    /// `<svg>`/`<math>` start tags minus their end tags: decides whether `<![CDATA[` opens a
    /// CDATA section (foreign content) or a bogus comment. May over-count (a browser leaves
    /// foreign content on some HTML tags); that only makes us skip more.
    foreign_depth: usize,
}

impl<'a> Tokenizer<'a> {
    /// `input` must already have CR and CRLF normalized to LF.
    pub fn new(input: &'a str) -> Tokenizer<'a> {
        Tokenizer { input, pos: 0, foreign_depth: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.input.as_bytes()
    }

    /// Skips to just after the next `>` (or to the end): bogus comments, doctypes.
    fn skip_past_gt(&mut self, from: usize) {
        self.pos = self.bytes()[from..].iter().position(|&b| b == b'>').map_or(self.input.len(), |p| from + p + 1);
    }

    /// Skips a comment whose `<!--` ends just before `from`; returns its text.
    fn skip_comment(&mut self, from: usize) -> &'a str {
        let b = self.bytes();
        let input = self.input;
        // "<!-->" and "<!--->" are complete (empty) comments.
        if b.get(from) == Some(&b'>') {
            self.pos = from + 1;
            return "";
        }
        if b[from..].starts_with(b"->") {
            self.pos = from + 2;
            return "";
        }
        let mut i = from;
        while let Some(p) = b[i..].iter().position(|&c| c == b'-') {
            let j = i + p;
            if b[j..].starts_with(b"-->") {
                self.pos = j + 3;
                return &input[from..j];
            }
            if b[j..].starts_with(b"--!>") {
                self.pos = j + 4;
                return &input[from..j];
            }
            i = j + 1;
        }
        self.pos = b.len();
        &input[from..]
    }

    /// Parses a tag from `from` (just after `<` or `</`, at its first name character). Returns
    /// `None` at end of input inside the tag: the spec drops such a tag.
    fn parse_tag(&mut self, from: usize) -> Option<Tag<'a>> {
        let b = self.bytes();
        let s = self.input;
        let mut i = from;
        while i < b.len() && !is_tag_whitespace(b[i]) && b[i] != b'/' && b[i] != b'>' {
            i += 1;
        }
        let name = lowercase(&s[from..i]);
        let mut attrs: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::new();
        let mut self_closing = false;
        loop {
            while i < b.len() && is_tag_whitespace(b[i]) {
                i += 1;
            }
            match b.get(i) {
                None => return None,
                Some(b'>') => {
                    i += 1;
                    break;
                }
                Some(b'/') => {
                    i += 1;
                    if b.get(i) == Some(&b'>') {
                        self_closing = true;
                        i += 1;
                        break;
                    }
                    continue;
                }
                Some(_) => {}
            }
            // Attribute name; a leading '=' belongs to the name.
            let name_start = i;
            if b[i] == b'=' {
                i += 1;
            }
            while i < b.len() && !is_tag_whitespace(b[i]) && !matches!(b[i], b'/' | b'>' | b'=') {
                i += 1;
            }
            let attr_name = lowercase(&s[name_start..i]);
            while i < b.len() && is_tag_whitespace(b[i]) {
                i += 1;
            }
            let mut value = Cow::Borrowed("");
            if b.get(i) == Some(&b'=') {
                i += 1;
                while i < b.len() && is_tag_whitespace(b[i]) {
                    i += 1;
                }
                match b.get(i) {
                    None => return None,
                    Some(&q @ (b'"' | b'\'')) => {
                        let end = i + 1 + b[i + 1..].iter().position(|&c| c == q)?;
                        value = decode_character_references(&s[i + 1..end], true);
                        i = end + 1;
                    }
                    Some(b'>') => {}
                    Some(_) => {
                        let start = i;
                        while i < b.len() && !is_tag_whitespace(b[i]) && b[i] != b'>' {
                            i += 1;
                        }
                        value = decode_character_references(&s[start..i], true);
                    }
                }
            }
            if !attrs.iter().any(|(n, _)| *n == attr_name) {
                attrs.push((attr_name, value));
            }
        }
        self.pos = i;
        Some(Tag { name, attrs, self_closing })
    }

    /// Reads the content of a raw element whose start tag ended at `self.pos`.
    fn read_raw(&mut self, tag: Tag<'a>, kind: RawKind) -> Token<'a> {
        let b = self.bytes();
        let start = self.pos;
        let end = match kind {
            RawKind::Plaintext => None,
            RawKind::Script => find_script_end(b, start),
            RawKind::Rcdata | RawKind::Rawtext => {
                let name = tag.name.as_ref();
                let mut found = None;
                let mut i = start;
                while let Some(p) = b[i..].iter().position(|&c| c == b'<') {
                    if is_end_tag_at(b, i + p, name) {
                        found = Some(i + p);
                        break;
                    }
                    i += p + 1;
                }
                found
            }
        };
        let text = &self.input[start..end.unwrap_or(b.len())];
        match end {
            // Consume the end tag itself (its attributes, if any, are ignored). If the input ends
            // inside it, so does the document.
            Some(e) => {
                if self.parse_tag(e + 2).is_none() {
                    self.pos = b.len();
                }
            }
            None => self.pos = b.len(),
        }
        Token::Raw { tag, text }
    }
}

impl<'a> Iterator for Tokenizer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let b = self.bytes();
        loop {
            let i = self.pos;
            if i >= b.len() {
                return None;
            }
            match b[i] {
                b'<' => {
                    let next = b.get(i + 1).copied();
                    match next {
                        Some(c) if c.is_ascii_alphabetic() => {
                            let Some(tag) = self.parse_tag(i + 1) else {
                                self.pos = b.len();
                                return None;
                            };
                            if (tag.name == "svg" || tag.name == "math") && !tag.self_closing {
                                self.foreign_depth += 1;
                            }
                            if let Some(kind) = raw_kind(&tag.name) {
                                return Some(self.read_raw(tag, kind));
                            }
                            return Some(Token::StartTag(tag));
                        }
                        Some(b'/') => match b.get(i + 2).copied() {
                            Some(c) if c.is_ascii_alphabetic() => {
                                let Some(tag) = self.parse_tag(i + 2) else {
                                    self.pos = b.len();
                                    return None;
                                };
                                if tag.name == "svg" || tag.name == "math" {
                                    self.foreign_depth = self.foreign_depth.saturating_sub(1);
                                }
                                return Some(Token::EndTag(tag.name));
                            }
                            Some(b'>') => self.pos = i + 3,
                            None => {
                                self.pos = b.len();
                                return Some(Token::Text(Cow::Borrowed("</")));
                            }
                            Some(_) => self.skip_past_gt(i + 2),
                        },
                        Some(b'!') => {
                            if b[i + 2..].starts_with(b"--") {
                                let text = self.skip_comment(i + 4);
                                return Some(Token::Comment(text));
                            } else if b[i + 2..].starts_with(b"[CDATA[") && self.foreign_depth > 0 {
                                // CDATA text lives in foreign content, which we never show.
                                self.pos = b[i + 9..].windows(3).position(|w| w == b"]]>").map_or(b.len(), |p| i + 9 + p + 3);
                            } else {
                                self.skip_past_gt(i + 2);
                            }
                        }
                        Some(b'?') => self.skip_past_gt(i + 1),
                        _ => {
                            self.pos = i + 1;
                            return Some(Token::Text(Cow::Borrowed("<")));
                        }
                    }
                }
                b'&' => match character_reference(&self.input[i..], false) {
                    Some((value, used)) => {
                        self.pos = i + used;
                        return Some(Token::Text(value));
                    }
                    None => {
                        self.pos = i + 1;
                        return Some(Token::Text(Cow::Borrowed("&")));
                    }
                },
                _ => {
                    let end = b[i..].iter().position(|&c| c == b'<' || c == b'&').map_or(b.len(), |p| i + p);
                    self.pos = end;
                    return Some(Token::Text(Cow::Borrowed(&self.input[i..end])));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(html: &str) -> String {
        let mut out = String::new();
        for t in Tokenizer::new(html) {
            match t {
                Token::Text(s) => out.push_str(&s),
                Token::StartTag(t) => out.push_str(&format!("[{}]", t.name)),
                Token::EndTag(n) => out.push_str(&format!("[/{n}]")),
                Token::Raw { tag, text } => out.push_str(&format!("[{}:{}]", tag.name, text)),
                Token::Comment(_) => {}
            }
        }
        out
    }

    #[test]
    fn tokenizer_table() {
        let cases = [
            ("a<b>c</b>d", "a[b]c[/b]d"),
            ("<DIV Class=x>y</Div>", "[div]y[/div]"),
            ("1 < 2 & 3 > 2", "1 < 2 & 3 > 2"),
            ("a<!-- hidden -->b", "ab"),
            ("a<!-->b", "ab"),
            ("a<!--->b", "ab"),
            ("a<!-- x --!>b", "ab"),
            ("a<!-- -- > still comment -->b", "ab"),
            ("a<!DOCTYPE html>b", "ab"),
            ("a<?xml version='1.0'?>b", "ab"),
            ("a</ bogus>b", "ab"),
            ("a</>b", "ab"),
            ("a<![CDATA[x]]>b", "ab"),
            ("<svg><![CDATA[ > </svg> hidden ]]></svg>", "[svg][/svg]"),
            ("a<!-- unterminated", "a"),
            ("a<b unterminated", "a"),
            ("x</", "x</"),
            ("&amp;&lt;&gt;&quot;&#39;&#x41;&#65;", "&<>\"'AA"),
            ("&copy &notit; &notin; &ZeroWidthSpace;", "© ¬it; ∉ \u{200B}"),
            ("&#0;&#x110000;&#xD800;&#x80;&#150;", "\u{FFFD}\u{FFFD}\u{FFFD}€–"),
            ("&unknown; &# &#x; &", "&unknown; &# &#x; &"),
            ("<title>T &amp; <b>x</b></title>", "[title:T &amp; <b>x</b>]"),
            ("<style>p{}</STYLE >x", "[style:p{}]x"),
            ("<script>if (a<b) x='</scr'+'ipt>';</script>y", "[script:if (a<b) x='</scr'+'ipt>';]y"),
            ("<script><!--<script>x</script>y</script>z", "[script:<!--<script>x</script>y]z"),
            ("<script><!-- x --></script>y", "[script:<!-- x -->]y"),
            ("<script>never closed", "[script:never closed]"),
            ("<textarea><b>&amp;</b></textarea>", "[textarea:<b>&amp;</b>]"),
            ("<plaintext></plaintext><b>", "[plaintext:</plaintext><b>]"),
            ("<noscript><p>x</p></noscript>", "[noscript:<p>x</p>]"),
            ("<iframe src=x>fallback</iframe>z", "[iframe:fallback]z"),
            ("<script/>after</script>z", "[script:after]z"),
        ];
        for (input, want) in cases {
            assert_eq!(text_of(input), want, "input {input:?}");
        }
    }

    #[test]
    fn entity_table_is_sorted_for_binary_search() {
        assert_eq!(ENTITIES.len(), 2231);
        assert!(ENTITIES.windows(2).all(|w| w[0].0.as_bytes() < w[1].0.as_bytes()));
        assert_eq!(lookup_entity("amp;"), Some("&"));
        assert_eq!(lookup_entity("nbsp"), Some("\u{A0}"));
        assert_eq!(lookup_entity("nbs"), None);
    }

    #[test]
    fn attributes() {
        let mut t =
            Tokenizer::new(r#"<a HREF="https://x/?a=1&amp;b=2&copy=3" title='q"uote' data-x=un&amp;quoted hidden id=1 id=2 =odd/>"#);
        let Some(Token::StartTag(tag)) = t.next() else { panic!("expected a start tag") };
        assert_eq!(tag.name, "a");
        assert_eq!(tag.attr("href"), Some("https://x/?a=1&b=2&copy=3"));
        assert_eq!(tag.attr("title"), Some("q\"uote"));
        assert_eq!(tag.attr("data-x"), Some("un&quoted"));
        assert_eq!(tag.attr("hidden"), Some(""));
        assert_eq!(tag.attr("id"), Some("1"));
        assert_eq!(tag.attr("=odd"), Some(""));
        assert!(tag.self_closing);
        assert_eq!(t.next(), None);

        let mut t = Tokenizer::new("<img alt='a>b' src=x>after");
        let Some(Token::StartTag(tag)) = t.next() else { panic!("expected a start tag") };
        assert_eq!(tag.attr("alt"), Some("a>b"));
        assert_eq!(t.next(), Some(Token::Text(Cow::Borrowed("after"))));
    }
}
