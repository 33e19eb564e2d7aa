//! Typed configuration: parsed from TOML and validated once, before any port is bound.
//!
//! Owns the shape of `edgemx.toml`, every default, and the error type that names the
//! offending key and value. It must not touch sockets or files other than the one it reads:
//! other modules receive an already-valid [`Config`].
//!
//! Each section type also lists its keys with their kind and a line of help ([`Keys`],
//! `keys.rs`): the console's `set` paths, `?` help and completion are derived from them.

mod admin;
pub mod advice;
pub mod auth;
pub mod boot;
pub mod cidr;
pub mod console;
pub mod control;
pub mod flow;
pub mod keys;
pub mod network;
mod nexthop;
pub mod parts;
mod relay;
mod reports;
mod reserve;
pub mod routes;
pub mod scan;
pub mod ssh;
pub mod store;
pub mod syslog;
mod tlspolicy;
pub mod transport;
mod units;
mod validate;

pub use admin::{Admin, Probe};
pub use cidr::{Cidr, CidrError, Rules};
pub use flow::{Flow, MxRole};
pub use keys::{Key, Keys, Kind};
pub use network::{AddressError, NetMode, Network};
pub use nexthop::{NextHop, valid_hostname};
pub use relay::{Relay, Role};
pub use reserve::Reserve;
pub use tlspolicy::{Pin, TlsMode, TlsPolicy};
pub use transport::{Dane, DaneMode, MtaSts};
pub use units::{Bytes, Span, parse_bytes, parse_span};

use keys::{NEXT_HOPS, TLS_POLICY, key};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Exit status for a configuration error (EX_CONFIG would be 78; sysexits' EX_USAGE, 64,
/// is what the issue and our operators' scripts expect).
pub const EXIT_CONFIG: i32 = 64;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Our name in the banner, EHLO replies, Received headers and DSNs.
    pub hostname: String,
    /// Holds the queue database, the control socket and generated certificates.
    pub data_dir: PathBuf,
    #[serde(rename = "listener", default)]
    pub listeners: Vec<Listener>,
    #[serde(rename = "domain", default)]
    pub domains: Vec<Domain>,
    /// Named routes (`[[route]]`) and their settings (`[routing]`); see `routes.rs`.
    #[serde(rename = "route", default)]
    pub routes: Vec<routes::Route>,
    #[serde(default)]
    pub routing: routes::Routing,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub queue: Queue,
    #[serde(default)]
    pub delivery: Delivery,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default)]
    pub log: Log,
    /// The appliance's network, applied by init (absent: `/data/network.toml`, DHCP).
    #[serde(default)]
    pub network: Option<Network>,
    /// The text this configuration was parsed from and the file it was read from: the
    /// console edits the text and commits replace the file (`store`).
    #[serde(skip)]
    pub text: String,
    #[serde(skip)]
    pub source: Option<PathBuf>,
    #[serde(default)]
    pub relay: Relay,
    /// SPF/DKIM/DMARC/ARC checks and DKIM signing (`config/auth.rs`).
    #[serde(default)]
    pub auth: auth::Auth,
    /// Secondary MX, next-hop health, paced release, ETRN, queue notices, hop limit.
    #[serde(default)]
    pub flow: Flow,
    #[serde(default)]
    pub admin: Admin,
    /// Who may use the control socket besides root (`config/control.rs`).
    #[serde(default)]
    pub control: control::Control,
    /// Trial boots and the health watchdog, applied by init (`boot.rs`).
    #[serde(default)]
    pub boot: boot::Boot,
    /// Content scanning by rspamd and clamd at the end of DATA (`scan.rs`).
    #[serde(default)]
    pub scan: scan::Scan,
    /// The operator console's sessions (`console.rs`).
    #[serde(default)]
    pub console: console::Console,
    /// DANE for mail delivered by MX (`transport.rs`).
    #[serde(default)]
    pub dane: Dane,
    /// MTA-STS for mail delivered by MX (`transport.rs`).
    #[serde(default)]
    pub mta_sts: MtaSts,
    /// The console over SSH (`ssh.rs`).
    #[serde(default)]
    pub ssh: ssh::Ssh,
}

