//! `[auth]`: inbound email authentication (SPF, DKIM, DMARC, ARC) and outbound DKIM
//! signing, as typed settings with their defaults and semantic checks.
//!
//! Owns the shape of the section only; the checks themselves live in
//! [`crate::policy::auth`] and signing in [`crate::dkim`].

use super::cidr::Cidr;
use super::keys::{Key, Keys, Kind, key};
pub use super::nexthop::valid_hostname;
use super::{Bytes, ConfigError, Span};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Check SPF, DKIM, DMARC and ARC on mail from clients without relay permission. On by
    /// default: it needs a recursive resolver (`[dns]` or `/etc/resolv.conf`).
    pub verify: bool,
    /// The authserv-id of our Authentication-Results headers; empty means `hostname`.
    pub authserv_id: String,
    pub mode: Mode,
    /// What a DMARC `quarantine` verdict does in enforce mode.
    pub quarantine: Quarantine,
    /// What a temporary DNS error that leaves the DMARC verdict open does in enforce mode.
    pub dns_errors: DnsErrors,
    /// Time allowed for all DNS work of one message's checks.
    pub timeout: Span,
    /// Clients whose mail is not checked (and whose Authentication-Results are kept):
    /// `10.0.0.0/8`, `2001:db8::/32` or one address.
    pub trusted_relays: Vec<String>,
    #[serde(skip)]
    pub trusted_nets: Vec<Cidr>,
    /// Header fields covered by our DKIM signatures, when present in the message.
    pub sign_headers: Vec<String>,
    /// Signing keys (`[[auth.dkim]]`), several per domain allowed (e.g. RSA and Ed25519).
    pub dkim: Vec<DkimKey>,
    /// Send daily TLS-RPT reports (RFC 8460) on our outbound sessions; needs `report_from`.
    pub tls_reports: bool,
    /// Send DMARC aggregate reports (RFC 7489 §7.2) on mail we verified; needs
    /// `report_from`.
    pub dmarc_reports: bool,
    /// The organisation named in reports; empty means `hostname`.
    pub report_org_name: String,
    /// The address reports come from (their From: and MAIL FROM).
    pub report_from: String,
    /// Extra contact information in reports (a URL or an address), optional.
    pub report_contact: String,
    /// Reports queued by one run at most; the rest wait for the next run.
    pub report_max_per_run: u32,
    /// Bytes of reports queued by one run at most.
    pub report_max_bytes: Bytes,
}

