//! Server replies (RFC 5321 §4.2): a bounded line reader, multi-line reply parsing, and the
//! extension list from EHLO.
//!
//! Every reply is bounded: a line of at most [`MAX_LINE_BYTES`], at most [`MAX_REPLY_LINES`]
//! lines, at most [`MAX_REPLY_BYTES`] in all. Anything else is a protocol error, never a
//! growing buffer.

use std::io::{self, Read};

use super::error::{sanitize, SmtpError};

/// Longest reply line, CRLF included.
pub(crate) const MAX_LINE_BYTES: usize = 2048;
/// Lines in one reply.
pub(crate) const MAX_REPLY_LINES: usize = 100;
/// Bytes in one reply.
pub(crate) const MAX_REPLY_BYTES: usize = 64 * 1024;
/// Extensions kept from EHLO.
const MAX_EXTENSIONS: usize = 64;

/// One complete reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub code: u16,
    /// The text of each line, after the code and separator (lossy UTF-8, unsanitized).
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx.
    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The code and the lines joined by spaces, sanitized (for errors and reports).
    pub fn text(&self) -> String {
        sanitize(&format!("{} {}", self.code, self.lines.join(" ")))
    }
}

/// A line reader with its own buffer. The buffer's contents are visible ([`LineReader::pending`])
/// so that nothing read before STARTTLS can be mistaken for something said after it.
pub(crate) struct LineReader {
    buf: Vec<u8>,
    start: usize,
}

impl LineReader {
    pub fn new() -> LineReader {
        LineReader { buf: Vec::with_capacity(4096), start: 0 }
    }

    /// Bytes received but not yet consumed.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// One line without its line break (CRLF or a bare LF).
    fn line<S: Read>(&mut self, s: &mut S, io_err: &dyn Fn(io::Error) -> SmtpError) -> Result<Vec<u8>, SmtpError> {
        loop {
            if let Some(p) = self.buf[self.start..].iter().position(|&b| b == b'\n') {
                let end = self.start + p;
                if p + 1 > MAX_LINE_BYTES {
                    return Err(SmtpError::Protocol { reason: "server reply line longer than 2 KiB".into() });
                }
                let mut line = self.buf[self.start..end].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.start = end + 1;
                return Ok(line);
            }
            if self.pending() >= MAX_LINE_BYTES {
                return Err(SmtpError::Protocol { reason: "server reply line longer than 2 KiB".into() });
            }
            // Compact, then read more.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let have = self.buf.len();
            self.buf.resize(have + 4096, 0);
            let n = loop {
                match s.read(&mut self.buf[have..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.buf.truncate(have);
                        return Err(io_err(e));
                    }
                }
            };
            self.buf.truncate(have + n);
            if n == 0 {
                return Err(SmtpError::Protocol { reason: "the server closed the connection".into() });
            }
        }
    }

    /// One complete (possibly multi-line) reply.
    pub fn reply<S: Read>(&mut self, s: &mut S, io_err: &dyn Fn(io::Error) -> SmtpError) -> Result<Reply, SmtpError> {
        let mut code = None;
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line = self.line(s, io_err)?;
            total += line.len() + 2;
            if total > MAX_REPLY_BYTES {
                return Err(SmtpError::Protocol { reason: "server reply longer than 64 KiB".into() });
            }
            let (this, more, text) = parse_line(&line)?;
            match code {
                None => code = Some(this),
                Some(c) if c != this => {
                    return Err(SmtpError::Protocol { reason: format!("reply lines with different codes ({c} and {this})") });
                }
                Some(_) => {}
            }
            lines.push(text);
            if !more {
                return Ok(Reply { code: this, lines });
            }
            if lines.len() == MAX_REPLY_LINES {
                return Err(SmtpError::Protocol { reason: "server reply with more than 100 lines".into() });
            }
        }
    }
}

/// `(code, more lines follow, text)` of one reply line.
fn parse_line(line: &[u8]) -> Result<(u16, bool, String), SmtpError> {
    let bad =
        || SmtpError::Protocol { reason: format!("unparseable reply line from the server: {}", sanitize(&String::from_utf8_lossy(line))) };
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let code = u16::from(line[0] - b'0') * 100 + u16::from(line[1] - b'0') * 10 + u16::from(line[2] - b'0');
    if !(200..=599).contains(&code) {
        return Err(bad());
    }
    let (more, text) = match line.get(3) {
        None => (false, &line[3..]),
        Some(b'-') => (true, &line[4..]),
        Some(b' ') => (false, &line[4..]),
        Some(_) => return Err(bad()),
    };
    Ok((code, more, String::from_utf8_lossy(text).into_owned()))
}

/// The extensions an EHLO reply advertises: keyword (uppercase) and parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Extensions {
    pub list: Vec<(String, String)>,
}

impl Extensions {
    /// From a 250 EHLO reply (its first line is the server's greeting, not an extension).
    pub fn from_ehlo(reply: &Reply) -> Extensions {
        let list = reply
            .lines
            .iter()
            .skip(1)
            .filter_map(|l| {
                let l = l.trim();
                let (kw, params) = l.split_once([' ', '=']).map_or((l, ""), |(k, p)| (k, p.trim()));
                let ok = !kw.is_empty() && kw.len() <= 64 && kw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                ok.then(|| (kw.to_ascii_uppercase(), sanitize(params)))
            })
            .take(MAX_EXTENSIONS)
            .collect();
        Extensions { list }
    }

    pub fn has(&self, keyword: &str) -> bool {
        self.list.iter().any(|(k, _)| k == keyword)
    }

