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
//!   `* THREAD`): we never issue commands that produce them, except UID THREAD, whose
//!   `* THREAD` lines a plaintext layer under the crate (`tap`) lifts out of its view.
//! - Its typed parsers panic on legal input (`* NO [ALERT]` during SELECT): we parse the raw
//!   response ourselves (`parse`).
//!
//! Reading never changes the mailbox: folders are opened with EXAMINE and bodies are fetched
//! with BODY.PEEK and a partial range, so \Seen is never set and no fetch asks for more than a
//! limit. Writing (`write`) names messages only by UID with UID-prefixed commands, checks
//! UIDVALIDITY first, never sends a bare EXPUNGE or CLOSE, and deselects a folder it opened
//! read-write before the session goes back to the pool.
//!
//! Architecture Invariant: nothing outside this module talks to an IMAP server, and nothing in
//! this module writes to stdout.

mod args;
mod conn;
mod error;
mod ops;
mod parse;
mod pool;
mod tap;
mod utf7;
mod write;

/// Entry points for the fuzz targets only (`fuzz/`); not an API.
#[doc(hidden)]
pub mod fuzz_api;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use args::{ArgError, Date, Flag, MailboxName, SearchQuery};
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

/// `(uid, flags)` or `(uid, labels)` per message, as the flag and label writes return them.
pub type UidValues = Vec<(u32, Vec<String>)>;

/// What a move or copy did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveResult {
    /// `"move"` (UID MOVE), `"copy+expunge"` (UID COPY, `\Deleted`, UID EXPUNGE) or `"copy"`.
    pub method: &'static str,
    /// (old UID, new UID) pairs, ascending by old UID, when the server reported COPYUID;
    /// empty otherwise (or when its report did not match the UIDs asked for).
    pub mapping: Vec<(u32, u32)>,
    /// The destination folder's UIDVALIDITY, from COPYUID.
    pub dest_uidvalidity: Option<u32>,
}

/// One body part, still transfer-encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedPart {
    /// The part's MIME header (for part 1 of a message that is not multipart: the message
    /// header), at most `limits.max_header_bytes`.
    pub mime_header: Vec<u8>,
    /// At most the caller's `max_bytes`.
    pub data: Vec<u8>,
    /// The part is longer than `max_bytes`.
    pub truncated: bool,
}

