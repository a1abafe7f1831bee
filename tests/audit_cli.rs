//! `mailmoat audit verify [PATH]` through the library: the report text and the exit code for an
//! intact log, a rotated series, a tampered log and an unreadable path.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use mailmoat::audit::{self, AuditLog, Event, Record};
use serde_json::json;

/// A fresh directory for one test, removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn log(&self) -> PathBuf {
        self.0.join("audit.jsonl")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("mailmoat-audit-cli-{}-{}-{name}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    let _ = fs::remove_dir_all(&dir);
    Scratch(dir)
}

/// A log holding a startup record and `calls` tool calls with their results.
fn session(path: &Path, max_bytes: u64, calls: u64) -> audit::AuditHead {
    let log = AuditLog::open(path, max_bytes).unwrap();
    let mut head = log.append(Record::new(Event::Startup).client("test-client", "0.1").detail("serving")).unwrap();
    for i in 0..calls {
        log.append_durable(Record::new(Event::ToolCall).account("work").tool("move_messages").request_id(json!(i)).message_ids(["m1"]))
            .unwrap();
        head = log
            .append_durable(Record::new(Event::ToolResult).account("work").tool("move_messages").request_id(json!(i)).ok().subject("Hello"))
            .unwrap();
    }
    head
}

#[test]
fn an_intact_log_reports_count_and_head_and_exits_0() {
    let dir = scratch("intact");
    let path = dir.log();
    let head = session(&path, audit::DEFAULT_MAX_BYTES, 5);
    let (text, code) = audit::verify_cli(Some(&path));
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        text,
        format!("audit log intact: 11 records (seq 1..=11) in 1 file(s)\nhead {}\n  {}: 11 records\n", head.hash, path.display())
    );
    assert_eq!(head.seq, 11);
}

#[test]
fn a_rotated_series_is_verified_as_one_chain() {
    let dir = scratch("series");
    let path = dir.log();
    let head = session(&path, 4096, 20);
    let (text, code) = audit::verify_cli(Some(&path));
    assert_eq!(code, 0, "{text}");
    let first = text.lines().next().unwrap();
    assert!(first.starts_with(&format!("audit log intact: {} records (seq 1..={}) in ", head.seq, head.seq)), "{text}");
    assert!(!first.ends_with(" in 1 file(s)"), "the series should span several files: {text}");
    assert!(text.contains(&format!("head {}\n", head.hash)));
    assert!(text.contains(&format!("{}.1: ", path.display())));
}

#[test]
fn a_tampered_log_names_the_line_and_exits_1() {
    let dir = scratch("tampered");
    let path = dir.log();
    session(&path, audit::DEFAULT_MAX_BYTES, 3);
    let text = fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(2);
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    let (report, code) = audit::verify_cli(Some(&path));
    assert_eq!(code, 1);
    assert_eq!(
        report,
        format!(
            "audit log BROKEN at {}:3 (seq 4): record missing before this line: seq 3 is absent (found 4)\n2 record(s) before it verified\n",
            path.display()
        )
    );

    let dir = scratch("edited");
    let path = dir.log();
    session(&path, audit::DEFAULT_MAX_BYTES, 3);
    let text = fs::read_to_string(&path).unwrap().replacen("\"outcome\":\"ok\"", "\"outcome\":\"denied\"", 1);
    fs::write(&path, text).unwrap();
    let (report, code) = audit::verify_cli(Some(&path));
    assert_eq!(code, 1);
    assert!(report.starts_with(&format!("audit log BROKEN at {}:3 (seq 3): record edited", path.display())), "{report}");
}

#[test]
fn an_unreadable_path_exits_2() {
    let dir = scratch("missing");
    let path = dir.log();
    let (text, code) = audit::verify_cli(Some(&path));
    assert_eq!(code, 2);
    assert!(text.starts_with(&format!("cannot verify audit log {}: ", path.display())), "{text}");
    assert!(text.contains("No such file or directory"), "{text}");
}

#[test]
fn subjects_stay_out_of_the_log() {
    let dir = scratch("subject");
    let path = dir.log();
    let log = AuditLog::open(&path, audit::DEFAULT_MAX_BYTES).unwrap();
    log.append(Record::new(Event::ToolResult).tool("fetch_message").subject("CANARY-cli-subject").ok()).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains("CANARY"));
    assert!(text.contains(&format!("\"subject_digest\":\"{}\"", log.subject_digest("CANARY-cli-subject"))));
}