impl Keys for Config {
    const KEYS: &'static [Key] = &[
        key(
            "hostname",
            Kind::Str("HOST"),
            "our name in the banner, EHLO, Received headers",
        ),
        key(
            "data_dir",
            Kind::Str("DIR"),
            "queue, control socket, certificates (fixed while running)",
        ),
        key(
            "listener",
            Kind::Entries {
                id: "address",
                placeholder: "IP:PORT",
                keys: Listener::KEYS,
            },
            "an SMTP listening address",
        ),
        key(
            "domain",
            Kind::Entries {
                id: "name",
                placeholder: "DOMAIN",
                keys: Domain::KEYS,
            },
            "a domain we accept mail for",
        ),
        key(
            "route",
            Kind::Entries {
                id: "name",
                placeholder: "NAME",
                keys: routes::Route::KEYS,
            },
            "a named route: its domains, next hops and recipient checks",
        ),
        key(
            "routing",
            Kind::Table(routes::Routing::KEYS),
            "recipient map, aliases, masquerading, callout",
        ),
        key(
            "limits",
            Kind::Table(Limits::KEYS),
            "per-session and global limits",
        ),
        key(
            "tls",
            Kind::Table(Tls::KEYS),
            "the certificate presented to clients",
        ),
        key(
            "queue",
            Kind::Table(Queue::KEYS),
            "queue size and retry schedule",
        ),
        key(
            "delivery",
            Kind::Table(Delivery::KEYS),
            "delivery to next hops",
        ),
        key(
            "dns",
            Kind::Table(Dns::KEYS),
            "resolvers used for next hops and MX",
        ),
        key("log", Kind::Table(Log::KEYS), "logging"),
        key(
            "network",
            Kind::Table(Network::KEYS),
            "the appliance's own network (applied by init)",
        ),
        key(
            "relay",
            Kind::Table(Relay::KEYS),
            "who may relay to domains we do not serve",
        ),
        key(
            "auth",
            Kind::Table(auth::Auth::KEYS),
            "SPF, DKIM, DMARC and ARC checks; DKIM signing",
        ),
        key(
            "flow",
            Kind::Table(Flow::KEYS),
            "secondary MX, next-hop health, release pacing, ETRN, notices",
        ),
        key(
            "admin",
            Kind::Table(Admin::KEYS),
            "the metrics and health listener, mail-flow probes",
        ),
        key(
            "control",
            Kind::Table(control::Control::KEYS),
            "who may use the control socket besides root",
        ),
        key(
            "boot",
            Kind::Table(boot::Boot::KEYS),
            "trial boots and the health watchdog (applied by init at boot)",
        ),
        key(
            "scan",
            Kind::Table(scan::Scan::KEYS),
            "content scanning by rspamd and clamd, quarantine",
        ),
        key(
            "console",
            Kind::Table(console::Console::KEYS),
            "operator console sessions: idle timeout",
        ),
        key(
            "dane",
            Kind::Table(Dane::KEYS),
            "DANE (RFC 7672) for delivery by MX: mode, trust anchor",
        ),
        key(
            "mta_sts",
            Kind::Table(MtaSts::KEYS),
            "MTA-STS (RFC 8461) for delivery by MX",
        ),
        key(
            "ssh",
            Kind::Table(ssh::Ssh::KEYS),
            "the operator console over SSH: keys, addresses",
        ),
    ];
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub address: SocketAddr,
    /// Offer STARTTLS on this listener.
    #[serde(default = "yes")]
    pub starttls: bool,
    /// `mx` (default) or `submission`.
    #[serde(default)]
    pub role: Role,
}

