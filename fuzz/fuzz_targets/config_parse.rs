//! Fuzzes configuration parsing: any text as a config file. Nothing may panic, and an error
//! message never quotes the file (a password pasted in the wrong place must not leak): a
//! canary planted in the input never appears in the error text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailmoat::config::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let with_canary = format!("{text}\npassword = \"CANARYFUZZ\"\n{text}");
    for t in [text.as_ref(), with_canary.as_str()] {
        if let Err(e) = Config::parse(t, std::path::Path::new("/fuzz.toml")) {
            assert!(!e.to_string().contains("CANARYFUZZ"), "{e}");
        }
    }
});
