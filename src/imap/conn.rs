//! One authenticated IMAP session: TCP, the guard, TLS (implicit or STARTTLS), login, and the
//! single place where commands are handed to the `imap` crate.
//!
//! Before login we speak the protocol ourselves, a byte at a time, so that nothing the server
//! sends in plaintext can be buffered across the STARTTLS boundary, and so that capabilities are
//! known before any credential is sent. After login every command goes through [`Conn::run`]:
//! the guard is armed with the command's deadline, byte budget and cancel flag, and the call
//! into the crate runs under `catch_unwind`.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::args::{self, Flag, MailboxName};
use super::error::{hex, sanitize, ImapError};
use super::parse::{self, has_cap};
use super::tap::{self, Tap, TapControl};
use super::CancelToken;
use crate::config::{Account, Limits, TlsMode};
use crate::net::guard::{Guarded, IoControl, Phase, Trip};
use crate::net::tls::{self, TlsFailure};
use crate::net::ConnectFailure;
use crate::secret::{self, Credential, Secret};

pub(crate) use crate::net::tls::{TlsInfo, TlsStream};

/// Longest line accepted before login (greeting, CAPABILITY, STARTTLS answer).
const MAX_PREAUTH_LINE: usize = 64 * 1024;
/// Extra bytes allowed on top of `limits.max_response_bytes` for TLS records and IMAP framing,
/// so that a response of exactly the limit is not refused for its envelope.
fn framing_slack(max: u64) -> u64 {
    max / 32 + 64 * 1024
}

/// The limits one session applies to each command (copied from `config::Limits`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SessionLimits {
    pub command_timeout: Duration,
    pub max_response_bytes: u64,
}

impl From<&Limits> for SessionLimits {
    fn from(l: &Limits) -> SessionLimits {
        SessionLimits { command_timeout: l.command_timeout(), max_response_bytes: l.max_response_bytes }
    }
}

fn response_phase(timeout: Duration, timeout_limit: &'static str, max: u64, cancel: Option<&CancelToken>) -> Phase {
    Phase::new(timeout, timeout_limit, max.saturating_add(framing_slack(max)), "limits.max_response_bytes", max, cancel.cloned())
}

impl From<Trip> for ImapError {
    fn from(t: Trip) -> ImapError {
        match t {
            Trip::Timeout { limit, ms } => ImapError::Timeout { limit, ms },
            Trip::Cancelled => ImapError::Cancelled,
            Trip::Limit { limit, max } => ImapError::LimitExceeded { limit, max },
        }
    }
}

/// Maps an I/O failure, preferring the guard's own reason when it tripped.
fn io_error(ctl: &IoControl, e: &io::Error, doing: &str) -> ImapError {
    match ctl.trip() {
        Some(t) => t.into(),
        None if e.kind() == io::ErrorKind::UnexpectedEof => ImapError::connection_lost(doing, None),
        None => ImapError::connection_lost(doing, Some(&e.to_string())),
    }
}

/// Maps an error from the `imap` crate.
fn crate_error(ctl: &IoControl, e: imap::Error, doing: &str) -> ImapError {
    if let Some(t) = ctl.trip() {
        return t.into();
    }
    match e {
        imap::Error::No(n) => ImapError::Server { status: "NO", text: parse::status_text(n.code.as_ref(), Some(&n.information)) },
        imap::Error::Bad(b) => ImapError::Server { status: "BAD", text: parse::status_text(b.code.as_ref(), Some(&b.information)) },
        // The crate reports a line it cannot parse as a BYE without code or text.
        imap::Error::Bye(b) if b.code.is_none() && b.information == "no explanation given" => {
            ImapError::Protocol { reason: format!("the server sent a response the imap library cannot parse {doing}") }
        }
        imap::Error::Bye(b) => ImapError::Server { status: "BYE", text: sanitize(&b.information) },
        imap::Error::ConnectionLost => ImapError::connection_lost(doing, None),
        imap::Error::Io(e) => io_error(ctl, &e, doing),
        imap::Error::Parse(_) => ImapError::Protocol { reason: format!("unparseable response from the server {doing}") },
        imap::Error::TagMismatch(_) => ImapError::Protocol { reason: format!("response tag mismatch {doing}") },
        _ => ImapError::Protocol { reason: format!("unexpected response from the server {doing}") },
    }
}

