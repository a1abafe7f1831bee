//! Attachments: filename sanitizing, magic-byte sniffing, the dangerous-attachment and
//! type-mismatch checks, transfer decoding of a fetched part, and the text of an attachment
//! (text/*, HTML through the firewall, forwarded messages, calendar invitations).

use super::headers::decode_base64_lenient;
use super::text::{clean_line_counted, deliver_text, neutralize_fence, nfkc, truncate_chars, CleanStats};
use super::{code, html, invisible_finding, render_with, Context, Finding, Limits, RenderOptions, Severity};

/// Longest attachment filename returned, in characters.
pub(crate) const MAX_FILENAME_CHARS: usize = 255;

/// Extensions that run code when opened on common desktops.
const EXECUTABLE: &[&str] = &[
    "exe",
    "scr",
    "com",
    "bat",
    "cmd",
    "pif",
    "cpl",
    "msi",
    "msp",
    "mst",
    "msc",
    "vbs",
    "vbe",
    "js",
    "jse",
    "wsf",
    "wsh",
    "ws",
    "ps1",
    "psm1",
    "hta",
    "jar",
    "lnk",
    "reg",
    "dll",
    "sys",
    "app",
    "sh",
    "command",
    "apk",
    "scf",
    "inf",
    "gadget",
    "application",
    "appref-ms",
    "iso",
    "img",
    "vhd",
    "vhdx",
    "xll",
    "library-ms",
    "url",
    "chm",
    "docm",
    "xlsm",
    "pptm",
    "dmg",
    "pkg",
    "run",
    "bin",
    "elf",
    "deb",
    "rpm",
];

/// Extensions of documents people expect to open safely (the first half of a double
/// extension).
const DOCUMENT: &[&str] = &[
    "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "rtf", "jpg", "jpeg", "png", "gif", "zip", "csv", "odt", "html", "htm",
    "mp3", "mp4", "wav", "eml", "ics", "invoice", "xml", "json",
];

/// Decodes a fetched MIME part body by its Content-Transfer-Encoding (base64,
/// quoted-printable, 7bit, 8bit, binary, or anything else as-is). Tolerant: bad characters
/// are skipped, a cut final group yields what it covers.
pub fn decode_part(raw_part: &[u8], transfer_encoding: &str) -> Vec<u8> {
    match transfer_encoding.trim().to_ascii_lowercase().as_str() {
        "base64" => decode_base64_lenient(raw_part),
        "quoted-printable" => super::mime::decode_quoted_printable(raw_part),
        _ => raw_part.to_vec(),
    }
}

