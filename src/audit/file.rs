//! The audit log's files: opening without following symlinks, the sibling key and lock files,
//! reading the tail record, and the rotation names.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;
use zeroize::Zeroizing;

use super::record::{canonical_object, hex, is_hash, sha256_hex};
use super::AuditError;

/// `O_NOFOLLOW` from the platform's `<fcntl.h>` (std does not export it and we take no libc
/// dependency): opening a symlink then fails with `ELOOP` instead of following it.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "x86", target_arch = "riscv64", target_arch = "s390x")))]
pub(crate) const O_NOFOLLOW: i32 = 0o400000;
/// `O_NOFOLLOW` on Linux for ARM and PowerPC, whose `<asm/fcntl.h>` numbers it differently.
#[cfg(all(target_os = "linux", any(target_arch = "aarch64", target_arch = "arm", target_arch = "powerpc64", target_arch = "powerpc")))]
pub(crate) const O_NOFOLLOW: i32 = 0o100000;
/// `O_NOFOLLOW` on the BSDs and macOS.
#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd", target_os = "openbsd", target_os = "netbsd"))]
pub(crate) const O_NOFOLLOW: i32 = 0x100;
/// Elsewhere we do not know the value: no flag, and the identity check in [`open_nofollow`]
/// (symlink_metadata before, fstat after) is the only guard.
#[cfg(not(any(
    all(target_os = "linux", any(target_arch = "x86_64", target_arch = "x86", target_arch = "riscv64", target_arch = "s390x")),
    all(target_os = "linux", any(target_arch = "aarch64", target_arch = "arm", target_arch = "powerpc64", target_arch = "powerpc")),
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd"
)))]
pub(crate) const O_NOFOLLOW: i32 = 0;

/// Longest tail line read back (records are a few KiB at most; a longer line is damage).
pub(crate) const MAX_LINE_BYTES: usize = 1024 * 1024;
const CHUNK: usize = 8192;

/// `<path><suffix>`, e.g. `audit.jsonl.key`.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `<path>.<n>`: the rotated generations, `.1` the newest.
pub(crate) fn numbered(path: &Path, n: u32) -> PathBuf {
    sibling(path, &format!(".{n}"))
}

/// The (device, inode) pair that names a file.
pub(crate) type FileId = (u64, u64);

pub(crate) fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> AuditError + 'a {
    move |source| AuditError::Io { path: path.to_path_buf(), action, source }
}

/// Opens `path` without following a symlink, checks that what was opened is a regular file and is
/// what the path names now, and tightens its mode to 0600.
pub(crate) fn open_nofollow(path: &Path, opts: &mut OpenOptions, action: &'static str) -> Result<(File, FileId), AuditError> {
    let file = match opts.mode(0o600).custom_flags(O_NOFOLLOW).open(path) {
        Ok(f) => f,
        Err(e) => {
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(AuditError::Symlink { path: path.to_path_buf() });
            }
            return Err(io_err(path, action)(e));
        }
    };
    let meta = file.metadata().map_err(io_err(path, "stat"))?;
    let now = std::fs::symlink_metadata(path).map_err(io_err(path, "stat"))?;
    if now.file_type().is_symlink() {
        return Err(AuditError::Symlink { path: path.to_path_buf() });
    }
    if !meta.is_file() {
        return Err(AuditError::NotRegular { path: path.to_path_buf() });
    }
    if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
        return Err(AuditError::Replaced { path: path.to_path_buf() });
    }
    if meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io_err(path, "chmod"))?;
    }
    Ok((file, (meta.dev(), meta.ino())))
}

/// The log opened for reading and appending, created 0600 when missing.
pub(crate) fn open_log(path: &Path) -> Result<(File, FileId), AuditError> {
    open_nofollow(path, OpenOptions::new().read(true).append(true).create(true), "open")
}

/// A fresh log file; fails if one appeared meanwhile.
pub(crate) fn create_log(path: &Path) -> Result<(File, FileId), AuditError> {
    open_nofollow(path, OpenOptions::new().read(true).append(true).create_new(true), "create")
}

/// The sibling `.lock` file that serializes appends across processes. It is never rotated, so
/// every process locks the same inode whatever happened to the log.
pub(crate) fn open_lock(path: &Path) -> Result<File, AuditError> {
    let lock = sibling(path, ".lock");
    open_nofollow(&lock, OpenOptions::new().read(true).write(true).create(true), "open").map(|(f, _)| f)
}

/// Creates the parent directory (0700) when missing.
pub(crate) fn ensure_parent(path: &Path) -> Result<(), AuditError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_err(dir, "create directory"))
        }
        _ => Ok(()),
    }
}