/// An authenticated session.
pub(crate) struct Conn {
    session: imap::Session<Tap<TlsStream>>,
    ctl: Arc<IoControl>,
    tap: Arc<TapControl>,
    limits: SessionLimits,
    /// Capabilities after login.
    pub caps: Vec<String>,
    /// SHA-256 of the server's leaf certificate (DER).
    pub cert_sha256: [u8; 32],
    /// When the last command finished.
    pub last_used: Instant,
    /// Milliseconds from the start of the TCP connect to the end of login.
    pub login_ms: u64,
    /// How we authenticated: `PLAIN`, `LOGIN` or `XOAUTH2`.
    pub mechanism: &'static str,
    /// Set when a command that changes the mailbox has been sent in the current operation: an
    /// operation that fails after that point is never retried (it may have taken effect).
    pub mutation_sent: bool,
    /// Set when the session is in a state no later operation should inherit (a folder may
    /// still be selected read-write): it is discarded instead of returned to the pool.
    pub discard: bool,
}

/// The bounds of one command, when they differ from the session's defaults.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Bounds {
    /// Read budget for the response, instead of `limits.max_response_bytes` (never less).
    pub response_bytes: Option<u64>,
    /// Bytes the command itself uploads: the deadline grows by their transfer time at
    /// [`MIN_UPLOAD_BYTES_PER_SEC`].
    pub upload_bytes: u64,
}

/// The slowest upload rate an APPEND is given time for, on top of `limits.command_timeout_ms`
/// (a 25 MB message gets 200 s more).
pub(crate) const MIN_UPLOAD_BYTES_PER_SEC: u64 = 128 * 1024;

impl Conn {
    /// Runs one command; returns the untagged part of the response (the tagged OK excluded).
    /// NO and BAD leave the session usable; anything else leaves it in an unknown state.
    pub(crate) fn run(&mut self, what: &'static str, cmd: &str, cancel: Option<&CancelToken>) -> Result<Vec<u8>, ImapError> {
        self.run_bounded(what, cmd, cancel, Bounds::default())
    }

    /// [`Conn::run`] with other bounds.
    pub(crate) fn run_bounded(
        &mut self,
        what: &'static str,
        cmd: &str,
        cancel: Option<&CancelToken>,
        bounds: Bounds,
    ) -> Result<Vec<u8>, ImapError> {
        crate::debug!("imap > {cmd}");
        self.exec(what, cancel, bounds, |s| s.run_command_and_read_response(cmd))
    }

    /// Runs one command; returns the whole response, the tagged OK line included (response
    /// codes such as COPYUID may come in either part).
    pub(crate) fn run_full(&mut self, what: &'static str, cmd: &str, cancel: Option<&CancelToken>) -> Result<Vec<u8>, ImapError> {
        crate::debug!("imap > {cmd}");
        self.exec(what, cancel, Bounds::default(), |s| s.run(cmd).map(|(data, _)| data))
    }

    /// [`Conn::run_full`] for a command that changes the mailbox (see `mutation_sent`).
    pub(crate) fn run_mutation(&mut self, what: &'static str, cmd: &str, cancel: Option<&CancelToken>) -> Result<Vec<u8>, ImapError> {
        self.mutation_sent = true;
        self.run_full(what, cmd, cancel)
    }

    /// Arms the guard, calls into the crate under `catch_unwind`, maps errors, disarms.
    fn exec<T>(
        &mut self,
        what: &'static str,
        cancel: Option<&CancelToken>,
        bounds: Bounds,
        f: impl FnOnce(&mut imap::Session<Tap<TlsStream>>) -> imap::error::Result<T>,
    ) -> Result<T, ImapError> {
        let max = bounds.response_bytes.map_or(self.limits.max_response_bytes, |b| b.max(self.limits.max_response_bytes));
        let upload = Duration::from_secs(bounds.upload_bytes / MIN_UPLOAD_BYTES_PER_SEC);
        self.ctl.arm(response_phase(self.limits.command_timeout.saturating_add(upload), "limits.command_timeout_ms", max, cancel));
        let session = &mut self.session;
        let result = catch_unwind(AssertUnwindSafe(|| f(session)));
        let out = match result {
            Err(_) => Err(ImapError::Panicked { context: what }),
            Ok(Ok(data)) => Ok(data),
            Ok(Err(e)) => Err(crate_error(&self.ctl, e, &format!("during {what}"))),
        };
        if let Err(e) = &out {
            crate::debug!("imap {what} failed: {e}");
        }
        self.ctl.disarm();
        // Anything the crate queued for us is irrelevant (we parse raw data) and must not grow.
        drop(self.session.take_all_unsolicited());
        self.last_used = Instant::now();
        out
    }