/// What the first bytes of a file are, by magic number: "application/pdf", "image/png",
/// "image/jpeg", "image/gif", "image/webp", "application/zip" (or the Office Open XML type
/// when the first entries show it), "application/gzip", "application/x-7z-compressed",
/// "application/vnd.rar", "application/x-ole-storage" (legacy Office, MSI),
/// "application/x-elf", "application/x-msdownload" (PE/MZ), "application/x-mach-binary",
/// "text/x-shellscript" (`#!`), "text/html", "text/plain" (printable UTF-8 without NULs).
pub fn sniff_type(bytes: &[u8]) -> Option<&'static str> {
    let b = bytes;
    let starts = |m: &[u8]| b.starts_with(m);
    if b.is_empty() {
        return None;
    }
    if starts(b"%PDF-") {
        return Some("application/pdf");
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if starts(b"\xFF\xD8\xFF") {
        return Some("image/jpeg");
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Some("image/gif");
    }
    if starts(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        return Some("image/webp");
    }
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
        let window = &b[..b.len().min(8192)];
        let has = |needle: &[u8]| window.windows(needle.len()).any(|w| w == needle);
        if has(b"word/") {
            return Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document");
        }
        if has(b"xl/") {
            return Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
        }
        if has(b"ppt/") {
            return Some("application/vnd.openxmlformats-officedocument.presentationml.presentation");
        }
        return Some("application/zip");
    }
    if starts(b"\x1F\x8B") {
        return Some("application/gzip");
    }
    if starts(b"7z\xBC\xAF\x27\x1C") {
        return Some("application/x-7z-compressed");
    }
    if starts(b"Rar!\x1A\x07") {
        return Some("application/vnd.rar");
    }
    if starts(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        return Some("application/x-ole-storage");
    }
    if starts(b"\x7FELF") {
        return Some("application/x-elf");
    }
    if starts(b"MZ") {
        return Some("application/x-msdownload");
    }
    if starts(b"\xFE\xED\xFA\xCE")
        || starts(b"\xFE\xED\xFA\xCF")
        || starts(b"\xCE\xFA\xED\xFE")
        || starts(b"\xCF\xFA\xED\xFE")
        || starts(b"\xCA\xFE\xBA\xBE")
    {
        return Some("application/x-mach-binary");
    }
    if starts(b"#!") {
        return Some("text/x-shellscript");
    }
    let text = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b);
    let lead: Vec<u8> = text.iter().skip_while(|c| c.is_ascii_whitespace()).take(16).map(u8::to_ascii_lowercase).collect();
    for tag in [&b"<!doctype html"[..], b"<html", b"<head", b"<body", b"<script", b"<iframe", b"<!--", b"<div", b"<table", b"<p>"] {
        if lead.starts_with(tag) {
            return Some("text/html");
        }
    }
    let sample = &text[..text.len().min(4096)];
    if sample.contains(&0) {
        return None;
    }
    let valid = match std::str::from_utf8(sample) {
        Ok(_) => true,
        // A sample cut inside a character is still text.
        Err(e) => e.error_len().is_none() && e.valid_up_to() + 4 > sample.len(),
    };
    let controls = sample.iter().filter(|&&c| c < 0x20 && !matches!(c, b'\n' | b'\r' | b'\t' | b'\x0C')).count();
    (valid && controls * 100 <= sample.len()).then_some("text/plain")
}

/// The types a declared content type (or extension) expects the magic bytes to show; `None`
/// when it does not say.
fn expected_sniff(declared: &str) -> Option<&'static [&'static str]> {
    const ZIPS: &[&str] = &[
        "application/zip",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ];
    Some(match declared {
        "application/pdf" | "pdf" => &["application/pdf"],
        "image/png" | "png" => &["image/png"],
        "image/jpeg" | "image/jpg" | "image/pjpeg" | "jpg" | "jpeg" => &["image/jpeg"],
        "image/gif" | "gif" => &["image/gif"],
        "image/webp" | "webp" => &["image/webp"],
        "application/zip" | "application/x-zip-compressed" | "zip" | "docx" | "xlsx" | "pptx" | "odt" | "ods" | "epub" => ZIPS,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => ZIPS,
        "application/gzip" | "application/x-gzip" | "gz" | "tgz" => &["application/gzip"],
        "application/msword" | "application/vnd.ms-excel" | "application/vnd.ms-powerpoint" | "doc" | "xls" | "ppt" => {
            &["application/x-ole-storage"]
        }
        "text/plain" | "text/csv" | "txt" | "csv" => &["text/plain", "text/html"],
        "text/calendar" | "ics" => &["text/plain"],
        _ => return None,
    })
}

fn is_executable_sniff(s: &str) -> bool {
    matches!(s, "application/x-elf" | "application/x-msdownload" | "application/x-mach-binary" | "text/x-shellscript")
}

/// Cuts a filename to `max` characters, keeping a short extension.
fn cap_filename(name: &str, max: usize) -> String {
    let total = name.chars().count();
    if total <= max {
        return name.to_owned();
    }
    if let Some(dot) = name.rfind('.') {
        let ext = &name[dot..];
        let ext_chars = ext.chars().count();
        if dot > 0 && ext_chars <= 17 && ext_chars < max {
            let stem: String = name[..dot].chars().take(max - ext_chars).collect();
            return stem + ext;
        }
    }
    name.chars().take(max).collect()
}

