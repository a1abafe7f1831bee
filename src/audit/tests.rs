//! Tests of the audit log: the chain, tampering reports, rotation, sharing between processes,
//! file safety and subject privacy.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};

use super::record::seal;
use super::*;

/// A fresh, not yet created directory for one test, removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    /// `audit.jsonl` inside.
    fn log(&self) -> PathBuf {
        self.0.join("audit.jsonl")
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("mailmoat-audit-{}-{}-{name}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    let _ = fs::remove_dir_all(&dir);
    Scratch(dir)
}

fn call(i: u64) -> Record {
    Record::new(Event::ToolCall).account("work").tool("search").request_id(json!(i)).folders(["INBOX"]).ok()
}

/// A log of `n` records at `<dir>/audit.jsonl`; keep the directory guard alive.
fn log_of(name: &str, n: u64) -> (Scratch, PathBuf) {
    let dir = scratch(name);
    let path = dir.log();
    let log = AuditLog::open(&path, DEFAULT_MAX_BYTES).unwrap();
    for i in 1..=n {
        assert_eq!(log.append(call(i)).unwrap().seq, i);
    }
    (dir, path)
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap().lines().map(str::to_string).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}

fn parse(line: &str) -> serde_json::Map<String, Value> {
    match serde_json::from_str(line).unwrap() {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// `(file, line, seq, problem, verified)` of a broken report.
fn broken(report: VerifyReport) -> (PathBuf, u64, Option<u64>, Problem, u64) {
    match report {
        VerifyReport::Broken { file, line, seq, problem, verified } => (file, line, seq, problem, verified),
        other => panic!("expected a broken report, got {other:?}"),
    }
}

fn intact_count(report: &VerifyReport) -> u64 {
    match report {
        VerifyReport::Intact { count, .. } => *count,
        other => panic!("expected an intact log, got {other}"),
    }
}

#[test]
fn records_chain_from_zero_and_verify_intact() {
    let (_dir, path) = log_of("chain", 3);
    let ls = lines(&path);
    assert_eq!(ls.len(), 3);
    let first = parse(&ls[0]);
    assert_eq!(first["prev"], ZERO_HASH);
    assert_eq!(first["seq"], 1);
    assert_eq!(first["event"], "tool_call");
    assert_eq!(first["pid"], std::process::id());
    assert_eq!(first["request_id"], 1);
    assert_eq!(first["targets"], json!({"folders": ["INBOX"]}));
    assert_eq!(first["outcome"], "ok");
    let ts = first["ts"].as_str().unwrap();
    assert!(ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
    for pair in ls.windows(2) {
        assert_eq!(parse(&pair[1])["prev"], parse(&pair[0])["hash"]);
    }
    let report = verify(&path);
    let head = parse(&ls[2])["hash"].as_str().unwrap().to_string();
    match &report {
        VerifyReport::Intact { count: 3, first_seq: Some(1), head_seq: Some(3), head_hash, continues_from: None, files } => {
            assert_eq!(head_hash, &head);
            assert_eq!(files, &vec![FileSummary { path: path.clone(), records: 3 }]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn every_field_is_written_and_the_canonical_form_is_what_is_hashed() {
    let dir = scratch("fields");
    let path = dir.log();
    let log = AuditLog::open(&path, DEFAULT_MAX_BYTES).unwrap();
    let head = log
        .append_durable(
            Record::new(Event::ToolResult)
                .account("work")
                .tool("send_email")
                .request_id(json!("req-7"))
                .client("claude-code", "1.2.3")
                .message_ids(["m1"])
                .recipients(["bob@example.org"])
                .error("smtp_error")
                .duration(std::time::Duration::from_millis(1234))
                .subject("Quarterly numbers")
                .detail("550 mailbox unavailable"),
        )
        .unwrap();
    let line = lines(&path).remove(0);
    let m = parse(&line);
    let keys: Vec<&str> = m.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "account",
            "client",
            "detail",
            "duration_ms",
            "event",
            "hash",
            "outcome",
            "pid",
            "prev",
            "request_id",
            "seq",
            "subject_digest",
            "targets",
            "tool",
            "ts"
        ]
    );
    assert_eq!(m["client"], json!({"name": "claude-code", "version": "1.2.3"}));
    assert_eq!(m["targets"], json!({"message_ids": ["m1"], "recipients": ["bob@example.org"]}));
    assert_eq!(m["outcome"], "smtp_error");
    assert_eq!(m["duration_ms"], 1234);
    assert_eq!(m["hash"], head.hash.as_str());
    let mut without = m.clone();
    without.remove("hash");
    assert_eq!(sha256_hex(canonical(&Value::Object(without)).as_bytes()), head.hash);
    assert_eq!(canonical(&Value::Object(m)), line, "the line is the canonical form");
}

#[test]
fn subjects_are_never_written_in_clear() {
    const CANARY: &str = "CANARY-subject-5be1 Re: payroll";
    let dir = scratch("canary");
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path, DEFAULT_MAX_BYTES).unwrap();
    log.append(Record::new(Event::ToolCall).tool("fetch_message").subject(CANARY)).unwrap();
    drop(log);
    for entry in fs::read_dir(&dir).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("CANARY"));
    }
    let digest = parse(&lines(&path)[0])["subject_digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), SUBJECT_DIGEST_HEX);
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
    // Keyed: stable for this log (the key persists), different under another log's key.
    let again = AuditLog::open(&path, DEFAULT_MAX_BYTES).unwrap();
    assert_eq!(again.subject_digest(CANARY), digest);
    assert_ne!(again.subject_digest("another subject"), digest);
    let dir2 = scratch("canary2");
    let other = AuditLog::open(&dir2.log(), DEFAULT_MAX_BYTES).unwrap();
    assert_ne!(other.subject_digest(CANARY), digest);
    let key_text = fs::read_to_string(dir.join("audit.jsonl.key")).unwrap();
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&key_text[2 * i..2 * i + 2], 16).unwrap();
    }
    assert_eq!(&hex_prefix(&hmac_sha256(&key, CANARY.as_bytes())), &digest, "HMAC-SHA256 under the key file's key");
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(SUBJECT_DIGEST_HEX / 2).map(|b| format!("{b:02x}")).collect()
}

#[test]
fn files_are_private_and_the_directory_is_created_0700() {
    let dir = scratch("modes");
    let path = dir.join("state/mailmoat/audit.jsonl");
    let log = AuditLog::open(&path, DEFAULT_MAX_BYTES).unwrap();
    log.append(call(1)).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("state")), 0o700);
    assert_eq!(mode(&dir.join("state/mailmoat")), 0o700);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.join("state/mailmoat/audit.jsonl.key")), 0o600);
    assert_eq!(mode(&dir.join("state/mailmoat/audit.jsonl.lock")), 0o600);

    // A log someone created world-readable is tightened; a loose key is refused.
    let dir_loose = scratch("loose");
    let loose = dir_loose.log();
    fs::create_dir_all(loose.parent().unwrap()).unwrap();
    fs::write(&loose, "").unwrap();
    fs::set_permissions(&loose, fs::Permissions::from_mode(0o644)).unwrap();
    AuditLog::open(&loose, DEFAULT_MAX_BYTES).unwrap();
    assert_eq!(mode(&loose), 0o600);
    let key = loose.with_file_name("audit.jsonl.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    match AuditLog::open(&loose, DEFAULT_MAX_BYTES) {
        Err(AuditError::KeyTooOpen { path, mode: 0o640 }) => assert_eq!(path, key),
        other => panic!("{other:?}"),
    }
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&key, "not hex\n").unwrap();
    assert!(matches!(AuditLog::open(&loose, DEFAULT_MAX_BYTES), Err(AuditError::KeyMalformed { .. })));
}