impl Keys for Listener {
    const KEYS: &'static [Key] = &[
        key(
            "address",
            Kind::Str("IP:PORT"),
            "address and port to listen on",
        ),
        key("starttls", Kind::Bool, "offer STARTTLS (default true)"),
        key(
            "role",
            Kind::Enum(&["mx", "submission"]),
            "mx (port 25) or submission",
        ),
    ];
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// The domain we accept mail for, compared case-insensitively.
    pub name: String,
    /// Ordered next hops: `host:port`, `ip:port`, `[v6]:port`, `host` (port 25) or `mx`.
    pub next_hops: Vec<String>,
    /// TLS towards this domain's next hops; defaults to `delivery.tls`.
    #[serde(default)]
    pub tls: Option<TlsPolicy>,
    /// `primary` (default) or `secondary` MX for this domain.
    #[serde(default)]
    pub role: MxRole,
    /// DANE for this domain's `mx` next hop; defaults to `dane.mode`.
    #[serde(default)]
    pub dane: Option<DaneMode>,
    /// Scan this domain's mail when `[scan]` names a scanner (default true).
    #[serde(default = "yes")]
    pub scan: bool,
    #[serde(skip)]
    pub hops: Vec<NextHop>,
}

impl Keys for Domain {
    const KEYS: &'static [Key] = &[
        key(
            "name",
            Kind::Str("DOMAIN"),
            "the domain, compared case-insensitively",
        ),
        key("next_hops", NEXT_HOPS, "ordered next hops"),
        key(
            "tls",
            TLS_POLICY,
            "TLS towards the next hops (default delivery.tls)",
        ),
        key(
            "role",
            Kind::Enum(&["primary", "secondary"]),
            "primary or secondary MX for the domain",
        ),
        key(
            "dane",
            Kind::Enum(DaneMode::WORDS),
            "DANE for the mx next hop (default dane.mode)",
        ),
        key("scan", Kind::Bool, "scan this domain's mail (default true)"),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineEndings {
    /// Bare CR or LF in message data is refused with a 5xx (smuggling defence).
    Reject,
    /// Bare CR or LF is converted to CRLF.
    Normalize,
}

/// Message lines longer than RFC 5322's 998 octets (`smtp/proto/data/lines.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LongLines {
    /// Refused at the end of DATA with `554 5.6.0`: nothing is altered.
    Reject,
    /// Broken by CRLF SPACE (Postfix's way), before we sign, after we verify.
    Fold,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message accepted, counted while streaming; advertised in SIZE.
    pub max_message_size: Bytes,
    /// Longest command line, CRLF excluded.
    pub max_line_length: usize,
    pub max_recipients: usize,
    /// Failed commands before the session is closed with 421.
    pub max_errors: u32,
    /// Commands in one session before it is closed with 421.
    pub max_commands: u32,
    /// Messages accepted in one session.
    pub max_messages_per_session: u32,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Time allowed for one whole command line, however it trickles in (RFC 5321
    /// §4.5.3.2.7: at least 5 minutes).
    pub command_timeout: Span,
    /// Time allowed between two reads inside DATA/BDAT (RFC 5321 §4.5.3.2.5-6: 3 minutes),
    /// and the base of the phase's total deadline (`min_data_rate`).
    pub data_timeout: Span,
    /// Bytes per second a client must keep up in DATA/BDAT: a phase may last
    /// `data_timeout` plus the time its bytes take at this rate (Postfix's
    /// `smtpd_min_data_rate`), so a trickle cannot hold a session open for ever.
    pub min_data_rate: Bytes,
    /// Share of `max_connections` in use (0–1) from which the gateway is under stress.
    pub stress_threshold: f64,
    /// Under stress, replaces `command_timeout` and `data_timeout` when shorter (Postfix's
    /// stress-dependent `smtpd_timeout` of 10 s).
    pub stress_timeout: Span,
    /// Message bytes held in memory by all sessions together; beyond it new messages get 452.
    pub inflight_bytes: Bytes,
    pub line_endings: LineEndings,
    pub long_lines: LongLines,
    /// Time given to sessions in DATA and to deliveries when shutting down.
    pub shutdown_timeout: Span,
}

impl Keys for Limits {
    const KEYS: &'static [Key] = &[
        key("max_message_size", Kind::Size, "largest message (SIZE)"),
        key("max_line_length", Kind::Int, "longest command line"),
        key("max_recipients", Kind::Int, "recipients per message"),
        key("max_errors", Kind::Int, "failed commands before 421"),
        key(
            "max_commands",
            Kind::Int,
            "commands in a session without a message queued",
        ),
        key(
            "max_messages_per_session",
            Kind::Int,
            "messages per session",
        ),
        key("max_connections", Kind::Int, "sessions in total"),
        key(
            "max_connections_per_ip",
            Kind::Int,
            "sessions per client address",
        ),
        key("command_timeout", Kind::Span, "whole command line"),
        key("data_timeout", Kind::Span, "wait between reads in DATA"),
        key("min_data_rate", Kind::Size, "bytes/s kept up in DATA/BDAT"),
        key(
            "stress_threshold",
            Kind::Float,
            "share of max_connections: stress",
        ),
        key("stress_timeout", Kind::Span, "timeouts under stress"),
        key(
            "inflight_bytes",
            Kind::Size,
            "message bytes held by all sessions",
        ),
        key(
            "line_endings",
            Kind::Enum(&["reject", "normalize"]),
            "bare CR/LF in DATA",
        ),
        key(
            "long_lines",
            Kind::Enum(&["reject", "fold"]),
            "lines over 998 octets",
        ),
        key(
            "shutdown_timeout",
            Kind::Span,
            "time given to sessions at shutdown",
        ),
    ];
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain; without it a self-signed ECDSA P-256 certificate is generated
    /// into `data_dir` on first start.
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
    /// An RSA certificate served beside the first one, to clients whose signature
    /// algorithms or TLS 1.2 cipher suites rule out ECDSA (`tls::certs` chooses per
    /// handshake); its key must be RSA and the first certificate's must not be.
    pub rsa_certificate: Option<PathBuf>,
    pub rsa_private_key: Option<PathBuf>,
}

