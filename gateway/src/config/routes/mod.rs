//! `[[route]]` and `[routing]`: named routes, the per-recipient map, aliases, sender
//! masquerading, recipient validation and the callout. Shapes, defaults and the checks
//! that need no file; the map files themselves are read by [`crate::routing::load`].

mod check;

pub use check::check;

use super::keys::{Key, Keys, Kind, NEXT_HOPS, TLS_POLICY, key};
use super::{DaneMode, NextHop, Span, TlsPolicy};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One named route: where its recipients go and how they are checked at RCPT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub name: String,
    /// Recipient domains served by this route: `example.com` (that domain only) or
    /// `*.example.com` (every subdomain, not `example.com` itself). Longest suffix wins.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Ordered next hops with failover, as in `[[domain]]`; `mx` = the recipient's MX.
    pub next_hops: Vec<String>,
    /// TLS towards this route's next hops; defaults to `delivery.tls`.
    #[serde(default)]
    pub tls: Option<TlsPolicy>,
    /// DANE for this route's `mx` next hop; defaults to `dane.mode`.
    #[serde(default)]
    pub dane: Option<DaneMode>,
    /// Route tried for a recipient this route's backend does not know (`550 5.1.1`).
    #[serde(default)]
    pub fallback: Option<String>,
    /// Recipient domain rewriting on this route: `{ "example.com" = "local.example.com" }`.
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
    /// File of valid recipient addresses (one per line): others get `550 5.1.1` at RCPT.
    #[serde(default)]
    pub recipients: Option<PathBuf>,
    /// Probe the route's backend with RCPT before accepting a recipient.
    #[serde(default)]
    pub callout: bool,
    /// Scan this route's mail when `[scan]` names a scanner (default true).
    #[serde(default = "yes")]
    pub scan: bool,
    #[serde(skip)]
    pub hops: Vec<NextHop>,
}

fn yes() -> bool {
    true
}

impl Keys for Route {
    const KEYS: &'static [Key] = &[
        key(
            "name",
            Kind::Str("NAME"),
            "the route's name (map lines, fallbacks, probes)",
        ),
        key(
            "domains",
            Kind::List("DOMAIN|*.DOMAIN"),
            "recipient domains served by this route",
        ),
        key("next_hops", NEXT_HOPS, "ordered next hops"),
        key(
            "tls",
            TLS_POLICY,
            "TLS towards the next hops (default delivery.tls)",
        ),
        key(
            "dane",
            Kind::Enum(DaneMode::WORDS),
            "DANE for the mx next hop (default dane.mode)",
        ),
        key(
            "fallback",
            Kind::Str("ROUTE"),
            "route tried for recipients the backend does not know",
        ),
        key(
            "rewrite",
            Kind::Map("DOMAIN", "DOMAIN"),
            "recipient domain rewriting",
        ),
        key(
            "recipients",
            Kind::Str("PATH"),
            "file of valid recipient addresses",
        ),
        key(
            "callout",
            Kind::Bool,
            "probe the backend with RCPT before accepting",
        ),
        key("scan", Kind::Bool, "scan this route's mail (default true)"),
    ];
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Routing {
    /// Per-recipient overrides: `address route` lines; reloaded when the file changes.
    pub map: Option<PathBuf>,
    /// Alias map: `address target[, target…]` lines (one address to many).
    pub aliases: Option<PathBuf>,
    /// How often the map, alias and recipient files are checked for changes (SIGHUP too).
    pub reload_interval: Span,
    /// Sender domains rewritten on outbound mail: `{ "*.corp.example.com" = "example.com" }`.
    pub masquerade: BTreeMap<String, String>,
    pub callout: Callout,
}

