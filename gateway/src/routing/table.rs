//! The route table: every `[[route]]` and `[[domain]]` as a [`Route`], and the domain match
//! (exact name, then `*.suffix` wildcards from the longest suffix to the shortest). Built
//! once from the configuration; lookups allocate nothing.

use crate::config::{Config, DaneMode, NextHop, TlsPolicy};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// Index of a route in its [`Table`].
pub type RouteId = u16;

#[derive(Debug, Clone)]
pub struct Route {
    pub name: Arc<str>,
    pub hops: Vec<NextHop>,
    /// Carried as configured (or `delivery.tls`) to the destination; enforced by delivery.
    pub tls: TlsPolicy,
    /// DANE for the `mx` hop, as configured or `dane.mode`.
    pub dane: DaneMode,
    pub fallback: Option<RouteId>,
    /// Recipient domain → domain, applied to the envelope recipient on this route.
    pub rewrite: BTreeMap<String, String>,
    pub callout: bool,
    /// Static list of valid recipients, read by the map loader.
    pub recipients: Option<PathBuf>,
}

impl Route {
    /// Recipients on this route are checked at RCPT (static list or callout).
    pub fn validates(&self) -> bool {
        self.callout || self.recipients.is_some()
    }
}

pub struct Table {
    routes: Vec<Route>,
    by_name: HashMap<Arc<str>, RouteId>,
    domains: Suffixes<RouteId>,
    masquerade: Suffixes<String>,
    /// The first domain served by name (postmaster lives there).
    first_domain: Option<String>,
}

impl Table {
    pub fn new(config: &Config) -> Table {
        let mut table = Table {
            routes: Vec::new(),
            by_name: HashMap::new(),
            domains: Suffixes::default(),
            masquerade: Suffixes::default(),
            first_domain: None,
        };
        let tls = &config.delivery.tls;
        for d in &config.domains {
            let id = table.push(Route {
                name: Arc::from(d.name.as_str()),
                hops: d.hops.clone(),
                tls: d.tls.clone().unwrap_or_else(|| tls.clone()),
                dane: d.dane.unwrap_or(config.dane.mode),
                fallback: None,
                rewrite: BTreeMap::new(),
                callout: false,
                recipients: None,
            });
            table.domains.insert(&d.name, id);
        }
        for r in &config.routes {
            let id = table.push(Route {
                name: Arc::from(r.name.as_str()),
                hops: r.hops.clone(),
                tls: r.tls.clone().unwrap_or_else(|| tls.clone()),
                dane: r.dane.unwrap_or(config.dane.mode),
                fallback: None,
                rewrite: r.rewrite.clone(),
                callout: r.callout,
                recipients: r.recipients.clone(),
            });
            for pattern in &r.domains {
                table.domains.insert(pattern, id);
            }
        }
        // Fallbacks by id once every name is known (config validation proved they exist).
        for r in &config.routes {
            let (Some(me), Some(to)) = (table.id(&r.name), r.fallback.as_deref()) else {
                continue;
            };
            let to = table.id(to);
            table.routes[usize::from(me)].fallback = to;
        }
        for (from, to) in &config.routing.masquerade {
            table.masquerade.insert(from, to.clone());
        }
        let named = config.domains.iter().map(|d| d.name.as_str());
        let routed = config.routes.iter().flat_map(|r| r.domains.iter());
        table.first_domain = named
            .chain(routed.map(String::as_str))
            .find(|d| !d.starts_with("*."))
            .map(str::to_owned);
        table
    }

    fn push(&mut self, route: Route) -> RouteId {
        let id = self.routes.len() as RouteId;
        self.by_name.insert(route.name.clone(), id);
        self.routes.push(route);
        id
    }