#[test]
fn symlinks_are_refused() {
    let dir = scratch("symlink");
    fs::create_dir_all(&dir).unwrap();
    let target = dir.join("elsewhere.jsonl");
    fs::write(&target, "precious\n").unwrap();
    let path = dir.join("audit.jsonl");
    symlink(&target, &path).unwrap();
    let err = AuditLog::open(&path, DEFAULT_MAX_BYTES).unwrap_err();
    assert!(matches!(&err, AuditError::Symlink { path: p } if *p == path), "{err:?}");
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious\n");

    // A dangling link is not created through either.
    fs::remove_file(&path).unwrap();
    symlink(dir.join("nowhere.jsonl"), &path).unwrap();
    assert!(matches!(AuditLog::open(&path, DEFAULT_MAX_BYTES), Err(AuditError::Symlink { .. })));
    assert!(!dir.join("nowhere.jsonl").exists());

    // Nor a symlinked key file.
    let path2 = dir.join("b.jsonl");
    symlink(&target, dir.join("b.jsonl.key")).unwrap();
    match AuditLog::open(&path2, DEFAULT_MAX_BYTES) {
        Err(AuditError::Symlink { path }) => assert_eq!(path, dir.join("b.jsonl.key")),
        other => panic!("{other:?}"),
    }

    // A log swapped for a symlink after opening is refused at the next append.
    let path3 = dir.join("c.jsonl");
    let log = AuditLog::open(&path3, DEFAULT_MAX_BYTES).unwrap();
    log.append(call(1)).unwrap();
    fs::remove_file(&path3).unwrap();
    symlink(&target, &path3).unwrap();
    assert!(matches!(log.append(call(2)), Err(AuditError::Symlink { .. })));
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious\n");
}

