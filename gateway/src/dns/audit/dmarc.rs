//! DMARC (RFC 7489): one `v=DMARC1` record at `_dmarc.DOMAIN`, its policy and reporting
//! addresses; MTA-STS (RFC 8461, the `_mta-sts` TXT record) and TLS-RPT (RFC 8460, the
//! `_smtp._tls` TXT record).
//!
//! The MTA-STS policy file itself (`https://mta-sts.DOMAIN/.well-known/mta-sts.txt`) is not
//! fetched: the audit speaks DNS only, and the appliance reaches no web server in tests.

use super::{Level, Report};
use crate::dns::Resolver;
use hickory_resolver::proto::rr::{RData, RecordType};
use serde::Serialize;

#[derive(Debug, Default, Serialize)]
pub struct DmarcReport {
    pub record: Option<String>,
    pub ttl: Option<u32>,
    pub policy: Option<String>,
    pub subdomain_policy: Option<String>,
    pub pct: Option<u32>,
    pub rua: Vec<String>,
    pub ruf: Vec<String>,
}

/// An MTA-STS or TLS-RPT record as found.
#[derive(Debug, Default, Serialize)]
pub struct PolicyRecord {
    pub record: Option<String>,
    pub ttl: Option<u32>,
}

pub async fn check(resolver: &Resolver, domain: &str, report: &mut Report) {
    let name = format!("_dmarc.{domain}");
    match tagged(resolver, &name, "v=DMARC1").await {
        Err(e) => report.add(Level::Error, "dmarc.lookup", e),
        Ok((records, _)) if records.is_empty() => report.add(
            Level::Error,
            "dmarc.missing",
            format!("no DMARC record at {name}: receivers apply no policy to forged mail from {domain}, and large mailbox providers expect one"),
        ),
        Ok((records, _)) if records.len() > 1 => report.add(
            Level::Error,
            "dmarc.multiple",
            format!("{} DMARC records at {name}: receivers ignore them all (RFC 7489 §6.6.3)", records.len()),
        ),
        Ok((records, ttl)) => {
            report.dmarc.ttl = ttl;
            dmarc(&records[0], report);
        }
    }
    mta_sts(resolver, domain, report).await;
}

fn dmarc(record: &str, report: &mut Report) {
    report.dmarc.record = Some(record.to_owned());
    for (tag, value) in tags(record) {
        match tag.as_str() {
            "p" => report.dmarc.policy = Some(value.to_ascii_lowercase()),
            "sp" => report.dmarc.subdomain_policy = Some(value.to_ascii_lowercase()),
            "pct" => report.dmarc.pct = value.parse().ok(),
            "rua" => report.dmarc.rua = uris(&value),
            "ruf" => report.dmarc.ruf = uris(&value),
            _ => {}
        }
    }
    match report.dmarc.policy.clone().as_deref() {
        None => report.add(Level::Error, "dmarc.policy", "the DMARC record has no `p=` tag"),
        Some("none") => report.add(
            Level::Warning,
            "dmarc.policy",
            "p=none: monitoring only, forged mail is still delivered; move to quarantine, then reject, once reports are clean",
        ),
        Some("quarantine" | "reject") => {}
        Some(other) => report.add(
            Level::Error,
            "dmarc.policy",
            format!("p={other} is not none, quarantine or reject"),
        ),
    }
    if let Some(pct) = report.dmarc.pct.filter(|p| *p < 100) {
        report.add(
            Level::Warning,
            "dmarc.pct",
            format!("pct={pct}: the policy applies to only {pct} % of failing mail"),
        );
    }
    if report.dmarc.rua.is_empty() {
        report.add(
            Level::Warning,
            "dmarc.rua",
            "no `rua=` address: no aggregate reports, so nobody sees who sends as the domain",
        );
    }
    for uri in report
        .dmarc
        .rua
        .clone()
        .iter()
        .chain(report.dmarc.ruf.clone().iter())
    {
        if !uri.to_ascii_lowercase().starts_with("mailto:") || !uri.contains('@') {
            report.add(
                Level::Error,
                "dmarc.report_uri",
                format!("`{uri}` is not a mailto: address"),
            );
        }
    }
}