impl Keys for Auth {
    const KEYS: &'static [Key] = &[
        key(
            "verify",
            Kind::Bool,
            "check inbound mail (needs a recursive resolver)",
        ),
        key(
            "authserv_id",
            Kind::Str("NAME"),
            "authserv-id of Authentication-Results (default hostname)",
        ),
        key(
            "mode",
            Kind::Enum(&["enforce", "monitor"]),
            "act on DMARC verdicts, or only record them",
        ),
        key(
            "quarantine",
            Kind::Enum(&["mark", "hold"]),
            "what DMARC quarantine does in enforce mode",
        ),
        key(
            "dns_errors",
            Kind::Enum(&["defer", "accept"]),
            "a DNS error that leaves DMARC open",
        ),
        key("timeout", Kind::Span, "DNS time for one message's checks"),
        key(
            "trusted_relays",
            Kind::List("CIDR"),
            "clients whose mail is not checked",
        ),
        key(
            "sign_headers",
            Kind::List("HEADER"),
            "header fields our DKIM signatures cover",
        ),
        key(
            "dkim",
            Kind::Entries {
                id: "selector",
                placeholder: "SELECTOR",
                keys: DkimKey::KEYS,
            },
            "a DKIM signing key, by its selector",
        ),
        key(
            "tls_reports",
            Kind::Bool,
            "send TLS-RPT reports (RFC 8460) on outbound TLS",
        ),
        key(
            "dmarc_reports",
            Kind::Bool,
            "send DMARC aggregate reports on verified mail",
        ),
        key(
            "report_org_name",
            Kind::Str("NAME"),
            "organisation named in reports (default hostname)",
        ),
        key(
            "report_from",
            Kind::Str("ADDRESS"),
            "sender address of reports (needed to send them)",
        ),
        key(
            "report_contact",
            Kind::Str("TEXT"),
            "extra contact information in reports",
        ),
        key(
            "report_max_per_run",
            Kind::Int,
            "reports queued per run at most",
        ),
        key(
            "report_max_bytes",
            Kind::Size,
            "bytes of reports queued per run at most",
        ),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// DMARC `reject` is refused with `550 5.7.1`, `quarantine` marked (and held).
    Enforce,
    /// Verdicts are only recorded in Authentication-Results; nothing is refused or held.
    Monitor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quarantine {
    /// Add the `X-Edgemx-Quarantine` header and relay.
    Mark,
    /// Mark, and hold the message in the queue until an operator releases it.
    Hold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsErrors {
    /// `451 4.7.0`: the sender retries and we check again.
    Defer,
    /// Accept and record `temperror` in Authentication-Results.
    Accept,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKey {
    /// The `d=` domain; mail whose From: is this domain or a subdomain of it is signed.
    pub domain: String,
    pub selector: String,
    /// PEM private key (PKCS#8 RSA or Ed25519, or PKCS#1 RSA); default
    /// `data_dir/dkim/DOMAIN.SELECTOR.key`.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

impl Keys for DkimKey {
    const KEYS: &'static [Key] = &[
        key(
            "domain",
            Kind::Str("DOMAIN"),
            "the d= domain: mail from it and its subdomains is signed",
        ),
        key("selector", Kind::Str("SELECTOR"), "the s= selector"),
        key(
            "key",
            Kind::Str("PATH"),
            "PEM private key (default data_dir/dkim/DOMAIN.SELECTOR.key)",
        ),
    ];
}

impl DkimKey {
    /// Where the private key is read from.
    pub fn path(&self, data_dir: &Path) -> PathBuf {
        self.key
            .clone()
            .unwrap_or_else(|| default_key_path(data_dir, &self.domain, &self.selector))
    }
}

/// `data_dir/dkim/DOMAIN.SELECTOR.key`: where `edgemx dkim keygen` writes and signing reads.
pub fn default_key_path(data_dir: &Path, domain: &str, selector: &str) -> PathBuf {
    data_dir
        .join("dkim")
        .join(format!("{domain}.{selector}.key"))
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            verify: true,
            authserv_id: String::new(),
            mode: Mode::Enforce,
            quarantine: Quarantine::Mark,
            dns_errors: DnsErrors::Defer,
            timeout: Span(Duration::from_secs(10)),
            trusted_relays: Vec::new(),
            trusted_nets: Vec::new(),
            sign_headers: DEFAULT_SIGNED_HEADERS
                .iter()
                .map(|h| h.to_string())
                .collect(),
            dkim: Vec::new(),
            tls_reports: false,
            dmarc_reports: false,
            report_org_name: String::new(),
            report_from: String::new(),
            report_contact: String::new(),
            report_max_per_run: 100,
            report_max_bytes: Bytes(10 << 20),
        }
    }
}

/// RFC 6376 §5.4.1's recommended set, plus the list headers that mailers act on.
const DEFAULT_SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "In-Reply-To",
    "References",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// Normalises `[auth]` (lower-case names, authserv-id defaulting to `hostname`) and returns
/// every problem found.
pub fn check(auth: &mut Auth, hostname: &str) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let mut add = |key: String, value: &dyn fmt::Display, problem: &str| {
        out.push(ConfigError {
            key,
            value: value.to_string(),
            problem: problem.to_string(),
        })
    };
    auth.authserv_id = auth.authserv_id.trim().to_ascii_lowercase();
    if auth.authserv_id.is_empty() {
        auth.authserv_id = hostname.to_string();
    } else if !valid_hostname(&auth.authserv_id) {
        add(
            "auth.authserv_id".into(),
            &auth.authserv_id,
            "not a valid host name",
        );
    }
    auth.trusted_nets.clear();
    for (i, text) in auth.trusted_relays.iter().enumerate() {
        match text.parse::<Cidr>() {
            Ok(net) => auth.trusted_nets.push(net),
            Err(e) => add(format!("auth.trusted_relays[{i}]"), text, &e.to_string()),
        }
    }
    if auth.timeout.0 < Duration::from_millis(100) {
        add(
            "auth.timeout".into(),
            &auth.timeout,
            "must be at least 100ms",
        );
    }
    if !auth
        .sign_headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("from"))
    {
        add(
            "auth.sign_headers".into(),
            &auth.sign_headers.join(","),
            "must include From (RFC 6376 §5.4)",
        );
    }
    for (i, h) in auth.sign_headers.iter().enumerate() {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            add(format!("auth.sign_headers[{i}]"), h, "not a header name");
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, key) in auth.dkim.iter_mut().enumerate() {
        key.domain = key.domain.trim_end_matches('.').to_ascii_lowercase();
        key.selector = key.selector.to_ascii_lowercase();
        if !valid_hostname(&key.domain) {
            add(
                format!("auth.dkim[{i}].domain"),
                &key.domain,
                "not a valid domain name",
            );
        }
        // A selector is one or more DNS labels (RFC 6376 §3.1).
        if !valid_hostname(&key.selector) {
            add(
                format!("auth.dkim[{i}].selector"),
                &key.selector,
                "not a valid selector (DNS labels)",
            );
        }
        if !seen.insert((key.domain.clone(), key.selector.clone())) {
            add(
                format!("auth.dkim[{i}]"),
                &format!("{}/{}", key.domain, key.selector),
                "domain and selector listed twice",
            );
        }
    }
    out.extend(super::reports::check(auth, hostname));
    out
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "hostname = \"mx1.example.net\"\ndata_dir = \"/tmp/x\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n";

    #[test]
    fn verification_is_on_by_default_with_our_hostname_as_authserv_id() {
        let config = Config::parse(BASE).unwrap();
        assert!(config.auth.verify);
        let off = Config::parse(&format!("{BASE}[auth]\nverify = false\n")).unwrap();
        assert!(!off.auth.verify);
        assert_eq!(config.auth.authserv_id, "mx1.example.net");
        assert_eq!(config.auth.timeout.0, std::time::Duration::from_secs(10));
    }

    #[test]
    fn every_auth_error_names_its_key() {
        let text = format!(
            "{BASE}[auth]\nverify = true\nauthserv_id = \"not valid\"\ntimeout = \"10ms\"\ntrusted_relays = [\"10.1.2.3/8\", \"::1\"]\nsign_headers = [\"Subject\"]\n[[auth.dkim]]\ndomain = \"Example.COM\"\nselector = \"bad_sel\"\n[[auth.dkim]]\ndomain = \"example.com\"\nselector = \"BAD_SEL\"\n"
        );
        let shown: Vec<String> = Config::parse(&text)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        let has = |needle: &str| shown.iter().any(|s| s.contains(needle));
        assert!(has("auth.authserv_id = not valid"), "{shown:?}");
        assert!(has("auth.timeout = 10ms"), "{shown:?}");
        assert!(has("auth.trusted_relays[0] = 10.1.2.3/8"), "{shown:?}");
        assert!(!has("auth.trusted_relays[1]"), "{shown:?}");
        assert!(
            has("auth.sign_headers = Subject: must include From"),
            "{shown:?}"
        );
        assert!(has("auth.dkim[0].selector = bad_sel"), "{shown:?}");
        assert!(
            has("auth.dkim[1] = example.com/bad_sel: domain and selector listed twice"),
            "{shown:?}"
        );
        let errors = Config::parse(&format!("{BASE}[auth]\nmode = \"loose\"\n")).unwrap_err();
        assert!(errors[0].to_string().contains("loose"), "{errors:?}");
    }
}
