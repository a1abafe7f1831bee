//! The SMTP boundary's error type: one enum, stable codes, and text that is safe to show.
//!
//! Server text is sanitized (control characters stripped, at most 200 characters) before it is
//! stored in a variant, so `Display` can never carry terminal escapes or a flood of bytes. No
//! variant carries the password: authentication replies are redacted before they are kept.

use std::fmt;

use crate::secret::SecretError;

/// Why sending (or checking) failed.
#[derive(Debug)]
pub enum SmtpError {
    /// DNS resolution or the TCP connection failed.
    Connect { host: String, port: u16, reason: String },
    /// The TLS handshake failed (certificate or host name verification included), or the
    /// server refused STARTTLS after offering it.
    Tls { reason: String },
    /// The server's leaf certificate does not match the configured `pin_sha256`.
    PinMismatch { expected: String, actual: String },
    /// STARTTLS was required but the server does not offer it; no credentials were sent.
    StarttlsUnavailable,
    /// The server refused the credentials, or offers no mechanism we use.
    Auth { reason: String },
    /// The password could not be obtained from its configured source.
    Secret(SecretError),
    /// A named timeout fired.
    Timeout { limit: &'static str, ms: u64 },
    /// The caller cancelled the operation (never after the message's final dot was sent).
    Cancelled,
    /// The server answered a command with an error; `stage` names the command ("greeting",
    /// "EHLO", "MAIL FROM", "RCPT TO", "DATA", "end of data").
    Rejected { stage: &'static str, reply: String },
    /// Every recipient was refused: `(address, server reply)`; nothing was sent.
    AllRecipientsRejected(Vec<(String, String)>),
    /// A size or count limit: `limits.max_send_bytes`, `limits.max_recipients`, or the SIZE the
    /// server advertises (`server SIZE`). Checked before anything is sent.
    TooLarge { limit: &'static str, max: u64 },
    /// The server's replies could not be understood, were too large, or the connection broke.
    Protocol { reason: String },
    /// The envelope or the message was refused before anything was sent.
    Invalid(String),
}

impl SmtpError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SmtpError::Connect { .. } => "connect_failed",
            SmtpError::Tls { .. } => "tls_error",
            SmtpError::PinMismatch { .. } => "pin_mismatch",
            SmtpError::StarttlsUnavailable => "starttls_unavailable",
            SmtpError::Auth { .. } => "auth_failed",
            SmtpError::Secret(_) => "secret_error",
            SmtpError::Timeout { .. } => "timeout",
            SmtpError::Cancelled => "cancelled",
            SmtpError::Rejected { .. } | SmtpError::AllRecipientsRejected(_) => "smtp_rejected",
            SmtpError::TooLarge { .. } => "limit_exceeded",
            SmtpError::Protocol { .. } => "protocol_error",
            SmtpError::Invalid(_) => "invalid_argument",
        }
    }
}

impl fmt::Display for SmtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmtpError::Connect { host, port, reason } => write!(f, "cannot connect to smtp server {host}:{port}: {reason}"),
            SmtpError::Tls { reason } => write!(f, "smtp tls failed: {reason}"),
            SmtpError::PinMismatch { expected, actual } => {
                write!(f, "smtp server certificate does not match the pinned sha-256 (expected {expected}, got {actual})")
            }
            SmtpError::StarttlsUnavailable => {
                write!(f, "smtp server does not offer starttls; refusing to send credentials or mail without tls")
            }
            SmtpError::Auth { reason } => write!(f, "smtp authentication failed: {reason}"),
            SmtpError::Secret(e) => write!(f, "cannot obtain the smtp password: {e}"),
            SmtpError::Timeout { limit, ms } => write!(f, "smtp timed out after {ms} ms ({limit})"),
            SmtpError::Cancelled => write!(f, "cancelled; the message was not sent"),
            SmtpError::Rejected { stage, reply } => write!(f, "smtp server rejected {stage}: {reply}"),
            SmtpError::AllRecipientsRejected(list) => {
                write!(f, "smtp server rejected every recipient; nothing was sent (")?;
                for (i, (addr, reply)) in list.iter().enumerate() {
                    if i > 0 {
                        write!(f, "; ")?;
                    }
                    write!(f, "{addr}: {reply}")?;
                }
                write!(f, ")")
            }
            SmtpError::TooLarge { limit, max } => match *limit {
                "limits.max_recipients" => write!(f, "too many recipients: at most {max} ({limit})"),
                "server SIZE" => write!(f, "message is larger than the {max} bytes the smtp server accepts"),
                _ => write!(f, "message is larger than {limit} ({max} bytes)"),
            },
            SmtpError::Protocol { reason } => write!(f, "smtp protocol error: {reason}"),
            SmtpError::Invalid(reason) => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for SmtpError {}