#[test]
fn a_tiny_rotation_size_is_refused() {
    let dir = scratch("tiny");
    let path = dir.log();
    match AuditLog::open(&path, 10) {
        Err(e @ AuditError::MaxBytesTooSmall { max_bytes: 10 }) => assert!(e.to_string().contains("minimum of 1024")),
        other => panic!("{other:?}"),
    }
}

struct Case {
    name: &'static str,
    tamper: fn(&mut Vec<String>),
    line: u64,
    seq: Option<u64>,
    problem: Problem,
    verified: u64,
}

/// A copy of the record at `l[from]` with seq 6, a forged detail and this `prev`, re-hashed.
fn forged(l: &[String], from: usize, prev: Value) -> String {
    let mut m = parse(&l[from]);
    m.insert("seq".into(), 6.into());
    m.insert("detail".into(), "forged".into());
    m.insert("prev".into(), prev);
    seal(m).0
}

fn move_line_later(l: &mut Vec<String>) {
    let moved = l.remove(1);
    l.insert(6, moved);
}

fn insert_forged_with_wrong_prev(l: &mut Vec<String>) {
    let line = forged(l, 4, sha256_hex(b"guess").into());
    l.insert(5, line);
}

fn insert_forged_linking_back(l: &mut Vec<String>) {
    let line = forged(l, 4, parse(&l[4])["hash"].clone());
    l.insert(5, line);
}

/// The record re-hashed with another seq.
fn with_seq(line: &str, seq: u64) -> String {
    let mut m = parse(line);
    m.insert("seq".into(), seq.into());
    seal(m).0
}

/// The record without its `hash`.
fn without_hash(line: &str) -> String {
    let mut m = parse(line);
    m.remove("hash");
    canonical(&Value::Object(m))
}

/// Each tampering of a 10-record log, and the exact report it must get.
#[test]
fn tampering_is_reported_exactly() {
    let missing = |expected_seq, found_seq| Problem::Missing { expected_seq, found_seq };
    let reordered = |expected_seq, found_seq| Problem::Reordered { expected_seq, found_seq };
    let cases = [
        Case {
            name: "edit a field",
            tamper: |l| l[3] = l[3].replace("\"account\":\"work\"", "\"account\":\"home\""),
            line: 4,
            seq: Some(4),
            problem: Problem::Edited,
            verified: 3,
        },
        Case { name: "delete a line", tamper: |l| drop(l.remove(4)), line: 5, seq: Some(6), problem: missing(5, 6), verified: 4 },
        Case { name: "delete two lines", tamper: |l| drop(l.drain(4..6)), line: 5, seq: Some(7), problem: missing(5, 7), verified: 4 },
        Case { name: "delete the first line", tamper: |l| drop(l.remove(0)), line: 1, seq: Some(2), problem: missing(1, 2), verified: 0 },
        Case { name: "swap two lines", tamper: |l| l.swap(2, 3), line: 3, seq: Some(4), problem: reordered(3, 4), verified: 2 },
        Case { name: "move a line later", tamper: move_line_later, line: 2, seq: Some(3), problem: reordered(2, 3), verified: 1 },
        Case {
            name: "insert a forged line with a wrong prev",
            tamper: insert_forged_with_wrong_prev,
            line: 6,
            seq: Some(6),
            problem: Problem::Inserted,
            verified: 5,
        },
        Case {
            name: "insert a forged line that links back",
            tamper: insert_forged_linking_back,
            line: 6,
            seq: Some(6),
            problem: Problem::Inserted,
            verified: 5,
        },
        Case {
            name: "re-hash a record with another seq",
            tamper: |l| l[4] = with_seq(&l[4], 50),
            line: 5,
            seq: Some(50),
            problem: Problem::BadSeq { expected: 5, found: 50 },
            verified: 4,
        },
        Case {
            name: "re-serialize a record",
            tamper: |l| l[1] = l[1].replacen(',', ", ", 1),
            line: 2,
            seq: Some(2),
            problem: Problem::NotCanonical,
            verified: 1,
        },
        Case {
            name: "a garbage line",
            tamper: |l| l.insert(7, "rm -rf /".into()),
            line: 8,
            seq: None,
            problem: Problem::Malformed { reason: "not valid JSON" },
            verified: 7,
        },
        Case {
            name: "a record without its hash",
            tamper: |l| l[0] = without_hash(&l[0]),
            line: 1,
            seq: Some(1),
            problem: Problem::Malformed { reason: "missing or invalid `hash`" },
            verified: 0,
        },
    ];
    for case in cases {
        let (_dir, path) = log_of("tamper", 10);
        let mut ls = lines(&path);
        (case.tamper)(&mut ls);
        write_lines(&path, &ls);
        let got = broken(verify(&path));
        assert_eq!(got, (path.clone(), case.line, case.seq, case.problem, case.verified), "{}", case.name);
    }
}