impl Keys for Tls {
    const KEYS: &'static [Key] = &[
        key("certificate", Kind::Str("PATH"), "PEM certificate chain"),
        key("private_key", Kind::Str("PATH"), "PEM private key"),
        key(
            "rsa_certificate",
            Kind::Str("PATH"),
            "PEM RSA certificate chain for clients without ECDSA",
        ),
        key(
            "rsa_private_key",
            Kind::Str("PATH"),
            "its PEM RSA private key",
        ),
    ];
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Queue {
    /// Messages held at most; beyond it new mail gets `452 4.3.1`.
    pub max_messages: u64,
    /// Message bytes held at most.
    pub max_bytes: Bytes,
    /// Free space kept on the data partition; below it new mail gets `452 4.3.1`.
    /// `auto` (default): 5 % of the file system, at most 256 MiB (`reserve.rs`).
    pub min_free_space: Reserve,
    /// Waits between delivery attempts; the last one repeats.
    pub retry_intervals: Vec<Span>,
    /// Random spread applied to each wait, as a fraction (0.1 = ±10 %).
    pub retry_jitter: f64,
    /// Age after which undelivered recipients bounce.
    pub max_lifetime: Span,
    /// Largest number of operations folded into one commit.
    pub max_batch: usize,
}

impl Keys for Queue {
    const KEYS: &'static [Key] = &[
        key("max_messages", Kind::Int, "messages held at most"),
        key("max_bytes", Kind::Size, "bytes held at most"),
        key(
            "min_free_space",
            Kind::SizeOr("auto"),
            "free space kept on the data partition (auto: 5 %, at most 256 MiB)",
        ),
        key(
            "retry_intervals",
            Kind::List("DURATION"),
            "waits between attempts",
        ),
        key("retry_jitter", Kind::Float, "random spread, 0 to 0.5"),
        key("max_lifetime", Kind::Span, "then undelivered mail bounces"),
        key("max_batch", Kind::Int, "changes per commit"),
    ];
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    pub tls: TlsPolicy,
    /// Next hops for mail to domains we do not serve (DSNs to remote senders).
    pub default_next_hops: Vec<String>,
    #[serde(skip)]
    pub default_hops: Vec<NextHop>,
    pub connect_timeout: Span,
    /// Per-command reply timeout (RFC 5321 §4.5.3.2 asks for 5 minutes; data end 10).
    pub command_timeout: Span,
    pub data_timeout: Span,
    pub max_connections_per_next_hop: usize,
    pub max_messages_per_connection: usize,
    /// Connections kept open after their last message, waiting for more.
    pub idle_timeout: Span,
    /// Deliveries in flight across all next hops.
    pub max_concurrent: usize,
    /// The port of MX hosts: 25 (RFC 5321); another port is for labs and tests.
    pub mx_port: u16,
}

