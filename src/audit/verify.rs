//! Checking a log, or a rotated series of logs, from the oldest record to the newest: every line
//! parses, matches its hash and is in canonical form, `prev` links to the record before, and
//! `seq` counts up by one. The first problem is reported with its file and line.
//!
//! Reads line by line with bounded memory: when a link breaks, the rest of the series is scanned
//! once more to tell an inserted record from a reordered or a missing one.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::file::{numbered, MAX_LINE_BYTES};
use super::record::{canonical_object, is_hash, sha256_hex, ZERO_HASH};

/// One file of a verified series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSummary {
    pub path: PathBuf,
    pub records: u64,
}

/// What is wrong with the first bad record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The last line has no newline: the file was cut, or a write did not finish.
    Truncated,
    /// The line is not a record: not JSON, not an object, or a required field is missing.
    Malformed { reason: &'static str },
    /// The line is longer than any record the writer produces.
    LineTooLong,
    /// The record's contents do not match its `hash`: a field was edited.
    Edited,
    /// The record matches its hash but is not byte for byte the canonical form: re-serialized.
    NotCanonical,
    /// The record is not part of the chain: the record after it links to the record before it.
    Inserted,
    /// Records between the previous one and this one are missing.
    Missing { expected_seq: u64, found_seq: u64 },
    /// A numbered file of the rotated series is missing.
    MissingFile,
    /// The record is out of order: it belongs after a record that comes later.
    Reordered { expected_seq: u64, found_seq: u64 },
    /// The record links to the previous one but carries the wrong sequence number.
    BadSeq { expected: u64, found: u64 },
    /// The record's `prev` is not the previous record's hash.
    BadLink,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Truncated => f.write_str("the last line is cut short (no newline): the file was truncated or a write did not finish"),
            Problem::Malformed { reason } => write!(f, "not a record: {reason}"),
            Problem::LineTooLong => write!(f, "line longer than {MAX_LINE_BYTES} bytes: not a record"),
            Problem::Edited => f.write_str("record edited: its contents do not match its hash"),
            Problem::NotCanonical => f.write_str("record rewritten: it is not in the canonical form the writer produces"),
            Problem::Inserted => f.write_str("record inserted: the record after it links to the record before it"),
            Problem::Missing { expected_seq, found_seq } => match found_seq - expected_seq {
                1 => write!(f, "record missing before this line: seq {expected_seq} is absent (found {found_seq})"),
                n => write!(f, "{n} records missing before this line: seq {expected_seq}..={} are absent", found_seq - 1),
            },
            Problem::MissingFile => f.write_str("file missing from the rotated series"),
            Problem::Reordered { expected_seq, found_seq } => {
                write!(f, "records reordered: found seq {found_seq} where seq {expected_seq} belongs")
            }
            Problem::BadSeq { expected, found } => write!(f, "sequence number {found} where {expected} belongs"),
            Problem::BadLink => f.write_str("record does not link to the previous record (its prev is not that record's hash)"),
        }
    }
}

/// The result of checking a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyReport {
    /// Every record checks out.
    Intact {
        /// Oldest first.
        files: Vec<FileSummary>,
        count: u64,
        first_seq: Option<u64>,
        head_seq: Option<u64>,
        /// Hash of the newest record (64 zeros when there is none).
        head_hash: String,
        /// When the oldest file is itself a rotation whose predecessors were deleted: the head
        /// hash of the deleted file, which cannot be checked.
        continues_from: Option<String>,
    },
    /// The first bad record. `line` is 1-based (0 for a missing file); `verified` records before
    /// it checked out.
    Broken { file: PathBuf, line: u64, seq: Option<u64>, problem: Problem, verified: u64 },
    /// A file could not be read.
    Unreadable { file: PathBuf, reason: String },
}