/// The filename cleaning shared by `sanitize_filename` and the renderer; `None` when nothing
/// usable is left.
pub(crate) fn clean_filename(raw: &str) -> (Option<String>, CleanStats) {
    let (line, stats) = clean_line_counted(raw);
    let line = nfkc(&line).into_owned();
    let last = line.rsplit(['/', '\\']).next().unwrap_or("");
    // Windows drops trailing dots and spaces; a leading "C:" is a drive.
    let last = last.trim().trim_end_matches(['.', ' ']);
    let b = last.as_bytes();
    let last = if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' { last[2..].trim() } else { last };
    if last.is_empty() || last == "." || last == ".." {
        return (None, stats);
    }
    let mut name: String = last.chars().map(|c| if matches!(c, '<' | '>' | '"' | '|' | '?' | '*') { '_' } else { c }).collect();
    let stem = name.split('.').next().unwrap_or("").trim().to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$")
        || (stem.len() == 4 && (stem.starts_with("COM") || stem.starts_with("LPT")) && stem.as_bytes()[3].is_ascii_digit());
    if reserved {
        name.insert(0, '_');
    }
    let name = neutralize_fence(&name);
    (Some(cap_filename(&name, MAX_FILENAME_CHARS)), stats)
}

/// Makes an attachment filename safe to show and to save: decoded text on one line, no
/// controls, bidi or invisible characters, NFKC, no directory part ("../../etc/passwd" →
/// "passwd", "C:\\x\\a.txt" → "a.txt"), no trailing dots or spaces, `<>:"|?*` replaced, Windows
/// device names (CON, NUL, COM1, …) prefixed with `_`, at most 255 characters with the
/// extension kept. Returns "attachment" when nothing usable is left.
pub fn sanitize_filename(name: &str) -> String {
    clean_filename(name).0.unwrap_or_else(|| "attachment".to_owned())
}

/// `dangerous_attachment` and `attachment_type_mismatch` for one attachment. `raw` is the
/// filename as the sender wrote it (decoded, uncleaned), `clean` the sanitized one.
pub(crate) fn check_attachment(
    raw: Option<&str>,
    clean: Option<&str>,
    declared: &str,
    sniffed: Option<&str>,
    location: &str,
    findings: &mut Vec<Finding>,
) {
    let mut dangers: Vec<&str> = Vec::new();
    let mut severity = Severity::Warning;
    if let Some(raw) = raw {
        if raw.chars().any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')) {
            dangers.push("bidi control characters reorder the name");
            severity = Severity::Danger;
        }
        if raw.contains("../") || raw.contains("..\\") || raw.starts_with('/') || raw.starts_with('\\') || raw.get(1..3) == Some(":\\") {
            dangers.push("the name contains a path");
        }
    }
    let lower = clean.unwrap_or("").to_lowercase();
    let exts: Vec<&str> = lower.rsplit('.').collect();
    let ext = if exts.len() >= 2 { exts[0].trim() } else { "" };
    if EXECUTABLE.contains(&ext) {
        dangers.push("executable file type");
        if exts.len() >= 3 && DOCUMENT.contains(&exts[1].trim()) {
            dangers.push("double extension disguises it as a document");
            severity = Severity::Danger;
        }
    }
    if sniffed.is_some_and(is_executable_sniff) {
        dangers.push("the content is a program");
        if !EXECUTABLE.contains(&ext) {
            severity = Severity::Danger;
        }
    }
    dangers.dedup();
    if !dangers.is_empty() {
        findings.push(Finding::new(code::DANGEROUS_ATTACHMENT, severity, location.to_owned(), dangers.join("; ")));
    }
    if let Some(sniffed) = sniffed {
        let by_type = expected_sniff(declared);
        let by_ext = expected_sniff(ext);
        let disagrees = |want: Option<&[&str]>| want.is_some_and(|w| !w.contains(&sniffed));
        // Plain text is a weak signal: only a strong magic number contradicts a declaration.
        let strong = sniffed != "text/plain" && sniffed != "text/html";
        if strong && (disagrees(by_type) || disagrees(by_ext)) {
            let said = if disagrees(by_type) { format!("declared {declared}") } else { format!("named .{ext}") };
            findings.push(Finding::new(
                code::ATTACHMENT_TYPE_MISMATCH,
                if is_executable_sniff(sniffed) { Severity::Danger } else { Severity::Warning },
                location.to_owned(),
                format!("{said}, but the content is {sniffed}"),
            ));
        }
    }
}

/// The `charset` parameter of a Content-Type value.
fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then(|| v.trim().trim_matches('"'))
    })
}

