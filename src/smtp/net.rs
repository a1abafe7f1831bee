//! TCP and TLS for SMTP, under the same rules as IMAP (these are copies of the private helpers
//! in `imap::conn`, adapted to `SmtpConfig`; the two should move to one shared module): DNS on
//! a helper thread bounded by the connect timeout, TLS 1.2 or newer, system roots plus the
//! optional `ca_file`, host name verification always on, and the leaf certificate's SHA-256
//! for pinning.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use native_tls::{Certificate, Protocol, TlsConnector};
use sha2::{Digest, Sha256};

use super::error::{sanitize, SmtpError};
use crate::config::SmtpConfig;
use crate::imap::CancelToken;
use crate::net::guard::{Guarded, IoControl};

pub(crate) type TlsStream = native_tls::TlsStream<Guarded>;

/// Largest `ca_file` read.
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

pub(crate) fn tcp_connect(host: &str, port: u16, timeout: Duration, cancel: &CancelToken) -> Result<TcpStream, SmtpError> {
    let deadline = Instant::now() + timeout;
    let timeout_err = || SmtpError::Timeout { limit: "limits.connect_timeout_ms", ms: timeout.as_millis().try_into().unwrap_or(u64::MAX) };
    let fail = |reason: String| SmtpError::Connect { host: host.to_string(), port, reason };
    let addrs = resolve(host, port, timeout).map_err(|e| match e {
        None => timeout_err(),
        Some(reason) => fail(reason),
    })?;
    let mut last = String::from("no address");
    for addr in addrs {
        if cancel.is_cancelled() {
            return Err(SmtpError::Cancelled);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timeout_err());
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => last = "timed out".into(),
            Err(e) => last = sanitize(&e.to_string()),
        }
    }
    if Instant::now() >= deadline {
        return Err(timeout_err());
    }
    Err(fail(last))
}

/// DNS on a helper thread, so a hung resolver cannot outlive the connect timeout.
/// `Err(None)` means it timed out.
fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, Option<String>> {
    let (tx, rx) = mpsc::channel();
    let h = host.to_string();
    std::thread::Builder::new()
        .name("smtp-dns".into())
        .spawn(move || {
            let r = (h.as_str(), port).to_socket_addrs().map(|a| a.collect::<Vec<_>>());
            let _ = tx.send(r);
        })
        .map_err(|e| Some(format!("cannot start resolver thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(Some("host name has no addresses".into())),
        Ok(Err(e)) => Err(Some(format!("cannot resolve host: {}", sanitize(&e.to_string())))),
        Err(_) => Err(None),
    }
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
