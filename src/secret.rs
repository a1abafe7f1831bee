//! Secrets: where a password comes from (`env`, `command`, `file`) and the zeroizing type that holds it.
//!
//! A [`Secret`] never prints its value: `Debug` shows `Secret(redacted)` and there is no
//! `Display`. The only way to read it is [`Secret::expose`], which callers use at the moment
//! the value goes onto the wire.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

/// Largest secret we accept from any source (a password or an access token).
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// A secret value, wiped from memory when dropped.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value; the caller's copy should itself be zeroizing or short-lived.
    pub fn new(value: String) -> Secret {
        Secret(Zeroizing::new(value))
    }

    /// The secret itself, for the moment it goes onto the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// How an account proves who it is to a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A password: IMAP `AUTHENTICATE PLAIN` or `LOGIN`, SMTP `AUTH PLAIN` or `LOGIN`.
    Password(SecretSource),
    /// An OAuth 2.0 access token for SASL `XOAUTH2`, printed by a helper (or read from env or a
    /// file); cached until a server rejects it, see [`oauth2_token`].
    OAuth2(SecretSource),
}

impl Credential {
    /// Where the secret comes from.
    pub fn source(&self) -> &SecretSource {
        match self {
            Credential::Password(s) | Credential::OAuth2(s) => s,
        }
    }

    /// The config key that names this credential (`password` or `oauth2_token`).
    pub fn key(&self) -> &'static str {
        match self {
            Credential::Password(_) => "password",
            Credential::OAuth2(_) => "oauth2_token",
        }
    }
}

/// Where a secret comes from. Literal values are not representable on purpose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of this process.
    Env(String),
    /// A program and its arguments, run without a shell; the first line of stdout is the secret.
    Command(Vec<String>),
    /// A file that must not be readable by group or others; its first line is the secret.
    File(PathBuf),
}

/// Why a secret could not be obtained. No variant carries the secret or any output of the helper.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretError {
    /// The environment variable is unset or not valid UTF-8.
    EnvMissing { var: String },
    /// The helper program could not be started.
    CommandSpawn { program: String, reason: String },
    /// The helper ran longer than its timeout and was killed.
    CommandTimeout { program: String, timeout_ms: u64 },
    /// The helper exited unsuccessfully.
    CommandFailed { program: String, status: String },
    /// The secret file could not be read.
    FileUnreadable { path: PathBuf, reason: String },
    /// The secret file is readable by group or others.
    FileTooOpen { path: PathBuf, mode: u32 },
    /// The source produced nothing usable.
    Empty { source: String },
    /// The source produced more than [`MAX_SECRET_BYTES`] or invalid UTF-8.
    Malformed { source: String, reason: &'static str },
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::EnvMissing { var } => {
                write!(f, "environment variable {var} is not set (or is not valid UTF-8)")
            }
            SecretError::CommandSpawn { program, reason } => {
                write!(f, "could not run secret command {program}: {reason}")
            }
            SecretError::CommandTimeout { program, timeout_ms } => {
                write!(f, "secret command {program} did not finish within {timeout_ms} ms and was killed")
            }
            SecretError::CommandFailed { program, status } => {
                write!(f, "secret command {program} failed ({status})")
            }
            SecretError::FileUnreadable { path, reason } => {
                write!(f, "cannot read secret file {}: {reason}", path.display())
            }
            SecretError::FileTooOpen { path, mode } => {
                write!(f, "secret file {} is readable by group or others (mode {:o}); run chmod 600 on it", path.display(), mode & 0o777)
            }
            SecretError::Empty { source } => write!(f, "secret from {source} is empty"),
            SecretError::Malformed { source, reason } => {
                write!(f, "secret from {source} is unusable: {reason}")
            }
        }
    }
}

impl std::error::Error for SecretError {}

