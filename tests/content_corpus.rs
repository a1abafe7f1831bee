//! The content firewall against its corpus: tests/corpus/*.eml (one hostile trick each) and
//! tests/corpus/benign/*.eml (real-world-shaped mail that must come through intact). Each
//! message has a `.expect` sidecar:
//!
//! ```text
//! # comment
//! context: own_domain=example.org trusted=paypal.com,bank.example authserv=mx.example.org
//! finding: hidden_content warning      (must be present: code and severity)
//! canary: CANARY-...                   (must appear nowhere in the output)
//! visible: text that must remain        (must appear in the text, and in the HTML if asked)
//! text_source: text/html               (optional)
//! html: yes                            (render with include_html)
//! ```
//!
//! Values may use `\n`, `\t`, `\\` and `\u{hex}` escapes. Rules: every expected finding is
//! present; no danger or warning finding is present that was not expected; canaries are
//! absent from text, HTML, headers, links, attachments and findings; visible strings are
//! present. Benign messages additionally never get `mixed_script` or `confusable_domain`, nor
//! `hidden_content` above `info`. A seeded property test checks that arbitrary bytes never
//! panic.

use std::path::{Path, PathBuf};

use mailmoat::content::{render_with, Context, Finding, Limits, RenderOptions, Rendered, Severity};

#[derive(Debug, Default)]
struct Expect {
    ctx: Context,
    findings: Vec<(String, String)>,
    canaries: Vec<String>,
    visible: Vec<String>,
    text_source: Option<String>,
    html: bool,
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('u') if chars.peek() == Some(&'{') => {
                chars.next();
                let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                let cp = u32::from_str_radix(&hex, 16).unwrap_or_else(|_| panic!("bad escape \\u{{{hex}}}"));
                out.push(char::from_u32(cp).unwrap_or_else(|| panic!("bad code point {hex}")));
            }
            other => panic!("unknown escape \\{other:?} in {s:?}"),
        }
    }
    out
}

fn parse_expect(path: &Path) -> Expect {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut e = Expect { ctx: Context { own_domain: "example.org".to_owned(), ..Context::default() }, ..Expect::default() };
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once(": ").unwrap_or_else(|| panic!("{}: bad line {line:?}", path.display()));
        let value = unescape(value);
        match key {
            "context" => {
                for kv in value.split_whitespace() {
                    match kv.split_once('=') {
                        Some(("own_domain", v)) => e.ctx.own_domain = v.to_owned(),
                        Some(("trusted", v)) => e.ctx.trusted_domains = v.split(',').map(str::to_owned).collect(),
                        Some(("authserv", v)) => e.ctx.trusted_authserv_id = Some(v.to_owned()),
                        _ => panic!("{}: bad context {kv:?}", path.display()),
                    }
                }
            }
            "finding" => {
                let (code, severity) = value.split_once(' ').unwrap_or_else(|| panic!("{}: bad finding {value:?}", path.display()));
                e.findings.push((code.to_owned(), severity.to_owned()));
            }
            "canary" => e.canaries.push(value),
            "visible" => e.visible.push(value),
            "text_source" => e.text_source = Some(value),
            "html" => e.html = value == "yes",
            _ => panic!("{}: unknown key {key:?}", path.display()),
        }
    }
    e
}

/// Every string of the output an agent could see.
fn output_strings(r: &Rendered) -> Vec<String> {
    let mut v = vec![r.text.clone()];
    v.extend(r.html.clone());
    let h = &r.headers;
    for list in [&h.from, &h.sender, &h.to, &h.cc, &h.bcc, &h.reply_to] {
        for a in list {
            v.extend(a.name.clone());
            v.push(a.email.clone());
        }
    }
    v.extend([h.date.clone(), h.subject.clone(), h.message_id.clone(), h.list_id.clone(), h.content_type.clone()].into_iter().flatten());
    v.extend(h.in_reply_to.iter().chain(&h.references).cloned());
    for (n, value) in &r.headers_raw {
        v.push(n.clone());
        v.push(value.clone());
    }
    for l in &r.links {
        v.extend([l.text.clone(), l.target.clone(), l.domain.clone()]);
    }
    for a in &r.attachments {
        v.extend(a.filename.clone());
        v.push(a.content_type.clone());
        v.extend(a.content_id.clone());
    }
    for f in &r.findings {
        v.push(f.location.clone());
        v.push(f.detail.clone());
    }
    v.extend([r.auth.dkim.clone(), r.auth.spf.clone(), r.auth.dmarc.clone()].into_iter().flatten());
    v.extend([r.provenance.list_id.clone(), r.provenance.precedence.clone(), r.provenance.auto_submitted.clone()].into_iter().flatten());
    v
}

/// The text of sanitized HTML (our own serializer's output: no comments, no raw text).
fn html_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

fn collapse(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    // Tags around punctuation leave a space before it ("<b>x</b>." becomes "x .").
    joined.replace(" .", ".").replace(" ,", ",").replace(" !", "!").replace(" ?", "?").replace(" :", ":")
}

fn show(findings: &[Finding]) -> String {
    findings.iter().map(|f| format!("\n    {} {} @{}: {}", f.code, f.severity.as_str(), f.location, f.detail)).collect()
}

fn messages(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    v.sort();
    v
}

