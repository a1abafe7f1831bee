//! Configuration: the TOML contract, strict validation, postures, and every named limit and timeout.
//!
//! Unknown keys are errors that name the key and its line. Error messages never quote the
//! config file's text, so a password pasted into the wrong place cannot leak through them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::{Credential, SecretSource};

/// How much power the agent gets. Ordered: each level includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Posture {
    /// Read mail, list folders and attachments.
    Readonly,
    /// Also flag, label, move, copy and save drafts (the default).
    DraftSafe,
    /// Also send, delete to Trash, create and rename folders, read raw source.
    Full,
    /// Also expunge permanently and delete folders.
    Destructive,
}

impl Posture {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Posture::Readonly => "readonly",
            Posture::DraftSafe => "draft-safe",
            Posture::Full => "full",
            Posture::Destructive => "destructive",
        }
    }
}

/// A per-tool override in `[tools]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolRule {
    Allow,
    Deny,
}

/// How the IMAP connection is secured. There is deliberately no plaintext mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (port 993).
    Implicit,
    /// Plain connection upgraded with STARTTLS, which is mandatory.
    Starttls,
}

/// How dangerous actions (send, delete, expunge, delete folder) are confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confirm {
    /// Ask the human through the client when it can elicit, else fall back to a token.
    Auto,
    /// Ask the human through the client; refuse when the client cannot elicit.
    Elicit,
    /// Answer with a preview and a one-time token that a second identical call must carry.
    Token,
    /// No confirmation.
    None,
}

/// Whether a copy of sent mail is appended to the Sent folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaveSent {
    /// Append unless the server saves sent mail itself (Gmail, detected by X-GM-EXT-1).
    Auto,
    Always,
    Never,
}

/// Named limits and timeouts, each with a documented default. `[limits]` in the config.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// TCP connect timeout.
    pub connect_timeout_ms: u64,
    /// TLS handshake plus server greeting (and STARTTLS), after connect.
    pub greeting_timeout_ms: u64,
    /// Any single IMAP command, from sending it to the end of its response.
    pub command_timeout_ms: u64,
    /// How long a request waits for a free pooled connection.
    pub pool_wait_ms: u64,
    /// Sessions kept per account.
    pub pool_size: usize,
    /// An idle session older than this is checked with NOOP before reuse.
    pub idle_check_after_ms: u64,
    /// Bytes one IMAP response may carry before the session is dropped.
    pub max_response_bytes: u64,
    /// Bytes of a message fetched for reading; larger messages are fetched partially.
    pub max_message_bytes: u64,
    /// Characters of body text returned by fetch_message.
    pub max_body_chars: usize,
    /// Bytes of header fetched per message in summaries.
    pub max_header_bytes: u64,
    /// Messages a thread may list.
    pub max_thread_messages: usize,
    /// One JSON-RPC request line on stdin.
    pub max_request_bytes: usize,
    /// Requests executed at once; more wait in the queue.
    pub max_in_flight: usize,
    /// Requests waiting for a worker; beyond this a request is refused as busy.
    pub max_queued: usize,
    /// A secret helper command's run time.
    pub secret_command_timeout_ms: u64,
    /// Recipients (to + cc + bcc) of one message.
    pub max_recipients: usize,
    /// Size of one outgoing message, attachments included, after encoding.
    pub max_send_bytes: u64,
    /// One attachment downloaded to, or attached from, the workspace.
    pub max_attachment_bytes: u64,
    /// Messages one batch action (flags, move, copy, delete, expunge) may name.
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connect_timeout_ms: 10_000,
            greeting_timeout_ms: 15_000,
            command_timeout_ms: 60_000,
            pool_wait_ms: 30_000,
            pool_size: 4,
            idle_check_after_ms: 60_000,
            max_response_bytes: 16 * 1024 * 1024,
            max_message_bytes: 16 * 1024 * 1024,
            max_body_chars: 100_000,
            max_header_bytes: 64 * 1024,
            max_thread_messages: 100,
            max_request_bytes: 4 * 1024 * 1024,
            max_in_flight: 16,
            max_queued: 256,
            secret_command_timeout_ms: 10_000,
            max_recipients: 50,
            max_send_bytes: 25 * 1024 * 1024,
            max_attachment_bytes: 25 * 1024 * 1024,
            max_batch: 100,
        }
    }
}