impl Keys for Delivery {
    const KEYS: &'static [Key] = &[
        key("tls", TLS_POLICY, "default TLS policy"),
        key(
            "default_next_hops",
            NEXT_HOPS,
            "for domains we do not serve",
        ),
        key("connect_timeout", Kind::Span, "TCP connect"),
        key("command_timeout", Kind::Span, "per command reply"),
        key("data_timeout", Kind::Span, "reply to the end of data"),
        key(
            "max_connections_per_next_hop",
            Kind::Int,
            "connections per next hop",
        ),
        key("max_messages_per_connection", Kind::Int, "connection reuse"),
        key("idle_timeout", Kind::Span, "idle connection kept this long"),
        key("max_concurrent", Kind::Int, "deliveries in flight"),
        key(
            "mx_port",
            Kind::Int,
            "port of MX hosts (25; for labs and tests)",
        ),
    ];
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// Resolvers as `ip:port`; empty means `/etc/resolv.conf`.
    #[serde(default)]
    pub nameservers: Vec<SocketAddr>,
    #[serde(default)]
    pub timeout: Option<Span>,
}

impl Keys for Dns {
    const KEYS: &'static [Key] = &[
        key(
            "nameservers",
            Kind::List("IP:PORT"),
            "empty: /etc/resolv.conf",
        ),
        key("timeout", Kind::Span, "per query"),
    ];
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub level: String,
    /// `auto` (journald under systemd; the log file when the appliance's init runs the
    /// gateway; stderr otherwise), `journald`, `stderr` or `file`.
    pub target: String,
    /// The log file for `target = "file"`; empty: `<data_dir>/log/edgemx.log`.
    pub file: PathBuf,
    /// The log file is rotated when it reaches this size...
    pub max_size: Bytes,
    /// ...keeping this many older files (`edgemx.log.1` the newest).
    pub keep: usize,
    /// Remote collectors that get every line too.
    pub syslog: Vec<syslog::Syslog>,
}

impl Log {
    /// The log file `target = "file"` writes.
    pub fn file_in(&self, data_dir: &Path) -> PathBuf {
        if self.file.as_os_str().is_empty() {
            data_dir.join("log").join("edgemx.log")
        } else {
            self.file.clone()
        }
    }
}

impl Keys for Log {
    const KEYS: &'static [Key] = &[
        key(
            "level",
            Kind::Enum(&["error", "warn", "info", "debug", "trace"]),
            "least severe level shown",
        ),
        key(
            "target",
            Kind::Enum(&["auto", "journald", "stderr", "file"]),
            "where log lines go",
        ),
        key(
            "file",
            Kind::Str("PATH"),
            "log file (default <data_dir>/log/edgemx.log)",
        ),
        key("max_size", Kind::Size, "rotate the log file at this size"),
        key("keep", Kind::Int, "rotated log files kept"),
        key(
            "syslog",
            Kind::Entries {
                id: "address",
                placeholder: "HOST:PORT",
                keys: syslog::Syslog::KEYS,
            },
            "a remote syslog collector, by its address",
        ),
    ];
}