    /// APPENDs `raw` to `mailbox` with `flags`; returns the whole response (tagged line
    /// included). With LITERAL+ (or LITERAL- for at most 4096 bytes) and a UTF-8 message, one
    /// non-synchronizing command; otherwise the crate's APPEND, which waits for the server's
    /// continuation before sending the literal, while the tap records the raw answer (the
    /// crate's own parse of it drops the tagged line and fails on unexpected untagged data).
    pub(crate) fn append(
        &mut self,
        mailbox: &MailboxName,
        flags: &[Flag],
        raw: &[u8],
        cancel: Option<&CancelToken>,
    ) -> Result<Vec<u8>, ImapError> {
        let bounds = Bounds { response_bytes: None, upload_bytes: raw.len() as u64 };
        let non_sync = has_cap(&self.caps, "LITERAL+") || (has_cap(&self.caps, "LITERAL-") && raw.len() <= 4096);
        self.mutation_sent = true;
        if let (true, Ok(text)) = (non_sync, std::str::from_utf8(raw)) {
            let cmd = format!("{}\r\n{text}", args::append_command(mailbox, flags, raw.len(), true));
            return self.exec("append", cancel, bounds, |s| s.run(&cmd).map(|(data, _)| data));
        }
        // The crate writes `APPEND "<mailbox>" (<flags>) {n}`: it adds the quotes, we give the
        // escaped content of our own quoted, encoded name.
        let quoted = mailbox.encoded();
        let inner = quoted[1..quoted.len() - 1].to_string();
        let crate_flags: Vec<imap::types::Flag<'static>> =
            flags.iter().map(|f| imap::types::Flag::Custom(std::borrow::Cow::Owned(f.as_imap()))).collect();
        let tap = self.tap.clone();
        tap.start_recording();
        let result = self.exec("append", cancel, bounds, |s| match s.append(&inner, raw).flags(crate_flags).finish() {
            Ok(_) => Ok(SyncAppend::Done),
            // Only raised after the tagged OK was read: the message was stored.
            Err(imap::Error::Unexpected(_)) => Ok(SyncAppend::Done),
            Err(imap::Error::Append) => Ok(SyncAppend::NoContinuation),
            Err(e) => Err(e),
        });
        let recorded = tap.take_recording();
        match result? {
            SyncAppend::Done => Ok(strip_continuation(&recorded).to_vec()),
            // The server answered the command line itself. A lone tagged NO or BAD (no such
            // folder, too big) leaves the session in step; anything else does not.
            SyncAppend::NoContinuation => match parse::tagged_status(&recorded) {
                Ok(Some((status @ ("NO" | "BAD"), text))) if is_single_line(&recorded) => Err(ImapError::Server { status, text }),
                _ => Err(ImapError::Protocol { reason: "the server did not accept the message literal of APPEND".into() }),
            },
        }
    }

    /// Runs `UID THREAD ...` with the tap lifting the `* THREAD` lines out of the crate's
    /// view; returns those lines.
    pub(crate) fn run_thread(&mut self, cmd: &str, cancel: Option<&CancelToken>) -> Result<Vec<Vec<u8>>, ImapError> {
        let tap = self.tap.clone();
        tap.start_thread_capture();
        let result = self.run("uid thread", cmd, cancel);
        let lines = tap.take_thread_lines();
        result.map(|_| lines)
    }
}

/// How the crate's synchronizing APPEND ended.
enum SyncAppend {
    /// The tagged OK arrived.
    Done,
    /// The server sent something other than a `+` continuation after the command line.
    NoContinuation,
}

/// The recording after the server's `+` continuation line, if it starts with one.
fn strip_continuation(recorded: &[u8]) -> &[u8] {
    if recorded.starts_with(b"+") {
        match recorded.iter().position(|&b| b == b'\n') {
            Some(i) => &recorded[i + 1..],
            None => &[],
        }
    } else {
        recorded
    }
}

/// True when `data` is one tagged line (not untagged, not a continuation).
fn is_single_line(data: &[u8]) -> bool {
    !data.starts_with(b"*") && !data.starts_with(b"+") && data.ends_with(b"\n") && data.iter().filter(|&&b| b == b'\n').count() == 1
}

