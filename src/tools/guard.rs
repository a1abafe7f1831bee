//! What wraps every tool call: the circuit breaker and rate limits before it, and the audit log
//! around it (the intent before acting, durable for anything that changes mail; the outcome after).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use super::{CallCtx, Registry, ToolError};
use crate::audit::{AuditLog, Event, Record};
use crate::config::Config;
use crate::ratelimit::blocks::fingerprint_hex;
use crate::ratelimit::{self, AuthBlocks, CircuitBreaker, FailureOutcome, RateLimiter, ToolClass};
use crate::secret::SecretSource;

/// Error codes that mean the server could not be reached or spoke nonsense.
const CONNECTION_FAILURES: [&str; 6] = ["connect_failed", "tls_error", "timeout", "protocol_error", "pin_mismatch", "starttls_unavailable"];

/// Everything the guard needs to know about one call, read from its raw arguments.
pub struct CallInfo<'a> {
    tool: &'a str,
    class: ToolClass,
    account: Option<String>,
    ids: Vec<String>,
    folders: Vec<String>,
    recipients: Vec<String>,
    subject: Option<String>,
    confirmed_retry: bool,
    request_id: &'a Value,
    client: Option<(&'a str, &'a str)>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).take(200).collect(),
        _ => vec![],
    }
}

impl<'a> CallInfo<'a> {
    pub fn new(reg: &Registry, tool: &'a str, args: &Value, ctx: &'a CallCtx) -> CallInfo<'a> {
        let ids: Vec<String> = strings(args.get("id")).into_iter().chain(strings(args.get("ids"))).collect();
        let account = args
            .get("account")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| ids.iter().find_map(|i| super::ids::MessageRef::decode(i)).map(|r| r.account))
            .or_else(|| (reg.config().accounts.len() == 1).then(|| reg.config().accounts.keys().next().cloned()).flatten());
        let mut folders = Vec::new();
        for key in ["folder", "to_folder", "name", "from"] {
            folders.extend(strings(args.get(key)));
        }
        let mut recipients = Vec::new();
        match args.get("to") {
            // rename_folder's `to` is a folder; the compose tools' `to` is a list of addresses.
            Some(Value::String(s)) => folders.push(s.clone()),
            other => recipients.extend(strings(other)),
        }
        recipients.extend(strings(args.get("cc")));
        recipients.extend(strings(args.get("bcc")));
        CallInfo {
            tool,
            class: ratelimit::class_of(tool),
            account,
            ids,
            folders,
            recipients,
            subject: args.get("subject").and_then(Value::as_str).map(str::to_string),
            confirmed_retry: args.get(super::confirm::TOKEN_ARG).is_some() || ctx.request_state.is_some(),
            request_id: ctx.request_id,
            client: ctx.client,
        }
    }

    fn record(&self, event: Event) -> Record {
        let mut r = Record::new(event).tool(self.tool).request_id(self.request_id.clone());
        if let Some(a) = &self.account {
            r = r.account(a.clone());
        }
        if let Some((name, version)) = self.client {
            r = r.client(name, version);
        }
        if !self.ids.is_empty() {
            r = r.message_ids(self.ids.iter().cloned());
        }
        if !self.folders.is_empty() {
            r = r.folders(self.folders.iter().cloned());
        }
        if !self.recipients.is_empty() {
            r = r.recipients(self.recipients.iter().cloned());
        }
        if let Some(s) = &self.subject {
            r = r.subject(s.clone());
        }
        r
    }
}

/// The audit log, the rate limiter and the circuit breaker of one server process.
pub struct Guard {
    audit: Option<Arc<AuditLog>>,
    limiter: RateLimiter,
    breaker: CircuitBreaker,
    /// What identifies "the same credentials" for the breaker's auth block.
    credentials: Credentials,
    /// Where auth blocks outlive the process (beside the audit log), if auditing is on.
    blocks: Option<AuthBlocks>,
    /// Accounts with a block on disk, so that a success lifts it without reading the file.
    persisted: Mutex<BTreeSet<String>>,
}

/// The credential sources of every account and the config file, for fingerprints.
pub struct Credentials {
    config_path: std::path::PathBuf,
    sources: BTreeMap<String, Vec<SecretSource>>,
}

