//! The TLS rules IMAP and SMTP share: TLS 1.2 or newer, the system roots plus the optional
//! `ca_file`, host name verification always on, and the leaf certificate's SHA-256 for pinning.
//! Errors are reasons safe to show (server-controlled text is sanitized); each protocol wraps
//! them in its own error type.

use std::io::Read;
use std::path::Path;

use native_tls::{Certificate, Protocol, TlsConnector};
use sha2::{Digest, Sha256};

use super::guard::{Guarded, IoControl, Trip};
use super::sanitize;

pub(crate) type TlsStream = native_tls::TlsStream<Guarded>;

/// Largest `ca_file` read.
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// Why a handshake failed: the guard tripped (deadline, byte budget, cancellation), or TLS
/// itself failed for a reason safe to show.
#[derive(Debug)]
pub(crate) enum TlsFailure {
    Trip(Trip),
    Reason(String),
}

/// The PEM certificates of `ca_file` (at most 1 MiB, at least one certificate).
fn ca_certificates(path: &Path) -> Result<Vec<u8>, String> {
    let unreadable = |reason: String| format!("cannot use ca_file {}: {reason}", path.display());
    let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1).read_to_end(&mut pem).map_err(|e| unreadable(e.to_string()))?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(unreadable("larger than 1 MiB".into()));
    }
    Ok(pem)
}

/// The connector every session uses.
pub(crate) fn connector(ca_file: Option<&Path>) -> Result<TlsConnector, String> {
    let mut b = TlsConnector::builder();
    b.min_protocol_version(Some(Protocol::Tlsv12));
    if let Some(path) = ca_file {
        let pem = ca_certificates(path)?;
        let certs = Certificate::stack_from_pem(&pem)
            .map_err(|e| format!("cannot use ca_file {}: {}", path.display(), sanitize(&e.to_string())))?;
        if certs.is_empty() {
            return Err(format!("cannot use ca_file {}: no PEM certificate in it", path.display()));
        }
        for c in certs {
            b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| sanitize(&e.to_string()))
}

/// The handshake, preferring the guard's reason when it tripped.
pub(crate) fn handshake(connector: &TlsConnector, host: &str, stream: Guarded, ctl: &IoControl) -> Result<TlsStream, TlsFailure> {
    connector.connect(host, stream).map_err(|e| match ctl.trip() {
        Some(t) => TlsFailure::Trip(t),
        None => TlsFailure::Reason(match e {
            native_tls::HandshakeError::Failure(e) => sanitize(&e.to_string()),
            native_tls::HandshakeError::WouldBlock(_) => "handshake interrupted".to_string(),
        }),
    })
}

/// SHA-256 of the server's leaf certificate (DER): what `pin_sha256` is compared with.
pub(crate) fn leaf_sha256(tls: &TlsStream) -> Result<[u8; 32], String> {
    let cert = tls.peer_certificate().map_err(|e| sanitize(&e.to_string()))?.ok_or_else(|| "the server sent no certificate".to_string())?;
    let der = cert.to_der().map_err(|e| sanitize(&e.to_string()))?;
    Ok(Sha256::digest(&der).into())
}

/// What a TLS handshake negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// As OpenSSL names it: `TLSv1.3`, `TLSv1.2`.
    pub version: String,
    /// As OpenSSL names it: `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
    pub cert_sha256: [u8; 32],
}

/// For `mailmoat check`: native-tls does not tell which version and cipher it negotiated, so a
/// second, short connection repeats the handshake with OpenSSL directly, under the same rules
/// (system roots plus `ca_file`, host name verified, TLS 1.2 or newer), reads what was
/// negotiated and hangs up. The caller speaks the protocol up to the handshake (STARTTLS) and
/// checks the pin. On Linux native-tls is OpenSSL with the same defaults, so both agree.
pub(crate) fn probe(host: &str, ca_file: Option<&Path>, stream: Guarded, ctl: &IoControl) -> Result<TlsInfo, TlsFailure> {
    use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVersion};
    let reason = |e: &dyn std::fmt::Display| TlsFailure::Reason(sanitize(&e.to_string()));
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| reason(&e))?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2)).map_err(|e| reason(&e))?;
    // The host's CA store, found as native-tls finds it: a vendored OpenSSL (the static build)
    // would otherwise look under its own /usr/local/ssl and trust nothing.
    let store = openssl_probe::probe();
    if let Some(file) = &store.cert_file {
        let _ = b.load_verify_locations(Some(file), None);
    }
    for dir in &store.cert_dir {
        let _ = b.load_verify_locations(None, Some(dir));
    }
    if let Some(path) = ca_file {
        let pem = ca_certificates(path).map_err(TlsFailure::Reason)?;
        let certs = openssl::x509::X509::stack_from_pem(&pem)
            .map_err(|e| TlsFailure::Reason(format!("cannot use ca_file {}: {}", path.display(), sanitize(&e.to_string()))))?;
        if certs.is_empty() {
            return Err(TlsFailure::Reason(format!("cannot use ca_file {}: no PEM certificate in it", path.display())));
        }
        for c in certs {
            b.cert_store_mut().add_cert(c).map_err(|e| reason(&e))?;
        }
    }
    let mut tls = b.build().connect(host, stream).map_err(|e| match ctl.trip() {
        Some(t) => TlsFailure::Trip(t),
        None => match e {
            HandshakeError::Failure(mid) => reason(mid.error()),
            HandshakeError::SetupFailure(stack) => reason(&stack),
            HandshakeError::WouldBlock(_) => TlsFailure::Reason("handshake interrupted".into()),
        },
    })?;
    let ssl = tls.ssl();
    let der = ssl
        .peer_certificate()
        .ok_or_else(|| TlsFailure::Reason("the server sent no certificate".into()))?
        .to_der()
        .map_err(|e| reason(&e))?;
    let info = TlsInfo {
        version: sanitize(ssl.version_str()),
        cipher: ssl.current_cipher().map(|c| sanitize(c.name())).unwrap_or_default(),
        cert_sha256: Sha256::digest(&der).into(),
    };
    // Best effort: the probe is complete whether or not the close_notify goes out.
    let _ = tls.shutdown();
    Ok(info)
}
