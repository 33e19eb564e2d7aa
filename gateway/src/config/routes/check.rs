//! Route checks that need no file: names, domains, hops, fallbacks, rewrites, timers.

use crate::config::nexthop::valid_hostname;
use crate::config::{Config, ConfigError, NextHop};
use std::collections::{HashMap, HashSet};

/// Every route-related finding: names, domains, hops, fallbacks, rewrites, timers.
pub fn check(config: &mut Config) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let mut add = |key: String, value: &dyn std::fmt::Display, problem: &str| {
        out.push(ConfigError {
            key,
            value: value.to_string(),
            problem: problem.into(),
        })
    };
    // `[[domain]]` entries are routes of their own, named by their domain.
    let mut names: HashSet<String> = config.domains.iter().map(|d| d.name.clone()).collect();
    let mut patterns: HashSet<String> = names.clone();
    for (i, r) in config.routes.iter_mut().enumerate() {
        let key = |k: &str| format!("route[{i}].{k}");
        if r.name.trim().is_empty() || r.name.contains(char::is_whitespace) {
            add(key("name"), &r.name, "must be a non-empty word");
        } else if !names.insert(r.name.clone()) {
            add(
                key("name"),
                &r.name,
                "route name (or [[domain]] name) used twice",
            );
        }
        for (j, d) in r.domains.iter_mut().enumerate() {
            *d = d.trim_end_matches('.').to_ascii_lowercase();
            let bare = d.strip_prefix("*.").unwrap_or(d);
            if !valid_hostname(bare) {
                add(
                    format!("route[{i}].domains[{j}]"),
                    d,
                    "not a domain or *.domain",
                );
            } else if !patterns.insert(d.clone()) {
                add(
                    format!("route[{i}].domains[{j}]"),
                    d,
                    "domain served by two routes",
                );
            }
        }
        if r.next_hops.is_empty() {
            add(key("next_hops"), &"[]", "needs at least one next hop");
        }
        r.hops = Vec::new();
        for (j, text) in r.next_hops.iter().enumerate() {
            match NextHop::parse(text) {
                Ok(hop) => r.hops.push(hop),
                Err(problem) => add(
                    format!("route[{i}].next_hops[{j}]"),
                    &format!("{text:?}"),
                    &problem,
                ),
            }
        }
        let rewrite = std::mem::take(&mut r.rewrite);
        for (from, to) in rewrite {
            let (from, to) = (normal(&from), normal(&to));
            if !valid_hostname(&from) || !valid_hostname(&to) {
                add(
                    key("rewrite"),
                    &format!("{from} = {to}"),
                    "both sides must be domains",
                );
            }
            r.rewrite.insert(from, to);
        }
    }
    check_fallbacks(config, &mut add);
    let masquerade = std::mem::take(&mut config.routing.masquerade);
    for (from, to) in masquerade {
        let (from, to) = (normal(&from), normal(&to));
        if !valid_hostname(from.strip_prefix("*.").unwrap_or(&from)) || !valid_hostname(&to) {
            add(
                "routing.masquerade".into(),
                &format!("{from} = {to}"),
                "must map a domain or *.domain to a domain",
            );
        }
        config.routing.masquerade.insert(from, to);
    }
    let c = &config.routing.callout;
    for (k, span) in [
        ("timeout", c.timeout),
        ("positive_ttl", c.positive_ttl),
        ("negative_ttl", c.negative_ttl),
    ] {
        if span.0.as_millis() < 100 {
            add(
                format!("routing.callout.{k}"),
                &span,
                "must be at least 100ms",
            );
        }
    }
    if config.routing.reload_interval.0.as_millis() < 100 {
        add(
            "routing.reload_interval".into(),
            &config.routing.reload_interval,
            "must be at least 100ms",
        );
    }
    out
}

/// A fallback names another route, and following fallbacks never comes back round (a loop
/// would bounce mail between two backends forever).
fn check_fallbacks(config: &Config, add: &mut impl FnMut(String, &dyn std::fmt::Display, &str)) {
    let next: HashMap<&str, Option<&str>> = config
        .routes
        .iter()
        .map(|r| (r.name.as_str(), r.fallback.as_deref()))
        .chain(config.domains.iter().map(|d| (d.name.as_str(), None)))
        .collect();
    for (i, r) in config.routes.iter().enumerate() {
        let Some(first) = r.fallback.as_deref() else {
            continue;
        };
        let key = format!("route[{i}].fallback");
        if !next.contains_key(first) {
            add(key, &first, "no route has this name");
            continue;
        }
        let mut seen = HashSet::from([r.name.as_str()]);
        let mut at = Some(first);
        while let Some(name) = at {
            if !seen.insert(name) {
                add(key.clone(), &first, "fallbacks form a loop");
                break;
            }
            at = next.get(name).copied().flatten();
        }
    }
}

fn normal(domain: &str) -> String {
    domain
        .trim()
        .trim_start_matches('@')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}