impl Credentials {
    pub fn of(cfg: &Config) -> Credentials {
        let sources = cfg
            .accounts
            .iter()
            .map(|(n, a)| {
                let mut v = vec![a.imap.credential.source().clone()];
                v.extend(a.smtp.iter().map(|s| s.credential.source().clone()));
                (n.clone(), v)
            })
            .collect();
        Credentials { config_path: cfg.path.clone(), sources }
    }

    /// Identifies the credentials in use without reading the secret: the config file (path and
    /// mtime) and each secret's source (and, for a file, its mtime). A refused login stays
    /// blocked until one of these changes. Computed per call: a few `stat`s.
    pub fn fingerprint(&self, account: &str) -> Option<[u8; 32]> {
        let sources = self.sources.get(account)?;
        let mtime = std::fs::metadata(&self.config_path).ok().and_then(|m| m.modified().ok());
        let mut id = String::new();
        for source in sources {
            id.push_str(&source.describe());
            if let SecretSource::File(p) = source {
                if let Some(t) = std::fs::metadata(p).ok().and_then(|m| m.modified().ok()) {
                    id.push_str(&format!("@{t:?}"));
                }
            }
            id.push('\0');
        }
        Some(ratelimit::secret_fingerprint(&self.config_path, mtime, id.as_bytes()))
    }
}

/// Where auth blocks are kept: beside the audit log, when there is one.
pub fn auth_blocks(cfg: &Config) -> Option<AuthBlocks> {
    let path = cfg.audit.resolved_path().filter(|_| cfg.audit.enabled)?;
    Some(AuthBlocks::in_dir(path.parent()?))
}

