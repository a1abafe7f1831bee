//! One SMTP session: TCP, the guard, TLS (implicit or mandatory STARTTLS), EHLO, AUTH, one mail
//! transaction, QUIT.
//!
//! Every read and write goes through the guard, armed per phase: the TLS handshake, greeting,
//! EHLO and STARTTLS share `limits.greeting_timeout_ms`; each later command has
//! `limits.command_timeout_ms`; the data phase (message and final reply) has
//! `limits.command_timeout_ms` plus one second per [`DATA_BYTES_PER_SECOND`] of message.
//! Cancellation is checked before each command and by the guard during IO, until the message's
//! final dot is sent: from then on we wait for the server's verdict, because the message may
//! already be on its way.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::error::{sanitize, SmtpError};
use super::message::{Envelope, Prepared};
use super::net::{self, TlsStream};
use super::reply::{Extensions, LineReader, Reply, MAX_REPLY_BYTES};
use super::SendReport;
use crate::compose;
use crate::config::{Account, Limits, SmtpConfig, TlsMode};
use crate::imap::CancelToken;
use crate::net::guard::{Guarded, IoControl, Phase, Trip};
use crate::net::tls::{self, TlsInfo};
use crate::secret::Secret;

/// Bytes one command phase may read: a maximal reply plus TLS framing.
const REPLY_BUDGET: u64 = 4 * MAX_REPLY_BYTES as u64;
/// Bytes the greeting phase may read (certificate chain, greeting, EHLO twice).
const GREETING_BUDGET: u64 = 1024 * 1024;
/// The slowest upload the data-phase deadline allows for (32 KiB/s: a 25 MB message gets
/// about 13 minutes on top of `limits.command_timeout_ms`).
pub(crate) const DATA_BYTES_PER_SECOND: u64 = 32 * 1024;
/// QUIT after the work is done is a courtesy; it never holds a request longer than this.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);
/// What the guard's byte budget is called in errors.
const BUDGET_LIMIT: &str = "smtp reply size";

/// Maps a guard trip to the error the caller sees.
pub(crate) fn trip_error(t: Trip) -> SmtpError {
    match t {
        Trip::Timeout { limit, ms } => SmtpError::Timeout { limit, ms },
        Trip::Cancelled => SmtpError::Cancelled,
        Trip::Limit { max, .. } => SmtpError::Protocol { reason: format!("the server sent more than {max} bytes in one phase") },
    }
}

fn io_error(ctl: &IoControl, e: &io::Error, doing: &str) -> SmtpError {
    match ctl.trip() {
        Some(t) => trip_error(t),
        None => SmtpError::Protocol { reason: format!("connection lost {doing}: {}", sanitize(&e.to_string())) },
    }
}

/// The socket, before or after TLS.
pub(crate) enum Stream {
    Plain(Guarded),
    Tls(Box<TlsStream>),
    /// Only while the plain stream is being handed to TLS.
    Gone,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Gone => Err(io::Error::other("stream closed")),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Gone => Err(io::Error::other("stream closed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Gone => Err(io::Error::other("stream closed")),
        }
    }
}

/// A connected session (secured and greeted once [`connect`] returns it).
pub(crate) struct Session {
    stream: Stream,
    ctl: Arc<IoControl>,
    reader: LineReader,
    cancel: CancelToken,
    command_timeout: Duration,
    ehlo_name: String,
    /// The greeting's text, sanitized.
    pub greeting: String,
    /// Extensions from the last EHLO (the one over TLS).
    pub ext: Extensions,
    /// SHA-256 of the server's leaf certificate (DER).
    pub cert_sha256: [u8; 32],
}

/// The name we give in EHLO: the account's domain when it is a plain host name (it is in the
/// From address anyway), else a fixed name that reveals nothing.
fn ehlo_name(account: &Account) -> String {
    let d = account.domain();
    let plain = d.contains('.')
        && d.len() <= 253
        && d.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if plain {
        d
    } else {
        "mailmoat.invalid".into()
    }
}

/// Opens the connection and secures it: implicit TLS, or STARTTLS (refused, before any
/// credential, when the server does not offer it). Returns after the EHLO over TLS.
pub(crate) fn connect(account: &Account, limits: &Limits, cancel: &CancelToken) -> Result<Session, SmtpError> {
    let smtp = account.smtp.as_ref().ok_or_else(|| SmtpError::Invalid(format!("account {} has no smtp settings", account.name)))?;
    let connector = net::tls_connector(smtp)?;
    let mut s = open_for_tls(account, smtp, limits, cancel)?;
    let (tls, sha) = net::secure(&connector, smtp, s.take_plain()?, &s.ctl)?;
    s.stream = Stream::Tls(Box::new(tls));
    s.cert_sha256 = sha;
    match smtp.tls {
        TlsMode::Implicit => s.greet()?,
        // Forget everything learned in plaintext.
        TlsMode::Starttls => s.ext = Extensions::default(),
    }
    s.ehlo()?;
    Ok(s)
}

