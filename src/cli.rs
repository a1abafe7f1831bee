//! Command line: `serve` (default), `check`, `--version`, `--help`. Hand-rolled, no parser crate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, Config};
use crate::imap::ImapClient;
use crate::ratelimit::blocks::fingerprint_hex;
use crate::ratelimit::AuthBlocks;
use crate::rpc;
use crate::server;
use crate::tools::{auth_blocks, Credentials, Registry};

pub const HELP: &str = "\
mailmoat — a hardened MCP server for IMAP mailboxes

USAGE:
    mailmoat [serve] [--config PATH]     serve MCP over stdin/stdout (the default)
    mailmoat check [--config PATH]       validate the config, log in to every account, print a report
    mailmoat check --print-config        print the effective config (secrets redacted) and exit
    mailmoat --dry-run [--config PATH]   same as check
    mailmoat audit verify [PATH]         check the audit log's hash chain (default: [audit] path)
    mailmoat --version                   print the version
    mailmoat --help                      print this help

OPTIONS:
    --config PATH    config file; default: $MAILMOAT_CONFIG, else
                     $XDG_CONFIG_HOME/mailmoat/config.toml (~/.config/mailmoat/config.toml)

ENVIRONMENT:
    MAILMOAT_CONFIG  the config file when --config is not given
    MAILMOAT_LOG     diagnostics on stderr: error, warn (default), info (connections, tool
                     outcomes), debug (also every IMAP command and JSON-RPC method); never secrets

EXIT STATUS:
    0 success; 1 check found a failing account, or audit verify found a broken chain;
    2 usage or configuration error (or an unreadable audit log)

Secrets are never printed. Diagnostics go to stderr; in serve mode stdout carries only MCP.
`mailmoat COMMAND --help` (or `mailmoat help COMMAND`) describes one command.
";

pub const SERVE_HELP: &str = "\
mailmoat serve — serve MCP over stdin/stdout (the default command)

USAGE:
    mailmoat [serve] [--config PATH]

Reads JSON-RPC messages, one per line, from stdin and writes only MCP to stdout. Speaks MCP
2024-11-05 to 2025-11-25 (initialize handshake) and 2026-07-28 (stateless, per-request _meta)
from one process. Tools are offered by the configured posture; every call is written to the
audit log ([audit]) and rate-limited. Exits 0 when stdin closes, cancelling requests in flight.

OPTIONS:
    --config PATH    config file; default: $MAILMOAT_CONFIG, else
                     $XDG_CONFIG_HOME/mailmoat/config.toml (~/.config/mailmoat/config.toml)

ENVIRONMENT:
    MAILMOAT_LOG     stderr diagnostics: error, warn (default), info, debug; never secrets

EXIT STATUS:
    0 stdin closed; 2 configuration error or an audit log that cannot be opened
";

pub const CHECK_HELP: &str = "\
mailmoat check — validate the config and log in to every account

USAGE:
    mailmoat check [--config PATH]
    mailmoat check --print-config [--config PATH]
    mailmoat --dry-run [--config PATH]

