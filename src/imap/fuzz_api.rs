//! Entry points for the fuzz target `imap_response` (fuzz/fuzz_targets/imap_response.rs): the
//! server-facing byte handling of this module (the tap's line and literal framing, and every
//! parser of untagged and tagged response data) without a network. Not an API: hidden from the
//! docs, and nothing outside `fuzz/` calls it.

use std::io::{self, Read};

use super::parse;
use super::tap::{Tap, TapControl};

/// What the tap made of a byte stream.
#[derive(Debug)]
pub struct TapOutput {
    /// The bytes the `imap` crate would have read.
    pub passed: Vec<u8>,
    /// The `* THREAD` lines lifted out of the stream (complete lines only).
    pub thread_lines: Vec<Vec<u8>>,
    /// What recording saw (every byte handed to the crate).
    pub recorded: Vec<u8>,
}

/// A reader that hands out `data` in pieces whose sizes cycle through `steps` (a 0 is 1).
struct Pieces<'a> {
    data: &'a [u8],
    steps: &'a [usize],
    i: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let step = if self.steps.is_empty() { usize::MAX } else { self.steps[self.i % self.steps.len()].max(1) };
        self.i += 1;
        let n = step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Runs `data` through the tap as the server's side of a session (delivered in pieces of
/// `steps` bytes), read by the crate's side in reads of `read_size` bytes.
pub fn tap_stream(data: &[u8], steps: &[usize], read_size: usize, capture_thread: bool) -> TapOutput {
    let ctl = TapControl::new();
    if capture_thread {
        ctl.start_thread_capture();
    }
    ctl.start_recording();
    let mut tap = Tap::new(Pieces { data, steps, i: 0 }, ctl.clone());
    let mut passed = Vec::new();
    let mut buf = vec![0u8; read_size.max(1)];
    loop {
        match tap.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => passed.extend_from_slice(&buf[..n]),
        }
    }
    let thread_lines = ctl.take_thread_lines();
    let recorded = ctl.take_recording();
    TapOutput { passed, thread_lines, recorded }
}

/// What the parsers made of a response (errors as their display text).
#[derive(Debug)]
pub struct Parsed {
    pub responses: Option<usize>,
    pub capabilities: Result<Vec<String>, String>,
    pub permanent_flags: Option<Option<Vec<String>>>,
    pub selected: Option<(u32, u32, Option<u32>)>,
    pub list_names: Option<Vec<String>>,
    pub status_inbox: Option<Option<(Option<u32>, Option<u32>)>>,
    pub ids: Option<Vec<u32>>,
    pub fetches: Option<Vec<FetchSummary>>,
    pub copyuid: Option<Option<parse::CopyUid>>,
    pub appenduid: Option<Option<(u32, u32)>>,
    pub tagged_status: Option<Option<(&'static str, String)>>,
    /// Every error message produced (all must be sanitized text).
    pub errors: Vec<String>,
}

/// One FETCH item, reduced.
#[derive(Debug)]
pub struct FetchSummary {
    pub uid: Option<u32>,
    pub size: Option<u32>,
    pub internal_date: Option<String>,
    pub labels: Option<Vec<String>>,
    pub header_len: Option<usize>,
    pub body_len: Option<usize>,
    pub sections: Vec<String>,
}

/// UIDs a COPYUID may map from in [`parse_all`], and the most it may expand.
pub const COPYUID_ASKED: [u32; 6] = [1, 2, 3, 5, 8, 4_294_967_295];
pub const COPYUID_MAX: usize = 64;

/// Every parser of `parse` over the same bytes.
pub fn parse_all(data: &[u8]) -> Parsed {
    let mut errors = Vec::new();
    fn keep<T>(errors: &mut Vec<String>, r: Result<T, super::ImapError>) -> Option<T> {
        r.map_err(|e| errors.push(e.to_string())).ok()
    }
    let responses = keep(&mut errors, parse::responses(data).map(|r| r.len()));
    let permanent_flags = keep(&mut errors, parse::permanent_flags(data));
    let selected = keep(&mut errors, parse::selected(data).map(|s| (s.exists, s.uidvalidity, s.uidnext)));
    let list_names = keep(&mut errors, parse::list(data).map(|(entries, _)| entries.into_iter().map(|e| e.wire_name).collect()));
    let status_inbox = keep(&mut errors, parse::status(data, "inbox").map(|s| s.map(|v| (v.messages, v.uidnext))));
    let ids = keep(&mut errors, parse::ids(data));
    let fetches = keep(
        &mut errors,
        parse::fetches(data).map(|items| {
            items
                .into_iter()
                .map(|f| FetchSummary {
                    uid: f.uid,
                    size: f.size,
                    internal_date: f.internal_date,
                    labels: f.labels,
                    header_len: f.header.as_ref().map(Vec::len),
                    body_len: f.body.as_ref().map(Vec::len),
                    sections: f.sections.into_iter().map(|(name, _)| name).collect(),
                })
                .collect()
        }),
    );
    let copyuid = keep(&mut errors, parse::copyuid(data, &COPYUID_ASKED, COPYUID_MAX));
    let appenduid = keep(&mut errors, parse::appenduid(data));
    let tagged_status = keep(&mut errors, parse::tagged_status(data));
    let _ = keep(&mut errors, parse::list_count(data));
    let capabilities = parse::capabilities(data).map_err(|e| e.to_string());
    Parsed {
        responses,
        capabilities,
        permanent_flags,
        selected,
        list_names,
        status_inbox,
        ids,
        fetches,
        copyuid,
        appenduid,
        tagged_status,
        errors,
    }
}

/// `parse::threads` over captured lines.
pub fn threads(lines: &[Vec<u8>]) -> Result<Vec<Vec<u32>>, String> {
    parse::threads(lines).map_err(|e| e.to_string())
}
