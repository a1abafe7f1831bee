//! A refused login blocks its account across restarts until the config or the secret changes,
//! and `mailmoat check` says so (and is the one deliberate retry). Real Dovecot; its log counts
//! the login attempts that really reached it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::dovecot::{Dovecot, Seed};
use common::mcp::{self, Client, MODERN};
use serde_json::json;

/// Refused logins Dovecot has seen so far.
fn refusals(dc: &Dovecot) -> usize {
    std::fs::read_to_string(&dc.log_path).unwrap_or_default().matches("Password mismatch").count()
}

fn write_password(dc: &Dovecot, password: &str) {
    std::fs::write(&dc.password_file, format!("{password}\n")).unwrap();
}

fn check(config: &Path) -> (bool, String) {
    let out = Command::new(mcp::bin()).args(["check", "--config"]).arg(config).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

fn list_folders_code(config: &Path) -> Option<String> {
    let mut c = Client::spawn(config, MODERN, &[]);
    let r = c.call("list_folders", json!({}));
    let code = mcp::error_code(&r);
    assert!(code.is_some() || r["isError"] == json!(false), "{r}");
    c.close_stdin();
    assert!(c.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()));
    code
}

#[test]
fn a_refused_login_stays_blocked_across_restarts_until_the_secret_changes() {
    let dc = Dovecot::start(&Seed::Standard);
    let config = dc.dir.join("mailmoat.toml");
    dc.write_mailmoat_config(&config, "readonly");
    let blocks = dc.dir.join("auth-blocks.json");
    write_password(&dc, "wrong-CANARY-a41f");

    // First server: one refused login, and the block is written beside the audit log.
    assert_eq!(list_folders_code(&config).as_deref(), Some("auth_failed"));
    assert_eq!(refusals(&dc), 1);
    let on_disk = std::fs::read_to_string(&blocks).unwrap();
    assert!(on_disk.contains("\"test\"") && !on_disk.contains("CANARY"), "{on_disk}");

    // A restarted server starts blocked: no login reaches the server.
    for _ in 0..3 {
        assert_eq!(list_folders_code(&config).as_deref(), Some("auth_failed"));
    }
    assert_eq!(refusals(&dc), 1);

    // check reports the block, tries once (the deliberate retry), and keeps the block.
    let (ok, out) = check(&config);
    assert!(!ok, "{out}");
    assert!(
        out.contains("  blocked since ") && out.contains("will not log in to this account until the config file or the secret changes"),
        "{out}"
    );
    assert!(out.contains("FAILED (auth_failed)") && !out.contains("CANARY"), "{out}");
    assert_eq!(refusals(&dc), 2);
    assert_eq!(list_folders_code(&config).as_deref(), Some("auth_failed"));
    assert_eq!(refusals(&dc), 2);

    // The secret changes (new password file): the next server logs in and lifts the block.
    std::thread::sleep(Duration::from_millis(20));
    write_password(&dc, &dc.password);
    assert_eq!(list_folders_code(&config), None);
    assert!(!std::fs::read_to_string(&blocks).unwrap().contains("\"test\""));
    let (ok, out) = check(&config);
    assert!(ok && !out.contains("blocked since"), "{out}");
}

#[test]
fn check_lifts_a_block_when_the_login_works_again() {
    let dc = Dovecot::start(&Seed::Standard);
    let config = dc.dir.join("mailmoat.toml");
    dc.write_mailmoat_config(&config, "readonly");
    write_password(&dc, "wrong-CANARY-77c0");
    assert_eq!(list_folders_code(&config).as_deref(), Some("auth_failed"));
    assert_eq!(refusals(&dc), 1);

    // The password was reset at the provider to what the file says (the secret itself did not
    // change, so serve stays blocked); a human runs check, which succeeds and lifts the block.
    let real = dc.dir.join("dc").join("passwd");
    let text = std::fs::read_to_string(&real).unwrap().replace(&dc.password, "wrong-CANARY-77c0");
    std::fs::write(&real, text).unwrap();
    assert_eq!(list_folders_code(&config).as_deref(), Some("auth_failed"));
    assert_eq!(refusals(&dc), 1);
    let (ok, out) = check(&config);
    assert!(ok, "{out}");
    assert!(out.contains("  blocked since ") && out.contains("authenticated with PLAIN"), "{out}");
    assert_eq!(list_folders_code(&config), None);
    let (ok, out) = check(&config);
    assert!(ok && !out.contains("blocked since"), "{out}");
}
