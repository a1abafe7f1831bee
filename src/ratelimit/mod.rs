//! Rate limits per (account, tool) and circuit breakers per account, on a monotonic clock.
//!
//! [`RateLimiter`] keeps a token bucket per (account, tool), sized by the tool's [`ToolClass`]:
//! reads are generous and bursty, mutations moderate. Sends are also counted per account in two
//! sliding windows (an hour and a day), so "20 per hour" means at most 20 in any 60 minutes. A
//! refused call consumes nothing.
//!
//! [`CircuitBreaker`] fails fast for an account whose server keeps failing (closed → open →
//! half-open with one probe → closed, the open time doubling on each failed probe), and stops
//! logging in after one authentication failure until the config or the secret changes.
//!
//! Architecture Invariant: nothing here reads the wall clock or does IO; time comes from a
//! [`Clock`], so every transition is tested with [`FakeClock`].

mod breaker;
mod limiter;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

pub mod blocks;
pub use blocks::AuthBlocks;
pub use breaker::{secret_fingerprint, BreakerState, CircuitBreaker, CircuitOpen, FailureOutcome, OpenReason};
pub use limiter::{RateLimited, RateLimiter};

/// A monotonic clock: time since an arbitrary fixed origin, never going backwards.
pub trait Clock: Send + Sync {
    fn now(&self) -> Duration;
}

/// The real clock (`std::time::Instant`).
#[derive(Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    pub fn new() -> MonotonicClock {
        MonotonicClock { origin: Instant::now() }
    }
}

impl Default for MonotonicClock {
    fn default() -> MonotonicClock {
        MonotonicClock::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to; for tests.
#[derive(Debug, Default)]
pub struct FakeClock {
    nanos: AtomicU64,
}

impl FakeClock {
    pub fn new() -> FakeClock {
        FakeClock::default()
    }

    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX), Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// How a tool is limited by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolClass {
    /// Reads mail or metadata: generous and bursty.
    Read,
    /// Changes the mailbox: moderate.
    Mutate,
    /// Sends mail: a moderate bucket, plus the account's hourly and daily send windows.
    Send,
}

impl ToolClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolClass::Read => "read",
            ToolClass::Mutate => "mutate",
            ToolClass::Send => "send",
        }
    }
}

/// The class of a tool by name; anything not known to read or send counts as a mutation.
pub fn class_of(tool: &str) -> ToolClass {
    match tool {
        "list_accounts"
        | "list_folders"
        | "search"
        | "fetch_message"
        | "fetch_thread"
        | "list_attachments"
        | "read_attachment"
        | "download_attachment"
        | "fetch_raw" => ToolClass::Read,
        "send_email" | "send_draft" => ToolClass::Send,
        _ => ToolClass::Mutate,
    }
}

/// `[rate_limits]`: token buckets per (account, tool) and send windows per account.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    /// Calls of one read tool on one account that may come at once.
    pub read_burst: u32,
    /// Read calls per second, per (account, tool), once the burst is spent.
    pub read_per_second: f64,
    /// Calls of one mutating (or sending) tool on one account that may come at once.
    pub mutate_burst: u32,
    /// Mutating calls per second, per (account, tool), once the burst is spent.
    pub mutate_per_second: f64,
    /// Messages one account may send in any 60 minutes.
    pub send_per_hour: u32,
    /// Messages one account may send in any 24 hours.
    pub send_per_day: u32,
    /// Per-tool buckets replacing the class default: `[rate_limits.tools.search]`.
    pub tools: BTreeMap<String, BucketConfig>,
}

impl Default for RateConfig {
    fn default() -> RateConfig {
        RateConfig {
            read_burst: 200,
            read_per_second: 20.0,
            mutate_burst: 30,
            mutate_per_second: 1.0,
            send_per_hour: 20,
            send_per_day: 100,
            tools: BTreeMap::new(),
        }
    }
}

/// One tool's bucket in `[rate_limits.tools.NAME]`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    pub burst: u32,
    pub per_second: f64,
}

