//! Tamper-evident audit log: an append-only JSON Lines file whose records form a SHA-256 hash chain,
//! shared safely by several mailmoat processes, rotated by size, and checked by [`verify`].
//!
//! Each line is one record in canonical form (compact JSON, keys sorted): `seq` (consecutive
//! across processes and rotations), `ts`, `event`, `pid`, the optional `account`, `tool`,
//! `request_id`, `client`, `targets`, `outcome`, `duration_ms`, `subject_digest` and `detail`,
//! then `prev` (the previous record's `hash`; 64 zeros for the very first) and `hash` (SHA-256
//! of the canonical form of the record without `hash`).
//!
//! Architecture Invariant: nothing here writes a message body, a header value in clear or a
//! secret. Subjects are written only as a 16-hex-digit HMAC-SHA256 under a per-log random key kept
//! in `<log>.key` (0600), so equal subjects can be correlated without being readable.
//!
//! Architecture Invariant: every append happens under an exclusive `fs2` lock on `<log>.lock`,
//! and reads the tail's `seq` and `hash` under that lock, so processes sharing a log extend one
//! chain. The lock file is never rotated.
//!
//! A hash chain shows edits, deletions, insertions and reordering *inside* the log. It cannot
//! show that the newest records were cut off, or that someone with write access rewrote the whole
//! chain: compare the head hash `verify` prints with one kept elsewhere for that.

mod file;
pub(crate) use file::O_NOFOLLOW;
mod record;
mod verify;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use serde::Deserialize;
use zeroize::Zeroizing;

pub use record::{
    canonical, hmac_sha256, rfc3339_millis, sha256_hex, ClientInfo, Event, Outcome, Record, Targets, MAX_DETAIL_CHARS, MAX_NAME_CHARS,
    MAX_TARGETS, MAX_TARGET_CHARS, SUBJECT_DIGEST_HEX, ZERO_HASH,
};
pub use verify::{verify, verify_cli, verify_file, FileSummary, Problem, VerifyReport};

use file::{FileId, Tail};

/// Default size at which the log rotates: 64 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Smallest accepted rotation size.
pub const MIN_MAX_BYTES: u64 = 1024;
/// Rotated generations kept (`<log>.1` … `<log>.5`); the oldest is deleted.
pub const KEEP_ROTATED: u32 = 5;

/// Where the log lives unless configured: `$XDG_STATE_HOME/mailmoat/audit.jsonl`, else
/// `~/.local/state/mailmoat/audit.jsonl`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("mailmoat/audit.jsonl"));
    }
    std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".local/state/mailmoat/audit.jsonl"))
}

/// `[audit]` in the config.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Whether tool calls are audited. Turning it off is an explicit choice; a log that cannot be
    /// opened is an error, never a silent skip.
    pub enabled: bool,
    /// The log file; default [`default_path`]. Must be absolute.
    pub path: Option<PathBuf>,
    /// Size at which the log rotates.
    pub max_bytes: u64,
}

impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig { enabled: true, path: None, max_bytes: DEFAULT_MAX_BYTES }
    }
}

/// Largest accepted rotation size: 1 TiB.
const MAX_MAX_BYTES: u64 = 1 << 40;

impl AuditConfig {
    /// Range checks, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = &self.path {
            if !p.is_absolute() {
                return Err("audit.path must be an absolute path".into());
            }
        }
        if !(MIN_MAX_BYTES..=MAX_MAX_BYTES).contains(&self.max_bytes) {
            return Err(format!("audit.max_bytes = {} is out of range ({MIN_MAX_BYTES}..={MAX_MAX_BYTES})", self.max_bytes));
        }
        Ok(())
    }

    /// The configured path, else the default one.
    pub fn resolved_path(&self) -> Option<PathBuf> {
        self.path.clone().or_else(default_path)
    }

    /// Opens the configured log; `Ok(None)` when auditing is disabled.
    pub fn open(&self) -> Result<Option<AuditLog>, AuditError> {
        if !self.enabled {
            return Ok(None);
        }
        let path = self.resolved_path().ok_or(AuditError::NoPath)?;
        AuditLog::open(&path, self.max_bytes).map(Some)
    }
}

