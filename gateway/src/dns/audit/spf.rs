//! SPF (RFC 7208): exactly one `v=spf1` record, valid terms, at most 10 DNS-querying terms
//! counted through every `include` and `redirect` (§4.6.4), the `all` qualifier, and whether
//! our outbound addresses would pass.

use super::{Level, Ours, Report};
use crate::dns::Resolver;
use serde::Serialize;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// RFC 7208 §4.6.4.
const MAX_LOOKUPS: u32 = 10;
/// Includes followed at most, deeper or more is a loop or abuse; stops the walk.
const MAX_DEPTH: usize = 10;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// Qualifier (`+ - ~ ?`), mechanism name, argument after `:` or `/`.
    Mechanism(char, String, Option<String>),
    Modifier(String, String),
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
async fn spf_records(
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

/// The terms after `v=spf1`; an unknown mechanism or a malformed term is an error.
pub fn parse(record: &str) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    for word in record.split_ascii_whitespace().skip(1) {
        if let Some((name, value)) = word.split_once('=')
            && !name.contains(':')
            && !name.contains('/')
        {
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                || name.is_empty()
            {
                return Err(format!("`{word}` is not a valid modifier"));
            }
            terms.push(Term::Modifier(name.to_ascii_lowercase(), value.to_owned()));
            continue;
        }
        let (qualifier, rest) = match word.chars().next() {
            Some(q @ ('+' | '-' | '~' | '?')) => (q, &word[1..]),
            _ => ('+', word),
        };
        let split = rest.find([':', '/']).unwrap_or(rest.len());
        let (name, arg) = (rest[..split].to_ascii_lowercase(), &rest[split..]);
        let arg = arg.strip_prefix(':').unwrap_or(arg);
        let arg = (!arg.is_empty()).then(|| arg.to_owned());
        let ok = match name.as_str() {
            "all" => arg.is_none(),
            "include" | "exists" => arg.is_some(),
            "a" | "mx" | "ptr" => true,
            "ip4" => arg
                .as_deref()
                .is_some_and(|a| cidr(a).is_some_and(|(ip, _)| ip.is_ipv4())),
            "ip6" => arg
                .as_deref()
                .is_some_and(|a| cidr(a).is_some_and(|(ip, _)| ip.is_ipv6())),
            _ => return Err(format!("`{word}`: unknown mechanism `{name}`")),
        };
        if !ok {
            return Err(format!("`{word}`: malformed `{name}` mechanism"));
        }
        terms.push(Term::Mechanism(qualifier, name, arg));
    }
    Ok(terms)
}

fn cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = text.split_once('/').unwrap_or((text, ""));
    let ip: IpAddr = ip.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = if len.is_empty() {
        max
    } else {
        len.parse().ok().filter(|l| *l <= max)?
    };
    Some((ip, len))
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

fn name_of(qualifier: char) -> &'static str {
    match qualifier {
        '+' => "pass",
        '-' => "fail",
        '~' => "softfail",
        _ => "neutral",
    }
}

struct Walk<'a> {
    resolver: &'a Resolver,
    lookups: u32,
    stack: Vec<String>,
    problems: Vec<String>,
}

impl Walk<'_> {
    /// Counts DNS-querying terms, following includes and redirects.
    fn count<'b>(
        &'b mut self,
        terms: &'b [Term],
        depth: usize,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>> {
        Box::pin(async move {
            for term in terms {
                let target = match term {
                    Term::Mechanism(_, name, _)
                        if matches!(name.as_str(), "a" | "mx" | "ptr" | "exists") =>
                    {
                        self.lookups += 1;
                        None
                    }
                    Term::Mechanism(_, name, Some(arg)) if name == "include" => Some(arg.clone()),
                    Term::Modifier(name, value) if name == "redirect" => Some(value.clone()),
                    _ => None,
                };
                let Some(target) = target else { continue };
                self.lookups += 1;
                if depth >= MAX_DEPTH || self.lookups > 5 * MAX_LOOKUPS || target.contains('%') {
                    continue; // macros cannot be expanded without a sender; loops stop here
                }
                if self.stack.contains(&target) {
                    self.problems.push(format!("include loop through {target}"));
                    continue;
                }
                let inner = match spf_records(self.resolver, &target).await {
                    Ok((records, _)) if records.len() == 1 => parse(&records[0]),
                    Ok((records, _)) if records.is_empty() => Err(format!(
                        "{target} (included) has no SPF record: a permanent error for receivers"
                    )),
                    Ok(_) => Err(format!("{target} (included) has several SPF records")),
                    Err(e) => Err(format!("{target} (included): {e}")),
                };
                match inner {
                    Ok(inner) => {
                        self.stack.push(target);
                        self.count(&inner, depth + 1).await;
                        self.stack.pop();
                    }
                    Err(e) => self.problems.push(e),
                }
            }
        })
    }
}

