//! The MX set: every target must be a host name (not an IP literal, RFC 5321 §5.1), not an
//! alias (RFC 2181 §10.3), and resolve to addresses; equal preferences are reported; and
//! this gateway's place in the set is checked against its role.

use super::{Level, Ours, Report, Role};
use crate::dns::{DnsError, Resolver};
use hickory_resolver::proto::rr::{RData, RecordType};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Default, Serialize)]
pub struct MxReport {
    /// TTL of the MX record set (the smallest if they differ).
    pub ttl: Option<u32>,
    pub hosts: Vec<MxHost>,
    /// `0 .` (RFC 7505): the domain accepts no mail.
    pub null_mx: bool,
}

#[derive(Debug, Serialize)]
pub struct MxHost {
    pub preference: u16,
    pub host: String,
    pub addresses: Vec<IpAddr>,
    /// The alias target when the MX target is a CNAME.
    pub cname: Option<String>,
    pub ip_literal: bool,
    /// This gateway, by name or by address.
    pub ours: bool,
}

pub async fn check(resolver: &Resolver, domain: &str, ours: &Ours, report: &mut Report) {
    let records = match resolver.records(domain, RecordType::MX).await {
        Ok(records) => records,
        Err(DnsError::Permanent(e)) => {
            report.add(Level::Error, "mx.lookup", e);
            return;
        }
        Err(DnsError::Temporary(e)) => {
            report.add(Level::Error, "mx.lookup", e);
            return;
        }
    };
    let mut set: Vec<(u16, String)> = Vec::new();
    for record in &records {
        if let RData::MX(mx) = &record.data {
            let host = mx.exchange.to_ascii();
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            set.push((mx.preference, host));
            let ttl = report.mx.ttl.map_or(record.ttl, |t| t.min(record.ttl));
            report.mx.ttl = Some(ttl);
        }
    }
    set.sort();
    if set.is_empty() {
        report.add(
            Level::Warning,
            "mx.missing",
            format!(
                "{domain} has no MX records: senders fall back to its address records (implicit MX)"
            ),
        );
        return;
    }
    if set.iter().any(|(_, h)| h.is_empty()) {
        report.mx.null_mx = true;
        let level = if set.len() > 1 {
            Level::Error
        } else {
            Level::Info
        };
        report.add(
            level,
            "mx.null",
            "null MX (`0 .`): the domain accepts no mail; it must be the only MX (RFC 7505)",
        );
        return;
    }
    for (preference, host) in set {
        let entry = target(resolver, preference, host, ours, report).await;
        report.mx.hosts.push(entry);
    }
    equal_preferences(report);
    role(ours, report);
}

async fn target(
    resolver: &Resolver,
    preference: u16,
    host: String,
    ours: &Ours,
    report: &mut Report,
) -> MxHost {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let ip_literal = literal.parse::<IpAddr>().is_ok();
    if ip_literal {
        report.add(
            Level::Error,
            "mx.ip_literal",
            format!("MX {preference} {host} is an IP address; an MX target must be a host name (RFC 5321 §5.1)"),
        );
    }
    let cname = match resolver.records(&host, RecordType::CNAME).await {
        Ok(records) => records.iter().find_map(|r| match &r.data {
            RData::CNAME(c) => Some(c.0.to_ascii().trim_end_matches('.').to_owned()),
            _ => None,
        }),
        Err(_) => None,
    };
    if let Some(alias) = &cname {
        report.add(
            Level::Error,
            "mx.cname",
            format!("MX target {host} is a CNAME for {alias}; MX targets must not be aliases (RFC 2181 §10.3, RFC 5321 §5.1)"),
        );
    }
    let mut addresses = Vec::new();
    let mut failure = None;
    for kind in [RecordType::A, RecordType::AAAA] {
        match resolver.records(&host, kind).await {
            Ok(records) => addresses.extend(records.iter().filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })),
            Err(e) => failure = Some(e.to_string()),
        }
    }
    if addresses.is_empty() && !ip_literal {
        let why = failure.unwrap_or_else(|| "no A or AAAA records".into());
        report.add(
            Level::Error,
            "mx.unresolvable",
            format!("MX target {host} does not resolve: {why}"),
        );
    }
    let by_name = ours
        .hostname
        .as_deref()
        .is_some_and(|n| n.trim_end_matches('.').eq_ignore_ascii_case(&host));
    let by_address = addresses.iter().any(|a| ours.outbound.contains(a));
    MxHost {
        preference,
        host,
        addresses,
        cname,
        ip_literal,
        ours: by_name || by_address,
    }
}

fn equal_preferences(report: &mut Report) {
    let mut groups: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for h in &report.mx.hosts {
        groups.entry(h.preference).or_default().push(h.host.clone());
    }
    for (preference, hosts) in groups.into_iter().filter(|(_, h)| h.len() > 1) {
        report.add(
            Level::Info,
            "mx.equal_preference",
            format!(
                "{} share preference {preference}: senders spread mail across them, so each must accept the same recipients with the same policy",
                hosts.join(", ")
            ),
        );
    }
}

/// A primary must be among the most preferred hosts; a secondary must have a more
/// preferred host above it, or it receives the mail first.
fn role(ours: &Ours, report: &mut Report) {
    let Some(name) = ours.hostname.clone() else {
        report.add(
            Level::Info,
            "mx.role",
            "our place in the MX set not checked: give --hostname or --config",
        );
        return;
    };
    let best = report.mx.hosts.iter().map(|h| h.preference).min();
    let mine: Vec<u16> = report
        .mx
        .hosts
        .iter()
        .filter(|h| h.ours)
        .map(|h| h.preference)
        .collect();
    let (Some(best), Some(&pref)) = (best, mine.iter().min()) else {
        report.add(
            Level::Warning,
            "mx.role",
            format!("this gateway ({name}) is not among the MX hosts: it receives no mail for the domain from outside"),
        );
        return;
    };
    match ours.role {
        Some(Role::Primary) if pref > best => report.add(
            Level::Warning,
            "mx.role",
            format!("this gateway is primary but its preference {pref} is above the best ({best}): it only gets mail when those hosts fail"),
        ),
        Some(Role::Secondary) if pref <= best => report.add(
            Level::Warning,
            "mx.role",
            format!("this gateway is secondary but has the best preference ({pref}): senders try it first"),
        ),
        Some(role) => report.add(
            Level::Info,
            "mx.role",
            format!(
                "this gateway ({name}) is at preference {pref}, as a {} should be (best {best})",
                if role == Role::Primary { "primary" } else { "secondary" }
            ),
        ),
        None => report.add(
            Level::Info,
            "mx.role",
            format!("this gateway ({name}) is at preference {pref} (best {best}); give --role to check it"),
        ),
    }
}
