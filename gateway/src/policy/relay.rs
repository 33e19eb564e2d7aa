//! The relay decision: which clients may send to domains we do not serve.
//!
//! A session holds at most one [`RelayGrant`], the one fact the rest of the system keys
//! outbound behaviour on (DKIM signing, sender masquerading): the client's address is in an
//! allowlisted network, it authenticated with SMTP AUTH, or it presented a client
//! certificate from the trusted CA carrying a configured name. Anyone else may send only to
//! served domains (`550 5.7.1` otherwise). No I/O here except through [`Users`].

use super::users::Users;
use super::{Denial, deny};
use crate::config::Cidr;
use crate::config::Config;
use crate::tls::ClientTrust;
use rustls::pki_types::CertificateDer;
use std::fmt;
use std::net::IpAddr;

/// Why this session may relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayGrant {
    /// The client's address lies in this `relay.networks` entry.
    Network(Cidr),
    /// SMTP AUTH succeeded for this user.
    User(String),
    /// A client certificate from `relay.client_ca` carried this `relay.client_names` entry.
    Certificate(String),
}

/// Everything the relay decision needs, built once from the configuration.
pub struct Access {
    networks: Vec<Cidr>,
    pub users: Users,
    trust: Option<ClientTrust>,
}

impl Access {
    pub fn new(config: &Config) -> Access {
        let relay = &config.relay;
        let trust = relay.client_ca.as_ref().and_then(|ca| {
            crate::tls::read_certificates(ca)
                .map_err(|e| e.to_string())
                .and_then(|roots| {
                    ClientTrust::new(&roots, &relay.client_names).map_err(|e| e.to_string())
                })
                .inspect_err(|e| {
                    log::error!("relay.client_ca: {e}; client certificates grant no relay")
                })
                .ok()
        });
        Access {
            networks: relay.nets.clone(),
            users: Users::new(relay.users_path(&config.data_dir)),
            trust,
        }
    }

    /// The grant a client address earns by itself.
    pub fn network(&self, ip: IpAddr) -> Option<RelayGrant> {
        // `Cidr::contains` takes a v4 client on a dual-stack socket (::ffff:a.b.c.d) as v4.
        self.networks
            .iter()
            .find(|net| net.contains(ip))
            .map(|net| RelayGrant::Network(*net))
    }

    /// The grant a client certificate chain (leaf first) earns, or why it earns none.
    pub fn certificate(&self, chain: &[CertificateDer<'_>]) -> Result<RelayGrant, String> {
        let Some(trust) = &self.trust else {
            return Err("relay.client_ca is not configured".into());
        };
        trust.check(chain).map(RelayGrant::Certificate)
    }
}

/// A recipient in a domain we do not serve is relayed only for a client holding a grant.
pub fn outside(grant: Option<&RelayGrant>) -> Result<(), Denial> {
    match grant {
        Some(_) => Ok(()),
        None => Err(deny("domain not served here and client may not relay")),
    }
}

impl fmt::Display for RelayGrant {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            RelayGrant::Network(net) => write!(f, "network {net}"),
            RelayGrant::User(name) => write!(f, "user {name}"),
            RelayGrant::Certificate(name) => write!(f, "certificate {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(networks: &str) -> Access {
        let text = format!(
            "hostname = \"mx.test\"\ndata_dir = \"/tmp/x\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n[relay]\nnetworks = {networks}\n"
        );
        Access::new(&Config::parse(&text).unwrap())
    }

    #[test]
    fn allowlisted_networks_grant_relay_for_v4_v6_and_mapped_addresses() {
        let a = access(r#"["10.0.0.0/8", "2001:db8::/32", "127.0.0.1"]"#);
        let grant = |ip: &str| a.network(ip.parse().unwrap()).map(|g| g.to_string());
        assert_eq!(grant("10.9.8.7").as_deref(), Some("network 10.0.0.0/8"));
        assert_eq!(
            grant("::ffff:10.1.1.1").as_deref(),
            Some("network 10.0.0.0/8")
        );
        assert_eq!(
            grant("2001:db8:1::5").as_deref(),
            Some("network 2001:db8::/32")
        );
        assert_eq!(grant("127.0.0.1").as_deref(), Some("network 127.0.0.1/32"));
        assert_eq!(grant("127.0.0.2"), None);
        assert_eq!(grant("11.0.0.1"), None);
        assert_eq!(grant("2001:db9::1"), None);
    }

    #[test]
    fn outside_domains_need_a_grant() {
        let refused = outside(None).unwrap_err();
        assert_eq!(refused.reply.to_string(), "550 5.7.1 Relay access denied");
        let grant = RelayGrant::User("app".into());
        assert!(outside(Some(&grant)).is_ok());
        assert!(access("[]").certificate(&[]).is_err());
    }
}