/// For `mailmoat check`: the TLS version and cipher the server negotiates (see
/// [`crate::net::tls::probe`]), over a second short connection that hangs up before any
/// credential.
pub(crate) fn tls_probe(account: &Account, limits: &Limits) -> Result<TlsInfo, SmtpError> {
    let smtp = account.smtp.as_ref().ok_or_else(|| SmtpError::Invalid(format!("account {} has no smtp settings", account.name)))?;
    let mut s = open_for_tls(account, smtp, limits, &CancelToken::new())?;
    let plain = s.take_plain()?;
    let info = tls::probe(&smtp.host, smtp.ca_file.as_deref(), plain, &s.ctl).map_err(net::tls_failure)?;
    net::check_pin(smtp, &info.cert_sha256)?;
    Ok(info)
}

/// TCP and, for STARTTLS, the plaintext greeting, EHLO and STARTTLS: the session's plain
/// stream is then ready for the TLS handshake.
fn open_for_tls(account: &Account, smtp: &SmtpConfig, limits: &Limits, cancel: &CancelToken) -> Result<Session, SmtpError> {
    let tcp = net::tcp_connect(&smtp.host, smtp.port, limits.connect_timeout(), cancel)?;
    let connect_err = |e: io::Error| SmtpError::Connect { host: smtp.host.clone(), port: smtp.port, reason: sanitize(&e.to_string()) };
    tcp.set_nodelay(true).map_err(connect_err)?;
    let ctl = IoControl::new();
    let guarded = Guarded::new(tcp, ctl.clone()).map_err(connect_err)?;
    // Handshake, greeting, EHLO and STARTTLS share one deadline.
    ctl.arm(Phase::new(
        limits.greeting_timeout(),
        "limits.greeting_timeout_ms",
        GREETING_BUDGET,
        BUDGET_LIMIT,
        GREETING_BUDGET,
        Some(cancel.clone()),
    ));
    let mut s = Session {
        stream: Stream::Plain(guarded),
        ctl,
        reader: LineReader::new(),
        cancel: cancel.clone(),
        command_timeout: limits.command_timeout(),
        ehlo_name: ehlo_name(account),
        greeting: String::new(),
        ext: Extensions::default(),
        cert_sha256: [0; 32],
    };
    if smtp.tls == TlsMode::Starttls {
        s.greet()?;
        s.ehlo()?;
        if !s.ext.has("STARTTLS") {
            s.quit();
            return Err(SmtpError::StarttlsUnavailable);
        }
        let r = s.exchange(b"STARTTLS\r\n", "STARTTLS")?;
        if r.code != 220 {
            return Err(SmtpError::Tls { reason: format!("the server refused STARTTLS: {}", r.text()) });
        }
        // Anything already received came in plaintext and must not be read as if it had
        // come over TLS (the STARTTLS command injection attack).
        if s.reader.pending() > 0 {
            return Err(SmtpError::Protocol { reason: "the server sent data after its STARTTLS answer; refusing to continue".into() });
        }
    }
    Ok(s)
}

impl Session {
    /// The plain stream, for the TLS handshake.
    fn take_plain(&mut self) -> Result<Guarded, SmtpError> {
        match std::mem::replace(&mut self.stream, Stream::Gone) {
            Stream::Plain(plain) => Ok(plain),
            _ => Err(SmtpError::Protocol { reason: "internal error: stream not plain before TLS".into() }),
        }
    }

    /// Sends `line` (CRLF included) and reads the reply, in the current phase.
    fn exchange(&mut self, line: &[u8], doing: &'static str) -> Result<Reply, SmtpError> {
        if self.cancel.is_cancelled() {
            return Err(SmtpError::Cancelled);
        }
        crate::debug!("smtp > {doing}");
        let ctl = self.ctl.clone();
        let during = format!("during {doing}");
        self.stream.write_all(line).and_then(|()| self.stream.flush()).map_err(|e| io_error(&ctl, &e, &during))?;
        self.reader.reply(&mut self.stream, &|e| io_error(&ctl, &e, &during))
    }

    /// One command in a phase of its own (`limits.command_timeout_ms`).
    fn command(&mut self, line: &[u8], doing: &'static str) -> Result<Reply, SmtpError> {
        self.arm(self.command_timeout, "limits.command_timeout_ms", true);
        self.exchange(line, doing)
    }

    fn arm(&self, timeout: Duration, limit: &'static str, cancellable: bool) {
        let cancel = cancellable.then(|| self.cancel.clone());
        self.ctl.arm(Phase::new(timeout, limit, REPLY_BUDGET, BUDGET_LIMIT, REPLY_BUDGET, cancel));
    }