/// Why the audit log could not be opened or written.
#[derive(Debug)]
pub enum AuditError {
    /// The log, its key or its lock file is a symbolic link; refused so that nobody can point the
    /// log somewhere else.
    Symlink { path: PathBuf },
    /// The path names something other than a regular file.
    NotRegular { path: PathBuf },
    /// The file was replaced between opening it and checking it.
    Replaced { path: PathBuf },
    /// The key file can be read by group or others.
    KeyTooOpen { path: PathBuf, mode: u32 },
    /// The key file does not hold 64 hex digits.
    KeyMalformed { path: PathBuf },
    /// The rotation size is below [`MIN_MAX_BYTES`].
    MaxBytesTooSmall { max_bytes: u64 },
    /// No `[audit] path`, and neither `XDG_STATE_HOME` nor `HOME` is set.
    NoPath,
    /// An operation on a file failed.
    Io { path: PathBuf, action: &'static str, source: io::Error },
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditError::Symlink { path } => {
                write!(f, "audit log: refusing {}: it is a symbolic link (point [audit] path at the real file)", path.display())
            }
            AuditError::NotRegular { path } => write!(f, "audit log: {} is not a regular file", path.display()),
            AuditError::Replaced { path } => write!(f, "audit log: {} was replaced while being opened", path.display()),
            AuditError::KeyTooOpen { path, mode } => write!(
                f,
                "audit log: key file {} has mode {mode:03o}, readable by others; remove it to start a new key, or chmod 600",
                path.display()
            ),
            AuditError::KeyMalformed { path } => write!(f, "audit log: key file {} does not hold 64 hex digits", path.display()),
            AuditError::MaxBytesTooSmall { max_bytes } => {
                write!(f, "audit log: rotation size {max_bytes} is below the minimum of {MIN_MAX_BYTES} bytes")
            }
            AuditError::NoPath => {
                f.write_str("audit log: no path: set [audit] path, or XDG_STATE_HOME or HOME, or disable with [audit] enabled = false")
            }
            AuditError::Io { path, action, source } => write!(f, "audit log: cannot {action} {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for AuditError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AuditError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The newest record after an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditHead {
    pub seq: u64,
    /// Hex SHA-256 of the record.
    pub hash: String,
}

/// An open audit log. Cheap to share (`Arc<AuditLog>`); appends from any thread.
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    key: Zeroizing<[u8; 32]>,
    inner: Mutex<Inner>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog").field("path", &self.path).field("max_bytes", &self.max_bytes).finish_non_exhaustive()
    }
}

struct Inner {
    /// `<log>.lock`, flocked around every append.
    lock: File,
    /// The log as last opened, and the inode it was; reopened when the path names another file
    /// (another process rotated it).
    log: Option<(File, FileId)>,
}

/// Holds the cross-process lock; released on drop, also when an append fails half-way.
struct Locked<'a>(&'a File);

impl<'a> Locked<'a> {
    fn take(file: &'a File, path: &Path) -> Result<Locked<'a>, AuditError> {
        fs2::FileExt::lock_exclusive(file).map_err(file::io_err(path, "lock"))?;
        Ok(Locked(file))
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = fs2::FileExt::unlock(self.0);
    }
}

impl AuditLog {
    /// Opens (creating when missing: the directory 0700, the log, its key and lock files 0600)
    /// the log at `path`, rotating when a file would grow past `max_bytes`.
    pub fn open(path: &Path, max_bytes: u64) -> Result<AuditLog, AuditError> {
        if max_bytes < MIN_MAX_BYTES {
            return Err(AuditError::MaxBytesTooSmall { max_bytes });
        }
        file::ensure_parent(path)?;
        let lock = file::open_lock(path)?;
        let (log, key) = {
            let _held = Locked::take(&lock, path)?;
            let log = file::open_log(path)?;
            let key = file::load_or_create_key(path)?;
            // The log and key may have just been created: make their names durable.
            file::sync_dir(path)?;
            (log, key)
        };
        Ok(AuditLog { path: path.to_path_buf(), max_bytes, key, inner: Mutex::new(Inner { lock, log: Some(log) }) })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The digest this log writes for a subject (for correlating with `subject_digest`).
    pub fn subject_digest(&self, subject: &str) -> String {
        record::subject_digest(&self.key, subject)
    }

    /// Appends a record (written, not fsynced).
    pub fn append(&self, rec: Record) -> Result<AuditHead, AuditError> {
        self.append_inner(&rec, false)
    }

    /// Appends a record and fsyncs it before returning: for a mutating call's intent (before
    /// acting) and its outcome (after), so that a crash mid-action still leaves a trace.
    pub fn append_durable(&self, rec: Record) -> Result<AuditHead, AuditError> {
        self.append_inner(&rec, true)
    }

    fn append_inner(&self, rec: &Record, durable: bool) -> Result<AuditHead, AuditError> {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner { lock, log } = &mut *guard;
        let _held = Locked::take(lock, &self.path)?;
        let (len, tail) = {
            let f = self.current(log)?;
            let len = f.metadata().map_err(file::io_err(&self.path, "stat"))?.len();
            (len, file::read_tail(f, len).map_err(file::io_err(&self.path, "read"))?)
        };

        // Where the chain stands, read under the lock. `fresh` when this append started a new file.
        let mut fresh = false;
        let mut head = match tail {
            Tail::Head { seq, hash } => AuditHead { seq, hash },
            Tail::Empty => match self.previous_head()? {
                // A crash between renaming the full file and starting the new one, or a current
                // file that was removed: continue the series from `<log>.1`.
                Some(prev) => self.write_line(self.current(log)?, &self.rotated_record("continues the chain of"), &prev)?,
                None => AuditHead { seq: 0, hash: ZERO_HASH.to_string() },
            },
            Tail::Damaged { seq, raw_hash } => {
                // A torn write (crash, full disk) or an edited tail. Keep the evidence in `.1`
                // (verify reports it there) and start a new file linked to the damaged bytes.
                fresh = true;
                let after = AuditHead { seq: seq.unwrap_or(0), hash: raw_hash };
                self.rotate(log, &after, "previous file ends in a damaged record; new file after")?
            }
        };

        let (mut line, mut next) = self.render(rec, &head);
        if !fresh && len > 0 && len + line.len() as u64 + 1 > self.max_bytes {
            head = self.rotate(log, &head, "rotated at size limit; previous file")?;
            (line, next) = self.render(rec, &head);
        }
        line.push('\n');
        let f = self.current(log)?;
        (&*f).write_all(line.as_bytes()).map_err(file::io_err(&self.path, "append to"))?;
        if durable {
            f.sync_data().map_err(file::io_err(&self.path, "sync"))?;
        }
        Ok(next)
    }

    /// The log file the path names now, reopened if another process rotated it.
    fn current<'a>(&self, slot: &'a mut Option<(File, FileId)>) -> Result<&'a File, AuditError> {
        let now = match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_symlink() => return Err(AuditError::Symlink { path: self.path.clone() }),
            Ok(m) => Some((m.dev(), m.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(file::io_err(&self.path, "stat")(e)),
        };
        let same = matches!((&*slot, now), (Some((_, id)), Some(now)) if *id == now);
        if !same {
            *slot = None;
            *slot = Some(file::open_log(&self.path)?);
        }
        slot.as_ref().map(|(f, _)| f).ok_or_else(|| AuditError::Replaced { path: self.path.clone() })
    }

