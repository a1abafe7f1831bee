//! Sender and link deception: domains compared with the account's trusted set (UTS #39
//! confusable skeletons, punycode, mixed scripts), display-name spoofing, Reply-To mismatch,
//! link text naming another domain, the trusted Authentication-Results, and provenance.
//!
//! Only the account's own domain and `trusted_domains` are references: a look-alike of a
//! domain nobody trusts is not reported as confusable (mixed scripts still are).

use unicode_security::{skeleton, MixedScript};

use super::headers::{head, unfold, HeaderBlock};
use super::{code, AuthSummary, Context, Finding, Headers, Link, Provenance, Severity};

/// Distinct link domains checked for confusables.
const MAX_LINK_DOMAINS: usize = 200;
/// Findings raised per check for links.
const MAX_LINK_FINDINGS: usize = 10;

// ---------------------------------------------------------------------------------------------
// Domains

/// RFC 3492 Punycode decoding of one label (without the `xn--` prefix).
fn punycode_decode(input: &str) -> Option<String> {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    const SKEW: u32 = 38;
    const DAMP: u32 = 700;
    fn adapt(mut delta: u32, points: u32, first: bool) -> u32 {
        delta = if first { delta / DAMP } else { delta / 2 };
        delta += delta / points;
        let mut k = 0;
        while delta > ((BASE - TMIN) * TMAX) / 2 {
            delta /= BASE - TMIN;
            k += BASE;
        }
        k + (BASE - TMIN + 1) * delta / (delta + SKEW)
    }
    if input.len() > 63 || !input.is_ascii() {
        return None;
    }
    let (basic, ext) = match input.rfind('-') {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => ("", input),
    };
    let mut output: Vec<char> = basic.chars().collect();
    let (mut n, mut i, mut bias) = (128u32, 0u32, 72u32);
    let mut digits = ext.bytes();
    let mut pending = digits.len();
    while pending > 0 {
        let old_i = i;
        let mut w = 1u32;
        let mut k = BASE;
        loop {
            let c = digits.next()?;
            pending -= 1;
            let digit = match c {
                b'a'..=b'z' => u32::from(c - b'a'),
                b'A'..=b'Z' => u32::from(c - b'A'),
                b'0'..=b'9' => u32::from(c - b'0') + 26,
                _ => return None,
            };
            i = i.checked_add(digit.checked_mul(w)?)?;
            let t = if k <= bias {
                TMIN
            } else if k >= bias + TMAX {
                TMAX
            } else {
                k - bias
            };
            if digit < t {
                break;
            }
            w = w.checked_mul(BASE - t)?;
            k += BASE;
        }
        let len = output.len() as u32 + 1;
        bias = adapt(i - old_i, len, old_i == 0);
        n = n.checked_add(i / len)?;
        i %= len;
        output.insert(i as usize, char::from_u32(n)?);
        i += 1;
    }
    Some(output.into_iter().collect())
}

/// A domain lowercased, without surrounding dots, with `xn--` labels decoded (labels that do
/// not decode are kept as they are). Returns the result and whether any label was punycode.
pub(crate) fn unicode_domain(domain: &str) -> (String, bool) {
    let d = domain.trim().trim_matches('.').to_lowercase();
    if !d.contains("xn--") {
        return (d, false);
    }
    let labels: Vec<String> = d
        .split('.')
        .map(|l| match l.strip_prefix("xn--").and_then(punycode_decode) {
            Some(u) => u.to_lowercase(),
            None => l.to_owned(),
        })
        .collect();
    (labels.join("."), true)
}

/// The domain of an address ("Name <a@b.example>" has been split already: `a@b.example`).
pub(crate) fn domain_of_address(email: &str) -> Option<String> {
    let (_, d) = email.rsplit_once('@')?;
    let d = d.trim().trim_end_matches('>').trim_matches('.');
    (!d.is_empty() && !d.contains(char::is_whitespace)).then(|| d.to_lowercase())
}

