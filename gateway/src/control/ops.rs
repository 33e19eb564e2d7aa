//! Operational views for the console: status, certificate and CPU crypto features, the
//! route a recipient would take, and a probe of a next hop (connect, EHLO, QUIT).

use super::admin::Admin;
use super::reply::{
    DomainQueue, Done, InstalledCert, PendingConfirm, Probe, QueueStatus, Route, Status, Tls,
    TlsCertificate,
};
use crate::config::{Config, NextHop};
use crate::envelope::RcptStatus;
use crate::routing::Destination;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub async fn status(admin: &Admin) -> Result<Status, String> {
    let config = admin.live.borrow().clone();
    let now = crate::time::unix_now();
    let envelopes = admin.queue.list().await.map_err(|e| e.to_string())?;
    let mut by_domain: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let (mut deferred, mut oldest) = (0u64, None::<u64>);
    for env in &envelopes {
        oldest = Some(oldest.map_or(env.received, |o| o.min(env.received)));
        for r in &env.recipients {
            let slot = by_domain.entry(r.domain.clone()).or_default();
            match r.status {
                RcptStatus::Pending => slot.0 += 1,
                RcptStatus::Deferred { .. } => {
                    slot.1 += 1;
                    deferred += 1;
                }
                _ => {}
            }
        }
    }
    let stats = admin.queue.stats();
    let domains = by_domain
        .into_iter()
        .map(|(domain, (pending, deferred))| DomainQueue {
            domain,
            pending,
            deferred,
        })
        .collect();
    Ok(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: config.hostname.clone(),
        uptime: admin.started.elapsed().as_secs(),
        revision: admin.newest().map(|r| r.number),
        pending_confirm: admin
            .pending_view()
            .map(|(revision, deadline)| PendingConfirm {
                revision,
                rolls_back_in: deadline.saturating_sub(now),
            }),
        connections: admin.limiter.open() as u64,
        queue: QueueStatus {
            messages: stats.messages,
            bytes: stats.bytes,
            deferred_recipients: deferred,
            oldest_age: oldest.map(|o| now.saturating_sub(o)),
            commits: admin.queue.commits(),
            failing: admin.queue.failing().map(|e| e.to_string()),
            domains,
        },
    })
}

pub fn tls(config: &Config) -> Result<Tls, String> {
    let first = config
        .tls
        .certificate
        .clone()
        .unwrap_or_else(|| config.data_dir.join("tls").join("cert.pem"));
    let mut certificates = vec![certificate(&first, config.tls.certificate.is_none())?];
    if let Some(rsa) = &config.tls.rsa_certificate {
        certificates.push(certificate(rsa, false)?);
    }
    let suites: Vec<String> = rustls::crypto::ring::default_provider()
        .cipher_suites
        .iter()
        .filter_map(|s| s.suite().as_str().map(str::to_string))
        .collect();
    let cpu = crate::tls::cpu::Features::detect();
    Ok(Tls {
        certificates,
        versions: vec!["TLSv1.3".into(), "TLSv1.2".into()],
        cipher_suites: suites,
        cpu: cpu
            .listed()
            .into_iter()
            .map(|(name, has)| (name.to_string(), has))
            .collect(),
        code_paths: crate::tls::cpu::paths(&cpu)
            .into_iter()
            .map(|(name, path)| (name.to_string(), path.to_string()))
            .collect(),
    })
}

fn certificate(path: &std::path::Path, generated: bool) -> Result<TlsCertificate, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let chain = crate::tls::pem_certificates(&pem).unwrap_or_default();
    let leaf = chain
        .first()
        .ok_or_else(|| format!("{}: no PEM certificate", path.display()))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
    let fingerprint: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let (subject, issuer, names) = super::der::names(leaf.as_ref()).unwrap_or_default();
    Ok(TlsCertificate {
        path: path.display().to_string(),
        generated,
        key: super::der::key(leaf.as_ref()).unwrap_or_default(),
        chain_length: chain.len() as u64,
        sha256: fingerprint.join(":"),
        subject,
        issuer,
        names,
        not_after: super::der::not_after(leaf.as_ref()),
    })
}

