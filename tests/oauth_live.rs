//! OAuth 2.0 (SASL XOAUTH2) against a real Dovecot and Postfix: Dovecot's `oauth2` passdb asks
//! a token-info endpoint run by this test whether a token is valid, so the test decides which
//! tokens the "provider" accepts, and counts both the endpoint's lookups and the runs of the
//! token helper (`oauth2_token = { command = [...] }`).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::dovecot::{self as dc, Dovecot, Seed};
use common::mcp::{self, Client, MODERN};
use common::smtpd::{SmtpMode, Smtpd};
use serde_json::{json, Value};

/// The provider's token-info endpoint: which tokens are valid, and how often each was asked.
#[derive(Clone, Default)]
struct Provider {
    valid: Arc<Mutex<Vec<String>>>,
    lookups: Arc<Mutex<BTreeMap<String, u32>>>,
}

impl Provider {
    /// Serves `GET /tokeninfo?access_token=T` on loopback; returns the port.
    fn start(&self) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = self.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let me = me.clone();
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).is_err() {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" || h == "\n" {
                            break;
                        }
                    }
                    let token = request_line
                        .split_whitespace()
                        .nth(1)
                        .and_then(|path| path.split_once("access_token="))
                        .map(|(_, t)| t.to_string())
                        .unwrap_or_default();
                    *me.lookups.lock().unwrap().entry(token.clone()).or_default() += 1;
                    let ok = me.valid.lock().unwrap().contains(&token);
                    let (status, body) = if ok {
                        ("200 OK", format!("{{\"email\":\"{}\",\"active\":true}}", dc::USER))
                    } else {
                        ("401 Unauthorized", "{\"error\":\"invalid_token\"}".to_string())
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        port
    }

    fn accept(&self, token: &str) {
        self.valid.lock().unwrap().push(token.to_string());
    }

    fn revoke(&self, token: &str) {
        self.valid.lock().unwrap().retain(|t| t != token);
    }

    fn lookups(&self, token: &str) -> u32 {
        self.lookups.lock().unwrap().get(token).copied().unwrap_or(0)
    }
}

/// The token helper's state: the token it prints next, and a log of its runs.
struct Helper {
    dir: PathBuf,
}

impl Helper {
    fn new(dir: &Path) -> Helper {
        let dir = dir.join("oauth-helper");
        std::fs::create_dir_all(&dir).unwrap();
        Helper { dir }
    }

    fn set_token(&self, token: &str) {
        std::fs::write(self.dir.join("token"), format!("{token}\n")).unwrap();
    }

    fn runs(&self) -> usize {
        std::fs::read_to_string(self.dir.join("runs")).map_or(0, |s| s.lines().count())
    }

    /// The TOML for `oauth2_token`: a shell one-liner that logs its run and prints the token.
    fn config(&self) -> String {
        let d = self.dir.display();
        format!("oauth2_token = {{ command = [\"/bin/sh\", \"-c\", \"echo run >> {d}/runs; cat {d}/token\"] }}")
    }
}

