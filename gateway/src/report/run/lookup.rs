//! The DNS records reports depend on: where a domain's DMARC policy is, and whether a
//! report destination outside it agreed to receive its reports.

use crate::dns::{DnsError, Resolver};

/// The domain reports are submitted by: that of `report_from`.
pub fn submitter(report_from: &str) -> &str {
    report_from.rsplit_once('@').map_or(report_from, |(_, d)| d)
}

/// The DMARC record that applies to `domain`: its own, else the nearest parent's (the
/// Organizational Domain without a public suffix list: the walk stops before the top
/// level). Returns where it was found and its text; a temporary DNS error is an error.
pub async fn find_policy(
    resolver: &Resolver,
    domain: &str,
) -> Result<Option<(String, String)>, DnsError> {
    let labels: Vec<&str> = domain.split('.').collect();
    for start in 0..labels.len().saturating_sub(1) {
        let name = labels[start..].join(".");
        let texts = records(resolver, &format!("_dmarc.{name}")).await?;
        if let Some(text) = texts.into_iter().find(|t| is_dmarc(t)) {
            return Ok(Some((name, text)));
        }
    }
    Ok(None)
}

/// The TXT texts at `name`; a name that does not exist has none (only a temporary error
/// is an error).
pub async fn records(resolver: &Resolver, name: &str) -> Result<Vec<String>, DnsError> {
    match resolver.txt(name).await {
        Err(DnsError::Permanent(_)) => Ok(Vec::new()),
        other => other,
    }
}

fn is_dmarc(text: &str) -> bool {
    text.trim_start()
        .get(..8)
        .is_some_and(|v| v.eq_ignore_ascii_case("v=DMARC1"))
}

/// RFC 7489 §7.1: a destination outside the policy domain (neither the domain, one of its
/// subdomains, nor a parent) must publish `POLICY._report._dmarc.DEST` with `v=DMARC1`.
pub async fn verified(resolver: &Resolver, policy_domain: &str, address: &str) -> bool {
    let Some((_, dest)) = address.rsplit_once('@') else {
        return false;
    };
    let dest = dest.to_ascii_lowercase();
    let related = |a: &str, b: &str| a == b || a.ends_with(&format!(".{b}"));
    if related(&dest, policy_domain) || related(policy_domain, &dest) {
        return true;
    }
    let name = format!("{policy_domain}._report._dmarc.{dest}");
    match records(resolver, &name).await {
        Ok(texts) => texts.iter().any(|t| is_dmarc(t)),
        Err(e) => {
            log::warn!("reports: {name}: {e}; the destination is not used this time");
            false
        }
    }
}