For each account, logs in to IMAP (and SMTP when configured) exactly as serve would and prints
the TLS version and cipher, the certificate's SHA-256 (what pin_sha256 takes), the mechanism
that authenticated, the capabilities and the folder count. Changes nothing on any server. An
account blocked after a refused login is reported (\"blocked since ...\"), tried once, and
unblocked when the login works.

OPTIONS:
    --config PATH    config file (as for serve)
    --print-config   print the effective configuration, defaults filled in, secrets and helper
                     arguments redacted; no network

EXIT STATUS:
    0 every account ok; 1 an account failed; 2 configuration error
";

pub const AUDIT_HELP: &str = "\
mailmoat audit verify — check the audit log's hash chain

USAGE:
    mailmoat audit verify [PATH]
    mailmoat audit verify --config PATH

Checks the log at PATH (default: the configured [audit] path, else
$XDG_STATE_HOME/mailmoat/audit.jsonl) together with its rotated files PATH.1, PATH.2, ... as one
chain: sequence numbers, each record's hash, the link to the previous record and across files.
Prints the record count and head hash when intact, else the first broken, reordered, inserted or
missing record with its file and line.

EXIT STATUS:
    0 intact; 1 broken; 2 unreadable or no path
";

enum Command {
    Serve,
    Check,
    PrintConfig,
    AuditVerify(Option<PathBuf>),
    /// `--help` alone, or after a command (that command's help).
    Help(&'static str),
    Version,
}

struct Cli {
    command: Command,
    config: Option<PathBuf>,
}

/// The help text for a command name (`serve`, `check`, `audit`), or the general one.
fn help_for(command: Option<&Command>) -> &'static str {
    match command {
        Some(Command::Serve) => SERVE_HELP,
        Some(Command::Check | Command::PrintConfig) => CHECK_HELP,
        Some(Command::AuditVerify(_)) => AUDIT_HELP,
        _ => HELP,
    }
}

fn parse(args: Vec<std::ffi::OsString>) -> Result<Cli, String> {
    // `help COMMAND` and `COMMAND --help` print that command's help, before anything else is
    // parsed (so `audit verify --help` is not taken for a path).
    let words: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    if words.iter().any(|w| matches!(*w, "--help" | "-h")) || words.first() == Some(&"help") {
        let topic = words.iter().find_map(|w| match *w {
            "serve" => Some(Command::Serve),
            "check" | "--dry-run" | "--print-config" => Some(Command::Check),
            "audit" | "verify" => Some(Command::AuditVerify(None)),
            _ => None,
        });
        return Ok(Cli { command: Command::Help(help_for(topic.as_ref())), config: None });
    }
    let mut command = None;
    let mut config = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some(s) = arg.to_str() else { return Err("arguments must be valid UTF-8".into()) };
        let set = |c: Command, cur: &mut Option<Command>| match cur {
            None => {
                *cur = Some(c);
                Ok(())
            }
            Some(_) => Err(format!("unexpected argument `{s}`")),
        };
        match s {
            "serve" => set(Command::Serve, &mut command)?,
            "audit" => {
                match it.next().as_ref().and_then(|a| a.to_str()) {
                    Some("verify") => {}
                    _ => return Err("usage: mailmoat audit verify [PATH]".into()),
                }
                let path = match it.next() {
                    Some(p) if p.to_str() == Some("--config") => {
                        config = it.next().map(PathBuf::from);
                        None
                    }
                    Some(p) => Some(PathBuf::from(p)),
                    None => None,
                };
                set(Command::AuditVerify(path), &mut command)?;
            }
            "check" | "--dry-run" => set(Command::Check, &mut command)?,
            "--print-config" => command = Some(Command::PrintConfig),
            "--version" | "-V" => return Ok(Cli { command: Command::Version, config }),
            "--config" => match it.next() {
                Some(p) => config = Some(PathBuf::from(p)),
                None => return Err("--config needs a path".into()),
            },
            other if other.starts_with("--config=") => config = Some(PathBuf::from(&other["--config=".len()..])),
            other => return Err(format!("unknown argument `{}` (see mailmoat --help)", other.escape_default())),
        }
    }
    Ok(Cli { command: command.unwrap_or(Command::Serve), config })
}

/// Runs the command line and returns the process exit code.
pub fn run(args: Vec<std::ffi::OsString>) -> i32 {
    install_panic_hook();
    crate::log::init_from_env();
    let cli = match parse(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mailmoat: {e}");
            return 2;
        }
    };
    match cli.command {
        Command::Help(text) => {
            print!("{text}");
            0
        }
        Command::Version => {
            println!("mailmoat {}", server::SERVER_VERSION);
            0
        }
        Command::Serve => match load(cli.config) {
            Ok(cfg) => serve(cfg),
            Err(code) => code,
        },
        Command::Check => match load(cli.config) {
            Ok(cfg) => check(&cfg),
            Err(code) => code,
        },
        Command::PrintConfig => match load(cli.config) {
            Ok(cfg) => {
                print!("{}", cfg.redacted());
                0
            }
            Err(code) => code,
        },
        Command::AuditVerify(path) => {
            // PATH, else the configured log (when a config loads), else the default location.
            let path = path.or_else(|| {
                cli.config.or_else(config::default_path).and_then(|p| Config::load(&p).ok()).and_then(|c| c.audit.resolved_path())
            });
            let (text, code) = crate::audit::verify_cli(path.as_deref());
            print!("{text}");
            code
        }
    }
}

/// A panic message can carry data from the request; print where it happened, not what it said.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("mailmoat: internal error (panic at {at}); the affected request failed");
    }));
}

fn load(path: Option<PathBuf>) -> Result<Config, i32> {
    let Some(path) = path.or_else(config::default_path) else {
        eprintln!("mailmoat: no config file: pass --config PATH or set MAILMOAT_CONFIG");
        return Err(2);
    };
    Config::load(&path).map_err(|e| {
        eprintln!("mailmoat: config error: {e}");
        2
    })
}

