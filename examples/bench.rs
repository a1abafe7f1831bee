//! `make bench`: mailmoat against raw IMAP on one throwaway Dovecot seeded with N messages.
//!
//! Prints a table and writes target/bench.json. Figures are medians of repeated runs in one
//! process on one machine; compare ratios, not absolute times.
//!
//! Peak RSS (VmHWM of the `mailmoat serve` process) is measured in fresh processes: one for a
//! scripted agent session on the N-message folder (list_folders, searches, paging, fetch_message
//! of typical messages, fetch_thread; the target of issue #6 is under 20 MB at N = 100,000) and
//! one that fetches the 11 MB HTML message alone.
//!
//! N comes from `MAILMOAT_BENCH_N` (default 20000); `MAILMOAT_BIN` names another server binary
//! (e.g. the static one). `MAILMOAT_BENCH_ONLY=rss` measures only
//! the two RSS sessions (no timing runs). `MAILMOAT_BENCH_WRAP` runs each server under a
//! command, e.g. `valgrind --tool=massif --massif-out-file=target/massif.%p` (a heap profile
//! of each session: `ms_print target/massif.<pid>`); RSS figures are then the wrapper's.

#[path = "../tests/common/dovecot.rs"]
#[allow(dead_code, reason = "the benchmark uses only part of the test harness")]
mod dovecot;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const RUNS: usize = 20;

