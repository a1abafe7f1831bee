//! SMTP submission: sends exactly the given message to exactly the given recipients, over TLS,
//! authenticated, bounded in time and size. No SMTP crate: the protocol is small and every
//! byte the server sends is hostile input.
//!
//! Rules (the same TLS rules as `imap`):
//! - Implicit TLS, or STARTTLS that is mandatory: a server that does not offer it gets no
//!   credentials and no mail. Anything the server sent in plaintext is discarded at the
//!   STARTTLS boundary (data pending there is a protocol error), and EHLO is repeated over TLS.
//! - TLS 1.2 or newer, system roots plus `ca_file`, host name verification always on, optional
//!   leaf pin. The password is resolved only after the certificate verified.
//! - AUTH PLAIN (preferred) or LOGIN, credentials only in zeroizing buffers, replies redacted.
//! - The envelope and the message are checked before connecting: addresses validated (no
//!   CR/LF can reach a command), recipients capped by `limits.max_recipients`, the message by
//!   `limits.max_send_bytes`, lines by 998 bytes. The server's SIZE is honoured before MAIL
//!   FROM; 8BITMIME and SMTPUTF8 are used only when offered and needed, and a message that
//!   needs one the server lacks is refused.
//! - Replies are bounded (2 KiB a line, 100 lines, 64 KiB); every reply text a caller sees is
//!   sanitized. Timeouts and cancellation as described in `session`.
//! - Recipients are tried one by one: refused ones are reported and the rest still get the
//!   message; when all are refused nothing is sent.
//!
//! Architecture Invariant: `smtp` and `imap` are the only modules that touch the network, and
//! nothing here writes to stdout or logs a credential.

mod error;
mod message;
mod net;
mod reply;
mod session;

use std::sync::Arc;
use std::time::Instant;

pub use error::SmtpError;

use crate::config::{Account, Limits, TlsMode};
use crate::imap::CancelToken;
use crate::secret::{self, Credential};

/// What happened to one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReport {
    /// Recipients the server accepted (duplicates removed, in the caller's order).
    pub accepted: Vec<String>,
    /// Recipients the server refused, with its reply (sanitized).
    pub rejected: Vec<(String, String)>,
    /// Bytes of the message as sent (CRLF line ends, before dot-stuffing).
    pub message_size: usize,
    /// The server's final reply (sanitized), which usually names its queue id.
    pub queue_reply: String,
}

/// What [`SmtpClient::check`] found out about the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpCheck {
    pub host: String,
    pub port: u16,
    /// "implicit" or "starttls".
    pub tls: &'static str,
    /// The negotiated TLS version and cipher, e.g. `TLSv1.3, TLS_AES_256_GCM_SHA384`.
    pub tls_version: String,
    /// The greeting (sanitized).
    pub greeting: String,
    /// Extensions advertised over TLS, `KEYWORD params` (sanitized).
    pub extensions: Vec<String>,
    /// "PLAIN", "LOGIN" or "XOAUTH2".
    pub auth_mechanism: &'static str,
    /// The server's SIZE limit, if it states one.
    pub size_limit: Option<u64>,
    /// SHA-256 of the server's leaf certificate, lowercase hex (what `pin_sha256` takes).
    pub cert_sha256: String,
    /// From the start of the TCP connect to the end of authentication.
    pub login_ms: u64,
}

/// Sends mail for one account. Holds no connection: each send opens its own.
#[derive(Clone, Debug)]
pub struct SmtpClient {
    account: Arc<Account>,
    limits: Arc<Limits>,
}

impl SmtpClient {
    /// `None` when the account has no `[smtp]` table.
    pub fn new(account: Arc<Account>, limits: Arc<Limits>) -> Option<SmtpClient> {
        account.smtp.as_ref()?;
        Some(SmtpClient { account, limits })
    }

    /// Sends exactly `message` to exactly `recipients` (the envelope), from envelope sender
    /// `from`. One connection per send. The message is sent as given (after CRLF
    /// normalization and dot-stuffing): a Bcc header in it would be delivered, so callers pass
    /// a copy without one.
    ///
    /// Before the message's final dot, every error means nothing was sent. After it, a timeout
    /// or a broken connection leaves the message's fate unknown (the server may have taken it).
    pub fn send(&self, cancel: &CancelToken, from: &str, recipients: &[String], message: &[u8]) -> Result<SendReport, SmtpError> {
        let env = message::envelope(from, recipients, self.limits.max_recipients)?;
        let msg = message::prepare(message, self.limits.max_send_bytes)?;
        if cancel.is_cancelled() {
            return Err(SmtpError::Cancelled);
        }
        let mut s = self.login(cancel)?.0;
        match s.transaction(&env, &msg) {
            Ok(report) => {
                s.quit();
                Ok(report)
            }
            Err(e) => {
                // A polite goodbye when the session is still in step; otherwise just close.
                if matches!(
                    e,
                    SmtpError::Rejected { .. } | SmtpError::AllRecipientsRejected(_) | SmtpError::TooLarge { .. } | SmtpError::Invalid(_)
                ) {
                    s.quit();
                }
                Err(e)
            }
        }
    }