/// The registrable ("organizational") domain, approximately: the last two labels, or three
/// under the usual second-level labels of country codes (co.uk, com.au, …).
pub(crate) fn org_domain(d: &str) -> &str {
    let labels: Vec<&str> = d.rsplitn(4, '.').collect();
    if labels.len() < 2 {
        return d;
    }
    let tld = labels[0];
    let sld = labels[1];
    let three = tld.chars().count() == 2
        && matches!(sld, "co" | "com" | "net" | "org" | "gov" | "ac" | "edu" | "ne" | "or" | "go" | "gob" | "mil" | "ltd" | "plc" | "nic")
        && labels.len() >= 3;
    let keep = if three { 3 } else { 2 };
    let keep_len: usize = labels.iter().take(keep).map(|l| l.len()).sum::<usize>() + keep - 1;
    &d[d.len() - keep_len.min(d.len())..]
}

/// Whether `d` is `trusted` or one of its subdomains.
fn belongs_to(d: &str, trusted: &str) -> bool {
    !trusted.is_empty() && (d == trusted || d.strip_suffix(trusted).is_some_and(|p| p.ends_with('.')))
}

fn skeleton_of(s: &str) -> String {
    skeleton(s).collect()
}

/// A trusted domain and its confusable skeleton.
pub(crate) struct Reference {
    domain: String,
    skeleton: String,
}

/// The account's reference set, normalized, with skeletons computed once.
pub(crate) fn references(ctx: &Context) -> Vec<Reference> {
    let mut v: Vec<String> = std::iter::once(&ctx.own_domain)
        .chain(ctx.trusted_domains.iter())
        .map(|d| unicode_domain(d).0)
        .filter(|d| !d.is_empty() && d.contains('.'))
        .collect();
    v.sort();
    v.dedup();
    v.into_iter().map(|domain| Reference { skeleton: skeleton_of(&domain), domain }).collect()
}

/// The trusted domain `d` imitates, if any (and `d` is not itself trusted).
fn imitates<'r>(d: &str, refs: &'r [Reference]) -> Option<&'r str> {
    if refs.is_empty() || refs.iter().any(|t| belongs_to(d, &t.domain)) {
        return None;
    }
    let sk = skeleton_of(d);
    let org = org_domain(d);
    let sk_org = if org.len() == d.len() { sk.clone() } else { skeleton_of(org) };
    refs.iter()
        .find(|t| {
            let st = &t.skeleton;
            sk == *st || sk_org == *st || sk.strip_suffix(st.as_str()).is_some_and(|p| p.ends_with('.'))
        })
        .map(|t| t.domain.as_str())
}

/// Labels of `d` that mix scripts (digits, hyphens and other common characters aside).
fn mixed_labels(d: &str) -> usize {
    d.split('.').filter(|l| !l.is_ascii() && !l.is_single_script()).count()
}

/// Runs the domain checks on one domain; `what` names it in findings ("sender", "link").
fn check_domain(raw: &str, location: &str, what: &str, refs: &[Reference], findings: &mut Vec<Finding>) {
    let (d, puny) = unicode_domain(raw);
    if let Some(t) = imitates(&d, refs) {
        let how = if puny { "its punycode decodes to a look-alike of" } else { "looks like" };
        findings.push(Finding::new(
            code::CONFUSABLE_DOMAIN,
            Severity::Danger,
            location.to_owned(),
            format!("the {what} domain {how} the trusted domain {t} but is not it"),
        ));
    }
    let mixed = mixed_labels(&d);
    if mixed > 0 {
        findings.push(Finding::new(
            code::MIXED_SCRIPT,
            Severity::Warning,
            location.to_owned(),
            format!("{mixed} label(s) of the {what} domain mix writing systems (e.g. Latin with Cyrillic)"),
        ));
    }
}

/// Domain-like tokens in free text ("paypal.com", "https://x.example/login", "a@b.example").
pub(crate) fn domains_in_text(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for token in text.split(|c: char| c.is_whitespace() || "()<>[]{}\"',;|".contains(c)).take(10_000) {
        let t = token.trim_matches(|c: char| c == '.' || c == ':' || c == '!' || c == '?');
        let t = t.split_once("://").map_or(t, |(_, rest)| rest);
        let t = t.rsplit_once('@').map_or(t, |(_, rest)| rest);
        let host = t.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.split(':').next().unwrap_or("").trim_end_matches('.');
        if looks_like_domain(host) {
            out.push(host.to_lowercase());
            if out.len() >= 20 {
                break;
            }
        }
    }
    out
}

