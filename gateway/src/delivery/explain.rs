//! `show tls policy DOMAIN`: which transport policy applies to mail for a domain and why —
//! DANE, MTA-STS, the route's configured policy or opportunistic TLS — with the records seen
//! now (looked up afresh) and the state of the MTA-STS cache. Read-only: it connects to no
//! MX host and fetches no policy.

use super::secure::Security;
use crate::config::{Config, DaneMode, NextHop, TlsMode};
use crate::dns::Resolver;
use crate::dns::dnssec::{Secured, Validated};
use crate::mtasts::{self, Record};
use crate::routing::{Destination, Table};
use crate::tls::dane::Tlsa;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsPolicyView {
    pub domain: String,
    /// `DANE`, `MTA-STS`, `configured` or `opportunistic`, with the mode.
    pub applies: String,
    /// Why, in a sentence.
    pub why: String,
    pub route: Option<String>,
    pub next_hops: Vec<String>,
    /// The route's TLS policy and the DANE mode in force, with where it comes from.
    pub tls: String,
    pub dane: String,
    /// The `_mta-sts` record now, and the cached policy (`None`: nothing cached).
    pub sts_record: String,
    pub sts_cached: Option<String>,
    pub sts_policy: Vec<String>,
    pub hosts: Vec<HostView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostView {
    pub preference: u16,
    pub host: String,
    /// `secure`, `insecure` or the DNSSEC failure.
    pub dnssec: String,
    pub tlsa: Vec<String>,
    /// The policy this host gets: `DANE (enforce)`, `MTA-STS (testing)`, `refused: …`.
    pub policy: String,
}

impl Security {
    pub async fn explain(&self, config: &Config, domain: &str) -> Result<TlsPolicyView, String> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let table = Table::new(config);
        let route = table.by_domain(&domain).map(|id| table.route(id));
        let dest = Destination::new(config, route, &domain);
        let dane_from = match route {
            Some(r)
                if config
                    .domains
                    .iter()
                    .any(|d| *d.name == *r.name && d.dane.is_some()) =>
            {
                format!("[[domain]] {}", r.name)
            }
            Some(r)
                if config
                    .routes
                    .iter()
                    .any(|x| *x.name == *r.name && x.dane.is_some()) =>
            {
                format!("[[route]] {}", r.name)
            }
            _ => "dane.mode".into(),
        };
        let mut view = TlsPolicyView {
            domain: domain.clone(),
            applies: String::new(),
            why: String::new(),
            route: route.map(|r| r.name.to_string()),
            next_hops: dest.hops.iter().map(|h| h.to_string()).collect(),
            tls: dest.tls.mode.to_string(),
            dane: format!("{} (from {dane_from})", dest.dane),
            sts_record: "not looked up".into(),
            sts_cached: None,
            sts_policy: Vec::new(),
            hosts: Vec::new(),
        };
        if !dest.hops.iter().any(|h| matches!(h, NextHop::Mx)) {
            view.applies = format!("configured ({})", dest.tls.mode);
            view.why = "the next hops are configured, not the domain's MX hosts: DANE and \
                        MTA-STS apply only to the mx next hop"
                .into();
            return Ok(view);
        }
        if dest.tls.mode == TlsMode::None {
            view.applies = "configured (none)".into();
            view.why = "the route's TLS policy is none: no TLS, so no DANE or MTA-STS".into();
            return Ok(view);
        }
        let resolver = Resolver::new(&config.dns).map_err(|e| e.to_string())?;
        let sts = self.sts_view(&resolver, &domain, &mut view).await;
        let set = self
            .exchangers(&resolver, &domain, dest.dane, None)
            .await
            .map_err(|e| format!("MX lookup: {e}"))?;
        for e in &set.exchangers {
            let proven = set.secure && set.secure_hosts.contains(&e.host);
            let plan = self
                .plan(&domain, &e.host, dest.dane, proven, sts.as_deref())
                .await;
            let dnssec = match (dest.dane, proven) {
                (DaneMode::Off, _) => "not checked (DANE off)".to_owned(),
                (_, true) => "secure".to_owned(),
                (_, false) => "insecure".to_owned(),
            };
            let tlsa = self
                .tlsa_seen(&e.host, proven && dest.dane != DaneMode::Off)
                .await;
            let mode = if plan.enforce {
                "enforce"
            } else {
                "not enforced"
            };
            let policy = match (&plan.refusal, plan.kind) {
                (Some((_, reply)), _) => format!("refused: {reply}"),
                (None, "tlsa") => format!("DANE ({mode})"),
                (None, "sts") => format!("MTA-STS ({mode})"),
                (None, _) => format!("{} (route policy)", dest.tls.mode),
            };
            view.hosts.push(HostView {
                preference: e.preference,
                host: e.host.clone(),
                dnssec,
                tlsa,
                policy,
            });
        }
        let first = |prefix: &str| view.hosts.iter().any(|h| h.policy.starts_with(prefix));
        (view.applies, view.why) = if first("DANE") {
            (
                format!("DANE ({})", dest.dane),
                "an MX host has usable TLSA records proven by DNSSEC; DANE takes precedence \
                 over MTA-STS"
                    .into(),
            )
        } else if let Some(policy) = &sts {
            (
                format!("MTA-STS ({})", mode_word(policy.mode)),
                "the domain publishes an MTA-STS policy and no MX host has usable DANE records"
                    .into(),
            )
        } else if dest.tls.mode == TlsMode::Opportunistic {
            (
                "opportunistic".into(),
                "no DANE records and no MTA-STS policy: STARTTLS when offered, any certificate"
                    .into(),
            )
        } else {
            (
                format!("configured ({})", dest.tls.mode),
                "no DANE records and no MTA-STS policy: the route's TLS policy".into(),
            )
        };
        Ok(view)
    }

    async fn sts_view(
        &self,
        resolver: &Resolver,
        domain: &str,
        view: &mut TlsPolicyView,
    ) -> Option<std::sync::Arc<mtasts::Policy>> {
        let Some(sts) = self.sts() else {
            view.sts_record = "not looked up (mta_sts.enabled = false)".into();
            return None;
        };
        view.sts_record = match mtasts::record(resolver, domain).await {
            Record::Id(id) => format!("v=STSv1; id={id}"),
            Record::Absent => "none".into(),
            Record::Failed(why) => format!("lookup failed: {why}"),
        };
        if let Some(cached) = sts.cached(domain) {
            let now = crate::time::unix_now();
            let state = match cached.fresh(now) {
                true => format!("fresh, {} s left", cached.expires() - now),
                false => "expired".into(),
            };
            view.sts_cached = Some(format!(
                "id {}, fetched {} s ago, max_age {} s, {state}",
                cached.policy.id,
                now.saturating_sub(cached.fetched),
                cached.policy.max_age
            ));
            view.sts_policy = cached.policy.lines.clone();
        }
        // What delivery would use now: the cache, or a fetch when the id changed.
        self.sts_policy(resolver, domain).await
    }

    async fn tlsa_seen(&self, host: &str, proven: bool) -> Vec<String> {
        let Some(validating) = self.validating() else {
            return vec!["(no validating resolver)".into()];
        };
        match validating.tlsa(host, self.mx_port).await {
            Ok(Secured { value, secure }) => value
                .iter()
                .map(|t: &Tlsa| {
                    let usable = if t.usable() { "" } else { " (unusable)" };
                    let proof = if secure && proven {
                        ""
                    } else {
                        " (not proven)"
                    };
                    format!("{t}{usable}{proof}")
                })
                .collect(),
            Err(Validated::Bogus(what)) => vec![format!("bogus: {what}")],
            Err(Validated::Dns(e)) => vec![format!("lookup failed: {e}")],
        }
    }
}

fn mode_word(mode: mtasts::Mode) -> &'static str {
    match mode {
        mtasts::Mode::Enforce => "enforce",
        mtasts::Mode::Testing => "testing",
        mtasts::Mode::None => "none",
    }
}
