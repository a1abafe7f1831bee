//! A scripted fake IMAP server for hostile-server tests: TLS with a certificate from a throwaway
//! test CA (see [`TestCa`]), a thread per connection, and per connection a [`Plan`]: how the
//! transport is set up and a script of [`Step`]s (send bytes, expect a command, serve normally
//! until a command, sleep, stream, drip, close, stall). Between and after the steps a
//! well-behaved responder answers from a small in-memory [`Mailbox`], so that a plan only has to
//! script its misbehaviour. A plan can also carry [`Rule`]s, canned answers to every command
//! that starts a certain way, which take the place of the well-behaved answer wherever the
//! responder serves. Plans are queued: each new connection takes the next one, and uses the
//! default plan (well-behaved unless changed) when the queue is empty.
//!
//! Everything a client sends is recorded per connection (after TLS), for canary checks.
//!
//! [`FakeImap::client`] makes an `ImapClient` for an account on the fake, for tests that drive
//! `src/imap` directly.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mailmoat::config::{Account, Config, Limits};
use mailmoat::imap::ImapClient;

use super::dovecot::TestCa;

/// What the well-behaved responder announces by default (no SORT, no LITERAL+).
pub const DEFAULT_CAPS: &str = "IMAP4rev1 AUTH=PLAIN UNSELECT";
/// Longest command line the fake reads before giving up on the connection.
const MAX_COMMAND: usize = 1 << 20;
/// How long a blocked read or write of the fake may take before it gives up (a safety net: the
/// tests end connections long before this).
const IO_SAFETY: Duration = Duration::from_secs(60);

/// How a connection is set up before the script runs.
#[derive(Clone)]
pub enum Transport {
    /// Implicit TLS with the fake's own certificate.
    Tls,
    /// Implicit TLS with another identity (a certificate from another CA, ...).
    TlsWith(native_tls::TlsAcceptor),
    /// No TLS at all: a plain port.
    Plain,
    /// A plain greeting announcing STARTTLS (plus the plan's capabilities), CAPABILITY answered,
    /// then STARTTLS upgrades to TLS with the fake's own certificate. `Step::Greet` is skipped
    /// after the upgrade (the greeting came before it).
    Starttls,
    /// Accept the TCP connection, then never send a byte (a stalled TLS handshake); what the
    /// client sends is recorded until it hangs up.
    Silent,
}

/// One step of a connection's script.
#[derive(Clone, Debug)]
pub enum Step {
    /// The greeting, `* OK [CAPABILITY <caps>] fake ready`.
    Greet,
    /// Raw bytes.
    Send(Vec<u8>),
    /// Bytes with every `{tag}` replaced by the tag of the last command read.
    Reply(Vec<u8>),
    /// Reads one command; it must start (after its tag, case-insensitively) with this text,
    /// else the mismatch is recorded in [`FakeImap::errors`] and the connection closed.
    Expect(String),
    /// The well-behaved responder answers commands until one starting (after its tag,
    /// case-insensitively) with this text arrives; that one is read (its tag remembered) but not
    /// answered.
    ServeUntil(String),
    Sleep(Duration),
    /// `total` bytes of `fill`, in 64 KiB writes, until done or the client hangs up.
    Stream {
        total: u64,
        fill: u8,
    },
    /// These bytes, one at a time, `every` apart.
    Drip(Vec<u8>, Duration),
    /// The same bytes `n` times (a flood of lines), in large writes.
    Repeat(Vec<u8>, usize),
    /// Closes the connection (TCP FIN, no TLS close_notify).
    Close,
    /// Reads and discards whatever comes until the client hangs up.
    Stall,
}

impl Step {
    /// [`Step::Reply`] from text or bytes.
    pub fn reply(data: impl AsRef<[u8]>) -> Step {
        Step::Reply(data.as_ref().to_vec())
    }
}

/// A canned answer: a command that starts (after its tag, case-insensitively) with `prefix` is
/// answered by running `steps` instead of the well-behaved responder, every time it arrives
/// while the responder serves (in [`Step::ServeUntil`] and after the script). A SELECT or
/// EXAMINE answered so still selects its folder for the responder.
#[derive(Clone, Debug)]
pub struct Rule {
    pub prefix: String,
    pub steps: Vec<Step>,
    /// The command's synchronizing literal is not continued: the steps answer the command line
    /// that announces it, and the literal is never read (a server refusing an APPEND early).
    pub before_literal: bool,
}