/// Opens, secures and authenticates a new session.
pub(crate) fn connect(account: &Account, limits: &Limits, cancel: Option<&CancelToken>) -> Result<Conn, ImapError> {
    let started = Instant::now();
    let imap = &account.imap;
    let tcp = tcp_connect(&imap.host, imap.port, limits.connect_timeout(), cancel)?;
    let connect_err = |e: io::Error| ImapError::Connect { host: imap.host.clone(), port: imap.port, reason: sanitize(&e.to_string()) };
    tcp.set_nodelay(true).map_err(connect_err)?;
    let ctl = IoControl::new();
    let mut guarded = Guarded::new(tcp, ctl.clone()).map_err(connect_err)?;
    // Handshake, greeting and STARTTLS share one deadline.
    ctl.arm(response_phase(limits.greeting_timeout(), "limits.greeting_timeout_ms", limits.max_response_bytes, cancel));
    let connector = tls::connector(imap.ca_file.as_deref()).map_err(|reason| ImapError::Tls { reason })?;

    // TLS, then the pin, before anything else is read over the secured stream.
    let secure = |stream: Guarded| -> Result<(TlsStream, [u8; 32]), ImapError> {
        let tls = tls::handshake(&connector, &imap.host, stream, &ctl).map_err(tls_failure)?;
        let sha = tls::leaf_sha256(&tls).map_err(|reason| ImapError::Tls { reason })?;
        match &imap.pin_sha256 {
            Some(pin) if pin != &sha => Err(ImapError::PinMismatch { expected: hex(pin), actual: hex(&sha) }),
            _ => Ok((tls, sha)),
        }
    };
    let (mut tls, cert_sha256) = match imap.tls {
        TlsMode::Implicit => {
            let (mut tls, sha) = secure(guarded)?;
            PreAuth { stream: &mut tls, ctl: &ctl }.greeting()?;
            (tls, sha)
        }
        TlsMode::Starttls => {
            let mut pre = PreAuth { stream: &mut guarded, ctl: &ctl };
            let caps = match pre.greeting()? {
                Some(c) if has_cap(&c, "STARTTLS") => c,
                _ => pre.capability("m1")?,
            };
            if !has_cap(&caps, "STARTTLS") {
                return Err(ImapError::StarttlsUnavailable);
            }
            pre.starttls("m2")?;
            secure(guarded)?
        }
    };

    // Capabilities over TLS (never trust the plaintext list), before any credential is sent.
    let caps = PreAuth { stream: &mut tls, ctl: &ctl }.capability("m3")?;
    let tap = TapControl::new();
    let client = imap::Client::new(Tap::new(tls, tap.clone()));
    let arm = || ctl.arm(response_phase(limits.command_timeout(), "limits.command_timeout_ms", limits.max_response_bytes, cancel));
    // Secrets are resolved only now: never for a server whose certificate did not verify.
    let mut mechanism = "XOAUTH2";
    let session = match &imap.credential {
        Credential::Password(source) => {
            let use_plain = has_cap(&caps, "AUTH=PLAIN");
            if !use_plain && has_cap(&caps, "LOGINDISABLED") {
                // No credential was sent: this is the server's configuration, not a refusal,
                // so it must not block the account as a wrong password does.
                return Err(ImapError::Unsupported { what: "login: the server disabled LOGIN and offers no AUTH=PLAIN".into() });
            }
            let password = source.resolve(limits.secret_command_timeout())?;
            mechanism = if use_plain { "PLAIN" } else { "LOGIN" };
            arm();
            let login = catch_unwind(AssertUnwindSafe(|| {
                let result = if use_plain {
                    let auth = PlainAuth { user: &imap.username, password: &password };
                    client.authenticate("PLAIN", &auth)
                } else {
                    client.login(&imap.username, password.expose())
                };
                // On failure the crate hands the unauthenticated client back; it is dropped here.
                result.map_err(|(e, _client)| {
                    let sasl =
                        use_plain.then(|| imap::Authenticator::process(&PlainAuth { user: &imap.username, password: &password }, b""));
                    login_error(&ctl, e, &password, sasl.as_deref().map_or(&[][..], |v| &v[..]))
                })
            }));
            login.unwrap_or(Err(ImapError::Panicked { context: "login" }))?
        }
        Credential::OAuth2(source) => {
            if !has_cap(&caps, "AUTH=XOAUTH2") {
                return Err(ImapError::Unsupported {
                    what: "login: the server does not offer AUTH=XOAUTH2, which oauth2_token needs".into(),
                });
            }
            // A refused token leaves the connection unauthenticated and usable: the crate hands
            // the client back, and a retry with a new token goes over the same connection.
            let mut client = Some(client);
            let refused = |e: &ImapError| matches!(e, ImapError::Auth { .. });
            secret::with_oauth2_token(source, limits.secret_command_timeout(), ImapError::Secret, refused, |token| {
                let c = client.take().ok_or(ImapError::Panicked { context: "login" })?;
                arm();
                let auth = XOAuth2 { response: secret::xoauth2_response(&imap.username, token), asked: Cell::new(false) };
                // Boxed: the crate's error pairs the error with the whole client.
                match catch_unwind(AssertUnwindSafe(|| c.authenticate("XOAUTH2", &auth).map_err(Box::new))) {
                    Ok(Ok(session)) => Ok(session),
                    Ok(Err(failed)) => {
                        let (e, c) = *failed;
                        client = Some(c);
                        Err(login_error(&ctl, e, token, &auth.response))
                    }
                    Err(_) => Err(ImapError::Panicked { context: "login" }),
                }
            })?
        }
    };
    let login_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    crate::info!(
        "imap: account {} connected to {}:{} ({:?} TLS), authenticated with {mechanism} in {login_ms} ms",
        account.name,
        imap.host,
        imap.port,
        imap.tls
    );

    let mut conn = Conn {
        session,
        ctl,
        tap,
        limits: SessionLimits::from(limits),
        caps: Vec::new(),
        cert_sha256,
        last_used: Instant::now(),
        login_ms,
        mechanism,
        mutation_sent: false,
        discard: false,
    };
    // Capabilities change after login (Dovecot adds SORT, LIST-STATUS, ...).
    let data = conn.run("capability", "CAPABILITY", cancel)?;
    conn.caps = catch_unwind(|| parse::capabilities(&data)).map_err(|_| ImapError::Panicked { context: "capability" })??;
    Ok(conn)
}

