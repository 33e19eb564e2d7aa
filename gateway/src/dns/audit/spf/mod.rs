//! SPF (RFC 7208): exactly one `v=spf1` record, valid terms, at most 10 DNS-querying terms
//! counted through every `include` and `redirect` (§4.6.4), the `all` qualifier, and whether
//! our outbound addresses would pass.
//!
//! `terms.rs` parses a record; `walk.rs` counts lookups and evaluates our addresses.

mod terms;
mod walk;

use super::{Level, Ours, Report};
use crate::dns::Resolver;
use serde::Serialize;
use std::net::IpAddr;
use terms::{Term, name_of, parse};
use walk::{Walk, evaluate};

/// RFC 7208 §4.6.4.
pub(super) const MAX_LOOKUPS: u32 = 10;
/// Includes followed at most, deeper or more is a loop or abuse; stops the walk.
pub(super) const MAX_DEPTH: usize = 10;

#[derive(Debug, Default, Serialize)]
pub struct SpfReport {
    pub record: Option<String>,
    pub ttl: Option<u32>,
    /// DNS-querying terms, counted recursively.
    pub lookups: u32,
    /// `-all`, `~all`, `?all`, `+all`, or `None` when the record has no `all`.
    pub all: Option<String>,
    /// Our outbound addresses and the SPF result each would get.
    pub ours: Vec<(IpAddr, String)>,
}

pub async fn check(resolver: &Resolver, domain: &str, ours: &Ours, report: &mut Report) {
    let (records, ttl) = match spf_records(resolver, domain).await {
        Ok(found) => found,
        Err(e) => {
            report.add(Level::Error, "spf.lookup", e);
            return;
        }
    };
    report.spf.ttl = ttl;
    let record = match records.as_slice() {
        [] => {
            report.add(Level::Warning, "spf.missing", format!("{domain} publishes no SPF record: receivers cannot tell our mail from forgeries"));
            return;
        }
        [one] => one.clone(),
        many => {
            report.add(
                Level::Error,
                "spf.multiple",
                format!(
                    "{} SPF records: receivers treat that as a permanent error (RFC 7208 §4.5)",
                    many.len()
                ),
            );
            return;
        }
    };
    report.spf.record = Some(record.clone());
    let terms = match parse(&record) {
        Ok(terms) => terms,
        Err(e) => {
            report.add(Level::Error, "spf.syntax", e);
            return;
        }
    };
    let mut walk = Walk {
        resolver,
        lookups: 0,
        stack: vec![domain.to_owned()],
        problems: Vec::new(),
    };
    walk.count(&terms, 0).await;
    report.spf.lookups = walk.lookups;
    for problem in walk.problems {
        report.add(Level::Error, "spf.include", problem);
    }
    if walk.lookups > MAX_LOOKUPS {
        report.add(Level::Error, "spf.lookups", format!("{} DNS lookups (include, a, mx, ptr, exists, redirect, counted recursively); more than {MAX_LOOKUPS} is a permanent error (RFC 7208 §4.6.4)", walk.lookups));
    }
    all_qualifier(&terms, report);
    for ip in &ours.outbound {
        let result = evaluate(resolver, &terms, domain, *ip, 0).await;
        let name = result.map_or("neutral (no match)", name_of);
        report.spf.ours.push((*ip, name.to_owned()));
        if result != Some('+') {
            report.add(Level::Error, "spf.coverage", format!("our outbound address {ip} is not authorized by SPF (result {name}); add it, e.g. `ip4:{ip}`"));
        }
    }
}

fn all_qualifier(terms: &[Term], report: &mut Report) {
    let all = terms.iter().find_map(|t| match t {
        Term::Mechanism(q, name, _) if name == "all" => Some(*q),
        _ => None,
    });
    let redirect = terms
        .iter()
        .any(|t| matches!(t, Term::Modifier(n, _) if n == "redirect"));
    report.spf.all = all.map(|q| format!("{q}all"));
    match all {
        Some('+') => report.add(Level::Error, "spf.all", "`+all` authorizes every host on the Internet to send as this domain"),
        Some('?') => report.add(Level::Warning, "spf.all", "`?all` (neutral) gives receivers nothing to act on; use `~all` or `-all`"),
        None if !redirect => report.add(Level::Warning, "spf.all", "no `all` mechanism: unlisted hosts get `neutral`; end the record with `~all` or `-all`"),
        _ => {}
    }
}

/// The `v=spf1` records at `name` and their smallest TTL.
pub(super) async fn spf_records(
    resolver: &Resolver,
    name: &str,
) -> Result<(Vec<String>, Option<u32>), String> {
    use hickory_resolver::proto::rr::{RData, RecordType};
    let records = resolver
        .records(name, RecordType::TXT)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut ttl: Option<u32> = None;
    for record in &records {
        if let RData::TXT(txt) = &record.data {
            let text: String = txt
                .txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s))
                .collect();
            let lower = text.to_ascii_lowercase();
            if lower == "v=spf1" || lower.starts_with("v=spf1 ") {
                ttl = Some(ttl.map_or(record.ttl, |t| t.min(record.ttl)));
                out.push(text);
            }
        }
    }
    Ok((out, ttl))
}
