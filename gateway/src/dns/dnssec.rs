//! The validating resolver for DANE (RFC 7672 §2.1): MX, A/AAAA and TLSA lookups of
//! delivery candidates, each answer with whether DNSSEC proved it (Secure) or not.
//!
//! Separate from [`super::Resolver`] so that validation never slows or breaks the lookups of
//! everything else (SPF, DMARC, the audit), and so that its trust anchor can be our own in
//! labs and tests (`dane.trust_anchor`). A Bogus answer is an error of its own kind: DANE
//! defers on it, never falls back to the unvalidated answer.

use super::{DnsError, fqdn};
use crate::config;
use crate::tls::dane::Tlsa;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::LookupIpStrategy;
use hickory_resolver::net::{DnsError as Answer, NetError};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use std::net::IpAddr;
use std::sync::Arc;

/// An answer and whether every record of it was proven by DNSSEC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secured<T> {
    pub value: T,
    pub secure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Validated {
    /// DNSSEC says the answer was tampered with or cannot be trusted (`4.7.5`).
    #[error("4.7.5 DNSSEC validation of {0} failed (bogus)")]
    Bogus(String),
    #[error("{0}")]
    Dns(DnsError),
}

#[derive(Clone)]
pub struct Validating {
    inner: TokioResolver,
}

impl Validating {
    /// Builds the resolver from `[dane]` (upstreams, trust anchor), else `[dns]`.
    pub fn new(dane: &config::Dane, dns: &config::Dns) -> Result<Validating, DnsError> {
        let upstreams = match dane.nameservers.is_empty() {
            true => &dns.nameservers,
            false => &dane.nameservers,
        };
        let mut builder = super::builder(upstreams)?;
        if let Some(path) = &dane.trust_anchor {
            let anchors = TrustAnchors::from_file(path).map_err(|e| {
                DnsError::Temporary(format!(
                    "dane.trust_anchor {}: cannot read DNSKEY records: {e}",
                    path.display()
                ))
            })?;
            builder = builder.with_trust_anchor(Arc::new(anchors));
        }
        let options = builder.options_mut();
        options.validate = true;
        if let Some(timeout) = dns.timeout {
            options.timeout = timeout.0;
        }
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        let inner = builder
            .build()
            .map_err(|e| DnsError::Temporary(format!("cannot build the resolver: {e}")))?;
        Ok(Validating { inner })
    }