/// Dovecot with XOAUTH2 besides PLAIN, validating tokens at `provider`'s endpoint.
fn dovecot_with_oauth(provider_port: u16) -> (Dovecot, PathBuf) {
    // Dovecot's auth process reads this file; it must be readable by its unprivileged user.
    let dir = std::env::temp_dir().join(format!("mm-oauth-{}-{provider_port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = dir.join("oauth2.conf.ext");
    std::fs::write(
        &conf,
        format!("tokeninfo_url = http://127.0.0.1:{provider_port}/tokeninfo?access_token=\nusername_attribute = email\n"),
    )
    .unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let extra = format!(
        "auth_mechanisms = plain login xoauth2\npassdb {{\n  driver = oauth2\n  mechanisms = xoauth2\n  args = {}\n}}\n",
        conf.display()
    );
    (Dovecot::start_with(&Seed::Standard, &extra), dir)
}

/// A provider, a Dovecot that asks it, a token helper, and a readonly config using the helper.
fn readonly_oauth_env() -> (Provider, Dovecot, PathBuf, Helper, PathBuf) {
    let provider = Provider::default();
    let port = provider.start();
    let (dc, tmp) = dovecot_with_oauth(port);
    let helper = Helper::new(&dc.dir);
    let config = dc.dir.join("mailmoat.toml");
    std::fs::write(&config, with_token(&dc.mailmoat_config("readonly"), &dc, &helper)).unwrap();
    (provider, dc, tmp, helper, config)
}

/// `text` (a mailmoat config) with the IMAP password replaced by the helper's `oauth2_token`.
fn with_token(text: &str, dc: &Dovecot, helper: &Helper) -> String {
    let pw = format!("password = {{ file = {:?} }}", dc.password_file.to_string_lossy());
    assert!(text.contains(&pw), "{text}");
    text.replace(&pw, &helper.config())
}

fn kick(dc: &Dovecot) {
    let conf = dc.dir.join("dc").join("dovecot.conf");
    let out = std::process::Command::new("doveadm").arg("-c").arg(&conf).args(["kick", &dc.user]).output().unwrap();
    assert!(out.status.success(), "doveadm kick: {}", String::from_utf8_lossy(&out.stderr));
    // Give the server a moment to close the sockets.
    thread::sleep(Duration::from_millis(300));
}

fn ok(result: &Value) -> &Value {
    assert_eq!(result["isError"], json!(false), "tool failed: {result}");
    &result["structuredContent"]
}

/// No token in anything the server said, at the most verbose log level (which did log).
fn assert_no_token(c: &Client, tokens: &[&str]) {
    let stderr = c.stderr.lock().unwrap().clone();
    assert!(stderr.contains("mailmoat: debug: secret: reading command /bin/sh"), "{stderr}");
    let all = serde_json::to_string(&c.transcript).unwrap() + &stderr;
    for t in tokens {
        assert!(!all.contains(t), "token {t} leaked");
    }
}

#[test]
fn imap_xoauth2_token_is_cached_until_rejected_then_fetched_once() {
    let (provider, dc, tmp, helper, config) = readonly_oauth_env();
    // Generous breaker: this test is about the token, not about failures in a row.
    let t1 = "tok1-CANARY-5d1e";
    let t2 = "tok2-CANARY-77ab";
    provider.accept(t1);
    helper.set_token(t1);

    let mut c = Client::spawn(&config, MODERN, &[("MAILMOAT_LOG", "debug")]);
    let r = c.call("list_folders", json!({}));
    assert!(ok(&r)["meta"]["folders"].as_array().unwrap().iter().any(|f| f["name"] == "INBOX"), "{r}");
    assert_eq!((helper.runs(), provider.lookups(t1)), (1, 1));

    // A new login (the server dropped the session) reuses the cached token: no helper run.
    kick(&dc);
    ok(&c.call("list_folders", json!({})));
    assert_eq!((helper.runs(), provider.lookups(t1)), (1, 2));
    assert!(c.stderr.lock().unwrap().contains("access token for command /bin/sh from the cache"));

    // The provider expires the token; the helper has a new one. The cached token is refused
    // once, the helper runs once, and the login with the new token succeeds.
    provider.revoke(t1);
    provider.accept(t2);
    helper.set_token(t2);
    kick(&dc);
    ok(&c.call("list_folders", json!({})));
    assert_eq!((helper.runs(), provider.lookups(t1), provider.lookups(t2)), (2, 3, 1));

    // Revoked again, and the helper has nothing new: one refusal of the cached token, one
    // helper run that yields the same token, and no second attempt with it.
    provider.revoke(t2);
    kick(&dc);
    let r = c.call("list_folders", json!({}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("auth_failed"), "{r}");
    assert_eq!((helper.runs(), provider.lookups(t2)), (3, 2));
    // The account is now blocked: no more logins, no more helper runs.
    let r = c.call("list_folders", json!({}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("auth_failed"), "{r}");
    assert_eq!((helper.runs(), provider.lookups(t2)), (3, 2));
    assert_no_token(&c, &[t1, t2]);
    drop(c);

    // `check` says how it authenticated, and never shows the token.
    provider.accept(t2);
    let out =
        std::process::Command::new(mcp::bin()).args(["check", "--config"]).arg(&config).env("MAILMOAT_LOG", "debug").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("XOAUTH2"), "{stdout}");
    assert!(!stdout.contains(t2) && !String::from_utf8_lossy(&out.stderr).contains(t2));
    let _ = std::fs::remove_dir_all(tmp);
}

#[test]
fn a_fresh_token_that_is_refused_is_not_retried() {
    let (provider, _dc, tmp, helper, config) = readonly_oauth_env();
    helper.set_token("never-valid-CANARY-0c3f");
    let mut c = Client::spawn(&config, MODERN, &[("MAILMOAT_LOG", "debug")]);
    let r = c.call("list_folders", json!({}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("auth_failed"), "{r}");
    assert_eq!((helper.runs(), provider.lookups("never-valid-CANARY-0c3f")), (1, 1));
    assert_no_token(&c, &["never-valid-CANARY-0c3f"]);
    let _ = std::fs::remove_dir_all(tmp);
}

#[test]
fn a_server_without_xoauth2_is_refused_before_the_helper_runs() {
    // The standard test Dovecot offers PLAIN and LOGIN only.
    let dc = Dovecot::start(&Seed::Standard);
    let helper = Helper::new(&dc.dir);
    helper.set_token("unused-CANARY-19aa");
    let config = dc.dir.join("mailmoat.toml");
    std::fs::write(&config, with_token(&dc.mailmoat_config("readonly"), &dc, &helper)).unwrap();
    let mut c = Client::spawn(&config, MODERN, &[("MAILMOAT_LOG", "debug")]);
    let r = c.call("list_folders", json!({}));
    assert_eq!(mcp::error_code(&r).as_deref(), Some("unsupported"), "{r}");
    assert!(mcp::text(&r).contains("does not offer AUTH=XOAUTH2"), "{r}");
    assert_eq!(helper.runs(), 0);
}

#[test]
fn smtp_xoauth2_sends_with_the_shared_cached_token() {
    let provider = Provider::default();
    let port = provider.start();
    let (dc, tmp) = dovecot_with_oauth(port);
    let smtp = Smtpd::start(&dc);
    let helper = Helper::new(&dc.dir);
    let t1 = "smtp-tok1-CANARY-4b2c";
    let t2 = "smtp-tok2-CANARY-9e01";
    provider.accept(t1);
    helper.set_token(t1);
    let config = dc.dir.join("mailmoat.toml");
    // No smtp password: SMTP uses the IMAP credential, the same token source.
    let smtp_pw = format!("password = {{ file = {:?} }}\n", smtp.password_file.to_string_lossy());
    let text = smtp.mailmoat_config(&dc, "full", SmtpMode::Implicit);
    assert!(text.contains(&smtp_pw), "{text}");
    let text = with_token(&text.replace(&smtp_pw, ""), &dc, &helper);
    std::fs::write(&config, format!("confirm = \"none\"\n{text}")).unwrap();

    let mut c = Client::spawn(&config, MODERN, &[("MAILMOAT_LOG", "debug")]);
    // IMAP first: the token is fetched once and shared with SMTP (the same source).
    ok(&c.call("list_folders", json!({})));
    let r = c.call("send_email", json!({"to": ["bob@example.test"], "subject": "oauth one", "body_text": "hi"}));
    let mid = ok(&r)["meta"]["message_id"].as_str().unwrap().to_string();
    smtp.wait_for_message(&Smtpd::folder_for("bob@example.test"), &mid);
    assert_eq!((helper.runs(), provider.lookups(t1)), (1, 2));

    // The token expires: SMTP's refusal triggers exactly one helper run and one retry.
    provider.revoke(t1);
    provider.accept(t2);
    helper.set_token(t2);
    let r = c.call("send_email", json!({"to": ["bob@example.test"], "subject": "oauth two", "body_text": "hi"}));
    let mid = ok(&r)["meta"]["message_id"].as_str().unwrap().to_string();
    smtp.wait_for_message(&Smtpd::folder_for("bob@example.test"), &mid);
    assert_eq!((helper.runs(), provider.lookups(t1), provider.lookups(t2)), (2, 3, 1));
    assert_no_token(&c, &[t1, t2]);
    let audit = std::fs::read_to_string(dc.dir.join("audit.jsonl")).unwrap();
    assert!(!audit.contains(t1) && !audit.contains(t2));
    let _ = std::fs::remove_dir_all(tmp);
}