fn yes() -> bool {
    true
}

impl Limits {
    /// Sessions open from which the gateway is under stress (at least one).
    pub fn stress_connections(&self) -> usize {
        ((self.max_connections as f64 * self.stress_threshold).ceil() as usize).max(1)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: Bytes(25 << 20),
            max_line_length: 2048,
            max_recipients: 100,
            max_errors: 10,
            max_commands: 1_000,
            max_messages_per_session: 100,
            max_connections: 500,
            max_connections_per_ip: 50,
            command_timeout: Span(Duration::from_secs(300)),
            data_timeout: Span(Duration::from_secs(180)),
            min_data_rate: Bytes(500),
            stress_threshold: 0.8,
            stress_timeout: Span(Duration::from_secs(10)),
            inflight_bytes: Bytes(512 << 20),
            line_endings: LineEndings::Reject,
            long_lines: LongLines::Fold,
            shutdown_timeout: Span(Duration::from_secs(30)),
        }
    }
}

impl Default for Queue {
    fn default() -> Self {
        let minutes = [1, 5, 15, 30, 60, 120, 240];
        Queue {
            max_messages: 1_000_000,
            max_bytes: Bytes(8 << 30),
            min_free_space: Reserve::Auto,
            retry_intervals: minutes
                .iter()
                .map(|m| Span(Duration::from_secs(m * 60)))
                .collect(),
            retry_jitter: 0.1,
            max_lifetime: Span(Duration::from_secs(5 * 86_400)),
            max_batch: 512,
        }
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            tls: TlsPolicy::OPPORTUNISTIC,
            default_next_hops: vec!["mx".into()],
            default_hops: vec![NextHop::Mx],
            connect_timeout: Span(Duration::from_secs(30)),
            command_timeout: Span(Duration::from_secs(300)),
            data_timeout: Span(Duration::from_secs(600)),
            max_connections_per_next_hop: 10,
            max_messages_per_connection: 100,
            idle_timeout: Span(Duration::from_secs(5)),
            max_concurrent: 100,
            mx_port: 25,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
            target: "auto".into(),
            file: PathBuf::new(),
            max_size: Bytes(8 << 20),
            keep: 4,
            syslog: Vec::new(),
        }
    }
}

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the offending key, e.g. `domain[0].next_hops[1]`; empty for file errors.
    pub key: String,
    pub value: String,
    pub problem: String,
}

/// Every problem found in a configuration file, so the operator fixes them in one pass.
#[derive(Debug)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match (self.key.is_empty(), self.value.is_empty()) {
            (true, _) => write!(f, "{}", self.problem),
            (false, true) => write!(f, "{}: {}", self.key, self.problem),
            (false, false) => write!(f, "{} = {}: {}", self.key, self.value, self.problem),
        }
    }
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        for e in &self.errors {
            writeln!(f, "{}: {e}", self.file.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let fail = |problem: String| ConfigErrors {
            file: path.to_path_buf(),
            errors: vec![ConfigError {
                key: String::new(),
                value: String::new(),
                problem,
            }],
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let mut config = Config::parse(&text).map_err(|errors| ConfigErrors {
            file: path.to_path_buf(),
            errors,
        })?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| vec![validate::from_toml(&e, text)])?;
        let mut errors = validate::check(&mut config);
        if let Some(network) = &config.network {
            errors.extend(network::check(network));
        }
        errors.extend(boot::check(&config.boot));
        errors.extend(scan::check(&mut config.scan));
        if errors.is_empty() {
            config.text = text.to_string();
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// The configured domain serving `domain` (already lowercase), if any.
    pub fn domain(&self, domain: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name == domain)
    }

    pub fn queue_path(&self) -> PathBuf {
        self.data_dir.join("queue.redb")
    }

    pub fn control_socket(&self) -> PathBuf {
        self.data_dir.join("control.sock")
    }
}