impl From<SecretError> for SmtpError {
    fn from(e: SecretError) -> SmtpError {
        SmtpError::Secret(e)
    }
}

pub(crate) use crate::net::{hex, sanitize};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_display() {
        let cases: Vec<(SmtpError, &str, &str)> = vec![
            (
                SmtpError::Connect { host: "h".into(), port: 1, reason: "refused".into() },
                "connect_failed",
                "cannot connect to smtp server h:1: refused",
            ),
            (SmtpError::Tls { reason: "bad cert".into() }, "tls_error", "smtp tls failed: bad cert"),
            (
                SmtpError::PinMismatch { expected: "aa".into(), actual: "bb".into() },
                "pin_mismatch",
                "smtp server certificate does not match the pinned sha-256 (expected aa, got bb)",
            ),
            (
                SmtpError::StarttlsUnavailable,
                "starttls_unavailable",
                "smtp server does not offer starttls; refusing to send credentials or mail without tls",
            ),
            (SmtpError::Auth { reason: "535 5.7.8 no".into() }, "auth_failed", "smtp authentication failed: 535 5.7.8 no"),
            (
                SmtpError::Secret(SecretError::EnvMissing { var: "V".into() }),
                "secret_error",
                "cannot obtain the smtp password: environment variable V is not set (or is not valid UTF-8)",
            ),
            (
                SmtpError::Timeout { limit: "limits.command_timeout_ms", ms: 5 },
                "timeout",
                "smtp timed out after 5 ms (limits.command_timeout_ms)",
            ),
            (SmtpError::Cancelled, "cancelled", "cancelled; the message was not sent"),
            (SmtpError::Rejected { stage: "MAIL FROM", reply: "550 no".into() }, "smtp_rejected", "smtp server rejected MAIL FROM: 550 no"),
            (
                SmtpError::AllRecipientsRejected(vec![("a@x.org".into(), "550 a".into()), ("b@x.org".into(), "550 b".into())]),
                "smtp_rejected",
                "smtp server rejected every recipient; nothing was sent (a@x.org: 550 a; b@x.org: 550 b)",
            ),
            (
                SmtpError::TooLarge { limit: "limits.max_send_bytes", max: 10 },
                "limit_exceeded",
                "message is larger than limits.max_send_bytes (10 bytes)",
            ),
            (
                SmtpError::TooLarge { limit: "limits.max_recipients", max: 3 },
                "limit_exceeded",
                "too many recipients: at most 3 (limits.max_recipients)",
            ),
            (
                SmtpError::TooLarge { limit: "server SIZE", max: 9 },
                "limit_exceeded",
                "message is larger than the 9 bytes the smtp server accepts",
            ),
            (SmtpError::Protocol { reason: "garbage".into() }, "protocol_error", "smtp protocol error: garbage"),
            (SmtpError::Invalid("invalid recipient: x".into()), "invalid_argument", "invalid recipient: x"),
        ];
        for (e, code, text) in cases {
            assert_eq!(e.code(), code, "{e}");
            assert_eq!(e.to_string(), text);
            assert!(!text.ends_with('.'));
            assert_eq!(text.chars().next(), text.chars().next().map(|c| c.to_ascii_lowercase()));
        }
    }

    #[test]
    fn sanitizing() {
        let cases: &[(&str, &str)] = &[
            ("250 2.0.0 Ok: queued as 2DBA", "250 2.0.0 Ok: queued as 2DBA"),
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