/// `test route ADDRESS [from IP] [user NAME]`: the route, rewriting, next hops and TLS
/// policy mail to `address` would get (the same lookup as RCPT: maps, then the domain), and
/// what RCPT would answer this client (its address, the user it authenticated as).
pub fn route(
    config: &Config,
    address: &str,
    client: Option<std::net::IpAddr>,
    user: Option<&str>,
) -> Result<Route, String> {
    let domain = address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or(address)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if domain.is_empty() || !crate::config::valid_hostname(&domain) {
        return Err(format!("{address}: not an address or domain"));
    }
    let address = if address.contains('@') {
        address.to_string()
    } else {
        format!("postmaster@{domain}")
    };
    let table = std::sync::Arc::new(crate::routing::Table::new(config));
    let maps = crate::routing::Maps::load(table.clone(), config).map_err(|e| e.to_string())?;
    let routed = crate::policy::route(&table, &maps.current(), &address, false);
    let route = routed.route.map(|id| table.route(id));
    let dest = Destination::new(config, route, &routed.recipient.domain);
    let rewritten = (routed.recipient.address != address).then(|| routed.recipient.address.clone());
    let accepted = table.serves(&domain);
    Ok(Route {
        accepted,
        verdict: if accepted {
            "accepted (a domain we serve)".to_string()
        } else {
            relay_verdict(config, client, user)
        },
        domain,
        route: route.map(|r| r.name.to_string()),
        next_hops: dest.hops.iter().map(|h| h.to_string()).collect(),
        tls: format!("{:?}", dest.tls.mode).to_lowercase(),
        rewriting: rewritten.map_or("none".to_string(), |r| format!("to {r}")),
    })
}

/// What RCPT answers for a domain we do not serve, given what the client showed.
fn relay_verdict(config: &Config, client: Option<std::net::IpAddr>, user: Option<&str>) -> String {
    use crate::policy::relay::{Access, RelayGrant, outside};
    let access = Access::new(config);
    let grant = match (user, client) {
        (Some(name), _) if !access.users.exists(name) => {
            return format!(
                "refused: no user {name} in {}, so AUTH fails (535 5.7.8)",
                access.users.path().display()
            );
        }
        (Some(name), _) => Some(RelayGrant::User(name.to_string())),
        (None, Some(ip)) => access.network(ip),
        (None, None) => {
            return "refused unless the client may relay (say `from IP` or `user NAME`)".into();
        }
    };
    match (outside(grant.as_ref()), grant) {
        (Ok(()), Some(grant)) => format!("relayed ({grant})"),
        (Err(denial), _) => format!("refused: {} ({})", denial.reply, denial.reason),
        (Ok(()), None) => "refused".into(),
    }
}

/// `request dkim keygen`: writes a new key where `[[auth.dkim]]` finds it by default and
/// answers with the zone-file line to publish. An existing key is never replaced.
pub fn dkim_keygen(
    config: &Config,
    domain: &str,
    selector: &str,
    ed25519: bool,
) -> Result<Done, String> {
    use crate::dkim::keygen::{self, Algorithm};
    let (domain, selector) = (
        domain.trim_end_matches('.').to_ascii_lowercase(),
        selector.to_ascii_lowercase(),
    );
    for (what, name) in [("domain", &domain), ("selector", &selector)] {
        if !crate::config::valid_hostname(name) {
            return Err(format!("{what} {name:?} is not a valid DNS name"));
        }
    }
    let path = crate::config::auth::default_key_path(&config.data_dir, &domain, &selector);
    if path.exists() {
        return Err(format!(
            "{} exists: a key in service is never replaced (pick a new selector)",
            path.display()
        ));
    }
    let algorithm = if ed25519 {
        Algorithm::Ed25519
    } else {
        Algorithm::Rsa
    };
    let pair = keygen::generate(algorithm)?;
    keygen::write_key(&path, &pair.pem())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    log::info!(
        "DKIM key {selector}._domainkey.{domain} generated in {}",
        path.display()
    );
    Ok(Done::new(keygen::zone_entry(
        &domain,
        &selector,
        &pair.record(),
    )))
}

/// The record types `dns lookup` asks for by name.
pub const LOOKUP_TYPES: &[&str] = &[
    "a", "aaaa", "mx", "txt", "tlsa", "ptr", "ns", "cname", "soa", "srv",
];

/// `dns lookup NAME [TYPE]`: the answer as `name TTL TYPE data` lines, from a fresh
/// resolver on the configured nameservers (nothing cached hides a change just made). An
/// address is looked up as PTR; without a type, a name as A and AAAA.
pub async fn dns_lookup(config: &Config, name: &str, kind: &str) -> Result<Vec<String>, String> {
    use hickory_resolver::proto::rr::RecordType;
    let resolver = crate::dns::Resolver::new(&config.dns).map_err(|e| e.to_string())?;
    let (name, kinds) = match name.parse::<std::net::IpAddr>() {
        Ok(ip) => (reverse_name(ip), vec![RecordType::PTR]),
        Err(_) if kind.is_empty() => (name.to_string(), vec![RecordType::A, RecordType::AAAA]),
        Err(_) => {
            let kind: RecordType = kind
                .to_ascii_uppercase()
                .parse()
                .map_err(|_| format!("{kind}: not a record type"))?;
            (name.to_string(), vec![kind])
        }
    };
    let mut lines = Vec::new();
    for kind in kinds {
        let records = resolver
            .records(&name, kind)
            .await
            .map_err(|e| e.to_string())?;
        if records.is_empty() {
            lines.push(format!("{name}: no {kind} records"));
        }
        for r in records {
            lines.push(format!(
                "{} {} {} {}",
                r.name,
                r.ttl,
                r.record_type(),
                r.data
            ));
        }
    }
    Ok(lines)
}

