//! `[relay]` and listener roles: which clients may send mail to domains we do not serve.
//!
//! Owns the shape of the relay settings and the parsing of their files (CIDR networks, the
//! client-certificate CA) at validation time, so that sessions receive ready values. The
//! decision itself is [`crate::policy::relay`]; the users file is read by
//! [`crate::policy::users`] (it changes while the gateway runs).

use super::cidr::Cidr;
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
    /// Client networks that may relay: `10.0.0.0/8`, `2001:db8::/32`, or one address
    /// ([`super::cidr::Rules::BLOCK`]).
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(skip)]
    pub nets: Vec<Cidr>,
    /// `name:hash` lines for SMTP AUTH; default `data_dir/users`.
    pub users_file: Option<PathBuf>,
    /// PEM CA certificates whose client certificates may relay (cloud connectors).
    pub client_ca: Option<PathBuf>,
    /// Names a client certificate must carry (subject CN or DNS SAN; `*.` matches one
    /// label). Required with `client_ca`.
    #[serde(default)]
    pub client_names: Vec<String>,
}

impl Relay {
    pub fn users_path(&self, data_dir: &Path) -> PathBuf {
        self.users_file
            .clone()
            .unwrap_or_else(|| data_dir.join("users"))
    }

    /// Parses the networks and checks the client-certificate keys; every problem as (key,
    /// value, problem).
    pub fn prepare(&mut self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        self.nets.clear();
        for (i, text) in self.networks.iter().enumerate() {
            match text.parse::<Cidr>() {
                Ok(net) => self.nets.push(net),
                Err(e) => out.push((format!("relay.networks[{i}]"), text.clone(), e.to_string())),
            }
        }
        // Whether the CA file loads is checked by `tls::files`.
        if self.client_ca.is_some() {
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
/// the networks into `config.relay`.
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
        let mut relay = Relay {
            networks: ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7", "::1"]
                .map(String::from)
                .into(),
            ..Relay::default()
        };
        assert!(relay.prepare().is_empty());
        let shown: Vec<String> = relay.nets.iter().map(Cidr::to_string).collect();
        assert_eq!(
            shown,
            ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32", "::1/128"]
        );
        relay.networks = ["10.1.2.3/8", "10.0.0.0/33", "example.com"]
            .map(String::from)
            .into();
        let found = relay.prepare();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].2.contains("10.0.0.0/8"), "{found:?}");
        assert_eq!(found[1].0, "relay.networks[1]");
        assert!(relay.nets.is_empty());
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
        // Whether the CA file loads is the loader's business (`tls::files`), not the text's.
        assert!(
            !shown.iter().any(|s| s.starts_with("relay.client_ca")),
            "{shown:?}"
        );
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