fn looks_like_domain(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 || host.len() > 253 {
        return false;
    }
    if labels.iter().any(|l| l.is_empty() || l.len() > 63 || !l.chars().all(|c| c.is_alphanumeric() || c == '-')) {
        return false;
    }
    let tld = labels[labels.len() - 1].to_lowercase();
    let common = matches!(
        tld.as_str(),
        "com"
            | "net"
            | "org"
            | "edu"
            | "gov"
            | "mil"
            | "int"
            | "info"
            | "biz"
            | "io"
            | "app"
            | "dev"
            | "online"
            | "site"
            | "xyz"
            | "shop"
            | "store"
            | "cloud"
            | "email"
            | "link"
            | "live"
            | "top"
            | "club"
            | "tech"
            | "bank"
            | "pay"
            | "support"
            | "services"
            | "security"
            | "news"
            | "blog"
            | "zip"
            | "mov"
            | "example"
            | "test"
    );
    let cc = tld.len() == 2 && tld.chars().all(|c| c.is_ascii_alphabetic()) && !matches!(tld.as_str(), "js" | "py" | "gz" | "db" | "cs");
    let idn = tld.starts_with("xn--") || !tld.is_ascii() && tld.chars().count() >= 2;
    common || cc || idn
}

// ---------------------------------------------------------------------------------------------
// Senders

/// Confusable and mixed-script sender/reply-to domains, display-name spoofing, Reply-To
/// mismatch.
pub(crate) fn check_senders(h: &Headers, block: &HeaderBlock<'_>, refs: &[Reference], findings: &mut Vec<Finding>) {
    let from = h.from.first();
    let from_domain = from.and_then(|a| domain_of_address(&a.email)).map(|d| unicode_domain(&d).0);
    if let Some(d) = &from_domain {
        check_domain(d, "header:From", "sender", refs, findings);
    }
    if let Some(d) = h.sender.first().and_then(|a| domain_of_address(&a.email)) {
        if Some(unicode_domain(&d).0) != from_domain {
            check_domain(&d, "header:Sender", "sender", refs, findings);
        }
    }
    let mut reply_domains: Vec<String> =
        h.reply_to.iter().filter_map(|a| domain_of_address(&a.email)).map(|d| unicode_domain(&d).0).collect();
    reply_domains.dedup();
    for d in reply_domains.iter().take(10) {
        if Some(d) != from_domain.as_ref() {
            check_domain(d, "header:Reply-To", "reply-to", refs, findings);
        }
    }
    if let (Some(from), Some(fd)) = (from, &from_domain) {
        if let Some(name) = &from.name {
            display_name_checks(name, fd, refs, findings);
        }
    }
    if let Some(fd) = &from_domain {
        let list_domains: Vec<String> = ["List-Id", "List-Post"]
            .iter()
            .filter_map(|n| block.get(n))
            .flat_map(|v| domains_in_text(&unfold(head(v, 1024).0).0))
            .map(|d| org_domain(&d).to_owned())
            .collect();
        let outside: Vec<&String> =
            reply_domains.iter().filter(|d| org_domain(d) != org_domain(fd) && !list_domains.iter().any(|l| l == org_domain(d))).collect();
        if !outside.is_empty() {
            findings.push(Finding::new(
                code::REPLY_TO_MISMATCH,
                Severity::Warning,
                "header:Reply-To".to_owned(),
                format!("replies would go to {} domain(s) other than the sender's ({})", outside.len(), org_domain(fd)),
            ));
        }
    }
}

