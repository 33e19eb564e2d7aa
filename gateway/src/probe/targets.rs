//! Where each probe goes: the next hops and TLS policy of the route serving its domain, of
//! the named route, or the one next hop it names, resolved through the route table when a
//! configuration is loaded (`crate::loader`), so a probe of nothing fails `check-config`.

use crate::config::{Config, ConfigError, NextHop};

/// Fills in every probe's `hops` and `tls`; every probe that cannot be resolved is a
/// finding under its key.
pub fn resolve(config: &mut Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if config.admin.probes.is_empty() {
        return errors;
    }
    let table = crate::routing::Table::new(config);
    let default_tls = config.delivery.tls.clone();
    for (i, probe) in config.admin.probes.iter_mut().enumerate() {
        let mut add = |field: &str, value: String, problem: &str| {
            errors.push(ConfigError {
                key: format!("admin.probe[{i}].{field}"),
                value,
                problem: problem.into(),
            })
        };
        let route = if let Some(domain) = &probe.domain {
            let name = domain.trim_end_matches('.').to_ascii_lowercase();
            match table.by_domain(&name) {
                Some(id) => Some(table.route(id)),
                None => {
                    add(
                        "domain",
                        domain.clone(),
                        "no [[domain]] or [[route]] serves it",
                    );
                    None
                }
            }
        } else if let Some(name) = &probe.route {
            match table.id(name) {
                Some(id) => Some(table.route(id)),
                None => {
                    add("route", name.clone(), "no [[route]] has this name");
                    None
                }
            }
        } else {
            None
        };
        if let Some(route) = route {
            (probe.hops, probe.tls) = (route.hops.clone(), Some(route.tls.clone()));
        } else if let Some(hop) = probe
            .next_hop
            .as_deref()
            .and_then(|t| NextHop::parse(t).ok())
        {
            // `config` refused `mx` and malformed hops already.
            (probe.hops, probe.tls) = (vec![hop], Some(default_tls.clone()));
        }
        if probe.hops.contains(&NextHop::Mx) && probe.domain.is_none() {
            add(
                "route",
                probe.route.clone().unwrap_or_default(),
                "the route uses `mx`: probe it with `domain` so the MX records can be looked up",
            );
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use crate::config::NextHop;
    use crate::loader::parse;

    const BASE: &str = "hostname = \"gw.test\"\ndata_dir = \"/tmp/x\"\n\
        [[listener]]\naddress = \"127.0.0.1:25\"\n\
        [[domain]]\nname = \"example.com\"\nnext_hops = [\"10.0.0.1:25\", \"mx\"]\n";

    #[test]
    fn a_domain_probe_takes_the_route_and_a_next_hop_probe_its_hop() {
        let text = format!(
            "{BASE}[admin]\naddress = \"127.0.0.1:9100\"\n\
             [[admin.probe]]\ndomain = \"Example.com\"\nrecipient = \"p@example.com\"\n\
             [[admin.probe]]\nnext_hop = \"10.0.0.9:2525\"\nrecipient = \"p@example.com\"\ninterval = \"5s\"\n"
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.admin.address.port(), 9100);
        let probes = &config.admin.probes;
        assert_eq!(probes[0].hops.len(), 2);
        assert_eq!(probes[0].hops[1], NextHop::Mx);
        assert_eq!(probes[1].hops, [NextHop::parse("10.0.0.9:2525").unwrap()]);
        assert_eq!(probes[1].interval.0.as_secs(), 5);
        assert!(parse(BASE).unwrap().admin.enabled);
    }

    #[test]
    fn a_named_route_and_a_route_domain_resolve_to_the_route_hops() {
        let text = format!(
            "{BASE}[[route]]\nname = \"onprem\"\ndomains = [\"local.example.com\"]\nnext_hops = [\"10.0.0.5:25\"]\n\
             [[admin.probe]]\nroute = \"onprem\"\nrecipient = \"p@local.example.com\"\n\
             [[admin.probe]]\ndomain = \"local.example.com\"\nrecipient = \"p@local.example.com\"\n"
        );
        let config = parse(&text).unwrap();
        let hop = NextHop::parse("10.0.0.5:25").unwrap();
        assert_eq!(config.admin.probes[0].hops, config.admin.probes[1].hops);
        assert_eq!(config.admin.probes[1].hops, [hop]);
        let bad = format!("{BASE}[[admin.probe]]\nroute = \"nosuch\"\nrecipient = \"p@x.test\"\n");
        let errors = parse(&bad).unwrap_err();
        assert!(
            errors[0]
                .to_string()
                .starts_with("admin.probe[0].route = nosuch"),
            "{errors:?}"
        );
    }

    #[test]
    fn bad_probes_are_reported_by_key() {
        // What the text alone shows is reported by `config`…
        let text = format!(
            "{BASE}[[admin.probe]]\ndomain = \"example.com\"\nrecipient = \"nobody\"\n\
             [[admin.probe]]\ndomain = \"example.com\"\nnext_hop = \"10.0.0.1\"\nrecipient = \"p@x.test\"\n\
             [[admin.probe]]\nnext_hop = \"mx\"\nrecipient = \"p@x.test\"\ninterval = \"1ms\"\n"
        );
        let errors = parse(&text).unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let has = |needle: &str| text.iter().any(|t| t.starts_with(needle));
        assert!(has("admin.probe[0].recipient = nobody"), "{text:?}");
        assert!(has("admin.probe[1].domain: give exactly one"), "{text:?}");
        assert!(has("admin.probe[2].next_hop = mx"), "{text:?}");
        assert!(has("admin.probe[2].interval"), "{text:?}");
        assert!(parse(&format!("{BASE}[admin]\nport = 1\n")).is_err());
        // …a probe of a domain nothing serves, by the route table.
        let text = format!(
            "{BASE}[[admin.probe]]\ndomain = \"other.test\"\nrecipient = \"p@other.test\"\n"
        );
        assert!(crate::config::Config::parse(&text).is_ok());
        let errors = parse(&text).unwrap_err();
        assert!(
            errors[0]
                .to_string()
                .starts_with("admin.probe[0].domain = other.test: no [[domain]] or [[route]]"),
            "{errors:?}"
        );
    }
}