    fn greet(&mut self) -> Result<(), SmtpError> {
        let ctl = self.ctl.clone();
        let r = self.reader.reply(&mut self.stream, &|e| io_error(&ctl, &e, "reading the greeting"))?;
        self.greeting = r.text();
        match r.code {
            220 => Ok(()),
            400..=599 => Err(SmtpError::Rejected { stage: "greeting", reply: r.text() }),
            _ => Err(SmtpError::Protocol { reason: format!("unexpected greeting: {}", r.text()) }),
        }
    }

    fn ehlo(&mut self) -> Result<(), SmtpError> {
        let line = format!("EHLO {}\r\n", self.ehlo_name);
        let r = self.exchange(line.as_bytes(), "EHLO")?;
        if r.code != 250 {
            return Err(SmtpError::Rejected { stage: "EHLO", reply: r.text() });
        }
        self.ext = Extensions::from_ehlo(&r);
        Ok(())
    }

    /// AUTH PLAIN (preferred) or LOGIN. Credentials live only in zeroizing buffers, and every
    /// reply kept for an error is redacted (a hostile server could echo what we sent).
    pub(crate) fn authenticate(&mut self, user: &str, password: &Secret) -> Result<&'static str, SmtpError> {
        let mechs = self.ext.auth_mechanisms();
        let pw = password.expose();
        let b64 = |data: &[u8]| {
            let mut v = Zeroizing::new(Vec::with_capacity(data.len().div_ceil(3) * 4 + 16));
            compose::base64_into(data, &mut v);
            v
        };
        let b64_pw = b64(pw.as_bytes());
        let fail = |r: &Reply, extra: &[u8]| SmtpError::Auth { reason: crate::net::redact(&r.text(), &[pw.as_bytes(), &b64_pw, extra]) };
        if mechs.iter().any(|m| m == "PLAIN") {
            let mut payload = Zeroizing::new(Vec::with_capacity(user.len() + pw.len() + 2));
            payload.push(0);
            payload.extend_from_slice(user.as_bytes());
            payload.push(0);
            payload.extend_from_slice(pw.as_bytes());
            let encoded = b64(&payload);
            let mut line = Zeroizing::new(Vec::with_capacity(encoded.len() + 16));
            line.extend_from_slice(b"AUTH PLAIN ");
            line.extend_from_slice(&encoded);
            line.extend_from_slice(b"\r\n");
            let r = self.command(&line, "AUTH PLAIN")?;
            return match r.code {
                235 => Ok("PLAIN"),
                334 => {
                    // We sent an initial response; a challenge now is not something we answer.
                    let _ = self.command(b"*\r\n", "AUTH PLAIN");
                    Err(SmtpError::Auth { reason: "the server sent a challenge after AUTH PLAIN with an initial response".into() })
                }
                _ => Err(fail(&r, &encoded)),
            };
        }
        if mechs.iter().any(|m| m == "LOGIN") {
            let r = self.command(b"AUTH LOGIN\r\n", "AUTH LOGIN")?;
            if r.code != 334 {
                return Err(fail(&r, b""));
            }
            let mut line = b64(user.as_bytes());
            line.extend_from_slice(b"\r\n");
            let r = self.command(&line, "AUTH LOGIN")?;
            if r.code != 334 {
                return Err(fail(&r, b""));
            }
            let mut line = Zeroizing::new(Vec::with_capacity(b64_pw.len() + 2));
            line.extend_from_slice(&b64_pw);
            line.extend_from_slice(b"\r\n");
            let r = self.command(&line, "AUTH LOGIN")?;
            return if r.code == 235 { Ok("LOGIN") } else { Err(fail(&r, b"")) };
        }
        if mechs.is_empty() {
            return Err(SmtpError::Auth { reason: "the server offers no authentication (no AUTH in its EHLO answer)".into() });
        }
        Err(SmtpError::Auth {
            reason: format!("the server offers neither AUTH PLAIN nor AUTH LOGIN (it offers {})", sanitize(&mechs.join(" "))),
        })
    }

    /// SASL XOAUTH2 with an access token, as an initial response. A refusal comes as a 334
    /// challenge carrying the server's JSON error report, answered with an empty line (as the
    /// mechanism requires) before the final 5xx.
    pub(crate) fn authenticate_xoauth2(&mut self, user: &str, token: &Secret) -> Result<&'static str, SmtpError> {
        let mechs = self.ext.auth_mechanisms();
        if !mechs.iter().any(|m| m == "XOAUTH2") {
            return Err(SmtpError::Auth {
                reason: format!(
                    "the server does not offer AUTH XOAUTH2, which oauth2_token needs (it offers {})",
                    sanitize(&mechs.join(" "))
                ),
            });
        }
        let payload = crate::secret::xoauth2_response(user, token);
        let mut encoded = Zeroizing::new(Vec::with_capacity(payload.len().div_ceil(3) * 4 + 16));
        compose::base64_into(&payload, &mut encoded);
        let mut line = Zeroizing::new(Vec::with_capacity(encoded.len() + 16));
        line.extend_from_slice(b"AUTH XOAUTH2 ");
        line.extend_from_slice(&encoded);
        line.extend_from_slice(b"\r\n");
        let mut r = self.command(&line, "AUTH XOAUTH2")?;
        if r.code == 334 {
            r = self.command(b"\r\n", "AUTH XOAUTH2")?;
        }
        if r.code == 235 {
            return Ok("XOAUTH2");
        }
        Err(SmtpError::Auth { reason: crate::net::redact(&r.text(), &[token.expose().as_bytes(), &encoded]) })
    }

    /// One mail transaction: MAIL FROM, RCPT TO for each recipient (some may be refused), DATA,
    /// the message, and the final reply.
    pub(crate) fn transaction(&mut self, env: &Envelope, msg: &Prepared) -> Result<SendReport, SmtpError> {
        if let Some(max) = self.ext.size_limit() {
            if msg.size as u64 > max {
                return Err(SmtpError::TooLarge { limit: "server SIZE", max });
            }
        }
        let smtputf8 = env.utf8 || msg.utf8_headers;
        if smtputf8 && !self.ext.has("SMTPUTF8") {
            let what = if env.utf8 { "an address" } else { "the message header" };
            return Err(SmtpError::Invalid(format!("{what} is not ASCII and the smtp server does not offer SMTPUTF8; nothing was sent")));
        }
        let eight_bit = msg.eight_bit && self.ext.has("8BITMIME");
        if msg.eight_bit && !eight_bit && !smtputf8 {
            return Err(SmtpError::Invalid(
                "the message contains 8-bit data and the smtp server does not offer 8BITMIME; nothing was sent".into(),
            ));
        }
        let mut mail = format!("MAIL FROM:<{}>", env.from);
        if self.ext.has("SIZE") {
            mail.push_str(&format!(" SIZE={}", msg.size));
        }
        if eight_bit {
            mail.push_str(" BODY=8BITMIME");
        }
        if smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        let r = self.command(mail.as_bytes(), "MAIL FROM")?;
        if !r.is_ok() {
            return Err(SmtpError::Rejected { stage: "MAIL FROM", reply: r.text() });
        }
        let mut accepted = Vec::new();
        let mut rejected = Vec::new();
        for rcpt in &env.recipients {
            let r = self.command(format!("RCPT TO:<{rcpt}>\r\n").as_bytes(), "RCPT TO")?;
            match r.code {
                250 | 251 => accepted.push(rcpt.clone()),
                // The server is closing the connection: nothing more will be accepted.
                421 => return Err(SmtpError::Rejected { stage: "RCPT TO", reply: r.text() }),
                _ => rejected.push((rcpt.clone(), r.text())),
            }
        }
        if accepted.is_empty() {
            let _ = self.command(b"RSET\r\n", "RSET");
            return Err(SmtpError::AllRecipientsRejected(rejected));
        }
        let r = self.command(b"DATA\r\n", "DATA")?;
        if r.code != 354 {
            return Err(SmtpError::Rejected { stage: "DATA", reply: r.text() });
        }
        // The data phase: the whole message and the final reply under one deadline.
        let extra = Duration::from_secs(msg.size as u64 / DATA_BYTES_PER_SECOND);
        let timeout = self.command_timeout.saturating_add(extra);
        let deadline = Instant::now() + timeout;
        self.arm(timeout, "limits.command_timeout_ms", true);
        let ctl = self.ctl.clone();
        self.stream
            .write_all(&msg.wire)
            .and_then(|()| self.stream.write_all(b".\r\n"))
            .and_then(|()| self.stream.flush())
            .map_err(|e| io_error(&ctl, &e, "while sending the message"))?;
        // The final dot is out: the message may be delivered whatever happens next, so the
        // verdict is awaited without the cancel flag (still under the same deadline).
        let mut verdict = Phase::new(
            deadline.saturating_duration_since(Instant::now()),
            "limits.command_timeout_ms",
            REPLY_BUDGET,
            BUDGET_LIMIT,
            REPLY_BUDGET,
            None,
        );
        verdict.timeout_ms = timeout.as_millis().try_into().unwrap_or(u64::MAX);
        self.ctl.arm(verdict);
        let r = self.reader.reply(&mut self.stream, &|e| io_error(&ctl, &e, "waiting for the answer to the message"))?;
        if r.code != 250 {
            return Err(SmtpError::Rejected { stage: "end of data", reply: r.text() });
        }
        Ok(SendReport { accepted, rejected, message_size: msg.size, queue_reply: r.text() })
    }

    /// QUIT, best effort and briefly (never cancelled, never an error), then close.
    pub(crate) fn quit(mut self) {
        self.ctl.arm(Phase::new(QUIT_TIMEOUT, "quit", REPLY_BUDGET, BUDGET_LIMIT, REPLY_BUDGET, None));
        if self.stream.write_all(b"QUIT\r\n").and_then(|()| self.stream.flush()).is_ok() {
            let _ = self.reader.reply(&mut self.stream, &|e| SmtpError::Protocol { reason: e.to_string() });
        }
        if let Stream::Tls(tls) = &mut self.stream {
            let _ = tls.shutdown();
        }
        self.ctl.disarm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::message::{envelope, prepare};
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    /// A plaintext session to a scripted loopback server (TLS is covered by the live tests).
    fn session(server: impl FnOnce(Peer) + Send + 'static, ext: &[&str]) -> (Session, thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = thread::spawn(move || server(Peer::new(l.accept().unwrap().0)));
        let ctl = IoControl::new();
        let g = Guarded::new(TcpStream::connect(addr).unwrap(), ctl.clone()).unwrap();
        let mut lines = vec!["mx.example.test".to_string()];
        lines.extend(ext.iter().map(|s| s.to_string()));
        let s = Session {
            stream: Stream::Plain(g),
            ctl,
            reader: LineReader::new(),
            cancel: CancelToken::new(),
            command_timeout: Duration::from_secs(5),
            ehlo_name: "example.com".into(),
            greeting: String::new(),
            ext: Extensions::from_ehlo(&Reply { code: 250, lines }),
            cert_sha256: [0; 32],
        };
        (s, t)
    }

    /// The server side: reads command lines and raw data.
    struct Peer {
        s: TcpStream,
        buf: Vec<u8>,
    }

    impl Peer {
        fn new(s: TcpStream) -> Peer {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            Peer { s, buf: Vec::new() }
        }

        fn line(&mut self) -> String {
            loop {
                if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                    let l: Vec<u8> = self.buf.drain(..=p).collect();
                    return String::from_utf8(l).unwrap();
                }
                let mut chunk = [0u8; 4096];
                let n = self.s.read(&mut chunk).unwrap();
                if n == 0 {
                    return String::new();
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }

        /// Everything up to and including the CRLF . CRLF terminator.
        fn data(&mut self) -> Vec<u8> {
            let mut out = Vec::new();
            loop {
                let l = self.line();
                assert!(!l.is_empty(), "eof in data");
                out.extend_from_slice(l.as_bytes());
                if l == ".\r\n" {
                    return out;
                }
            }
        }

        fn say(&mut self, text: &str) {
            self.s.write_all(text.as_bytes()).unwrap();
        }

        fn expect(&mut self, want: &str, answer: &str) {
            assert_eq!(self.line(), want);
            self.say(answer);
        }
    }

    fn rcpts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn transaction_with_a_refused_recipient_and_dot_stuffing() {
        let (mut s, t) = session(
            |mut p| {
                p.expect("MAIL FROM:<me@example.com> SIZE=34\r\n", "250 2.1.0 Ok\r\n");
                p.expect("RCPT TO:<a@x.org>\r\n", "250 2.1.5 Ok\r\n");
                p.expect("RCPT TO:<nobody@x.org>\r\n", "550-5.1.1 no such user\r\n550 5.1.1 \u{1b}[31mreally\r\n");
                p.expect("RCPT TO:<b@x.org>\r\n", "251 will forward\r\n");
                p.expect("DATA\r\n", "354 go ahead\r\n");
                assert_eq!(p.data(), b"Subject: dots\r\n\r\n..\r\n...x\r\n.. \r\nend\r\n.\r\n".to_vec());
                p.say("250 2.0.0 Ok: queued as 4711\r\n");
            },
            &["SIZE 1000"],
        );
        let env = envelope("me@example.com", &rcpts(&["a@x.org", "nobody@x.org", "b@x.org", "A@x.org"]), 10).unwrap();
        let msg = prepare(b"Subject: dots\n\n.\n..x\n. \nend", 1 << 20).unwrap();
        let report = s.transaction(&env, &msg).unwrap();
        assert_eq!(report.accepted, rcpts(&["a@x.org", "b@x.org"]));
        assert_eq!(report.rejected, vec![("nobody@x.org".to_string(), "550 5.1.1 no such user 5.1.1 [31mreally".to_string())]);
        assert_eq!(report.message_size, 34);
        assert_eq!(report.queue_reply, "250 2.0.0 Ok: queued as 4711");
        t.join().unwrap();
    }

    #[test]
    fn every_recipient_refused_sends_nothing() {
        let (mut s, t) = session(
            |mut p| {
                p.expect("MAIL FROM:<me@example.com>\r\n", "250 Ok\r\n");
                p.expect("RCPT TO:<a@x.org>\r\n", "550 no\r\n");
                p.expect("RCPT TO:<b@x.org>\r\n", "451 later\r\n");
                p.expect("RSET\r\n", "250 Ok\r\n");
            },
            &[],
        );
        let env = envelope("me@example.com", &rcpts(&["a@x.org", "b@x.org"]), 10).unwrap();
        let err = s.transaction(&env, &prepare(b"x", 100).unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "smtp server rejected every recipient; nothing was sent (a@x.org: 550 no; b@x.org: 451 later)");
        assert_eq!(err.code(), "smtp_rejected");
        t.join().unwrap();
    }

    #[test]
    fn size_8bit_and_smtputf8_rules() {
        // The server's SIZE is checked before MAIL FROM: the peer sees no command at all.
        let (mut s, t) = session(|mut p| assert_eq!(p.line(), ""), &["SIZE 10"]);
        let env = envelope("me@example.com", &rcpts(&["a@x.org"]), 10).unwrap();
        let err = s.transaction(&env, &prepare(b"0123456789", 100).unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "message is larger than the 10 bytes the smtp server accepts");
        drop(s);
        t.join().unwrap();

        let (mut s, t) = session(|mut p| assert_eq!(p.line(), ""), &[]);
        let err = s.transaction(&env, &prepare("S: x\r\n\r\nbody é".as_bytes(), 100).unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "the message contains 8-bit data and the smtp server does not offer 8BITMIME; nothing was sent");
        let utf8_env = envelope("me@example.com", &rcpts(&["δοκιμή@x.org"]), 10).unwrap();
        let err = s.transaction(&utf8_env, &prepare(b"x", 100).unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "an address is not ASCII and the smtp server does not offer SMTPUTF8; nothing was sent");
        assert_eq!(err.code(), "invalid_argument");
        drop(s);
        t.join().unwrap();

        let (mut s, t) = session(
            |mut p| {
                p.expect("MAIL FROM:<me@example.com> BODY=8BITMIME SMTPUTF8\r\n", "250 Ok\r\n");
                p.expect("RCPT TO:<δοκιμή@x.org>\r\n", "250 Ok\r\n");
                p.expect("DATA\r\n", "354 go\r\n");
                p.data();
                p.say("250 Ok\r\n");
            },
            &["8BITMIME", "SMTPUTF8"],
        );
        s.transaction(&utf8_env, &prepare("To: δοκιμή@x.org\n\nbody é".as_bytes(), 100).unwrap()).unwrap();
        t.join().unwrap();
    }

    #[test]
    fn rejections_name_the_stage() {
        type Script = fn(&mut Peer);
        let cases: Vec<(Script, &str)> = vec![
            (
                |p| p.expect("MAIL FROM:<me@example.com>\r\n", "553 5.7.1 sender not owned\r\n"),
                "smtp server rejected MAIL FROM: 553 5.7.1 sender not owned",
            ),
            (
                |p| {
                    p.expect("MAIL FROM:<me@example.com>\r\n", "250 Ok\r\n");
                    p.expect("RCPT TO:<a@x.org>\r\n", "421 closing\r\n");
                },
                "smtp server rejected RCPT TO: 421 closing",
            ),
            (
                |p| {
                    p.expect("MAIL FROM:<me@example.com>\r\n", "250 Ok\r\n");
                    p.expect("RCPT TO:<a@x.org>\r\n", "250 Ok\r\n");
                    p.expect("DATA\r\n", "554 no valid recipients\r\n");
                },
                "smtp server rejected DATA: 554 no valid recipients",
            ),
            (
                |p| {
                    p.expect("MAIL FROM:<me@example.com>\r\n", "250 Ok\r\n");
                    p.expect("RCPT TO:<a@x.org>\r\n", "250 Ok\r\n");
                    p.expect("DATA\r\n", "354 go\r\n");
                    p.data();
                    p.say("552 5.3.4 message too big\r\n");
                },
                "smtp server rejected end of data: 552 5.3.4 message too big",
            ),
            (|p| p.say("garbage\r\n"), "smtp protocol error: unparseable reply line from the server: garbage"),
            (|p| drop(p.line()), "smtp protocol error: the server closed the connection"),
        ];
        for (script, want) in cases {
            let (mut s, t) = session(move |mut p| script(&mut p), &[]);
            let env = envelope("me@example.com", &rcpts(&["a@x.org"]), 10).unwrap();
            let err = s.transaction(&env, &prepare(b"x", 100).unwrap()).unwrap_err();
            assert_eq!(err.to_string(), want);
            drop(s);
            t.join().unwrap();
        }
    }

    #[test]
    fn data_phase_deadline_and_no_cancel_after_the_final_dot() {
        let happy = |p: &mut Peer| {
            p.expect("MAIL FROM:<me@example.com>\r\n", "250 Ok\r\n");
            p.expect("RCPT TO:<a@x.org>\r\n", "250 Ok\r\n");
            p.expect("DATA\r\n", "354 go\r\n");
            p.data();
        };
        let env = envelope("me@example.com", &rcpts(&["a@x.org"]), 10).unwrap();
        // A server that never answers the message: the data-phase deadline fires.
        let (mut s, t) = session(
            move |mut p| {
                happy(&mut p);
                thread::sleep(Duration::from_millis(1500));
            },
            &[],
        );
        s.command_timeout = Duration::from_millis(400);
        let started = Instant::now();
        let err = s.transaction(&env, &prepare(b"x", 100).unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "smtp timed out after 400 ms (limits.command_timeout_ms)");
        assert!(started.elapsed() < Duration::from_millis(1200));
        drop(s);
        t.join().unwrap();

        // Cancelling after the final dot does not abandon a message the server may deliver.
        let (mut s, t) = session(
            move |mut p| {
                happy(&mut p);
                thread::sleep(Duration::from_millis(600));
                p.say("250 2.0.0 Ok: queued as 1\r\n");
            },
            &[],
        );
        let cancel = s.cancel.clone();
        let c = thread::spawn(move || {
            thread::sleep(Duration::from_millis(250));
            cancel.cancel();
        });
        let report = s.transaction(&env, &prepare(b"x", 100).unwrap()).unwrap();
        assert_eq!(report.queue_reply, "250 2.0.0 Ok: queued as 1");
        c.join().unwrap();
        t.join().unwrap();
    }

    #[test]
    fn a_stalled_server_times_out_and_cancel_interrupts() {
        let (mut s, t) = session(
            |mut p| {
                p.line();
                thread::sleep(Duration::from_millis(1500));
            },
            &[],
        );
        s.command_timeout = Duration::from_millis(400);
        let env = envelope("me@example.com", &rcpts(&["a@x.org"]), 10).unwrap();
        let started = Instant::now();
        let err = s.transaction(&env, &prepare(b"x", 100).unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "smtp timed out after 400 ms (limits.command_timeout_ms)");
        assert!(started.elapsed() < Duration::from_millis(1200));
        drop(s);
        t.join().unwrap();

        let (mut s, t) = session(
            |mut p| {
                p.line();
                thread::sleep(Duration::from_millis(1500));
            },
            &[],
        );
        let cancel = s.cancel.clone();
        let c = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            cancel.cancel();
        });
        let err = s.transaction(&env, &prepare(b"x", 100).unwrap()).unwrap_err();
        assert_eq!(err.code(), "cancelled");
        c.join().unwrap();
        // Cancelled before a command: nothing is sent.
        let err = s.transaction(&env, &prepare(b"x", 100).unwrap()).unwrap_err();
        assert_eq!(err.code(), "cancelled");
        drop(s);
        t.join().unwrap();
    }

    #[test]
    fn auth_plain_login_and_redaction() {
        let secret = Secret::new("s3cret-CANARY".into());
        // PLAIN: base64("\0me@example.com\0s3cret-CANARY").
        let (mut s, t) = session(
            |mut p| p.expect("AUTH PLAIN AG1lQGV4YW1wbGUuY29tAHMzY3JldC1DQU5BUlk=\r\n", "235 2.7.0 Authentication successful\r\n"),
            &["AUTH LOGIN PLAIN"],
        );
        assert_eq!(s.authenticate("me@example.com", &secret).unwrap(), "PLAIN");
        t.join().unwrap();

        let (mut s, t) = session(
            |mut p| {
                p.expect("AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n");
                p.expect("bWVAZXhhbXBsZS5jb20=\r\n", "334 UGFzc3dvcmQ6\r\n");
                p.expect("czNjcmV0LUNBTkFSWQ==\r\n", "235 ok\r\n");
            },
            &["AUTH=LOGIN"],
        );
        assert_eq!(s.authenticate("me@example.com", &secret).unwrap(), "LOGIN");
        t.join().unwrap();

        // A hostile server echoing the credentials: the error never carries them.
        let (mut s, t) = session(
            |mut p| {
                let l = p.line();
                let echoed = l.trim_end().trim_start_matches("AUTH PLAIN ").to_string();
                p.say(&format!("535 5.7.8 bad: {echoed} s3cret-CANARY czNjcmV0LUNBTkFSWQ==\r\n"));
            },
            &["AUTH PLAIN"],
        );
        let err = s.authenticate("me@example.com", &secret).unwrap_err();
        assert_eq!(err.to_string(), "smtp authentication failed: 535 5.7.8 bad: [redacted] [redacted] [redacted]");
        assert_eq!(err.code(), "auth_failed");
        t.join().unwrap();

        let cases: Vec<(&[&str], &str)> = vec![
            (&[], "smtp authentication failed: the server offers no authentication (no AUTH in its EHLO answer)"),
            (
                &["AUTH CRAM-MD5 XOAUTH2"],
                "smtp authentication failed: the server offers neither AUTH PLAIN nor AUTH LOGIN (it offers CRAM-MD5 XOAUTH2)",
            ),
        ];
        for (ext, want) in cases {
            let (mut s, t) = session(|mut p| assert_eq!(p.line(), ""), ext);
            assert_eq!(s.authenticate("me@example.com", &secret).unwrap_err().to_string(), want);
            drop(s);
            t.join().unwrap();
        }
    }

    fn starttls_account(port: u16) -> Account {
        let text = format!(
            "[accounts.t]\nemail = \"me@example.com\"\n[accounts.t.imap]\nhost = \"localhost\"\nusername = \"me\"\n\
             password = {{ env = \"MAILMOAT_TEST_UNSET_SMTP_PW\" }}\n[accounts.t.smtp]\nhost = \"localhost\"\nport = {port}\ntls = \"starttls\"\n"
        );
        crate::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap().accounts["t"].clone()
    }

    /// A plaintext server on 127.0.0.1 answering with `script`; returns its port.
    fn plain_server(script: impl FnOnce(Peer) + Send + 'static) -> (u16, thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        (port, thread::spawn(move || script(Peer::new(l.accept().unwrap().0))))
    }

    #[test]
    fn starttls_not_offered_means_no_credentials_and_no_mail() {
        let (port, t) = plain_server(|mut p| {
            p.say("220 mx.example.test ESMTP\r\n");
            p.expect("EHLO example.com\r\n", "250-mx.example.test\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 1000\r\n");
            // The only thing that may follow is QUIT: no AUTH, no MAIL.
            p.expect("QUIT\r\n", "221 bye\r\n");
            assert_eq!(p.line(), "");
        });
        let err = connect(&starttls_account(port), &Limits::default(), &CancelToken::new()).err().unwrap();
        assert_eq!(err.code(), "starttls_unavailable");
        t.join().unwrap();
    }

    #[test]
    fn plaintext_sent_with_the_starttls_answer_is_refused() {
        let (port, t) = plain_server(|mut p| {
            p.say("220 mx.example.test ESMTP\r\n");
            p.expect("EHLO example.com\r\n", "250-mx.example.test\r\n250 STARTTLS\r\n");
            p.expect("STARTTLS\r\n", "220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n");
            assert_eq!(p.line(), "");
        });
        let err = connect(&starttls_account(port), &Limits::default(), &CancelToken::new()).err().unwrap();
        assert_eq!(err.to_string(), "smtp protocol error: the server sent data after its STARTTLS answer; refusing to continue");
        t.join().unwrap();

        let (port, t) = plain_server(|mut p| {
            p.say("220 mx.example.test ESMTP\r\n");
            p.expect("EHLO example.com\r\n", "250-mx.example.test\r\n250 STARTTLS\r\n");
            p.expect("STARTTLS\r\n", "454 4.7.0 TLS not available due to local problem\r\n");
        });
        let err = connect(&starttls_account(port), &Limits::default(), &CancelToken::new()).err().unwrap();
        assert_eq!(err.to_string(), "smtp tls failed: the server refused STARTTLS: 454 4.7.0 TLS not available due to local problem");
        t.join().unwrap();
    }

    #[test]
    fn greeting_rules_and_stalls() {
        let cases: Vec<(&'static str, &str)> = vec![
            ("554 5.3.2 go away\r\n", "smtp server rejected greeting: 554 5.3.2 go away"),
            ("250 not a greeting\r\n", "smtp protocol error: unexpected greeting: 250 not a greeting"),
            ("* OK IMAP4rev1 ready\r\n", "smtp protocol error: unparseable reply line from the server: * OK IMAP4rev1 ready"),
        ];
        for (greeting, want) in cases {
            let (port, t) = plain_server(move |mut p| p.say(greeting));
            let err = connect(&starttls_account(port), &Limits::default(), &CancelToken::new()).err().unwrap();
            assert_eq!(err.to_string(), want);
            t.join().unwrap();
        }
        let (port, t) = plain_server(|_p| thread::sleep(Duration::from_millis(1200)));
        let limits = Limits { greeting_timeout_ms: 300, ..Limits::default() };
        let err = connect(&starttls_account(port), &limits, &CancelToken::new()).err().unwrap();
        assert_eq!(err.to_string(), "smtp timed out after 300 ms (limits.greeting_timeout_ms)");
        t.join().unwrap();
    }
}