/// `192.0.2.1` → `1.2.0.192.in-addr.arpa.`; IPv6 nibble by nibble under `ip6.arpa.`.
fn reverse_name(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        std::net::IpAddr::V6(v6) => {
            let mut out = String::new();
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            out + "ip6.arpa."
        }
    }
}

/// Connect, read the banner, EHLO, QUIT: the whole transcript and the time it took.
pub async fn probe(config: std::sync::Arc<Config>, hop: &str) -> Result<Probe, String> {
    let (host, port) = match NextHop::parse(hop)? {
        NextHop::Mx => {
            return Err("`mx` names no host: probe one of the domain's MX hosts by name".into());
        }
        NextHop::Addr(addr) => (addr.ip().to_string(), addr.port()),
        NextHop::Host { name, port } => (name, port),
    };
    let ips = match host.parse() {
        Ok(ip) => vec![ip],
        Err(_) => {
            let resolver = crate::dns::Resolver::new(&config.dns).map_err(|e| e.to_string())?;
            resolver.addresses(&host).await.map_err(|e| e.to_string())?
        }
    };
    let ip = *ips.first().ok_or("no address")?;
    let started = Instant::now();
    let limit = config.delivery.connect_timeout.0;
    let stream = tokio::time::timeout(limit, TcpStream::connect((ip, port)))
        .await
        .map_err(|_| format!("{ip}:{port}: no connection within {limit:?}"))?
        .map_err(|e| format!("{ip}:{port}: {e}"))?;
    let connected = started.elapsed();
    let mut transcript = vec![format!(
        "connected to {ip}:{port} in {} ms",
        connected.as_millis()
    )];
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let step = Duration::from_secs(30);
    read_reply(&mut read, &mut transcript, step).await?;
    let ehlo = format!("EHLO {}\r\n", config.hostname);
    for command in [ehlo.as_str(), "QUIT\r\n"] {
        transcript.push(format!("> {}", command.trim_end()));
        write
            .write_all(command.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        read_reply(&mut read, &mut transcript, step).await?;
    }
    Ok(Probe {
        transcript,
        ms: started.elapsed().as_millis() as u64,
    })
}

/// Reads one reply with the SMTP client's reader (line length and line count capped) and
/// adds its lines to the transcript as they were received.
async fn read_reply(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    transcript: &mut Vec<String>,
    limit: Duration,
) -> Result<(), String> {
    let reply = crate::smtp::client::wire::read_reply(read, limit)
        .await
        .map_err(|e| match e {
            crate::smtp::client::wire::WireError::Timeout => {
                format!("no reply within {} s", limit.as_secs())
            }
            other => other.to_string(),
        })?;
    let last = reply.lines.len().saturating_sub(1);
    for (i, text) in reply.lines.iter().enumerate() {
        let separator = if i < last { "-" } else { " " };
        match text.is_empty() && i == last {
            true => transcript.push(format!("< {}", reply.code)),
            false => transcript.push(format!("< {}{separator}{text}", reply.code)),
        }
    }
    Ok(())
}

/// Checks the pair by building a server configuration from it, then stores it beside the
/// generated certificate; returns the paths to put in `tls.certificate`/`tls.private_key`.
/// Replaces the generated self-signed certificate; a configured one is renewed by its
/// owner (install the new files, or `install-cert` and commit).
pub fn renew_cert(config: &Config) -> Result<(), String> {
    if let Some(path) = &config.tls.certificate {
        return Err(format!(
            "tls.certificate = {} is configured: renew it at its issuer and install it",
            path.display()
        ));
    }
    crate::tls::self_signed(&config.hostname, &config.data_dir.join("tls"))
        .map_err(|e| e.to_string())
}

pub fn install_cert(config: &Config, cert: &str, key: &str) -> Result<InstalledCert, String> {
    let chain =
        crate::tls::pem_certificates(cert.as_bytes()).map_err(|e| format!("certificate: {e}"))?;
    if chain.is_empty() {
        return Err("certificate: no -----BEGIN CERTIFICATE----- block found".into());
    }
    let der = crate::tls::pem_private_key(key.as_bytes())
        .map_err(|e| format!("key: {e}"))?
        .ok_or("key: no -----BEGIN PRIVATE KEY----- block found")?;
    rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, der)
    .map_err(|e| format!("certificate and key do not form a pair: {e}"))?;
    let dir = config.data_dir.join("tls");
    let (cert_path, key_path) = (
        dir.join("installed-cert.pem"),
        dir.join("installed-key.pem"),
    );
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&dir)?;
        crate::config::store::write_atomic(&key_path, key.as_bytes())?;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
        crate::config::store::write_atomic(&cert_path, cert.as_bytes())
    };
    write().map_err(|e| format!("cannot store the certificate: {e}"))?;
    Ok(InstalledCert {
        certificate: cert_path.display().to_string(),
        private_key: key_path.display().to_string(),
    })
}