impl SecretSource {
    /// A short description for messages; never the secret.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env(var) => format!("env {var}"),
            SecretSource::Command(argv) => format!("command {}", argv.first().map_or("", |s| s)),
            SecretSource::File(p) => format!("file {}", p.display()),
        }
    }

    /// Obtains the secret. `command_timeout` bounds a helper program.
    pub fn resolve(&self, command_timeout: Duration) -> Result<Secret, SecretError> {
        crate::debug!("secret: reading {}", self.describe());
        match self {
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(v) => first_line(Zeroizing::new(v.into_bytes()), &self.describe()),
                Err(_) => Err(SecretError::EnvMissing { var: var.clone() }),
            },
            SecretSource::Command(argv) => run_command(argv, command_timeout).and_then(|out| first_line(out, &self.describe())),
            SecretSource::File(path) => read_file(path).and_then(|b| first_line(b, &self.describe())),
        }
    }
}

/// An access token and whether its source was consulted just now (`fresh`) or it came from
/// the cache.
pub struct Token {
    pub secret: Secret,
    pub fresh: bool,
}

/// Access tokens by source, kept until a server rejects them. Tokens are short-lived and
/// helpers can be slow (a refresh is a network round trip), so they are not fetched per login.
static TOKENS: Mutex<Vec<(SecretSource, Secret)>> = Mutex::new(Vec::new());

/// The access token for `source`: the cached one, or a new one from the source.
pub fn oauth2_token(source: &SecretSource, command_timeout: Duration) -> Result<Token, SecretError> {
    let cached = TOKENS.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|(s, _)| s == source).map(|(_, t)| t.clone());
    if let Some(secret) = cached {
        crate::debug!("secret: access token for {} from the cache", source.describe());
        return Ok(Token { secret, fresh: false });
    }
    let secret = source.resolve(command_timeout)?;
    let mut tokens = TOKENS.lock().unwrap_or_else(|p| p.into_inner());
    tokens.retain(|(s, _)| s != source);
    tokens.push((source.clone(), secret.clone()));
    Ok(Token { secret, fresh: true })
}

/// A server refused `token`: forget it (unless another login already replaced it), so that the
/// next [`oauth2_token`] consults the source again.
pub fn oauth2_rejected(source: &SecretSource, token: &Secret) {
    TOKENS.lock().unwrap_or_else(|p| p.into_inner()).retain(|(s, t)| !(s == source && t.expose() == token.expose()));
}

/// Authenticates with an access token, by `attempt`. A cached token that the server refuses
/// (`refused` says which errors mean that) is dropped and the source is consulted once more; the
/// attempt is repeated once, and only when that yields a different token. A token fresh from the
/// source is never retried: repeated refusals lock accounts at some providers.
pub fn with_oauth2_token<T, E>(
    source: &SecretSource,
    command_timeout: Duration,
    from_secret_error: impl Fn(SecretError) -> E,
    refused: impl Fn(&E) -> bool,
    mut attempt: impl FnMut(&Secret) -> Result<T, E>,
) -> Result<T, E> {
    let token = oauth2_token(source, command_timeout).map_err(&from_secret_error)?;
    let first = attempt(&token.secret);
    match first {
        Err(e) if !token.fresh && refused(&e) => {
            crate::info!("secret: the server refused the cached access token; asking {} once more", source.describe());
            oauth2_rejected(source, &token.secret);
            let again = oauth2_token(source, command_timeout).map_err(&from_secret_error)?;
            if again.secret.expose() == token.secret.expose() {
                oauth2_rejected(source, &again.secret);
                return Err(e);
            }
            let second = attempt(&again.secret);
            if second.as_ref().is_err_and(&refused) {
                oauth2_rejected(source, &again.secret);
            }
            second
        }
        Err(e) => {
            if refused(&e) {
                oauth2_rejected(source, &token.secret);
            }
            Err(e)
        }
        ok => ok,
    }
}

/// The SASL XOAUTH2 initial response (before base64): `user=U^Aauth=Bearer T^A^A`.
pub fn xoauth2_response(user: &str, token: &Secret) -> Zeroizing<Vec<u8>> {
    let t = token.expose().as_bytes();
    let mut v = Zeroizing::new(Vec::with_capacity(user.len() + t.len() + 24));
    v.extend_from_slice(b"user=");
    v.extend_from_slice(user.as_bytes());
    v.extend_from_slice(b"\x01auth=Bearer ");
    v.extend_from_slice(t);
    v.extend_from_slice(b"\x01\x01");
    v
}