impl Limits {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn greeting_timeout(&self) -> Duration {
        Duration::from_millis(self.greeting_timeout_ms)
    }
    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms)
    }
    pub fn pool_wait(&self) -> Duration {
        Duration::from_millis(self.pool_wait_ms)
    }
    pub fn idle_check_after(&self) -> Duration {
        Duration::from_millis(self.idle_check_after_ms)
    }
    pub fn secret_command_timeout(&self) -> Duration {
        Duration::from_millis(self.secret_command_timeout_ms)
    }

    fn validate(&self) -> Result<(), String> {
        let checks: [(&str, u64, u64, u64); 12] = [
            ("limits.max_recipients", self.max_recipients as u64, 1, 1000),
            ("limits.max_send_bytes", self.max_send_bytes, 1024, 1024 * 1024 * 1024),
            ("limits.max_batch", self.max_batch as u64, 1, 100),
            ("limits.connect_timeout_ms", self.connect_timeout_ms, 100, 300_000),
            ("limits.greeting_timeout_ms", self.greeting_timeout_ms, 100, 300_000),
            ("limits.command_timeout_ms", self.command_timeout_ms, 100, 3_600_000),
            ("limits.pool_size", self.pool_size as u64, 1, 64),
            ("limits.max_body_chars", self.max_body_chars as u64, 100, 10_000_000),
            ("limits.max_request_bytes", self.max_request_bytes as u64, 1024, 64 * 1024 * 1024),
            ("limits.max_in_flight", self.max_in_flight as u64, 1, 256),
            ("limits.max_queued", self.max_queued as u64, 1, 65_536),
            ("limits.max_thread_messages", self.max_thread_messages as u64, 1, 1000),
        ];
        for (name, value, min, max) in checks {
            if value < min || value > max {
                return Err(format!("{name} = {value} is out of range ({min}..={max})"));
            }
        }
        if self.max_message_bytes > self.max_response_bytes {
            return Err("limits.max_message_bytes must not exceed limits.max_response_bytes".into());
        }
        Ok(())
    }
}

/// How to reach and log in to one server (IMAP or SMTP).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    /// `password` or `oauth2_token` (SMTP defaults to the IMAP one).
    pub credential: Credential,
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the server's leaf certificate (DER).
    pub pin_sha256: Option<[u8; 32]>,
}

/// One account's IMAP settings.
pub type ImapConfig = ServerConfig;
/// One account's SMTP settings.
pub type SmtpConfig = ServerConfig;

/// One configured account.
#[derive(Clone, Debug)]
pub struct Account {
    /// The key under `[accounts]`.
    pub name: String,
    pub email: String,
    /// Effective posture: the narrower of the global and the account's own.
    pub posture: Posture,
    /// The account's own `posture` key, if set; a `[tools]` "allow" never widens past it.
    pub own_posture: Option<Posture>,
    pub imap: ImapConfig,
    /// Outgoing mail; `None` when the account cannot send.
    pub smtp: Option<SmtpConfig>,
    /// Domains whose look-alikes are flagged, besides the account's own (lowercase, ASCII/IDNA).
    pub trusted_domains: Vec<String>,
    /// The authserv-id whose Authentication-Results headers are believed (anything else is
    /// attacker-written).
    pub trusted_authserv_id: Option<String>,
    /// When non-empty, every recipient must match one entry: an exact address or `*@domain`.
    pub allowed_recipients: Vec<String>,
    pub save_sent: SaveSent,
}

