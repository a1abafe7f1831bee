//! Token buckets per (account, tool) and sliding send windows per account, in integer arithmetic
//! (nano-tokens) so that retry hints are exact.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::{ceil_ms, human, Clock, MonotonicClock, RateConfig, ToolClass};

/// One token, in nano-tokens.
const TOKEN: u64 = 1_000_000_000;
const NANOS_PER_SEC: u128 = 1_000_000_000;
/// Buckets kept before full ones (which hold no state) are dropped.
const MAX_BUCKETS: usize = 10_000;
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// A call refused by a rate limit. Nothing was consumed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimited {
    pub account: String,
    pub tool: String,
    /// The config key of the limit that fired, e.g. `rate_limits.send_per_hour`.
    pub limit: String,
    /// When the call would be allowed, if nothing else is called meanwhile.
    pub retry_after_ms: u64,
}

impl RateLimited {
    /// The stable tool-error code.
    pub fn code(&self) -> &'static str {
        "rate_limited"
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limited: {} on account {} reached {}; retry in {} (retry_after_ms {})",
            self.tool,
            self.account,
            self.limit,
            human(self.retry_after_ms),
            self.retry_after_ms
        )
    }
}

#[derive(Debug)]
struct Bucket {
    /// Nano-tokens available.
    level: u64,
    capacity: u64,
    /// Nano-tokens added per second.
    rate: u64,
    at: Duration,
    limit: String,
}

impl Bucket {
    fn new(burst: u32, per_second: f64, now: Duration, limit: String) -> Bucket {
        let capacity = u64::from(burst) * TOKEN;
        // Config validation keeps per_second within 0.0001..=100000; the cast saturates anyway.
        let rate = ((per_second * TOKEN as f64).round() as u64).max(1);
        Bucket { level: capacity, capacity, rate, at: now, limit }
    }

    fn refill(&mut self, now: Duration) {
        if now > self.at {
            let added = (now - self.at).as_nanos() * u128::from(self.rate) / NANOS_PER_SEC;
            self.level = u64::try_from(u128::from(self.level) + added).unwrap_or(u64::MAX).min(self.capacity);
            self.at = now;
        }
    }

    /// How long until a whole token is available (`None`: now).
    fn wait(&self) -> Option<Duration> {
        let deficit = TOKEN.checked_sub(self.level).filter(|&d| d > 0)?;
        let nanos = (u128::from(deficit) * NANOS_PER_SEC).div_ceil(u128::from(self.rate));
        Some(Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)))
    }

    fn is_full(&self) -> bool {
        self.level >= self.capacity
    }
}

/// At most `limit` events in any `span`.
#[derive(Debug)]
struct Window {
    limit: u32,
    span: Duration,
    events: VecDeque<Duration>,
    name: &'static str,
}

impl Window {
    fn prune(&mut self, now: Duration) {
        while self.events.front().is_some_and(|&t| now >= t + self.span) {
            self.events.pop_front();
        }
    }

    fn wait(&self, now: Duration) -> Option<Duration> {
        let len = self.events.len();
        if len < self.limit as usize {
            return None;
        }
        // The event whose expiry frees a slot.
        self.events.get(len - self.limit as usize).map(|&t| (t + self.span).saturating_sub(now))
    }
}

#[derive(Default)]
struct State {
    buckets: HashMap<(String, String), Bucket>,
    /// Per account: the hourly and the daily send window.
    sends: HashMap<String, [Window; 2]>,
}

/// Rate limits for every (account, tool). Thread-safe; share it as `Arc<RateLimiter>`.
pub struct RateLimiter {
    cfg: RateConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// Limits on the real monotonic clock.
    pub fn new(cfg: RateConfig) -> RateLimiter {
        RateLimiter::with_clock(cfg, Arc::new(MonotonicClock::new()))
    }

    pub fn with_clock(cfg: RateConfig, clock: Arc<dyn Clock>) -> RateLimiter {
        RateLimiter { cfg, clock, state: Mutex::new(State::default()) }
    }

    pub fn config(&self) -> &RateConfig {
        &self.cfg
    }

