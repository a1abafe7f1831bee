//! Sanitizer throughput: renders the hostile/benign corpus (tests/corpus) and a generated
//! ~1 MB newsletter N times and prints MB/s per core. Build with --release:
//!
//!     cargo run --release --example bench_sanitizer [-- ROUNDS]
//!     cargo run --release --example bench_sanitizer -- corpus [ROUNDS]
//!     cargo run --release --example bench_sanitizer -- big   # one 11 MB HTML message (for RSS)

use std::path::Path;
use std::time::Instant;

use mailmoat::content::{render_with, Context, Limits, RenderOptions};

/// A newsletter shaped like real ones: a style sheet with classes and media queries, a hidden
/// preheader, nested layout tables with inline CSS, tracked links and images.
fn newsletter(target_bytes: usize) -> Vec<u8> {
    let mut html = String::from(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Weekly digest</title>
<style type="text/css">
body { margin:0; padding:0; background:#f4f4f4; }
.wrapper { width:100%; background-color:#f4f4f4; }
.content { max-width:600px; background:#ffffff; }
.preheader { display:none !important; visibility:hidden; opacity:0; color:transparent; height:0; width:0; }
td.article h2 { font-size:20px; color:#222222; }
.footer p, .footer a { color:#999999; font-size:12px; }
.mobile-only { display:none; }
@media only screen and (max-width:600px) { .content { width:100% !important; } .mobile-only { display:block !important; } }
a:hover { text-decoration:underline; }
</style></head>
<body><span class="preheader">This week: ten stories you should not miss, plus our favourite links.</span>
<table class="wrapper" role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">
<table class="content" width="600" cellpadding="0" cellspacing="0">
"#,
    );
    let mut i = 0;
    while html.len() < target_bytes {
        i += 1;
        html.push_str(&format!(
            r##"<tr><td class="article" style="padding:20px 30px;font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:24px;color:#333333;">
<h2 style="margin:0 0 10px 0;">Story number {i}: what happened this week</h2>
<p style="margin:0 0 12px 0;">Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua &amp; more.</p>
<table role="presentation" cellpadding="0" cellspacing="0"><tr><td bgcolor="#0066cc" style="border-radius:4px;"><a href="https://click.news.example.com/track?id={i}&amp;u=abc123" style="color:#ffffff;text-decoration:none;padding:10px 16px;display:inline-block;">Read more</a></td>
<td><img src="https://cdn.example.com/img/{i}.png" width="100" height="60" alt="Story {i}"></td></tr></table>
</td></tr>
"##
        ));
    }
    html.push_str(r#"<tr><td class="footer"><p>You receive this because you subscribed. <a href="https://news.example.com/unsubscribe">Unsubscribe</a></p></td></tr></table></td></tr></table></body></html>"#);
    let mut raw = b"From: Digest <digest@news.example.com>\r\nTo: reader@example.org\r\nSubject: Weekly digest\r\nList-Id: <digest.news.example.com>\r\nList-Unsubscribe: <https://news.example.com/u>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n".to_vec();
    raw.extend_from_slice(html.replace('\n', "\r\n").as_bytes());
    raw
}

/// On-CPU time of this thread (Linux), so the figure is per core even on a busy machine.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut out = Vec::new();
    for dir in [root.clone(), root.join("benign")] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut paths: Vec<_> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "eml")).collect();
        paths.sort();
        for p in paths {
            if let Ok(bytes) = std::fs::read(&p) {
                out.push(bytes);
            }
        }
    }
    out
}

fn bench(name: &str, messages: &[Vec<u8>], rounds: usize, opts: &RenderOptions) {
    let limits = Limits::default();
    let ctx = Context {
        own_domain: "example.org".to_owned(),
        trusted_domains: vec!["paypal.com".to_owned()],
        trusted_authserv_id: Some("mx.example.org".to_owned()),
    };
    let bytes: usize = messages.iter().map(Vec::len).sum();
    // Warm up once.
    for m in messages {
        let _ = render_with(m, false, &limits, &ctx, opts);
    }
    let start = Instant::now();
    let cpu_start = cpu_ns();
    let mut findings = 0;
    for _ in 0..rounds {
        for m in messages {
            findings += render_with(m, false, &limits, &ctx, opts).findings.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_ns().zip(cpu_start).map(|(end, start)| (end - start) as f64 / 1e9);
    let mb = (bytes * rounds) as f64 / 1e6;
    println!(
        "{name:<30} {:>4} msg {:>8.2} MB {:>7.3} s wall {:>7.1} MB/s; {:>7.1} MB/s per core (CPU time)  ({} findings/round, include_html={})",
        messages.len(),
        mb,
        secs,
        mb / secs,
        cpu.map_or(f64::NAN, |c| mb / c),
        findings / rounds.max(1),
        opts.include_html
    );
}

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    if arg == "big" {
        // One 11 MB HTML message, rendered once: run under /usr/bin/time -v for peak RSS.
        let raw = newsletter(11 * 1024 * 1024);
        let start = Instant::now();
        let r = render_with(
            &raw,
            false,
            &Limits::default(),
            &Context::default(),
            &RenderOptions { include_html: true, include_headers: Vec::new() },
        );
        println!(
            "rendered {} bytes in {:?}: {} chars of text, {} bytes of HTML, {} links, {} findings",
            raw.len(),
            start.elapsed(),
            r.text.chars().count(),
            r.html.as_ref().map_or(0, String::len),
            r.links.len(),
            r.findings.len()
        );
        return;
    }
    let corpus_only = arg == "corpus";
    let rounds: usize =
        if corpus_only { std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(20) } else { arg.parse().unwrap_or(20) };
    let corpus = corpus();
    let big = vec![newsletter(1024 * 1024)];
    let text_only = RenderOptions::default();
    let with_html = RenderOptions { include_html: true, include_headers: vec!["Received".to_owned(), "Authentication-Results".to_owned()] };
    if corpus.is_empty() {
        println!("no corpus found under tests/corpus");
    } else {
        bench("corpus (tests/corpus/**.eml)", &corpus, rounds, &text_only);
        bench("corpus (tests/corpus/**.eml)", &corpus, rounds, &with_html);
    }
    if corpus_only {
        // The slowest messages, to see where per-message costs go.
        let limits = Limits::default();
        let ctx = Context::default();
        let mut times: Vec<(f64, usize, usize)> = corpus
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let start = Instant::now();
                for _ in 0..rounds {
                    let _ = render_with(m, false, &limits, &ctx, &text_only);
                }
                (start.elapsed().as_secs_f64() * 1e6 / rounds as f64, i, m.len())
            })
            .collect();
        times.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (us, i, len) in times.iter().take(8) {
            println!("  message #{i:<3} {len:>8} bytes {us:>9.1} µs");
        }
        return;
    }
    bench("newsletter (~1 MB HTML)", &big, rounds, &text_only);
    bench("newsletter (~1 MB HTML)", &big, rounds, &with_html);
}