/// A connection's transport, capabilities, script and canned answers.
#[derive(Clone)]
pub struct Plan {
    pub transport: Transport,
    /// What the greeting, CAPABILITY and the login answer announce.
    pub caps: String,
    pub steps: Vec<Step>,
    /// Checked in order; the first that matches answers.
    pub rules: Vec<Rule>,
}

impl Plan {
    /// Greets and serves well.
    pub fn good() -> Plan {
        Plan { transport: Transport::Tls, caps: DEFAULT_CAPS.into(), steps: vec![Step::Greet], rules: Vec::new() }
    }

    /// Greets, serves well until a command starting with `prefix` (e.g. `"UID FETCH"`,
    /// `"EXAMINE"`), then runs `steps` (and serves well after them if the connection is open).
    pub fn at(prefix: &str, steps: Vec<Step>) -> Plan {
        let mut all = vec![Step::Greet, Step::ServeUntil(prefix.into())];
        all.extend(steps);
        Plan { steps: all, ..Plan::good() }
    }

    /// Exactly these steps (no greeting unless listed).
    pub fn script(steps: Vec<Step>) -> Plan {
        Plan { steps, ..Plan::good() }
    }

    pub fn transport(mut self, t: Transport) -> Plan {
        self.transport = t;
        self
    }

    pub fn caps(mut self, caps: &str) -> Plan {
        self.caps = caps.into();
        self
    }

    /// Adds a [`Rule`]: every command starting with `prefix` is answered by `steps`.
    pub fn on(mut self, prefix: &str, steps: Vec<Step>) -> Plan {
        self.rules.push(Rule { prefix: prefix.into(), steps, before_literal: false });
        self
    }

    /// Adds a [`Rule`] answering every command starting with `prefix` with `reply` (a
    /// [`Step::Reply`]: `{tag}` is the command's tag).
    pub fn answer(self, prefix: &str, reply: impl AsRef<[u8]>) -> Plan {
        self.on(prefix, vec![Step::reply(reply)])
    }

    /// Adds a [`Rule`] answering a command starting with `prefix` with `reply` as soon as its
    /// line announces a synchronizing literal: no continuation is sent, the literal never read.
    pub fn refuse_literal(mut self, prefix: &str, reply: impl AsRef<[u8]>) -> Plan {
        self.rules.push(Rule { prefix: prefix.into(), steps: vec![Step::reply(reply)], before_literal: true });
        self
    }
}

/// One message of the fake mailbox.
#[derive(Clone, Debug)]
pub struct Message {
    pub uid: u32,
    pub flags: Vec<String>,
    pub internal_date: String,
    pub raw: Vec<u8>,
}

impl Message {
    pub fn header(&self) -> &[u8] {
        match self.raw.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(p) => &self.raw[..p + 4],
            None => &self.raw,
        }
    }
}

/// One folder of the fake mailbox.
#[derive(Clone, Debug)]
pub struct Folder {
    /// As sent on the wire (modified UTF-7), without quotes.
    pub name: String,
    pub uidvalidity: u32,
    pub messages: Vec<Message>,
}

impl Folder {
    pub fn uidnext(&self) -> u32 {
        self.messages.iter().map(|m| m.uid).max().unwrap_or(0) + 1
    }
}

/// The mailbox the well-behaved responder serves.
#[derive(Clone, Debug)]
pub struct Mailbox {
    pub folders: Vec<Folder>,
}

/// A simple message with this subject and body.
pub fn message(uid: u32, subject: &str, body: &str) -> Message {
    let raw = format!(
        "Date: Mon, 06 Jan 2025 10:0{m}:00 +0000\r\nFrom: Sender {uid} <sender{uid}@example.test>\r\nTo: me@example.test\r\nSubject: {subject}\r\nMessage-ID: <fake-{uid}@example.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        m = uid % 10
    );
    Message { uid, flags: Vec::new(), internal_date: "06-Jan-2025 10:00:00 +0000".into(), raw: raw.into_bytes() }
}

impl Default for Mailbox {
    /// INBOX (UIDVALIDITY 7) with messages 1..=3, Archive (UIDVALIDITY 9) with one message.
    fn default() -> Mailbox {
        let inbox = (1..=3).map(|i| message(i, &format!("Message {i}"), &format!("Body of message {i}."))).collect();
        Mailbox {
            folders: vec![
                Folder { name: "INBOX".into(), uidvalidity: 7, messages: inbox },
                Folder { name: "Archive".into(), uidvalidity: 9, messages: vec![message(1, "Archived", "Old.")] },
            ],
        }
    }
}

