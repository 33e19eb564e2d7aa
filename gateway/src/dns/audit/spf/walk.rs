//! Following an SPF record through `include` and `redirect`: the lookup count
//! (RFC 7208 §4.6.4) and the result our outbound addresses would get.

use super::terms::{Term, cidr, host_and_len, in_net, parse};
use super::{MAX_DEPTH, MAX_LOOKUPS, spf_records};
use crate::dns::Resolver;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

pub struct Walk<'a> {
    pub resolver: &'a Resolver,
    pub lookups: u32,
    pub stack: Vec<String>,
    pub problems: Vec<String>,
}

impl Walk<'_> {
    /// Counts DNS-querying terms, following includes and redirects.
    pub fn count<'b>(
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
pub fn evaluate<'a>(
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
                    .is_some_and(|net| net.contains(ip)),
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
