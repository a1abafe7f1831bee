//! The IMAP boundary's error type: one enum, stable codes, and text that is safe to show.
//!
//! Server text is sanitized (control characters stripped, at most 200 characters) before it is
//! stored in a variant, so `Display` can never carry terminal escapes or a flood of bytes.
//! No variant carries the password.

use std::fmt;

use super::args::ArgError;
use crate::secret::SecretError;

/// Why an IMAP operation failed.
#[derive(Debug)]
pub enum ImapError {
    /// DNS resolution or the TCP connection failed.
    Connect { host: String, port: u16, reason: String },
    /// The TLS handshake failed (including certificate or host name verification).
    Tls { reason: String },
    /// The server's leaf certificate does not match the configured `pin_sha256`.
    PinMismatch { expected: String, actual: String },
    /// STARTTLS was required but the server does not offer it; no credentials were sent.
    StarttlsUnavailable,
    /// The server refused the login.
    Auth { reason: String },
    /// The password could not be obtained from its configured source.
    Secret(SecretError),
    /// A named timeout fired.
    Timeout { limit: &'static str, ms: u64 },
    /// The caller cancelled the operation.
    Cancelled,
    /// A named size limit was exceeded.
    LimitExceeded { limit: &'static str, max: u64 },
    /// The folder's UIDVALIDITY differs from the one the caller's UIDs came from.
    UidValidityChanged { folder: String, expected: u32, actual: u32 },
    /// A message (or other item) does not exist.
    NotFound { what: String },
    /// The folder does not exist (or cannot be opened).
    FolderNotFound { folder: String },
    /// An argument was refused before anything was sent.
    Invalid(ArgError),
    /// The server answered NO, BAD or BYE.
    Server { status: &'static str, text: String },
    /// The server's response could not be understood, or the connection broke.
    Protocol { reason: String },
    /// The IMAP library panicked on the server's input; the session was discarded.
    Panicked { context: &'static str },
    /// No pooled connection became free in time.
    PoolExhausted { waited_ms: u64 },
    /// The server lacks what an operation needs (an extension, a permanent flag, a size).
    Unsupported { what: String },
    /// A folder to be created (or renamed to) exists already.
    AlreadyExists { folder: String },
}

impl ImapError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ImapError::Connect { .. } => "connect_failed",
            ImapError::Tls { .. } => "tls_error",
            ImapError::PinMismatch { .. } => "pin_mismatch",
            ImapError::StarttlsUnavailable => "starttls_unavailable",
            ImapError::Auth { .. } => "auth_failed",
            ImapError::Secret(_) => "secret_error",
            ImapError::Timeout { .. } => "timeout",
            ImapError::Cancelled => "cancelled",
            ImapError::LimitExceeded { .. } => "limit_exceeded",
            ImapError::UidValidityChanged { .. } => "uidvalidity_changed",
            ImapError::NotFound { .. } => "not_found",
            ImapError::FolderNotFound { .. } => "folder_not_found",
            ImapError::Invalid(_) => "invalid_argument",
            ImapError::Server { .. } => "imap_error",
            ImapError::Protocol { .. } => "protocol_error",
            ImapError::Panicked { .. } => "internal_error",
            ImapError::PoolExhausted { .. } => "busy",
            ImapError::Unsupported { .. } => "unsupported",
            ImapError::AlreadyExists { .. } => "already_exists",
        }
    }

    /// True when the session that produced this error is in an unknown state and must be
    /// discarded rather than returned to the pool.
    pub fn is_connection_level(&self) -> bool {
        match self {
            ImapError::Connect { .. }
            | ImapError::Tls { .. }
            | ImapError::PinMismatch { .. }
            | ImapError::StarttlsUnavailable
            | ImapError::Auth { .. }
            | ImapError::Secret(_)
            | ImapError::Timeout { .. }
            | ImapError::Cancelled
            | ImapError::LimitExceeded { .. }
            | ImapError::Protocol { .. }
            | ImapError::Panicked { .. } => true,
            ImapError::Server { status, .. } => *status == "BYE",
            ImapError::UidValidityChanged { .. }
            | ImapError::NotFound { .. }
            | ImapError::FolderNotFound { .. }
            | ImapError::Invalid(_)
            | ImapError::PoolExhausted { .. }
            | ImapError::Unsupported { .. }
            | ImapError::AlreadyExists { .. } => false,
        }
    }

    /// The connection closed or broke: typical of a stale pooled session the server timed out,
    /// which a fresh connection will not have.
    pub(crate) fn connection_lost(doing: &str, detail: Option<&str>) -> ImapError {
        let reason = match detail {
            None => format!("{CONNECTION_LOST} {doing}"),
            Some(d) => format!("{CONNECTION_LOST} {doing}: {}", sanitize(d)),
        };
        ImapError::Protocol { reason }
    }

    /// Worth one retry on a fresh connection: the connection broke or the server said BYE.
    /// Unparseable responses, timeouts, limits and panics are not retried: they would recur.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            ImapError::Protocol { reason } => reason.starts_with(CONNECTION_LOST),
            ImapError::Server { status, .. } => *status == "BYE",
            _ => false,
        }
    }
}

