//! Circuit breaker per account: connection and protocol failures in a sliding window open it;
//! after the open time one probe is let through (half-open); the probe's success closes it and
//! its failure reopens it for twice as long, up to a cap. One authentication failure blocks the
//! account until the fingerprint of (config file, its mtime, the secret) changes.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{ceil_ms, human, BreakerConfig, Clock, MonotonicClock};

/// What `mailmoat check` (or a status tool) reports for an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `recent_failures` are the failures still inside the window.
    Closed { recent_failures: u32 },
    /// Failing fast; the next attempt is allowed in `retry_after_ms`.
    Open { retry_after_ms: u64, failures: u32 },
    /// The next call probes the server (or, with `probing`, a probe is under way).
    HalfOpen { probing: bool },
    /// Login was refused; nothing is tried until the config or the secret changes.
    AuthBlocked,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakerState::Closed { recent_failures: 0 } => f.write_str("closed"),
            BreakerState::Closed { recent_failures } => write!(f, "closed ({recent_failures} recent failure(s))"),
            BreakerState::Open { retry_after_ms, failures } => {
                write!(f, "open after {failures} failure(s); next attempt in {}", human(*retry_after_ms))
            }
            BreakerState::HalfOpen { probing: false } => f.write_str("half-open: the next call probes the server"),
            BreakerState::HalfOpen { probing: true } => f.write_str("half-open: a probe is under way"),
            BreakerState::AuthBlocked => {
                f.write_str("blocked after an authentication failure: fix the password or the config; no retry until one changes")
            }
        }
    }
}

/// Why a call was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenReason {
    /// The circuit opened after `failures` connection or protocol failures.
    Failures { failures: u32 },
    /// Half-open, and another call is probing the server.
    Probing,
    /// The server refused the credentials.
    AuthFailed,
}

/// A call refused by the circuit breaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitOpen {
    pub account: String,
    pub reason: OpenReason,
    /// When to try again; `None` for an authentication block, which time does not lift.
    pub retry_after_ms: Option<u64>,
}

impl CircuitOpen {
    /// The stable tool-error code.
    pub fn code(&self) -> &'static str {
        match self.reason {
            OpenReason::AuthFailed => "auth_failed",
            OpenReason::Failures { .. } | OpenReason::Probing => "circuit_open",
        }
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let retry = self.retry_after_ms.map(|ms| format!("{} (retry_after_ms {ms})", human(ms))).unwrap_or_default();
        match &self.reason {
            OpenReason::Failures { failures } => write!(
                f,
                "account {}: failing fast after {failures} connection failure(s) (circuit open); next attempt in {retry}",
                self.account
            ),
            OpenReason::Probing => {
                write!(f, "account {}: the server is being probed after failures (circuit half-open); retry in {retry}", self.account)
            }
            OpenReason::AuthFailed => write!(
                f,
                "account {}: the server refused the credentials; not retrying until the config file or the password changes (providers lock accounts after repeated failures)",
                self.account
            ),
        }
    }
}

/// What a reported failure did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Counted; the circuit stays closed.
    Counted { recent_failures: u32 },
    /// This failure opened (or, for a failed probe, reopened) the circuit: audit `circuit_open`.
    Opened { open_ms: u64 },
    /// The circuit was already open or blocked (a call that started before it opened).
    Ignored,
}

/// The fingerprint that lifts an authentication block when it changes: SHA-256 over the config
/// path, the config file's mtime and the secret, each length-prefixed.
pub fn secret_fingerprint(config_path: &Path, config_mtime: Option<SystemTime>, secret: &[u8]) -> [u8; 32] {
    let mtime = config_mtime.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(u128::MAX, |d| d.as_nanos());
    let path = config_path.as_os_str().as_bytes();
    Sha256::new()
        .chain_update(b"mailmoat auth fingerprint v1\0")
        .chain_update((path.len() as u64).to_be_bytes())
        .chain_update(path)
        .chain_update(mtime.to_be_bytes())
        .chain_update((secret.len() as u64).to_be_bytes())
        .chain_update(secret)
        .finalize()
        .into()
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open {
        until: Duration,
        failures: u32,
    },
    /// `probe_since`: when the probe in flight was let through.
    HalfOpen {
        probe_since: Option<Duration>,
    },
}

struct Entry {
    phase: Phase,
    /// Failure times inside the window (closed phase).
    failures: VecDeque<Duration>,
    /// The next open time; doubles after each failed probe.
    open_for: Duration,
    /// Set by an authentication failure: the fingerprint it happened under.
    auth_block: Option<[u8; 32]>,
}