/// A login failure as an error; the secret, and the SASL response we sent in base64, are
/// redacted from the server's text (a hostile server can echo what it received).
fn login_error(ctl: &IoControl, e: imap::Error, password: &Secret, sasl: &[u8]) -> ImapError {
    let mut encoded = Zeroizing::new(Vec::new());
    crate::compose::base64_into(sasl, &mut encoded);
    let redact = |text: &str| sanitize(&crate::net::redact(text, &[password.expose().as_bytes(), &encoded]));
    match crate_error(ctl, e, "during login") {
        ImapError::Server { status: "NO" | "BAD", text } => ImapError::Auth { reason: redact(&text) },
        ImapError::Server { status, text } => ImapError::Server { status, text: redact(&text) },
        other => other,
    }
}

/// SASL PLAIN (RFC 4616): `\0user\0password`, built in a buffer that is wiped on drop.
struct PlainAuth<'a> {
    user: &'a str,
    password: &'a Secret,
}

impl imap::Authenticator for PlainAuth<'_> {
    type Response = Zeroizing<Vec<u8>>;
    fn process(&self, _challenge: &[u8]) -> Self::Response {
        let p = self.password.expose().as_bytes();
        let mut v = Zeroizing::new(Vec::with_capacity(self.user.len() + p.len() + 2));
        v.push(0);
        v.extend_from_slice(self.user.as_bytes());
        v.push(0);
        v.extend_from_slice(p);
        v
    }
}

/// SASL XOAUTH2: the initial response to the first challenge; any later challenge is the
/// server's JSON error report, answered with an empty line as the mechanism requires.
struct XOAuth2 {
    response: Zeroizing<Vec<u8>>,
    asked: Cell<bool>,
}

impl imap::Authenticator for XOAuth2 {
    type Response = Zeroizing<Vec<u8>>;
    fn process(&self, _challenge: &[u8]) -> Self::Response {
        if self.asked.replace(true) {
            Zeroizing::new(Vec::new())
        } else {
            self.response.clone()
        }
    }
}