impl fmt::Display for ImapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImapError::Connect { host, port, reason } => write!(f, "cannot connect to {host}:{port}: {reason}"),
            ImapError::Tls { reason } => write!(f, "tls failed: {reason}"),
            ImapError::PinMismatch { expected, actual } => {
                write!(f, "server certificate does not match the pinned sha-256 (expected {expected}, got {actual})")
            }
            ImapError::StarttlsUnavailable => {
                write!(f, "server does not offer starttls; refusing to send credentials without tls")
            }
            ImapError::Auth { reason } => write!(f, "authentication failed: {reason}"),
            ImapError::Secret(e) => write!(f, "cannot obtain the imap password: {e}"),
            ImapError::Timeout { limit, ms } => write!(f, "timed out after {ms} ms ({limit})"),
            ImapError::Cancelled => write!(f, "cancelled"),
            ImapError::LimitExceeded { limit, max } => write!(f, "server response exceeded {limit} ({max})"),
            ImapError::UidValidityChanged { folder, expected, actual } => {
                write!(f, "uidvalidity of folder {} changed from {expected} to {actual}; earlier uids are no longer valid", quoted(folder))
            }
            ImapError::NotFound { what } => write!(f, "{what} not found"),
            ImapError::FolderNotFound { folder } => write!(f, "folder {} not found", quoted(folder)),
            ImapError::Invalid(e) => write!(f, "{e}"),
            ImapError::Server { status, text } => write!(f, "server answered {status}: {text}"),
            ImapError::Protocol { reason } => write!(f, "imap protocol error: {reason}"),
            ImapError::Panicked { context } => {
                write!(f, "internal error in the imap client during {context}; the connection was discarded")
            }
            ImapError::PoolExhausted { waited_ms } => {
                write!(f, "all imap connections are busy (waited {waited_ms} ms)")
            }
            ImapError::Unsupported { what } => write!(f, "not supported by the server: {what}"),
            ImapError::AlreadyExists { folder } => write!(f, "folder {} already exists", quoted(folder)),
        }
    }
}

impl std::error::Error for ImapError {}

impl From<ArgError> for ImapError {
    fn from(e: ArgError) -> ImapError {
        ImapError::Invalid(e)
    }
}

impl From<SecretError> for ImapError {
    fn from(e: SecretError) -> ImapError {
        ImapError::Secret(e)
    }
}

/// How every "the connection broke" protocol error starts (see [`ImapError::is_retryable`]).
const CONNECTION_LOST: &str = "connection lost";

/// A user-visible name in quotes with control characters escaped.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.escape_debug())
}