impl Account {
    /// The domain of the account's own address, lowercase.
    pub fn domain(&self) -> String {
        self.email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default()
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub posture: Posture,
    pub workspace: Option<PathBuf>,
    pub tools: BTreeMap<String, ToolRule>,
    pub accounts: BTreeMap<String, Account>,
    pub limits: Limits,
    pub confirm: Confirm,
    pub audit: crate::audit::AuditConfig,
    pub rate_limits: crate::ratelimit::RateConfig,
    pub circuit_breaker: crate::ratelimit::BreakerConfig,
}

fn redacted_server(table: &str, c: &ServerConfig) -> String {
    format!(
        "[{table}]\nhost = {:?}\nport = {}\ntls = {:?}\nusername = {:?}\n{}\nca_file = {:?}\npin_sha256 = {:?}\n",
        c.host,
        c.port,
        format!("{:?}", c.tls).to_lowercase(),
        c.username,
        redacted_credential(&c.credential),
        c.ca_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        pin_hex(&c.pin_sha256)
    )
}

fn redacted_credential(c: &Credential) -> String {
    format!("{} = {}", c.key(), redacted_source(c.source()))
}

fn redacted_source(s: &SecretSource) -> String {
    match s {
        SecretSource::Env(var) => format!("{{ env = {var:?} }}"),
        // Arguments can carry tokens; only the program is shown.
        SecretSource::Command(argv) => format!(
            "{{ command = [{:?}{}] }}",
            argv.first().map_or("", String::as_str),
            if argv.len() > 1 { format!(", <{} argument(s) redacted>", argv.len() - 1) } else { String::new() }
        ),
        SecretSource::File(p) => format!("{{ file = {:?} }}", p.display().to_string()),
    }
}

fn pin_hex(p: &Option<[u8; 32]>) -> String {
    p.map_or_else(|| "none".into(), |b| b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Config {
    /// The effective configuration, defaults filled in, secrets and secret-looking values
    /// redacted: for `mailmoat check --print-config`.
    pub fn redacted(&self) -> String {
        let mut o = String::new();
        o.push_str(&format!("# effective configuration of {} (secrets redacted)\n", self.path.display()));
        o.push_str(&format!("posture = {:?}\n", self.posture.as_str()));
        o.push_str(&format!("workspace = {:?}\n", self.workspace.as_ref().map(|w| w.display().to_string()).unwrap_or_default()));
        o.push_str(&format!("confirm = {:?}\n", format!("{:?}", self.confirm).to_lowercase()));
        o.push_str("[tools]\n");
        for (t, r) in &self.tools {
            o.push_str(&format!("{t} = {:?}\n", format!("{r:?}").to_lowercase()));
        }
        for (name, a) in &self.accounts {
            o.push_str(&format!("[accounts.{name}]\nemail = {:?}\nposture = {:?}  # effective\n", a.email, a.posture.as_str()));
            o.push_str(&format!(
                "trusted_domains = {:?}\ntrusted_authserv_id = {:?}\n",
                a.trusted_domains,
                a.trusted_authserv_id.clone().unwrap_or_default()
            ));
            o.push_str(&format!(
                "allowed_recipients = {:?}\nsave_sent = {:?}\n",
                a.allowed_recipients,
                format!("{:?}", a.save_sent).to_lowercase()
            ));
            o.push_str(&redacted_server(&format!("accounts.{name}.imap"), &a.imap));
            if let Some(sm) = &a.smtp {
                o.push_str(&redacted_server(&format!("accounts.{name}.smtp"), sm));
            }
        }
        o.push_str(&format!("[limits]\n{:#?}\n", self.limits));
        o.push_str(&format!(
            "[audit]\nenabled = {}\npath = {:?}\nmax_bytes = {}\n",
            self.audit.enabled,
            self.audit.resolved_path().map(|p| p.display().to_string()).unwrap_or_default(),
            self.audit.max_bytes
        ));
        o.push_str(&format!("[rate_limits]\n{:#?}\n[circuit_breaker]\n{:#?}\n", self.rate_limits, self.circuit_breaker));
        o
    }
}

/// A configuration problem, naming the file and, when known, the line.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.path.display(), line, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

// ---- raw (serde) shapes: exactly the documented keys, nothing else ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    posture: Option<Posture>,
    workspace: Option<PathBuf>,
    #[serde(default)]
    tools: BTreeMap<String, ToolRule>,
    #[serde(default)]
    accounts: BTreeMap<String, RawAccount>,
    #[serde(default)]
    limits: Limits,
    confirm: Option<Confirm>,
    #[serde(default)]
    audit: crate::audit::AuditConfig,
    #[serde(default)]
    rate_limits: crate::ratelimit::RateConfig,
    #[serde(default)]
    circuit_breaker: crate::ratelimit::BreakerConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    email: String,
    posture: Option<Posture>,
    imap: RawImap,
    smtp: Option<RawSmtp>,
    #[serde(default)]
    trusted_domains: Vec<String>,
    trusted_authserv_id: Option<String>,
    #[serde(default)]
    allowed_recipients: Vec<String>,
    save_sent: Option<SaveSent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: Option<u16>,
    tls: Option<TlsMode>,
    /// Defaults to the IMAP username.
    username: Option<String>,
    /// Defaults to the IMAP credential (password or token).
    password: Option<RawSecret>,
    oauth2_token: Option<RawSecret>,
    ca_file: Option<PathBuf>,
    pin_sha256: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImap {
    host: String,
    port: Option<u16>,
    tls: Option<TlsMode>,
    username: String,
    password: Option<RawSecret>,
    oauth2_token: Option<RawSecret>,
    ca_file: Option<PathBuf>,
    pin_sha256: Option<String>,
}

/// A password entry: a table naming its source. A bare string is accepted by serde only so that
/// we can refuse it with a clear message (and without echoing it).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSecret {
    Table(RawSecretTable),
    Literal(#[allow(dead_code, reason = "only detected, never used")] IgnoredLiteral),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretTable {
    env: Option<String>,
    command: Option<Vec<String>>,
    file: Option<PathBuf>,
}

/// Swallows a literal value without keeping it.
struct IgnoredLiteral;

impl<'de> Deserialize<'de> for IgnoredLiteral {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| IgnoredLiteral)
    }
}

/// The tool names `[tools]` may mention (the full matrix, including tools added later).
pub const KNOWN_TOOLS: &[&str] = &[
    "list_accounts",
    "list_folders",
    "search",
    "fetch_message",
    "fetch_thread",
    "list_attachments",
    "read_attachment",
    "download_attachment",
    "update_flags",
    "update_labels",
    "move_messages",
    "copy_messages",
    "create_draft",
    "send_email",
    "send_draft",
    "delete_messages",
    "create_folder",
    "rename_folder",
    "fetch_raw",
    "expunge_messages",
    "delete_folder",
];

/// Where the config is looked for: `--config`, else `$MAILMOAT_CONFIG`, else XDG.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MAILMOAT_CONFIG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("mailmoat/config.toml"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/mailmoat/config.toml"))
}