fn serve(cfg: Config) -> i32 {
    let audit = match cfg.audit.open() {
        Ok(log) => log.map(Arc::new),
        Err(e) => {
            eprintln!("mailmoat: cannot open the audit log: {e} (set [audit] path, or enabled = false to run without one)");
            return 2;
        }
    };
    if let Some(log) = &audit {
        use crate::audit::{Event, Record};
        let loaded = format!("config {} posture {} accounts {}", cfg.path.display(), cfg.posture.as_str(), cfg.accounts.len());
        let started = log
            .append(Record::new(Event::Startup).detail(format!("mailmoat {}", server::SERVER_VERSION)))
            .and_then(|_| log.append(Record::new(Event::ConfigLoaded).detail(loaded)));
        if let Err(e) = started {
            eprintln!("mailmoat: cannot write the audit log: {e}");
            return 2;
        }
    }
    crate::info!(
        "serving MCP on stdio: {} account(s), posture {}, config {}",
        cfg.accounts.len(),
        cfg.posture.as_str(),
        cfg.path.display()
    );
    let registry = Registry::with_audit(Arc::new(cfg), audit.clone());
    let (out, writer) = rpc::spawn_writer(std::io::stdout());
    let stdin = std::io::stdin();
    server::serve(registry, stdin.lock(), out.clone());
    if let Some(log) = &audit {
        use crate::audit::{Event, Record};
        let _ = log.append_durable(Record::new(Event::Shutdown).detail("stdin closed"));
    }
    out.shutdown();
    // The writer may be stuck on a client that stopped reading; never wait for it long.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = writer.join();
        let _ = done_tx.send(());
    });
    let _ = done_rx.recv_timeout(Duration::from_millis(500));
    0
}

fn check(cfg: &Config) -> i32 {
    println!("config: {} (posture {})", cfg.path.display(), cfg.posture.as_str());
    let limits = Arc::new(cfg.limits.clone());
    let mut failed = 0;
    let credentials = Credentials::of(cfg);
    let blocks = auth_blocks(cfg);
    let on_disk = match blocks.as_ref().map(AuthBlocks::load) {
        Some(Err(e)) => {
            println!("warning: {e}");
            Default::default()
        }
        Some(Ok(b)) => b,
        None => Default::default(),
    };
    for acct in cfg.accounts.values() {
        let client = ImapClient::new(Arc::new(acct.clone()), Arc::clone(&limits));
        let tls = match acct.imap.tls {
            config::TlsMode::Implicit => "implicit TLS",
            config::TlsMode::Starttls => "STARTTLS",
        };
        println!(
            "account {} <{}>: {}:{} ({tls}), posture {}",
            acct.name,
            acct.email,
            acct.imap.host,
            acct.imap.port,
            acct.posture.as_str()
        );
        let fp = credentials.fingerprint(&acct.name);
        if let Some(block) = on_disk.get(&acct.name) {
            if fp.is_some_and(|fp| fingerprint_hex(&fp) == block.fingerprint) {
                println!(
                    "  blocked since {}: the server refused the credentials; `mailmoat serve` will not log in to this account until the config file or the secret changes (check tries once now, and lifts the block if the login succeeds)",
                    block.since
                );
            } else {
                println!("  an authentication block from {} no longer applies: the config file or the secret changed", block.since);
            }
        }
        let imap = client.check();
        if let (Some(b), Some(fp)) = (&blocks, fp) {
            let update = match &imap {
                Ok(_) if on_disk.contains_key(&acct.name) => b.remove(&acct.name),
                Err(e) if e.code() == "auth_failed" => b.add(&acct.name, &fp, std::time::SystemTime::now()),
                _ => Ok(()),
            };
            if let Err(e) = update {
                println!("  warning: {e}");
            }
        }
        match imap {
            Ok(r) => {
                println!("  ok: authenticated with {} in {} ms", r.mechanism, r.login_ms);
                println!("  tls: {}", r.tls);
                println!("  certificate sha256: {}", r.cert_sha256);
                println!("  capabilities: {}", r.capabilities.join(" "));
                println!("  folders: {}", r.folder_count);
            }
            Err(e) => {
                failed += 1;
                println!("  FAILED ({}): {e}", e.code());
            }
        }
        if let Some(smtp) = crate::smtp::SmtpClient::new(Arc::new(acct.clone()), Arc::clone(&limits)) {
            match smtp.check() {
                Ok(r) => {
                    println!("  smtp ok: {}:{} ({}), authenticated with {} in {} ms", r.host, r.port, r.tls, r.auth_mechanism, r.login_ms);
                    println!("  smtp tls: {}", r.tls_version);
                    println!("  smtp certificate sha256: {}", r.cert_sha256);
                    println!("  smtp extensions: {}", r.extensions.join(" "));
                }
                Err(e) => {
                    failed += 1;
                    println!("  smtp FAILED ({}): {e}", e.code());
                }
            }
        }
    }
    if failed == 0 {
        println!("all {} account(s) ok", cfg.accounts.len());
        0
    } else {
        println!("{failed} of {} account(s) failed", cfg.accounts.len());
        1
    }
}
