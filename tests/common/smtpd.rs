//! A throwaway Postfix SMTP server on loopback that authenticates against, and delivers into, a
//! running test Dovecot (see `dovecot.rs`), so tests can check that sent mail arrives intact.
//!
//! ```ignore
//! let dc = Dovecot::start(&Seed::Empty);
//! let smtpd = Smtpd::start(&dc);
//! let config = smtpd.mailmoat_config(&dc, "full", SmtpMode::Implicit);
//! // ... send a message with Message-ID <x@example.test> to bob@example.test ...
//! let raw = smtpd.wait_for_message("bob", "<x@example.test>");
//! ```
//!
//! Why Postfix: OpenSMTPD (Debian 12's 6.8.0p2) cannot do server-side TLS with OpenSSL 3: its
//! privilege-separated key engine fails every handshake with "missing private key" (for RSA and
//! ECDSA keys alike; upstream issues #1171 and #1239, fixed only in 7.x). Postfix runs here with
//! every path in one temp directory, so instances run in parallel.
//!
//! How it runs:
//! * Root is required (Postfix's master runs as root and its daemons drop to the `postfix`
//!   user); tests and CI run as root. The instance lives in `mmsm-<pid>-<n>` beside the Dovecot's
//!   directory: config, queue, data, TLS files, log (`postfix.log`, Postfix's own `maillog_file`).
//!   Nothing in /etc/postfix is read except the package's `dynamicmaps.cf` and `postfix-files`.
//! * Listeners on 127.0.0.1: `smtps_port` (implicit TLS), `submission_port` (STARTTLS required
//!   before anything else) and `plain_port` (no STARTTLS at all, but AUTH offered in plaintext:
//!   a correct client must refuse to use it). TLS 1.2+, certificate from a throwaway CA
//!   ([`Smtpd::ca`], valid for localhost and 127.0.0.1); `message_size_limit` is
//!   [`MESSAGE_SIZE_LIMIT`] (advertised as SIZE).
//! * AUTH (PLAIN, LOGIN) goes to the Dovecot's own auth service (Postfix `smtpd_sasl_type =
//!   dovecot`), so the SMTP user and password are the IMAP ones. Dovecot's `auth-client` socket is
//!   mode 0600 for its unprivileged user; `start` makes it 0666 so that Postfix's `postfix` user
//!   can connect (a throwaway instance on a temp path).
//! * Only [`RECIPIENTS`] and [`UTF8_RECIPIENT`] are accepted (others get 550 "User unknown"),
//!   only after AUTH, and nothing is ever relayed elsewhere. Delivery is Dovecot's LDA
//!   (`dovecot-lda`, run by Postfix's `pipe` as the Dovecot user, one run per recipient):
//!   `alice@example.test` and [`UTF8_RECIPIENT`] into INBOX, every other recipient into a folder
//!   named after its local part ("bob", "carol", "dave"), created on first delivery. A
//!   delivered copy starts with the lines Postfix adds (`Return-Path`, `Received`); see
//!   [`strip_trace_headers`].
//! * Postfix runs under a small `sh` watchdog whose stdin is a pipe from the test process, in its
//!   own process group; Drop (or the test process dying) closes the pipe and the group is
//!   SIGKILLed, so no Postfix outlives its test.
#![allow(clippy::too_many_lines)]

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::dovecot::{
    header_value, keep_dirs, mutf7, reap, remove_dir_retrying, toml_str, unique_dir_in, write_private, Dovecot, TestCa, USER,
};

/// Addresses the server accepts (all of them end up in the one Dovecot mailbox).
pub const RECIPIENTS: [&str; 4] = [USER, "bob@example.test", "carol@example.test", "dave@example.test"];
/// A non-ASCII address (needs SMTPUTF8) that the server accepts; delivered to INBOX.
pub const UTF8_RECIPIENT: &str = "ünïcödé@example.test";
/// An address in the same domain that the server refuses with 550.
pub const UNKNOWN_RECIPIENT: &str = "nobody-here@example.test";
/// Postfix's `message_size_limit`, advertised in EHLO as `SIZE`.
pub const MESSAGE_SIZE_LIMIT: u64 = 1_000_000;
/// How long [`Smtpd::wait_for_message`] waits.
pub const DELIVERY_WAIT: Duration = Duration::from_secs(10);

