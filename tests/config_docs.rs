//! The README's configuration reference must name every key the code accepts. The list of keys
//! comes from the code itself: serde's "unknown field" error lists every field a table expects.

use std::path::Path;

use mailmoat::config::Config;

const BASE: &str = r#"
[accounts.a]
email = "a@example.com"
[accounts.a.imap]
host = "imap.example.com"
username = "a"
password = { env = "X" }
[accounts.a.smtp]
host = "smtp.example.com"
"#;

/// The keys serde says a table accepts, from the error for an unknown key placed in it.
fn keys_of(table_header: Option<&str>) -> Vec<String> {
    let text = match table_header {
        None => format!("zzz_not_a_key = 1\n{BASE}"),
        Some(h) if BASE.contains(h) => BASE.replace(&format!("{h}\n"), &format!("{h}\nzzz_not_a_key = 1\n")),
        Some(h) => format!("{BASE}\n{h}\nzzz_not_a_key = 1\n"),
    };
    let err = Config::parse(&text, Path::new("/t.toml")).expect_err("unknown key must be refused").message;
    let list = err.split("expected one of").nth(1).unwrap_or_else(|| err.split("expected").nth(1).unwrap_or_else(|| panic!("{err}")));
    list.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

#[test]
fn every_config_key_is_documented_in_the_readme() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let tables = [
        None,
        Some("[accounts.a]"),
        Some("[accounts.a.imap]"),
        Some("[accounts.a.smtp]"),
        Some("[limits]"),
        Some("[audit]"),
        Some("[rate_limits]"),
        Some("[circuit_breaker]"),
    ];
    let mut missing = Vec::new();
    let mut total = 0;
    for t in tables {
        let keys = keys_of(t);
        assert!(!keys.is_empty(), "no keys found for {t:?}");
        for k in keys {
            total += 1;
            // Documented means: the key appears as code, `key`, or as `key =` in the example.
            if !readme.contains(&format!("`{k}`")) && !readme.contains(&format!("{k} = ")) {
                missing.push(format!("{}{k}", t.map(|h| format!("{h} ")).unwrap_or_default()));
            }
        }
    }
    assert!(total > 50, "only {total} keys found");
    assert!(missing.is_empty(), "undocumented config keys: {missing:?}");
}
