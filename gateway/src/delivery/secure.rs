//! Transport security for the `mx` hop: which policy applies to each MX host of a
//! recipient domain (DANE, MTA-STS or none) and the report of every connection attempt
//! under it (`Event::TlsPolicyOutcome`, counted by metrics and TLS-RPT).
//!
//! Precedence, per MX host: usable TLSA records proven by DNSSEC (RFC 7672; the MX RRset
//! and the host's addresses must be Secure too) win over the domain's MTA-STS policy
//! (RFC 8461 §2), which wins over nothing. `log-only` DANE and `testing` STS only record and
//! report: the route's own TLS policy decides. An enforced policy makes TLS mandatory, lets
//! only matching certificates through and defers (`4.7.x`) rather than fall back; a Bogus
//! DNSSEC answer under `enforce` defers with `4.7.5` and never bounces.

use crate::config::{Config, DaneMode};
use crate::dns::dnssec::{Secured, Validated, Validating};
use crate::dns::secondary::Exchanger;
use crate::dns::{DnsError, Resolver};
use crate::mtasts::{self, Sts};
use crate::observe::events::{Event, Events};
use crate::smtp::client::wire::Reply;
use crate::tls::dane::Tlsa;
use crate::tls::guard::{Check, Guard};
use rustls::client::danger::ServerCertVerifier;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

/// What transport security needs, built from the configuration.
pub struct Security {
    validating: Option<Validating>,
    pub mx_port: u16,
    sts: Option<Sts>,
    /// WebPKI roots plus `mta_sts.ca`: MX certificates under an STS policy.
    webpki: Option<Arc<dyn ServerCertVerifier>>,
}

/// The MX set of a domain, with what DNSSEC proved of it.
pub struct MxSet {
    pub exchangers: Vec<Exchanger>,
    /// The MX RRset was Secure (or the domain is its own exchanger with Secure addresses).
    pub secure: bool,
    /// Hosts whose address records were Secure.
    pub secure_hosts: HashSet<String>,
    /// The last address lookup that failed.
    pub last: Option<DnsError>,
}

/// The policy for the attempts to one MX host.
#[derive(Debug, Clone)]
pub struct Plan {
    pub domain: String,
    pub check: Check,
    pub enforce: bool,
    /// RFC 8460 `policy-type` and `policy-string`.
    pub kind: &'static str,
    pub lines: Arc<[String]>,
    /// The enforced policy forbids this host before any connection: result type and reply.
    pub refusal: Option<(&'static str, Reply)>,
}

impl Security {
    pub fn new(config: &Config, queue_dir: Option<&std::path::Path>) -> Security {
        // Built even while every mode is `off`: a committed `dane.mode` takes effect at once.
        let validating = match Validating::new(&config.dane, &config.dns) {
            Ok(v) => Some(v),
            Err(e) => {
                log::error!("DANE: no validating resolver ({e}); enforced DANE defers");
                None
            }
        };
        let webpki = match crate::tls::webpki_verifier(config.mta_sts.ca.as_deref()) {
            Ok(v) => Some(v),
            Err(e) => {
                log::error!("MTA-STS: mta_sts.ca unusable ({e}); enforced policies defer");
                None
            }
        };
        let sts = config
            .mta_sts
            .enabled
            .then(|| Sts::new(&config.mta_sts, queue_dir));
        Security {
            validating,
            mx_port: config.delivery.mx_port,
            sts,
            webpki,
        }
    }

    pub fn validating(&self) -> Option<&Validating> {
        self.validating.as_ref()
    }

    pub fn sts(&self) -> Option<&Sts> {
        self.sts.as_ref()
    }

    /// The MX hosts of `domain` and their addresses; through the validating resolver when
    /// DANE applies. Under `log-only` a Bogus answer is logged and the plain answer used;
    /// under `enforce` it defers (`4.7.5`), reported on `events` as `dnssec-invalid`.
    pub async fn exchangers(
        &self,
        resolver: &Resolver,
        domain: &str,
        mode: DaneMode,
        events: Option<&Events>,
    ) -> Result<MxSet, DnsError> {
        if mode != DaneMode::Off {
            match self.validated_exchangers(domain).await {
                Ok(set) => return Ok(set),
                Err(Validated::Dns(e)) => return Err(e),
                Err(Validated::Bogus(what)) if mode == DaneMode::Enforce => {
                    log::warn!("DANE: mail for {domain} deferred: {what} is bogus");
                    if let Some(events) = events {
                        // No MX host to name: the domain's own records failed validation.
                        events.publish(&Event::TlsPolicyOutcome {
                            policy_domain: domain,
                            policy_type: "tlsa",
                            policy_string: &[],
                            mx_host: "",
                            receiving_ip: None,
                            failure: Some("dnssec-invalid"),
                            enforced: true,
                        });
                    }
                    return Err(DnsError::Temporary(format!(
                        "4.7.5 DNSSEC validation failed for {what} (DANE)"
                    )));
                }
                Err(Validated::Bogus(what)) => {
                    log::warn!(
                        "DANE (log-only): {what} is bogus; delivering to {domain} without DANE"
                    );
                }
            }
        }
        Security::plain_exchangers(resolver, domain).await
    }