#[test]
fn a_last_line_cut_mid_way_is_reported_as_truncated() {
    let (_dir, path) = log_of("truncate", 10);
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 40).unwrap();
    assert_eq!(broken(verify(&path)), (path.clone(), 10, None, Problem::Truncated, 9));
    // Only the newline removed: still reported, since the writer always ends a record with one.
    let (_dir, path) = log_of("truncate-nl", 3);
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 1).unwrap();
    assert_eq!(broken(verify(&path)), (path.clone(), 3, Some(3), Problem::Truncated, 2));
}

/// Appends until `<log>.<files>` exists; returns the number of records appended.
fn fill_until_rotated(log: &AuditLog, files: u32) -> u64 {
    let mut n = 0;
    while !file::numbered(log.path(), files).exists() {
        n += 1;
        log.append(call(n)).unwrap();
        assert!(n < 10_000, "never rotated");
    }
    n
}

#[test]
fn rotation_chains_across_files() {
    let dir = scratch("rotate");
    let path = dir.log();
    let log = AuditLog::open(&path, 2048).unwrap();
    let n = fill_until_rotated(&log, 3);
    for f in [file::numbered(&path, 1), file::numbered(&path, 2), file::numbered(&path, 3), path.clone()] {
        assert!(fs::metadata(&f).unwrap().len() <= 2048, "{} over the limit", f.display());
    }
    // The current file starts with `rotated`, linked to the head of `.1`, seq continuing.
    let first = parse(&lines(&path)[0]);
    let old_head = parse(lines(&file::numbered(&path, 1)).last().unwrap());
    assert_eq!(first["event"], "rotated");
    assert_eq!(first["prev"], old_head["hash"]);
    assert_eq!(first["seq"].as_u64(), old_head["seq"].as_u64().map(|s| s + 1));
    assert_eq!(first["detail"], "rotated at size limit; previous file audit.jsonl.1");

    let report = verify(&path);
    // n calls plus one `rotated` record per rotation (3).
    assert_eq!(intact_count(&report), n + 3);
    match &report {
        VerifyReport::Intact { files, head_seq, continues_from: None, .. } => {
            assert_eq!(files.len(), 4);
            assert_eq!(files[0].path, file::numbered(&path, 3));
            assert_eq!(files.iter().map(|f| f.records).sum::<u64>(), n + 3);
            assert_eq!(*head_seq, Some(n + 3));
        }
        other => panic!("{other:?}"),
    }
    // The current file alone verifies as a continuation.
    assert!(matches!(verify_file(&path), VerifyReport::Intact { continues_from: Some(_), .. }));

    // Tampering inside a rotated file is reported there; a missing generation is reported by name.
    let p2 = file::numbered(&path, 2);
    let mut l2 = lines(&p2);
    l2[1] = l2[1].replace("\"tool\":\"search\"", "\"tool\":\"delete\"");
    write_lines(&p2, &l2);
    let (file, line, _, problem, _) = broken(verify(&path));
    assert_eq!((file, line, problem), (p2.clone(), 2, Problem::Edited));
    fs::remove_file(&p2).unwrap();
    assert_eq!(broken(verify(&path)), (p2, 0, None, Problem::MissingFile, 0));
}

