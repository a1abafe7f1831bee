//! The per-account connection pool: at most `limits.pool_size` sessions, handed out one request
//! at a time, NOOP-checked when they have been idle a while, and discarded on any
//! connection-level error (a session is only returned through [`Lease::release`]).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::conn::{self, Conn};
use super::error::ImapError;
use super::CancelToken;
use crate::config::{Account, Limits};

/// How often a waiting request wakes up to check its cancel flag.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Counters for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// New sessions opened (TCP + TLS + login).
    pub connects: u64,
    /// Requests served by an already open session.
    pub reuses: u64,
    /// Sessions dropped after an error, a failed NOOP check, or to force a fresh one.
    pub discarded: u64,
    /// NOOP checks of sessions that had been idle longer than `limits.idle_check_after_ms`.
    pub noop_checks: u64,
    /// Sessions currently idle in the pool.
    pub idle: usize,
    /// Sessions currently open or being opened (idle + in use).
    pub open: usize,
}

struct State {
    idle: Vec<Conn>,
    open: usize,
    caps: Option<Vec<String>>,
    stats: PoolStats,
}

pub(crate) struct Pool {
    account: Arc<Account>,
    limits: Arc<Limits>,
    state: Mutex<State>,
    freed: Condvar,
}

/// A session on loan. Dropping it without [`Lease::release`] discards the session.
pub(crate) struct Lease<'p> {
    pool: &'p Pool,
    conn: Option<Conn>,
    /// True when the session had served an earlier request.
    pub reused: bool,
}

impl Lease<'_> {
    pub(crate) fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("a lease holds its session until released or dropped")
    }

    /// Returns a healthy session to the pool.
    pub(crate) fn release(mut self) {
        if let Some(c) = self.conn.take() {
            let mut st = self.pool.lock();
            st.idle.push(c);
            drop(st);
            self.pool.freed.notify_one();
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            // Close the socket outside the lock.
            drop(c);
            self.pool.forget_one();
        }
    }
}

impl Pool {
    pub(crate) fn new(account: Arc<Account>, limits: Arc<Limits>) -> Pool {
        Pool {
            account,
            limits,
            state: Mutex::new(State { idle: Vec::new(), open: 0, caps: None, stats: PoolStats::default() }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot was given up (session discarded or connect failed).
    fn forget_one(&self) {
        let mut st = self.lock();
        st.open = st.open.saturating_sub(1);
        st.stats.discarded += 1;
        drop(st);
        self.freed.notify_one();
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let st = self.lock();
        PoolStats { idle: st.idle.len(), open: st.open, ..st.stats }
    }

    /// The capabilities of the last session opened, if any.
    pub(crate) fn cached_caps(&self) -> Option<Vec<String>> {
        self.lock().caps.clone()
    }

    /// Borrows a session: an idle one (NOOP-checked if it idled long), else a new one if the
    /// pool has room, else waits up to `limits.pool_wait_ms`. `fresh` forces a new session
    /// (used for the single retry after a stale session failed).
    pub(crate) fn checkout(&self, cancel: Option<&CancelToken>, fresh: bool) -> Result<Lease<'_>, ImapError> {
        let started = Instant::now();
        let max_wait = self.limits.pool_wait();
        let mut st = self.lock();
        loop {
            if cancel.is_some_and(CancelToken::is_cancelled) {
                return Err(ImapError::Cancelled);
            }
            if let Some(mut c) = st.idle.pop() {
                if fresh {
                    // Keep the slot, replace the session.
                    st.stats.discarded += 1;
                    drop(st);
                    drop(c);
                    return self.open_new(cancel);
                }
                let needs_check = c.last_used.elapsed() >= self.limits.idle_check_after();
                if needs_check {
                    st.stats.noop_checks += 1;
                }
                drop(st);
                if needs_check && c.run("noop", "NOOP", cancel).is_err() {
                    drop(c);
                    self.forget_one();
                    st = self.lock();
                    continue;
                }
                self.lock().stats.reuses += 1;
                return Ok(Lease { pool: self, conn: Some(c), reused: true });
            }
            if st.open < self.limits.pool_size {
                st.open += 1;
                drop(st);
                return self.open_new(cancel);
            }
            let waited = started.elapsed();
            if waited >= max_wait {
                return Err(ImapError::PoolExhausted { waited_ms: waited.as_millis().try_into().unwrap_or(u64::MAX) });
            }
            let slice = (max_wait - waited).min(WAIT_SLICE);
            st = self.freed.wait_timeout(st, slice).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Opens a session in a slot already counted in `open`.
    fn open_new(&self, cancel: Option<&CancelToken>) -> Result<Lease<'_>, ImapError> {
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| conn::connect(&self.account, &self.limits, cancel)))
            .unwrap_or(Err(ImapError::Panicked { context: "connect" }));
        match opened {
            Ok(c) => {
                let mut st = self.lock();
                st.stats.connects += 1;
                st.caps = Some(c.caps.clone());
                Ok(Lease { pool: self, conn: Some(c), reused: false })
            }
            Err(e) => {
                let mut st = self.lock();
                st.open = st.open.saturating_sub(1);
                drop(st);
                self.freed.notify_one();
                Err(e)
            }
        }
    }
}