fn display_name_checks(name: &str, from_domain: &str, refs: &[Reference], findings: &mut Vec<Finding>) {
    let from_org = org_domain(from_domain).to_owned();
    let mut reasons: Vec<String> = Vec::new();
    let mut severity = Severity::Warning;
    for d in domains_in_text(name) {
        let (d, _) = unicode_domain(&d);
        if org_domain(&d) != from_org && !belongs_to(from_domain, &d) {
            let is_address = name.contains('@');
            reasons.push(if is_address { "contains an address at another domain".to_owned() } else { "names another domain".to_owned() });
            if refs.iter().any(|t| belongs_to(&d, &t.domain)) || imitates(&d, refs).is_some() {
                severity = Severity::Danger;
            }
            break;
        }
    }
    // A trusted brand named in words ("PayPal Support") by an address outside it.
    let mut words: Option<Vec<String>> = None;
    for t in refs {
        let t = &t.domain;
        if belongs_to(from_domain, t) {
            continue;
        }
        let label = org_domain(t).split('.').next().unwrap_or("");
        if label.chars().count() < 4 {
            continue;
        }
        let sl = skeleton_of(label);
        let words = words.get_or_insert_with(|| {
            let w = name.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 4).take(64);
            w.map(|w| skeleton_of(&w.to_lowercase())).collect()
        });
        if words.contains(&sl) {
            reasons.push(format!("names the trusted domain {t}, which the address does not belong to"));
            severity = Severity::Danger;
            break;
        }
    }
    if !reasons.is_empty() {
        findings.push(Finding::new(
            code::DISPLAY_NAME_SPOOF,
            severity,
            "header:From".to_owned(),
            format!("the display name {} (the address is at {from_org})", reasons.join(" and ")),
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication-Results

/// Strips RFC 5322 comments `( … )`.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

struct MethodResult {
    method: String,
    result: String,
    /// header.d, smtp.mailfrom, header.from, … → value.
    props: Vec<(String, String)>,
}

/// Parses one Authentication-Results value: authserv-id and the method results.
fn parse_auth_results(value: &str) -> (String, Vec<MethodResult>) {
    let clean = strip_comments(value);
    let mut parts = clean.split(';');
    let id = parts.next().unwrap_or("").split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    let mut results = Vec::new();
    for part in parts.take(32) {
        let mut tokens = part.split_whitespace();
        let Some(first) = tokens.next() else { continue };
        let Some((method, result)) = first.split_once('=') else { continue };
        let method = method.split('/').next().unwrap_or("").to_ascii_lowercase();
        let props = tokens
            .filter_map(|t| t.split_once('='))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim_matches('"').to_ascii_lowercase()))
            .take(16)
            .collect();
        results.push(MethodResult { method, result: result.to_ascii_lowercase(), props });
    }
    (id, results)
}

fn prop<'m>(m: &'m MethodResult, names: &[&str]) -> Option<&'m str> {
    m.props.iter().find(|(k, _)| names.contains(&k.as_str())).map(|(_, v)| v.as_str())
}