const POSTFIX_DAEMONS: &str = "/usr/lib/postfix/sbin";
const DOVECOT_LDA: &str = "/usr/lib/dovecot/dovecot-lda";

/// Which listener a client config points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpMode {
    /// `smtps_port`, TLS from the first byte.
    Implicit,
    /// `submission_port`, STARTTLS.
    Starttls,
    /// `plain_port` with `tls = "starttls"`: the server never offers STARTTLS.
    StarttlsMissing,
}

/// A running throwaway Postfix. Dropping it stops the server and removes `dir`.
pub struct Smtpd {
    /// "127.0.0.1" (the certificate is also valid for "localhost", which configs use).
    pub host: String,
    /// Implicit TLS.
    pub smtps_port: u16,
    /// STARTTLS, required before AUTH or mail.
    pub submission_port: u16,
    /// No STARTTLS offered; AUTH offered in plaintext (clients must refuse).
    pub plain_port: u16,
    /// The Dovecot user and password (Postfix authenticates through Dovecot).
    pub user: String,
    pub password: String,
    /// `<dir>/smtp-password`, mode 0600: the password and "\n".
    pub password_file: PathBuf,
    /// The CA and leaf the server uses.
    pub ca: TestCa,
    /// Temp root; removed on drop unless `MAILMOAT_KEEP_TEST_DIRS` is set.
    pub dir: PathBuf,
    /// Postfix's log.
    pub log_path: PathBuf,
    maildir: PathBuf,
    dovecot_log: PathBuf,
    stderr_path: PathBuf,
    child: Option<Child>,
    watchdog: Option<ChildStdin>,
    banner: String,
}