/// What `mailmoat check` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// The negotiated protocol and cipher (`TLSv1.3, TLS_AES_256_GCM_SHA384`), or why they could
    /// not be read (TLS 1.2 or newer is enforced either way).
    pub tls: String,
    /// As OpenSSL names it (`TLSv1.3`), from a separate probe handshake under the same rules.
    pub tls_version: Option<String>,
    /// As OpenSSL names it (`TLS_AES_256_GCM_SHA384`).
    pub tls_cipher: Option<String>,
    /// Lowercase hex SHA-256 of the server's leaf certificate (DER), for `pin_sha256`.
    pub cert_sha256: String,
    pub capabilities: Vec<String>,
    pub folder_count: usize,
    /// From the start of the TCP connect to the end of login.
    pub login_ms: u64,
    /// The SASL mechanism (or `LOGIN`) that authenticated.
    pub mechanism: &'static str,
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
            let (tls, tls_version, tls_cipher) = match conn::tls_probe(&self.account, &self.limits) {
                Ok(p) if p.cert_sha256 != c.cert_sha256 => (
                    format!("{}, {} (the probe connection saw a different certificate)", p.version, p.cipher),
                    Some(p.version),
                    Some(p.cipher),
                ),
                Ok(p) => (format!("{}, {}", p.version, p.cipher), Some(p.version), Some(p.cipher)),
                Err(e @ ImapError::PinMismatch { .. }) => return Err(e),
                Err(e) => (format!("TLS 1.2+ (enforced); version unknown: {e}"), None, None),
            };
            Ok(CheckReport {
                tls,
                tls_version,
                tls_cipher,
                cert_sha256: error::hex(&c.cert_sha256),
                capabilities: c.caps.clone(),
                folder_count,
                login_ms: c.login_ms,
                mechanism: c.mechanism,
            })
        };
        catch_unwind(AssertUnwindSafe(run)).unwrap_or(Err(ImapError::Panicked { context: "check" }))
    }

    /// Runs an operation on a pooled session. A connection-level failure discards the session;
    /// if the session was reused from the pool (it may have gone stale), the operation is
    /// retried once on a fresh connection, unless it had already sent a command that changes
    /// the mailbox (it may have taken effect: a second COPY or APPEND would duplicate).
    fn with_session<T>(&self, ctx: &OpCtx<'_>, op: impl Fn(&mut conn::Conn) -> Result<T, ImapError>) -> Result<T, ImapError> {
        let mut fresh = false;
        loop {
            if ctx.cancel.is_cancelled() {
                return Err(ImapError::Cancelled);
            }
            let mut lease = self.pool.checkout(Some(ctx.cancel), fresh)?;
            let c = lease.conn();
            c.mutation_sent = false;
            c.discard = false;
            let result =
                catch_unwind(AssertUnwindSafe(|| op(lease.conn()))).unwrap_or(Err(ImapError::Panicked { context: "imap operation" }));
            let (mutated, discard) = (lease.conn().mutation_sent, lease.conn().discard);
            match result {
                Ok(v) => {
                    if !discard {
                        lease.release();
                    }
                    return Ok(v);
                }
                Err(e) if !e.is_connection_level() => {
                    if !discard {
                        lease.release();
                    }
                    return Err(e);
                }
                Err(e) => {
                    let retry = lease.reused && !fresh && !mutated && e.is_retryable() && !ctx.cancel.is_cancelled();
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

    /// [`ImapClient::search`], then the summaries of the UIDs `page` picks from its result, on one
    /// session and under one EXAMINE (the page comes from that very search, so no UIDVALIDITY
    /// can come between them).
    pub fn search_page(
        &self,
        ctx: &OpCtx<'_>,
        folder: &MailboxName,
        q: &SearchQuery,
        page: impl Fn(&SearchResult) -> Vec<u32>,
    ) -> Result<(SearchResult, Vec<Summary>), ImapError> {
        q.validate()?;
        let (max_response, max_header) = (self.limits.max_response_bytes, self.limits.max_header_bytes);
        self.with_session(ctx, |c| {
            let found = ops::search(c, ctx, folder, q)?;
            let uids = page(&found);
            if uids.is_empty() {
                return Ok((found, Vec::new()));
            }
            args::uid_set("uids", &uids)?;
            let summaries = ops::summaries_of_selected(c, ctx, &uids, max_response, max_header)?;
            Ok((found, summaries))
        })
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

    /// One message's raw bytes, at most `max_bytes` (then `truncated`): `fetch_message` with the
    /// caller's bound (the response budget grows to fit it).
    pub fn fetch_raw(
        &self,
        ctx: &OpCtx<'_>,
        folder: &MailboxName,
        uidvalidity: u32,
        uid: u32,
        max_bytes: u64,
    ) -> Result<FetchedMessage, ImapError> {
        args::uid_set("uid", &[uid])?;
        let max = max_bytes.max(1);
        self.with_session(ctx, |c| ops::fetch_message(c, ctx, folder, uidvalidity, uid, max))
    }

    /// One body part, raw (still transfer-encoded): at most `max_bytes` of
    /// `BODY.PEEK[<section>]`, with its MIME header. `section` is an IMAP part number (`2`,
    /// `1.2.3`). A part that does not exist is `NotFound`.
    pub fn fetch_part(
        &self,
        ctx: &OpCtx<'_>,
        folder: &MailboxName,
        uidvalidity: u32,
        uid: u32,
        section: &str,
        max_bytes: u64,
    ) -> Result<FetchedPart, ImapError> {
        args::uid_set("uid", &[uid])?;
        args::check_section(section)?;
        let (max, max_header) = (max_bytes.max(1), self.limits.max_header_bytes);
        self.with_session(ctx, |c| write::fetch_part(c, ctx, folder, uidvalidity, uid, section, max, max_header))
    }

    /// The first folder with this special-use role (`inbox`, `drafts`, `sent`, `trash`, `junk`,
    /// `archive`, `all`, `flagged`), in the server's LIST order; `None` when no folder has it.
    pub fn folder_with_role(&self, ctx: &OpCtx<'_>, role: &str) -> Result<Option<MailboxName>, ImapError> {
        if !write::ROLES.contains(&role) {
            return Err(ArgError::new("role", format!("must be one of {}", write::ROLES.join(", "))).into());
        }
        self.with_session(ctx, |c| write::folder_with_role(c, ctx, role))
    }

    /// The UIDs (ascending) of the conversation holding `uid`, by the server's
    /// `UID THREAD REFERENCES`; `None` when the server does not offer THREAD=REFERENCES.
    pub fn thread_references(
        &self,
        ctx: &OpCtx<'_>,
        folder: &MailboxName,
        uidvalidity: u32,
        uid: u32,
    ) -> Result<Option<Vec<u32>>, ImapError> {
        args::uid_set("uid", &[uid])?;
        self.with_session(ctx, |c| write::thread_references(c, ctx, folder, uidvalidity, uid))
    }

    // ---- operations that change the mailbox ----

    /// Sets (`add`) and clears (`remove`) flags on exactly these UIDs (`UID STORE
    /// +FLAGS.SILENT` / `-FLAGS.SILENT`), then reads their flags back. Returns `(uid, flags)` in
    /// the caller's order for the UIDs that exist; missing UIDs are simply absent. A flag the
    /// folder cannot store permanently is refused (`Unsupported`).
    pub fn store_flags(
        &self,
        ctx: &OpCtx<'_>,
        folder: &MailboxName,
        uidvalidity: u32,
        uids: &[u32],
        add: &[Flag],
        remove: &[Flag],
    ) -> Result<Vec<(u32, Vec<String>)>, ImapError> {
        let set = args::write_uid_set(uids, self.limits.max_batch)?;
        args::check_flags(add)?;
        args::check_flags(remove)?;
        args::check_flag_sets(add, remove)?;
        self.with_session(ctx, |c| write::store_flags(c, ctx, folder, uidvalidity, uids, &set, add, remove))
    }

    /// Gmail labels through X-GM-LABELS when the server advertises X-GM-EXT-1, else IMAP
    /// keywords (then every label must be a keyword atom). Returns the mechanism
    /// (`"x-gm-labels"` or `"keywords"`) and the resulting labels (or keywords) per UID, in the
    /// caller's order.
    pub fn store_labels(
        &self,
        ctx: &OpCtx<'_>,
        folder: &MailboxName,
        uidvalidity: u32,
        uids: &[u32],
        add: &[String],
        remove: &[String],
    ) -> Result<(&'static str, UidValues), ImapError> {
        let set = args::write_uid_set(uids, self.limits.max_batch)?;
        // Either mechanism needs at least this; the keyword rules are checked once the server's
        // capabilities are known.
        for l in add.iter().chain(remove) {
            args::gmail_label(l)?;
        }
        self.with_session(ctx, |c| write::store_labels(c, ctx, folder, uidvalidity, uids, &set, add, remove))
    }

    /// Moves exactly these UIDs to `to`: UID MOVE when the server offers MOVE, else UID COPY,
    /// `\Deleted` and UID EXPUNGE of exactly those UIDs (requires UIDPLUS; without it the call
    /// is refused as `Unsupported`).
    pub fn move_messages(
        &self,
        ctx: &OpCtx<'_>,
        folder: &MailboxName,
        uidvalidity: u32,
        uids: &[u32],
        to: &MailboxName,
    ) -> Result<MoveResult, ImapError> {
        let set = args::write_uid_set(uids, self.limits.max_batch)?;
        write::refuse_same_folder(folder, to)?;
        self.with_session(ctx, |c| write::move_messages(c, ctx, folder, uidvalidity, uids, &set, to))
    }

    /// Copies exactly these UIDs to `to` (UID COPY; the source is opened read-only).
    pub fn copy_messages(
        &self,
        ctx: &OpCtx<'_>,
        folder: &MailboxName,
        uidvalidity: u32,
        uids: &[u32],
        to: &MailboxName,
    ) -> Result<MoveResult, ImapError> {
        let set = args::write_uid_set(uids, self.limits.max_batch)?;
        write::refuse_same_folder(folder, to)?;
        self.with_session(ctx, |c| write::copy_messages(c, ctx, folder, uidvalidity, uids, &set, to))
    }

    /// Permanently removes exactly these UIDs: `\Deleted` then UID EXPUNGE of those that
    /// exist (requires UIDPLUS; refused as `Unsupported` without it). Returns the UIDs that are
    /// gone afterwards (ascending); UIDs that did not exist are not in it.
    pub fn expunge_messages(&self, ctx: &OpCtx<'_>, folder: &MailboxName, uidvalidity: u32, uids: &[u32]) -> Result<Vec<u32>, ImapError> {
        let set = args::write_uid_set(uids, self.limits.max_batch)?;
        self.with_session(ctx, |c| write::expunge_messages(c, ctx, folder, uidvalidity, uids, &set))
    }

    /// CREATE (then SUBSCRIBE, best effort). An existing name is `AlreadyExists`.
    pub fn create_folder(&self, ctx: &OpCtx<'_>, name: &MailboxName) -> Result<(), ImapError> {
        write::check_folder_names(None, name)?;
        self.with_session(ctx, |c| write::create_folder(c, ctx, name))
    }

    /// RENAME (subscriptions follow, best effort). INBOX and special-use folders are refused.
    pub fn rename_folder(&self, ctx: &OpCtx<'_>, from: &MailboxName, to: &MailboxName) -> Result<(), ImapError> {
        write::check_folder_names(Some(from), to)?;
        self.with_session(ctx, |c| write::rename_folder(c, ctx, from, to))
    }

    /// DELETE (and UNSUBSCRIBE, best effort). INBOX and special-use folders are refused.
    pub fn delete_folder(&self, ctx: &OpCtx<'_>, name: &MailboxName) -> Result<(), ImapError> {
        self.with_session(ctx, |c| write::delete_folder(c, ctx, name))
    }

    /// APPENDs a message with these flags (e.g. `\Draft` and `$PendingReview`); returns
    /// `(uidvalidity, uid)` when the server reports APPENDUID. At most
    /// `limits.max_send_bytes`; a NUL byte is refused. Once the upload has started the call is
    /// no longer cancellable (a cancelled upload could still have been stored); its deadline is
    /// `limits.command_timeout_ms` plus the transfer time at 128 KiB/s.
    pub fn append(&self, ctx: &OpCtx<'_>, folder: &MailboxName, flags: &[Flag], raw: &[u8]) -> Result<Option<(u32, u32)>, ImapError> {
        args::check_flags(flags)?;
        args::check_message(raw, self.limits.max_send_bytes)?;
        self.with_session(ctx, |c| write::append(c, ctx, folder, flags, raw))
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
