//! Authentication blocks that outlive the process. A refused login blocks its account until the
//! config or the secret changes; MCP clients restart their servers freely, so the block is kept in
//! `auth-blocks.json` in the state directory (beside the audit log). A server that starts with an
//! unchanged fingerprint starts blocked, and `mailmoat check` reports the block.
//!
//! The file holds account names, fingerprints (SHA-256 over the config path and mtime and the
//! secret's source, never the secret) and times. It is replaced atomically (write, fsync, rename)
//! under an exclusive `fs2` lock on a sibling lock file, so several processes can share it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fs2::FileExt;
use serde::{Deserialize, Serialize};

/// Largest file we read: a few hundred accounts fit many times over.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// One blocked account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    /// Hex SHA-256 from [`super::secret_fingerprint`].
    pub fingerprint: String,
    /// When the login was refused (UTC, RFC 3339).
    pub since: String,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBody {
    version: u32,
    blocks: BTreeMap<String, Block>,
}

/// The block file of one state directory.
#[derive(Clone, Debug)]
pub struct AuthBlocks {
    path: PathBuf,
}

/// Hex of a fingerprint.
pub fn fingerprint_hex(fp: &[u8; 32]) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}

impl AuthBlocks {
    /// The file `auth-blocks.json` in `dir`.
    pub fn in_dir(dir: &Path) -> AuthBlocks {
        AuthBlocks { path: dir.join("auth-blocks.json") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The blocks on disk. A missing file is no blocks; an unreadable or damaged one is an error
    /// (the caller warns and goes on without: the worst case is one more login attempt).
    pub fn load(&self) -> Result<BTreeMap<String, Block>, String> {
        let meta = match fs::symlink_metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        if !meta.is_file() {
            return Err(format!("{} is not a regular file", self.path.display()));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(format!("{} is larger than 1 MiB", self.path.display()));
        }
        let text = fs::read_to_string(&self.path).map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let body: FileBody = serde_json::from_str(&text).map_err(|_| format!("{} is damaged; ignoring it", self.path.display()))?;
        Ok(body.blocks)
    }

    /// Records a block for `account` (replacing an older one).
    pub fn add(&self, account: &str, fp: &[u8; 32], at: SystemTime) -> Result<(), String> {
        let block = Block { fingerprint: fingerprint_hex(fp), since: crate::audit::rfc3339_millis(at) };
        self.update(|blocks| {
            blocks.insert(account.to_string(), block);
        })
    }

    /// Lifts the block of `account`, if any.
    pub fn remove(&self, account: &str) -> Result<(), String> {
        if !self.load().unwrap_or_default().contains_key(account) {
            return Ok(());
        }
        self.update(|blocks| {
            blocks.remove(account);
        })
    }

    fn update(&self, change: impl FnOnce(&mut BTreeMap<String, Block>)) -> Result<(), String> {
        let err = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", self.path.display());
        let dir = self.path.parent().ok_or_else(|| format!("{} has no directory", self.path.display()))?;
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| err("create the directory of", e))?;
        let lock_path = self.path.with_extension("lock");
        let lock = open_private(&lock_path, false).map_err(|e| err("lock", e))?;
        lock.lock_exclusive().map_err(|e| err("lock", e))?;
        let mut blocks = self.load().unwrap_or_default();
        change(&mut blocks);
        let body = serde_json::to_string_pretty(&FileBody { version: 1, blocks }).map_err(|e| format!("cannot encode blocks: {e}"))?;
        let tmp = self.path.with_extension(format!("tmp{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let written = open_private(&tmp, true)
            .and_then(|mut f| f.write_all(body.as_bytes()).and_then(|()| f.write_all(b"\n")).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&tmp, &self.path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        let _ = FileExt::unlock(&lock);
        written.map_err(|e| err("write", e))
    }
}

/// Opens (creating, mode 0600) without following a symlink; `new` insists on a new file.
fn open_private(path: &Path, new: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).mode(0o600).custom_flags(crate::audit::O_NOFOLLOW);
    if new {
        o.create_new(true);
    } else {
        o.create(true);
    }
    o.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mailmoat-blocks-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn add_load_remove_round_trip_private_file() {
        let d = dir("rt");
        let b = AuthBlocks::in_dir(&d.join("state"));
        assert_eq!(b.load().unwrap(), BTreeMap::new());
        b.add("work", &[7; 32], SystemTime::UNIX_EPOCH).unwrap();
        b.add("home", &[1; 32], SystemTime::UNIX_EPOCH).unwrap();
        let got = b.load().unwrap();
        assert_eq!(got.keys().collect::<Vec<_>>(), ["home", "work"]);
        assert_eq!(got["work"], Block { fingerprint: "07".repeat(32), since: "1970-01-01T00:00:00.000Z".into() });
        assert_eq!(fs::metadata(b.path()).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(d.join("state")).unwrap().permissions().mode() & 0o777, 0o700);
        b.remove("work").unwrap();
        assert_eq!(b.load().unwrap().keys().collect::<Vec<_>>(), ["home"]);
        b.remove("nobody").unwrap();
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn damaged_or_symlinked_files_are_errors_not_panics() {
        let d = dir("bad");
        fs::create_dir_all(&d).unwrap();
        let b = AuthBlocks::in_dir(&d);
        fs::write(b.path(), "{not json").unwrap();
        assert!(b.load().unwrap_err().contains("is damaged"));
        // An update replaces a damaged file.
        b.add("a", &[2; 32], SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(b.load().unwrap().len(), 1);
        fs::remove_file(b.path()).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", b.path()).unwrap();
        assert!(b.load().unwrap_err().contains("not a regular file"));
        let _ = fs::remove_dir_all(d);
    }
}