impl Smtpd {
    /// Starts Postfix for `dovecot` and waits until it answers (bounded, ~10 s). Panics with the
    /// log tail when it cannot.
    pub fn start(dovecot: &Dovecot) -> Smtpd {
        let euid = command_output(Command::new("id").arg("-u"), "id -u");
        assert!(
            euid.trim() == "0",
            "the SMTP test server (Postfix) needs root: its master process runs as root and drops privileges per daemon; run the tests as root (CI does)"
        );
        assert!(
            Path::new(POSTFIX_DAEMONS).join("master").is_file(),
            "Postfix is not installed ({POSTFIX_DAEMONS}/master missing): apt-get install postfix"
        );
        assert!(Path::new(DOVECOT_LDA).is_file(), "{DOVECOT_LDA} is missing (it comes with dovecot-core)");

        // The Dovecot's generated config tells where its auth socket is and whom it runs as.
        let dc_conf = dovecot.dir.join("dc").join("dovecot.conf");
        let conf_text = fs::read_to_string(&dc_conf).unwrap_or_else(|e| panic!("cannot read {}: {e}", dc_conf.display()));
        let setting = |key: &str| {
            conf_text
                .lines()
                .find_map(|l| l.trim().strip_prefix(key).and_then(|r| r.trim_start().strip_prefix('=')).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("no `{key}` in {}", dc_conf.display()))
        };
        let base_dir = PathBuf::from(setting("base_dir"));
        let mail_user = setting("default_internal_user");
        let auth_socket = base_dir.join("auth-client");
        wait_for_path(&auth_socket);
        // Postfix's smtpd runs as `postfix` and must reach the socket (mode 0600 by default).
        fs::set_permissions(&auth_socket, fs::Permissions::from_mode(0o666))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", auth_socket.display()));

        let dir = unique_dir_in(dovecot.dir.parent().unwrap_or(Path::new("/tmp")), "mmsm");
        let ca = TestCa::create(&dir.join("tls"));
        let conf = dir.join("conf");
        let queue = dir.join("queue");
        let data = dir.join("data");
        for d in [&conf, &queue, &data] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
        }
        let postfix_uid = parse_id(&command_output(Command::new("id").args(["-u", "postfix"]), "id -u postfix"));
        let postdrop_gid = command_output(Command::new("getent").args(["group", "postdrop"]), "getent group postdrop")
            .split(':')
            .nth(2)
            .map(parse_id)
            .unwrap_or_else(|| panic!("no postdrop group (is postfix installed?)"));
        make_queue(&queue, postfix_uid, postdrop_gid);
        std::os::unix::fs::chown(&data, Some(postfix_uid), Some(0)).expect("chown data_directory");
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).expect("chmod data_directory");

        let password_file = dir.join("smtp-password");
        write_private(&password_file, format!("{}\n", dovecot.password).as_bytes());
        // dovecot-lda reads the Dovecot's config plus mailbox autocreation (it runs as the mail
        // user, so the file must be readable).
        let lda_conf = dir.join("lda.conf");
        fs::write(&lda_conf, format!("!include {}\nlda_mailbox_autocreate = yes\nlda_mailbox_autosubscribe = yes\n", dc_conf.display()))
            .expect("write lda.conf");
        fs::set_permissions(&lda_conf, fs::Permissions::from_mode(0o644)).expect("chmod lda.conf");
        let mut vmailbox = String::new();
        for r in RECIPIENTS.iter().chain([&UTF8_RECIPIENT]) {
            vmailbox.push_str(&format!("{r} ok\n"));
        }
        fs::write(conf.join("vmailbox"), vmailbox).expect("write vmailbox");
        fs::write(conf.join("transport"), format!("{USER} mminbox:\n{UTF8_RECIPIENT} mminbox:\n")).expect("write transport");

        let log_path = dir.join("postfix.log");
        let stderr_path = dir.join("stderr.log");
        let instance = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut smtpd = Smtpd {
            host: "127.0.0.1".into(),
            smtps_port: 0,
            submission_port: 0,
            plain_port: 0,
            user: dovecot.user.clone(),
            password: dovecot.password.clone(),
            password_file,
            ca,
            dir: dir.clone(),
            log_path: log_path.clone(),
            maildir: dovecot.maildir.clone(),
            dovecot_log: dovecot.log_path.clone(),
            stderr_path: stderr_path.clone(),
            child: None,
            watchdog: None,
            banner: format!("mailmoat-test-{instance}-{}", std::process::id()),
        };

        let mut attempt = 0;
        loop {
            attempt += 1;
            smtpd.smtps_port = free_port();
            smtpd.submission_port = free_port();
            smtpd.plain_port = free_port();
            fs::write(conf.join("main.cf"), smtpd.main_cf(&auth_socket)).expect("write main.cf");
            fs::write(conf.join("master.cf"), smtpd.master_cf(&mail_user, &lda_conf)).expect("write master.cf");
            for f in [&log_path, &stderr_path] {
                File::create(f).expect("create log file");
            }
            let stderr = OpenOptions::new().append(true).open(&stderr_path).expect("open stderr.log");
            let mut child = Command::new("/bin/sh")
                .arg("-c")
                .arg(WATCHDOG_SCRIPT)
                .arg("mailmoat-postfix-watchdog")
                .arg(Path::new(POSTFIX_DAEMONS).join("master"))
                .arg(&conf)
                .stdin(Stdio::piped())
                .stdout(Stdio::from(stderr.try_clone().expect("clone stderr.log")))
                .stderr(Stdio::from(stderr))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start Postfix: {e}"));
            smtpd.watchdog = child.stdin.take();
            smtpd.child = Some(child);
            match smtpd.wait_ready(Duration::from_secs(10)) {
                Ok(()) => return smtpd,
                Err(why) => {
                    let tail = smtpd.log_tail();
                    smtpd.stop();
                    if tail.contains("in use") && attempt < 8 {
                        continue;
                    }
                    panic!("throwaway Postfix did not start ({why}) after {attempt} attempt(s), dir {}\n{tail}", dir.display());
                }
            }
        }
    }

    fn main_cf(&self, auth_socket: &Path) -> String {
        let d = self.dir.display();
        format!(
            r#"# Generated by tests/common/smtpd.rs for one throwaway test instance.
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
command_directory = /usr/sbin
daemon_directory = {POSTFIX_DAEMONS}
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/postfix.log
maillog_file_prefixes = {d}
myhostname = mx.example.test
mydomain = example.test
myorigin = example.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
append_dot_mydomain = no
biff = no
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
smtpd_banner = $myhostname ESMTP {banner}
smtpd_peername_lookup = no
smtputf8_enable = yes

# Only the test recipients, only after AUTH, never relayed anywhere.
relay_domains =
virtual_mailbox_domains = example.test
virtual_mailbox_maps = texthash:{d}/conf/vmailbox
virtual_transport = mmfolder
transport_maps = texthash:{d}/conf/transport
# One LDA run per recipient (the folder comes from the recipient).
mmfolder_destination_recipient_limit = 1
mminbox_destination_recipient_limit = 1
default_transport = error:5.7.1 this test server delivers nowhere else
relay_transport = error:5.7.1 this test server delivers nowhere else
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
message_size_limit = {limit}

# AUTH through the test Dovecot; offered only where a listener enables it.
smtpd_sasl_type = dovecot
smtpd_sasl_path = {auth}
smtpd_sasl_auth_enable = no
smtpd_tls_auth_only = yes

smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = none
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_loglevel = 1

# Fast, for tests: no sleeping after errors, quick retries.
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
in_flow_delay = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
delay_warning_time = 0
"#,
            banner = self.banner,
            limit = MESSAGE_SIZE_LIMIT,
            auth = auth_socket.display(),
            cert = self.ca.cert_pem.display(),
            key = self.ca.key_pem.display(),
        )
    }

    fn master_cf(&self, mail_user: &str, lda_conf: &Path) -> String {
        let lda = format!("{DOVECOT_LDA} -c {} -d {USER}", lda_conf.display());
        format!(
            "# Generated by tests/common/smtpd.rs. Nothing is chrooted.\n\
             127.0.0.1:{smtps} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes\n\
             127.0.0.1:{sub} inet n - n - - smtpd -o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes\n\
             127.0.0.1:{plain} inet n - n - - smtpd -o smtpd_tls_security_level=none -o smtpd_sasl_auth_enable=yes -o smtpd_tls_auth_only=no\n\
             cleanup unix n - n - 0 cleanup\n\
             qmgr unix n - n 300 1 qmgr\n\
             tlsmgr unix - - n 1000? 1 tlsmgr\n\
             rewrite unix - - n - - trivial-rewrite\n\
             bounce unix - - n - 0 bounce\n\
             defer unix - - n - 0 bounce\n\
             trace unix - - n - 0 bounce\n\
             verify unix - - n - 1 verify\n\
             flush unix n - n 1000? 0 flush\n\
             proxymap unix - - n - - proxymap\n\
             proxywrite unix - - n - 1 proxymap\n\
             showq unix n - n - - showq\n\
             error unix - - n - - error\n\
             retry unix - - n - - error\n\
             discard unix - - n - - discard\n\
             anvil unix - - n - 1 anvil\n\
             scache unix - - n - 1 scache\n\
             postlog unix-dgram n - n - 1 postlogd\n\
             mminbox unix - n n - - pipe flags=R user={mail_user} argv={lda}\n\
             mmfolder unix - n n - - pipe flags=Ru user={mail_user} argv={lda} -m ${{user}}\n",
            smtps = self.smtps_port,
            sub = self.submission_port,
            plain = self.plain_port,
        )
    }

    /// The last lines of Postfix's log (and of the watchdog's stderr, where startup errors land).
    pub fn log_tail(&self) -> String {
        let mut out = tail_lines(&self.log_path, 60);
        let err = tail_lines(&self.stderr_path, 20);
        if !err.trim().is_empty() {
            out.push_str("--- stderr ---\n");
            out.push_str(&err);
        }
        out
    }

    /// The `[accounts.test.smtp]` table for this server (host "localhost", the CA as
    /// `ca_file`, the password from [`Smtpd::password_file`], which this makes sure exists), to
    /// append to `Dovecot::mailmoat_config`.
    pub fn write_smtp_config(&self, mode: SmtpMode) -> String {
        if !self.password_file.exists() {
            write_private(&self.password_file, format!("{}\n", self.password).as_bytes());
        }
        let (port, tls) = match mode {
            SmtpMode::Implicit => (self.smtps_port, "implicit"),
            SmtpMode::Starttls => (self.submission_port, "starttls"),
            SmtpMode::StarttlsMissing => (self.plain_port, "starttls"),
        };
        format!(
            "\n[accounts.test.smtp]\nhost = \"localhost\"\nport = {port}\ntls = \"{tls}\"\nusername = {user}\npassword = {{ file = {pw} }}\nca_file = {ca}\n",
            user = toml_str(&self.user),
            pw = toml_str(&self.password_file.to_string_lossy()),
            ca = toml_str(&self.ca.ca_pem.to_string_lossy()),
        )
    }

    /// `dovecot.mailmoat_config(posture)` with this server's `[accounts.test.smtp]` table.
    pub fn mailmoat_config(&self, dovecot: &Dovecot, posture: &str, mode: SmtpMode) -> String {
        format!("{}{}", dovecot.mailmoat_config(posture), self.write_smtp_config(mode))
    }

    /// The Dovecot folder a recipient's copy lands in: INBOX for alice (and
    /// [`UTF8_RECIPIENT`]), else its local part.
    pub fn folder_for(rcpt: &str) -> String {
        let local = rcpt.split('@').next().unwrap_or_default().to_ascii_lowercase();
        if rcpt.eq_ignore_ascii_case(USER) || rcpt == UTF8_RECIPIENT {
            "INBOX".into()
        } else {
            local
        }
    }

    /// Every delivered copy of the message with this Message-ID, in any folder, as stored:
    /// `(folder as in the Maildir, raw bytes)`. Does not wait.
    pub fn copies(&self, message_id: &str) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut dirs = vec![("INBOX".to_string(), self.maildir.clone())];
        if let Ok(rd) = fs::read_dir(&self.maildir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(folder) = name.strip_prefix('.') {
                    if e.path().is_dir() {
                        dirs.push((folder.to_string(), e.path()));
                    }
                }
            }
        }
        for (folder, d) in dirs {
            for sub in ["new", "cur"] {
                let Ok(rd) = fs::read_dir(d.join(sub)) else { continue };
                for e in rd.flatten() {
                    let Ok(raw) = fs::read(e.path()) else { continue };
                    if header_value(&raw, "Message-ID").is_some_and(|v| v == message_id) {
                        out.push((folder.clone(), raw));
                    }
                }
            }
        }
        out
    }

    /// Waits (up to [`DELIVERY_WAIT`]) until the message with this Message-ID is in `folder`
    /// ("INBOX" or a recipient folder from [`Smtpd::folder_for`]) and returns it as stored (LF
    /// line ends, with the trace lines Postfix added). Panics with both servers' log tails if
    /// it does not arrive.
    pub fn wait_for_message(&self, folder: &str, message_id: &str) -> Vec<u8> {
        let want = if folder.eq_ignore_ascii_case("INBOX") { "INBOX".to_string() } else { mutf7(folder).replace('/', ".") };
        let deadline = Instant::now() + DELIVERY_WAIT;
        loop {
            if let Some((_, raw)) = self.copies(message_id).into_iter().find(|(f, _)| *f == want) {
                return raw;
            }
            if Instant::now() > deadline {
                panic!(
                    "message {message_id} did not arrive in {folder} within {DELIVERY_WAIT:?}\n--- Postfix log ---\n{}--- Dovecot log ---\n{}",
                    self.log_tail(),
                    tail_lines(&self.dovecot_log, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("postfix exited early: {status}"));
                }
            }
            if banner_ok(self.plain_port, &self.banner) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no SMTP greeting on 127.0.0.1:{} within {limit:?}", self.plain_port));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn stop(&mut self) {
        // Closing the watchdog's stdin makes it SIGKILL Postfix's process group.
        drop(self.watchdog.take());
        reap(self.child.take(), &self.dir.join("queue/pid/master.pid"));
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- throwaway Postfix log tail ({}) ---\n{}", self.dir.display(), self.log_tail());
        }
        self.stop();
        if keep_dirs() {
            eprintln!("keeping throwaway Postfix dir {}", self.dir.display());
            return;
        }
        remove_dir_retrying(&self.dir);
    }
}