/// Largest config file accepted.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |line: Option<usize>, message: String| ConfigError { path: path.to_path_buf(), line, message };
        let meta = std::fs::metadata(path).map_err(|e| err(None, format!("cannot read config: {e}")))?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(err(None, "config file is larger than 1 MiB".into()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(None, format!("cannot read config: {e}")))?;
        Config::parse(&text, path)
    }

    /// Validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let err = |line: Option<usize>, message: String| ConfigError { path: path.to_path_buf(), line, message };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            // message() is the parser's sentence without the quoted source snippet.
            err(line, scrub_values(e.message().trim()))
        })?;
        let line_of_key = |needle: &str| text.find(needle).map(|at| line_of(text, at));

        let posture = raw.posture.unwrap_or(Posture::DraftSafe);
        for name in raw.tools.keys() {
            if !KNOWN_TOOLS.contains(&name.as_str()) {
                return Err(err(line_of_key(name), format!("unknown tool `{name}` in [tools]")));
            }
        }
        raw.limits.validate().map_err(|m| err(line_of_key("[limits]"), m))?;
        raw.audit.validate().map_err(|m| err(line_of_key("[audit]"), m))?;
        raw.rate_limits.validate(KNOWN_TOOLS).map_err(|m| err(line_of_key("[rate_limits"), m))?;
        raw.circuit_breaker.validate().map_err(|m| err(line_of_key("[circuit_breaker]"), m))?;
        if let Some(ws) = &raw.workspace {
            if !ws.is_absolute() {
                return Err(err(line_of_key("workspace"), "workspace must be an absolute path".into()));
            }
        }

        let mut accounts = BTreeMap::new();
        for (name, acc) in raw.accounts {
            let at = line_of_key(&format!("[accounts.{name}")).or_else(|| line_of_key(&name));
            let account = build_account(&name, acc, posture).map_err(|m| err(at, m))?;
            accounts.insert(name, account);
        }
        if accounts.is_empty() {
            return Err(err(None, "no accounts configured: add an [accounts.NAME] table".into()));
        }
        Ok(Config {
            path: path.to_path_buf(),
            posture,
            workspace: raw.workspace,
            tools: raw.tools,
            accounts,
            limits: raw.limits,
            confirm: raw.confirm.unwrap_or(Confirm::Auto),
            audit: raw.audit,
            rate_limits: raw.rate_limits,
            circuit_breaker: raw.circuit_breaker,
        })
    }
}

