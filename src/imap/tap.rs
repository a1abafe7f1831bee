//! The tap: a plaintext `Read + Write` layer between TLS and the `imap` crate that follows the
//! server's line and literal framing and works around three hazards of the crate.
//!
//! - Its response loop treats any line imap-proto cannot parse as fatal and stops mid-response.
//!   imap-proto refuses 8-bit bytes in status text (`NO Mailbox doesn't exist: Entwürfe`, which
//!   Dovecot sends, and which IMAP4rev2 allows), so 8-bit bytes in the text of OK, NO, BAD, BYE
//!   and PREAUTH lines become `?` (same length; we only ever show that text sanitized).
//! - imap-proto has no THREAD parser: while UID THREAD runs, each `* THREAD` line is lifted out
//!   of the stream for us to parse, and the crate sees only the rest.
//! - Its APPEND with a synchronizing literal parses the answer itself and keeps neither the
//!   tagged line nor APPENDUID when anything else comes with it: the tap records the raw bytes.
//! - imap-proto parses nested parentheses (BODYSTRUCTURE, body extensions) by recursion without
//!   a depth limit, in the crate's response loop, on any FETCH line even when not asked for: a
//!   500-level BODYSTRUCTURE overflowed the 8 MiB request stack and aborted the process. In
//!   ordinary lines (outside quoted strings and literals) a `(` deeper than [`MAX_NESTING`]
//!   becomes NUL, which no IMAP syntax accepts, so the parse fails at that depth and the command
//!   ends as a protocol error. We never ask for anything nested more than a few levels.
//! - imap-proto collects a parenthesized list into a vector of 24-byte items, and we copy flags
//!   into strings: one 12 MB `FLAGS (\\a \\a ...)` line took 339 MiB. A list of more than
//!   [`MAX_LIST_ITEMS`] items (counted by the spaces between them, outside quoted strings and
//!   literals) is cut the same way: its next space becomes NUL. Our lists (flags, labels) are far
//!   shorter; `* SEARCH` and `* SORT` results are not parenthesized and not limited here.
//! - imap-proto refuses 8-bit bytes in quoted strings, so one folder name sent as raw 8-bit
//!   (not modified UTF-7) made the whole LIST fail. In `* LIST` and `* LSUB` lines (outside
//!   literals) 8-bit bytes become DEL: the name still parses, but is not valid modified UTF-7,
//!   so it is shown escaped and not selectable, like any other name we could not send back.
//!
//! The framing is followed exactly for any well-formed stream: a line starts after CRLF unless a
//! literal (`{n}` at the end of a non-status line) is being read, whose bytes pass through
//! untouched. Nothing here adds bytes or changes the length of anything the crate sees, and
//! nothing can let a server say more than it could say directly.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

/// `{` + at most 20 digits + `}\r\n`.
const MAX_LITERAL_TAIL: usize = 24;
/// Longest line start held back to classify a line: a tag (or `*`), SP, a status word, SP.
const MAX_HEAD: usize = 96;
const MAX_TAG: usize = 64;
const MAX_WORD: usize = 16;
/// Deepest parenthesis nesting passed to the crate in one response line.
pub(crate) const MAX_NESTING: u32 = 64;
/// Most items of one parenthesized list passed to the crate.
pub(crate) const MAX_LIST_ITEMS: u32 = 10_000;

/// Control shared between the session owner and the tap inside the crate's stream.
pub(crate) struct TapControl {
    state: Mutex<TapState>,
}

struct TapState {
    record: Option<Vec<u8>>,
    filter: LineFilter,
}

impl TapControl {
    pub(crate) fn new() -> Arc<TapControl> {
        Arc::new(TapControl { state: Mutex::new(TapState { record: None, filter: LineFilter::default() }) })
    }

    fn lock(&self) -> MutexGuard<'_, TapState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts recording every byte the crate is given (bounded by the guard's read budget).
    pub(crate) fn start_recording(&self) {
        self.lock().record = Some(Vec::new());
    }

    /// Stops recording and returns what was recorded.
    pub(crate) fn take_recording(&self) -> Vec<u8> {
        self.lock().record.take().unwrap_or_default()
    }

    /// Starts lifting `* THREAD` lines out of the stream.
    pub(crate) fn start_thread_capture(&self) {
        let mut st = self.lock();
        st.filter.capture_thread = true;
        st.filter.lines.clear();
    }

    /// Stops lifting `* THREAD` lines; returns the complete ones (CRLF included).
    pub(crate) fn take_thread_lines(&self) -> Vec<Vec<u8>> {
        let mut st = self.lock();
        st.filter.capture_thread = false;
        std::mem::take(&mut st.filter.lines)
    }
}

