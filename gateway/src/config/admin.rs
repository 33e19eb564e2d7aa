//! `[admin]`: the admin HTTP listener (metrics, `/healthz`) and the mail-flow probes.
//!
//! Owns the shape and defaults of these keys and their semantic checks; the listener and
//! the probes themselves live in [`crate::observe`].

use super::keys::{Key, Keys, Kind, key};
use super::{ConfigError, NextHop, Span, TlsPolicy};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Serve `/metrics` and `/healthz`; loopback by default, so exposing them is a choice.
    pub enabled: bool,
    pub address: SocketAddr,
    /// Connections served at once; when all are taken, the oldest one still sending its
    /// request head makes room, so monitors are answered despite slow clients.
    pub max_clients: usize,
    /// Time a client has to send its whole request head (not per read).
    pub head_timeout: Span,
    /// Mail-flow probes, one table per route or next hop.
    #[serde(rename = "probe")]
    pub probes: Vec<Probe>,
}

impl Keys for Admin {
    const KEYS: &'static [Key] = &[
        key("enabled", Kind::Bool, "serve /metrics and /healthz"),
        key(
            "address",
            Kind::Str("IP:PORT"),
            "where (loopback by default)",
        ),
        key("max_clients", Kind::Int, "connections served at once"),
        key(
            "head_timeout",
            Kind::Span,
            "time to send a whole request head",
        ),
        key(
            "probe",
            Kind::Entries {
                id: "recipient",
                placeholder: "ADDRESS",
                keys: Probe::KEYS,
            },
            "a mail-flow probe, by its recipient",
        ),
    ];
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// Probe the next hops of the route serving this domain…
    #[serde(default)]
    pub domain: Option<String>,
    /// …or of this named `[[route]]`…
    #[serde(default)]
    pub route: Option<String>,
    /// …or one next hop (`host:port`, `ip:port`).
    #[serde(default)]
    pub next_hop: Option<String>,
    /// The address given in RCPT TO; the backend must know it (a probe mailbox).
    pub recipient: String,
    /// MAIL FROM; default `postmaster@` our hostname.
    #[serde(default)]
    pub sender: Option<String>,
    #[serde(default = "default_interval")]
    pub interval: Span,
    #[serde(default = "default_timeout")]
    pub timeout: Span,
    /// Also send a real message through this gateway (its first listener) to `recipient`
    /// and measure until the next hop accepted it.
    #[serde(default)]
    pub message: bool,
    /// Parsed from `next_hop` or taken from the route during validation.
    #[serde(skip)]
    pub hops: Vec<NextHop>,
    /// The route's TLS policy (`delivery.tls` for a lone next hop).
    #[serde(skip)]
    pub tls: Option<TlsPolicy>,
}

impl Keys for Probe {
    const KEYS: &'static [Key] = &[
        key(
            "domain",
            Kind::Str("DOMAIN"),
            "probe the route serving this domain...",
        ),
        key("route", Kind::Str("ROUTE"), "...or this named route..."),
        key(
            "next_hop",
            Kind::Str("HOST:PORT"),
            "...or this one next hop",
        ),
        key(
            "recipient",
            Kind::Str("ADDRESS"),
            "RCPT TO: a mailbox the backend knows",
        ),
        key(
            "sender",
            Kind::Str("ADDRESS"),
            "MAIL FROM (default postmaster@hostname)",
        ),
        key("interval", Kind::Span, "time between probes"),
        key("timeout", Kind::Span, "one probe's limit"),
        key(
            "message",
            Kind::Bool,
            "also send a real message through the gateway",
        ),
    ];
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            enabled: true,
            address: SocketAddr::from(([127, 0, 0, 1], 9025)),
            max_clients: 64,
            head_timeout: Span(Duration::from_secs(2)),
            probes: Vec::new(),
        }
    }
}

fn default_interval() -> Span {
    Span(Duration::from_secs(60))
}

fn default_timeout() -> Span {
    Span(Duration::from_secs(30))
}

/// Checks the probes' own keys; every finding names its key. Their next hops and TLS policy
/// are resolved through the route table by `probe::targets` (the loader runs it).
pub fn check(config: &mut super::Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut add = |key: String, value: String, problem: &str| {
        errors.push(ConfigError {
            key,
            value,
            problem: problem.into(),
        })
    };
    if config.admin.max_clients == 0 {
        add("admin.max_clients".into(), "0".into(), "must be at least 1");
    }
    if config.admin.head_timeout.0 < Duration::from_millis(100) {
        add(
            "admin.head_timeout".into(),
            config.admin.head_timeout.to_string(),
            "must be at least 100ms",
        );
    }
    for (i, probe) in config.admin.probes.iter_mut().enumerate() {
        let key = |field: &str| format!("admin.probe[{i}].{field}");
        let given = [&probe.domain, &probe.route, &probe.next_hop];
        if given.iter().filter(|g| g.is_some()).count() != 1 {
            add(
                key("domain"),
                String::new(),
                "give exactly one of `domain`, `route` or `next_hop`",
            );
        } else if let Some(text) = &probe.next_hop {
            match NextHop::parse(text) {
                Ok(NextHop::Mx) => add(
                    key("next_hop"),
                    text.clone(),
                    "`mx` needs a domain: use `domain` instead",
                ),
                Ok(_) => {}
                Err(problem) => add(key("next_hop"), text.clone(), &problem),
            }
        }
        if !probe.recipient.contains('@') {
            add(
                key("recipient"),
                probe.recipient.clone(),
                "must be an address (local@domain)",
            );
        }
        if probe.interval.0 < Duration::from_millis(100) {
            add(
                key("interval"),
                probe.interval.to_string(),
                "must be at least 100ms",
            );
        }
        if probe.timeout.0 < Duration::from_millis(100) {
            add(
                key("timeout"),
                probe.timeout.to_string(),
                "must be at least 100ms",
            );
        }
    }
    if config.admin.probes.iter().any(|p| p.message) && config.listeners.is_empty() {
        add(
            "admin.probe".into(),
            String::new(),
            "`message = true` needs a [[listener]] to send through",
        );
    }
    errors
}