/// Text an agent can read from a decoded attachment, cleaned and fence-neutralized, at most
/// `max_body_chars` characters, with findings:
/// - `text/*` in its `charset` (default: UTF-8, else windows-1252);
/// - `text/html` through the content firewall (hidden content removed);
/// - `message/rfc822`: a summary of the forwarded message's headers, then its body;
/// - `text/calendar`: SUMMARY, DTSTART, DTEND, LOCATION, ORGANIZER, the attendee count and
///   the first lines of DESCRIPTION of each event;
/// - anything else: an empty string and no findings.
pub fn attachment_text(bytes: &[u8], content_type: &str, limits: &Limits, ctx: &Context) -> (String, Vec<Finding>) {
    let result = std::panic::catch_unwind(|| attachment_text_inner(bytes, content_type, limits, ctx));
    result.unwrap_or_else(|_| {
        let f = Finding::new(code::MIME_LIMIT, Severity::Warning, "attachment".to_owned(), "the attachment could not be read".to_owned());
        (String::new(), vec![f])
    })
}

fn attachment_text_inner(bytes: &[u8], content_type: &str, limits: &Limits, ctx: &Context) -> (String, Vec<Finding>) {
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let mut findings = Vec::new();
    let location = "attachment".to_owned();
    let max_in = limits.max_decoded_bytes.min(bytes.len());
    let bytes = &bytes[..max_in];
    let raw_text = if mime.starts_with("text/") {
        super::mime::decode_charset(bytes.to_vec(), charset_param(content_type))
    } else if mime == "message/rfc822" || mime == "message/global" {
        let r = render_with(bytes, false, limits, ctx, &RenderOptions::default());
        let mut out = String::new();
        let list = |v: &[super::Address]| {
            v.iter()
                .map(|a| match &a.name {
                    Some(n) => format!("{n} <{}>", a.email),
                    None => a.email.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (name, value) in [
            ("From", list(&r.headers.from)),
            ("To", list(&r.headers.to)),
            ("Cc", list(&r.headers.cc)),
            ("Date", r.headers.date.clone().unwrap_or_default()),
            ("Subject", r.headers.subject.clone().unwrap_or_default()),
        ] {
            if !value.is_empty() {
                out.push_str(&format!("{name}: {value}\n"));
            }
        }
        out.push('\n');
        out.push_str(&r.text);
        let mut findings = r.findings;
        for f in &mut findings {
            f.location = format!("attachment {}", f.location);
        }
        return (out, findings);
    } else {
        return (String::new(), findings);
    };
    let text = match mime.as_str() {
        "text/html" => {
            let opts =
                html::HtmlOptions { max_text_bytes: limits.max_body_chars.saturating_mul(4).saturating_add(1024), ..Default::default() };
            let rendered = html::render(&raw_text, &opts);
            super::mime::html_findings(&rendered.report, &location, &mut findings);
            rendered.text
        }
        "text/calendar" => ics_summary(&raw_text),
        _ => raw_text,
    };
    let (mut text, stats) = deliver_text(&text);
    if !stats.is_empty() {
        findings.push(invisible_finding(location.clone(), &stats));
    }
    if truncate_chars(&mut text, limits.max_body_chars) {
        findings.push(Finding::new(
            code::TRUNCATED,
            Severity::Info,
            location,
            format!("text longer than {} characters was cut", limits.max_body_chars),
        ));
    }
    (text, findings)
}

/// Unfolds iCalendar content lines (a line starting with a space or tab continues the last).
fn ics_lines(ics: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in ics.split('\n').take(100_000) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        match (line.strip_prefix([' ', '\t']), lines.last_mut()) {
            (Some(rest), Some(last)) if last.len() < 65_536 => last.push_str(rest),
            _ => lines.push(line.to_owned()),
        }
    }
    lines
}

fn ics_unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n' | 'N') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A readable summary of the events in an iCalendar file.
pub(crate) fn ics_summary(ics: &str) -> String {
    let mut out = String::new();
    let mut in_event = false;
    let mut attendees = 0usize;
    let mut events = 0usize;
    for line in ics_lines(ics) {
        let Some((name_params, value)) = line.split_once(':') else { continue };
        let mut parts = name_params.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_uppercase();
        let params: Vec<&str> = parts.collect();
        match (name.as_str(), value.trim()) {
            ("BEGIN", v) if v.eq_ignore_ascii_case("VEVENT") => {
                in_event = true;
                attendees = 0;
                events += 1;
                if events > 20 {
                    break;
                }
                if events > 1 {
                    out.push('\n');
                }
                out.push_str("Event\n");
            }
            ("END", v) if v.eq_ignore_ascii_case("VEVENT") && in_event => {
                if attendees > 0 {
                    out.push_str(&format!("Attendees: {attendees}\n"));
                }
                in_event = false;
            }
            _ if !in_event => {}
            ("SUMMARY", v) => out.push_str(&format!("Summary: {}\n", ics_unescape(v).replace('\n', " "))),
            ("DTSTART", v) => out.push_str(&format!("Start: {v}\n")),
            ("DTEND", v) => out.push_str(&format!("End: {v}\n")),
            ("LOCATION", v) => out.push_str(&format!("Location: {}\n", ics_unescape(v).replace('\n', " "))),
            ("ORGANIZER", v) => {
                let cn = params.iter().find_map(|p| p.strip_prefix("CN=").or_else(|| p.strip_prefix("cn="))).map(|c| c.trim_matches('"'));
                let addr = v.strip_prefix("mailto:").or_else(|| v.strip_prefix("MAILTO:")).unwrap_or(v);
                match cn {
                    Some(cn) => out.push_str(&format!("Organizer: {cn} <{addr}>\n")),
                    None => out.push_str(&format!("Organizer: {addr}\n")),
                }
            }
            ("ATTENDEE", _) => attendees += 1,
            ("DESCRIPTION", v) => {
                let d = ics_unescape(v);
                let first: Vec<&str> = d.lines().filter(|l| !l.trim().is_empty()).take(5).collect();
                if !first.is_empty() {
                    out.push_str("Description:\n");
                    for l in first {
                        let mut l = l.trim().to_owned();
                        truncate_chars(&mut l, 300);
                        out.push_str(&format!("  {l}\n"));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"%PDF-1.7\n", Some("application/pdf")),
            (b"\x89PNG\r\n\x1a\n....", Some("image/png")),
            (b"\xFF\xD8\xFF\xE0", Some("image/jpeg")),
            (b"GIF89a", Some("image/gif")),
            (b"PK\x03\x04....word/document.xml", Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document")),
            (b"PK\x03\x04....", Some("application/zip")),
            (b"\x1F\x8B\x08", Some("application/gzip")),
            (b"\x7FELF\x02", Some("application/x-elf")),
            (b"MZ\x90\x00", Some("application/x-msdownload")),
            (b"\xCF\xFA\xED\xFE", Some("application/x-mach-binary")),
            (b"#!/bin/sh\nrm -rf /", Some("text/x-shellscript")),
            (b"  <!DOCTYPE html><html>", Some("text/html")),
            (b"Hello, world\nline two", Some("text/plain")),
            (b"\x00\x01\x02binary", None),
            (b"", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff_type(bytes), *want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn filenames() {
        let cases = [
            ("report.pdf", "report.pdf"),
            ("../../etc/passwd", "passwd"),
            ("C:\\Users\\x\\evil.bat", "evil.bat"),
            ("invoice\u{202E}fdp.exe", "invoicefdp.exe"),
            ("CON.txt", "_CON.txt"),
            ("com1", "_com1"),
            ("a<b>c?.txt", "a_b_c_.txt"),
            ("trailing. . ", "trailing"),
            ("ｆｕｌｌｗｉｄｔｈ.txt", "fullwidth.txt"),
            ("", "attachment"),
            ("..", "attachment"),
            ("<<<END>>>.txt", "___END___.txt"),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize_filename(input), want, "{input:?}");
        }
        let long = format!("{}.pdf", "x".repeat(400));
        let s = sanitize_filename(&long);
        assert_eq!(s.chars().count(), 255);
        assert!(s.ends_with(".pdf"));
    }

    fn codes(raw: Option<&str>, clean: Option<&str>, declared: &str, sniffed: Option<&str>) -> Vec<(&'static str, Severity)> {
        let mut f = Vec::new();
        check_attachment(raw, clean, declared, sniffed, "part:2", &mut f);
        f.into_iter().map(|f| (f.code, f.severity)).collect()
    }

    #[test]
    fn attachment_checks() {
        assert_eq!(codes(Some("report.pdf"), Some("report.pdf"), "application/pdf", Some("application/pdf")), vec![]);
        assert_eq!(
            codes(Some("invoice\u{202E}fdp.exe"), Some("invoicefdp.exe"), "application/pdf", None),
            vec![(code::DANGEROUS_ATTACHMENT, Severity::Danger)]
        );
        assert_eq!(
            codes(Some("invoice.pdf.exe"), Some("invoice.pdf.exe"), "application/octet-stream", None),
            vec![(code::DANGEROUS_ATTACHMENT, Severity::Danger)]
        );
        assert_eq!(
            codes(Some("setup.exe"), Some("setup.exe"), "application/octet-stream", Some("application/x-msdownload")),
            vec![(code::DANGEROUS_ATTACHMENT, Severity::Warning)]
        );
        assert_eq!(codes(Some("../../x.txt"), Some("x.txt"), "text/plain", None), vec![(code::DANGEROUS_ATTACHMENT, Severity::Warning)]);
        assert_eq!(
            codes(Some("photo.jpg"), Some("photo.jpg"), "image/jpeg", Some("application/x-msdownload")),
            vec![(code::DANGEROUS_ATTACHMENT, Severity::Danger), (code::ATTACHMENT_TYPE_MISMATCH, Severity::Danger)]
        );
        assert_eq!(
            codes(Some("scan.pdf"), Some("scan.pdf"), "application/pdf", Some("application/zip")),
            vec![(code::ATTACHMENT_TYPE_MISMATCH, Severity::Warning)]
        );
        assert_eq!(codes(Some("notes.txt"), Some("notes.txt"), "text/plain", Some("text/plain")), vec![]);
    }

    #[test]
    fn decode_parts() {
        assert_eq!(decode_part(b"aGVs\r\nbG8=", "BASE64"), b"hello");
        assert_eq!(decode_part(b"caf=C3=A9=\r\n!", "quoted-printable"), "café!".as_bytes());
        assert_eq!(decode_part(b"raw", "8bit"), b"raw");
        assert_eq!(decode_part(b"raw", ""), b"raw");
    }

    #[test]
    fn attachment_texts() {
        let limits = Limits::default();
        let ctx = Context::default();
        let (t, f) = attachment_text(b"caf\xe9", "text/plain; charset=iso-8859-1", &limits, &ctx);
        assert_eq!((t.as_str(), f.len()), ("café", 0));
        let (t, f) = attachment_text(b"<p>Hi</p><p style=display:none>secret</p>", "text/html", &limits, &ctx);
        assert_eq!(t, "Hi");
        assert_eq!(f[0].code, code::HIDDEN_CONTENT);
        let (t, _) = attachment_text(b"From: A <a@x.example>\r\nSubject: Fwd\r\n\r\nInner body", "message/rfc822", &limits, &ctx);
        assert_eq!(t, "From: A <a@x.example>\nSubject: Fwd\n\nInner body");
        let ics = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Quarterly\\, review\r\nDTSTART:20240301T100000Z\r\nDTEND:20240301T110000Z\r\nLOCATION:Room 4\r\nORGANIZER;CN=\"Ann\":mailto:ann@x.example\r\nATTENDEE:mailto:b@x.example\r\nATTENDEE:mailto:c@x.example\r\nDESCRIPTION:Agenda:\\n1. Numbers\\n2. Plans\r\n and more\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let (t, _) = attachment_text(ics.as_bytes(), "text/calendar; method=REQUEST", &limits, &ctx);
        assert_eq!(
            t,
            "Event\nSummary: Quarterly, review\nStart: 20240301T100000Z\nEnd: 20240301T110000Z\nLocation: Room 4\nOrganizer: Ann <ann@x.example>\nDescription:\n  Agenda:\n  1. Numbers\n  2. Plansand more\nAttendees: 2\n"
        );
        let (t, f) = attachment_text(b"\x00\x01", "application/octet-stream", &limits, &ctx);
        assert_eq!((t.as_str(), f.len()), ("", 0));
    }
}
