//! `[dane]` and `[mta_sts]`: outbound transport security for mail delivered by MX (RFC 7672
//! DANE for SMTP, RFC 8461 MTA-STS), and the per-`[[domain]]`/`[[route]]` `dane` mode.
//!
//! Owns the shape and defaults of these keys; the validating resolver lives in
//! [`crate::dns::dnssec`], the policy decisions in [`crate::delivery`], the MTA-STS fetch and
//! cache in [`crate::mtasts`]. Nothing here reads a file: the trust anchor and the extra CA
//! are read when the gateway starts.

use super::Span;
use super::keys::{Key, Keys, Kind, key};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What a usable TLSA RRset does to a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DaneMode {
    /// No DNSSEC lookups, no TLSA: delivery as configured.
    Off,
    /// Look up and check, log and count the outcome, deliver as without DANE.
    LogOnly,
    /// TLS mandatory and the peer must match a TLSA record; Bogus DNS defers (`4.7.5`).
    Enforce,
}

impl DaneMode {
    pub const WORDS: &'static [&'static str] = &["off", "log-only", "enforce"];
}

impl fmt::Display for DaneMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DaneMode::Off => "off",
            DaneMode::LogOnly => "log-only",
            DaneMode::Enforce => "enforce",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dane {
    /// The mode for destinations whose `[[domain]]`/`[[route]]` does not set `dane`.
    pub mode: DaneMode,
    /// DNSKEY records (zone-file lines) trusted as anchors; absent: the IANA root keys.
    pub trust_anchor: Option<PathBuf>,
    /// Validating resolvers' upstreams as `ip:port`; empty: `[dns] nameservers`.
    pub nameservers: Vec<SocketAddr>,
}

impl Default for Dane {
    fn default() -> Self {
        Dane {
            mode: DaneMode::LogOnly,
            trust_anchor: None,
            nameservers: Vec::new(),
        }
    }
}

impl Keys for Dane {
    const KEYS: &'static [Key] = &[
        key(
            "mode",
            Kind::Enum(DaneMode::WORDS),
            "DANE for MX delivery: off, log-only (default) or enforce",
        ),
        key(
            "trust_anchor",
            Kind::Str("PATH"),
            "DNSKEY records trusted for DNSSEC (default: the root's keys)",
        ),
        key(
            "nameservers",
            Kind::List("IP:PORT"),
            "upstreams of the validating resolver (default: dns.nameservers)",
        ),
    ];
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MtaSts {
    /// Look up, fetch, cache and apply the recipient domain's MTA-STS policy.
    pub enabled: bool,
    /// PEM certificates trusted besides the WebPKI roots, for the policy fetch and for the
    /// MX hosts' certificates under an `enforce` policy.
    pub ca: Option<PathBuf>,
    /// The whole policy fetch: connect, TLS, request and body.
    pub fetch_timeout: Span,
    /// The policy host's HTTPS port: 443 (RFC 8461 §3.3); another port is for labs and tests.
    pub port: u16,
    /// Our own policy, served at `/.well-known/mta-sts.txt` on the admin listener.
    pub publish: Option<Publish>,
}

/// The MTA-STS policy we publish for the domains we serve (RFC 8461 §3.2).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    pub mode: PublishMode,
    /// Our MX host names or `*.example.com` patterns, as our MX records name them.
    #[serde(default)]
    pub mx: Vec<String>,
    #[serde(default = "week")]
    pub max_age: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    Enforce,
    Testing,
    None,
}

fn week() -> Span {
    Span(Duration::from_secs(7 * 86_400))
}

impl Publish {
    /// The policy file as served: `key: value` lines ending in CRLF.
    pub fn text(&self) -> String {
        let mode = match self.mode {
            PublishMode::Enforce => "enforce",
            PublishMode::Testing => "testing",
            PublishMode::None => "none",
        };
        let mut out = format!("version: STSv1\r\nmode: {mode}\r\n");
        for mx in &self.mx {
            out.push_str(&format!("mx: {mx}\r\n"));
        }
        out.push_str(&format!("max_age: {}\r\n", self.max_age.0.as_secs()));
        out
    }
}

impl Keys for Publish {
    const KEYS: &'static [Key] = &[
        key(
            "mode",
            Kind::Enum(&["enforce", "testing", "none"]),
            "the published policy's mode",
        ),
        key("mx", Kind::List("HOST|*.DOMAIN"), "our MX host names"),
        key(
            "max_age",
            Kind::Span,
            "how long senders cache it (default 7d)",
        ),
    ];
}

/// Every problem of `[mta_sts.publish]` as (key, value, problem).
pub fn problems(sts: &MtaSts) -> Vec<(String, String, String)> {
    let Some(p) = &sts.publish else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if p.mx.is_empty() && p.mode != PublishMode::None {
        out.push((
            "mta_sts.publish.mx".into(),
            "[]".into(),
            "a policy other than none needs at least one MX host".into(),
        ));
    }
    for mx in &p.mx {
        let name = mx.strip_prefix("*.").unwrap_or(mx);
        if !super::valid_hostname(name) {
            out.push((
                "mta_sts.publish.mx".into(),
                mx.clone(),
                "not a host name or *.domain pattern".into(),
            ));
        }
    }
    // RFC 8461 §3.2: at most 31557600 seconds.
    if p.max_age.0.as_secs() > 31_557_600 {
        out.push((
            "mta_sts.publish.max_age".into(),
            format!("{}s", p.max_age.0.as_secs()),
            "at most one year (31557600 s)".into(),
        ));
    }
    out
}

impl Default for MtaSts {
    fn default() -> Self {
        MtaSts {
            enabled: true,
            ca: None,
            fetch_timeout: Span(Duration::from_secs(30)),
            port: 443,
            publish: None,
        }
    }
}

impl Keys for MtaSts {
    const KEYS: &'static [Key] = &[
        key(
            "enabled",
            Kind::Bool,
            "apply recipient domains' MTA-STS policies (default true)",
        ),
        key(
            "ca",
            Kind::Str("PATH"),
            "PEM certificates trusted besides the WebPKI roots",
        ),
        key("fetch_timeout", Kind::Span, "the whole policy fetch"),
        key(
            "port",
            Kind::Int,
            "policy host's HTTPS port (443; for labs and tests)",
        ),
        key(
            "publish",
            Kind::Table(Publish::KEYS),
            "our own policy, served on the admin listener",
        ),
    ];
}