impl Guard {
    pub fn new(cfg: &Config, audit: Option<Arc<AuditLog>>) -> Guard {
        let credentials = Credentials::of(cfg);
        let breaker = CircuitBreaker::new(cfg.circuit_breaker.clone());
        let blocks = auth_blocks(cfg);
        let mut persisted = BTreeSet::new();
        if let Some(b) = &blocks {
            match b.load() {
                Ok(on_disk) => {
                    for (account, block) in on_disk {
                        // Refused before and nothing changed since: start blocked. Otherwise
                        // the entry is stale and the first successful login removes it.
                        if let Some(fp) = credentials.fingerprint(&account).filter(|fp| fingerprint_hex(fp) == block.fingerprint) {
                            breaker.record_auth_failure(&account, fp);
                        }
                        persisted.insert(account);
                    }
                }
                Err(e) => eprintln!("mailmoat: warning: {e}"),
            }
        }
        Guard { audit, limiter: RateLimiter::new(cfg.rate_limits.clone()), breaker, credentials, blocks, persisted: Mutex::new(persisted) }
    }

    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.as_deref()
    }

    fn write(&self, rec: Record, durable: bool) -> Result<(), ToolError> {
        let Some(log) = &self.audit else { return Ok(()) };
        let res = if durable { log.append_durable(rec) } else { log.append(rec) };
        res.map(|_| ()).map_err(|e| ToolError::new("audit_unavailable", format!("the audit log cannot be written ({e}); nothing was done")))
    }

    /// Before the tool runs: breaker, rate limit, and the intent record.
    pub fn before(&self, call: &CallInfo) -> Result<(), ToolError> {
        if let Some(account) = &call.account {
            // list_accounts never talks to a server, so an open circuit does not concern it.
            let fp = self.credentials.fingerprint(account).filter(|_| call.tool != "list_accounts");
            if let Some(fp) = fp {
                if let Err(open) = self.breaker.allow(account, &fp) {
                    let mut e = ToolError::new(open.code(), open.to_string());
                    e.retry_after_ms = open.retry_after_ms;
                    let _ = self.write(call.record(Event::CircuitOpen).error(open.code()), false);
                    return Err(e);
                }
            }
            // Sends are counted when they really go out (after any confirmation), in `check_send`.
            if call.class != ToolClass::Send {
                self.check_rate(account, call.tool, call.class).inspect_err(|e| {
                    let _ = self.write(call.record(Event::RateLimited).error("rate_limited").detail(e.message.clone()), false);
                })?;
            }
        }
        let durable = call.class != ToolClass::Read;
        match self.write(call.record(Event::ToolCall), durable) {
            Err(e) if durable => Err(e),
            Err(e) => {
                eprintln!("mailmoat: warning: {}", e.message);
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    fn check_rate(&self, account: &str, tool: &str, class: ToolClass) -> Result<(), ToolError> {
        self.limiter.check(account, tool, class).map_err(|limited| {
            let mut e = ToolError::new("rate_limited", limited.to_string());
            e.retry_after_ms = Some(limited.retry_after_ms);
            e
        })
    }

    fn persist_block(&self, account: &str, fp: &[u8; 32]) {
        let Some(blocks) = &self.blocks else { return };
        match blocks.add(account, fp, std::time::SystemTime::now()) {
            Ok(()) => {
                crate::info!("account {account}: authentication block recorded in {}", blocks.path().display());
                self.persisted.lock().unwrap_or_else(PoisonError::into_inner).insert(account.to_string());
            }
            Err(e) => eprintln!("mailmoat: warning: the authentication block is kept in memory only: {e}"),
        }
    }

    fn lift_persisted_block(&self, account: &str) {
        let Some(blocks) = &self.blocks else { return };
        if !self.persisted.lock().unwrap_or_else(PoisonError::into_inner).remove(account) {
            return;
        }
        match blocks.remove(account) {
            Ok(()) => crate::info!("account {account}: authentication block lifted"),
            Err(e) => eprintln!("mailmoat: warning: {e}"),
        }
    }

    /// Counts one message about to be sent against the account's send limits.
    pub fn check_send(&self, account: &str, tool: &str) -> Result<(), ToolError> {
        self.check_rate(account, tool, ToolClass::Send).inspect_err(|e| {
            let _ = self
                .write(Record::new(Event::RateLimited).account(account).tool(tool).error("rate_limited").detail(e.message.clone()), false);
        })
    }

    /// After the tool ran: breaker bookkeeping and the outcome record.
    pub fn after(&self, call: &CallInfo, outcome: &Result<super::Output, ToolError>, took: Duration) {
        let durable = call.class != ToolClass::Read;
        let code = match outcome {
            Ok(_) => None,
            Err(e) if e.ready.is_some() => Some("confirmation_requested"),
            Err(e) => Some(e.code),
        };
        crate::info!(
            "tool {} account {} -> {} in {} ms",
            call.tool,
            call.account.as_deref().unwrap_or("-"),
            code.unwrap_or("ok"),
            took.as_millis()
        );
        if let Some(account) = &call.account {
            match code {
                None => {
                    self.breaker.record_success(account);
                    self.lift_persisted_block(account);
                }
                Some("auth_failed") => {
                    if let Some(fp) = self.credentials.fingerprint(account) {
                        if self.breaker.record_auth_failure(account, fp) {
                            self.persist_block(account, &fp);
                            let _ = self.write(call.record(Event::AuthFailure).error("auth_failed"), true);
                            let _ = self.write(
                                call.record(Event::CircuitOpen).detail("login refused: blocked until the config or secret changes"),
                                true,
                            );
                        }
                    }
                }
                Some(c) if CONNECTION_FAILURES.contains(&c) => {
                    if let FailureOutcome::Opened { open_ms } = self.breaker.record_failure(account) {
                        let _ = self
                            .write(call.record(Event::CircuitOpen).detail(format!("open for {open_ms} ms after repeated failures")), true);
                    }
                }
                Some(_) => {}
            }
        }
        let rec = match code {
            // Already recorded by `before`.
            Some("rate_limited") | Some("circuit_open") => return,
            Some("posture_denied") => call.record(Event::Denied).error("posture_denied"),
            Some("confirmation_requested") => call.record(Event::ConfirmationRequested),
            Some(c @ ("confirmation_refused" | "confirmation_invalid" | "confirmation_unavailable")) => {
                call.record(Event::ConfirmationRefused).error(c)
            }
            Some(c) => call.record(Event::ToolResult).error(c).duration(took),
            None => {
                if call.confirmed_retry {
                    let _ = self.write(call.record(Event::ConfirmationGranted), durable);
                }
                call.record(Event::ToolResult).ok().duration(took)
            }
        };
        if let Err(e) = self.write(rec, durable) {
            eprintln!("mailmoat: warning: {}", e.message);
        }
    }
}
