//! What IMAP and SMTP share: the guard adapter below TLS that enforces deadlines, byte budgets
//! and cancellation on the raw socket, and the rule that makes server text safe to show.

pub mod guard;
pub(crate) mod tls;

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Why a TCP connection could not be made.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ConnectFailure {
    /// The connect timeout passed (DNS included).
    Timeout,
    /// The request was cancelled between attempts.
    Cancelled,
    /// Resolution or every address failed; the reason is safe to show.
    Failed(String),
}

/// Resolves `host` (on a helper thread, so a hung resolver cannot outlive `timeout`) and tries
/// each address until one connects, all within `timeout`; `cancelled` is checked between tries.
pub(crate) fn tcp_connect(host: &str, port: u16, timeout: Duration, cancelled: &dyn Fn() -> bool) -> Result<TcpStream, ConnectFailure> {
    let deadline = Instant::now() + timeout;
    let addrs = resolve(host, port, timeout)?;
    let mut last = String::from("no address");
    for addr in addrs {
        if cancelled() {
            return Err(ConnectFailure::Cancelled);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ConnectFailure::Timeout);
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => last = "timed out".into(),
            Err(e) => last = sanitize(&e.to_string()),
        }
    }
    if Instant::now() >= deadline {
        return Err(ConnectFailure::Timeout);
    }
    Err(ConnectFailure::Failed(last))
}

fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, ConnectFailure> {
    let (tx, rx) = mpsc::channel();
    let h = host.to_string();
    std::thread::Builder::new()
        .name("mailmoat-dns".into())
        .spawn(move || {
            let r = (h.as_str(), port).to_socket_addrs().map(|a| a.collect::<Vec<_>>());
            let _ = tx.send(r);
        })
        .map_err(|e| ConnectFailure::Failed(format!("cannot start resolver thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(ConnectFailure::Failed("host name has no addresses".into())),
        Ok(Err(e)) => Err(ConnectFailure::Failed(format!("cannot resolve host: {}", sanitize(&e.to_string())))),
        Err(_) => Err(ConnectFailure::Timeout),
    }
}

/// Longest server text kept in an error, in characters.
pub(crate) const MAX_SERVER_TEXT_CHARS: usize = 200;

/// `text` with every secret (and any other sensitive byte string, such as the base64 of a SASL
/// response) of three bytes or more replaced by `[redacted]`: a hostile server can echo what it
/// received into an error message.
pub(crate) fn redact(text: &str, secrets: &[&[u8]]) -> String {
    let mut clean = text.to_string();
    for secret in secrets {
        if secret.len() >= 3 {
            clean = clean.replace(&*String::from_utf8_lossy(secret), "[redacted]");
        }
    }
    clean
}

/// Server text made safe to show: control characters (including bidi controls) removed,
/// whitespace runs collapsed, at most [`MAX_SERVER_TEXT_CHARS`] characters.
pub(crate) fn sanitize(text: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_whitespace() { ' ' } else { c };
        if c.is_control() || is_format_char(c) || (c == ' ' && last_space) {
            continue;
        }
        if count == MAX_SERVER_TEXT_CHARS {
            break;
        }
        out.push(c);
        count += 1;
        last_space = c == ' ';
    }
    out.trim_end().to_string()
}

/// Bidi overrides, isolates and zero-width characters that can disguise text.
fn is_format_char(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
