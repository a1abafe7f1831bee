//! Diagnostics on stderr, by level, set once from `MAILMOAT_LOG` (`error`, `warn` — the
//! default —, `info`, `debug`). No logging framework: a level in an atomic and a macro.
//!
//! What each level adds:
//! - `info`: startup, every connection (account, host, TLS, mechanism, time), every tool call's
//!   outcome and duration, breaker and auth-block changes.
//! - `debug`: every JSON-RPC method received, every IMAP command (its text: folder names and
//!   search terms, never a credential: logins go through SASL outside this path), every SMTP
//!   command verb, where each secret came from (its source, never its value), token-cache hits.
//!
//! Lines are `mailmoat: LEVEL: text`, with control characters escaped so that server or mail
//! text cannot forge log lines. Secrets never reach these lines: they are never formatted (the
//! `Secret` type has no `Display`, and its `Debug` is `Secret(redacted)`), which the canary tests
//! check at `debug`.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" | "trace" => Some(Level::Debug),
            _ => None,
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);

/// Sets the level from `MAILMOAT_LOG`; an unknown value is reported and the default kept.
pub fn init_from_env() {
    let Some(v) = std::env::var_os("MAILMOAT_LOG") else { return };
    match v.to_str().and_then(Level::parse) {
        Some(l) => set_level(l),
        None => eprintln!("mailmoat: warn: MAILMOAT_LOG must be error, warn, info or debug; keeping warn"),
    }
}

pub fn set_level(l: Level) {
    LEVEL.store(l as u8, Ordering::Relaxed);
}

pub fn enabled(l: Level) -> bool {
    l as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Longest line written; longer ones are cut (a search term or folder name can be long).
const MAX_LINE_CHARS: usize = 2000;

/// Writes one line (use the macros).
pub fn write(l: Level, args: fmt::Arguments<'_>) {
    let text = args.to_string();
    let mut line = String::with_capacity(text.len().min(MAX_LINE_CHARS) + 24);
    line.push_str("mailmoat: ");
    line.push_str(l.as_str());
    line.push_str(": ");
    for (i, c) in text.chars().enumerate() {
        if i == MAX_LINE_CHARS {
            line.push('…');
            break;
        }
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `log_at!(Level::Info, "...", args)`.
#[macro_export]
macro_rules! log_at {
    ($lvl:expr, $($arg:tt)*) => {
        if $crate::log::enabled($lvl) {
            $crate::log::write($lvl, format_args!($($arg)*));
        }
    };
}

/// `info!("...")`: a line at `info`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Info, $($arg)*) };
}

/// `debug!("...")`: a line at `debug`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Debug, $($arg)*) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse(" DEBUG "), Some(Level::Debug));
        assert_eq!(Level::parse("warning"), Some(Level::Warn));
        assert_eq!(Level::parse("verbose"), None);
        assert!(Level::Error < Level::Warn && Level::Info < Level::Debug);
    }
}