/// What one connection received.
#[derive(Clone, Debug, Default)]
pub struct ConnLog {
    /// Every byte the client sent (after TLS when TLS was set up).
    pub received: Vec<u8>,
    /// Every command line read (literals included), CRLF removed.
    pub commands: Vec<String>,
    /// Every literal read, as sent.
    pub literals: Vec<Vec<u8>>,
    pub closed: bool,
}

struct Shared {
    plans: Mutex<VecDeque<Plan>>,
    default_plan: Mutex<Plan>,
    mailbox: Mutex<Mailbox>,
    logs: Mutex<Vec<Arc<Mutex<ConnLog>>>>,
    errors: Mutex<Vec<String>>,
    sockets: Mutex<Vec<TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    stop: AtomicBool,
    open: AtomicUsize,
    acceptor: native_tls::TlsAcceptor,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running fake server. Dropping it closes every connection and removes its directory.
pub struct FakeImap {
    pub host: String,
    pub port: u16,
    /// The test CA whose leaf the fake presents (trust anchor for clients).
    pub ca: TestCa,
    pub dir: PathBuf,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// A TLS acceptor presenting `ca`'s leaf certificate.
pub fn acceptor(ca: &TestCa) -> native_tls::TlsAcceptor {
    let cert = std::fs::read(&ca.cert_pem).expect("read test cert");
    let key = std::fs::read(&ca.key_pem).expect("read test key");
    let identity = native_tls::Identity::from_pkcs8(&cert, &key).expect("test identity");
    native_tls::TlsAcceptor::new(identity).expect("tls acceptor")
}

/// A leaf certificate signed by `ca` for the DNS name `dns` only (for wrong-host-name tests),
/// written to `dir`; returns an acceptor presenting it.
pub fn acceptor_for_name(ca: &TestCa, dns: &str, dir: &Path) -> native_tls::TlsAcceptor {
    std::fs::create_dir_all(dir).expect("create leaf dir");
    let (cnf, key, csr, cert) = (dir.join("leaf.cnf"), dir.join("leaf.key"), dir.join("leaf.csr"), dir.join("leaf.pem"));
    std::fs::write(
        &cnf,
        format!(
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {dns}\n[v3]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\nsubjectAltName = DNS:{dns}\n"
        ),
    )
    .expect("write leaf.cnf");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("openssl").args(args).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    run(&[
        &os("req"),
        &os("-new"),
        &os("-newkey"),
        &os("ec"),
        &os("-pkeyopt"),
        &os("ec_paramgen_curve:prime256v1"),
        &os("-nodes"),
        &os("-config"),
        cnf.as_os_str(),
        &os("-keyout"),
        key.as_os_str(),
        &os("-out"),
        csr.as_os_str(),
    ]);
    run(&[
        &os("x509"),
        &os("-req"),
        &os("-sha256"),
        &os("-days"),
        &os("30"),
        &os("-in"),
        csr.as_os_str(),
        &os("-CA"),
        ca.ca_pem.as_os_str(),
        &os("-CAkey"),
        ca.dir.join("ca.key").as_os_str(),
        &os("-set_serial"),
        &os("0x5eed"),
        &os("-extfile"),
        cnf.as_os_str(),
        &os("-extensions"),
        &os("v3"),
        &os("-out"),
        cert.as_os_str(),
    ]);
    let identity = native_tls::Identity::from_pkcs8(&std::fs::read(&cert).unwrap(), &std::fs::read(&key).unwrap()).expect("leaf identity");
    native_tls::TlsAcceptor::new(identity).expect("tls acceptor")
}

impl FakeImap {
    /// Starts a fake on `bind` (e.g. "127.0.0.1"), with a fresh test CA in `dir` (created).
    pub fn start(dir: &Path, bind: &str) -> FakeImap {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let ca = TestCa::create(&dir.join("ca"));
        let listener = TcpListener::bind((bind, 0)).unwrap_or_else(|e| panic!("cannot bind {bind}: {e}"));
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            plans: Mutex::new(VecDeque::new()),
            default_plan: Mutex::new(Plan::good()),
            mailbox: Mutex::new(Mailbox::default()),
            logs: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
            sockets: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            acceptor: acceptor(&ca),
        });
        let sh = shared.clone();
        let accept = thread::spawn(move || {
            for tcp in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(tcp) = tcp else { continue };
                let plan = lock(&sh.plans).pop_front().unwrap_or_else(|| lock(&sh.default_plan).clone());
                let log = Arc::new(Mutex::new(ConnLog::default()));
                lock(&sh.logs).push(log.clone());
                if let Ok(clone) = tcp.try_clone() {
                    lock(&sh.sockets).push(clone);
                }
                sh.open.fetch_add(1, Ordering::SeqCst);
                let worker_shared = sh.clone();
                let h = thread::spawn(move || {
                    connection(&worker_shared, tcp, plan, &log);
                    lock(&log).closed = true;
                    worker_shared.open.fetch_sub(1, Ordering::SeqCst);
                });
                lock(&sh.workers).push(h);
            }
        });
        FakeImap { host: bind.to_string(), port, ca, dir: dir.to_path_buf(), shared, accept: Some(accept) }
    }

    /// Starts a fake on 127.0.0.1 in a fresh directory under the system temp dir (`name` in its
    /// name) that serves every connection by `plan`.
    pub fn serving(name: &str, plan: Plan) -> FakeImap {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("mm-fakeimap-{}-{n}-{name}", std::process::id()));
        let fake = FakeImap::start(&dir, "127.0.0.1");
        fake.set_default(plan);
        fake
    }

    /// Queues a plan for the next new connection.
    pub fn push(&self, plan: Plan) {
        lock(&self.shared.plans).push_back(plan);
    }

    /// The plan of connections when the queue is empty.
    pub fn set_default(&self, plan: Plan) {
        *lock(&self.shared.default_plan) = plan;
    }

    /// Plans still queued.
    pub fn queued(&self) -> usize {
        lock(&self.shared.plans).len()
    }

    /// Changes the mailbox (seen by every connection from its next command on).
    pub fn mailbox<T>(&self, f: impl FnOnce(&mut Mailbox) -> T) -> T {
        f(&mut lock(&self.shared.mailbox))
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        lock(&self.shared.logs).len()
    }

    /// Connections whose handler is still running.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// What each connection received, in accept order.
    pub fn logs(&self) -> Vec<ConnLog> {
        lock(&self.shared.logs).iter().map(|l| lock(l).clone()).collect()
    }

    /// Every byte received on every connection.
    pub fn received(&self) -> Vec<u8> {
        self.logs().into_iter().flat_map(|l| l.received).collect()
    }

    /// Every command line received, tags removed, in order.
    pub fn commands(&self) -> Vec<String> {
        self.logs().into_iter().flat_map(|l| l.commands).map(|c| c.split_once(' ').map_or(c.clone(), |(_, r)| r.to_string())).collect()
    }

    /// Script expectations that failed.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.shared.errors).clone()
    }

    /// An `ImapClient` for account `fake` on this server, built from config text by
    /// `Config::parse` as the binary would: host `localhost`, implicit TLS trusting the fake's
    /// CA, user `me` with a password from a file; `adjust` changes the account and the limits.
    pub fn client(&self, adjust: impl FnOnce(&mut Account, &mut Limits)) -> ImapClient {
        let pw = self.dir.join("password");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&pw).expect("password file");
            f.write_all(b"fake-password\n").expect("write password file");
        }
        let text = format!(
            "[accounts.fake]\nemail = \"me@example.test\"\n[accounts.fake.imap]\nhost = \"localhost\"\nport = {}\nusername = \"me\"\npassword = {{ file = {:?} }}\nca_file = {:?}\n",
            self.port,
            pw.to_str().expect("UTF-8 path"),
            self.ca.ca_pem.to_str().expect("UTF-8 path")
        );
        let cfg = Config::parse(&text, Path::new("/test/fake.toml")).expect("fake account config parses");
        let (mut account, mut limits) = (cfg.accounts["fake"].clone(), cfg.limits);
        adjust(&mut account, &mut limits);
        ImapClient::new(Arc::new(account), Arc::new(limits))
    }

    /// Waits until no connection handler runs (at most `limit`); returns whether that happened.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.open_connections() == 0 {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.open_connections() == 0
    }
}