/// Makes a rename or a new file durable.
pub(crate) fn sync_dir(path: &Path) -> Result<(), AuditError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir, "sync directory"))
}

/// The per-log HMAC key in `<log>.key`: 32 random bytes as hex, created 0600 on first use. An
/// existing key that group or others can read is refused: it would let them test guesses
/// against every subject digest. Called under the append lock, so two processes cannot race.
pub(crate) fn load_or_create_key(log: &Path) -> Result<Zeroizing<[u8; 32]>, AuditError> {
    let path = sibling(log, ".key");
    let created = OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(O_NOFOLLOW).open(&path);
    match created {
        Ok(mut f) => {
            let key = random_key()?;
            let text = Zeroizing::new(format!("{}\n", hex(&key[..])));
            f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(io_err(&path, "write"))?;
            Ok(key)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_key(&path),
        Err(e) => Err(io_err(&path, "create")(e)),
    }
}

fn read_key(path: &Path) -> Result<Zeroizing<[u8; 32]>, AuditError> {
    // Checked before opening: open_nofollow would quietly tighten a loose mode.
    let meta = std::fs::symlink_metadata(path).map_err(io_err(path, "stat"))?;
    if meta.file_type().is_symlink() {
        return Err(AuditError::Symlink { path: path.to_path_buf() });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AuditError::KeyTooOpen { path: path.to_path_buf(), mode });
    }
    let (file, _) = open_nofollow(path, OpenOptions::new().read(true), "open")?;
    let mut text = Zeroizing::new(Vec::with_capacity(65));
    file.take(200).read_to_end(&mut text).map_err(io_err(path, "read"))?;
    let digits = text.strip_suffix(b"\n").unwrap_or(&text[..]);
    let mut key = Zeroizing::new([0u8; 32]);
    if digits.len() != 64 {
        return Err(AuditError::KeyMalformed { path: path.to_path_buf() });
    }
    for (i, pair) in digits.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16);
        let lo = (pair[1] as char).to_digit(16);
        match (hi, lo) {
            (Some(h), Some(l)) => key[i] = (h * 16 + l) as u8,
            _ => return Err(AuditError::KeyMalformed { path: path.to_path_buf() }),
        }
    }
    Ok(key)
}

fn random_key() -> Result<Zeroizing<[u8; 32]>, AuditError> {
    let dev = Path::new("/dev/urandom");
    let mut key = Zeroizing::new([0u8; 32]);
    File::open(dev).and_then(|mut f| f.read_exact(&mut key[..])).map_err(io_err(dev, "read"))?;
    Ok(key)
}

/// What the last line of a log file says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// No records.
    Empty,
    /// An intact last record.
    Head { seq: u64, hash: String },
    /// The last line is torn, unparsable or does not match its own hash. `raw_hash` is the
    /// SHA-256 of its bytes (as far as read), `seq` its sequence number when readable.
    Damaged { seq: Option<u64>, raw_hash: String },
}

/// Reads the last record of `file` (of length `len`) by seeking from the end.
pub(crate) fn read_tail(file: &File, len: u64) -> io::Result<Tail> {
    if len == 0 {
        return Ok(Tail::Empty);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    let complete = last[0] == b'\n';
    let end = if complete { len - 1 } else { len };
    let mut start = end;
    let mut line: Vec<u8> = Vec::new();
    while start > 0 && line.len() <= MAX_LINE_BYTES {
        let n = CHUNK.min(usize::try_from(start).unwrap_or(CHUNK));
        let at = start - n as u64;
        let mut chunk = vec![0u8; n];
        file.read_exact_at(&mut chunk, at)?;
        let newline = chunk.iter().rposition(|&b| b == b'\n');
        let keep_from = newline.map_or(0, |i| i + 1);
        chunk.drain(..keep_from);
        chunk.extend_from_slice(&line);
        line = chunk;
        if newline.is_some() {
            break;
        }
        start = at;
    }
    let damaged = |seq| Tail::Damaged { seq, raw_hash: sha256_hex(&line) };
    if !complete || line.len() > MAX_LINE_BYTES {
        let seq = serde_json::from_slice::<Value>(&line).ok().and_then(|v| v.get("seq").and_then(Value::as_u64));
        return Ok(damaged(seq));
    }
    let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(&line) else { return Ok(damaged(None)) };
    let seq = m.get("seq").and_then(Value::as_u64);
    let hash = match m.remove("hash") {
        Some(Value::String(h)) if is_hash(&h) => h,
        _ => return Ok(damaged(seq)),
    };
    match seq {
        Some(seq) if sha256_hex(canonical_object(&m).as_bytes()) == hash => Ok(Tail::Head { seq, hash }),
        _ => Ok(damaged(seq)),
    }
}