fn first_line(bytes: Zeroizing<Vec<u8>>, source: &str) -> Result<Secret, SecretError> {
    if bytes.len() > MAX_SECRET_BYTES {
        return Err(SecretError::Malformed { source: source.to_string(), reason: "longer than 16 KiB" });
    }
    let end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
    let mut line = &bytes[..end];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    if line.is_empty() {
        return Err(SecretError::Empty { source: source.to_string() });
    }
    if line.contains(&0) {
        return Err(SecretError::Malformed { source: source.to_string(), reason: "contains a NUL byte" });
    }
    match std::str::from_utf8(line) {
        Ok(s) => Ok(Secret::new(s.to_string())),
        Err(_) => Err(SecretError::Malformed { source: source.to_string(), reason: "not valid UTF-8" }),
    }
}

fn read_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let unreadable = |e: std::io::Error| SecretError::FileUnreadable { path: path.to_path_buf(), reason: e.to_string() };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(SecretError::FileTooOpen { path: path.to_path_buf(), mode });
    }
    let mut buf = Zeroizing::new(Vec::new());
    file.take(MAX_SECRET_BYTES as u64 + 1).read_to_end(&mut buf).map_err(unreadable)?;
    Ok(buf)
}

fn run_command(argv: &[String], timeout: Duration) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    let program = argv.first().cloned().unwrap_or_default();
    let mut child = Command::new(&program)
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| SecretError::CommandSpawn { program: program.clone(), reason: e.to_string() })?;
    // Read stdout on a helper thread so a chatty helper cannot block on a full pipe.
    let mut stdout =
        child.stdout.take().ok_or_else(|| SecretError::CommandSpawn { program: program.clone(), reason: "no stdout pipe".to_string() })?;
    let reader = std::thread::spawn(move || {
        let mut buf = Zeroizing::new(Vec::new());
        let _ = (&mut stdout).take(MAX_SECRET_BYTES as u64 + 1).read_to_end(&mut buf);
        // Drain the rest so the child never blocks on a full pipe.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SecretError::CommandTimeout { program, timeout_ms: timeout.as_millis() as u64 });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(SecretError::CommandSpawn { program, reason: e.to_string() }),
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(SecretError::CommandFailed { program, status: status.to_string() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmpfile(name: &str, body: &str, mode: u32) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mailmoat-secret-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s");
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("CANARY-debug-7f3a".into());
        assert_eq!(format!("{s:?}"), "Secret(redacted)");
    }

    #[test]
    fn file_first_line_and_mode_check() {
        let p = tmpfile("ok", "hunter2\r\nsecond\n", 0o600);
        assert_eq!(SecretSource::File(p).resolve(Duration::from_secs(1)).unwrap().expose(), "hunter2");
        let p = tmpfile("open", "hunter2\n", 0o644);
        let err = SecretSource::File(p.clone()).resolve(Duration::from_secs(1)).unwrap_err();
        assert_eq!(err, SecretError::FileTooOpen { path: p, mode: 0o100644 });
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn empty_and_nul_are_refused() {
        let p = tmpfile("empty", "\nx\n", 0o600);
        assert!(matches!(SecretSource::File(p).resolve(Duration::from_secs(1)), Err(SecretError::Empty { .. })));
        let p = tmpfile("nul", "a\0b\n", 0o600);
        assert!(matches!(
            SecretSource::File(p).resolve(Duration::from_secs(1)),
            Err(SecretError::Malformed { reason: "contains a NUL byte", .. })
        ));
    }

    #[test]
    fn command_runs_without_shell_and_times_out() {
        let src = SecretSource::Command(vec!["printf".into(), "tok$HOME\\nrest".into()]);
        // No shell: $HOME is not expanded.
        assert_eq!(src.resolve(Duration::from_secs(5)).unwrap().expose(), "tok$HOME");
        let slow = SecretSource::Command(vec!["sleep".into(), "5".into()]);
        let err = slow.resolve(Duration::from_millis(100)).unwrap_err();
        assert_eq!(err, SecretError::CommandTimeout { program: "sleep".into(), timeout_ms: 100 });
        let failing = SecretSource::Command(vec!["false".into()]);
        assert!(matches!(failing.resolve(Duration::from_secs(5)), Err(SecretError::CommandFailed { .. })));
    }

    #[test]
    fn env_missing_names_the_variable() {
        let err = SecretSource::Env("MAILMOAT_TEST_UNSET_VAR_91".into()).resolve(Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.to_string(), "environment variable MAILMOAT_TEST_UNSET_VAR_91 is not set (or is not valid UTF-8)");
    }

    /// A helper that prints the token in `dir/token` and logs each run to `dir/runs`.
    fn token_helper(name: &str) -> (SecretSource, PathBuf) {
        let dir = std::env::temp_dir().join(format!("mailmoat-oauth-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        (SecretSource::Command(vec!["/bin/sh".into(), "-c".into(), format!("echo run >> {d}/runs; cat {d}/token")]), dir)
    }

    fn runs(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("runs")).map_or(0, |s| s.lines().count())
    }

    #[derive(Debug, PartialEq)]
    enum E {
        Refused,
        Other,
        Secret,
    }

    /// [`with_oauth2_token`] where `E::Refused` is the refusal and a source failure is `E::Secret`.
    fn login(src: &SecretSource, attempt: impl FnMut(&Secret) -> Result<(), E>) -> Result<(), E> {
        with_oauth2_token(src, Duration::from_secs(5), |_| E::Secret, |e| *e == E::Refused, attempt)
    }

    #[test]
    fn oauth2_token_is_cached_and_refetched_once_when_refused() {
        let (src, dir) = token_helper("cache");
        std::fs::write(dir.join("token"), "A\n").unwrap();
        let mut seen = Vec::new();
        // Accepted: one helper run, then the cache.
        for _ in 0..2 {
            let r = login(&src, |tok| {
                seen.push(tok.expose().to_string());
                Ok(())
            });
            assert_eq!(r, Ok(()));
        }
        assert_eq!((runs(&dir), seen.as_slice()), (1, &["A".to_string(), "A".to_string()][..]));
        // The cached token is refused: one more run, one retry with the new token.
        std::fs::write(dir.join("token"), "B\n").unwrap();
        seen.clear();
        let r = login(&src, |tok| {
            seen.push(tok.expose().to_string());
            if tok.expose() == "A" {
                Err(E::Refused)
            } else {
                Ok(())
            }
        });
        assert_eq!((r, runs(&dir), seen.as_slice()), (Ok(()), 2, &["A".to_string(), "B".to_string()][..]));
        // Refused, and the helper has nothing new: no second attempt with the same token.
        seen.clear();
        let r = login(&src, |tok| {
            seen.push(tok.expose().to_string());
            Err(E::Refused)
        });
        assert_eq!((r, runs(&dir), seen.len()), (Err(E::Refused), 3, 1));
        // A fresh token that is refused is not retried, and a failure that is not a refusal
        // keeps the cached token.
        std::fs::write(dir.join("token"), "C\n").unwrap();
        let r = login(&src, |_| Err(E::Refused));
        assert_eq!((r, runs(&dir)), (Err(E::Refused), 4));
        let r = login(&src, |_| Err(E::Other));
        assert_eq!((r, runs(&dir)), (Err(E::Other), 5));
        let r = login(&src, |_| Ok(()));
        assert_eq!((r, runs(&dir)), (Ok(()), 5));
        // A helper that fails is a secret error.
        std::fs::remove_file(dir.join("token")).unwrap();
        let (bad, _) = token_helper("missing");
        let r = login(&bad, |_| Ok(()));
        assert_eq!(r, Err(E::Secret));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn xoauth2_initial_response_layout() {
        let r = xoauth2_response("me@example.com", &Secret::new("ya29.tok".into()));
        assert_eq!(&r[..], b"user=me@example.com\x01auth=Bearer ya29.tok\x01\x01");
    }
}
