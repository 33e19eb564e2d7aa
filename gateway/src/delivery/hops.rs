//! Next-hop walk: the destination's hops in order, `mx` expanded to MX hosts in preference
//! order and each host to its addresses, until one address gives a usable session.
//!
//! Addresses that could not be connected to are remembered for a while and skipped, so a
//! dead primary does not cost a connect timeout on every new connection while the backup
//! carries the mail.

use crate::config::NextHop;
use crate::dns::secondary::{self, Exchanger, Us};
use crate::dns::{DnsError, Resolver};
use crate::routing::Destination;
use crate::smtp::client::wire::Reply;
use crate::smtp::client::{HopError, Session, Settings};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The walk failed: no hop could be used.
#[derive(Debug, Clone)]
pub struct Unreachable {
    pub reply: Reply,
    /// Every hop failed permanently in DNS (NXDOMAIN, null MX): bounce, do not retry.
    pub permanent: bool,
}

pub struct Walker {
    /// Our EHLO name and the timeouts; replaced by a console commit ([`Walker::reconfigure`]).
    settings: RwLock<Arc<Settings>>,
    pub resolver: Option<Resolver>,
    /// Our names and addresses: MX records at or below our preference are dropped
    /// (RFC 5321 §5.1).
    us: RwLock<Us>,
    /// How long an unreachable address is skipped.
    pub dead_for: Duration,
    dead: Mutex<HashMap<SocketAddr, (Instant, Reply)>>,
}

impl Walker {
    pub fn new(
        settings: Arc<Settings>,
        resolver: Option<Resolver>,
        hostname: &str,
        dead_for: Duration,
    ) -> Walker {
        Walker {
            settings: RwLock::new(settings),
            resolver,
            us: RwLock::new(Us::new(hostname, &[])),
            dead_for,
            dead: Mutex::new(HashMap::new()),
        }
    }

    /// Also counts `names` (host names or addresses) as this gateway.
    pub fn our_names(self, hostname: &str, names: &[String]) -> Walker {
        *self.us.write().unwrap_or_else(|e| e.into_inner()) = Us::new(hostname, names);
        self
    }

    /// A committed configuration: new sessions say the new host name in EHLO, use the new
    /// timeouts and count the new names as ours. Sessions already open (cached
    /// connections) keep what they greeted with until they close.
    pub fn reconfigure(&self, config: &crate::config::Config) {
        let mut settings = self.settings.write().unwrap_or_else(|e| e.into_inner());
        *settings = Arc::new(Settings::new(config, &settings.events));
        drop(settings);
        *self.us.write().unwrap_or_else(|e| e.into_inner()) =
            Us::new(&config.hostname, &config.flow.our_names);
    }