fn tcp_connect(host: &str, port: u16, timeout: Duration, cancel: Option<&CancelToken>) -> Result<TcpStream, ImapError> {
    let cancelled = || cancel.is_some_and(CancelToken::is_cancelled);
    crate::net::tcp_connect(host, port, timeout, &cancelled).map_err(|f| match f {
        ConnectFailure::Timeout => {
            ImapError::Timeout { limit: "limits.connect_timeout_ms", ms: timeout.as_millis().try_into().unwrap_or(u64::MAX) }
        }
        ConnectFailure::Cancelled => ImapError::Cancelled,
        ConnectFailure::Failed(reason) => ImapError::Connect { host: host.to_string(), port, reason },
    })
}

/// For `mailmoat check`: native-tls does not tell which version and cipher it negotiated, so a
/// second, short connection repeats the handshake with OpenSSL directly, under the same rules
/// (system roots plus `ca_file`, host name verified, TLS 1.2 or newer, the same implicit or
/// STARTTLS dialogue, the pin), reads what was negotiated, and hangs up before any credential.
/// On Linux native-tls is OpenSSL with the same defaults, so both handshakes agree.
pub(crate) fn tls_probe(account: &Account, limits: &Limits) -> Result<TlsInfo, ImapError> {
    let imap = &account.imap;
    let tcp = tcp_connect(&imap.host, imap.port, limits.connect_timeout(), None)?;
    let connect_err = |e: io::Error| ImapError::Connect { host: imap.host.clone(), port: imap.port, reason: sanitize(&e.to_string()) };
    let ctl = IoControl::new();
    let mut guarded = Guarded::new(tcp, ctl.clone()).map_err(connect_err)?;
    ctl.arm(response_phase(limits.greeting_timeout(), "limits.greeting_timeout_ms", limits.max_response_bytes, None));
    if imap.tls == TlsMode::Starttls {
        let mut pre = PreAuth { stream: &mut guarded, ctl: &ctl };
        let caps = match pre.greeting()? {
            Some(c) if has_cap(&c, "STARTTLS") => c,
            _ => pre.capability("p1")?,
        };
        if !has_cap(&caps, "STARTTLS") {
            return Err(ImapError::StarttlsUnavailable);
        }
        pre.starttls("p2")?;
    }
    let info = tls::probe(&imap.host, imap.ca_file.as_deref(), guarded, &ctl).map_err(tls_failure)?;
    if let Some(pin) = &imap.pin_sha256 {
        if pin != &info.cert_sha256 {
            return Err(ImapError::PinMismatch { expected: hex(pin), actual: hex(&info.cert_sha256) });
        }
    }
    Ok(info)
}

fn tls_failure(f: TlsFailure) -> ImapError {
    match f {
        TlsFailure::Trip(t) => t.into(),
        TlsFailure::Reason(reason) => ImapError::Tls { reason },
    }
}