    /// The head of `<log>.1`, when it exists and ends in an intact record.
    fn previous_head(&self) -> Result<Option<AuditHead>, AuditError> {
        let p1 = file::numbered(&self.path, 1);
        let (f, _) = match file::open_nofollow(&p1, std::fs::OpenOptions::new().read(true), "open") {
            Ok(f) => f,
            Err(AuditError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = f.metadata().map_err(file::io_err(&p1, "stat"))?.len();
        Ok(match file::read_tail(&f, len).map_err(file::io_err(&p1, "read"))? {
            Tail::Head { seq, hash } => Some(AuditHead { seq, hash }),
            Tail::Damaged { seq, raw_hash } => Some(AuditHead { seq: seq.unwrap_or(0), hash: raw_hash }),
            Tail::Empty => None,
        })
    }

    /// Shifts `.1`… up by one (dropping the oldest), renames the log to `.1`, and starts a new log
    /// whose first record, `rotated`, links to `after`. Returns the new head.
    fn rotate(&self, slot: &mut Option<(File, FileId)>, after: &AuditHead, why: &str) -> Result<AuditHead, AuditError> {
        // Shift only up to the first missing generation, so that a crash part-way through an
        // earlier rotation never leaves a gap in the series.
        let mut top = 1;
        while top < KEEP_ROTATED && std::fs::symlink_metadata(file::numbered(&self.path, top)).is_ok() {
            top += 1;
        }
        for n in (1..top).rev() {
            let from = file::numbered(&self.path, n);
            let to = file::numbered(&self.path, n + 1);
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(file::io_err(&from, "rotate")(e)),
            }
        }
        let p1 = file::numbered(&self.path, 1);
        std::fs::rename(&self.path, &p1).map_err(file::io_err(&self.path, "rotate"))?;
        *slot = None;
        let (f, id) = file::create_log(&self.path)?;
        file::sync_dir(&self.path)?;
        let head = self.write_line(&f, &self.rotated_record(why), after)?;
        *slot = Some((f, id));
        Ok(head)
    }

    /// A `rotated` record naming `<log>.1`.
    fn rotated_record(&self, why: &str) -> Record {
        let name = file::numbered(&self.path, 1).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Record::new(Event::Rotated).detail(format!("{why} {name}"))
    }

    /// Writes one record after `head` and fsyncs it (used for `rotated` records).
    fn write_line(&self, f: &File, rec: &Record, head: &AuditHead) -> Result<AuditHead, AuditError> {
        let (mut line, next) = self.render(rec, head);
        line.push('\n');
        let mut w = f;
        w.write_all(line.as_bytes()).and_then(|()| f.sync_data()).map_err(file::io_err(&self.path, "append to"))?;
        Ok(next)
    }

    /// The line (without newline) for `rec` following `head`, and the head it makes.
    fn render(&self, rec: &Record, head: &AuditHead) -> (String, AuditHead) {
        let seq = head.seq + 1;
        let digest = rec.subject.as_deref().map(|s| record::subject_digest(&self.key, s));
        let map = rec.to_map(seq, rfc3339_millis(SystemTime::now()), std::process::id(), &head.hash, digest);
        let (line, hash) = record::seal(map);
        (line, AuditHead { seq, hash })
    }
}