impl VerifyReport {
    /// 0 intact, 1 broken, 2 unreadable.
    pub fn exit_code(&self) -> i32 {
        match self {
            VerifyReport::Intact { .. } => 0,
            VerifyReport::Broken { .. } => 1,
            VerifyReport::Unreadable { .. } => 2,
        }
    }

    pub fn is_intact(&self) -> bool {
        matches!(self, VerifyReport::Intact { .. })
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyReport::Intact { files, count, first_seq, head_seq, head_hash, continues_from } => {
                match (first_seq, head_seq) {
                    (Some(a), Some(b)) => {
                        writeln!(f, "audit log intact: {count} records (seq {a}..={b}) in {} file(s)", files.len())?;
                    }
                    _ => writeln!(f, "audit log intact: no records yet")?,
                }
                writeln!(f, "head {head_hash}")?;
                for file in files {
                    writeln!(f, "  {}: {} records", file.path.display(), file.records)?;
                }
                if let Some(h) = continues_from {
                    writeln!(f, "note: the oldest file continues from a rotated file no longer present (its head {h})")?;
                }
                Ok(())
            }
            VerifyReport::Broken { file, line: 0, problem, verified, .. } => {
                writeln!(f, "audit log BROKEN: {}: {problem}", file.display())?;
                writeln!(f, "{verified} record(s) before it verified")
            }
            VerifyReport::Broken { file, line, seq, problem, verified } => {
                let seq = seq.map(|s| format!(" (seq {s})")).unwrap_or_default();
                writeln!(f, "audit log BROKEN at {}:{line}{seq}: {problem}", file.display())?;
                writeln!(f, "{verified} record(s) before it verified")
            }
            VerifyReport::Unreadable { file, reason } => writeln!(f, "cannot verify audit log {}: {reason}", file.display()),
        }
    }
}

/// `mailmoat audit verify [PATH]`: the report text and the exit code (0 intact, 1 broken,
/// 2 unreadable). Without a path, the default log ([`super::default_path`]).
pub fn verify_cli(path: Option<&Path>) -> (String, i32) {
    let path = match path.map(Path::to_path_buf).or_else(super::default_path) {
        Some(p) => p,
        None => return ("cannot verify: no audit log path given, and neither XDG_STATE_HOME nor HOME is set\n".to_string(), 2),
    };
    let report = verify(&path);
    (report.to_string(), report.exit_code())
}

/// Verifies the series `<path>.N` … `<path>.1`, `<path>` as one chain (only `<path>` when
/// there are no rotated files).
pub fn verify(path: &Path) -> VerifyReport {
    if let Err(e) = std::fs::metadata(path) {
        return VerifyReport::Unreadable { file: path.to_path_buf(), reason: e.to_string() };
    }
    let mut rotated = rotated_numbers(path);
    rotated.sort_unstable();
    if let Some(&max) = rotated.last() {
        if let Some(gap) = (1..=max).find(|n| rotated.binary_search(n).is_err()) {
            return VerifyReport::Broken { file: numbered(path, gap), line: 0, seq: None, problem: Problem::MissingFile, verified: 0 };
        }
    }
    let mut files: Vec<PathBuf> = rotated.iter().rev().map(|&n| numbered(path, n)).collect();
    files.push(path.to_path_buf());
    check(files)
}

/// Verifies one file on its own.
pub fn verify_file(path: &Path) -> VerifyReport {
    if let Err(e) = std::fs::metadata(path) {
        return VerifyReport::Unreadable { file: path.to_path_buf(), reason: e.to_string() };
    }
    check(vec![path.to_path_buf()])
}

/// The N of every `<path>.N` beside `path`.
fn rotated_numbers(path: &Path) -> Vec<u32> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else { return Vec::new() };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let prefix = format!("{name}.");
    entries
        .filter_map(|e| {
            let file_name = e.ok()?.file_name();
            let digits = file_name.to_str()?.strip_prefix(&prefix)?;
            if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
                return None;
            }
            digits.parse().ok()
        })
        .collect()
}