/// The deepest parenthesis nesting in one line, outside quoted strings.
fn nesting_depth(line: &[u8]) -> u32 {
    let (mut depth, mut max, mut quoted, mut escape) = (0u32, 0u32, false, false);
    for &b in line {
        if quoted {
            match (escape, b) {
                (true, _) => escape = false,
                (false, b'\\') => escape = true,
                (false, b'"') => quoted = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => quoted = true,
                b'(' => {
                    depth += 1;
                    max = max.max(depth);
                }
                b')' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    max
}

/// The pre-login dialogue, spoken by us, a byte at a time (no read-ahead).
struct PreAuth<'a, S: Read + Write> {
    stream: &'a mut S,
    ctl: &'a IoControl,
}

impl<S: Read + Write> PreAuth<'_, S> {
    fn read_line(&mut self) -> Result<Vec<u8>, ImapError> {
        let mut line = Vec::with_capacity(128);
        let mut byte = [0u8; 1];
        loop {
            match self.stream.read(&mut byte) {
                Ok(0) => return Err(ImapError::connection_lost("before login", None)),
                Ok(_) => {
                    line.push(byte[0]);
                    if byte[0] == b'\n' {
                        // imap-proto parses nesting by recursion; the tap bounds it after login,
                        // and this bounds it before (a deep greeting would overflow the stack).
                        if nesting_depth(&line) > tap::MAX_NESTING {
                            return Err(ImapError::Protocol {
                                reason: format!("server line nested deeper than {} levels before login", tap::MAX_NESTING),
                            });
                        }
                        return Ok(line);
                    }
                    if line.len() > MAX_PREAUTH_LINE {
                        return Err(ImapError::Protocol { reason: "server line longer than 64 KiB before login".into() });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(self.ctl, &e, "before login")),
            }
        }
    }

    fn send(&mut self, line: &str) -> Result<(), ImapError> {
        self.stream.write_all(line.as_bytes()).and_then(|()| self.stream.flush()).map_err(|e| io_error(self.ctl, &e, "before login"))
    }

    /// Reads the greeting; returns capabilities it advertised, if any.
    fn greeting(&mut self) -> Result<Option<Vec<String>>, ImapError> {
        let line = self.read_line()?;
        let parsed = catch_unwind(|| match imap_proto::parser::parse_response(&line) {
            Ok((_, r)) => {
                use imap_proto::types::{Response, Status};
                match &r {
                    Response::Data { status: Status::Ok, .. } => Ok(parse::capabilities_in(&r)),
                    Response::Data { status: Status::Bye, information, .. } => {
                        Err(ImapError::Server { status: "BYE", text: sanitize(information.as_deref().unwrap_or("")) })
                    }
                    Response::Data { status: Status::PreAuth, .. } => Err(ImapError::Protocol {
                        reason: "the server greeted with PREAUTH; refusing a session we did not authenticate".into(),
                    }),
                    _ => Err(ImapError::Protocol { reason: "the server's greeting is not an OK".into() }),
                }
            }
            Err(_) => Err(ImapError::Protocol { reason: "unparseable greeting from the server".into() }),
        });
        parsed.map_err(|_| ImapError::Panicked { context: "greeting" })?
    }

    /// Sends `tag CAPABILITY` and returns the list.
    fn capability(&mut self, tag: &str) -> Result<Vec<String>, ImapError> {
        self.send(&format!("{tag} CAPABILITY\r\n"))?;
        let mut caps = None;
        self.until_tagged(tag, "CAPABILITY", |r| {
            if let Some(c) = parse::capabilities_in(r) {
                caps = Some(c);
            }
        })?;
        caps.ok_or_else(|| ImapError::Protocol { reason: "server sent no capability list".into() })
    }

    /// Sends `tag STARTTLS` and waits for its OK.
    fn starttls(&mut self, tag: &str) -> Result<(), ImapError> {
        self.send(&format!("{tag} STARTTLS\r\n"))?;
        self.until_tagged(tag, "STARTTLS", |_| {})
    }

    /// Reads lines until the tagged answer; untagged ones go to `each`. Non-OK is an error.
    fn until_tagged(&mut self, tag: &str, what: &str, mut each: impl FnMut(&imap_proto::types::Response<'_>)) -> Result<(), ImapError> {
        use imap_proto::types::{Response, Status};
        loop {
            let line = self.read_line()?;
            let step = catch_unwind(AssertUnwindSafe(|| match imap_proto::parser::parse_response(&line) {
                Ok((_, Response::Done { tag: t, status, information, .. })) => {
                    if t.0 != tag {
                        return Some(Err(ImapError::Protocol { reason: format!("unexpected tag in answer to {what}") }));
                    }
                    let text = sanitize(information.as_deref().unwrap_or(""));
                    Some(match status {
                        Status::Ok => Ok(()),
                        Status::No => Err(ImapError::Server { status: "NO", text }),
                        Status::Bad => Err(ImapError::Server { status: "BAD", text }),
                        _ => Err(ImapError::Server { status: "BYE", text }),
                    })
                }
                Ok((_, Response::Data { status: Status::Bye, information, .. })) => {
                    Some(Err(ImapError::Server { status: "BYE", text: sanitize(information.as_deref().unwrap_or("")) }))
                }
                Ok((_, r)) => {
                    each(&r);
                    None
                }
                Err(_) => Some(Err(ImapError::Protocol { reason: format!("unparseable answer to {what}") })),
            }));
            match step {
                Err(_) => return Err(ImapError::Panicked { context: "pre-login dialogue" }),
                Ok(Some(r)) => return r,
                Ok(None) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    fn guarded_pair(server: impl FnOnce(TcpStream) + Send + 'static) -> (Guarded, Arc<IoControl>, thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = thread::spawn(move || server(l.accept().unwrap().0));
        let ctl = IoControl::new();
        let g = Guarded::new(TcpStream::connect(addr).unwrap(), ctl.clone()).unwrap();
        ctl.arm(response_phase(Duration::from_secs(5), "limits.greeting_timeout_ms", 1 << 20, None));
        (g, ctl, t)
    }

    fn read_cmd(s: &mut TcpStream) -> String {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while s.read(&mut b).unwrap() == 1 {
            line.push(b[0]);
            if b[0] == b'\n' {
                break;
            }
        }
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn starttls_refused_before_credentials_when_not_offered() {
        let (mut g, ctl, t) = guarded_pair(|mut s| {
            s.write_all(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n").unwrap();
            assert_eq!(read_cmd(&mut s), "m1 CAPABILITY\r\n");
            s.write_all(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nm1 OK done\r\n").unwrap();
        });
        let mut pre = PreAuth { stream: &mut g, ctl: &ctl };
        let greeting = pre.greeting().unwrap();
        assert_eq!(greeting.unwrap(), ["IMAP4rev1", "AUTH=PLAIN"]);
        let caps = pre.capability("m1").unwrap();
        assert!(!has_cap(&caps, "STARTTLS"));
        t.join().unwrap();
    }

    #[test]
    fn deeply_nested_pre_login_lines_are_refused_before_parsing() {
        assert_eq!(nesting_depth(b"* OK (a (b) \"((((\" (c (d)))\r\n"), 3);
        assert_eq!(nesting_depth(b"* OK \"\\\"(\" x\r\n"), 0);
        let mut deep = b"* OK [CAPABILITY IMAP4rev1] ".to_vec();
        deep.extend(std::iter::repeat_n(b'(', 5_000));
        deep.extend_from_slice(b"\r\n");
        let (mut s, ctl, t) = guarded_pair(move |mut s| s.write_all(&deep).unwrap());
        let err = PreAuth { stream: &mut s, ctl: &ctl }.greeting().unwrap_err();
        assert_eq!(err.to_string(), "imap protocol error: server line nested deeper than 64 levels before login");
        t.join().unwrap();
    }

    #[test]
    fn preauth_greeting_and_bye_are_refused() {
        let cases: &[(&[u8], &str)] = &[
            (b"* PREAUTH [CAPABILITY IMAP4rev1] welcome\r\n", "protocol_error"),
            (b"* BYE too busy\r\n", "imap_error"),
            (b"HTTP/1.1 400 Bad Request\r\n", "protocol_error"),
        ];
        for (greeting, code) in cases {
            let g = greeting.to_vec();
            let (mut s, ctl, t) = guarded_pair(move |mut s| s.write_all(&g).unwrap());
            let err = PreAuth { stream: &mut s, ctl: &ctl }.greeting().unwrap_err();
            assert_eq!(err.code(), *code, "{err}");
            t.join().unwrap();
        }
    }

    #[test]
    fn starttls_refusal_and_stalls() {
        let (mut g, ctl, t) = guarded_pair(|mut s| {
            read_cmd(&mut s);
            s.write_all(b"* OK [ALERT] hmm\r\nm2 NO [UNAVAILABLE] not now\r\n").unwrap();
        });
        let err = PreAuth { stream: &mut g, ctl: &ctl }.starttls("m2").unwrap_err();
        assert_eq!(err.to_string(), "server answered NO: [UNAVAILABLE] not now");
        t.join().unwrap();

        let (mut g, ctl, t) = guarded_pair(|mut s| {
            s.write_all(b"* OK hi").unwrap();
            thread::sleep(Duration::from_millis(900));
        });
        ctl.arm(response_phase(Duration::from_millis(300), "limits.greeting_timeout_ms", 1 << 20, None));
        let err = PreAuth { stream: &mut g, ctl: &ctl }.greeting().unwrap_err();
        assert_eq!(err.to_string(), "timed out after 300 ms (limits.greeting_timeout_ms)");
        t.join().unwrap();
    }

    #[test]
    fn endless_preauth_line_is_cut() {
        let (mut g, ctl, t) = guarded_pair(|mut s| {
            let junk = [b'x'; 8192];
            for _ in 0..10 {
                if s.write_all(&junk).is_err() {
                    return;
                }
            }
        });
        let err = PreAuth { stream: &mut g, ctl: &ctl }.greeting().unwrap_err();
        assert_eq!(err.to_string(), "imap protocol error: server line longer than 64 KiB before login");
        drop(g);
        t.join().unwrap();
    }

    #[test]
    fn plain_auth_payload() {
        let secret = Secret::new("pa\u{df}word".into());
        let auth = PlainAuth { user: "me@example.com", password: &secret };
        let payload = imap::Authenticator::process(&auth, b"");
        assert_eq!(&payload[..], "\0me@example.com\0pa\u{df}word".as_bytes());
    }
}