/// Largest accepted burst or window count.
const MAX_COUNT: u32 = 1_000_000;
/// Accepted refill rates, per second.
const MIN_RATE: f64 = 0.000_1;
const MAX_RATE: f64 = 100_000.0;

fn check_count(name: &str, value: u32) -> Result<(), String> {
    if (1..=MAX_COUNT).contains(&value) {
        Ok(())
    } else {
        Err(format!("{name} = {value} is out of range (1..={MAX_COUNT})"))
    }
}

fn check_rate(name: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && (MIN_RATE..=MAX_RATE).contains(&value) {
        Ok(())
    } else {
        Err(format!("{name} = {value} is out of range ({MIN_RATE}..={MAX_RATE})"))
    }
}

impl RateConfig {
    /// Range checks, naming the key; `known_tools` is the list `[rate_limits.tools]` may name.
    pub fn validate(&self, known_tools: &[&str]) -> Result<(), String> {
        check_count("rate_limits.read_burst", self.read_burst)?;
        check_rate("rate_limits.read_per_second", self.read_per_second)?;
        check_count("rate_limits.mutate_burst", self.mutate_burst)?;
        check_rate("rate_limits.mutate_per_second", self.mutate_per_second)?;
        check_count("rate_limits.send_per_hour", self.send_per_hour)?;
        check_count("rate_limits.send_per_day", self.send_per_day)?;
        for (tool, b) in &self.tools {
            if !known_tools.contains(&tool.as_str()) {
                return Err(format!("unknown tool `{}` in [rate_limits.tools]", tool.escape_default()));
            }
            check_count(&format!("rate_limits.tools.{tool}.burst"), b.burst)?;
            check_rate(&format!("rate_limits.tools.{tool}.per_second"), b.per_second)?;
        }
        Ok(())
    }
}

/// `[circuit_breaker]`: when an account's server keeps failing, stop trying for a while.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Connection or protocol failures within `window_ms` that open the circuit.
    pub failures: u32,
    /// The sliding window the failures are counted in.
    pub window_ms: u64,
    /// How long the circuit stays open the first time.
    pub open_ms: u64,
    /// Cap of the open time, which doubles after each failed probe.
    pub max_open_ms: u64,
    /// A half-open probe that reports nothing within this time is given up, and another allowed.
    pub probe_timeout_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig { failures: 5, window_ms: 60_000, open_ms: 30_000, max_open_ms: 600_000, probe_timeout_ms: 120_000 }
    }
}

impl BreakerConfig {
    /// Range checks, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(&str, u64, u64, u64); 5] = [
            ("circuit_breaker.failures", u64::from(self.failures), 1, 1000),
            ("circuit_breaker.window_ms", self.window_ms, 1000, 86_400_000),
            ("circuit_breaker.open_ms", self.open_ms, 100, 86_400_000),
            ("circuit_breaker.max_open_ms", self.max_open_ms, 100, 86_400_000),
            ("circuit_breaker.probe_timeout_ms", self.probe_timeout_ms, 1000, 3_600_000),
        ];
        for (name, value, min, max) in checks {
            if value < min || value > max {
                return Err(format!("{name} = {value} is out of range ({min}..={max})"));
            }
        }
        if self.max_open_ms < self.open_ms {
            return Err("circuit_breaker.max_open_ms must not be below circuit_breaker.open_ms".into());
        }
        Ok(())
    }
}