/// The stream the `imap` crate reads and writes.
pub(crate) struct Tap<S> {
    inner: S,
    ctl: Arc<TapControl>,
    /// Filtered bytes not yet handed to the crate.
    pending: Vec<u8>,
    pending_pos: usize,
}

impl<S> Tap<S> {
    pub(crate) fn new(inner: S, ctl: Arc<TapControl>) -> Tap<S> {
        Tap { inner, ctl, pending: Vec::new(), pending_pos: 0 }
    }
}

impl<S: Read> Read for Tap<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pending_pos < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.pending_pos);
                buf[..n].copy_from_slice(&self.pending[self.pending_pos..self.pending_pos + n]);
                self.pending_pos += n;
                return Ok(n);
            }
            let mut chunk = [0u8; 16 * 1024];
            let got = self.inner.read(&mut chunk)?;
            self.pending.clear();
            self.pending_pos = 0;
            let mut st = self.ctl.lock();
            if got == 0 {
                st.filter.finish(&mut self.pending);
            } else {
                st.filter.feed(&chunk[..got], &mut self.pending);
            }
            if let Some(r) = &mut st.record {
                r.extend_from_slice(&self.pending);
            }
            drop(st);
            if got == 0 && self.pending.is_empty() {
                return Ok(0);
            }
        }
    }
}

impl<S: Write> Write for Tap<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    /// At the start of a line: `head` holds the bytes read so far, until the line is classified.
    Head,
    /// Inside an ordinary line (it may announce a literal at its end).
    Line,
    /// Inside the text of a status line (OK, NO, BAD, BYE, PREAUTH).
    Status,
    /// Inside a literal, with this many bytes left.
    Literal(u64),
    /// Inside a `* THREAD` line being lifted out.
    Capture,
}

/// What the start of a line says the line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Undecided,
    Ordinary,
    Status,
    Thread,
}

#[derive(Debug)]
struct LineFilter {
    scan: Scan,
    head: Vec<u8>,
    /// The last bytes of the current ordinary line, to spot a literal announcement.
    tail: Vec<u8>,
    capture_thread: bool,
    current: Vec<u8>,
    lines: Vec<Vec<u8>>,
    /// Parenthesis depth of the current ordinary line (literals and quoted strings excluded).
    depth: u32,
    /// Inside a quoted string of the current ordinary line; `escape`: right after a backslash.
    quoted: bool,
    escape: bool,
    /// The current line is `* LIST` or `* LSUB`: 8-bit bytes become DEL.
    names: bool,
    /// Spaces seen so far in the open list at each depth (1..=MAX_NESTING).
    items: Vec<u32>,
}

impl Default for LineFilter {
    fn default() -> LineFilter {
        LineFilter {
            scan: Scan::Head,
            head: Vec::new(),
            tail: Vec::new(),
            capture_thread: false,
            current: Vec::new(),
            lines: Vec::new(),
            depth: 0,
            quoted: false,
            escape: false,
            names: false,
            items: vec![0; MAX_NESTING as usize + 1],
        }
    }
}

fn is_tag_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && !b"(){%*\"\\]+".contains(&b)
}

/// Classifies a line from its first bytes: `<tag or *> SP <word> (SP | CR)`.
fn classify(head: &[u8], capture_thread: bool) -> Kind {
    let Some(sp) = head.iter().position(|&b| b == b' ') else {
        let token_ok = head.len() <= MAX_TAG && (head == b"*" || head.iter().all(|&b| is_tag_byte(b)));
        return if token_ok { Kind::Undecided } else { Kind::Ordinary };
    };
    let token = &head[..sp];
    if token.is_empty() || token.len() > MAX_TAG || !(token == b"*" || token.iter().all(|&b| is_tag_byte(b))) {
        return Kind::Ordinary;
    }
    let rest = &head[sp + 1..];
    let Some(end) = rest.iter().position(|&b| b == b' ' || b == b'\r') else {
        let word_ok = rest.len() <= MAX_WORD && rest.iter().all(u8::is_ascii_alphabetic);
        return if word_ok { Kind::Undecided } else { Kind::Ordinary };
    };
    let word = rest[..end].to_ascii_uppercase();
    match word.as_slice() {
        b"OK" | b"NO" | b"BAD" | b"BYE" | b"PREAUTH" => Kind::Status,
        b"THREAD" if token == b"*" && capture_thread => Kind::Thread,
        _ => Kind::Ordinary,
    }
}