    /// The MX hosts and their addresses from the plain resolver.
    pub async fn plain_exchangers(resolver: &Resolver, domain: &str) -> Result<MxSet, DnsError> {
        let mut set = MxSet {
            exchangers: Vec::new(),
            secure: false,
            secure_hosts: HashSet::new(),
            last: None,
        };
        for (preference, host) in resolver.mx_hosts(domain).await? {
            let addrs = match resolver.addresses(&host).await {
                Ok(addrs) => addrs,
                Err(e) => {
                    set.last = Some(e);
                    Vec::new()
                }
            };
            set.exchangers.push(Exchanger {
                preference,
                host,
                addrs,
            });
        }
        Ok(set)
    }

    async fn validated_exchangers(&self, domain: &str) -> Result<MxSet, Validated> {
        let Some(validating) = &self.validating else {
            return Err(Validated::Bogus("DANE has no validating resolver".into()));
        };
        let Secured { value, secure } = validating.mx_hosts(domain).await?;
        let mut set = MxSet {
            exchangers: Vec::new(),
            secure,
            secure_hosts: HashSet::new(),
            last: None,
        };
        for (preference, host) in value {
            let addrs = match validating.addresses(&host).await {
                Ok(Secured { value, secure }) => {
                    if secure {
                        set.secure_hosts.insert(host.clone());
                    }
                    value
                }
                Err(Validated::Dns(e)) => {
                    set.last = Some(e);
                    Vec::new()
                }
                Err(bogus) => return Err(bogus),
            };
            set.exchangers.push(Exchanger {
                preference,
                host,
                addrs,
            });
        }
        Ok(set)
    }

    /// The domain's MTA-STS policy, when it has one (cached, fetched or refreshed).
    pub async fn sts_policy(
        &self,
        resolver: &Resolver,
        domain: &str,
    ) -> Option<Arc<mtasts::Policy>> {
        self.sts.as_ref()?.policy(resolver, domain).await
    }

    /// The plan for `host`, one of `domain`'s MX hosts.
    pub async fn plan(
        &self,
        domain: &str,
        host: &str,
        mode: DaneMode,
        dnssec_secure: bool,
        sts: Option<&mtasts::Policy>,
    ) -> Plan {
        let enforce = mode == DaneMode::Enforce;
        let mut plan = Plan {
            domain: domain.to_owned(),
            check: Check::Nothing,
            enforce: false,
            kind: "no-policy-found",
            lines: Arc::from(Vec::new()),
            refusal: None,
        };
        if mode != DaneMode::Off && dnssec_secure {
            match self.tlsa(host).await {
                Ok(records) if !records.is_empty() => {
                    plan.kind = "tlsa";
                    plan.lines = records.iter().map(Tlsa::to_string).collect();
                    plan.check = Check::Dane(records);
                    plan.enforce = enforce;
                    return plan;
                }
                Ok(_) => {}
                Err(why) if enforce => {
                    log::warn!("DANE: {host} for {domain} not used: {why}");
                    plan.kind = "tlsa";
                    plan.enforce = true;
                    plan.refusal = Some((
                        "dnssec-invalid",
                        Reply::local(451, format!("4.7.5 {why} (DANE)")),
                    ));
                    return plan;
                }
                Err(why) => log::warn!("DANE (log-only): {host} for {domain}: {why}"),
            }
        }
        let Some(policy) = sts.filter(|p| p.mode != mtasts::Mode::None) else {
            return plan;
        };
        plan.kind = "sts";
        plan.lines = policy.lines.clone().into();
        plan.enforce = policy.mode == mtasts::Mode::Enforce;
        match &self.webpki {
            Some(verifier) => plan.check = Check::WebPki(verifier.clone()),
            None if plan.enforce => {
                plan.refusal = Some((
                    "validation-failure",
                    Reply::local(451, "4.7.5 MTA-STS: no certificate verifier (mta_sts.ca)"),
                ));
            }
            None => {}
        }
        if !policy.matches(host) {
            let text = format!("{host} is not an MX host of {domain}'s MTA-STS policy");
            if plan.enforce {
                log::warn!("MTA-STS: {text}: not used");
                plan.refusal = Some((
                    "validation-failure",
                    Reply::local(451, format!("4.7.5 {text}")),
                ));
            } else {
                log::warn!("MTA-STS (testing): {text}");
            }
        }
        plan
    }

    /// The usable TLSA records of `host` on the MX port, proven Secure; an insecure RRset
    /// is as if there were none (RFC 7672 §2.2).
    async fn tlsa(&self, host: &str) -> Result<Vec<Tlsa>, String> {
        let Some(validating) = &self.validating else {
            return Err("no validating resolver".into());
        };
        match validating.tlsa(host, self.mx_port).await {
            Ok(Secured {
                value,
                secure: true,
            }) => Ok(value.into_iter().filter(Tlsa::usable).collect()),
            Ok(_) => Ok(Vec::new()),
            Err(Validated::Bogus(what)) => Err(format!("DNSSEC validation failed for {what}")),
            Err(Validated::Dns(e)) => Err(format!("TLSA lookup failed: {e}")),
        }
    }
}

impl Plan {
    /// A fresh guard for one connection attempt to `host`.
    pub fn guard(&self, host: &str) -> Arc<Guard> {
        Arc::new(Guard::new(self.check.clone(), self.enforce, host))
    }

    /// Reports one attempt: `failure` `None` is a success.
    pub fn publish(
        &self,
        events: &Events,
        host: &str,
        addr: Option<SocketAddr>,
        failure: Option<&'static str>,
    ) {
        events.publish(&Event::TlsPolicyOutcome {
            policy_domain: &self.domain,
            policy_type: self.kind,
            policy_string: &self.lines,
            mx_host: host,
            receiving_ip: addr.map(|a| a.ip()),
            failure,
            enforced: self.enforce,
        });
    }
}
