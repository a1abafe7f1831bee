//! Fuzzes the HTML firewall alone: tokenizer, tree model, CSS cascade and visibility.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailmoat::content::html_to_text;

fuzz_target!(|data: &[u8]| {
    let html = String::from_utf8_lossy(data);
    let text = html_to_text(&html);
    assert!(!text.contains("<<<") && !text.contains(">>>"));
});
