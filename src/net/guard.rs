//! The guard adapter: a `Read + Write` wrapper around the TCP socket, below TLS, that enforces a
//! per-command deadline, a per-command byte budget and cancellation.
//!
//! The `imap` crate has no timeouts and buffers whole responses without a cap, so it must never
//! see a socket that can stall or flood it. The socket gets short OS timeouts (`TICK`); the
//! adapter loops on them internally, so TLS and the crate only ever see data or a hard error.
//! When the guard trips it records why in [`IoControl`], so the caller maps the failure to a
//! precise error without parsing error text, and it keeps failing until re-armed.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::imap::CancelToken;

/// How often a blocked read or write wakes up to check the deadline and the cancel flag.
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// Why the guard stopped the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Trip {
    Timeout { limit: &'static str, ms: u64 },
    Cancelled,
    Limit { limit: &'static str, max: u64 },
}

impl Trip {
    fn message(&self) -> &'static str {
        match self {
            Trip::Timeout { .. } => "timeout",
            Trip::Cancelled => "cancelled",
            Trip::Limit { .. } => "limit",
        }
    }
}

/// The rules for the current phase (one command, or the handshake).
#[derive(Clone, Debug)]
pub(crate) struct Phase {
    pub deadline: Instant,
    pub timeout_limit: &'static str,
    pub timeout_ms: u64,
    /// Bytes that may still be read from the socket in this phase.
    pub budget: u64,
    pub budget_limit: &'static str,
    pub budget_max: u64,
    pub cancel: Option<CancelToken>,
}

impl Phase {
    pub(crate) fn new(
        timeout: Duration,
        timeout_limit: &'static str,
        budget: u64,
        budget_limit: &'static str,
        budget_max: u64,
        cancel: Option<CancelToken>,
    ) -> Phase {
        Phase {
            deadline: Instant::now() + timeout,
            timeout_limit,
            timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
            budget,
            budget_limit,
            budget_max,
            cancel,
        }
    }
}

struct State {
    phase: Option<Phase>,
    trip: Option<Trip>,
    bytes_read: u64,
}

/// Shared control state between the session owner and the adapter inside TLS.
pub(crate) struct IoControl {
    state: Mutex<State>,
}