impl Keys for Routing {
    const KEYS: &'static [Key] = &[
        key(
            "map",
            Kind::Str("PATH"),
            "per-recipient overrides: address route lines",
        ),
        key(
            "aliases",
            Kind::Str("PATH"),
            "alias map: address target[, target...] lines",
        ),
        key(
            "reload_interval",
            Kind::Span,
            "how often the files are checked for changes",
        ),
        key(
            "masquerade",
            Kind::Map("DOMAIN|*.DOMAIN", "DOMAIN"),
            "sender domains rewritten outbound",
        ),
        key(
            "callout",
            Kind::Table(Callout::KEYS),
            "recipient verification at the route's backend",
        ),
    ];
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Callout {
    /// The whole probe (connect, EHLO, MAIL, RCPT) must finish within this.
    pub timeout: Span,
    /// How long "the backend knows this recipient" is remembered.
    pub positive_ttl: Span,
    /// How long "the backend does not know this recipient" is remembered.
    pub negative_ttl: Span,
    /// Backend unreachable: `defer` (`451 4.4.3`) or `accept` (and deliver later).
    pub unreachable: Unreachable,
    /// Cached verdicts at most (both kinds together).
    pub max_cached: usize,
}

impl Keys for Callout {
    const KEYS: &'static [Key] = &[
        key(
            "timeout",
            Kind::Span,
            "the whole probe: connect, EHLO, MAIL, RCPT",
        ),
        key(
            "positive_ttl",
            Kind::Span,
            "\"known recipient\" remembered this long",
        ),
        key(
            "negative_ttl",
            Kind::Span,
            "\"unknown recipient\" remembered this long",
        ),
        key(
            "unreachable",
            Kind::Enum(&["defer", "accept"]),
            "backend unreachable: 451 or accept",
        ),
        key("max_cached", Kind::Int, "cached verdicts at most"),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unreachable {
    Defer,
    Accept,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            map: None,
            aliases: None,
            reload_interval: Span(Duration::from_secs(10)),
            masquerade: BTreeMap::new(),
            callout: Callout::default(),
        }
    }
}

impl Default for Callout {
    fn default() -> Self {
        Callout {
            timeout: Span(Duration::from_secs(15)),
            positive_ttl: Span(Duration::from_secs(3600)),
            negative_ttl: Span(Duration::from_secs(600)),
            unreachable: Unreachable::Defer,
            max_cached: 100_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = r#"
hostname = "mx.test"
data_dir = "/tmp/x"
[[listener]]
address = "127.0.0.1:2525"
[[domain]]
name = "old.test"
next_hops = ["10.0.0.9:25"]
"#;

    fn errors(extra: &str) -> Vec<String> {
        match Config::parse(&format!("{BASE}{extra}")) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_full_route_parses_and_normalises() {
        let config = Config::parse(&format!(
            "{BASE}{}",
            r#"
[[route]]
name = "onprem"
domains = ["Example.COM", "*.example.com"]
next_hops = ["10.0.0.1:25", "mx"]
tls = "required"
fallback = "old.test"
rewrite = { "@Example.com" = "local.example.com" }
callout = true
[routing]
masquerade = { "*.corp.example.com" = "example.com" }
"#
        ))
        .expect("valid");
        let r = &config.routes[0];
        assert_eq!(r.domains, ["example.com", "*.example.com"]);
        assert_eq!(r.hops.len(), 2);
        assert_eq!(r.rewrite["example.com"], "local.example.com");
        assert_eq!(
            config.routing.masquerade["*.corp.example.com"],
            "example.com"
        );
    }

    #[test]
    fn route_errors_name_their_key() {
        let e = errors(
            r#"
[[route]]
name = "a"
domains = ["old.test", "bad domain"]
next_hops = []
fallback = "b"
[[route]]
name = "b"
next_hops = ["10.0.0.1"]
fallback = "a"
[[route]]
name = "a"
next_hops = ["10.0.0.1"]
fallback = "nowhere"
"#,
        );
        let has = |needle: &str| e.iter().any(|s| s.contains(needle));
        assert!(
            has("route[0].domains[0] = old.test: domain served by two routes"),
            "{e:?}"
        );
        assert!(has("route[0].domains[1] = bad domain"), "{e:?}");
        assert!(has("route[0].next_hops = []"), "{e:?}");
        assert!(has("route[0].fallback = b: fallbacks form a loop"), "{e:?}");
        assert!(has("route[2].name = a: route name"), "{e:?}");
        assert!(
            has("route[2].fallback = nowhere: no route has this name"),
            "{e:?}"
        );
    }
}