    /// The session settings in force now.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub async fn open(&self, dest: &Destination) -> Result<Session, Unreachable> {
        self.walk(dest, true).await
    }

    /// The active health check: connect, greeting, EHLO (and STARTTLS when the policy asks
    /// for it), QUIT, trying even addresses recently found dead. A success clears the
    /// address from the dead list so mail uses it at once.
    pub async fn check(&self, dest: &Destination) -> Result<(), Reply> {
        match self.walk(dest, false).await {
            Ok(session) => {
                self.revive(session.peer());
                session.quit().await;
                Ok(())
            }
            Err(e) => Err(e.reply),
        }
    }

    async fn walk(&self, dest: &Destination, skip_dead: bool) -> Result<Session, Unreachable> {
        let mut last: Option<Reply> = None;
        let mut permanent = true;
        for hop in &dest.hops {
            let targets = match self.targets(hop, dest).await {
                Ok(targets) => targets,
                Err(e) => {
                    permanent &= e.is_permanent();
                    log::info!("next hop {hop} for {dest}: {e}");
                    last = Some(dns_reply(&e));
                    continue;
                }
            };
            for (host, addr) in targets {
                permanent = false;
                if let Some(reply) = self.recently_dead(addr).filter(|_| skip_dead) {
                    last = Some(reply);
                    continue;
                }
                let settings = self.settings();
                match Session::open(addr, &host, &dest.tls, &settings).await {
                    Ok(session) => return Ok(session),
                    Err(HopError { reply, unreachable }) => {
                        log::info!("next hop {host}[{addr}] for {dest} failed: {reply}");
                        if unreachable {
                            self.mark_dead(addr, &reply);
                        }
                        last = Some(reply);
                    }
                }
            }
        }
        let reply =
            last.unwrap_or_else(|| Reply::local(451, format!("4.4.4 no next hop for {dest}")));
        Err(Unreachable {
            permanent: permanent && reply.is_permanent(),
            reply,
        })
    }

    async fn targets(
        &self,
        hop: &NextHop,
        dest: &Destination,
    ) -> Result<Vec<(String, SocketAddr)>, DnsError> {
        let resolver = || {
            self.resolver
                .as_ref()
                .ok_or_else(|| DnsError::Temporary("4.4.3 no DNS resolver configured".into()))
        };
        match hop {
            NextHop::Addr(addr) => Ok(vec![(addr.ip().to_string(), *addr)]),
            NextHop::Host { name, port } => {
                let ips = resolver()?.addresses(name).await?;
                Ok(ips
                    .into_iter()
                    .map(|ip| (name.clone(), SocketAddr::new(ip, *port)))
                    .collect())
            }
            NextHop::Mx => {
                let domain = dest.domain.as_deref().unwrap_or("");
                let resolver = resolver()?;
                let mut mx = Vec::new();
                let mut last = None;
                for (preference, host) in resolver.mx_hosts(domain).await? {
                    let addrs = match resolver.addresses(&host).await {
                        Ok(addrs) => addrs,
                        Err(e) => {
                            last = Some(e);
                            Vec::new()
                        }
                    };
                    mx.push(Exchanger {
                        preference,
                        host,
                        addrs,
                    });
                }
                let us = self.us.read().unwrap_or_else(|e| e.into_inner()).clone();
                let usable = secondary::usable(mx, &us).map_err(|best| {
                    log::warn!(
                        "mail for {domain} deferred: this gateway ({} at MX preference {}) is \
                         the most preferred MX host, so there is no better host to hand it to; \
                         fix the MX records or the domain's role/next_hops (RFC 5321 §5.1: \
                         never delivered to ourselves or an equal or less-preferred MX)",
                        best.host,
                        best.preference
                    );
                    DnsError::Temporary(format!(
                        "4.4.6 mail for {domain} loops back to myself ({}, MX preference {})",
                        best.host, best.preference
                    ))
                })?;
                let targets: Vec<(String, SocketAddr)> = usable
                    .into_iter()
                    .flat_map(|e| {
                        let host = e.host;
                        e.addrs
                            .into_iter()
                            .map(move |ip| (host.clone(), SocketAddr::new(ip, 25)))
                    })
                    .collect();
                match (targets.is_empty(), last) {
                    // An MX host without addresses is a DNS fault the domain owner may fix.
                    (true, Some(e)) => Err(DnsError::Temporary(e.to_string())),
                    _ => Ok(targets),
                }
            }
        }
    }

    /// Forgets every unreachable address (an operator asked to retry now).
    pub fn forget_failures(&self) {
        self.dead.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn recently_dead(&self, addr: SocketAddr) -> Option<Reply> {
        let mut dead = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        match dead.get(&addr) {
            Some((until, reply)) if *until > Instant::now() => Some(reply.clone()),
            Some(_) => {
                dead.remove(&addr);
                None
            }
            None => None,
        }
    }

    fn revive(&self, addr: SocketAddr) {
        self.dead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr);
    }

    fn mark_dead(&self, addr: SocketAddr, reply: &Reply) {
        let mut dead = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        dead.insert(addr, (Instant::now() + self.dead_for, reply.clone()));
    }
}

fn dns_reply(e: &DnsError) -> Reply {
    match e {
        DnsError::Permanent(text) => Reply::local(550, text.clone()),
        DnsError::Temporary(text) => Reply::local(451, text.clone()),
    }
}