/// Circuit breakers for every account. Thread-safe; share it as `Arc<CircuitBreaker>`.
pub struct CircuitBreaker {
    cfg: BreakerConfig,
    clock: Arc<dyn Clock>,
    accounts: Mutex<HashMap<String, Entry>>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    /// Breakers on the real monotonic clock.
    pub fn new(cfg: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker::with_clock(cfg, Arc::new(MonotonicClock::new()))
    }

    pub fn with_clock(cfg: BreakerConfig, clock: Arc<dyn Clock>) -> CircuitBreaker {
        CircuitBreaker { cfg, clock, accounts: Mutex::new(HashMap::new()) }
    }

    fn entry<'a>(&self, map: &'a mut HashMap<String, Entry>, account: &str) -> &'a mut Entry {
        map.entry(account.to_string()).or_insert_with(|| Entry {
            phase: Phase::Closed,
            failures: VecDeque::new(),
            open_for: Duration::from_millis(self.cfg.open_ms),
            auth_block: None,
        })
    }

    /// Whether a connection attempt (a login) for `account` may go ahead. `fingerprint` is
    /// [`secret_fingerprint`] of the config and the secret about to be used. When half-open,
    /// the caller that gets `Ok` is the probe and must report its result.
    pub fn allow(&self, account: &str, fingerprint: &[u8; 32]) -> Result<(), CircuitOpen> {
        let now = self.clock.now();
        let mut map = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let e = self.entry(&mut map, account);
        let refuse = |reason, retry: Option<Duration>| {
            Err(CircuitOpen { account: account.to_string(), reason, retry_after_ms: retry.map(|d| ceil_ms(d).max(1)) })
        };
        if let Some(blocked) = &e.auth_block {
            if blocked == fingerprint {
                return refuse(OpenReason::AuthFailed, None);
            }
            // The config or the secret changed: one login may try it.
            e.auth_block = None;
            e.phase = Phase::HalfOpen { probe_since: None };
        }
        let probe_timeout = Duration::from_millis(self.cfg.probe_timeout_ms);
        match e.phase {
            Phase::Closed => Ok(()),
            Phase::Open { until, failures } if now < until => refuse(OpenReason::Failures { failures }, Some(until - now)),
            Phase::HalfOpen { probe_since: Some(since) } if now < since + probe_timeout => {
                refuse(OpenReason::Probing, Some(since + probe_timeout - now))
            }
            Phase::Open { .. } | Phase::HalfOpen { .. } => {
                e.phase = Phase::HalfOpen { probe_since: Some(now) };
                Ok(())
            }
        }
    }

    /// A login or command on `account` succeeded: close the circuit and reset the backoff.
    pub fn record_success(&self, account: &str) {
        let mut map = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let e = self.entry(&mut map, account);
        e.phase = Phase::Closed;
        e.failures.clear();
        e.open_for = Duration::from_millis(self.cfg.open_ms);
    }

    /// A connection or protocol failure on `account` (refused, TLS, timeout, BYE, unparsable
    /// response); not a NO for a bad argument, and not an authentication failure.
    pub fn record_failure(&self, account: &str) -> FailureOutcome {
        let now = self.clock.now();
        let window = Duration::from_millis(self.cfg.window_ms);
        let max_open = Duration::from_millis(self.cfg.max_open_ms);
        let threshold = self.cfg.failures;
        let mut map = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let e = self.entry(&mut map, account);
        if e.auth_block.is_some() {
            return FailureOutcome::Ignored;
        }
        match e.phase {
            Phase::Open { .. } => FailureOutcome::Ignored,
            Phase::HalfOpen { .. } => {
                e.open_for = (e.open_for * 2).min(max_open);
                e.phase = Phase::Open { until: now + e.open_for, failures: threshold };
                FailureOutcome::Opened { open_ms: ceil_ms(e.open_for) }
            }
            Phase::Closed => {
                while e.failures.front().is_some_and(|&t| now >= t + window) {
                    e.failures.pop_front();
                }
                e.failures.push_back(now);
                let recent = u32::try_from(e.failures.len()).unwrap_or(u32::MAX);
                if recent < threshold {
                    return FailureOutcome::Counted { recent_failures: recent };
                }
                e.failures.clear();
                e.phase = Phase::Open { until: now + e.open_for, failures: recent };
                FailureOutcome::Opened { open_ms: ceil_ms(e.open_for) }
            }
        }
    }

    /// The server refused the credentials used under `fingerprint`. Returns whether this is a
    /// new block (audit `auth_failure` and `circuit_open` once, not on every refused call).
    pub fn record_auth_failure(&self, account: &str, fingerprint: [u8; 32]) -> bool {
        let mut map = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let e = self.entry(&mut map, account);
        let new = e.auth_block != Some(fingerprint);
        e.auth_block = Some(fingerprint);
        e.phase = Phase::Closed;
        e.failures.clear();
        new
    }

    /// The account's state, for reports. Does not change it.
    pub fn state(&self, account: &str) -> BreakerState {
        let now = self.clock.now();
        let map = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(e) = map.get(account) else { return BreakerState::Closed { recent_failures: 0 } };
        if e.auth_block.is_some() {
            return BreakerState::AuthBlocked;
        }
        let window = Duration::from_millis(self.cfg.window_ms);
        let probe_timeout = Duration::from_millis(self.cfg.probe_timeout_ms);
        match e.phase {
            Phase::Closed => {
                let recent = e.failures.iter().filter(|&&t| now < t + window).count();
                BreakerState::Closed { recent_failures: u32::try_from(recent).unwrap_or(u32::MAX) }
            }
            Phase::Open { until, failures } if now < until => BreakerState::Open { retry_after_ms: ceil_ms(until - now).max(1), failures },
            Phase::Open { .. } => BreakerState::HalfOpen { probing: false },
            Phase::HalfOpen { probe_since } => {
                BreakerState::HalfOpen { probing: probe_since.is_some_and(|since| now < since + probe_timeout) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::FakeClock;
    use super::*;

    const FP: [u8; 32] = [1; 32];
    const SEC: Duration = Duration::from_secs(1);

    fn breaker() -> (CircuitBreaker, Arc<FakeClock>) {
        let clock = Arc::new(FakeClock::new());
        (CircuitBreaker::with_clock(BreakerConfig::default(), clock.clone()), clock)
    }

    fn refusal(r: Result<(), CircuitOpen>) -> (OpenReason, Option<u64>) {
        let e = r.expect_err("expected a refusal");
        (e.reason, e.retry_after_ms)
    }

    fn open(b: &CircuitBreaker) {
        for _ in 0..5 {
            b.record_failure("work");
        }
    }

    #[test]
    fn five_failures_in_a_minute_open_the_circuit() {
        let (b, clock) = breaker();
        for i in 1..5 {
            assert_eq!(b.record_failure("work"), FailureOutcome::Counted { recent_failures: i });
            clock.advance(SEC);
        }
        assert_eq!(b.state("work"), BreakerState::Closed { recent_failures: 4 });
        b.allow("work", &FP).unwrap();
        assert_eq!(b.record_failure("work"), FailureOutcome::Opened { open_ms: 30_000 });
        assert_eq!(refusal(b.allow("work", &FP)), (OpenReason::Failures { failures: 5 }, Some(30_000)));
        clock.advance(10 * SEC);
        assert_eq!(refusal(b.allow("work", &FP)), (OpenReason::Failures { failures: 5 }, Some(20_000)));
        assert_eq!(b.state("work"), BreakerState::Open { retry_after_ms: 20_000, failures: 5 });
        // A call that was already under way fails late: it changes nothing.
        assert_eq!(b.record_failure("work"), FailureOutcome::Ignored);
        // Other accounts are unaffected.
        b.allow("home", &FP).unwrap();
        assert_eq!(b.state("home"), BreakerState::Closed { recent_failures: 0 });
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let (b, clock) = breaker();
        for _ in 0..4 {
            b.record_failure("work");
        }
        clock.advance(60 * SEC);
        assert_eq!(b.state("work"), BreakerState::Closed { recent_failures: 0 });
        assert_eq!(b.record_failure("work"), FailureOutcome::Counted { recent_failures: 1 });
        b.allow("work", &FP).unwrap();
    }

    #[test]
    fn half_open_lets_one_probe_through_and_success_closes() {
        let (b, clock) = breaker();
        open(&b);
        clock.advance(30 * SEC);
        assert_eq!(b.state("work"), BreakerState::HalfOpen { probing: false });
        b.allow("work", &FP).unwrap();
        assert_eq!(b.state("work"), BreakerState::HalfOpen { probing: true });
        assert_eq!(refusal(b.allow("work", &FP)), (OpenReason::Probing, Some(120_000)));
        b.record_success("work");
        assert_eq!(b.state("work"), BreakerState::Closed { recent_failures: 0 });
        b.allow("work", &FP).unwrap();
        b.allow("work", &FP).unwrap();
    }

    #[test]
    fn failed_probes_double_the_open_time_up_to_the_cap_and_success_resets_it() {
        let (b, clock) = breaker();
        open(&b);
        let mut open_ms = 30_000;
        for want in [60_000, 120_000, 240_000, 480_000, 600_000, 600_000] {
            clock.advance(Duration::from_millis(open_ms));
            b.allow("work", &FP).unwrap();
            assert_eq!(b.record_failure("work"), FailureOutcome::Opened { open_ms: want });
            assert_eq!(refusal(b.allow("work", &FP)).1, Some(want));
            open_ms = want;
        }
        clock.advance(Duration::from_millis(open_ms));
        b.allow("work", &FP).unwrap();
        b.record_success("work");
        open(&b);
        assert_eq!(refusal(b.allow("work", &FP)).1, Some(30_000));
    }

    #[test]
    fn a_probe_that_never_reports_is_given_up() {
        let (b, clock) = breaker();
        open(&b);
        clock.advance(30 * SEC);
        b.allow("work", &FP).unwrap();
        clock.advance(119 * SEC);
        assert_eq!(refusal(b.allow("work", &FP)), (OpenReason::Probing, Some(1000)));
        clock.advance(SEC);
        b.allow("work", &FP).unwrap();
    }

    #[test]
    fn an_auth_failure_blocks_until_the_fingerprint_changes() {
        let (b, clock) = breaker();
        assert!(b.record_auth_failure("work", FP));
        assert!(!b.record_auth_failure("work", FP), "the same block is not new");
        for _ in 0..3 {
            assert_eq!(refusal(b.allow("work", &FP)), (OpenReason::AuthFailed, None));
            clock.advance(Duration::from_secs(86_400));
        }
        assert_eq!(b.state("work"), BreakerState::AuthBlocked);
        assert_eq!(b.record_failure("work"), FailureOutcome::Ignored);
        b.allow("home", &FP).unwrap();

        // A new password: exactly one login tries it.
        let new = [2; 32];
        b.allow("work", &new).unwrap();
        assert_eq!(refusal(b.allow("work", &new)).0, OpenReason::Probing);
        // Refused again: blocked under the new fingerprint too.
        assert!(b.record_auth_failure("work", new));
        assert_eq!(refusal(b.allow("work", &new)), (OpenReason::AuthFailed, None));
        // Fixed: the probe succeeds and the account works again.
        let fixed = [3; 32];
        b.allow("work", &fixed).unwrap();
        b.record_success("work");
        b.allow("work", &fixed).unwrap();
        b.allow("work", &fixed).unwrap();
        assert_eq!(b.state("work"), BreakerState::Closed { recent_failures: 0 });
    }

    #[test]
    fn messages_say_what_happened_and_when_to_retry() {
        let e = CircuitOpen { account: "work".into(), reason: OpenReason::Failures { failures: 5 }, retry_after_ms: Some(27_500) };
        assert_eq!(
            e.to_string(),
            "account work: failing fast after 5 connection failure(s) (circuit open); next attempt in 27.5 s (retry_after_ms 27500)"
        );
        assert_eq!(e.code(), "circuit_open");
        let e = CircuitOpen { account: "work".into(), reason: OpenReason::AuthFailed, retry_after_ms: None };
        assert!(e.to_string().contains("not retrying until the config file or the password changes"));
        assert_eq!(e.code(), "auth_failed");
        assert_eq!(BreakerState::Open { retry_after_ms: 20_000, failures: 5 }.to_string(), "open after 5 failure(s); next attempt in 20 s");
    }

    #[test]
    fn the_fingerprint_covers_path_mtime_and_secret() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let base = secret_fingerprint(Path::new("/etc/mm.toml"), Some(t), b"hunter2");
        assert_eq!(base, secret_fingerprint(Path::new("/etc/mm.toml"), Some(t), b"hunter2"));
        for other in [
            secret_fingerprint(Path::new("/etc/mm2.toml"), Some(t), b"hunter2"),
            secret_fingerprint(Path::new("/etc/mm.toml"), Some(t + Duration::from_nanos(1)), b"hunter2"),
            secret_fingerprint(Path::new("/etc/mm.toml"), None, b"hunter2"),
            secret_fingerprint(Path::new("/etc/mm.toml"), Some(t), b"hunter3"),
        ] {
            assert_ne!(base, other);
        }
        // Length prefixes: moving bytes between the path and the secret changes the fingerprint.
        assert_ne!(secret_fingerprint(Path::new("/a"), None, b"bc"), secret_fingerprint(Path::new("/ab"), None, b"c"));
    }
}
