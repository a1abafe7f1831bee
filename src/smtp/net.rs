//! TCP and TLS for SMTP, under the same rules as IMAP: the shared bounded connect in
//! `crate::net`, TLS 1.2 or newer, system roots plus the optional `ca_file`, host name
//! verification always on, and the leaf certificate's SHA-256 for pinning.

use std::net::TcpStream;
use std::time::Duration;

use native_tls::TlsConnector;

use super::error::SmtpError;
use crate::config::SmtpConfig;
use crate::imap::CancelToken;
use crate::net::guard::{Guarded, IoControl};
use crate::net::tls::{self, TlsFailure};
use crate::net::ConnectFailure;

pub(crate) use crate::net::tls::TlsStream;

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
    tls::connector(smtp.ca_file.as_deref()).map_err(|reason| SmtpError::Tls { reason })
}

pub(crate) fn tls_failure(f: TlsFailure) -> SmtpError {
    match f {
        TlsFailure::Trip(t) => super::session::trip_error(t),
        TlsFailure::Reason(reason) => SmtpError::Tls { reason },
    }
}

/// The pin check against the leaf's SHA-256.
pub(crate) fn check_pin(smtp: &SmtpConfig, sha: &[u8; 32]) -> Result<(), SmtpError> {
    match &smtp.pin_sha256 {
        Some(pin) if pin != sha => Err(SmtpError::PinMismatch { expected: super::error::hex(pin), actual: super::error::hex(sha) }),
        _ => Ok(()),
    }
}

/// The handshake, then the pin check; returns the stream and the leaf's SHA-256.
pub(crate) fn secure(
    connector: &TlsConnector,
    smtp: &SmtpConfig,
    stream: Guarded,
    ctl: &IoControl,
) -> Result<(TlsStream, [u8; 32]), SmtpError> {
    let tls = tls::handshake(connector, &smtp.host, stream, ctl).map_err(tls_failure)?;
    let sha = tls::leaf_sha256(&tls).map_err(|reason| SmtpError::Tls { reason })?;
    check_pin(smtp, &sha)?;
    Ok((tls, sha))
}