/// The qualifier of the first term matching `ip` (`None`: nothing matched, neutral).
/// `exists`, `ptr` and macros are not evaluated (they never match here).
fn evaluate<'a>(
    resolver: &'a Resolver,
    terms: &'a [Term],
    domain: &'a str,
    ip: IpAddr,
    depth: usize,
) -> Pin<Box<dyn Future<Output = Option<char>> + Send + 'a>> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            return None;
        }
        for term in terms {
            let Term::Mechanism(q, name, arg) = term else {
                continue;
            };
            let matched = match name.as_str() {
                "all" => true,
                "ip4" | "ip6" => arg
                    .as_deref()
                    .and_then(cidr)
                    .is_some_and(|(net, len)| in_net(ip, net, len)),
                "a" | "mx" => {
                    let (host, len) = host_and_len(arg.as_deref(), domain, ip);
                    let hosts = if name == "mx" {
                        resolver
                            .mx_hosts(&host)
                            .await
                            .map(|h| h.into_iter().map(|(_, n)| n).collect())
                            .unwrap_or_default()
                    } else {
                        vec![host]
                    };
                    let mut hit = false;
                    for h in hosts {
                        let addrs = resolver.addresses(&h).await.unwrap_or_default();
                        hit |= addrs.iter().any(|a| in_net(ip, *a, len));
                    }
                    hit
                }
                "include" => match arg {
                    Some(target) if !target.contains('%') => {
                        let inner = spf_records(resolver, target)
                            .await
                            .ok()
                            .and_then(|(r, _)| r.first().and_then(|r| parse(r).ok()));
                        match inner {
                            Some(inner) => {
                                evaluate(resolver, &inner, target, ip, depth + 1).await == Some('+')
                            }
                            None => false,
                        }
                    }
                    _ => false,
                },
                _ => false,
            };
            if matched {
                return Some(*q);
            }
        }
        let redirect = terms.iter().find_map(|t| match t {
            Term::Modifier(n, v) if n == "redirect" && !v.contains('%') => Some(v.clone()),
            _ => None,
        })?;
        let (records, _) = spf_records(resolver, &redirect).await.ok()?;
        let inner = parse(records.first()?).ok()?;
        evaluate(resolver, &inner, &redirect, ip, depth + 1).await
    })
}

/// `a`/`mx` argument: optional domain, optional `/v4len` and `//v6len`.
fn host_and_len(arg: Option<&str>, domain: &str, ip: IpAddr) -> (String, u8) {
    let arg = arg.unwrap_or("");
    let (host, lens) = arg.split_once('/').map_or((arg, ""), |(h, l)| (h, l));
    let (v4, v6) = lens.split_once("//").map_or((lens, ""), |(a, b)| (a, b));
    let host = if host.is_empty() { domain } else { host };
    let len = if ip.is_ipv4() {
        v4.parse().unwrap_or(32)
    } else {
        v6.parse().unwrap_or(128)
    };
    (host.to_owned(), len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_parse_and_unknown_mechanisms_are_errors() {
        let terms =
            parse("v=spf1 ip4:192.0.2.0/24 include:_spf.x.test ~all redirect=y.test").unwrap();
        assert_eq!(
            terms[0],
            Term::Mechanism('+', "ip4".into(), Some("192.0.2.0/24".into()))
        );
        assert_eq!(terms[2], Term::Mechanism('~', "all".into(), None));
        assert_eq!(terms[3], Term::Modifier("redirect".into(), "y.test".into()));
        assert!(parse("v=spf1 ip5:1.2.3.4 -all").is_err());
        assert!(parse("v=spf1 ip4:300.1.1.1 -all").is_err());
        assert!(parse("v=spf1 include -all").is_err());
    }

    #[test]
    fn networks_match_by_prefix() {
        let ip: IpAddr = "192.0.2.77".parse().unwrap();
        assert!(in_net(ip, "192.0.2.0".parse().unwrap(), 24));
        assert!(!in_net(ip, "192.0.3.0".parse().unwrap(), 24));
        assert!(in_net(ip, "10.0.0.0".parse().unwrap(), 0));
        assert_eq!(
            host_and_len(Some("/24"), "d.test", ip),
            ("d.test".into(), 24)
        );
    }
}