/// The server under test: `MAILMOAT_BIN`, else the `mailmoat` beside this example.
fn bin() -> PathBuf {
    if let Some(b) = std::env::var_os("MAILMOAT_BIN") {
        return PathBuf::from(b);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().and_then(|p| p.parent()).map(|p| p.join("mailmoat")).expect("target dir")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A running `mailmoat serve` speaking the modern era.
struct Mm {
    child: Child,
    stdin: Option<ChildStdin>,
    out: BufReader<std::process::ChildStdout>,
    next: u64,
}

impl Mm {
    fn spawn(config: &Path) -> Mm {
        let wrap: Vec<String> =
            std::env::var("MAILMOAT_BENCH_WRAP").map(|w| w.split_whitespace().map(str::to_string).collect()).unwrap_or_default();
        let mut cmd = match wrap.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let mut child = cmd
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mailmoat");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Mm { child, stdin: Some(stdin), out, next: 1 }
    }

    fn request(&mut self, method: &str, mut params: Value) -> Value {
        params["_meta"] =
            json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
        let id = self.next;
        self.next += 1;
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{}", json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).unwrap();
        stdin.flush().unwrap();
        loop {
            let mut line = String::new();
            assert!(self.out.read_line(&mut line).unwrap() > 0, "mailmoat exited");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == json!(id) {
                return v;
            }
        }
    }

    fn call(&mut self, name: &str, args: Value) -> Value {
        let r = self.request("tools/call", json!({"name": name, "arguments": args}));
        assert_eq!(r["result"]["isError"], json!(false), "{name}: {r}");
        r["result"].clone()
    }

    /// Peak resident set size of the server process, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

impl Drop for Mm {
    /// Closes stdin (the server exits 0 on EOF, so a wrapper such as massif writes its profile),
    /// waits up to 30 s, then kills.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same IMAP commands issued directly over one warm TLS connection.
struct Raw {
    s: BufReader<native_tls::TlsStream<TcpStream>>,
    tag: u32,
}

impl Raw {
    fn connect(dc: &dovecot::Dovecot) -> Raw {
        let ca = native_tls::Certificate::from_pem(&std::fs::read(&dc.ca.ca_pem).unwrap()).unwrap();
        let tls = native_tls::TlsConnector::builder().add_root_certificate(ca).build().unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", dc.imaps_port)).unwrap();
        let s = tls.connect("localhost", tcp).unwrap();
        let mut r = Raw { s: BufReader::new(s), tag: 0 };
        let mut greeting = Vec::new();
        r.s.read_until(b'\n', &mut greeting).unwrap();
        r.cmd(&format!("LOGIN {} {}", dovecot::imap_quote(&dc.user), dovecot::imap_quote(&dc.password)));
        r
    }

    /// Sends a command and reads the whole response (literals included); returns its size.
    fn cmd(&mut self, c: &str) -> usize {
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        write!(self.s.get_mut(), "{tag} {c}\r\n").unwrap();
        self.s.get_mut().flush().unwrap();
        let mut total = 0;
        loop {
            let mut line = Vec::new();
            self.s.read_until(b'\n', &mut line).unwrap();
            total += line.len();
            // A literal {n} at the end of the line: read n bytes, then the rest of the line.
            if let Some(n) = literal_len(&line) {
                let mut buf = vec![0u8; n];
                self.s.read_exact(&mut buf).unwrap();
                total += n;
                continue;
            }
            if line.starts_with(tag.as_bytes()) {
                assert!(line[tag.len() + 1..].starts_with(b"OK"), "{}", String::from_utf8_lossy(&line));
                return total;
            }
        }
    }
}

fn literal_len(line: &[u8]) -> Option<usize> {
    let l = line.strip_suffix(b"\r\n")?;
    let l = l.strip_suffix(b"}")?;
    let open = l.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&l[open + 1..]).ok()?.trim_end_matches('+').parse().ok()
}

fn time<F: FnMut()>(mut f: F) -> Duration {
    let mut v = Vec::with_capacity(RUNS);
    f(); // warm-up
    for _ in 0..RUNS {
        let t = Instant::now();
        f();
        v.push(t.elapsed());
    }
    median(v)
}

fn ids_of(search: &Value) -> Vec<(String, u64)> {
    let msgs = search["structuredContent"]["meta"]["messages"].as_array().cloned().unwrap_or_default();
    msgs.iter().map(|m| (m["id"].as_str().unwrap().to_string(), m["size"].as_u64().unwrap_or(0))).collect()
}

/// A scripted agent session in a fresh server process; returns its peak RSS (KiB), the number
/// of calls and how long the session took.
fn scripted_session(config: &Path, n: usize) -> (u64, usize, Duration) {
    let t = Instant::now();
    let mut mm = Mm::spawn(config);
    let large = dovecot::LARGE;
    let mut calls = 0usize;
    let mut call = |mm: &mut Mm, name: &str, args: Value| {
        calls += 1;
        mm.call(name, args)
    };
    call(&mut mm, "list_accounts", json!({}));
    call(&mut mm, "list_folders", json!({}));
    // Newest page of the big folder, then five more pages through the cursor.
    let mut page = call(&mut mm, "search", json!({"folder": large, "limit": 50}));
    let mut fetch = ids_of(&page);
    for _ in 0..5 {
        let Some(cursor) = page["structuredContent"]["meta"]["next_cursor"].as_str().map(str::to_string) else { break };
        page = call(&mut mm, "search", json!({"folder": large, "limit": 50, "cursor": cursor}));
    }
    fetch.extend(ids_of(&page).into_iter().take(5));
    // Searches that the server answers from the whole folder.
    call(&mut mm, "search", json!({"folder": large, "subject": dovecot::large_subject(n / 2)}));
    call(&mut mm, "search", json!({"folder": large, "from": "bulk7@bulk.example", "limit": 100}));
    call(&mut mm, "search", json!({"folder": large, "text": "Bulk body 4242", "limit": 10}));
    call(&mut mm, "search", json!({"folder": large, "since": "2000-02-01", "before": "2000-03-01", "limit": 100}));
    call(&mut mm, "search", json!({"folder": "Archive", "limit": 100}));
    // The standard INBOX: ordinary, multipart, hostile and thread messages (not the 11 MB one).
    let inbox = call(&mut mm, "search", json!({"folder": "INBOX", "limit": 100}));
    let inbox_ids: Vec<String> = ids_of(&inbox).into_iter().filter(|(_, size)| *size < 1024 * 1024).map(|(id, _)| id).collect();
    for (id, _) in fetch.iter().take(20) {
        call(&mut mm, "fetch_message", json!({"id": id}));
    }
    for id in &inbox_ids {
        call(&mut mm, "fetch_message", json!({"id": id}));
    }
    for id in inbox_ids.iter().take(10) {
        call(&mut mm, "fetch_thread", json!({"id": id}));
    }
    (mm.peak_rss_kib(), calls, t.elapsed())
}

/// A fresh server process that fetches only the 11 MB HTML message; its peak RSS (KiB).
fn big_message_session(config: &Path) -> u64 {
    let mut mm = Mm::spawn(config);
    let big = mm.call("search", json!({"folder": "INBOX", "subject": "Big HTML newsletter"}));
    let id = big["structuredContent"]["meta"]["messages"][0]["id"].as_str().unwrap().to_string();
    mm.call("fetch_message", json!({"id": id}));
    mm.peak_rss_kib()
}

fn big_html_message(bytes: usize) -> Vec<u8> {
    let mut body = String::with_capacity(bytes + 1024);
    body.push_str("<html><head><style>.x{color:#333}</style></head><body><table>");
    let mut i = 0;
    while body.len() < bytes {
        body.push_str(&format!("<tr><td class=\"x\">Row {i}</td><td><a href=\"https://news.example/item/{i}\">Item {i} headline</a> and some text to read.</td></tr>\n"));
        i += 1;
    }
    body.push_str("</table></body></html>\n");
    dovecot::crlf(format!(
        "Date: Mon, 06 Jan 2025 08:00:00 +0000\nFrom: Big News <big@news.example>\nTo: {}\nSubject: Big HTML newsletter\nMessage-ID: <big-html@news.example>\nContent-Type: text/html; charset=utf-8\n\n{body}",
        dovecot::USER
    ))
}

fn main() {
    let n: usize = std::env::var("MAILMOAT_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    assert!(bin().exists(), "build the release binary first (make bench does)");
    eprintln!("seeding {n} messages…");
    let dc = dovecot::Dovecot::start(&dovecot::Seed::Large(n));
    dc.deliver("INBOX", &big_html_message(11 * 1024 * 1024), "");
    let config = dc.dir.join("mailmoat.toml");
    dc.write_mailmoat_config(&config, "readonly");
    let large = dovecot::LARGE;

    // Peak RSS first, each in a fresh process (before the timing loops warm Dovecot's caches
    // further; mailmoat keeps no cache of its own).
    let (session_rss, session_calls, session_time) = scripted_session(&config, n);
    let big_rss = big_message_session(&config);
    if std::env::var("MAILMOAT_BENCH_ONLY").as_deref() == Ok("rss") {
        println!(
            "\npeak RSS, scripted session ({session_calls} calls on {n} messages, {:.1} s): {:.1} MiB",
            session_time.as_secs_f64(),
            session_rss as f64 / 1024.0
        );
        println!("peak RSS, fetching the 11 MB HTML message alone: {:.1} MiB", big_rss as f64 / 1024.0);
        return;
    }

    // Cold start: spawn → first answer.
    let mut init = Vec::new();
    let mut list = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let mut mm = Mm::spawn(&config);
        mm.request("server/discover", json!({}));
        init.push(t.elapsed());
        drop(mm);
        let t = Instant::now();
        let mut mm = Mm::spawn(&config);
        mm.request("tools/list", json!({}));
        list.push(t.elapsed());
    }

    let mut mm = Mm::spawn(&config);
    let mut raw = Raw::connect(&dc);
    // Warm both sides (index building, pool, caches).
    mm.call("search", json!({"folder": large}));
    raw.cmd(&format!("EXAMINE {large}"));
    raw.cmd("UID SORT (DATE) UTF-8 ALL");

    let newest = mm.call("search", json!({"folder": large, "limit": 1}));
    let id = newest["structuredContent"]["meta"]["messages"][0]["id"].as_str().unwrap().to_string();
    let uid = newest["structuredContent"]["meta"]["messages"][0]["uid"].as_u64().unwrap();
    let subject = dovecot::large_subject(n / 2);

    let mut rows: Vec<(&str, Duration, Option<Duration>)> = Vec::new();
    rows.push(("list_folders", time(|| drop(mm.call("list_folders", json!({})))), {
        Some(time(|| {
            raw.cmd("LIST \"\" \"*\"");
            for f in ["INBOX", "Archive", "Archive/2024", "Drafts", "Sent", "Trash", "Junk", "Large", "Entw&APw-rfe"] {
                raw.cmd(&format!("STATUS \"{f}\" (MESSAGES UNSEEN UIDVALIDITY UIDNEXT)"));
            }
        }))
    }));
    rows.push(("search newest 20", time(|| drop(mm.call("search", json!({"folder": large})))), {
        Some(time(|| {
            raw.cmd(&format!("EXAMINE {large}"));
            raw.cmd("UID SORT (DATE) UTF-8 ALL");
            let top: Vec<String> = ((n as u64 - 19)..=n as u64).map(|u| u.to_string()).collect();
            raw.cmd(&format!("UID FETCH {} (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER]<0.65536>)", top.join(",")));
        }))
    }));
    rows.push(("search by subject", time(|| drop(mm.call("search", json!({"folder": large, "subject": subject})))), {
        Some(time(|| {
            raw.cmd(&format!("EXAMINE {large}"));
            raw.cmd(&format!("UID SORT (DATE) UTF-8 SUBJECT \"{subject}\""));
            raw.cmd(&format!("UID FETCH {} (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER]<0.65536>)", n / 2));
        }))
    }));
    rows.push((
        "search by sender",
        time(|| drop(mm.call("search", json!({"folder": large, "from": "bulk7@bulk.example", "limit": 20})))),
        {
            Some(time(|| {
                raw.cmd(&format!("EXAMINE {large}"));
                raw.cmd("UID SORT (DATE) UTF-8 FROM \"bulk7@bulk.example\"");
                raw.cmd(&format!("UID FETCH {} (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER]<0.65536>)", n));
            }))
        },
    ));
    rows.push(("fetch_message", time(|| drop(mm.call("fetch_message", json!({"id": id})))), {
        Some(time(|| {
            raw.cmd(&format!("EXAMINE {large}"));
            raw.cmd(&format!("UID FETCH {uid} (UID FLAGS RFC822.SIZE BODY.PEEK[]<0.16777217>)"));
        }))
    }));
    rows.push(("fetch_thread", time(|| drop(mm.call("fetch_thread", json!({"id": id})))), None));
    let big = mm.call("search", json!({"folder": "INBOX", "subject": "Big HTML newsletter"}));
    let big_id = big["structuredContent"]["meta"]["messages"][0]["id"].as_str().unwrap().to_string();
    let big_uid = big["structuredContent"]["meta"]["messages"][0]["uid"].as_u64().unwrap();
    rows.push(("fetch 11 MB HTML message", time(|| drop(mm.call("fetch_message", json!({"id": big_id})))), {
        Some(time(|| {
            raw.cmd("EXAMINE INBOX");
            raw.cmd(&format!("UID FETCH {big_uid} (UID FLAGS RFC822.SIZE BODY.PEEK[]<0.16777217>)"));
        }))
    }));
    let rss = mm.peak_rss_kib();

    println!("\nmailmoat benchmark: {n} messages, medians of {RUNS} runs (release build)\n");
    println!(
        "cold start: spawn → server/discover {:.1} ms; spawn → tools/list {:.1} ms",
        ms(median(init.clone())),
        ms(median(list.clone()))
    );
    println!(
        "peak RSS, scripted session ({session_calls} calls on {n} messages, {:.1} s): {:.1} MiB",
        session_time.as_secs_f64(),
        session_rss as f64 / 1024.0
    );
    println!("peak RSS, fetching the 11 MB HTML message alone: {:.1} MiB", big_rss as f64 / 1024.0);
    println!("peak RSS of the timing process after all runs below: {:.1} MiB\n", rss as f64 / 1024.0);
    println!("{:<26} {:>12} {:>12} {:>8}", "call", "mailmoat ms", "raw IMAP ms", "ratio");
    let mut json_rows = Vec::new();
    for (name, m, r) in &rows {
        match r {
            Some(r) => println!("{:<26} {:>12.2} {:>12.2} {:>8.2}", name, ms(*m), ms(*r), m.as_secs_f64() / r.as_secs_f64()),
            None => println!("{:<26} {:>12.2} {:>12} {:>8}", name, ms(*m), "-", "-"),
        }
        json_rows.push(
            json!({"call": name, "mailmoat_ms": ms(*m), "raw_imap_ms": r.map(ms), "ratio": r.map(|r| m.as_secs_f64() / r.as_secs_f64())}),
        );
    }
    let report = json!({
        "messages": n, "runs": RUNS,
        "cold_start_discover_ms": ms(median(init)), "cold_start_tools_list_ms": ms(median(list)),
        "peak_rss_kib": rss,
        "scripted_session": {"calls": session_calls, "seconds": session_time.as_secs_f64(), "peak_rss_kib": session_rss},
        "big_html_message": {"bytes": 11 * 1024 * 1024, "peak_rss_kib": big_rss},
        "calls": json_rows,
    });
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench.json");
    std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("\nwritten: {}", out.display());
}