impl Drop for FakeImap {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((self.host.as_str(), self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for s in lock(&self.shared.sockets).iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let workers: Vec<_> = lock(&self.shared.workers).drain(..).collect();
        for w in workers {
            let _ = w.join();
        }
        if std::env::var_os("MAILMOAT_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// The server side of one connection, recording what it reads.
struct Peer<'a> {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    pos: usize,
    log: &'a Mutex<ConnLog>,
    tag: String,
    /// Prefixes of commands whose synchronizing literal is not continued.
    hold: Vec<String>,
}

impl<'a> Peer<'a> {
    fn new(stream: Box<dyn Stream>, log: &'a Mutex<ConnLog>, hold: Vec<String>) -> Peer<'a> {
        Peer { stream, buf: Vec::new(), pos: 0, log, tag: String::new(), hold }
    }

    /// Reads more into the buffer; false at EOF or on an error.
    fn fill(&mut self) -> bool {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    lock(self.log).received.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    fn read_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(p) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let line = self.buf[self.pos..self.pos + p + 1].to_vec();
                self.pos += p + 1;
                return Some(line);
            }
            if self.buf.len() - self.pos > MAX_COMMAND || !self.fill() {
                return None;
            }
        }
    }

    fn read_n(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() - self.pos < n {
            if !self.fill() {
                return None;
            }
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Some(out)
    }

    /// One command with its literals (synchronizing ones get a continuation); sets `tag`.
    /// Returns the text after the tag.
    fn command(&mut self) -> Option<String> {
        let mut full = Vec::new();
        loop {
            let line = self.read_line()?;
            let literal = literal_size(&line);
            full.extend_from_slice(&line);
            match literal {
                Some((n, sync)) => {
                    if sync && self.holds(&full) {
                        break;
                    }
                    if sync && !self.send(b"+ go ahead\r\n") {
                        return None;
                    }
                    let data = self.read_n(n)?;
                    full.extend_from_slice(&data);
                    lock(self.log).literals.push(data);
                }
                None => break,
            }
        }
        let text = String::from_utf8_lossy(&full).trim_end_matches(['\r', '\n']).to_string();
        lock(self.log).commands.push(text.clone());
        let (tag, rest) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        self.tag = tag.to_string();
        Some(rest.to_string())
    }

    /// Whether the command read so far (tag first) is one whose literal is not continued.
    fn holds(&self, so_far: &[u8]) -> bool {
        let text = String::from_utf8_lossy(so_far);
        let rest = text.split_once(' ').map_or("", |(_, r)| r);
        self.hold.iter().any(|p| starts_with_ci(rest, p))
    }

    fn send(&mut self, data: &[u8]) -> bool {
        self.stream.write_all(data).and_then(|()| self.stream.flush()).is_ok()
    }
}

/// `{n}\r\n` or `{n+}\r\n` at the end of a line: (n, synchronizing).
fn literal_size(line: &[u8]) -> Option<(usize, bool)> {
    let body = line.strip_suffix(b"}\r\n")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let mut digits = &body[open + 1..];
    let sync = !digits.ends_with(b"+") && !digits.ends_with(b"-");
    if !sync {
        digits = &digits[..digits.len() - 1];
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, sync))
}

fn starts_with_ci(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len() && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn connection(sh: &Shared, tcp: TcpStream, plan: Plan, log: &Mutex<ConnLog>) {
    // The accept loop keeps a clone of the socket (to end stalls on drop), so the connection is
    // only really closed by a shutdown.
    let end = tcp.try_clone();
    serve_connection(sh, tcp, plan, log);
    if let Ok(s) = end {
        let _ = s.shutdown(Shutdown::Both);
    }
}

fn serve_connection(sh: &Shared, tcp: TcpStream, plan: Plan, log: &Mutex<ConnLog>) {
    let _ = tcp.set_read_timeout(Some(IO_SAFETY));
    let _ = tcp.set_write_timeout(Some(IO_SAFETY));
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = match plan.transport {
        Transport::Tls => match sh.acceptor.accept(tcp) {
            Ok(s) => Box::new(s),
            Err(_) => return,
        },
        Transport::TlsWith(ref a) => match a.accept(tcp) {
            Ok(s) => Box::new(s),
            Err(_) => return,
        },
        Transport::Plain => Box::new(tcp),
        Transport::Starttls => {
            let mut plain = Peer::new(Box::new(tcp.try_clone().expect("clone socket")), log, Vec::new());
            let caps = format!("{} STARTTLS", plan.caps);
            if !plain.send(format!("* OK [CAPABILITY {caps}] fake ready\r\n").as_bytes()) {
                return;
            }
            loop {
                let Some(cmd) = plain.command() else { return };
                let tag = plain.tag.clone();
                if starts_with_ci(&cmd, "STARTTLS") {
                    if !plain.send(format!("{tag} OK begin TLS now\r\n").as_bytes()) {
                        return;
                    }
                    break;
                }
                let answer = if starts_with_ci(&cmd, "CAPABILITY") {
                    format!("* CAPABILITY {caps}\r\n{tag} OK done\r\n")
                } else {
                    format!("{tag} BAD STARTTLS first\r\n")
                };
                if !plain.send(answer.as_bytes()) {
                    return;
                }
            }
            drop(plain);
            match sh.acceptor.accept(tcp) {
                Ok(s) => Box::new(s),
                Err(_) => return,
            }
        }
        Transport::Silent => {
            let mut peer = Peer::new(Box::new(tcp), log, Vec::new());
            while peer.fill() {
                peer.buf.clear();
                peer.pos = 0;
            }
            return;
        }
    };
    let hold = plan.rules.iter().filter(|r| r.before_literal).map(|r| r.prefix.clone()).collect();
    let mut peer = Peer::new(stream, log, hold);
    let mut responder = Responder { sh, caps: plan.caps.clone(), rules: plan.rules.clone(), selected: None };
    for step in &plan.steps {
        if matches!((&plan.transport, step), (Transport::Starttls, Step::Greet)) {
            continue;
        }
        if !run_step(sh, &mut peer, &mut responder, step) {
            return;
        }
    }
    // After the script: serve well until the client leaves.
    while let Some(cmd) = peer.command() {
        if !responder.answer(&mut peer, &cmd) {
            return;
        }
    }
}

/// Runs one step; false when the connection is over.
fn run_step(sh: &Shared, peer: &mut Peer<'_>, responder: &mut Responder<'_>, step: &Step) -> bool {
    match step {
        Step::Greet => {
            let g = format!("* OK [CAPABILITY {}] fake ready\r\n", responder.caps);
            peer.send(g.as_bytes())
        }
        Step::Send(data) => peer.send(data),
        Step::Reply(data) => {
            let mut out = Vec::with_capacity(data.len());
            let mut rest = &data[..];
            while let Some(p) = rest.windows(5).position(|w| w == b"{tag}") {
                out.extend_from_slice(&rest[..p]);
                out.extend_from_slice(peer.tag.as_bytes());
                rest = &rest[p + 5..];
            }
            out.extend_from_slice(rest);
            peer.send(&out)
        }
        Step::Expect(prefix) => match peer.command() {
            Some(cmd) if starts_with_ci(&cmd, prefix) => true,
            other => {
                lock(&sh.errors).push(format!("expected {prefix:?}, got {other:?}"));
                false
            }
        },
        Step::ServeUntil(prefix) => loop {
            let Some(cmd) = peer.command() else { return false };
            if starts_with_ci(&cmd, prefix) {
                responder.note(&cmd);
                return true;
            }
            if !responder.answer(peer, &cmd) {
                return false;
            }
        },
        Step::Sleep(d) => {
            thread::sleep(*d);
            true
        }
        Step::Stream { total, fill } => {
            let chunk = vec![*fill; 64 * 1024];
            let mut left = *total;
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
                if peer.stream.write_all(&chunk[..n]).is_err() {
                    return false;
                }
                left -= n as u64;
            }
            peer.stream.flush().is_ok()
        }
        Step::Drip(data, every) => {
            for b in data {
                if !peer.send(std::slice::from_ref(b)) {
                    return false;
                }
                thread::sleep(*every);
            }
            true
        }
        Step::Repeat(line, n) => {
            let per = (256 * 1024 / line.len().max(1)).max(1);
            let block = line.repeat(per);
            let mut left = *n;
            while left > 0 {
                let k = left.min(per);
                if peer.stream.write_all(&block[..k * line.len()]).is_err() {
                    return false;
                }
                left -= k;
            }
            peer.stream.flush().is_ok()
        }
        Step::Close => false,
        Step::Stall => {
            while peer.fill() {
                peer.buf.clear();
                peer.pos = 0;
            }
            false
        }
    }
}

/// The well-behaved part: answers the commands mailmoat sends from the shared mailbox.
struct Responder<'a> {
    sh: &'a Shared,
    caps: String,
    rules: Vec<Rule>,
    selected: Option<String>,
}

/// The first argument: a quoted string (unescaped) or an atom; and the rest.
fn first_arg(s: &str) -> (String, &str) {
    let s = s.trim_start();
    if let Some(q) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => return (out, &q[i + 1..]),
                c => out.push(c),
            }
        }
        (out, "")
    } else {
        let end = s.find(' ').unwrap_or(s.len());
        (s[..end].to_string(), &s[end..])
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A UID set (`1,3:5,7:*`) against the UIDs that exist.
fn in_set(set: &str, uid: u32, max: u32) -> bool {
    set.split(',').any(|part| {
        let num = |t: &str| if t == "*" { Some(max) } else { t.parse::<u32>().ok() };
        match part.split_once(':') {
            Some((a, b)) => match (num(a), num(b)) {
                (Some(a), Some(b)) => (a.min(b)..=a.max(b)).contains(&uid),
                _ => false,
            },
            None => num(part) == Some(uid),
        }
    })
}

impl Responder<'_> {
    /// Follows the state change of a command the script answers instead (a SELECT or EXAMINE
    /// selects the folder).
    fn note(&mut self, cmd: &str) {
        let verb = cmd.split(' ').next().unwrap_or("").to_ascii_uppercase();
        if verb == "EXAMINE" || verb == "SELECT" {
            self.selected = Some(first_arg(&cmd[verb.len()..]).0);
        }
    }

    /// Answers one command (by the first matching rule, else well); false when the connection
    /// should end.
    fn answer(&mut self, peer: &mut Peer<'_>, cmd: &str) -> bool {
        if let Some(rule) = self.rules.iter().find(|r| starts_with_ci(cmd, &r.prefix)) {
            let steps = rule.steps.clone();
            self.note(cmd);
            let sh = self.sh;
            return steps.iter().all(|step| run_step(sh, peer, self, step));
        }
        let tag = peer.tag.clone();
        let upper = cmd.to_ascii_uppercase();
        let verb = upper.split(' ').next().unwrap_or("");
        let caps = self.caps.clone();
        let out = match verb {
            "CAPABILITY" => format!("* CAPABILITY {caps}\r\n{tag} OK done\r\n"),
            "NOOP" | "CHECK" => format!("{tag} OK done\r\n"),
            "LOGOUT" => {
                peer.send(format!("* BYE logging out\r\n{tag} OK done\r\n").as_bytes());
                return false;
            }
            "AUTHENTICATE" => {
                if !peer.send(b"+ \r\n") || peer.read_line().is_none() {
                    return false;
                }
                if let Some(last) = lock(peer.log).commands.last_mut() {
                    last.push_str(" <sasl response follows in received bytes>");
                }
                format!("{tag} OK [CAPABILITY {caps}] logged in\r\n")
            }
            "LOGIN" => format!("{tag} OK [CAPABILITY {caps}] logged in\r\n"),
            "LIST" => {
                let mb = lock(&self.sh.mailbox);
                let mut s = String::new();
                for f in &mb.folders {
                    s.push_str(&format!("* LIST (\\HasNoChildren) \"/\" {}\r\n", quote(&f.name)));
                }
                s + &format!("{tag} OK done\r\n")
            }
            "STATUS" => {
                let (name, _) = first_arg(&cmd[6..]);
                let mb = lock(&self.sh.mailbox);
                match mb.folders.iter().find(|f| f.name == name) {
                    Some(f) => format!(
                        "* STATUS {} (MESSAGES {} UNSEEN {} UIDVALIDITY {} UIDNEXT {})\r\n{tag} OK done\r\n",
                        quote(&f.name),
                        f.messages.len(),
                        f.messages.iter().filter(|m| !m.flags.iter().any(|x| x == "\\Seen")).count(),
                        f.uidvalidity,
                        f.uidnext()
                    ),
                    None => format!("{tag} NO [NONEXISTENT] no such mailbox\r\n"),
                }
            }
            "EXAMINE" | "SELECT" => {
                let (name, _) = first_arg(&cmd[verb.len()..]);
                let mb = lock(&self.sh.mailbox);
                match mb.folders.iter().find(|f| f.name == name) {
                    Some(f) => {
                        self.selected = Some(name);
                        let mode = if verb == "EXAMINE" { "READ-ONLY" } else { "READ-WRITE" };
                        format!(
                            "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)\r\n* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft \\*)] ok\r\n* {} EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY {}] ok\r\n* OK [UIDNEXT {}] ok\r\n{tag} OK [{mode}] done\r\n",
                            f.messages.len(),
                            f.uidvalidity,
                            f.uidnext()
                        )
                    }
                    None => {
                        self.selected = None;
                        format!("{tag} NO [NONEXISTENT] no such mailbox\r\n")
                    }
                }
            }
            "UNSELECT" | "CLOSE" => {
                self.selected = None;
                format!("{tag} OK done\r\n")
            }
            "UID" => return self.uid_command(peer, &tag, &cmd[4..]),
            _ => format!("{tag} BAD unknown command\r\n"),
        };
        peer.send(out.as_bytes())
    }

    fn uid_command(&mut self, peer: &mut Peer<'_>, tag: &str, rest: &str) -> bool {
        let upper = rest.to_ascii_uppercase();
        let mut mb = lock(&self.sh.mailbox);
        let Some(folder) = self.selected.as_ref().and_then(|n| mb.folders.iter_mut().find(|f| &f.name == n)) else {
            drop(mb);
            return peer.send(format!("{tag} BAD no mailbox selected\r\n").as_bytes());
        };
        let max = folder.uidnext().saturating_sub(1);
        let mut out = Vec::new();
        if upper.starts_with("SEARCH") {
            let set = upper.strip_prefix("SEARCH UID ").map(|s| s.split(' ').next().unwrap_or("").to_string());
            let uids: Vec<String> =
                folder.messages.iter().filter(|m| set.as_ref().is_none_or(|s| in_set(s, m.uid, max))).map(|m| m.uid.to_string()).collect();
            out.extend_from_slice(format!("* SEARCH {}\r\n", uids.join(" ")).as_bytes());
        } else if upper.starts_with("FETCH ") {
            let (set, items) = rest[6..].split_once(' ').unwrap_or((&rest[6..], ""));
            let items = items.to_ascii_uppercase();
            for (i, m) in folder.messages.iter().enumerate() {
                if !in_set(set, m.uid, max) {
                    continue;
                }
                let mut parts = vec![format!("UID {}", m.uid)];
                if items.contains("FLAGS") {
                    parts.push(format!("FLAGS ({})", m.flags.join(" ")));
                }
                if items.contains("RFC822.SIZE") {
                    parts.push(format!("RFC822.SIZE {}", m.raw.len()));
                }
                if items.contains("INTERNALDATE") {
                    parts.push(format!("INTERNALDATE \"{}\"", m.internal_date));
                }
                out.extend_from_slice(format!("* {} FETCH ({}", i + 1, parts.join(" ")).as_bytes());
                let partial = |key: &str| -> Option<usize> {
                    let at = items.find(key)? + key.len();
                    let spec = items[at..].strip_prefix("<0.")?;
                    spec[..spec.find('>')?].parse().ok()
                };
                if items.contains("BODY.PEEK[HEADER]") {
                    let h = m.header();
                    let h = &h[..h.len().min(partial("BODY.PEEK[HEADER]").unwrap_or(usize::MAX))];
                    out.extend_from_slice(format!(" BODY[HEADER]<0> {{{}}}\r\n", h.len()).as_bytes());
                    out.extend_from_slice(h);
                } else if items.contains("BODY.PEEK[]") {
                    let b = &m.raw[..m.raw.len().min(partial("BODY.PEEK[]").unwrap_or(usize::MAX))];
                    out.extend_from_slice(format!(" BODY[]<0> {{{}}}\r\n", b.len()).as_bytes());
                    out.extend_from_slice(b);
                }
                out.extend_from_slice(b")\r\n");
            }
        } else if upper.starts_with("STORE ") {
            let mut it = rest[6..].splitn(3, ' ');
            let (set, op, list) = (it.next().unwrap_or(""), it.next().unwrap_or("").to_ascii_uppercase(), it.next().unwrap_or(""));
            let flags: Vec<String> = list.trim_matches(['(', ')']).split(' ').filter(|f| !f.is_empty()).map(str::to_string).collect();
            for (i, m) in folder.messages.iter_mut().enumerate() {
                if !in_set(set, m.uid, max) {
                    continue;
                }
                for f in &flags {
                    if op.starts_with('+') && !m.flags.contains(f) {
                        m.flags.push(f.clone());
                    } else if op.starts_with('-') {
                        m.flags.retain(|x| x != f);
                    }
                }
                if !op.ends_with(".SILENT") {
                    out.extend_from_slice(format!("* {} FETCH (UID {} FLAGS ({}))\r\n", i + 1, m.uid, m.flags.join(" ")).as_bytes());
                }
            }
        } else {
            drop(mb);
            return peer.send(format!("{tag} BAD unknown UID command\r\n").as_bytes());
        }
        drop(mb);
        out.extend_from_slice(format!("{tag} OK done\r\n").as_bytes());
        peer.send(&out)
    }
}