/// The fields the chain needs, from a line that passed every per-line check.
struct Parsed {
    seq: u64,
    prev: String,
    hash: String,
    rotated: bool,
}

struct Entry {
    file: usize,
    line: u64,
    /// `seq` as far as readable, for the report.
    seq: Option<u64>,
    rec: Result<Parsed, Problem>,
}

/// Reads the records of a series of files in order.
struct Series {
    files: Vec<PathBuf>,
    idx: usize,
    reader: Option<BufReader<File>>,
    line: u64,
}

impl Series {
    fn next_entry(&mut self) -> Option<Result<Entry, VerifyReport>> {
        loop {
            let reader = match &mut self.reader {
                Some(r) => r,
                None => {
                    let path = self.files.get(self.idx)?;
                    match File::open(path) {
                        Ok(f) => {
                            self.line = 0;
                            self.reader.insert(BufReader::new(f))
                        }
                        Err(e) => return Some(Err(VerifyReport::Unreadable { file: path.clone(), reason: e.to_string() })),
                    }
                }
            };
            let mut buf = Vec::new();
            let read = reader.by_ref().take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf);
            match read {
                Err(e) => return Some(Err(VerifyReport::Unreadable { file: self.files[self.idx].clone(), reason: e.to_string() })),
                Ok(0) => {
                    self.reader = None;
                    self.idx += 1;
                    continue;
                }
                Ok(_) => {}
            }
            self.line += 1;
            let complete = buf.last() == Some(&b'\n');
            let (seq, rec) = if !complete && buf.len() > MAX_LINE_BYTES {
                // Skip the rest of the line, a bounded chunk at a time.
                loop {
                    let mut rest = Vec::new();
                    match reader.by_ref().take(64 * 1024).read_until(b'\n', &mut rest) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if rest.last() == Some(&b'\n') => break,
                        Ok(_) => {}
                    }
                }
                (None, Err(Problem::LineTooLong))
            } else {
                if complete {
                    buf.pop();
                }
                parse_line(&buf, complete)
            };
            return Some(Ok(Entry { file: self.idx, line: self.line, seq, rec }));
        }
    }
}

/// The per-line checks: complete, JSON, the required fields, hash, canonical form.
fn parse_line(bytes: &[u8], complete: bool) -> (Option<u64>, Result<Parsed, Problem>) {
    let value = serde_json::from_slice::<Value>(bytes);
    let seq = value.as_ref().ok().and_then(|v| v.get("seq")).and_then(Value::as_u64);
    if !complete {
        return (seq, Err(Problem::Truncated));
    }
    let malformed = |reason| (seq, Err(Problem::Malformed { reason }));
    let Ok(value) = value else { return malformed("not valid JSON") };
    let Value::Object(mut m) = value else { return malformed("not a JSON object") };
    let hash = match m.remove("hash") {
        Some(Value::String(h)) if is_hash(&h) => h,
        _ => return malformed("missing or invalid `hash`"),
    };
    let Some(seq_value) = seq else { return malformed("missing or invalid `seq`") };
    let prev = match m.get("prev") {
        Some(Value::String(p)) if is_hash(p) => p.clone(),
        _ => return malformed("missing or invalid `prev`"),
    };
    let Some(event) = m.get("event").and_then(Value::as_str) else { return malformed("missing `event`") };
    let rotated = event == "rotated";
    if m.get("ts").and_then(Value::as_str).is_none() {
        return malformed("missing `ts`");
    }
    if sha256_hex(canonical_object(&m).as_bytes()) != hash {
        return (seq, Err(Problem::Edited));
    }
    m.insert("hash".into(), Value::String(hash.clone()));
    if canonical_object(&m).as_bytes() != bytes {
        return (seq, Err(Problem::NotCanonical));
    }
    (seq, Ok(Parsed { seq: seq_value, prev, hash, rotated }))
}

/// Where the last good record was.
struct Good {
    rec: Parsed,
    file: usize,
    line: u64,
}