/// A delivered copy as it was sent: the header lines Postfix and the LDA put in front
/// (`Return-Path`, `Delivered-To`, `Received`, with their continuation lines) removed, and line
/// ends back to CRLF (Maildir stores LF).
pub fn strip_trace_headers(stored: &[u8]) -> Vec<u8> {
    let crlf = super::dovecot::crlf(stored);
    let mut rest: &[u8] = &crlf;
    loop {
        let added = ["return-path:", "delivered-to:", "received:"]
            .iter()
            .any(|p| rest.len() >= p.len() && rest[..p.len()].eq_ignore_ascii_case(p.as_bytes()));
        if !added {
            return rest.to_vec();
        }
        // Skip this field and its continuation lines.
        let mut at = 0;
        loop {
            let Some(p) = rest[at..].windows(2).position(|w| w == b"\r\n") else { return Vec::new() };
            at += p + 2;
            if !matches!(rest.get(at), Some(b' ' | b'\t')) {
                break;
            }
        }
        rest = &rest[at..];
    }
}

/// Runs Postfix's master in the foreground in its own process group (`setsid`) and SIGKILLs
/// that group when our stdin reaches EOF (the harness dropped it, or the test process died).
const WATCHDOG_SCRIPT: &str = r#"
setsid "$1" -c "$2" </dev/null &
pid=$!
exec 3<&0
(
  read -r cmd <&3
  kill -KILL -"$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
) &
watcher=$!
exec 3<&-
wait "$pid"
rc=$?
kill "$watcher" 2>/dev/null
exit $rc
"#;