    /// SASL mechanisms (uppercase), from `AUTH a b` and the old `AUTH=a b` form.
    pub fn auth_mechanisms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (k, p) in &self.list {
            if k == "AUTH" {
                for m in p.split_whitespace() {
                    let m = m.to_ascii_uppercase();
                    if !out.contains(&m) {
                        out.push(m);
                    }
                }
            }
        }
        out
    }

    /// The SIZE limit in bytes; `None` when not advertised or advertised as 0 (no limit).
    pub fn size_limit(&self) -> Option<u64> {
        self.list.iter().find(|(k, _)| k == "SIZE").and_then(|(_, p)| p.split_whitespace().next()?.parse().ok()).filter(|&n| n > 0)
    }

    /// `KEYWORD params` strings for reports.
    pub fn describe(&self) -> Vec<String> {
        self.list.iter().map(|(k, p)| if p.is_empty() { k.clone() } else { format!("{k} {p}") }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_err(e: io::Error) -> SmtpError {
        SmtpError::Protocol { reason: e.to_string() }
    }

    fn replies(input: &[u8]) -> Vec<Result<Reply, String>> {
        let mut r = LineReader::new();
        let mut src = input;
        let mut out = Vec::new();
        loop {
            match r.reply(&mut src, &io_err) {
                Ok(rep) => out.push(Ok(rep)),
                Err(e) if e.to_string().ends_with("the server closed the connection") => return out,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }

    #[test]
    fn multi_line_and_bare_lf() {
        let got = replies(b"250-mx.example.test hello\r\n250-SIZE 1000\r\n250 8BITMIME\r\n354 go ahead\n221\r\n");
        assert_eq!(
            got,
            vec![
                Ok(Reply { code: 250, lines: vec!["mx.example.test hello".into(), "SIZE 1000".into(), "8BITMIME".into()] }),
                Ok(Reply { code: 354, lines: vec!["go ahead".into()] }),
                Ok(Reply { code: 221, lines: vec!["".into()] }),
            ]
        );
    }

    #[test]
    fn hostile_replies_are_refused() {
        let long_line = format!("250 {}\r\n", "x".repeat(3000));
        let many_lines = "250-x\r\n".repeat(101) + "250 end\r\n";
        let huge: String = (0..40).map(|_| format!("250-{}\r\n", "y".repeat(2000))).collect::<String>() + "250 end\r\n";
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (long_line.into_bytes(), "smtp protocol error: server reply line longer than 2 KiB"),
            ("x".repeat(5000).into_bytes(), "smtp protocol error: server reply line longer than 2 KiB"),
            (many_lines.into_bytes(), "smtp protocol error: server reply with more than 100 lines"),
            (huge.into_bytes(), "smtp protocol error: server reply longer than 64 KiB"),
            (b"250-a\r\n550 b\r\n".to_vec(), "smtp protocol error: reply lines with different codes (250 and 550)"),
            (
                b"HTTP/1.1 400 Bad Request\r\n".to_vec(),
                "smtp protocol error: unparseable reply line from the server: HTTP/1.1 400 Bad Request",
            ),
            (b"199 too low\r\n".to_vec(), "smtp protocol error: unparseable reply line from the server: 199 too low"),
            (b"250x\r\n".to_vec(), "smtp protocol error: unparseable reply line from the server: 250x"),
            (b"25\r\n".to_vec(), "smtp protocol error: unparseable reply line from the server: 25"),
        ];
        for (input, want) in cases {
            let got = replies(&input);
            assert_eq!(got.last().cloned().unwrap().unwrap_err(), want);
        }
        // A reply that stops mid-way.
        let mut r = LineReader::new();
        let err = r.reply(&mut &b"250-partial\r\n"[..], &io_err).unwrap_err();
        assert_eq!(err.to_string(), "smtp protocol error: the server closed the connection");
    }

    #[test]
    fn pending_bytes_are_visible() {
        let mut r = LineReader::new();
        let mut src: &[u8] = b"220 ready\r\n250 injected\r\n";
        assert_eq!(r.reply(&mut src, &io_err).unwrap().code, 220);
        assert_eq!(r.pending(), 14);
    }

    #[test]
    fn extensions() {
        let reply = Reply {
            code: 250,
            lines: vec![
                "mx.example.test".into(),
                "PIPELINING".into(),
                "SIZE 10240000".into(),
                "auth plain LOGIN".into(),
                "AUTH=LOGIN CRAM-MD5".into(),
                "8BITMIME".into(),
                "SMTPUTF8".into(),
                "bad keyword!".into(),
                "X-\u{1b}[31m".into(),
            ],
        };
        let e = Extensions::from_ehlo(&reply);
        assert!(e.has("PIPELINING") && e.has("8BITMIME") && e.has("SMTPUTF8") && !e.has("STARTTLS"));
        assert_eq!(e.auth_mechanisms(), vec!["PLAIN", "LOGIN", "CRAM-MD5"]);
        assert_eq!(e.size_limit(), Some(10_240_000));
        assert_eq!(
            e.describe(),
            vec!["PIPELINING", "SIZE 10240000", "AUTH plain LOGIN", "AUTH LOGIN CRAM-MD5", "8BITMIME", "SMTPUTF8", "BAD keyword!"]
        );
        let zero = Extensions::from_ehlo(&Reply { code: 250, lines: vec!["x".into(), "SIZE 0".into()] });
        assert_eq!(zero.size_limit(), None);
        let bare = Extensions::from_ehlo(&Reply { code: 250, lines: vec!["x".into(), "SIZE".into()] });
        assert_eq!(bare.size_limit(), None);
    }
}
