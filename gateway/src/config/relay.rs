//! `[relay]` and listener roles: which clients may send mail to domains we do not serve.
//!
//! Owns the shape of the relay settings and the parsing of their files (CIDR networks, the
//! client-certificate CA) at validation time, so that sessions receive ready values. The
//! decision itself is [`crate::policy::relay`]; the users file is read by
//! [`crate::policy::users`] (it changes while the gateway runs).

use ipnet::IpNet;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Mail from the Internet (port 25): served domains for anyone, relay for permitted
    /// clients (allowlisted networks, trusted client certificates).
    #[default]
    Mx,
    /// Internal submission (ports 587, 26): nothing without a relay grant (`530 5.7.0`);
    /// SMTP AUTH is offered after STARTTLS.
    Submission,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    /// Client networks that may relay: `10.0.0.0/8`, `2001:db8::/32`, or one address.
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(skip)]
    pub nets: Vec<IpNet>,
    /// `name:hash` lines for SMTP AUTH; default `data_dir/users`.
    pub users_file: Option<PathBuf>,
    /// PEM CA certificates whose client certificates may relay (cloud connectors).
    pub client_ca: Option<PathBuf>,
    /// Names a client certificate must carry (subject CN or DNS SAN; `*.` matches one
    /// label). Required with `client_ca`.
    #[serde(default)]
    pub client_names: Vec<String>,
    #[serde(skip)]
    pub client_roots: Vec<CertificateDer<'static>>,
}

impl Relay {
    pub fn users_path(&self, data_dir: &Path) -> PathBuf {
        self.users_file
            .clone()
            .unwrap_or_else(|| data_dir.join("users"))
    }

    /// Parses the networks and the CA file; every problem as (key, value, problem).
    pub fn prepare(&mut self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        self.nets.clear();
        for (i, text) in self.networks.iter().enumerate() {
            match parse_cidr(text) {
                Ok(net) => self.nets.push(net),
                Err(problem) => out.push((format!("relay.networks[{i}]"), text.clone(), problem)),
            }
        }
        if let Some(path) = &self.client_ca {
            match crate::tls::read_certificates(path) {
                Ok(roots) => self.client_roots = roots,
                Err(e) => out.push((
                    "relay.client_ca".into(),
                    path.display().to_string(),
                    e.to_string(),
                )),
            }
            if self.client_names.is_empty() {
                out.push((
                    "relay.client_names".into(),
                    "[]".into(),
                    "required with relay.client_ca: name the connectors' certificates".into(),
                ));
            }
        } else if !self.client_names.is_empty() {
            out.push((
                "relay.client_ca".into(),
                String::new(),
                "required with relay.client_names".into(),
            ));
        }
        for (i, name) in self.client_names.iter_mut().enumerate() {
            *name = name.trim_end_matches('.').to_ascii_lowercase();
            let bare = name.strip_prefix("*.").unwrap_or(name);
            if !super::nexthop::valid_hostname(bare) {
                out.push((
                    format!("relay.client_names[{i}]"),
                    name.clone(),
                    "not a host name (or *.host name)".into(),
                ));
            }
        }
        out
    }
}

/// Every problem in `[relay]` and in the TLS policies, as (key, value, problem); parses
/// the networks and the client CA into `config.relay`.
pub fn problems(config: &mut super::Config) -> Vec<(String, String, String)> {
    let mut found = config.relay.prepare();
    found.extend(config.delivery.tls.problems("delivery.tls"));
    for (i, d) in config.domains.iter().enumerate() {
        if let Some(tls) = &d.tls {
            found.extend(tls.problems(&format!("domain[{i}].tls")));
        }
    }
    for (i, r) in config.routes.iter().enumerate() {
        if let Some(tls) = &r.tls {
            found.extend(tls.problems(&format!("route[{i}].tls")));
        }
    }
    found
}

