//! DNS for delivery: the hickory resolver built from our configuration, MX expansion
//! (RFC 5321 §5.1, RFC 7505 null MX) and address lookups; `audit/` checks a domain's
//! published mail records (`edgemx dns check`, `edgemx dns plan-mx-change`).
//!
//! Owns every name lookup the gateway makes. The binary is linked statically against glibc,
//! so nothing may use `getaddrinfo`/NSS (`ToSocketAddrs`, `lookup_host`): names are resolved
//! here, with the nameservers from `[dns]` or `/etc/resolv.conf`, never with a built-in public
//! provider. Errors are split into temporary (defer and retry) and permanent (bounce).

pub mod audit;
pub mod dnssec;
pub mod secondary;
#[cfg(test)]
mod tests;

use crate::config;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::LookupIpStrategy;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// SERVFAIL, timeout, unreachable resolver: try again later.
    #[error("{0}")]
    Temporary(String),
    /// NXDOMAIN, null MX, no usable records: the mail cannot be delivered.
    #[error("{0}")]
    Permanent(String),
}

impl DnsError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, DnsError::Permanent(_))
    }
}

/// A resolver shared by every delivery task; cheap to clone (hickory's cache is shared).
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl Resolver {
    /// Builds the resolver from `[dns]`: explicit `ip:port` nameservers over UDP and TCP, or
    /// the system configuration (`/etc/resolv.conf`) when the list is empty.
    pub fn new(config: &config::Dns) -> Result<Resolver, DnsError> {
        let mut builder = builder(&config.nameservers)?;
        let options = builder.options_mut();
        if let Some(timeout) = config.timeout {
            options.timeout = timeout.0;
        }
        // Appliances often have no IPv6 route: try IPv4 addresses first, keep both.
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        let inner = builder
            .build()
            .map_err(|e| DnsError::Temporary(format!("cannot build the resolver: {e}")))?;
        Ok(Resolver { inner })
    }

    /// The underlying hickory resolver (shared cache), for mail-auth's checks.
    pub fn hickory(&self) -> TokioResolver {
        self.inner.clone()
    }

    /// The mail exchangers of `domain`, most preferred first, shuffled within equal
    /// preference. No MX records means the domain itself (implicit MX, preference 0); a null
    /// MX (`0 .`) or a domain that does not exist is a permanent failure.
    pub async fn mx_hosts(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsError> {
        let fqdn = fqdn(domain);
        let lookup = match self.inner.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => lookup,
            Err(e) if no_records(&e) => return self.implicit_mx(domain).await,
            Err(e) => return Err(classify(domain, "MX", &e)),
        };
        let mut hosts: Vec<(u16, String)> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                _ => None,
            })
            .map(|(pref, host)| (pref, host.trim_end_matches('.').to_ascii_lowercase()))
            .collect();
        if hosts.is_empty() {
            return self.implicit_mx(domain).await;
        }
        if hosts.iter().any(|(_, host)| host.is_empty()) {
            // RFC 7505: a null MX says the domain accepts no mail at all.
            return Err(DnsError::Permanent(format!(
                "5.1.10 {domain} does not accept mail (null MX)"
            )));
        }
        fastrand::shuffle(&mut hosts);
        hosts.sort_by_key(|(pref, _)| *pref); // stable: equal preferences stay shuffled
        Ok(hosts)
    }

    /// The addresses of `host`, IPv4 first. A name that does not exist or has no addresses
    /// is permanent; anything else temporary.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        match self.inner.lookup_ip(fqdn(host).as_str()).await {
            Ok(lookup) => {
                let ips: Vec<IpAddr> = lookup.iter().collect();
                if ips.is_empty() {
                    Err(DnsError::Permanent(format!(
                        "5.1.2 {host} has no address records"
                    )))
                } else {
                    Ok(ips)
                }
            }
            Err(e) if no_records(&e) => Err(DnsError::Permanent(format!(
                "5.1.2 {host} has no address records"
            ))),
            Err(e) => Err(classify(host, "A/AAAA", &e)),
        }
    }

    /// The TXT records of `name`, each with its strings joined (RFC 7208 §3.3: a record
    /// split into several strings is one text). No records is an empty list, not an error.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        match self.inner.txt_lookup(fqdn(name).as_str()).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|s| String::from_utf8_lossy(s))
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if no_records(&e) => Ok(Vec::new()),
            Err(e) => Err(classify(name, "TXT", &e)),
        }
    }

    /// Every record of `type` at `name` as answered (with TTLs), for the DNS audit. A name
    /// without such records is an empty list; NXDOMAIN is permanent.
    pub async fn records(&self, name: &str, kind: RecordType) -> Result<Vec<Record>, DnsError> {
        match self.inner.lookup(fqdn(name).as_str(), kind).await {
            Ok(lookup) => Ok(lookup.answers().to_vec()),
            Err(e) if no_records(&e) => Ok(Vec::new()),
            Err(e) => Err(classify(name, &kind.to_string(), &e)),
        }
    }

    async fn implicit_mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsError> {
        // RFC 5321 §5.1: without MX records the domain itself is the only exchanger, provided
        // it has an address; checking here turns "no MX, no A" into one permanent answer.
        self.addresses(domain).await?;
        Ok(vec![(0, domain.trim_end_matches('.').to_ascii_lowercase())])
    }
}

/// A resolver builder asking `nameservers` (`ip:port`, over UDP and TCP), or the system's
/// (`/etc/resolv.conf`) when there are none: the delivery resolver's and the validating
/// one's (`dnssec`).
pub(crate) fn builder(
    nameservers: &[std::net::SocketAddr],
) -> Result<hickory_resolver::ResolverBuilder<TokioRuntimeProvider>, DnsError> {
    let provider = TokioRuntimeProvider::default();
    if nameservers.is_empty() {
        return TokioResolver::builder(provider)
            .map_err(|e| DnsError::Temporary(format!("cannot read /etc/resolv.conf: {e}")));
    }
    let servers = nameservers
        .iter()
        .map(|addr| {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
        })
        .collect();
    Ok(TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(servers),
        provider,
    ))
}

/// Queries are made absolute so `search`/`ndots` never turn `example.com` into
/// `example.com.corp.local`.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// NOERROR with an empty answer: the name exists but has no records of that type.
fn no_records(e: &NetError) -> bool {
    e.is_no_records_found() && !e.is_nx_domain()
}

fn classify(name: &str, kind: &str, e: &NetError) -> DnsError {
    if e.is_nx_domain() {
        DnsError::Permanent(format!("5.1.2 {name} does not exist (NXDOMAIN)"))
    } else {
        DnsError::Temporary(format!("4.4.3 {kind} lookup for {name} failed: {e}"))
    }
}