impl IoControl {
    pub(crate) fn new() -> Arc<IoControl> {
        Arc::new(IoControl { state: Mutex::new(State { phase: None, trip: None, bytes_read: 0 }) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update of plain data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a phase; clears any earlier trip.
    pub(crate) fn arm(&self, phase: Phase) {
        let mut s = self.lock();
        s.phase = Some(phase);
        s.trip = None;
    }

    /// Ends the phase: any I/O until the next `arm` fails (nothing should read between commands).
    pub(crate) fn disarm(&self) {
        self.lock().phase = None;
    }

    /// Why the guard tripped in this phase, if it did.
    pub(crate) fn trip(&self) -> Option<Trip> {
        self.lock().trip.clone()
    }

    /// Total bytes read from the socket over the connection's life.
    #[cfg(test)]
    pub(crate) fn bytes_read(&self) -> u64 {
        self.lock().bytes_read
    }

    fn fail(s: &mut State, trip: Trip) -> io::Error {
        let msg = trip.message();
        s.trip = Some(trip);
        io::Error::other(msg)
    }

    /// Checks cancel and deadline; returns how many bytes may be read now.
    fn gate(&self) -> io::Result<u64> {
        let mut s = self.lock();
        if let Some(t) = &s.trip {
            return Err(io::Error::other(t.message()));
        }
        let Some(p) = &s.phase else {
            return Err(io::Error::other("connection used outside a command"));
        };
        if p.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            return Err(Self::fail(&mut s, Trip::Cancelled));
        }
        if Instant::now() >= p.deadline {
            let trip = Trip::Timeout { limit: p.timeout_limit, ms: p.timeout_ms };
            return Err(Self::fail(&mut s, trip));
        }
        if p.budget == 0 {
            let trip = Trip::Limit { limit: p.budget_limit, max: p.budget_max };
            return Err(Self::fail(&mut s, trip));
        }
        Ok(p.budget)
    }

    fn consumed(&self, n: usize) {
        let mut s = self.lock();
        s.bytes_read += n as u64;
        if let Some(p) = &mut s.phase {
            p.budget = p.budget.saturating_sub(n as u64);
        }
    }
}

/// The socket as TLS sees it.
pub(crate) struct Guarded {
    tcp: TcpStream,
    ctl: Arc<IoControl>,
}

impl Guarded {
    pub(crate) fn new(tcp: TcpStream, ctl: Arc<IoControl>) -> io::Result<Guarded> {
        tcp.set_read_timeout(Some(TICK))?;
        tcp.set_write_timeout(Some(TICK))?;
        Ok(Guarded { tcp, ctl })
    }
}

fn is_tick(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

impl Read for Guarded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let allowed = self.ctl.gate()?;
            let n = buf.len().min(usize::try_from(allowed).unwrap_or(usize::MAX));
            match self.tcp.read(&mut buf[..n]) {
                Ok(got) => {
                    self.ctl.consumed(got);
                    return Ok(got);
                }
                Err(e) if is_tick(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for Guarded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            self.ctl.gate()?;
            match self.tcp.write(buf) {
                Ok(n) => return Ok(n),
                Err(e) if is_tick(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        loop {
            self.ctl.gate()?;
            match self.tcp.flush() {
                Ok(()) => return Ok(()),
                Err(e) if is_tick(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A loopback peer running `serve` on the accepted socket; returns the guarded client side.
    fn pair(serve: impl FnOnce(TcpStream) + Send + 'static) -> (Guarded, Arc<IoControl>, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            serve(s);
        });
        let tcp = TcpStream::connect(addr).unwrap();
        let ctl = IoControl::new();
        (Guarded::new(tcp, ctl.clone()).unwrap(), ctl, peer)
    }

    fn phase(ms: u64, budget: u64, cancel: Option<CancelToken>) -> Phase {
        Phase::new(Duration::from_millis(ms), "limits.command_timeout_ms", budget, "limits.max_response_bytes", budget, cancel)
    }

    #[test]
    fn stalled_peer_hits_the_deadline() {
        let (mut g, ctl, peer) = pair(|mut s| {
            s.write_all(b"* OK hi\r\n").unwrap();
            thread::sleep(Duration::from_millis(1500));
        });
        ctl.arm(phase(600, 1 << 20, None));
        let start = Instant::now();
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        let err = loop {
            match g.read(&mut buf) {
                Ok(0) => panic!("unexpected eof"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        let waited = start.elapsed();
        assert_eq!(got, b"* OK hi\r\n");
        assert_eq!(err.to_string(), "timeout");
        assert_eq!(ctl.trip(), Some(Trip::Timeout { limit: "limits.command_timeout_ms", ms: 600 }));
        assert!(waited >= Duration::from_millis(600) && waited < Duration::from_millis(1200), "{waited:?}");
        // Tripped stays tripped: TLS or the crate retrying gets the same error.
        assert_eq!(g.read(&mut buf).unwrap_err().to_string(), "timeout");
        peer.join().unwrap();
    }

    #[test]
    fn trickling_peer_cannot_extend_the_deadline() {
        let (mut g, ctl, peer) = pair(|mut s| {
            for _ in 0..40 {
                if s.write_all(b"x").is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        });
        ctl.arm(phase(500, 1 << 20, None));
        let mut buf = [0u8; 64];
        let err = loop {
            match g.read(&mut buf) {
                Ok(0) => panic!("unexpected eof"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(err.to_string(), "timeout");
        drop(g);
        peer.join().unwrap();
    }

    #[test]
    fn cancellation_interrupts_a_blocked_read() {
        let (mut g, ctl, peer) = pair(|_s| thread::sleep(Duration::from_millis(2000)));
        let token = CancelToken::default();
        ctl.arm(phase(10_000, 1 << 20, Some(token.clone())));
        let t2 = token.clone();
        let canceller = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            t2.cancel();
        });
        let start = Instant::now();
        let err = g.read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(err.to_string(), "cancelled");
        assert_eq!(ctl.trip(), Some(Trip::Cancelled));
        assert!(start.elapsed() < Duration::from_millis(1000), "{:?}", start.elapsed());
        canceller.join().unwrap();
        drop(g);
        peer.join().unwrap();
    }

    #[test]
    fn budget_stops_a_flood() {
        let (mut g, ctl, peer) = pair(|mut s| {
            let chunk = [b'A'; 4096];
            while s.write_all(&chunk).is_ok() {}
        });
        ctl.arm(phase(10_000, 10_000, None));
        let mut total = 0usize;
        let mut buf = [0u8; 3000];
        let err = loop {
            match g.read(&mut buf) {
                Ok(0) => panic!("unexpected eof"),
                Ok(n) => total += n,
                Err(e) => break e,
            }
        };
        assert_eq!(total, 10_000);
        assert_eq!(err.to_string(), "limit");
        assert_eq!(ctl.trip(), Some(Trip::Limit { limit: "limits.max_response_bytes", max: 10_000 }));
        assert_eq!(ctl.bytes_read(), 10_000);
        drop(g);
        peer.join().unwrap();
    }

    #[test]
    fn rearming_resets_budget_and_trip_and_disarmed_io_fails() {
        let (mut g, ctl, peer) = pair(|mut s| {
            s.write_all(b"0123456789").unwrap();
            thread::sleep(Duration::from_millis(300));
        });
        let mut buf = [0u8; 4];
        assert_eq!(g.read(&mut buf).unwrap_err().to_string(), "connection used outside a command");
        ctl.arm(phase(5_000, 4, None));
        assert_eq!(g.read(&mut buf).unwrap(), 4);
        assert_eq!(g.read(&mut buf).unwrap_err().to_string(), "limit");
        ctl.arm(phase(5_000, 4, None));
        assert_eq!(ctl.trip(), None);
        assert_eq!(g.read(&mut buf).unwrap(), 4);
        ctl.disarm();
        assert!(g.write(b"x").is_err());
        drop(g);
        peer.join().unwrap();
    }
}
