//! IMAP: sessions, the connection pool, and the read commands, guarding the `imap` crate.
//!
//! Every byte from the mail server is hostile input. This module owns every call into the
//! `imap` crate and designs around its measured hazards:
//!
//! - It sends some arguments unescaped (CR/LF injection) and does not encode mailbox names:
//!   we build every command ourselves from validated types (`args`) and only hand the crate
//!   finished command text.
//! - It can panic on server input and has no timeouts or response size cap: the socket sits
//!   under a guard (`guard`) that enforces a per-command deadline, byte budget and cancel flag,
//!   and every call runs under `catch_unwind`; any panic or I/O or protocol error discards the
//!   session.
//! - Its response loop fails on any untagged line imap-proto cannot parse (`* ESEARCH`,
//!   `* THREAD`): we never issue commands that produce them.
//! - Its typed parsers panic on legal input (`* NO [ALERT]` during SELECT): we parse the raw
//!   response ourselves (`parse`).
//!
//! Reading never changes the mailbox: folders are opened with EXAMINE and bodies are fetched
//! with BODY.PEEK and a partial range, so \Seen is never set and no fetch asks for more than a
//! limit.
//!
//! Architecture Invariant: nothing outside this module talks to an IMAP server, and nothing in
//! this module writes to stdout.

mod args;
mod conn;
mod error;
mod guard;
mod ops;
mod parse;
mod pool;
mod utf7;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use args::{ArgError, Date, MailboxName, SearchQuery};
pub use error::ImapError;
pub use pool::PoolStats;
pub use utf7::{decode_mutf7, encode_mutf7};

use crate::config;
use pool::Pool;

/// A cancel flag shared between a request and whoever may cancel it.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Per-call context: cancellation and progress reporting (`progress(done, total)`).
pub struct OpCtx<'a> {
    pub cancel: &'a CancelToken,
    pub progress: &'a (dyn Fn(u64, Option<u64>) + Sync),
}

/// Search result: all matching UIDs, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchResult {
    pub uidvalidity: u32,
    pub uidnext: Option<u32>,
    /// Messages in the folder.
    pub exists: u32,
    pub uids: Vec<u32>,
    /// `"date"` (server-side SORT by the Date header) or `"arrival"` (descending UID).
    pub sorted_by: &'static str,
}

/// One message's summary: flags, size, internal date and (the start of) its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub uid: u32,
    /// As the server spells them, e.g. `\Seen`, `$Label1`.
    pub flags: Vec<String>,
    pub size: u32,
    /// INTERNALDATE as sent (`09-Mar-2024 10:00:00 +0000`), sanitized.
    pub internal_date: Option<String>,
    /// At most `limits.max_header_bytes` of the raw header.
    pub header: Vec<u8>,
}

/// One message's raw bytes (at most `limits.max_message_bytes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedMessage {
    pub uid: u32,
    pub flags: Vec<String>,
    /// RFC822.SIZE: the full size, even when `raw` is truncated.
    pub size: u32,
    pub raw: Vec<u8>,
    pub truncated: bool,
}

/// One folder from LIST, with its STATUS counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderInfo {
    /// Decoded from modified UTF-7. An undecodable name is shown escaped and is not selectable.
    pub name: String,
    pub delimiter: Option<String>,
    /// `inbox`, `drafts`, `sent`, `trash`, `junk`, `archive`, `all` or `flagged`.
    pub role: Option<&'static str>,
    pub attributes: Vec<String>,
    pub selectable: bool,
    pub messages: Option<u32>,
    pub unseen: Option<u32>,
    pub uidvalidity: Option<u32>,
    pub uidnext: Option<u32>,
}

/// What `mailmoat check` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// native-tls does not expose the negotiated version; the minimum is enforced.
    pub tls: String,
    /// Lowercase hex SHA-256 of the server's leaf certificate (DER), for `pin_sha256`.
    pub cert_sha256: String,
    pub capabilities: Vec<String>,
    pub folder_count: usize,
    /// From the start of the TCP connect to the end of login.
    pub login_ms: u64,
}

/// The IMAP client of one account; owns that account's connection pool.
pub struct ImapClient {
    account: Arc<config::Account>,
    limits: Arc<config::Limits>,
    pool: Pool,
}

impl ImapClient {
    /// No network traffic happens until the first operation.
    pub fn new(account: Arc<config::Account>, limits: Arc<config::Limits>) -> ImapClient {
        let pool = Pool::new(account.clone(), limits.clone());
        ImapClient { account, limits, pool }
    }

    pub fn account(&self) -> &config::Account {
        &self.account
    }

