//! Fuzzes the whole content pipeline: any bytes as a message, rendered with sanitized HTML,
//! raw headers and the deception checks; plus the attachment helpers on the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailmoat::content::{attachment_text, render_with, sanitize_filename, sniff_type, Context, Limits, RenderOptions};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_parts: 64, max_body_chars: 20_000, ..Limits::default() };
    let ctx = Context {
        own_domain: "example.org".to_owned(),
        trusted_domains: vec!["paypal.com".to_owned(), "bank.example".to_owned()],
        trusted_authserv_id: Some("mx.example.org".to_owned()),
    };
    let opts = RenderOptions { include_html: true, include_headers: vec!["Subject".to_owned(), "Received".to_owned()] };
    let r = render_with(data, data.len() % 2 == 0, &limits, &ctx, &opts);
    assert!(r.text.chars().count() <= limits.max_body_chars);
    assert!(!r.text.contains("<<<") && !r.text.contains(">>>"));
    if let Some(html) = &r.html {
        assert!(!html.contains("<<<") && !html.contains(">>>"));
        assert!(!html.to_ascii_lowercase().contains("<script"));
    }
    for l in &r.links {
        let t = l.target.to_ascii_lowercase();
        assert!(t.starts_with("http://") || t.starts_with("https://") || t.starts_with("mailto:"));
    }
    let _ = sniff_type(data);
    let _ = sanitize_filename(&String::from_utf8_lossy(data));
    if data.first() == Some(&b'B') {
        let _ = attachment_text(data, "text/calendar", &limits, &ctx);
        let _ = attachment_text(data, "message/rfc822", &limits, &ctx);
    }
});