    pub fn route(&self, id: RouteId) -> &Route {
        &self.routes[usize::from(id)]
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn id(&self, name: &str) -> Option<RouteId> {
        self.by_name.get(name).copied()
    }

    /// The route serving `domain` (lower case): exact name first, then the longest
    /// `*.suffix`.
    pub fn by_domain(&self, domain: &str) -> Option<RouteId> {
        self.domains.get(domain).copied()
    }

    pub fn serves(&self, domain: &str) -> bool {
        self.by_domain(domain).is_some()
    }

    pub fn first_domain(&self) -> Option<&str> {
        self.first_domain.as_deref()
    }

    /// The domain an outbound sender domain is masqueraded as, if any.
    pub fn masquerade(&self, domain: &str) -> Option<&str> {
        self.masquerade.get(domain).map(String::as_str)
    }
}

/// Exact names and `*.suffix` wildcards, matched by longest suffix.
struct Suffixes<V> {
    exact: HashMap<String, V>,
    wildcard: HashMap<String, V>,
}

impl<V> Default for Suffixes<V> {
    fn default() -> Self {
        Suffixes {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        }
    }
}

impl<V> Suffixes<V> {
    fn insert(&mut self, pattern: &str, value: V) {
        match pattern.strip_prefix("*.") {
            Some(suffix) => self.wildcard.insert(suffix.to_owned(), value),
            None => self.exact.insert(pattern.to_owned(), value),
        };
    }

    fn get(&self, domain: &str) -> Option<&V> {
        if let Some(v) = self.exact.get(domain) {
            return Some(v);
        }
        // `a.b.example.com` tries `b.example.com`, `example.com`, `com`: longest first.
        domain
            .match_indices('.')
            .find_map(|(i, _)| self.wildcard.get(&domain[i + 1..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let text = r#"
            hostname = "mx.test"
            data_dir = "/tmp/x"
            [[listener]]
            address = "127.0.0.1:2525"
            [[domain]]
            name = "plain.test"
            next_hops = ["10.0.0.9:25"]
            [[route]]
            name = "corp"
            domains = ["*.example.com"]
            next_hops = ["10.0.0.1:25"]
            [[route]]
            name = "eu"
            domains = ["*.eu.example.com", "example.com"]
            next_hops = ["10.0.0.2:25"]
            fallback = "corp"
            [[route]]
            name = "paris"
            domains = ["paris.eu.example.com"]
            next_hops = ["10.0.0.3:25"]
            [routing]
            masquerade = { "*.corp.example.com" = "example.com", "host.test" = "example.com" }
        "#;
        Table::new(&crate::config::Config::parse(text).unwrap())
    }

    fn name(t: &Table, domain: &str) -> Option<String> {
        t.by_domain(domain).map(|id| t.route(id).name.to_string())
    }

    #[test]
    fn the_longest_matching_suffix_wins() {
        let t = table();
        assert_eq!(name(&t, "paris.eu.example.com").as_deref(), Some("paris"));
        assert_eq!(name(&t, "lyon.eu.example.com").as_deref(), Some("eu"));
        assert_eq!(name(&t, "a.b.eu.example.com").as_deref(), Some("eu"));
        assert_eq!(name(&t, "us.example.com").as_deref(), Some("corp"));
        assert_eq!(name(&t, "x.paris.eu.example.com").as_deref(), Some("eu"));
    }

    #[test]
    fn a_wildcard_matches_subdomains_only_and_exact_names_only_themselves() {
        let t = table();
        assert_eq!(name(&t, "example.com").as_deref(), Some("eu"));
        assert_eq!(name(&t, "eu.example.com").as_deref(), Some("corp"));
        assert_eq!(name(&t, "plain.test").as_deref(), Some("plain.test"));
        assert_eq!(name(&t, "sub.plain.test"), None);
        assert_eq!(name(&t, "notexample.com"), None);
        assert_eq!(name(&t, "com"), None);
        assert!(!t.serves("elsewhere.test"));
    }

    #[test]
    fn domains_are_routes_and_fallbacks_resolve_to_ids() {
        let t = table();
        let eu = t.route(t.id("eu").unwrap());
        assert_eq!(eu.fallback, t.id("corp"));
        assert_eq!(t.route(t.id("plain.test").unwrap()).hops.len(), 1);
        assert_eq!(t.first_domain(), Some("plain.test"));
        assert_eq!(t.masquerade("a.corp.example.com"), Some("example.com"));
        assert_eq!(t.masquerade("host.test"), Some("example.com"));
        assert_eq!(t.masquerade("corp.example.com"), None);
    }
}