fn build_account(name: &str, acc: RawAccount, global: Posture) -> Result<Account, String> {
    let valid_name =
        !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !valid_name {
        return Err(format!("account name `{}` must be 1-64 characters of A-Z a-z 0-9 . _ -", name.escape_default()));
    }
    if !plausible_email(&acc.email) {
        return Err(format!("accounts.{name}.email is not an email address"));
    }
    let imap = acc.imap;
    if !valid_host(&imap.host) {
        return Err(format!("accounts.{name}.imap.host is not a valid host name"));
    }
    if imap.username.is_empty() || imap.username.len() > 512 || imap.username.chars().any(char::is_control) {
        return Err(format!("accounts.{name}.imap.username must be 1-512 characters without control characters"));
    }
    let credential = match credential(&format!("accounts.{name}.imap"), imap.password, imap.oauth2_token)? {
        Some(c) => c,
        None => return Err(format!("accounts.{name}.imap: give password or oauth2_token")),
    };
    let tls = imap.tls.unwrap_or(TlsMode::Implicit);
    let port = imap.port.unwrap_or(match tls {
        TlsMode::Implicit => 993,
        TlsMode::Starttls => 143,
    });
    if port == 0 {
        return Err(format!("accounts.{name}.imap.port must not be 0"));
    }
    let pin_sha256 = match imap.pin_sha256 {
        None => None,
        Some(p) => Some(parse_pin(&p).ok_or_else(|| {
            format!("accounts.{name}.imap.pin_sha256 must be 64 hex digits (colons allowed), the SHA-256 of the leaf certificate")
        })?),
    };
    let posture = acc.posture.map_or(global, |p| p.min(global));
    let smtp = match acc.smtp {
        None => None,
        Some(sm) => Some(build_smtp(name, sm, &imap.username, &credential)?),
    };
    let mut trusted_domains = Vec::new();
    for d in acc.trusted_domains {
        let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
        if d.is_empty() || d.len() > 253 || !d.contains('.') || d.bytes().any(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'.')) {
            return Err(format!(
                "accounts.{name}.trusted_domains: `{}` is not a domain name (use the ASCII/punycode form)",
                d.escape_default()
            ));
        }
        trusted_domains.push(d);
    }
    if let Some(id) = &acc.trusted_authserv_id {
        if id.is_empty() || id.len() > 253 || id.chars().any(|c| c.is_whitespace() || c.is_control() || c == ';') {
            return Err(format!("accounts.{name}.trusted_authserv_id must be a single token such as mx.example.com"));
        }
    }
    for r in &acc.allowed_recipients {
        let ok = match r.strip_prefix("*@") {
            Some(domain) => !domain.is_empty() && !domain.contains('@') && !domain.contains('*'),
            None => plausible_email(r) && !r.contains('*'),
        };
        if !ok {
            return Err(format!("accounts.{name}.allowed_recipients: `{}` must be an address or *@domain", r.escape_default()));
        }
    }
    Ok(Account {
        name: name.to_string(),
        email: acc.email,
        posture,
        own_posture: acc.posture,
        imap: ImapConfig { host: imap.host, port, tls, username: imap.username, credential, ca_file: imap.ca_file, pin_sha256 },
        smtp,
        trusted_domains,
        trusted_authserv_id: acc.trusted_authserv_id,
        allowed_recipients: acc.allowed_recipients.iter().map(|r| r.to_ascii_lowercase()).collect(),
        save_sent: acc.save_sent.unwrap_or(SaveSent::Auto),
    })
}

fn valid_host(h: &str) -> bool {
    !(h.is_empty() || h.len() > 253 || h.bytes().any(|b| b <= b' ' || b == b'/' || b >= 0x7f))
}

fn build_smtp(name: &str, sm: RawSmtp, imap_user: &str, imap_credential: &Credential) -> Result<SmtpConfig, String> {
    if !valid_host(&sm.host) {
        return Err(format!("accounts.{name}.smtp.host is not a valid host name"));
    }
    let tls = sm.tls.unwrap_or(TlsMode::Implicit);
    let port = sm.port.unwrap_or(match tls {
        TlsMode::Implicit => 465,
        TlsMode::Starttls => 587,
    });
    if port == 0 {
        return Err(format!("accounts.{name}.smtp.port must not be 0"));
    }
    let username = sm.username.unwrap_or_else(|| imap_user.to_string());
    if username.is_empty() || username.len() > 512 || username.chars().any(char::is_control) {
        return Err(format!("accounts.{name}.smtp.username must be 1-512 characters without control characters"));
    }
    let credential = credential(&format!("accounts.{name}.smtp"), sm.password, sm.oauth2_token)?.unwrap_or_else(|| imap_credential.clone());
    let pin_sha256 = match sm.pin_sha256 {
        None => None,
        Some(p) => Some(parse_pin(&p).ok_or_else(|| format!("accounts.{name}.smtp.pin_sha256 must be 64 hex digits (colons allowed)"))?),
    };
    Ok(SmtpConfig { host: sm.host, port, tls, username, credential, ca_file: sm.ca_file, pin_sha256 })
}