    /// Takes one token for a call of `tool` on `account`, or says when to retry. A refused call
    /// takes nothing. Call it once per tools/call, after the account and tool are validated
    /// (so that the keys are bounded) and before any IO.
    pub fn check(&self, account: &str, tool: &str, class: ToolClass) -> Result<(), RateLimited> {
        let now = self.clock.now();
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *guard;
        let key = (account.to_string(), tool.to_string());
        if !state.buckets.contains_key(&key) && state.buckets.len() >= MAX_BUCKETS {
            state.buckets.retain(|_, b| {
                b.refill(now);
                !b.is_full()
            });
        }
        let bucket = state.buckets.entry(key).or_insert_with(|| self.new_bucket(tool, class, now));
        bucket.refill(now);

        let mut worst: Option<(Duration, &str)> = bucket.wait().map(|w| (w, bucket.limit.as_str()));
        let mut windows = None;
        if class == ToolClass::Send {
            let w = state.sends.entry(account.to_string()).or_insert_with(|| {
                [
                    Window { limit: self.cfg.send_per_hour, span: HOUR, events: VecDeque::new(), name: "rate_limits.send_per_hour" },
                    Window { limit: self.cfg.send_per_day, span: DAY, events: VecDeque::new(), name: "rate_limits.send_per_day" },
                ]
            });
            for window in w.iter_mut() {
                window.prune(now);
                if let Some(wait) = window.wait(now) {
                    if worst.is_none_or(|(d, _)| wait > d) {
                        worst = Some((wait, window.name));
                    }
                }
            }
            windows = Some(w);
        }
        if let Some((wait, limit)) = worst {
            return Err(RateLimited {
                account: account.to_string(),
                tool: tool.to_string(),
                limit: limit.to_string(),
                retry_after_ms: ceil_ms(wait).max(1),
            });
        }
        bucket.level -= TOKEN;
        for window in windows.into_iter().flatten() {
            window.events.push_back(now);
        }
        Ok(())
    }

    fn new_bucket(&self, tool: &str, class: ToolClass, now: Duration) -> Bucket {
        if let Some(b) = self.cfg.tools.get(tool) {
            return Bucket::new(b.burst, b.per_second, now, format!("rate_limits.tools.{tool}"));
        }
        match class {
            ToolClass::Read => Bucket::new(self.cfg.read_burst, self.cfg.read_per_second, now, "rate_limits.read_burst".into()),
            ToolClass::Mutate | ToolClass::Send => {
                Bucket::new(self.cfg.mutate_burst, self.cfg.mutate_per_second, now, "rate_limits.mutate_burst".into())
            }
        }
    }