/// Milliseconds, rounded up, for retry hints.
pub(crate) fn ceil_ms(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// "3 min 20 s", "27.5 s", "800 ms": a readable duration for messages.
pub(crate) fn human(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1000..=59_999 if ms % 1000 == 0 => format!("{} s", ms / 1000),
        1000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => {
            let s = ms.div_ceil(1000);
            let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
            match (h, m, s) {
                (0, m, 0) => format!("{m} min"),
                (0, m, s) => format!("{m} min {s} s"),
                (h, 0, _) => format!("{h} h"),
                (h, m, _) => format!("{h} h {m} min"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["search", "send_email"];

    #[test]
    fn config_defaults_and_toml_keys() {
        let c: RateConfig = toml::from_str("").unwrap();
        assert_eq!(c, RateConfig::default());
        let c: RateConfig =
            toml::from_str("read_burst = 500\nmutate_per_second = 2\nsend_per_hour = 5\n[tools.search]\nburst = 10\nper_second = 0.5\n")
                .unwrap();
        assert_eq!((c.read_burst, c.mutate_per_second, c.send_per_hour, c.send_per_day), (500, 2.0, 5, 100));
        assert_eq!(c.tools["search"], BucketConfig { burst: 10, per_second: 0.5 });
        c.validate(KNOWN).unwrap();
        let e = toml::from_str::<RateConfig>("read_bursts = 5\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `read_bursts`"), "{e}");
        let b: BreakerConfig = toml::from_str("failures = 3\n").unwrap();
        assert_eq!(b, BreakerConfig { failures: 3, ..BreakerConfig::default() });
        assert!(toml::from_str::<BreakerConfig>("open = 1\n").is_err());
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(RateConfig, &str)] = &[
            (RateConfig { read_burst: 0, ..RateConfig::default() }, "rate_limits.read_burst = 0 is out of range"),
            (RateConfig { mutate_per_second: f64::NAN, ..RateConfig::default() }, "rate_limits.mutate_per_second = NaN"),
            (RateConfig { read_per_second: 0.0, ..RateConfig::default() }, "rate_limits.read_per_second = 0 is out of range"),
            (RateConfig { send_per_day: 0, ..RateConfig::default() }, "rate_limits.send_per_day = 0"),
            (
                RateConfig { tools: [("serch".to_string(), BucketConfig { burst: 1, per_second: 1.0 })].into(), ..RateConfig::default() },
                "unknown tool `serch` in [rate_limits.tools]",
            ),
            (
                RateConfig { tools: [("search".to_string(), BucketConfig { burst: 0, per_second: 1.0 })].into(), ..RateConfig::default() },
                "rate_limits.tools.search.burst = 0",
            ),
        ];
        for (cfg, want) in cases {
            let e = cfg.validate(KNOWN).unwrap_err();
            assert!(e.starts_with(want), "{e}");
        }
        let e = BreakerConfig { max_open_ms: 1000, open_ms: 2000, ..BreakerConfig::default() }.validate().unwrap_err();
        assert_eq!(e, "circuit_breaker.max_open_ms must not be below circuit_breaker.open_ms");
        let e = BreakerConfig { failures: 0, ..BreakerConfig::default() }.validate().unwrap_err();
        assert_eq!(e, "circuit_breaker.failures = 0 is out of range (1..=1000)");
        BreakerConfig::default().validate().unwrap();
    }

    #[test]
    fn tool_classes() {
        for (tool, class) in [
            ("search", ToolClass::Read),
            ("fetch_raw", ToolClass::Read),
            ("download_attachment", ToolClass::Read),
            ("update_flags", ToolClass::Mutate),
            ("delete_folder", ToolClass::Mutate),
            ("some_future_tool", ToolClass::Mutate),
            ("send_email", ToolClass::Send),
            ("send_draft", ToolClass::Send),
        ] {
            assert_eq!(class_of(tool), class, "{tool}");
        }
    }

    #[test]
    fn durations_read_well() {
        for (ms, want) in [
            (800, "800 ms"),
            (2000, "2 s"),
            (27_500, "27.5 s"),
            (180_000, "3 min"),
            (3_580_000, "59 min 40 s"),
            (7_200_000, "2 h"),
            (86_399_000, "23 h 59 min"),
        ] {
            assert_eq!(human(ms), want);
        }
        assert_eq!(ceil_ms(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_ms(Duration::from_millis(5)), 5);
    }

    #[test]
    fn the_fake_clock_moves_only_when_told() {
        let c = FakeClock::new();
        assert_eq!(c.now(), Duration::ZERO);
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now(), Duration::from_millis(1500));
        let real = MonotonicClock::new();
        let a = real.now();
        assert!(real.now() >= a);
    }
}