async fn mta_sts(resolver: &Resolver, domain: &str, report: &mut Report) {
    let name = format!("_mta-sts.{domain}");
    match tagged(resolver, &name, "v=STSv1").await {
        Err(e) => report.add(Level::Warning, "mta_sts.lookup", e),
        Ok((records, _)) if records.is_empty() => report.add(
            Level::Info,
            "mta_sts.missing",
            format!("no MTA-STS record at {name}: senders use TLS opportunistically"),
        ),
        Ok((records, ttl)) => {
            let has_id = tags(&records[0])
                .iter()
                .any(|(t, v)| t == "id" && !v.is_empty());
            if records.len() > 1 || !has_id {
                report.add(
                    Level::Error,
                    "mta_sts.record",
                    format!("{name} must hold exactly one `v=STSv1; id=…` record"),
                );
            }
            report.add(Level::Info, "mta_sts.policy", format!("MTA-STS is announced; the policy file https://mta-sts.{domain}/.well-known/mta-sts.txt is not fetched by this audit: check that its `mx:` lines name every MX host"));
            report.mta_sts = PolicyRecord {
                record: Some(records[0].clone()),
                ttl,
            };
        }
    }
    let name = format!("_smtp._tls.{domain}");
    match tagged(resolver, &name, "v=TLSRPTv1").await {
        Err(e) => report.add(Level::Warning, "tls_rpt.lookup", e),
        Ok((records, _)) if records.is_empty() => {
            let level = if report.mta_sts.record.is_some() {
                Level::Warning
            } else {
                Level::Info
            };
            report.add(
                level,
                "tls_rpt.missing",
                format!(
                    "no TLS-RPT record at {name}: failures of TLS towards the domain go unreported"
                ),
            );
        }
        Ok((records, ttl)) => {
            let rua = tags(&records[0])
                .into_iter()
                .find(|(t, _)| t == "rua")
                .map(|(_, v)| v);
            if records.len() > 1
                || rua.is_none_or(|r| !(r.starts_with("mailto:") || r.starts_with("https:")))
            {
                report.add(
                    Level::Error,
                    "tls_rpt.record",
                    format!(
                        "{name} must hold exactly one `v=TLSRPTv1; rua=mailto:…|https:…` record"
                    ),
                );
            }
            report.tls_rpt = PolicyRecord {
                record: Some(records[0].clone()),
                ttl,
            };
        }
    }
}

/// TXT records at `name` starting with `version` (case-insensitive), and their TTL.
async fn tagged(
    resolver: &Resolver,
    name: &str,
    version: &str,
) -> Result<(Vec<String>, Option<u32>), String> {
    let records = match resolver.records(name, RecordType::TXT).await {
        Ok(records) => records,
        Err(e) if e.is_permanent() => Vec::new(), // NXDOMAIN: simply not published
        Err(e) => return Err(e.to_string()),
    };
    let mut out = Vec::new();
    let mut ttl: Option<u32> = None;
    for record in &records {
        if let RData::TXT(txt) = &record.data {
            let text: String = txt
                .txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s))
                .collect();
            let first = text.split(';').next().unwrap_or("").trim().replace(' ', "");
            if first.eq_ignore_ascii_case(version) {
                ttl = Some(ttl.map_or(record.ttl, |t| t.min(record.ttl)));
                out.push(text);
            }
        }
    }
    Ok((out, ttl))
}

/// `tag=value` pairs separated by `;`, tags lower-cased.
fn tags(record: &str) -> Vec<(String, String)> {
    record
        .split(';')
        .filter_map(|part| part.split_once('='))
        .map(|(t, v)| (t.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

/// A comma-separated list of report URIs (an optional `!size` suffix is kept).
fn uris(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_split_and_lowercased() {
        let t = tags("v=DMARC1; P=reject; rua=mailto:a@x.test,mailto:b@x.test");
        assert_eq!(t[1], ("p".into(), "reject".into()));
        assert_eq!(uris(&t[2].1), ["mailto:a@x.test", "mailto:b@x.test"]);
    }
}