    #[cfg(test)]
    fn bucket_count(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{class_of, BucketConfig, FakeClock};
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn limiter(cfg: RateConfig) -> (RateLimiter, Arc<FakeClock>) {
        let clock = Arc::new(FakeClock::new());
        (RateLimiter::with_clock(cfg, clock.clone()), clock)
    }

    fn call(l: &RateLimiter, account: &str, tool: &str) -> Result<(), RateLimited> {
        l.check(account, tool, class_of(tool))
    }

    /// `(limit, retry_after_ms)` of a refusal.
    fn refused(r: Result<(), RateLimited>) -> (String, u64) {
        let e = r.expect_err("expected a refusal");
        (e.limit, e.retry_after_ms)
    }

    #[test]
    fn two_hundred_rapid_reads_are_all_allowed_by_default() {
        let (l, _clock) = limiter(RateConfig::default());
        let allowed = (0..200).filter(|_| call(&l, "work", "search").is_ok()).count();
        assert_eq!(allowed, 200);
        // The 201st at the same instant waits for one token at 20/s.
        assert_eq!(refused(call(&l, "work", "search")), ("rate_limits.read_burst".into(), 50));
    }

    #[test]
    fn a_busy_agent_reading_steadily_is_never_limited() {
        // 16 reads a second for five minutes, spread over four tools.
        let (l, clock) = limiter(RateConfig::default());
        let tools = ["search", "fetch_message", "fetch_thread", "list_folders"];
        for i in 0..(16 * 300) {
            assert!(call(&l, "work", tools[i % 4]).is_ok(), "read {i} refused");
            clock.advance(Duration::from_millis(1000 / 16));
        }
    }

    #[test]
    fn the_21st_send_in_an_hour_is_limited_with_an_exact_retry() {
        let (l, clock) = limiter(RateConfig::default());
        for _ in 0..20 {
            call(&l, "work", "send_email").unwrap();
            clock.advance(MIN);
        }
        // Now t = 20 min; the first send (t = 0) leaves the window at t = 60 min.
        assert_eq!(refused(call(&l, "work", "send_email")), ("rate_limits.send_per_hour".into(), 40 * 60_000));
        // send_draft shares the account's windows.
        assert_eq!(refused(call(&l, "work", "send_draft")), ("rate_limits.send_per_hour".into(), 40 * 60_000));
        clock.advance(40 * MIN - Duration::from_millis(1));
        assert_eq!(refused(call(&l, "work", "send_email")), ("rate_limits.send_per_hour".into(), 1));
        clock.advance(Duration::from_millis(1));
        call(&l, "work", "send_email").unwrap();
        // Another account is not affected.
        call(&l, "home", "send_email").unwrap();
    }

    #[test]
    fn the_daily_send_window_holds_across_hours() {
        let (l, clock) = limiter(RateConfig::default());
        for hour in 0..5 {
            for _ in 0..20 {
                call(&l, "work", "send_email").unwrap();
            }
            if hour < 4 {
                clock.advance(60 * MIN);
            }
        }
        // t = 4 h: 100 sends today. Hourly frees at 5 h; daily only at 24 h.
        clock.advance(60 * MIN);
        assert_eq!(refused(call(&l, "work", "send_email")), ("rate_limits.send_per_day".into(), 19 * 3_600_000));
    }

    #[test]
    fn a_limited_call_consumes_nothing() {
        let (l, clock) = limiter(RateConfig::default());
        for _ in 0..30 {
            call(&l, "work", "move_messages").unwrap();
        }
        for _ in 0..100 {
            assert_eq!(refused(call(&l, "work", "move_messages")), ("rate_limits.mutate_burst".into(), 1000));
        }
        clock.advance(Duration::from_millis(1000));
        call(&l, "work", "move_messages").unwrap();
        assert_eq!(refused(call(&l, "work", "move_messages")), ("rate_limits.mutate_burst".into(), 1000));

        // Refused sends neither fill the window nor drain the tool's bucket.
        let cfg = RateConfig {
            send_per_hour: 1,
            tools: [("send_email".to_string(), BucketConfig { burst: 2, per_second: 0.0001 })].into(),
            ..RateConfig::default()
        };
        let (l, clock) = limiter(cfg);
        call(&l, "work", "send_email").unwrap();
        for _ in 0..10 {
            assert_eq!(refused(call(&l, "work", "send_email")).0, "rate_limits.send_per_hour");
        }
        clock.advance(60 * MIN);
        call(&l, "work", "send_email").unwrap();
        clock.advance(60 * MIN);
        // Now the bucket (2 tokens, refilling 0.36 an hour) is what is empty.
        assert_eq!(refused(call(&l, "work", "send_email")).0, "rate_limits.tools.send_email");
    }

    #[test]
    fn buckets_are_per_account_and_tool_and_overrides_replace_the_class() {
        let cfg =
            RateConfig { tools: [("search".to_string(), BucketConfig { burst: 5, per_second: 0.5 })].into(), ..RateConfig::default() };
        let (l, _clock) = limiter(cfg);
        for _ in 0..5 {
            call(&l, "work", "search").unwrap();
        }
        assert_eq!(refused(call(&l, "work", "search")), ("rate_limits.tools.search".into(), 2000));
        call(&l, "work", "fetch_message").unwrap();
        call(&l, "home", "search").unwrap();
    }

    #[test]
    fn a_partial_refill_gives_an_exact_wait() {
        let cfg = RateConfig { mutate_burst: 1, mutate_per_second: 3.0, ..RateConfig::default() };
        let (l, clock) = limiter(cfg);
        call(&l, "a", "update_flags").unwrap();
        clock.advance(Duration::from_millis(100));
        // 0.3 token after 100 ms; 0.7 more at 3/s is 233.33… ms, rounded up.
        assert_eq!(refused(call(&l, "a", "update_flags")).1, 234);
        clock.advance(Duration::from_nanos(233_333_334));
        call(&l, "a", "update_flags").unwrap();
    }

    #[test]
    fn the_message_names_the_limit_and_the_wait() {
        let e = RateLimited {
            account: "work".into(),
            tool: "send_email".into(),
            limit: "rate_limits.send_per_hour".into(),
            retry_after_ms: 2_400_000,
        };
        assert_eq!(
            e.to_string(),
            "rate limited: send_email on account work reached rate_limits.send_per_hour; retry in 40 min (retry_after_ms 2400000)"
        );
        assert_eq!(e.code(), "rate_limited");
    }

    #[test]
    fn bucket_memory_is_bounded() {
        let (l, clock) = limiter(RateConfig::default());
        for i in 0..(MAX_BUCKETS + 500) {
            call(&l, &format!("acct{i}"), "search").unwrap();
            if i % 1000 == 0 {
                clock.advance(Duration::from_secs(1));
            }
        }
        assert!(l.bucket_count() <= MAX_BUCKETS, "{}", l.bucket_count());
    }
}