pub(crate) use crate::net::{hex, sanitize};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_connection_level() {
        let cases: Vec<(ImapError, &str, bool)> = vec![
            (ImapError::Connect { host: "h".into(), port: 1, reason: "r".into() }, "connect_failed", true),
            (ImapError::Tls { reason: "r".into() }, "tls_error", true),
            (ImapError::PinMismatch { expected: "a".into(), actual: "b".into() }, "pin_mismatch", true),
            (ImapError::StarttlsUnavailable, "starttls_unavailable", true),
            (ImapError::Auth { reason: "r".into() }, "auth_failed", true),
            (ImapError::Secret(SecretError::EnvMissing { var: "V".into() }), "secret_error", true),
            (ImapError::Timeout { limit: "limits.command_timeout_ms", ms: 5 }, "timeout", true),
            (ImapError::Cancelled, "cancelled", true),
            (ImapError::LimitExceeded { limit: "limits.max_response_bytes", max: 9 }, "limit_exceeded", true),
            (ImapError::UidValidityChanged { folder: "f".into(), expected: 1, actual: 2 }, "uidvalidity_changed", false),
            (ImapError::NotFound { what: "x".into() }, "not_found", false),
            (ImapError::FolderNotFound { folder: "f".into() }, "folder_not_found", false),
            (ImapError::Invalid(ArgError::new("f", "r")), "invalid_argument", false),
            (ImapError::Server { status: "NO", text: "t".into() }, "imap_error", false),
            (ImapError::Server { status: "BAD", text: "t".into() }, "imap_error", false),
            (ImapError::Server { status: "BYE", text: "t".into() }, "imap_error", true),
            (ImapError::Protocol { reason: "r".into() }, "protocol_error", true),
            (ImapError::Panicked { context: "c" }, "internal_error", true),
            (ImapError::PoolExhausted { waited_ms: 1 }, "busy", false),
            (ImapError::Unsupported { what: "x".into() }, "unsupported", false),
            (ImapError::AlreadyExists { folder: "f".into() }, "already_exists", false),
        ];
        for (e, code, conn) in cases {
            assert_eq!(e.code(), code, "{e}");
            assert_eq!(e.is_connection_level(), conn, "{e}");
            let text = e.to_string();
            assert!(!text.ends_with('.'), "{text}");
            assert_eq!(text.chars().next(), text.chars().next().map(|c| c.to_ascii_lowercase()), "{text}");
        }
    }

    #[test]
    fn display_examples() {
        let cases: Vec<(ImapError, &str)> = vec![
            (ImapError::Timeout { limit: "limits.command_timeout_ms", ms: 60000 }, "timed out after 60000 ms (limits.command_timeout_ms)"),
            (ImapError::FolderNotFound { folder: "a\u{1b}[31m".into() }, "folder \"a\\u{1b}[31m\" not found"),
            (
                ImapError::UidValidityChanged { folder: "INBOX".into(), expected: 1, actual: 2 },
                "uidvalidity of folder \"INBOX\" changed from 1 to 2; earlier uids are no longer valid",
            ),
            (ImapError::Invalid(ArgError::new("subject", "contains a NUL byte")), "invalid subject: contains a NUL byte"),
            (ImapError::AlreadyExists { folder: "Archive".into() }, "folder \"Archive\" already exists"),
            (ImapError::Unsupported { what: "moving messages: no MOVE".into() }, "not supported by the server: moving messages: no MOVE"),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }

    #[test]
    fn only_broken_connections_are_retried() {
        let lost = ImapError::connection_lost("during examine", Some("Broken pipe (os error 32)\r\n"));
        assert_eq!(lost.to_string(), "imap protocol error: connection lost during examine: Broken pipe (os error 32)");
        let cases: Vec<(ImapError, bool)> = vec![
            (lost, true),
            (ImapError::connection_lost("before login", None), true),
            (ImapError::Server { status: "BYE", text: "idle for too long".into() }, true),
            (ImapError::Protocol { reason: "unparseable response from the server".into() }, false),
            (ImapError::Timeout { limit: "limits.command_timeout_ms", ms: 1 }, false),
            (ImapError::LimitExceeded { limit: "limits.max_response_bytes", max: 1 }, false),
            (ImapError::Panicked { context: "uid fetch" }, false),
            (ImapError::Server { status: "NO", text: "x".into() }, false),
        ];
        for (e, retry) in cases {
            assert_eq!(e.is_retryable(), retry, "{e}");
        }
    }

    #[test]
    fn sanitizing() {
        let cases: &[(&str, &str)] = &[
            ("[AUTHENTICATIONFAILED] Authentication failed.", "[AUTHENTICATIONFAILED] Authentication failed."),
            ("bad\u{1b}[2Jthing\r\nmore", "bad[2Jthing more"),
            ("a\u{202e}b\u{200b}c", "abc"),
            ("  lots   of\t\tspace  ", "lots of space"),
        ];
        for (raw, want) in cases {
            assert_eq!(sanitize(raw), *want);
        }
        assert_eq!(sanitize(&"é".repeat(500)).chars().count(), 200);
    }
}
