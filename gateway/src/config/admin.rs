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

/// Resolves each probe's next hops and TLS policy through the route table; every finding
/// names its key.
pub fn check(config: &mut super::Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut add = |key: String, value: String, problem: &str| {
        errors.push(ConfigError {
            key,
            value,
            problem: problem.into(),
        })
    };
    // Built only when a probe names a domain or route; it reads nothing but `config`.
    let table = (!config.admin.probes.is_empty()).then(|| crate::routing::Table::new(config));
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
    let default_tls = config.delivery.tls.clone();
    for (i, probe) in config.admin.probes.iter_mut().enumerate() {
        let key = |field: &str| format!("admin.probe[{i}].{field}");
        let given = [&probe.domain, &probe.route, &probe.next_hop];
        if given.iter().filter(|g| g.is_some()).count() != 1 {
            add(
                key("domain"),
                String::new(),
                "give exactly one of `domain`, `route` or `next_hop`",
            );
        } else if let Some(domain) = &probe.domain {
            let name = domain.trim_end_matches('.').to_ascii_lowercase();
            match table
                .as_ref()
                .and_then(|t| Some(t.route(t.by_domain(&name)?)))
            {
                Some(route) => {
                    (probe.hops, probe.tls) = (route.hops.clone(), Some(route.tls.clone()))
                }
                None => add(
                    key("domain"),
                    domain.clone(),
                    "no [[domain]] or [[route]] serves it",
                ),
            }
        } else if let Some(name) = &probe.route {
            match table.as_ref().and_then(|t| Some(t.route(t.id(name)?))) {
                Some(route) => {
                    (probe.hops, probe.tls) = (route.hops.clone(), Some(route.tls.clone()))
                }
                None => add(key("route"), name.clone(), "no [[route]] has this name"),
            }
        } else if let Some(text) = &probe.next_hop {
            match NextHop::parse(text) {
                Ok(NextHop::Mx) => add(
                    key("next_hop"),
                    text.clone(),
                    "`mx` needs a domain: use `domain` instead",
                ),
                Ok(hop) => (probe.hops, probe.tls) = (vec![hop], Some(default_tls.clone())),
                Err(problem) => add(key("next_hop"), text.clone(), &problem),
            }
        }
        if probe.hops.contains(&NextHop::Mx) && probe.domain.is_none() {
            add(
                key("route"),
                probe.route.clone().unwrap_or_default(),
                "the route uses `mx`: probe it with `domain` so the MX records can be looked up",
            );
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

#[cfg(test)]
mod tests {
    use crate::config::{Config, NextHop};

    const BASE: &str = "hostname = \"gw.test\"\ndata_dir = \"/tmp/x\"\n\
        [[listener]]\naddress = \"127.0.0.1:25\"\n\
        [[domain]]\nname = \"example.com\"\nnext_hops = [\"10.0.0.1:25\", \"mx\"]\n";

    #[test]
    fn a_domain_probe_takes_the_route_and_a_next_hop_probe_its_hop() {
        let text = format!(
            "{BASE}[admin]\naddress = \"127.0.0.1:9100\"\n\
             [[admin.probe]]\ndomain = \"Example.com\"\nrecipient = \"p@example.com\"\n\
             [[admin.probe]]\nnext_hop = \"10.0.0.9:2525\"\nrecipient = \"p@example.com\"\ninterval = \"5s\"\n"
        );
        let config = Config::parse(&text).unwrap();
        assert_eq!(config.admin.address.port(), 9100);
        let probes = &config.admin.probes;
        assert_eq!(probes[0].hops.len(), 2);
        assert_eq!(probes[0].hops[1], NextHop::Mx);
        assert_eq!(probes[1].hops, [NextHop::parse("10.0.0.9:2525").unwrap()]);
        assert_eq!(probes[1].interval.0.as_secs(), 5);
        assert!(Config::parse(BASE).unwrap().admin.enabled);
    }

    #[test]
    fn a_named_route_and_a_route_domain_resolve_to_the_route_hops() {
        let text = format!(
            "{BASE}[[route]]\nname = \"onprem\"\ndomains = [\"local.example.com\"]\nnext_hops = [\"10.0.0.5:25\"]\n\
             [[admin.probe]]\nroute = \"onprem\"\nrecipient = \"p@local.example.com\"\n\
             [[admin.probe]]\ndomain = \"local.example.com\"\nrecipient = \"p@local.example.com\"\n"
        );
        let config = Config::parse(&text).unwrap();
        let hop = NextHop::parse("10.0.0.5:25").unwrap();
        assert_eq!(config.admin.probes[0].hops, config.admin.probes[1].hops);
        assert_eq!(config.admin.probes[1].hops, [hop]);
        let bad = format!("{BASE}[[admin.probe]]\nroute = \"nosuch\"\nrecipient = \"p@x.test\"\n");
        let errors = Config::parse(&bad).unwrap_err();
        assert!(
            errors[0]
                .to_string()
                .starts_with("admin.probe[0].route = nosuch"),
            "{errors:?}"
        );
    }

    #[test]
    fn bad_probes_are_reported_by_key() {
        let text = format!(
            "{BASE}[[admin.probe]]\ndomain = \"other.test\"\nrecipient = \"nobody\"\n\
             [[admin.probe]]\ndomain = \"example.com\"\nnext_hop = \"10.0.0.1\"\nrecipient = \"p@x.test\"\n\
             [[admin.probe]]\nnext_hop = \"mx\"\nrecipient = \"p@x.test\"\ninterval = \"1ms\"\n"
        );
        let errors = Config::parse(&text).unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let has = |needle: &str| text.iter().any(|t| t.starts_with(needle));
        assert!(
            has("admin.probe[0].domain = other.test: no [[domain]] or [[route]]"),
            "{text:?}"
        );
        assert!(has("admin.probe[0].recipient = nobody"), "{text:?}");
        assert!(has("admin.probe[1].domain: give exactly one"), "{text:?}");
        assert!(has("admin.probe[2].next_hop = mx"), "{text:?}");
        assert!(has("admin.probe[2].interval"), "{text:?}");
        assert!(Config::parse(&format!("{BASE}[admin]\nport = 1\n")).is_err());
    }
}