fn check(files: Vec<PathBuf>) -> VerifyReport {
    let mut counts = vec![0u64; files.len()];
    let mut series = Series { files: files.clone(), idx: 0, reader: None, line: 0 };
    let mut verified = 0u64;
    let mut last: Option<Good> = None;
    let mut before_last: Option<String> = None;
    let mut first_seq = None;
    let mut continues_from = None;
    let broken = |file: usize, line: u64, seq: Option<u64>, problem: Problem, verified: u64| VerifyReport::Broken {
        file: files[file].clone(),
        line,
        seq,
        problem,
        verified,
    };

    while let Some(entry) = series.next_entry() {
        let entry = match entry {
            Ok(e) => e,
            Err(report) => return report,
        };
        let p = match entry.rec {
            Ok(p) => p,
            Err(problem) => return broken(entry.file, entry.line, entry.seq, problem, verified),
        };
        let (expected_prev, expected_seq) = match &last {
            Some(g) => (g.rec.hash.clone(), g.rec.seq + 1),
            // The oldest record: the genesis, or a rotation whose earlier files are gone.
            None if p.rotated => {
                if p.prev != ZERO_HASH {
                    continues_from = Some(p.prev.clone());
                }
                (p.prev.clone(), p.seq)
            }
            None => (ZERO_HASH.to_string(), 1),
        };
        if p.prev != expected_prev || p.seq != expected_seq {
            let (at, problem) = classify(&mut series, &p, &expected_prev, expected_seq, before_last.as_deref());
            return match (at, &last) {
                (At::Previous, Some(g)) => broken(g.file, g.line, Some(g.rec.seq), problem, verified - 1),
                _ => broken(entry.file, entry.line, Some(p.seq), problem, verified),
            };
        }
        counts[entry.file] += 1;
        verified += 1;
        first_seq.get_or_insert(p.seq);
        before_last = last.take().map(|g| g.rec.hash);
        last = Some(Good { rec: p, file: entry.file, line: entry.line });
    }
    let (head_seq, head_hash) = match last {
        Some(g) => (Some(g.rec.seq), g.rec.hash),
        None => (None, ZERO_HASH.to_string()),
    };
    VerifyReport::Intact {
        files: files.into_iter().zip(counts).map(|(path, records)| FileSummary { path, records }).collect(),
        count: verified,
        first_seq,
        head_seq,
        head_hash,
        continues_from,
    }
}

/// Which record a problem is reported at.
enum At {
    Current,
    /// The previous record (it was inserted).
    Previous,
}

/// Names what broke at a record whose `prev` or `seq` is wrong, scanning the rest of the series.
fn classify(series: &mut Series, p: &Parsed, expected_prev: &str, expected_seq: u64, before_last: Option<&str>) -> (At, Problem) {
    if p.prev == expected_prev {
        return (At::Current, Problem::BadSeq { expected: expected_seq, found: p.seq });
    }
    let mut next_links_back = None;
    let mut follows_a_later_record = false;
    let mut belonging_record_later = false;
    while let Some(Ok(e)) = series.next_entry() {
        let Ok(q) = e.rec else {
            next_links_back.get_or_insert(false);
            continue;
        };
        next_links_back.get_or_insert(q.prev == expected_prev);
        follows_a_later_record |= q.hash == p.prev;
        belonging_record_later |= q.prev == expected_prev;
    }
    let reordered = (At::Current, Problem::Reordered { expected_seq, found_seq: p.seq });
    if follows_a_later_record {
        reordered
    } else if next_links_back == Some(true) {
        (At::Current, Problem::Inserted)
    } else if before_last == Some(p.prev.as_str()) {
        (At::Previous, Problem::Inserted)
    } else if belonging_record_later {
        reordered
    } else if p.seq > expected_seq {
        (At::Current, Problem::Missing { expected_seq, found_seq: p.seq })
    } else {
        (At::Current, Problem::BadLink)
    }
}