    /// Pool counters (connects, reuses, discards, ...).
    pub fn stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// For `mailmoat check`: a fresh connection (not pooled), login, capabilities, LIST count,
    /// logout.
    pub fn check(&self) -> Result<CheckReport, ImapError> {
        let run = || -> Result<CheckReport, ImapError> {
            let mut c = conn::connect(&self.account, &self.limits, None)?;
            let data = c.run("list", &args::list_command(false, false), None)?;
            let folder_count = catch_unwind(|| parse::list_count(&data)).unwrap_or(Err(ImapError::Panicked { context: "list" }))?;
            // Best effort: the report is complete whether or not the server says goodbye.
            let _ = c.run("logout", "LOGOUT", None);
            Ok(CheckReport {
                tls: "TLS 1.2+ (enforced)".to_string(),
                cert_sha256: error::hex(&c.cert_sha256),
                capabilities: c.caps.clone(),
                folder_count,
                login_ms: c.login_ms,
            })
        };
        catch_unwind(AssertUnwindSafe(run)).unwrap_or(Err(ImapError::Panicked { context: "check" }))
    }

    /// Runs a read-only operation on a pooled session. A connection-level failure discards the
    /// session; if the session was reused from the pool (it may have gone stale), the operation
    /// is retried once on a fresh connection.
    fn with_session<T>(&self, ctx: &OpCtx<'_>, op: impl Fn(&mut conn::Conn) -> Result<T, ImapError>) -> Result<T, ImapError> {
        let mut fresh = false;
        loop {
            if ctx.cancel.is_cancelled() {
                return Err(ImapError::Cancelled);
            }
            let mut lease = self.pool.checkout(Some(ctx.cancel), fresh)?;
            let result =
                catch_unwind(AssertUnwindSafe(|| op(lease.conn()))).unwrap_or(Err(ImapError::Panicked { context: "imap operation" }));
            match result {
                Ok(v) => {
                    lease.release();
                    return Ok(v);
                }
                Err(e) if !e.is_connection_level() => {
                    lease.release();
                    return Err(e);
                }
                Err(e) => {
                    let retry = lease.reused && !fresh && e.is_retryable() && !ctx.cancel.is_cancelled();
                    drop(lease);
                    if !retry {
                        return Err(e);
                    }
                    fresh = true;
                }
            }
        }
    }

    /// LIST plus STATUS of every selectable folder; INBOX first, then by name.
    pub fn list_folders(&self, ctx: &OpCtx<'_>) -> Result<Vec<FolderInfo>, ImapError> {
        self.with_session(ctx, |c| ops::list_folders(c, ctx))
    }

    /// All matching UIDs, newest first: by Date (ties by descending UID) via `UID SORT` when the
    /// server offers SORT, else `UID SEARCH` by descending UID. An empty query matches everything.
    pub fn search(&self, ctx: &OpCtx<'_>, folder: &MailboxName, q: &SearchQuery) -> Result<SearchResult, ImapError> {
        q.validate()?;
        self.with_session(ctx, |c| ops::search(c, ctx, folder, q))
    }

    /// Summaries for these UIDs, in this order; UIDs that do not exist are omitted.
    pub fn fetch_summaries(
        &self,
        ctx: &OpCtx<'_>,
        folder: &MailboxName,
        expect_uidvalidity: Option<u32>,
        uids: &[u32],
    ) -> Result<(u32, Vec<Summary>), ImapError> {
        args::uid_set("uids", uids)?;
        let (max_response, max_header) = (self.limits.max_response_bytes, self.limits.max_header_bytes);
        self.with_session(ctx, |c| ops::fetch_summaries(c, ctx, folder, expect_uidvalidity, uids, max_response, max_header))
    }

    /// One message's raw bytes, at most `limits.max_message_bytes` (then `truncated`).
    pub fn fetch_message(&self, ctx: &OpCtx<'_>, folder: &MailboxName, uidvalidity: u32, uid: u32) -> Result<FetchedMessage, ImapError> {
        args::uid_set("uid", &[uid])?;
        let max = self.limits.max_message_bytes;
        self.with_session(ctx, |c| ops::fetch_message(c, ctx, folder, uidvalidity, uid, max))
    }

    /// UIDs (ascending) of messages whose Message-ID, In-Reply-To or References header contains
    /// one of `message_ids`.
    pub fn search_related(
        &self,
        ctx: &OpCtx<'_>,
        folder: &MailboxName,
        uidvalidity: u32,
        message_ids: &[String],
    ) -> Result<Vec<u32>, ImapError> {
        args::check_message_ids(message_ids)?;
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.with_session(ctx, |c| ops::search_related(c, ctx, folder, uidvalidity, message_ids))
    }

    /// The server's capabilities after login (cached from the last session opened).
    pub fn capabilities(&self, ctx: &OpCtx<'_>) -> Result<Vec<String>, ImapError> {
        if let Some(caps) = self.pool.cached_caps() {
            return Ok(caps);
        }
        self.with_session(ctx, |c| Ok(c.caps.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_shareable_across_request_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ImapClient>();
        assert_send_sync::<CancelToken>();
    }

    #[test]
    fn cancel_token_is_shared_by_clones() {
        let a = CancelToken::new();
        let b = a.clone();
        assert!(!b.is_cancelled());
        a.cancel();
        assert!(b.is_cancelled());
    }
}