/// The credential of one `[accounts.NAME.imap]` or `.smtp` table (`at`): at most one of
/// `password` and `oauth2_token`, each a table naming its source.
fn credential(at: &str, password: Option<RawSecret>, token: Option<RawSecret>) -> Result<Option<Credential>, String> {
    let source = |key: &str, raw: RawSecret| match raw {
        RawSecret::Literal(_) => Err(format!(
            "{at}.{key}: literal {} are refused; use {{ env = \"VAR\" }}, {{ command = [\"prog\", \"arg\"] }} or {{ file = \"/path\" }}",
            if key == "password" { "passwords" } else { "tokens" }
        )),
        RawSecret::Table(t) => secret_source(t).map_err(|m| format!("{at}.{key}: {m}")),
    };
    match (password, token) {
        (Some(_), Some(_)) => Err(format!("{at}: give password or oauth2_token, not both")),
        (Some(p), None) => Ok(Some(Credential::Password(source("password", p)?))),
        (None, Some(t)) => Ok(Some(Credential::OAuth2(source("oauth2_token", t)?))),
        (None, None) => Ok(None),
    }
}

fn secret_source(t: RawSecretTable) -> Result<SecretSource, String> {
    match (t.env, t.command, t.file) {
        (Some(var), None, None) if !var.is_empty() && !var.contains('=') && !var.contains('\0') => Ok(SecretSource::Env(var)),
        (None, Some(argv), None) if !argv.is_empty() && !argv[0].is_empty() => Ok(SecretSource::Command(argv)),
        (None, None, Some(path)) if path.is_absolute() => Ok(SecretSource::File(path)),
        (None, None, Some(_)) => Err("file must be an absolute path".into()),
        (None, None, None) => Err("give exactly one of env, command or file".into()),
        (Some(_), None, None) => Err("env must name a variable".into()),
        (None, Some(_), None) => Err("command must be a non-empty list whose first item is the program".into()),
        _ => Err("give exactly one of env, command or file".into()),
    }
}