/// Checks one message; returns the problems found.
fn check(path: &Path, benign: bool) -> Vec<String> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let e = parse_expect(&path.with_extension("expect"));
    let opts =
        RenderOptions { include_html: e.html, include_headers: vec!["Subject".to_owned(), "Reply-To".to_owned(), "List-Id".to_owned()] };
    let r = render_with(&raw, false, &Limits::default(), &e.ctx, &opts);
    let mut problems = Vec::new();
    for (code, severity) in &e.findings {
        if !r.findings.iter().any(|f| f.code == code && f.severity.as_str() == severity) {
            problems.push(format!("missing finding {code} {severity}"));
        }
    }
    for f in &r.findings {
        let expected = e.findings.iter().any(|(c, s)| c == f.code && s == f.severity.as_str());
        if f.severity >= Severity::Warning && !expected {
            problems.push(format!("unexpected finding {} {} @{}: {}", f.code, f.severity.as_str(), f.location, f.detail));
        }
        if benign
            && (f.code == "mixed_script" || f.code == "confusable_domain" || (f.code == "hidden_content" && f.severity > Severity::Info))
        {
            problems.push(format!("benign message got {} {}", f.code, f.severity.as_str()));
        }
    }
    let outputs = output_strings(&r);
    for canary in &e.canaries {
        if let Some(s) = outputs.iter().find(|s| s.contains(canary.as_str())) {
            problems.push(format!("canary {canary:?} leaked in {s:?}"));
        }
    }
    for visible in &e.visible {
        if !r.text.contains(visible.as_str()) {
            problems.push(format!("visible text {visible:?} missing from the text"));
        }
        if let Some(html) = &r.html {
            // Compare with the HTML's text: tags removed, entities decoded, spaces collapsed.
            let plain_cells = !visible.contains(" | ") && !visible.contains(" (http") && !visible.contains('\n');
            if plain_cells && !collapse(&html_text(html)).contains(&collapse(visible)) {
                problems.push(format!("visible text {visible:?} missing from the HTML"));
            }
        }
    }
    if let Some(want) = &e.text_source {
        if r.text_source != Some(want.as_str()) {
            problems.push(format!("text_source {:?}, expected {want}", r.text_source));
        }
    }
    if e.html && r.text_source == Some("text/html") && r.html.is_none() {
        problems.push("include_html gave no HTML".to_owned());
    }
    if !problems.is_empty() {
        problems.push(format!("findings were:{}\n  text was: {:?}", show(&r.findings), r.text));
    }
    problems
}

fn run(dir: &str, benign: bool, min: usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let paths = messages(&dir);
    assert!(paths.len() >= min, "expected at least {min} messages in {}, found {}", dir.display(), paths.len());
    let mut failures = Vec::new();
    for p in &paths {
        let problems = check(p, benign);
        if !problems.is_empty() {
            failures.push(format!("{}:\n  {}", p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(), problems.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} corpus messages failed:\n{}", failures.len(), paths.len(), failures.join("\n"));
}

#[test]
fn hostile_corpus() {
    run("tests/corpus", false, 60);
}

#[test]
fn benign_corpus() {
    run("tests/corpus/benign", true, 20);
}

#[test]
fn every_message_has_an_expectation_with_a_canary_or_visible_text() {
    for dir in ["tests/corpus", "tests/corpus/benign"] {
        for p in messages(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)) {
            let e = parse_expect(&p.with_extension("expect"));
            if dir == "tests/corpus" {
                assert!(!e.canaries.is_empty(), "{} has no canary", p.display());
            }
            assert!(!e.visible.is_empty(), "{} lists no visible text", p.display());
        }
    }
}

/// A tiny xorshift PRNG so the property test is deterministic.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn arbitrary_and_mutated_corpus_bytes_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let seeds: Vec<Vec<u8>> =
        messages(&root).into_iter().chain(messages(&root.join("benign"))).filter_map(|p| std::fs::read(p).ok()).collect();
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let limits = Limits { max_parts: 64, max_body_chars: 5_000, ..Limits::default() };
    let ctx = Context {
        own_domain: "example.org".to_owned(),
        trusted_domains: vec!["paypal.com".to_owned()],
        trusted_authserv_id: Some("mx.example.org".to_owned()),
    };
    let opts = RenderOptions { include_html: true, include_headers: vec!["subject".to_owned(), "received".to_owned()] };
    let alphabet: &[u8] = b"<>=?-\r\n:;\"'&#/\\ {}()[].,@%!*abcXYZ019\x00\xc3\xa9\xff\xe2\x80\xae\xf3\xa0\x81";
    for round in 0..3_000 {
        let input: Vec<u8> = if round % 3 == 0 || seeds.is_empty() {
            (0..rng.below(800)).map(|_| alphabet[rng.below(alphabet.len())]).collect()
        } else {
            let mut m = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(16) {
                if m.is_empty() {
                    break;
                }
                let at = rng.below(m.len());
                match rng.below(5) {
                    0 => m[at] = alphabet[rng.below(alphabet.len())],
                    1 => m.truncate(at),
                    2 => {
                        let end = (at + rng.below(128)).min(m.len());
                        let chunk = m[at..end].to_vec();
                        m.splice(at..at, chunk);
                    }
                    3 => {
                        let end = (at + rng.below(64)).min(m.len());
                        m.drain(at..end);
                    }
                    _ => m.insert(at, alphabet[rng.below(alphabet.len())]),
                }
            }
            m
        };
        let r = render_with(&input, round % 2 == 0, &limits, &ctx, &opts);
        assert!(r.text.chars().count() <= limits.max_body_chars);
        for s in output_strings(&r) {
            assert!(!s.contains("<<<") && !s.contains(">>>"), "fence marker in output");
        }
        let _ = mailmoat::content::attachment_text(&input, "text/html", &limits, &ctx);
        let _ = mailmoat::content::attachment_text(&input, "text/calendar", &limits, &ctx);
        let _ = mailmoat::content::sniff_type(&input);
        let _ = mailmoat::content::sanitize_filename(&String::from_utf8_lossy(&input));
    }
}