/// `10.0.0.0/8`, `2001:db8::/32` or a single address. Host bits must be zero, since
/// `10.1.2.3/8` is more often a typo than a wish to allow all of 10/8.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match text.parse::<std::net::IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => return Err("not a network (`10.0.0.0/8`, `2001:db8::/32`) or address".into()),
        },
    };
    if net.trunc() != net {
        return Err(format!("host bits set; did you mean {}?", net.trunc()));
    }
    Ok(net)
}

/// The console's keys for `[relay]` (`config/keys.rs`).
impl super::Keys for Relay {
    const KEYS: &'static [super::Key] = {
        use super::{Kind, keys::key};
        &[
            key(
                "networks",
                Kind::List("CIDR"),
                "client networks allowed to relay",
            ),
            key(
                "users_file",
                Kind::Str("PATH"),
                "name:hash lines for SMTP AUTH (default data_dir/users)",
            ),
            key(
                "client_ca",
                Kind::Str("PATH"),
                "CA whose client certificates may relay",
            ),
            key(
                "client_names",
                Kind::List("NAME"),
                "names a client certificate must carry",
            ),
        ]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_v4_v6_and_single_addresses() {
        assert_eq!(parse_cidr("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("2001:db8::/32").unwrap().prefix_len(), 32);
        assert_eq!(parse_cidr("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert_eq!(parse_cidr("::1").unwrap().prefix_len(), 128);
        assert!(parse_cidr("10.1.2.3/8").unwrap_err().contains("10.0.0.0/8"));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("example.com").is_err());
    }

    const BASE: &str = "hostname = \"mx.test\"\ndata_dir = \"/tmp/x\"\n";

    #[test]
    fn roles_and_relay_settings_parse() {
        let text = format!(
            "{BASE}[[listener]]\naddress = \"0.0.0.0:25\"\n[[listener]]\naddress = \"0.0.0.0:587\"\nrole = \"submission\"\n[relay]\nnetworks = [\"10.0.0.0/8\", \"fd00::/8\"]\n"
        );
        let config = super::super::Config::parse(&text).unwrap();
        assert_eq!(config.listeners[0].role, Role::Mx);
        assert_eq!(config.listeners[1].role, Role::Submission);
        assert_eq!(config.relay.nets.len(), 2);
        assert_eq!(
            config.relay.users_path(&config.data_dir),
            PathBuf::from("/tmp/x/users")
        );
    }

    #[test]
    fn relay_errors_name_their_keys() {
        let text = format!(
            "{BASE}[[listener]]\naddress = \"0.0.0.0:25\"\n[relay]\nnetworks = [\"10.0.0.0/8\", \"300.1.1.1\"]\nclient_ca = \"/nonexistent/ca.pem\"\nclient_names = [\"bad name\"]\n"
        );
        let errors = super::super::Config::parse(&text).unwrap_err();
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let has = |needle: &str| shown.iter().any(|s| s.starts_with(needle));
        assert!(
            has("relay.networks[1] = 300.1.1.1: not a network"),
            "{shown:?}"
        );
        assert!(has("relay.client_ca = /nonexistent/ca.pem:"), "{shown:?}");
        assert!(has("relay.client_names[0] = bad name:"), "{shown:?}");
        let text = format!("{BASE}[[listener]]\naddress = \"0.0.0.0:25\"\nrole = \"relay\"\n");
        let errors = super::super::Config::parse(&text).unwrap_err();
        assert!(errors[0].to_string().contains("relay"), "{errors:?}");
        let text = format!(
            "{BASE}[[listener]]\naddress = \"0.0.0.0:25\"\n[[route]]\nname = \"cloud\"\ndomains = [\"example.com\"]\nnext_hops = [\"10.0.0.1\"]\ntls = {{ policy = \"pin\" }}\n"
        );
        let errors = super::super::Config::parse(&text).unwrap_err();
        assert!(
            errors[0].to_string().starts_with("route[0].tls.pins"),
            "{errors:?}"
        );
    }
}