/// Postfix's queue layout (what `postfix check` would create), owners and modes as Postfix
/// wants them.
fn make_queue(queue: &Path, postfix_uid: u32, postdrop_gid: u32) {
    let _ = fs::set_permissions(queue, fs::Permissions::from_mode(0o755));
    for d in ["active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private", "saved", "trace"] {
        let p = queue.join(d);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        std::os::unix::fs::chown(&p, Some(postfix_uid), Some(0)).expect("chown queue dir");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).expect("chmod queue dir");
    }
    for (d, mode) in [("maildrop", 0o1730), ("public", 0o710)] {
        let p = queue.join(d);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        std::os::unix::fs::chown(&p, Some(postfix_uid), Some(postdrop_gid)).expect("chown queue dir");
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod queue dir");
    }
    fs::create_dir_all(queue.join("pid")).expect("create pid dir");
}

/// Reads the plain port's greeting, checks that it is this instance's, and says QUIT.
fn banner_ok(port: u16, banner: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let Ok(read_half) = s.try_clone() else { return false };
    let mut line = String::new();
    if BufReader::new(read_half).read_line(&mut line).is_err() {
        return false;
    }
    let _ = s.write_all(b"QUIT\r\n");
    line.starts_with("220 ") && line.trim_end().ends_with(banner)
}

fn wait_for_path(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.exists() {
        assert!(Instant::now() < deadline, "{} did not appear", p.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port();
        let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        if !taken.contains(&port) {
            taken.push(port);
            return port;
        }
    }
}

fn command_output(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn parse_id(s: &str) -> u32 {
    s.trim().parse().unwrap_or_else(|_| panic!("not a numeric id: {s:?}"))
}

fn tail_lines(path: &Path, n: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
    out.push('\n');
    out
}