/// Parses a SHA-256 fingerprint written as hex, with or without colons.
pub fn parse_pin(s: &str) -> Option<[u8; 32]> {
    let hex: Vec<u8> = s.bytes().filter(|&b| b != b':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn plausible_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else { return false };
    !local.is_empty()
        && local.len() <= 64
        && !domain.is_empty()
        && domain.len() <= 253
        && domain.contains('.') | (domain == "localhost")
        && s.chars().all(|c| !c.is_control() && !c.is_whitespace() && c != '<' && c != '>' && c != '"' && c != ',')
}

/// Removes values serde quotes in its messages (`invalid type: string "…"`, `unknown variant
/// `…``), so that a secret typed into the wrong key never reaches an error message. Key names
/// stay: an error must name the key.
fn scrub_values(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    loop {
        let string_at = rest.find("string \"");
        let variant_at = rest.find("variant `");
        let (at, open, close, keep) = match (string_at, variant_at) {
            (Some(a), Some(b)) if b < a => (b, "variant `", '`', "variant"),
            (Some(a), _) => (a, "string \"", '"', "string"),
            (None, Some(b)) => (b, "variant `", '`', "variant"),
            (None, None) => break,
        };
        out.push_str(&rest[..at]);
        out.push_str(keep);
        let after = &rest[at + open.len()..];
        // Skip to the closing quote; serde escapes inner quotes in strings with a backslash.
        let mut end = after.len();
        let mut escaped = false;
        for (i, ch) in after.char_indices() {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == close {
                end = i + ch.len_utf8();
                break;
            }
        }
        rest = &after[end.min(after.len())..];
    }
    out.push_str(rest);
    out
}

fn line_of(text: &str, byte: usize) -> usize {
    text.as_bytes()[..byte.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
posture = "full"
workspace = "/tmp/ws"
[tools]
fetch_thread = "deny"
[accounts.work]
email = "me@example.com"
posture = "readonly"
[accounts.work.imap]
host = "imap.example.com"
username = "me@example.com"
password = { env = "WORK_PASS" }
pin_sha256 = "AB:cd:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd"
[accounts.home]
email = "me@home.example"
[accounts.home.imap]
host = "127.0.0.1"
port = 1143
tls = "starttls"
username = "me"
password = { command = ["secret-tool", "lookup", "mail", "home"] }
[accounts.home.smtp]
host = "smtp.home.example"
tls = "starttls"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/mm.toml"))
    }

    #[test]
    fn good_config_and_effective_postures() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.posture, Posture::Full);
        assert_eq!(c.accounts["work"].posture, Posture::Readonly);
        assert_eq!(c.accounts["home"].posture, Posture::Full);
        assert_eq!(c.accounts["work"].imap.port, 993);
        assert_eq!(c.accounts["home"].imap.tls, TlsMode::Starttls);
        assert_eq!(c.accounts["work"].imap.pin_sha256.unwrap()[0], 0xab);
        assert_eq!(c.tools["fetch_thread"], ToolRule::Deny);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.confirm, Confirm::Auto);
        assert!(c.accounts["work"].smtp.is_none());
        let smtp = c.accounts["home"].smtp.as_ref().unwrap();
        assert_eq!((smtp.port, smtp.tls, smtp.username.as_str()), (587, TlsMode::Starttls, "me"));
        assert_eq!(smtp.credential, c.accounts["home"].imap.credential);
        assert_eq!(c.accounts["home"].save_sent, SaveSent::Auto);
        assert_eq!(c.accounts["work"].domain(), "example.com");
    }

    #[test]
    fn deception_and_sending_keys() {
        let text = GOOD.replace(
            "email = \"me@example.com\"",
            "email = \"me@example.com\"\ntrusted_domains = [\"Bank.Example.\"]\ntrusted_authserv_id = \"mx.example.com\"\nallowed_recipients = [\"*@example.com\", \"Bob@x.org\"]\nsave_sent = \"never\"",
        );
        let c = parse(&text).unwrap();
        let w = &c.accounts["work"];
        assert_eq!(w.trusted_domains, vec!["bank.example".to_string()]);
        assert_eq!(w.trusted_authserv_id.as_deref(), Some("mx.example.com"));
        assert_eq!(w.allowed_recipients, vec!["*@example.com".to_string(), "bob@x.org".to_string()]);
        assert_eq!(w.save_sent, SaveSent::Never);
        for (bad, want) in [
            ("trusted_domains = [\"not a domain\"]", "is not a domain name"),
            ("allowed_recipients = [\"*@*\"]", "must be an address or *@domain"),
            ("trusted_authserv_id = \"a b\"", "must be a single token"),
        ] {
            let t = GOOD.replace("email = \"me@example.com\"", &format!("email = \"me@example.com\"\n{bad}"));
            let e = parse(&t).unwrap_err();
            assert!(e.message.contains(want), "{bad}: {}", e.message);
        }
        let t = GOOD.replace("host = \"smtp.home.example\"\n", "host = \"smtp.home.example\"\npassword = \"CANARY-smtp\"\n");
        let e = parse(&t).unwrap_err();
        assert!(e.message.contains("smtp.password: literal passwords are refused") && !e.to_string().contains("CANARY"), "{e}");
    }

    #[test]
    fn account_posture_cannot_widen_global() {
        let text = GOOD
            .replace("posture = \"full\"", "posture = \"readonly\"")
            .replace("email = \"me@home.example\"", "email = \"me@home.example\"\nposture = \"destructive\"");
        assert_eq!(parse(&text).unwrap().accounts["home"].posture, Posture::Readonly);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = GOOD.replace("username = \"me\"\n", "username = \"me\"\npasword = { env = \"X\" }\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(21));
        assert!(e.message.contains("unknown field `pasword`"), "{}", e.message);
        assert!(e.to_string().starts_with("/etc/mm.toml:21: "));
    }

    #[test]
    fn oauth2_token_instead_of_a_password() {
        let text = GOOD
            .replace("password = { env = \"WORK_PASS\" }", "oauth2_token = { command = [\"oauth2-helper\", \"--account=CANARY-arg-3e\"] }");
        let c = Config::parse(&text, Path::new("/x.toml")).unwrap();
        let work = c.accounts.values().find(|a| a.imap.credential.key() == "oauth2_token").expect("an oauth2 account");
        assert_eq!(
            work.imap.credential,
            Credential::OAuth2(SecretSource::Command(vec!["oauth2-helper".into(), "--account=CANARY-arg-3e".into()]))
        );
        let out = c.redacted();
        assert!(out.contains("oauth2_token = { command = [\"oauth2-helper\", <1 argument(s) redacted>] }"), "{out}");
        assert!(!out.contains("CANARY"), "{out}");
        for (replace, want) in [
            ("password = { env = \"WORK_PASS\" }", "give password or oauth2_token, not both"),
            ("password = { env = \"WORK_PASS\" }\n", "give password or oauth2_token"),
        ] {
            let with = if want.ends_with("not both") {
                GOOD.replace(replace, "password = { env = \"WORK_PASS\" }\noauth2_token = { env = \"TOK\" }")
            } else {
                GOOD.replace(replace, "")
            };
            let e = Config::parse(&with, Path::new("/x.toml")).unwrap_err();
            assert!(e.message.contains(want), "{}", e.message);
        }
        let e = Config::parse(&GOOD.replace("password = { env = \"WORK_PASS\" }", "oauth2_token = \"CANARY-tok-8\""), Path::new("/x.toml"))
            .unwrap_err();
        assert!(e.message.contains("oauth2_token: literal tokens are refused") && !e.to_string().contains("CANARY"), "{e}");
    }

    #[test]
    fn literal_password_is_refused_without_echo() {
        let text = GOOD.replace("password = { env = \"WORK_PASS\" }", "password = \"CANARY-literal-91b\"");
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("literal passwords are refused"), "{}", e.message);
        assert!(!e.to_string().contains("CANARY"));
    }

    #[test]
    fn syntax_error_does_not_quote_the_file() {
        let text = GOOD.replace("password = { env = \"WORK_PASS\" }", "password = CANARY-unquoted-55");
        let e = parse(&text).unwrap_err();
        assert!(!e.to_string().contains("CANARY"), "{e}");
        assert_eq!(e.line, Some(12));
    }

    #[test]
    fn bad_values_are_explained() {
        let cases: &[(&str, &str, &str)] = &[
            ("posture = \"full\"", "posture = \"root\"", "unknown variant, expected one of `readonly`"),
            ("tls = \"starttls\"", "tls = \"none\"", "unknown variant, expected `implicit` or `starttls`"),
            ("fetch_thread = \"deny\"", "fetch_threads = \"deny\"", "unknown tool `fetch_threads`"),
            ("pin_sha256 = \"AB", "pin_sha256 = \"XB", "pin_sha256 must be 64 hex digits"),
            ("password = { env = \"WORK_PASS\" }", "password = { env = \"A\", file = \"/x\" }", "exactly one of env, command or file"),
            ("password = { env = \"WORK_PASS\" }", "password = { file = \"rel/p\" }", "file must be an absolute path"),
            ("email = \"me@example.com\"", "email = \"not-an-address\"", "email is not an email address"),
            ("workspace = \"/tmp/ws\"", "workspace = \"ws\"", "workspace must be an absolute path"),
            ("[tools]", "[limits]\npool_size = 0\n[tools]", "limits.pool_size = 0 is out of range"),
        ];
        for (from, to, want) in cases {
            let e = parse(&GOOD.replace(from, to)).unwrap_err();
            assert!(e.message.contains(want), "{to}: got {}", e.message);
        }
    }

    #[test]
    fn redacted_config_hides_command_arguments() {
        let text = GOOD.replace("[\"secret-tool\", \"lookup\", \"mail\", \"home\"]", "[\"helper\", \"--token=CANARY-arg-77\"]");
        let out = parse(&text).unwrap().redacted();
        assert!(!out.contains("CANARY"), "{out}");
        assert!(out.contains("password = { command = [\"helper\", <1 argument(s) redacted>] }"), "{out}");
        assert!(out.contains("password = { env = \"WORK_PASS\" }"), "{out}");
        assert!(out.contains("pin_sha256 = \"abcd0011"), "{out}");
    }

    #[test]
    fn values_never_appear_in_errors() {
        for (from, to) in [
            ("fetch_thread = \"deny\"", "fetch_thread = \"CANARY-variant\""),
            ("port = 1143", "port = \"CANARY-in-port\""),
            ("tls = \"starttls\"", "tls = \"CANARY \\\" quoted\""),
        ] {
            let e = parse(&GOOD.replace(from, to)).unwrap_err();
            assert!(!e.to_string().contains("CANARY"), "{e}");
        }
        assert_eq!(scrub_values("invalid type: string \"a\\\"b\", expected u16"), "invalid type: string, expected u16");
        assert_eq!(scrub_values("unknown variant `x`, expected `allow` or `deny`"), "unknown variant, expected `allow` or `deny`");
    }

    #[test]
    fn no_accounts_is_an_error() {
        let e = parse("posture = \"readonly\"\n").unwrap_err();
        assert!(e.message.starts_with("no accounts configured"));
    }
}
