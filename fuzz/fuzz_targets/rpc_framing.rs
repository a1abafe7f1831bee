//! Fuzzes JSON-RPC framing and classification: any bytes as stdin, split into bounded lines,
//! each classified. Nothing may panic, no line may exceed the bound, and every invalid message
//! must carry a JSON-RPC error code from the documented set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailmoat::rpc::{self, Incoming, LineRead};

fuzz_target!(|data: &[u8]| {
    let max = 1 + (data.first().copied().unwrap_or(64) as usize) * 16;
    let mut r = std::io::BufReader::with_capacity(7, data);
    let mut buf = Vec::new();
    loop {
        match rpc::read_line_bounded(&mut r, max, &mut buf) {
            Ok(LineRead::Eof) => break,
            Ok(LineRead::TooLong) => assert!(buf.len() <= max),
            Ok(LineRead::Line) => {
                assert!(buf.len() <= max);
                if let Incoming::Invalid { error, .. } = rpc::parse_line(&buf) {
                    assert!(error.code == rpc::PARSE_ERROR || error.code == rpc::INVALID_REQUEST);
                }
            }
            Err(_) => break,
        }
    }
});
