//! Routing: recipient domain → destination, the ordered next hops and the TLS policy to
//! use. Pure functions of the configuration; no I/O.
//!
//! A destination is what a connection can be shared by. Two domains with the same explicit
//! next hops and policy share one destination (one set of connections); a destination that
//! uses `mx` also names its domain, because the MX records differ per domain.

use crate::config::{Config, NextHop, TlsPolicy};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// Set only when a hop is `mx`: the domain whose MX records are looked up.
    pub domain: Option<String>,
    pub hops: Vec<NextHop>,
    pub tls: TlsPolicy,
}

impl Destination {
    /// Configured domains (exact, lower-case name) use their own hops and policy; any other
    /// domain (DSNs to outside senders) uses `delivery.default_next_hops` and `delivery.tls`.
    pub fn for_domain(config: &Config, domain: &str) -> Destination {
        let (hops, tls) = match config.domain(domain) {
            Some(d) => (
                d.hops.clone(),
                d.tls.clone().unwrap_or_else(|| config.delivery.tls.clone()),
            ),
            None => (
                config.delivery.default_hops.clone(),
                config.delivery.tls.clone(),
            ),
        };
        let domain = hops
            .iter()
            .any(|h| matches!(h, NextHop::Mx))
            .then(|| domain.to_owned());
        Destination { domain, hops, tls }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if let Some(domain) = &self.domain {
            write!(f, "{domain} via ")?;
        }
        for (i, hop) in self.hops.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{hop}")?;
        }
        Ok(())
    }
}

/// Memoized routing, so the hot path allocates nothing per recipient.
pub struct Routes {
    config: Arc<Config>,
    cache: HashMap<String, Arc<Destination>>,
    shared: HashMap<Destination, Arc<Destination>>,
}

/// Bounds the memo when DSNs go to many outside domains.
const MAX_CACHED: usize = 10_000;

impl Routes {
    pub fn new(config: Arc<Config>) -> Routes {
        Routes {
            config,
            cache: HashMap::new(),
            shared: HashMap::new(),
        }
    }

    pub fn get(&mut self, domain: &str) -> Arc<Destination> {
        if let Some(dest) = self.cache.get(domain) {
            return dest.clone();
        }
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
            self.shared.clear();
        }
        let dest = Destination::for_domain(&self.config, domain);
        let dest = self
            .shared
            .entry(dest.clone())
            .or_insert_with(|| Arc::new(dest))
            .clone();
        self.cache.insert(domain.to_owned(), dest.clone());
        dest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Arc<Config> {
        let text = r#"
            hostname = "mx.test"
            data_dir = "/tmp/x"
            [[listener]]
            address = "127.0.0.1:2525"
            [[domain]]
            name = "a.test"
            next_hops = ["10.0.0.1:25", "10.0.0.2:25"]
            [[domain]]
            name = "b.test"
            next_hops = ["10.0.0.1:25", "10.0.0.2:25"]
            [[domain]]
            name = "c.test"
            next_hops = ["mx"]
            tls = "required"
        "#;
        Arc::new(Config::parse(text).unwrap())
    }

    #[test]
    fn domains_with_the_same_hops_share_a_destination() {
        let mut routes = Routes::new(config());
        let a = routes.get("a.test");
        assert!(Arc::ptr_eq(&a, &routes.get("b.test")));
        assert_eq!(a.domain, None);
        assert_eq!(a.tls, TlsPolicy::OPPORTUNISTIC);
        assert_eq!(a.to_string(), "10.0.0.1:25,10.0.0.2:25");
    }

    #[test]
    fn mx_destinations_name_their_domain_and_others_use_the_default() {
        let mut routes = Routes::new(config());
        let c = routes.get("c.test");
        assert_eq!(c.domain.as_deref(), Some("c.test"));
        assert_eq!(c.tls, TlsPolicy::REQUIRED);
        let outside = routes.get("elsewhere.example");
        assert_eq!(outside.hops, [NextHop::Mx]);
        assert_eq!(outside.domain.as_deref(), Some("elsewhere.example"));
        assert_ne!(c, outside);
    }
}