impl LineFilter {
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut i = 0;
        while i < input.len() {
            let rest = &input[i..];
            match self.scan {
                Scan::Literal(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    out.extend_from_slice(&rest[..n]);
                    i += n;
                    let left = left - n as u64;
                    self.scan = if left == 0 { Scan::Line } else { Scan::Literal(left) };
                }
                Scan::Line => i += self.line(rest, out),
                Scan::Status => {
                    let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |p| p + 1);
                    out.extend(rest[..end].iter().map(|&b| if b >= 0x80 { b'?' } else { b }));
                    i += end;
                    if rest[end - 1] == b'\n' {
                        self.scan = Scan::Head;
                    }
                }
                Scan::Capture => {
                    let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |p| p + 1);
                    self.current.extend_from_slice(&rest[..end]);
                    i += end;
                    if rest[end - 1] == b'\n' {
                        self.lines.push(std::mem::take(&mut self.current));
                        self.scan = Scan::Head;
                    }
                }
                Scan::Head => {
                    self.head.push(rest[0]);
                    i += 1;
                    let mut kind = classify(&self.head, self.capture_thread);
                    if kind == Kind::Undecided && (self.head.len() >= MAX_HEAD || rest[0] == b'\n') {
                        kind = Kind::Ordinary;
                    }
                    self.release(kind, out);
                }
            }
        }
    }

    /// Hands the held line start on once the line is classified.
    fn release(&mut self, kind: Kind, out: &mut Vec<u8>) {
        let head = match kind {
            Kind::Undecided => return,
            _ => std::mem::take(&mut self.head),
        };
        match kind {
            Kind::Status => {
                self.scan = Scan::Status;
                // `head` is ASCII up to here; a lone `OK\r` still needs its LF.
                out.extend_from_slice(&head);
            }
            Kind::Thread => {
                self.scan = Scan::Capture;
                self.current = head;
            }
            _ => {
                self.scan = Scan::Line;
                self.tail.clear();
                (self.depth, self.quoted, self.escape) = (0, false, false);
                let word = head.get(2..7).map(<[u8]>::to_ascii_uppercase);
                self.names = head.starts_with(b"* ") && matches!(word.as_deref(), Some(b"LIST ") | Some(b"LSUB "));
                let mut done = 0;
                // The head may already hold a whole line (and the start of a literal cannot be
                // in it: the head ends at the first LF).
                while done < head.len() {
                    done += self.line(&head[done..], out);
                }
            }
        }
    }

    /// Passes ordinary-line bytes up to and including the first LF; returns how many it took.
    fn line(&mut self, rest: &[u8], out: &mut Vec<u8>) -> usize {
        let (end, eol) = match rest.iter().position(|&b| b == b'\n') {
            Some(p) => (p + 1, true),
            None => (rest.len(), false),
        };
        let part = &rest[..end];
        let from = out.len();
        out.extend_from_slice(part);
        self.structure(&mut out[from..]);
        let keep = part.len().min(MAX_LITERAL_TAIL);
        self.tail.extend_from_slice(&part[part.len() - keep..]);
        if self.tail.len() > MAX_LITERAL_TAIL {
            self.tail.drain(..self.tail.len() - MAX_LITERAL_TAIL);
        }
        if eol {
            self.scan = match literal_announced(&self.tail) {
                Some(0) => Scan::Line,
                Some(n) => Scan::Literal(n),
                None => Scan::Head,
            };
            self.tail.clear();
        }
        end
    }

    /// Follows quoting and nesting over ordinary-line bytes (already in `out`): a `(` deeper than
    /// [`MAX_NESTING`] becomes NUL, and so does a space after [`MAX_LIST_ITEMS`] items of one
    /// list; in a LIST or LSUB line an 8-bit byte becomes DEL.
    fn structure(&mut self, bytes: &mut [u8]) {
        for b in bytes {
            if self.names && *b >= 0x80 {
                *b = 0x7f;
            } else if self.quoted {
                match (self.escape, *b) {
                    (true, _) => self.escape = false,
                    (false, b'\\') => self.escape = true,
                    (false, b'"') => self.quoted = false,
                    _ => {}
                }
            } else {
                match *b {
                    b'"' => self.quoted = true,
                    b')' => self.depth = self.depth.saturating_sub(1),
                    b'(' => {
                        self.depth = self.depth.saturating_add(1);
                        match self.items.get_mut(self.depth as usize) {
                            Some(n) => *n = 0,
                            None => *b = 0,
                        }
                    }
                    b' ' if self.depth > 0 => {
                        if let Some(n) = self.items.get_mut(self.depth as usize) {
                            *n += 1;
                            if *n >= MAX_LIST_ITEMS {
                                *b = 0;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// End of stream: whatever was held back goes to the crate (which will report the break).
    fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.head);
    }
}

/// The size of the literal a line announces (`... {123}\r\n`), if it does.
fn literal_announced(tail: &[u8]) -> Option<u64> {
    let body = tail.strip_suffix(b"}\r\n")?;
    let open = body.iter().rposition(|&c| c == b'{')?;
    let digits = &body[open + 1..];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter over `input` cut into pieces of `step` bytes.
    fn filter(input: &[u8], step: usize, capture: bool) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut f = LineFilter { capture_thread: capture, ..LineFilter::default() };
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            f.feed(piece, &mut out);
        }
        f.finish(&mut out);
        (out, f.lines)
    }

    const STEPS: [usize; 9] = [1, 2, 3, 7, 8, 9, 13, 64, 4096];

    #[test]
    fn ordinary_streams_pass_unchanged() {
        let input: &[u8] = b"* 3 EXISTS\r\n* 1 FETCH (UID 5 BODY[] {22}\r\n* NO caf\xc3\xa9\r\n\xff\xfe{3}\r\nabc)\r\n\
* LIST (\\HasNoChildren) \"/\" {5}\r\nin(1)\r\n+ go ahead\r\n* SEARCH 1 2\r\n\r\nx\r\na1 OK [APPENDUID 1 2] done\r\n";
        for step in STEPS {
            assert_eq!(filter(input, step, false), (input.to_vec(), vec![]), "step {step}");
            assert_eq!(filter(input, step, true), (input.to_vec(), vec![]), "step {step}");
        }
    }

    #[test]
    fn status_text_becomes_ascii() {
        let input = "a5 NO [NONEXISTENT] Mailbox doesn't exist: Größe\r\n* OK [ALERT] Kontingent zu 90 % ausgeschöpft\r\n* bye Tschüß\r\n* 2 EXISTS\r\nA1 PREAUTH é\r\n";
        let want = "a5 NO [NONEXISTENT] Mailbox doesn't exist: Gr????e\r\n* OK [ALERT] Kontingent zu 90 % ausgesch??pft\r\n* bye Tsch????\r\n* 2 EXISTS\r\nA1 PREAUTH ??\r\n";
        for step in STEPS {
            let (out, _) = filter(input.as_bytes(), step, false);
            assert_eq!(String::from_utf8(out).unwrap(), want, "step {step}");
            // And imap-proto, which refuses the original, parses every line.
            let want = want.as_bytes();
            let mut rest = want;
            while !rest.is_empty() {
                rest = imap_proto::parser::parse_response(rest).unwrap().0;
            }
        }
        assert!(imap_proto::parser::parse_response("a5 NO Größe\r\n".as_bytes()).is_err());
        // 8-bit data in an ordinary line or a literal is not touched.
        let data = b"* 1 FETCH (BODY[] {4}\r\n\xc3\xa9\xc3\xa9)\r\n* 2 FETCH (X \"caf\xc3\xa9\")\r\n";
        assert_eq!(filter(data, 5, false).0, data.to_vec());
    }

    #[test]
    fn thread_lines_are_lifted_only_when_asked() {
        let input = b"* THREAD (1 32)(2)(11 (12 13 15)(14 16))\r\n* 3 EXISTS\r\na7 OK Thread completed\r\n";
        for step in STEPS {
            let (out, lines) = filter(input, step, true);
            assert_eq!(out, b"* 3 EXISTS\r\na7 OK Thread completed\r\n", "step {step}");
            assert_eq!(lines, [b"* THREAD (1 32)(2)(11 (12 13 15)(14 16))\r\n".to_vec()], "step {step}");
            assert_eq!(filter(input, step, false), (input.to_vec(), vec![]), "step {step}");
        }
        let (out, lines) = filter(b"* THREAD\r\n* THREADS x\r\n* THREA\r\n*  THREAD (1)\r\na1 THREAD (2)\r\n* thread (4)\r\n", 5, true);
        assert_eq!(lines, [b"* THREAD\r\n".to_vec(), b"* thread (4)\r\n".to_vec()]);
        assert_eq!(out, b"* THREADS x\r\n* THREA\r\n*  THREAD (1)\r\na1 THREAD (2)\r\n");
    }

    #[test]
    fn literals_hide_look_alikes() {
        // A literal whose content looks like THREAD and NO lines, then a real THREAD line.
        let input = b"* 1 FETCH (UID 5 BODY[] {29}\r\n* THREAD (666)\r\na1 NO caf\xc3\xa9\r\n)\r\n* THREAD (5)\r\na2 OK\r\n";
        for step in STEPS {
            let (out, lines) = filter(input, step, true);
            assert_eq!(out, b"* 1 FETCH (UID 5 BODY[] {29}\r\n* THREAD (666)\r\na1 NO caf\xc3\xa9\r\n)\r\na2 OK\r\n", "step {step}");
            assert_eq!(lines, [b"* THREAD (5)\r\n".to_vec()], "step {step}");
        }
        // A zero-length literal, one ending at a line end, two on one line.
        let input = b"* 1 FETCH (BODY[] {0}\r\n)\r\n* 2 FETCH (BODY[] {2}\r\n\r\n)\r\n* 3 FETCH (A {1}\r\nx B {2}\r\nyy)\r\n* NO \xff\r\n";
        let (out, _) = filter(input, 1, true);
        assert_eq!(
            out,
            b"* 1 FETCH (BODY[] {0}\r\n)\r\n* 2 FETCH (BODY[] {2}\r\n\r\n)\r\n* 3 FETCH (A {1}\r\nx B {2}\r\nyy)\r\n* NO ?\r\n"
        );
    }

    #[test]
    fn random_chunking_of_a_long_stream() {
        // Literals full of CRLFs, look-alike lines and 8-bit bytes, between ordinary lines.
        let mut input = Vec::new();
        let mut want = Vec::new();
        for i in 0..300u32 {
            let body: Vec<u8> =
                format!("* OK caf\u{e9} {i}\r\n* THREAD ({i})\r\n{{{i}}}\r\nline\r\n").into_bytes().repeat(i as usize % 7 + 1);
            let fetch = format!("* {i} FETCH (UID {i} BODY[] {{{}}}\r\n", body.len()).into_bytes();
            for part in [&fetch[..], &body[..], b")\r\n", b"* 3 EXISTS\r\n"] {
                input.extend_from_slice(part);
                want.extend_from_slice(part);
            }
            input.extend_from_slice("a9 NO caf\u{e9}\r\n".as_bytes());
            want.extend_from_slice(b"a9 NO caf??\r\n");
        }
        let mut seed = 0x2545_f491_u64;
        for _ in 0..20 {
            let mut f = LineFilter { capture_thread: true, ..LineFilter::default() };
            let mut out = Vec::new();
            let mut at = 0;
            while at < input.len() {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let step = 1 + (seed >> 33) as usize % 700;
                let end = (at + step).min(input.len());
                f.feed(&input[at..end], &mut out);
                at = end;
            }
            assert!(out == want, "output differs");
            assert!(f.lines.is_empty());
        }
    }

    #[test]
    fn nesting_beyond_the_limit_cannot_parse() {
        let deep = |depth: usize| -> Vec<u8> {
            let mut v = b"* 1 FETCH (UID 1 BODYSTRUCTURE ".to_vec();
            v.extend(b"(".repeat(depth));
            v.extend_from_slice(b"(\"text\" \"plain\" NIL NIL NIL \"7bit\" 5 1)");
            v.extend(b" \"mixed\")".repeat(depth));
            v.extend_from_slice(b")\r\n");
            v
        };
        // FETCH's own parenthesis, then MAX_NESTING - 1 levels of BODYSTRUCTURE: unchanged, and
        // imap-proto parses it (in a thread whose stack is the request threads').
        let ok = deep(MAX_NESTING as usize - 2);
        for step in STEPS {
            assert_eq!(filter(&ok, step, false).0, ok, "step {step}");
        }
        let parsed = std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(move || imap_proto::parser::parse_response(&ok).is_ok())
            .unwrap()
            .join()
            .unwrap();
        assert!(parsed);
        // One more level: that `(` becomes NUL and the line no longer parses; deeper ones too,
        // and the parser gives up at the limit instead of recursing through 100,000 levels.
        for depth in [MAX_NESTING as usize - 1, 100_000] {
            let input = deep(depth);
            let (out, _) = filter(&input, 4096, false);
            assert_eq!(out.len(), input.len());
            let nuls = out.iter().filter(|&&b| b == 0).count();
            assert_eq!(nuls, depth + 2 - MAX_NESTING as usize, "depth {depth}");
            assert_eq!(out.iter().position(|&b| b == 0), Some(31 + MAX_NESTING as usize - 1));
            let failed = std::thread::Builder::new()
                .stack_size(8 << 20)
                .spawn(move || imap_proto::parser::parse_response(&out).is_err())
                .unwrap()
                .join()
                .unwrap();
            assert!(failed, "depth {depth}");
        }
        // Parentheses in quoted strings and literals do not count, nor do they in status text;
        // the depth starts again on each line.
        let paren = "(".repeat(200);
        let input = format!(
            "* 1 FETCH (UID 1 X \"{paren}\\\"{paren}\" BODY[] {{200}}\r\n{paren})\r\n* OK {paren}\r\n* 2 FETCH {})\r\n",
            "(".repeat(MAX_NESTING as usize)
        );
        for step in STEPS {
            assert_eq!(filter(input.as_bytes(), step, false).0, input.as_bytes(), "step {step}");
        }
    }

    #[test]
    fn lists_longer_than_the_limit_cannot_parse() {
        let flags = |n: usize| -> Vec<u8> {
            let mut v = b"* 1 FETCH (UID 1 FLAGS (".to_vec();
            v.extend(b"\\a ".repeat(n - 1));
            v.extend_from_slice(b"\\b))\r\n");
            v
        };
        let ok = flags(MAX_LIST_ITEMS as usize);
        for step in [1, 7, 4096] {
            assert_eq!(filter(&ok, step, false).0, ok, "step {step}");
        }
        assert!(imap_proto::parser::parse_response(&ok).is_ok());
        let long = flags(MAX_LIST_ITEMS as usize + 1);
        let (out, _) = filter(&long, 4096, false);
        assert_eq!(out.len(), long.len());
        assert_eq!(out.iter().filter(|&&b| b == 0).count(), 1);
        assert!(imap_proto::parser::parse_response(&out).is_err());
        // Spaces in quoted strings and literals, and at depth 0 (SEARCH), do not count; nor do
        // the items of an earlier list at the same depth.
        let spaces = " ".repeat(MAX_LIST_ITEMS as usize);
        let mut input = format!("* 1 FETCH (X \"{spaces}\" BODY[] {{{}}}\r\n{spaces})\r\n* SEARCH", spaces.len()).into_bytes();
        input.extend(b" 1".repeat(MAX_LIST_ITEMS as usize * 2));
        input.extend_from_slice(b"\r\n");
        let two: Vec<u8> =
            [flags(MAX_LIST_ITEMS as usize - 10).strip_suffix(b")\r\n").unwrap(), b" (", &b"a ".repeat(9990), b"b))\r\n"].concat();
        input.extend_from_slice(&two);
        for step in [1, 13, 4096] {
            assert_eq!(filter(&input, step, false).0, input, "step {step}");
        }
    }

    #[test]
    fn eight_bit_folder_names_become_del() {
        let input: &[u8] = b"* LIST (\\HasNoChildren) \"/\" \"Caf\xe9\xff\"\r\n* lsub () \"/\" \xc3\xa9\r\n\
* LIST () \"/\" {5}\r\nCaf\xc3\xa9\r\n* 1 FETCH (BODY[] {2}\r\n\xc3\xa9)\r\n* SEARCH \xff\r\n";
        let want: &[u8] = b"* LIST (\\HasNoChildren) \"/\" \"Caf\x7f\x7f\"\r\n* lsub () \"/\" \x7f\x7f\r\n\
* LIST () \"/\" {5}\r\nCaf\xc3\xa9\r\n* 1 FETCH (BODY[] {2}\r\n\xc3\xa9)\r\n* SEARCH \xff\r\n";
        for step in STEPS {
            assert_eq!(filter(input, step, false).0, want, "step {step}");
        }
        let (_, r) = imap_proto::parser::parse_response(b"* LIST (\\HasNoChildren) \"/\" \"Caf\x7f\x7f\"\r\n").unwrap();
        assert!(matches!(r, imap_proto::types::Response::MailboxData(_)), "{r:?}");
        assert_eq!(super::super::utf7::decode_mutf7("Caf\x7f\x7f"), None);
    }

    #[test]
    fn line_classification() {
        let cases: &[(&[u8], bool, Kind)] = &[
            (b"*", false, Kind::Undecided),
            (b"* ", false, Kind::Undecided),
            (b"* O", false, Kind::Undecided),
            (b"* OK ", false, Kind::Status),
            (b"a12 no ", false, Kind::Status),
            (b"a12 BAD\r", false, Kind::Status),
            (b"* 3 ", false, Kind::Ordinary),
            (b"* THREAD ", true, Kind::Thread),
            (b"* THREAD ", false, Kind::Ordinary),
            (b"a1 THREAD ", true, Kind::Ordinary),
            (b"+ ", false, Kind::Ordinary),
            (b"\r", false, Kind::Ordinary),
            (b"a(1 OK ", false, Kind::Ordinary),
            (b"\xc3\xa9 OK ", false, Kind::Ordinary),
        ];
        for (head, capture, kind) in cases {
            assert_eq!(classify(head, *capture), *kind, "{:?}", String::from_utf8_lossy(head));
        }
        let long_tag = vec![b'a'; MAX_TAG + 1];
        assert_eq!(classify(&long_tag, false), Kind::Ordinary);
    }

    #[test]
    fn literal_announcements() {
        assert_eq!(literal_announced(b"BODY[] {123}\r\n"), Some(123));
        assert_eq!(literal_announced(b"{0}\r\n"), Some(0));
        assert_eq!(literal_announced(b"{12}\n"), None);
        assert_eq!(literal_announced(b"{}\r\n"), None);
        assert_eq!(literal_announced(b"{1a}\r\n"), None);
        assert_eq!(literal_announced(b"{99999999999999999999}\r\n"), None);
        assert_eq!(literal_announced(b"text }\r\n"), None);
    }

    #[test]
    fn the_tap_filters_and_records() {
        let ctl = TapControl::new();
        let data = b"* THREAD (1)\r\na1 NO \xc3\xa9\r\n".to_vec();
        let mut tap = Tap::new(io::Cursor::new(data.clone()), ctl.clone());
        let mut got = Vec::new();
        tap.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"* THREAD (1)\r\na1 NO ??\r\n");

        let mut tap = Tap::new(io::Cursor::new(data.clone()), ctl.clone());
        ctl.start_recording();
        ctl.start_thread_capture();
        let mut got = Vec::new();
        let mut small = [0u8; 3];
        loop {
            match tap.read(&mut small).unwrap() {
                0 => break,
                n => got.extend_from_slice(&small[..n]),
            }
        }
        assert_eq!(got, b"a1 NO ??\r\n");
        assert_eq!(ctl.take_thread_lines(), [b"* THREAD (1)\r\n".to_vec()]);
        assert_eq!(ctl.take_recording(), got, "the recording is what the crate saw");
        assert!(ctl.take_thread_lines().is_empty() && ctl.take_recording().is_empty());
    }
}
