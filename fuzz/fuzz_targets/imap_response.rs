//! Fuzzes mailmoat's handling of IMAP server bytes: any bytes as what a server sends, through
//! the tap (line and literal framing, 8-bit status text, `* THREAD` capture) and then every
//! response parser in `src/imap/parse.rs` (imap-proto underneath), and the THREAD parser over
//! the captured lines.
//!
//! Input: byte 0 = flags (bit 0: capture `* THREAD` lines), bytes 1..4 = the sizes of the pieces
//! the "socket" delivers, byte 4 = the size of the crate's reads; the rest is the stream.
//!
//! Checks: nothing panics; without capture the tap passes exactly as many bytes as it got, each
//! unchanged or rewritten by one of its documented rules (8-bit to `?` or DEL, `(` or SP to NUL); with capture it never adds bytes and every lifted
//! line is a whole `* THREAD` line; the result does not depend on how the stream was cut; what
//! recording saw is what the crate saw; error texts, status texts, dates and labels carry no
//! control characters; COPYUID maps only UIDs that were asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailmoat::imap::fuzz_api::{self, COPYUID_ASKED};

fn clean(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 5 {
        return;
    }
    let capture = input[0] & 1 == 1;
    let steps = [input[1] as usize, input[2] as usize, input[3] as usize];
    let read_size = 1 + input[4] as usize * 64;
    let data = &input[5..];

    let cut = fuzz_api::tap_stream(data, &steps, read_size, capture);
    let whole = fuzz_api::tap_stream(data, &[], 64 * 1024, capture);
    assert_eq!(cut.passed, whole.passed, "tap output depends on how the stream was cut");
    assert_eq!(cut.thread_lines, whole.thread_lines, "captured lines depend on how the stream was cut");
    assert_eq!(cut.recorded, cut.passed, "recording differs from what the crate read");

    let out = &cut.passed;
    if capture {
        let lifted: usize = cut.thread_lines.iter().map(Vec::len).sum();
        assert!(out.len() + lifted <= data.len(), "the tap added bytes");
        for line in &cut.thread_lines {
            // `* THREAD` then SP or CR (`* THREAD\r\n` is the legal empty answer).
            assert!(
                line.len() >= 10 && line[..8].eq_ignore_ascii_case(b"* THREAD") && matches!(line[8], b' ' | b'\r'),
                "lifted a line that is not * THREAD"
            );
            assert!(line.ends_with(b"\n"), "lifted an incomplete line");
        }
    } else {
        assert!(cut.thread_lines.is_empty());
        assert_eq!(out.len(), data.len(), "the tap changed the length of the stream");
        // The only rewrites (src/imap/tap.rs): 8-bit bytes in status text to `?`, in LIST/LSUB
        // lines to DEL; a `(` too deep or a space after too many list items to NUL.
        for (a, b) in data.iter().zip(out) {
            let allowed = a == b || (*a >= 0x80 && (*b == b'?' || *b == 0x7f)) || (matches!(*a, b'(' | b' ') && *b == 0);
            assert!(allowed, "the tap rewrote a byte it has no rule for");
        }
    }

    let parsed = fuzz_api::parse_all(out);
    for e in &parsed.errors {
        assert!(clean(e), "control character in an error");
    }
    if let Err(e) = &parsed.capabilities {
        assert!(clean(e));
    }
    if let Some(Some((_, text))) = &parsed.tagged_status {
        assert!(clean(text), "control character in a status text");
    }
    if let Some(items) = &parsed.fetches {
        for f in items {
            if let Some(d) = &f.internal_date {
                assert!(clean(d) && !d.is_empty() && d.chars().count() <= 40);
            }
            for l in f.labels.iter().flatten() {
                assert!(clean(l), "control character in a label");
            }
        }
    }
    if let Some(Some((_, pairs))) = &parsed.copyuid {
        for (old, _) in pairs {
            assert!(COPYUID_ASKED.contains(old), "COPYUID mapped a UID that was not asked for");
        }
    }
    if let Ok(threads) = fuzz_api::threads(&cut.thread_lines) {
        assert!(threads.len() <= cut.thread_lines.iter().map(Vec::len).sum::<usize>());
    }
    // The raw bytes straight into the parsers too (a server whose stream the tap left alone).
    let _ = fuzz_api::parse_all(data);
});