    /// Connects, secures, authenticates and says QUIT; reports what the server offers.
    pub fn check(&self) -> Result<SmtpCheck, SmtpError> {
        let (s, mechanism, login_ms) = self.login(&CancelToken::new())?;
        let smtp = self.account.smtp.as_ref().ok_or_else(|| SmtpError::Invalid("no smtp settings".into()))?;
        let mut report = SmtpCheck {
            tls_version: String::new(),
            host: smtp.host.clone(),
            port: smtp.port,
            tls: match smtp.tls {
                TlsMode::Implicit => "implicit",
                TlsMode::Starttls => "starttls",
            },
            greeting: s.greeting.clone(),
            extensions: s.ext.describe(),
            auth_mechanism: mechanism,
            size_limit: s.ext.size_limit(),
            cert_sha256: error::hex(&s.cert_sha256),
            login_ms,
        };
        let cert_sha256 = s.cert_sha256;
        s.quit();
        // native-tls does not say what it negotiated: a second, short connection asks OpenSSL.
        report.tls_version = match session::tls_probe(&self.account, &self.limits) {
            Ok(p) if p.cert_sha256 != cert_sha256 => {
                format!("{}, {} (the probe connection saw a different certificate)", p.version, p.cipher)
            }
            Ok(p) => format!("{}, {}", p.version, p.cipher),
            Err(e @ SmtpError::PinMismatch { .. }) => return Err(e),
            Err(e) => format!("TLS 1.2+ (enforced); version unknown: {e}"),
        };
        Ok(report)
    }

    fn login(&self, cancel: &CancelToken) -> Result<(session::Session, &'static str, u64), SmtpError> {
        let started = Instant::now();
        let smtp =
            self.account.smtp.as_ref().ok_or_else(|| SmtpError::Invalid(format!("account {} has no smtp settings", self.account.name)))?;
        let mut s = session::connect(&self.account, &self.limits, cancel)?;
        // The secret is resolved only now: never for a server whose certificate did not verify.
        let timeout = self.limits.secret_command_timeout();
        let mechanism = match &smtp.credential {
            Credential::Password(source) => s.authenticate(&smtp.username, &source.resolve(timeout)?)?,
            Credential::OAuth2(source) => {
                let refused = |e: &SmtpError| matches!(e, SmtpError::Auth { .. });
                secret::with_oauth2_token(source, timeout, SmtpError::Secret, refused, |token| {
                    s.authenticate_xoauth2(&smtp.username, token)
                })?
            }
        };
        let login_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
        crate::info!(
            "smtp: account {} connected to {}:{}, authenticated with {mechanism} in {login_ms} ms",
            self.account.name,
            smtp.host,
            smtp.port
        );
        Ok((s, mechanism, login_ms))
    }
}

/// Whether `addr` may receive mail under an `allowed_recipients` list: an entry is an exact
/// address or `*@domain`, compared without regard to case; `*@example.com` does not cover
/// `sub.example.com`. An empty list allows everyone (the setting is off).
pub fn recipient_allowed(allowed: &[String], addr: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let addr = addr.trim();
    let Some((local, domain)) = addr.rsplit_once('@') else { return false };
    if addr.matches('@').count() != 1 || local.is_empty() || domain.is_empty() {
        return false;
    }
    allowed.iter().any(|entry| match entry.strip_prefix("*@") {
        Some(d) => d.to_lowercase() == domain.to_lowercase(),
        None => entry.to_lowercase() == addr.to_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_policy() {
        let allowed: Vec<String> = ["bob@Example.org", "*@corp.example", "*@ÉCOLE.example"].iter().map(|s| s.to_string()).collect();
        let cases: &[(&str, bool)] = &[
            ("bob@example.org", true),
            ("BOB@EXAMPLE.ORG", true),
            (" bob@example.org ", true),
            ("bob2@example.org", false),
            ("alice@example.org", false),
            ("anyone@corp.example", true),
            ("Anyone@CORP.Example", true),
            ("x@sub.corp.example", false),
            ("x@corp.example.evil.test", false),
            ("x@notcorp.example", false),
            ("x@école.example", true),
            ("corp.example", false),
            ("a@b@corp.example", false),
            ("@corp.example", false),
            ("x@", false),
        ];
        for (addr, want) in cases {
            assert_eq!(recipient_allowed(&allowed, addr), *want, "{addr}");
        }
        assert!(recipient_allowed(&[], "anyone@anywhere.example"));
        // A `*@domain` entry never matches by its literal text.
        assert!(!recipient_allowed(&["*@x.org".to_string()], "*@x.org.evil"));
    }
}
