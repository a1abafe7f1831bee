//! TCP and TLS for SMTP, under the same rules as IMAP: the shared bounded connect in
//! `crate::net`, TLS 1.2 or newer, system roots plus the optional `ca_file`, host name
//! verification always on, and the leaf certificate's SHA-256 for pinning.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use native_tls::{Certificate, Protocol, TlsConnector};
use sha2::{Digest, Sha256};

use super::error::{sanitize, SmtpError};
use crate::config::SmtpConfig;
use crate::imap::CancelToken;
use crate::net::guard::{Guarded, IoControl};
use crate::net::ConnectFailure;

pub(crate) type TlsStream = native_tls::TlsStream<Guarded>;

/// Largest `ca_file` read.
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

pub(crate) fn tcp_connect(host: &str, port: u16, timeout: Duration, cancel: &CancelToken) -> Result<TcpStream, SmtpError> {
    crate::net::tcp_connect(host, port, timeout, &|| cancel.is_cancelled()).map_err(|f| match f {
        ConnectFailure::Timeout => {
            SmtpError::Timeout { limit: "limits.connect_timeout_ms", ms: timeout.as_millis().try_into().unwrap_or(u64::MAX) }
        }
        ConnectFailure::Cancelled => SmtpError::Cancelled,
        ConnectFailure::Failed(reason) => SmtpError::Connect { host: host.to_string(), port, reason },
    })
}

/// TLS 1.2 or newer, system roots plus the optional `ca_file`, host name always verified.
pub(crate) fn tls_connector(smtp: &SmtpConfig) -> Result<TlsConnector, SmtpError> {
    let mut b = TlsConnector::builder();
    b.min_protocol_version(Some(Protocol::Tlsv12));
    if let Some(path) = &smtp.ca_file {
        let unreadable = |reason: String| SmtpError::Tls { reason: format!("cannot use ca_file {}: {reason}", path.display()) };
        let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
        let mut pem = Vec::new();
        file.take(MAX_CA_FILE_BYTES + 1).read_to_end(&mut pem).map_err(|e| unreadable(e.to_string()))?;
        if pem.len() as u64 > MAX_CA_FILE_BYTES {
            return Err(unreadable("larger than 1 MiB".into()));
        }
        let certs = Certificate::stack_from_pem(&pem).map_err(|e| unreadable(sanitize(&e.to_string())))?;
        if certs.is_empty() {
            return Err(unreadable("no PEM certificate in it".into()));
        }
        for c in certs {
            b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| SmtpError::Tls { reason: sanitize(&e.to_string()) })
}

/// The handshake, then the pin check; returns the stream and the leaf's SHA-256.
pub(crate) fn secure(
    connector: &TlsConnector,
    smtp: &SmtpConfig,
    stream: Guarded,
    ctl: &IoControl,
) -> Result<(TlsStream, [u8; 32]), SmtpError> {
    let tls = match connector.connect(&smtp.host, stream) {
        Ok(s) => s,
        Err(e) => {
            if let Some(t) = ctl.trip() {
                return Err(super::session::trip_error(t));
            }
            let reason = match e {
                native_tls::HandshakeError::Failure(e) => sanitize(&e.to_string()),
                native_tls::HandshakeError::WouldBlock(_) => "handshake interrupted".to_string(),
            };
            return Err(SmtpError::Tls { reason });
        }
    };
    let cert = tls
        .peer_certificate()
        .map_err(|e| SmtpError::Tls { reason: sanitize(&e.to_string()) })?
        .ok_or_else(|| SmtpError::Tls { reason: "the server sent no certificate".into() })?;
    let der = cert.to_der().map_err(|e| SmtpError::Tls { reason: sanitize(&e.to_string()) })?;
    let sha: [u8; 32] = Sha256::digest(&der).into();
    match &smtp.pin_sha256 {
        Some(pin) if pin != &sha => Err(SmtpError::PinMismatch { expected: super::error::hex(pin), actual: super::error::hex(&sha) }),
        _ => Ok((tls, sha)),
    }
}
