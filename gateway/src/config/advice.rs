//! Warnings about a valid configuration that probably does not do what its administrator
//! wants: printed by `edgemx check-config` (which still succeeds) and logged by `serve`.
//!
//! - A served domain or route that accepts every recipient: unknown users are accepted and
//!   bounced later, to forged senders (backscatter). A `[[domain]]` cannot check recipients;
//!   a `[[route]]` does with `recipients` or `callout = true`. A route used as another
//!   route's `fallback` receives the first route's unknown users, so it counts too.
//! - `auth.verify` on with no resolver to ask: every check would be a temporary error.
//! - Reports on with no DKIM key for `auth.report_from`'s domain: RFC 8460 §5.3 has
//!   receivers ignore unsigned TLS-RPT mail, and DMARC reports fail the receiver's DMARC.

use super::Config;
use std::path::Path;

/// Every warning for `config`; `resolv_conf` is where the system resolver is configured
/// (`/etc/resolv.conf`; a parameter so tests can point elsewhere).
pub fn warnings(config: &Config, resolv_conf: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in &config.domains {
        out.push(format!(
            "domain {:?} accepts every recipient: a [[domain]] cannot check recipients, so unknown users are accepted and bounced later (backscatter); serve it with a [[route]] that has `recipients` or `callout = true`",
            d.name
        ));
    }
    for r in &config.routes {
        if r.recipients.is_some() || r.callout {
            continue;
        }
        let fallback_of: Vec<&str> = config
            .routes
            .iter()
            .filter(|o| o.fallback.as_deref() == Some(r.name.as_str()))
            .map(|o| o.name.as_str())
            .collect();
        if r.domains.is_empty() && fallback_of.is_empty() {
            // Reached only through `routing.map` entries: each is a known address.
            continue;
        }
        let serves = match r.domains.is_empty() {
            false => format!("serves {}", r.domains.join(", ")),
            true => format!("is the fallback of {}", fallback_of.join(", ")),
        };
        out.push(format!(
            "route {:?} ({serves}) accepts every recipient: unknown users are accepted and bounced later (backscatter); set route.recipients or route.callout = true",
            r.name
        ));
    }
    if config.auth.verify && config.dns.nameservers.is_empty() && !has_nameserver(resolv_conf) {
        out.push(format!(
            "auth.verify is on but neither [dns] nameservers nor {} names a resolver: every check is a temporary error and auth.dns_errors decides (default: defer all inbound mail with 451 4.7.0); name a recursive resolver or set auth.verify = false",
            resolv_conf.display()
        ));
    }
    if let Some(domain) = unsigned_reports(config) {
        out.push(format!(
            "auth.report_from is in {domain}, for which no [[auth.dkim]] key signs: receivers ignore unsigned TLS-RPT reports (RFC 8460 §5.3) and check DMARC on every report; add a key for {domain}"
        ));
    }
    out
}

/// The domain of `report_from` when reports are on and no key of ours signs for it (a key
/// of the domain or of a parent, as signing chooses).
fn unsigned_reports(config: &Config) -> Option<&str> {
    let auth = &config.auth;
    if !auth.tls_reports && !auth.dmarc_reports {
        return None;
    }
    let domain = auth.report_from.rsplit_once('@')?.1;
    let lower = domain.to_ascii_lowercase();
    let signed = auth
        .dkim
        .iter()
        .any(|k| lower == k.domain || lower.ends_with(&format!(".{}", k.domain)));
    (!signed).then_some(domain)
}

fn has_nameserver(resolv_conf: &Path) -> bool {
    std::fs::read_to_string(resolv_conf).is_ok_and(|text| {
        text.lines()
            .any(|l| l.split_whitespace().next() == Some("nameserver"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "hostname = \"mx1.example.net\"\ndata_dir = \"/tmp/x\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n[dns]\nnameservers = [\"127.0.0.1:53\"]\n";

    fn warned(text: &str) -> Vec<String> {
        let config = Config::parse(&format!("{BASE}{text}")).unwrap();
        warnings(&config, Path::new("/nonexistent/resolv.conf"))
    }

    #[test]
    fn routes_and_domains_without_recipient_checks_are_named() {
        let w = warned(
            "[[domain]]\nname = \"plain.example\"\nnext_hops = [\"10.0.0.1:25\"]\n\
             [[route]]\nname = \"cloud\"\ndomains = [\"example.com\"]\nnext_hops = [\"10.0.0.2:25\"]\ncallout = true\nfallback = \"onprem\"\n\
             [[route]]\nname = \"onprem\"\nnext_hops = [\"10.0.0.3:25\"]\n\
             [[route]]\nname = \"mapped\"\nnext_hops = [\"10.0.0.4:25\"]\n",
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("domain \"plain.example\" accepts every recipient"));
        assert!(
            w[1].starts_with("route \"onprem\" (is the fallback of cloud) accepts every recipient"),
            "{w:?}"
        );
    }

    #[test]
    fn the_documented_subdomain_example_validates_every_route() {
        let routing = include_str!("../../../docs/routing.md");
        let section = routing
            .split("## Example: subdomain segmentation")
            .nth(1)
            .unwrap();
        let toml = section.split("```toml\n").nth(1).unwrap();
        let toml = toml.split("```").next().unwrap();
        let config = Config::parse(toml).unwrap();
        let w = warnings(&config, Path::new("/nonexistent"));
        assert!(w.iter().all(|w| !w.contains("accepts every")), "{w:?}");
    }

    #[test]
    fn verify_without_any_resolver_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let text = "hostname = \"mx1.example.net\"\ndata_dir = \"/tmp/x\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n";
        let config = Config::parse(text).unwrap();
        let resolv = dir.path().join("resolv.conf");
        assert!(warnings(&config, &resolv)[0].contains("auth.verify is on"));
        std::fs::write(&resolv, "# from DHCP\nnameserver 10.0.2.3\n").unwrap();
        assert!(warnings(&config, &resolv).is_empty());
        let off = Config::parse(&format!("{text}[auth]\nverify = false\n")).unwrap();
        assert!(warnings(&off, Path::new("/nonexistent")).is_empty());
    }

    #[test]
    fn reports_without_a_key_for_their_sender_are_a_warning() {
        let on = "[auth]\ntls_reports = true\nreport_from = \"tlsrpt@Mail.Example.net\"\n";
        let w = warned(on);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("auth.report_from is in Mail.Example.net"),
            "{w:?}"
        );
        let key = "[[auth.dkim]]\ndomain = \"example.net\"\nselector = \"s1\"\n";
        assert!(
            warned(&format!("{on}{key}")).is_empty(),
            "a parent's key signs"
        );
        assert!(
            warned("[auth]\nreport_from = \"a@b.example\"\n").is_empty(),
            "reports off"
        );
    }
}
