//! The RCPT probe of one next hop: resolve it as delivery would, open a session (TLS as the
//! route's policy says), `MAIL`, `RCPT` to the probe address, `RSET`, `QUIT`.

use crate::config::{NextHop, Probe, TlsPolicy};
use crate::dns::Resolver;
use crate::dns::secondary::{self, Exchanger, Us};
use crate::smtp::client::{Session, Settings};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

pub struct Target {
    pub key: String,
    pub hop: NextHop,
    pub domain: Option<String>,
    pub tls: TlsPolicy,
    pub sender: String,
    pub probe: Probe,
    /// Who we are: an `mx` hop never probes ourselves or equal/less-preferred hosts.
    pub us: Us,
}

impl super::Probes {
    pub(super) async fn rcpt(
        self: Arc<Self>,
        target: Target,
        settings: Arc<Settings>,
        resolver: Option<Resolver>,
        shutdown: CancellationToken,
    ) {
        loop {
            let started = Instant::now();
            let limit = target.probe.timeout.0;
            let result = tokio::select! {
                _ = shutdown.cancelled() => break,
                result = tokio::time::timeout(limit, once(&target, &settings, resolver.as_ref())) => {
                    result.unwrap_or_else(|_| Err(format!("no answer within {:?}", limit)))
                }
            };
            self.record(&target.key, result, started);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(target.probe.interval.0) => {}
            }
        }
        self.unregister(&target.key);
    }
}

/// One probe: every address of the hop in turn until one accepts the recipient. `Ok` holds
/// the peer and its RCPT reply; `Err` the last failure.
async fn once(
    target: &Target,
    settings: &Arc<Settings>,
    resolver: Option<&Resolver>,
) -> Result<String, String> {
    let peers = peers(target, resolver).await?;
    let mut last = String::from("no address to probe");
    for (peer, host) in peers {
        let who = if host == peer.ip().to_string() {
            peer.to_string()
        } else {
            format!("{host}[{}]:{}", peer.ip(), peer.port())
        };
        let mut session = match Session::open(peer, &host, &target.tls, settings).await {
            Ok(session) => session,
            Err(e) => {
                last = e.reply.text();
                continue;
            }
        };
        let reply = session
            .probe_rcpt(&target.sender, &target.probe.recipient)
            .await;
        session.quit().await;
        match reply {
            Ok(reply) if reply.is_positive() => return Ok(format!("{who}: {}", reply.text())),
            Ok(reply) => last = format!("{who}: {}", reply.text()),
            Err(e) => last = format!("{who}: {e}"),
        }
    }
    Err(last)
}

/// The addresses to try, with the name used for SNI and logs, in delivery's order.
async fn peers(
    target: &Target,
    resolver: Option<&Resolver>,
) -> Result<Vec<(SocketAddr, String)>, String> {
    let resolver = || resolver.ok_or_else(|| "no DNS resolver configured".to_string());
    match &target.hop {
        NextHop::Addr(addr) => Ok(vec![(*addr, addr.ip().to_string())]),
        NextHop::Host { name, port } => {
            let ips = resolver()?
                .addresses(name)
                .await
                .map_err(|e| e.to_string())?;
            Ok(ips
                .into_iter()
                .map(|ip| (SocketAddr::new(ip, *port), name.clone()))
                .collect())
        }
        NextHop::Mx => {
            let domain = target.domain.as_deref().unwrap_or_default();
            let hosts = resolver()?
                .mx_hosts(domain)
                .await
                .map_err(|e| e.to_string())?;
            let mut mx = Vec::new();
            for (preference, host) in hosts {
                let addrs = resolver()?.addresses(&host).await.unwrap_or_default();
                mx.push(Exchanger {
                    preference,
                    host,
                    addrs,
                });
            }
            let usable = secondary::usable(mx, &target.us).map_err(|best| {
                format!(
                    "we are the most preferred MX ({} at {}): no host to probe",
                    best.host, best.preference
                )
            })?;
            Ok(usable
                .into_iter()
                .flat_map(|e| {
                    let host = e.host;
                    e.addrs
                        .into_iter()
                        .map(move |ip| (SocketAddr::new(ip, 25), host.clone()))
                })
                .collect())
        }
    }
}