    /// The MX hosts of `domain` as [`super::Resolver::mx_hosts`] orders them; secure when
    /// the MX RRset was. A domain without MX records is its own exchanger (as secure as its
    /// address records).
    pub async fn mx_hosts(&self, domain: &str) -> Result<Secured<Vec<(u16, String)>>, Validated> {
        let Some(answers) = self.answers(domain, RecordType::MX).await? else {
            let addrs = self.addresses(domain).await?;
            let host = domain.trim_end_matches('.').to_ascii_lowercase();
            return Ok(Secured {
                value: vec![(0, host)],
                secure: addrs.secure,
            });
        };
        let mut hosts: Vec<(u16, String)> = answers
            .value
            .iter()
            .filter_map(|record| match &record.data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                _ => None,
            })
            .map(|(pref, host)| (pref, host.trim_end_matches('.').to_ascii_lowercase()))
            .collect();
        if hosts.iter().any(|(_, host)| host.is_empty()) {
            return Err(Validated::Dns(DnsError::Permanent(format!(
                "5.1.10 {domain} does not accept mail (null MX)"
            ))));
        }
        fastrand::shuffle(&mut hosts);
        hosts.sort_by_key(|(pref, _)| *pref);
        Ok(Secured {
            value: hosts,
            secure: answers.secure,
        })
    }

    /// The addresses of `host`; secure when every address record was.
    pub async fn addresses(&self, host: &str) -> Result<Secured<Vec<IpAddr>>, Validated> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Secured {
                value: vec![ip],
                secure: false,
            });
        }
        match self.inner.lookup_ip(fqdn(host).as_str()).await {
            Ok(lookup) => {
                let records = lookup.as_lookup().answers();
                let secure = !records.is_empty() && records.iter().all(|r| r.proof.is_secure());
                if records.iter().any(|r| r.proof.is_bogus()) {
                    return Err(Validated::Bogus(format!("the addresses of {host}")));
                }
                let value: Vec<IpAddr> = lookup.iter().collect();
                if value.is_empty() {
                    return Err(Validated::Dns(no_addresses(host)));
                }
                Ok(Secured { value, secure })
            }
            Err(e) if bogus(&e) => Err(Validated::Bogus(format!("the addresses of {host}"))),
            Err(e) if absent(&e).is_some() => Err(Validated::Dns(no_addresses(host))),
            Err(e) => Err(Validated::Dns(super::classify(host, "A/AAAA", &e))),
        }
    }

    /// The TLSA records at `_PORT._tcp.HOST` (RFC 7672 §2.2), usable or not; secure when
    /// the RRset (or the proof that there is none) was.
    pub async fn tlsa(&self, host: &str, port: u16) -> Result<Secured<Vec<Tlsa>>, Validated> {
        let name = format!("_{port}._tcp.{host}");
        let Some(answers) = self.answers(&name, RecordType::TLSA).await? else {
            return Ok(Secured {
                value: Vec::new(),
                secure: true,
            });
        };
        let value = answers
            .value
            .iter()
            .filter_map(|record| match &record.data {
                RData::TLSA(t) => Some(Tlsa {
                    usage: t.cert_usage.into(),
                    selector: t.selector.into(),
                    matching: t.matching.into(),
                    data: t.cert_data.clone(),
                }),
                _ => None,
            })
            .collect();
        Ok(Secured {
            value,
            secure: answers.secure,
        })
    }

    /// The records of `kind` at `name`; `None` when the name or the type does not exist
    /// (proven or not: without records there is nothing to trust).
    async fn answers(
        &self,
        name: &str,
        kind: RecordType,
    ) -> Result<Option<Secured<Vec<Record>>>, Validated> {
        match self.inner.lookup(fqdn(name).as_str(), kind).await {
            Ok(lookup) => {
                let records: Vec<Record> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == kind)
                    .cloned()
                    .collect();
                if records.iter().any(|r| r.proof.is_bogus()) {
                    return Err(Validated::Bogus(format!("{name} {kind}")));
                }
                if records.is_empty() {
                    return Ok(None);
                }
                let secure = records.iter().all(|r| r.proof.is_secure());
                Ok(Some(Secured {
                    value: records,
                    secure,
                }))
            }
            Err(e) if bogus(&e) => Err(Validated::Bogus(format!("{name} {kind}"))),
            Err(e) if absent(&e) == Some(Proof::Bogus) => Err(Validated::Bogus(format!(
                "{name} {kind} (denial of existence)"
            ))),
            Err(e) if absent(&e).is_some() => {
                if kind == RecordType::MX && nx_domain(&e) {
                    return Err(Validated::Dns(DnsError::Permanent(format!(
                        "5.1.2 {name} does not exist (NXDOMAIN)"
                    ))));
                }
                Ok(None)
            }
            Err(e) => Err(Validated::Dns(super::classify(name, &kind.to_string(), &e))),
        }
    }
}

/// `dane.trust_anchor` must hold DNSKEY records hickory can use (checked by `check-config`
/// and before a commit, so a typo does not silently leave enforced DANE deferring mail).
pub fn check(config: &config::Config) -> Vec<config::ConfigError> {
    let Some(path) = &config.dane.trust_anchor else {
        return Vec::new();
    };
    let problem = match TrustAnchors::from_file(path) {
        Ok(anchors) if anchors.is_empty() && !has_dnskey(path) => {
            Some("holds no DNSKEY record".to_owned())
        }
        Ok(_) => None,
        Err(e) => Some(format!("cannot be read as DNSKEY records: {e}")),
    };
    problem
        .map(|problem| config::ConfigError {
            key: "dane.trust_anchor".into(),
            value: path.display().to_string(),
            problem,
        })
        .into_iter()
        .collect()
}

/// `TrustAnchors::is_empty` counts root keys only; a zone's own key is fine too.
fn has_dnskey(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.contains("DNSKEY"))
}

fn bogus(e: &NetError) -> bool {
    matches!(e, NetError::Dns(Answer::DnssecBogus))
}

/// The answer said "no such records": with the proof of that, when DNSSEC gave one.
fn absent(e: &NetError) -> Option<Proof> {
    match e {
        NetError::Dns(Answer::Nsec { proof, .. }) => Some(*proof),
        e if e.is_no_records_found() => Some(Proof::Indeterminate),
        _ => None,
    }
}

fn nx_domain(e: &NetError) -> bool {
    match e {
        NetError::Dns(Answer::Nsec { response, .. }) => {
            response.response_code == hickory_resolver::proto::op::ResponseCode::NXDomain
        }
        e => e.is_nx_domain(),
    }
}

fn no_addresses(host: &str) -> DnsError {
    DnsError::Permanent(format!("5.1.2 {host} has no address records"))
}
