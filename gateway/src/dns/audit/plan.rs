//! `edgemx dns plan-mx-change`: a timed plan for moving a domain's MX records to new hosts,
//! computed from the TTL the resolver sees now.
//!
//! The rule: a resolver may serve a record for its whole TTL after fetching it. So the TTL is
//! lowered first, the switch waits one *old* TTL (until every cache holding the long-lived
//! record has expired), the new set is published with the low TTL, the old hosts keep
//! accepting for at least one *low* TTL more, and only then the TTL goes back up — to the
//! value it had. The low TTL is the smaller of the current TTL and `--low-ttl`: a record
//! already shorter is never lengthened during the change.

use crate::dns::Resolver;
use hickory_resolver::proto::rr::{RData, RecordType};
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Serialize)]
pub struct Plan {
    pub domain: String,
    pub now: u64,
    pub current: Vec<(u16, String)>,
    /// TTL of the MX set as the resolver answered it now.
    pub current_ttl: u32,
    pub new: Vec<(u16, String)>,
    /// The TTL used during the change: min(current TTL, `--low-ttl`) when an MX exists.
    pub low_ttl: u32,
    /// What is wrong with the new hosts today (unresolvable, aliases): fix before step 1.
    pub problems: Vec<String>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Serialize)]
pub struct Step {
    pub at: u64,
    pub at_utc: String,
    pub action: String,
    pub verify: Vec<String>,
}

/// `to`: `HOST` or `PREF:HOST`; hosts without a preference get 10, 20, … in order.
pub async fn plan(
    resolver: &Resolver,
    domain: &str,
    to: &[String],
    low_ttl: u32,
    now: u64,
) -> Result<Plan, String> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let new = parse_targets(to)?;
    let records = resolver
        .records(&domain, RecordType::MX)
        .await
        .map_err(|e| format!("MX lookup for {domain}: {e}"))?;
    let mut current = Vec::new();
    let mut ttl: Option<u32> = None;
    for r in &records {
        if let RData::MX(mx) = &r.data {
            let host = mx
                .exchange
                .to_ascii()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            current.push((mx.preference, host));
            ttl = Some(ttl.map_or(r.ttl, |t| t.min(r.ttl)));
        }
    }
    current.sort();
    let mut problems = Vec::new();
    for (_, host) in &new {
        if let Ok(alias) = resolver.records(host, RecordType::CNAME).await
            && !alias.is_empty()
        {
            problems.push(format!(
                "{host} is a CNAME; an MX target must not be an alias"
            ));
        }
        if let Err(e) = resolver.addresses(host).await {
            problems.push(format!(
                "{host} does not resolve yet ({e}); publish its address records first"
            ));
        }
    }
    // No MX published: nothing is cached that could send mail to the wrong place.
    let current_ttl = ttl.unwrap_or(0);
    let lower = current_ttl > low_ttl;
    let low_ttl = match ttl {
        Some(current) => current.min(low_ttl),
        None => low_ttl,
    };
    let switch = now + if lower { u64::from(current_ttl) } else { 0 };
    let settled = switch + u64::from(low_ttl);
    let names = |set: &[(u16, String)]| {
        set.iter()
            .map(|(p, h)| format!("{p} {h}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let old_only: Vec<String> = current
        .iter()
        .filter(|(_, h)| !new.iter().any(|(_, n)| n == h))
        .map(|(_, h)| h.clone())
        .collect();
    let mut steps = vec![Step {
        at: now,
        at_utc: iso(now),
        action: if lower {
            format!("Lower the TTL of the MX records of {domain} from {current_ttl}s to {low_ttl}s, keeping the same hosts ({}).", names(&current))
        } else {
            format!("The MX TTL is already {current_ttl}s (not above the low TTL): no need to lower it; prepare the new hosts.")
        },
        verify: vec![
            format!("every resolver in use answers the MX of {domain} with a TTL of at most {low_ttl}s"),
            format!("the new hosts ({}) have A/AAAA records, are not CNAMEs, and accept mail for {domain} (an RCPT probe to a known address)", names(&new)),
            "if MTA-STS is published, its policy's `mx:` lines already name the new hosts (update the policy and its `id` now)".into(),
            "the SPF record covers the new hosts if they send mail for the domain".into(),
        ],
    }];
    steps.push(Step {
        at: switch,
        at_utc: iso(switch),
        action: format!(
            "Earliest safe switch ({}): publish the new MX set ({}) with TTL {low_ttl}s.",
            if lower { format!("now + the old TTL of {current_ttl}s, when no cache holds the long-lived record") } else { "now".into() },
            names(&new)
        ),
        verify: vec![
            format!("`edgemx dns check {domain} --resolver … --resolver …` shows the new set and the resolvers agree"),
            "mail arrives on the new hosts (their logs, or edgemx_messages_accepted_total)".into(),
        ],
    });
    let keep = if old_only.is_empty() {
        "the hosts".to_string()
    } else {
        old_only.join(", ")
    };
    let restore = match ttl {
        Some(original) => format!("Restore the TTL to its original {original}s."),
        None => "Raise the TTL to its long-term value.".to_string(),
    };
    steps.push(Step {
        at: settled,
        at_utc: iso(settled),
        action: format!(
            "Every cache of the old set has expired (switch + {low_ttl}s). {restore} Keep {keep} accepting mail until senders' retries are over (their queue lifetime), then retire them."
        ),
        verify: vec![
            format!("no new connections reach {keep} from outside"),
            "their queues are empty (`edgemx queue list`)".into(),
            format!("`edgemx dns check {domain}` is clean with the restored TTL"),
        ],
    });
    Ok(Plan {
        domain,
        now,
        current,
        current_ttl,
        new,
        low_ttl,
        problems,
        steps,
    })
}

impl Plan {
    pub fn human(&self) -> String {
        let mut out = format!(
            "MX change plan for {} (MX TTL now {}s, low TTL {}s)\n",
            self.domain, self.current_ttl, self.low_ttl
        );
        if !self.problems.is_empty() {
            out.push_str("\nFix first:\n");
            for p in &self.problems {
                let _ = writeln!(out, "   - {p}");
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            let wait = step.at.saturating_sub(self.now);
            let _ = writeln!(
                out,
                "\n{}. {} (now + {wait}s)\n   {}",
                i + 1,
                step.at_utc,
                step.action
            );
            for v in &step.verify {
                let _ = writeln!(out, "   - verify: {v}");
            }
        }
        out
    }
}

fn parse_targets(to: &[String]) -> Result<Vec<(u16, String)>, String> {
    let mut out = Vec::new();
    for (i, item) in to
        .iter()
        .flat_map(|t| t.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .enumerate()
    {
        let (pref, host) = match item.split_once(':') {
            Some((p, h)) => (
                p.parse::<u16>()
                    .map_err(|_| format!("`{item}`: preference `{p}` is not a number"))?,
                h,
            ),
            None => (10 * (i as u16 + 1), item),
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if !matches!(
            crate::config::NextHop::parse(&host),
            Ok(crate::config::NextHop::Host { .. })
        ) {
            return Err(format!("`{item}`: `{host}` is not a host name"));
        }
        out.push((pref, host));
    }
    if out.is_empty() {
        return Err("--to needs at least one host".into());
    }
    out.sort();
    Ok(out)
}

/// `2026-11-26T10:00:00Z`.
fn iso(unix: u64) -> String {
    let (y, m, d) = crate::time::civil(unix / 86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        unix % 86_400 / 3_600,
        unix / 60 % 60,
        unix % 60
    )
}