/// The trusted Authentication-Results (the first one whose authserv-id is the account's),
/// with alignment against the From domain; raises `authentication_failed` and
/// `sender_unauthenticated`.
pub(crate) fn authentication(h: &Headers, block: &HeaderBlock<'_>, ctx: &Context, findings: &mut Vec<Finding>) -> AuthSummary {
    let mut summary = AuthSummary::default();
    let Some(trusted_id) = ctx.trusted_authserv_id.as_deref().map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()) else {
        return summary;
    };
    let from_org = h.from.first().and_then(|a| domain_of_address(&a.email)).map(|d| org_domain(&unicode_domain(&d).0).to_owned());
    let location = "header:Authentication-Results".to_owned();
    let header = block
        .fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case(b"Authentication-Results"))
        .take(50)
        .map(|f| parse_auth_results(&unfold(head(f.value, 8192).0).0))
        .find(|(id, _)| *id == trusted_id);
    let Some((_, results)) = header else {
        findings.push(Finding::new(
            code::SENDER_UNAUTHENTICATED,
            Severity::Warning,
            location,
            "no Authentication-Results header from the account's own server; the sender is not verified".to_owned(),
        ));
        return summary;
    };
    summary.trusted = true;
    let aligned_with = |d: Option<&str>| -> bool {
        let d = d.map(|d| d.rsplit('@').next().unwrap_or(d));
        match (d, &from_org) {
            (Some(d), Some(f)) => org_domain(&unicode_domain(d).0) == f,
            _ => false,
        }
    };
    let mut aligned = false;
    let mut failed: Vec<&str> = Vec::new();
    for m in &results {
        let pass = m.result == "pass";
        match m.method.as_str() {
            "dkim" => {
                let this_aligned = pass && aligned_with(prop(m, &["header.d", "header.i"]));
                // Keep the best: an aligned pass, then any pass, then the first result.
                let better = match summary.dkim.as_deref() {
                    None => true,
                    Some("pass") => this_aligned,
                    Some(_) => pass,
                };
                if better {
                    summary.dkim = Some(m.result.clone());
                }
                aligned |= this_aligned;
                if m.result == "fail" {
                    failed.push("DKIM");
                }
            }
            "spf" => {
                if summary.spf.is_none() {
                    summary.spf = Some(m.result.clone());
                }
                aligned |= pass && aligned_with(prop(m, &["smtp.mailfrom", "smtp.helo"]));
                if m.result == "fail" || m.result == "softfail" {
                    failed.push("SPF");
                }
            }
            "dmarc" => {
                if summary.dmarc.is_none() {
                    summary.dmarc = Some(m.result.clone());
                }
                aligned |= pass && prop(m, &["header.from"]).is_none_or(|d| aligned_with(Some(d)));
                if m.result == "fail" {
                    failed.push("DMARC");
                }
            }
            _ => {}
        }
    }
    summary.aligned = Some(aligned);
    failed.dedup();
    if !failed.is_empty() {
        let severity = if failed.contains(&"DMARC") { Severity::Danger } else { Severity::Warning };
        findings.push(Finding::new(
            code::AUTHENTICATION_FAILED,
            severity,
            location.clone(),
            format!("the account's server reports a {} failure", failed.join("/")),
        ));
    }
    if !aligned {
        findings.push(Finding::new(
            code::SENDER_UNAUTHENTICATED,
            Severity::Warning,
            location,
            "no DKIM, SPF or DMARC pass aligned with the From domain".to_owned(),
        ));
    }
    summary
}

// ---------------------------------------------------------------------------------------------
// Provenance

fn short_lower(v: &[u8]) -> Option<String> {
    let text = unfold(head(v, 256).0).0;
    let word = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let word: String = word.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
    (!word.is_empty()).then_some(word)
}

pub(crate) fn provenance(h: &Headers, block: &HeaderBlock<'_>) -> Provenance {
    let precedence = block.get("Precedence").and_then(short_lower);
    let auto_submitted = block.get("Auto-Submitted").and_then(short_lower).filter(|v| v != "no");
    let list_unsubscribe = block.get("List-Unsubscribe").is_some();
    let bulk = h.list_id.is_some() || list_unsubscribe || precedence.as_deref().is_some_and(|p| matches!(p, "bulk" | "list" | "junk"));
    Provenance { list_id: h.list_id.clone(), list_unsubscribe, precedence, auto_submitted, bulk }
}

// ---------------------------------------------------------------------------------------------
// Links

/// The host of an http(s) URL or the domain of a mailto: address, lowercased.
pub(crate) fn host_of(url: &str) -> Option<String> {
    let lower = url.trim().to_lowercase();
    if let Some(addr) = lower.strip_prefix("mailto:") {
        let addr = addr.split(['?', ',']).next().unwrap_or("");
        return domain_of_address(addr);
    }
    let rest = lower.split_once("://").map(|(_, r)| r).or_else(|| lower.strip_prefix("//"))?;
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    // "https://paypal.com@evil.example/" goes to evil.example.
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next().map(|h| format!("{h}]")).unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or("").to_owned()
    };
    let host = host.trim_end_matches('.').to_owned();
    (!host.is_empty()).then_some(host)
}