#[test]
fn rotation_keeps_five_generations_and_the_rest_still_verifies() {
    let dir = scratch("keep");
    let path = dir.log();
    let log = AuditLog::open(&path, 1024).unwrap();
    fill_until_rotated(&log, KEEP_ROTATED);
    for i in 0..20 {
        log.append(call(i)).unwrap();
    }
    assert!(!file::numbered(&path, KEEP_ROTATED + 1).exists());
    match verify(&path) {
        VerifyReport::Intact { files, continues_from: Some(h), .. } => {
            assert_eq!(files.len(), KEEP_ROTATED as usize + 1);
            assert_eq!(h.len(), 64);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_torn_last_record_is_kept_as_evidence_and_logging_goes_on() {
    let (_dir, path) = log_of("torn", 5);
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 30).unwrap();
    let log = AuditLog::open(&path, DEFAULT_MAX_BYTES).unwrap();
    let head = log.append(call(6)).unwrap();
    assert_eq!(head.seq, 2, "the seq of the torn record is unreadable: the new chain starts over");
    let first = parse(&lines(&path)[0]);
    assert_eq!(first["event"], "rotated");
    assert!(first["detail"].as_str().unwrap().starts_with("previous file ends in a damaged record"));
    let p1 = file::numbered(&path, 1);
    assert_eq!(broken(verify(&path)), (p1, 5, None, Problem::Truncated, 4));
    assert!(matches!(verify_file(&path), VerifyReport::Intact { count: 2, .. }));
}

#[test]
fn a_crash_part_way_through_shifting_leaves_no_gap() {
    let dir = scratch("half-shifted");
    let path = dir.log();
    let log = AuditLog::open(&path, 2048).unwrap();
    fill_until_rotated(&log, 2);
    // An interrupted rotation: `.2` → `.3` and `.1` → `.2` done, the log itself not yet renamed.
    fs::rename(file::numbered(&path, 2), file::numbered(&path, 3)).unwrap();
    fs::rename(file::numbered(&path, 1), file::numbered(&path, 2)).unwrap();
    assert_eq!(broken(verify(&path)).3, Problem::MissingFile);
    // Logging goes on in the same file, and the next rotation fills the hole.
    while !file::numbered(&path, 1).exists() {
        log.append(call(0)).unwrap();
    }
    assert!(!file::numbered(&path, 4).exists());
    let report = verify(&path);
    assert!(report.is_intact(), "{report}");
}

#[test]
fn a_crash_between_rename_and_new_file_is_healed() {
    let (_dir, path) = log_of("half-rotated", 3);
    let log = AuditLog::open(&path, DEFAULT_MAX_BYTES).unwrap();
    fs::rename(&path, file::numbered(&path, 1)).unwrap();
    assert_eq!(log.append(call(4)).unwrap().seq, 5);
    let first = parse(&lines(&path)[0]);
    assert_eq!((first["event"].as_str(), first["seq"].as_u64()), (Some("rotated"), Some(4)));
    assert_eq!(intact_count(&verify(&path)), 5);
}

#[test]
fn instances_sharing_a_path_continue_one_sequence() {
    let dir = scratch("share");
    let path = dir.log();
    let a = AuditLog::open(&path, DEFAULT_MAX_BYTES).unwrap();
    let b = AuditLog::open(&path, DEFAULT_MAX_BYTES).unwrap();
    assert_eq!(a.append(call(1)).unwrap().seq, 1);
    assert_eq!(b.append(call(2)).unwrap().seq, 2);
    assert_eq!(a.append_durable(call(3)).unwrap().seq, 3);
    assert_eq!(intact_count(&verify(&path)), 3);
}

#[test]
fn threads_with_their_own_instances_and_rotation_make_one_chain() {
    let dir = scratch("threads");
    let path = dir.log();
    std::thread::scope(|s| {
        for t in 0..4 {
            let path = &path;
            s.spawn(move || {
                let log = AuditLog::open(path, 64 * 1024).unwrap();
                for i in 0..100 {
                    log.append(Record::new(Event::ToolCall).detail(format!("thread {t} #{i}"))).unwrap();
                }
            });
        }
    });
    let report = verify(&path);
    assert!(report.is_intact(), "{report}");
    let VerifyReport::Intact { head_seq, files, .. } = report else { unreachable!() };
    let rotations = files.len() as u64 - 1;
    assert!(rotations >= 1, "the test should rotate");
    assert_eq!(head_seq, Some(400 + rotations));
}

const CHILD_ENV: &str = "MAILMOAT_AUDIT_TEST_CHILD";

/// Helper run in child processes by `two_processes_append_to_one_chain`; does nothing otherwise.
#[test]
fn child_appender() {
    let Some(path) = std::env::var_os(CHILD_ENV) else { return };
    let log = AuditLog::open(Path::new(&path), DEFAULT_MAX_BYTES).unwrap();
    for i in 0..200 {
        log.append(Record::new(Event::ToolCall).detail(format!("child #{i}"))).unwrap();
    }
}

#[test]
fn two_processes_append_to_one_chain() {
    let dir = scratch("procs");
    let path = dir.log();
    AuditLog::open(&path, DEFAULT_MAX_BYTES).unwrap();
    let exe = std::env::current_exe().unwrap();
    let spawn = || {
        std::process::Command::new(&exe)
            .args(["--exact", "audit::tests::child_appender", "--test-threads=1", "--quiet"])
            .env(CHILD_ENV, &path)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let children = [spawn(), spawn()];
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(intact_count(&verify(&path)), 400);
    let ls = lines(&path);
    let mut pids: Vec<u64> = ls.iter().map(|l| parse(l)["pid"].as_u64().unwrap()).collect();
    let seqs: Vec<u64> = ls.iter().map(|l| parse(l)["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=400).collect::<Vec<u64>>());
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 2, "both children wrote");
    assert!(!pids.contains(&u64::from(std::process::id())));
}

#[test]
fn verify_reports_an_unreadable_path() {
    let dir = scratch("absent");
    let path = dir.log();
    let report = verify(&path);
    assert!(matches!(&report, VerifyReport::Unreadable { file, .. } if *file == path), "{report:?}");
    assert_eq!(report.exit_code(), 2);
}

#[test]
fn default_path_prefers_xdg_state_home() {
    // Only reads the environment; the variables are not changed here (tests run in threads).
    let got = default_path();
    match (std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()), std::env::var_os("HOME").filter(|v| !v.is_empty())) {
        (Some(x), _) => assert_eq!(got, Some(PathBuf::from(x).join("mailmoat/audit.jsonl"))),
        (None, Some(h)) => assert_eq!(got, Some(PathBuf::from(h).join(".local/state/mailmoat/audit.jsonl"))),
        (None, None) => assert_eq!(got, None),
    }
}

#[test]
fn audit_config_keys_defaults_and_validation() {
    let c: AuditConfig = toml::from_str("").unwrap();
    assert_eq!(c, AuditConfig { enabled: true, path: None, max_bytes: DEFAULT_MAX_BYTES });
    c.validate().unwrap();
    let c: AuditConfig = toml::from_str("enabled = false\npath = \"/var/log/mm.jsonl\"\nmax_bytes = 1048576\n").unwrap();
    assert_eq!(c, AuditConfig { enabled: false, path: Some("/var/log/mm.jsonl".into()), max_bytes: 1 << 20 });
    assert!(c.open().unwrap().is_none(), "disabled");
    assert!(toml::from_str::<AuditConfig>("pth = \"/x\"\n").unwrap_err().to_string().contains("unknown field `pth`"));
    let relative = AuditConfig { path: Some("audit.jsonl".into()), ..AuditConfig::default() };
    assert_eq!(relative.validate().unwrap_err(), "audit.path must be an absolute path");
    let tiny = AuditConfig { max_bytes: 10, ..AuditConfig::default() };
    assert_eq!(tiny.validate().unwrap_err(), "audit.max_bytes = 10 is out of range (1024..=1099511627776)");
    let dir = scratch("config");
    let path = dir.log();
    let log = AuditConfig { path: Some(path.clone()), ..AuditConfig::default() }.open().unwrap().unwrap();
    assert_eq!(log.path(), path);
}
