//! Recipient → destination for delivery: the route stored with the recipient (else its
//! domain's), memoized so the hot path allocates nothing, and the move of a recipient to
//! its route's fallback when the backend does not know it.

use super::rewrite;
use super::table::{Route, RouteId, Table};
use crate::config::{Config, DaneMode, NextHop, TlsPolicy};
use crate::envelope::Recipient;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// Set only when a hop is `mx`: the domain whose MX records are looked up.
    pub domain: Option<String>,
    pub hops: Vec<NextHop>,
    pub tls: TlsPolicy,
    /// DANE for the `mx` hop (RFC 7672); other hops are as configured.
    pub dane: DaneMode,
}

impl Destination {
    /// `route`'s hops and policy; without a route (DSNs to outside senders, relayed mail)
    /// `delivery.default_next_hops` and `delivery.tls`.
    pub fn new(config: &Config, route: Option<&Route>, domain: &str) -> Destination {
        let (hops, tls, dane) = match route {
            Some(r) => (r.hops.clone(), r.tls.clone(), r.dane),
            None => (
                config.delivery.default_hops.clone(),
                config.delivery.tls.clone(),
                config.dane.mode,
            ),
        };
        let domain = hops
            .iter()
            .any(|h| matches!(h, NextHop::Mx))
            .then(|| domain.to_owned());
        Destination {
            domain,
            hops,
            tls,
            dane,
        }
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

/// Memoized routing for delivery, so the hot path allocates nothing per recipient.
pub struct Routes {
    config: Arc<Config>,
    table: Table,
    /// Destinations of routes without `mx` hops, by route id (`u16::MAX`: no route).
    fixed: HashMap<RouteId, Arc<Destination>>,
    /// Destinations that depend on the domain (`mx`), by route id and domain.
    by_domain: HashMap<RouteId, HashMap<String, Arc<Destination>>>,
    shared: HashMap<Destination, Arc<Destination>>,
}

/// Bounds the memo when DSNs go to many outside domains.
const MAX_CACHED: usize = 10_000;
const NO_ROUTE: RouteId = RouteId::MAX;

impl Routes {
    pub fn new(config: Arc<Config>) -> Routes {
        Routes {
            table: Table::new(&config),
            config,
            fixed: HashMap::new(),
            by_domain: HashMap::new(),
            shared: HashMap::new(),
        }
    }

    /// The route of `rcpt`: the one stored with it, else by its domain. A stored route that
    /// no longer exists (configuration changed across a restart) routes by domain.
    pub fn route_of(&self, rcpt: &Recipient) -> Option<RouteId> {
        self.route_for(&rcpt.domain, rcpt.route.as_deref())
    }

    fn route_for(&self, domain: &str, route: Option<&str>) -> Option<RouteId> {
        let stored = route.and_then(|name| self.table.id(name));
        stored.or_else(|| self.table.by_domain(domain))
    }

    pub fn get(&mut self, rcpt: &Recipient) -> Arc<Destination> {
        self.get_for(&rcpt.domain, rcpt.route.as_deref())
    }

    /// The destination of a recipient in `domain` with the stored route name `route`.
    pub fn get_for(&mut self, domain: &str, route: Option<&str>) -> Arc<Destination> {
        let id = self.route_for(domain, route);
        let key = id.unwrap_or(NO_ROUTE);
        if let Some(dest) = self.fixed.get(&key) {
            return dest.clone();
        }
        if let Some(dest) = self.by_domain.get(&key).and_then(|m| m.get(domain)) {
            return dest.clone();
        }
        if self.by_domain.values().map(HashMap::len).sum::<usize>() >= MAX_CACHED {
            self.by_domain.clear();
            self.fixed.clear();
            self.shared.clear();
        }
        let route = id.map(|id| self.table.route(id));
        let dest = Destination::new(&self.config, route, domain);
        let per_domain = dest.domain.is_some();
        let dest = self
            .shared
            .entry(dest.clone())
            .or_insert_with(|| Arc::new(dest))
            .clone();
        if per_domain {
            let memo = self.by_domain.entry(key).or_default();
            memo.insert(domain.to_string(), dest.clone());
        } else {
            self.fixed.insert(key, dest.clone());
        }
        dest
    }

    /// `rcpt` moved to its route's fallback (name set, address rewritten as the fallback
    /// route says), or `None` when its route has no fallback.
    pub fn fallback(&self, rcpt: &Recipient) -> Option<Recipient> {
        let to = self.table.route(self.route_of(rcpt)?).fallback?;
        let route = self.table.route(to);
        let mut moved = match rewrite::recipient(route, &rcpt.address) {
            Some(address) => Recipient::pending(address),
            None => Recipient::pending(rcpt.address.clone()),
        };
        moved.route = Some(route.name.to_string());
        Some(moved)
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
            [[route]]
            name = "cloud"
            domains = ["example.com"]
            next_hops = ["10.9.0.1:25"]
            fallback = "onprem"
            [[route]]
            name = "onprem"
            domains = ["local.example.com"]
            next_hops = ["10.9.0.2:25"]
            rewrite = { "example.com" = "local.example.com" }
        "#;
        Arc::new(Config::parse(text).unwrap())
    }

    fn to(address: &str, route: Option<&str>) -> Recipient {
        Recipient {
            route: route.map(str::to_owned),
            ..Recipient::pending(address)
        }
    }

    #[test]
    fn domains_with_the_same_hops_share_a_destination() {
        let mut routes = Routes::new(config());
        let a = routes.get(&to("x@a.test", None));
        assert!(Arc::ptr_eq(&a, &routes.get(&to("y@b.test", None))));
        assert_eq!(a.domain, None);
        assert_eq!(a.tls, TlsPolicy::OPPORTUNISTIC);
        assert_eq!(a.to_string(), "10.0.0.1:25,10.0.0.2:25");
    }

    #[test]
    fn mx_destinations_name_their_domain_and_others_use_the_default() {
        let mut routes = Routes::new(config());
        let c = routes.get(&to("x@c.test", None));
        assert_eq!(c.domain.as_deref(), Some("c.test"));
        assert_eq!(c.tls, TlsPolicy::REQUIRED);
        let outside = routes.get(&to("x@elsewhere.example", None));
        assert_eq!(outside.hops, [NextHop::Mx]);
        assert_eq!(outside.domain.as_deref(), Some("elsewhere.example"));
        assert_ne!(c, outside);
    }

    #[test]
    fn the_stored_route_wins_over_the_domain_and_a_vanished_one_falls_back_to_it() {
        let mut routes = Routes::new(config());
        let onprem = routes.get(&to("x@example.com", Some("onprem")));
        assert_eq!(onprem.to_string(), "10.9.0.2:25");
        let cloud = routes.get(&to("x@example.com", None));
        assert_eq!(cloud.to_string(), "10.9.0.1:25");
        let gone = routes.get(&to("x@example.com", Some("removed-since")));
        assert!(Arc::ptr_eq(&gone, &cloud));
    }

    #[test]
    fn a_recipient_moves_to_the_fallback_route_with_its_rewriting() {
        let routes = Routes::new(config());
        let moved = routes.fallback(&to("Jane@example.com", None)).unwrap();
        assert_eq!(moved.address, "Jane@local.example.com");
        assert_eq!(moved.domain, "local.example.com");
        assert_eq!(moved.route.as_deref(), Some("onprem"));
        assert!(
            routes.fallback(&moved).is_none(),
            "the last route has no fallback"
        );
        assert!(routes.fallback(&to("x@a.test", None)).is_none());
    }

    #[test]
    fn records_from_before_routes_read_as_routed_by_domain() {
        let old = r#"{"address":"a@example.com","domain":"example.com","status":"Pending"}"#;
        let rcpt: Recipient = serde_json::from_str(old).unwrap();
        assert_eq!(rcpt.route, None);
        let routed = to("a@example.com", Some("onprem"));
        let back: Recipient =
            serde_json::from_str(&serde_json::to_string(&routed).unwrap()).unwrap();
        assert_eq!(back.route.as_deref(), Some("onprem"));
    }
}