/// `confusable_domain`, `mixed_script` and `link_mismatch` for the links of a body.
pub(crate) fn check_links(links: &[Link], refs: &[Reference], findings: &mut Vec<Finding>) {
    let mut seen: Vec<&str> = Vec::new();
    let mut domain_findings = Vec::new();
    let mut mismatched: Vec<usize> = Vec::new();
    for (i, link) in links.iter().enumerate() {
        if link.domain.is_empty() {
            continue;
        }
        if !seen.contains(&link.domain.as_str()) && seen.len() < MAX_LINK_DOMAINS {
            seen.push(&link.domain);
            check_domain(&link.domain, &format!("link:{}", i + 1), "link", refs, &mut domain_findings);
        }
        let target = unicode_domain(&link.domain).0;
        let shown = domains_in_text(&link.text);
        let differs = shown.iter().any(|d| {
            let d = unicode_domain(d).0;
            org_domain(&d) != org_domain(&target) && !belongs_to(&target, &d)
        });
        if differs {
            mismatched.push(i + 1);
        }
    }
    domain_findings.truncate(MAX_LINK_FINDINGS * 2);
    findings.extend(domain_findings);
    if !mismatched.is_empty() {
        let list: Vec<String> = mismatched.iter().take(MAX_LINK_FINDINGS).map(|n| n.to_string()).collect();
        let more = if mismatched.len() > MAX_LINK_FINDINGS { ", …" } else { "" };
        findings.push(Finding::new(
            code::LINK_MISMATCH,
            Severity::Warning,
            "body".to_owned(),
            format!("{} link(s) show one domain and point to another (links {}{more})", mismatched.len(), list.join(", ")),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punycode() {
        assert_eq!(punycode_decode("80ak6aa92e").as_deref(), Some("аррӏе"));
        assert_eq!(punycode_decode("mnchen-3ya").as_deref(), Some("münchen"));
        assert_eq!(punycode_decode("pypal-4ve").as_deref(), Some("pаypal"));
        assert_eq!(unicode_domain("XN--80AK6AA92E.com").0, "аррӏе.com");
        assert_eq!(punycode_decode("!!"), None);
    }

    #[test]
    fn org_domains() {
        for (d, want) in
            [("a.b.example.com", "example.com"), ("example.com", "example.com"), ("x.bbc.co.uk", "bbc.co.uk"), ("localhost", "localhost")]
        {
            assert_eq!(org_domain(d), want);
        }
    }

    #[test]
    fn confusables_against_references() {
        let ctx = Context { own_domain: "example.org".to_owned(), trusted_domains: vec!["paypal.com".to_owned()], ..Context::default() };
        let refs = references(&ctx);
        assert_eq!(imitates("pаypal.com", &refs), Some("paypal.com"), "Cyrillic а");
        assert_eq!(imitates("paypa1.com", &refs), Some("paypal.com"), "digit one");
        assert_eq!(imitates("login.paypa1.com", &refs), Some("paypal.com"));
        assert_eq!(imitates("paypal.com", &refs), None);
        assert_eq!(imitates("www.paypal.com", &refs), None);
        assert_eq!(imitates("example.net", &refs), None);
        assert_eq!(imitates("exarnple.org", &refs), Some("example.org"), "rn for m");
        assert_eq!(mixed_labels("pаypal.com"), 1);
        assert_eq!(mixed_labels("пример.рф"), 0);
        assert_eq!(mixed_labels("münchen.de"), 0);
        assert_eq!(mixed_labels("東京-ひらがな.jp"), 0);
    }

    #[test]
    fn hosts_and_text_domains() {
        assert_eq!(host_of("https://paypal.com@evil.example/x").as_deref(), Some("evil.example"));
        assert_eq!(host_of("HTTP://Shop.Example:8080/a").as_deref(), Some("shop.example"));
        assert_eq!(host_of("mailto:a@b.example?subject=x").as_deref(), Some("b.example"));
        assert_eq!(host_of("javascript:x"), None);
        assert_eq!(domains_in_text("Visit www.PayPal.com/login now"), vec!["www.paypal.com"]);
        assert_eq!(domains_in_text("Download report.pdf or see e.g. this"), Vec::<String>::new());
        assert_eq!(domains_in_text("Support <help@bank.example.com>"), vec!["bank.example.com"]);
    }
}
