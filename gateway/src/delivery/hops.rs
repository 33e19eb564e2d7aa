//! Next-hop walk: the destination's hops in order, `mx` expanded to MX hosts in preference
//! order and each host to its addresses, until one address gives a usable session.
//!
//! Addresses that could not be connected to are remembered for a while and skipped, so a
//! dead primary does not cost a connect timeout on every new connection while the backup
//! carries the mail.

use super::secure::{Plan, Security};
use crate::config::{NextHop, TlsMode};
use crate::dns::secondary::{self, Us};
use crate::dns::{DnsError, Resolver};
use crate::routing::Destination;
use crate::smtp::client::wire::Reply;
use crate::smtp::client::{HopError, Session, Settings};
use crate::tls::guard::Guard;
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
    /// DANE and MTA-STS for the `mx` hop; without it MX hosts get the route's policy alone.
    security: Option<Arc<Security>>,
}

/// One address to try, with the transport-security plan of its MX host.
struct Target {
    host: String,
    addr: SocketAddr,
    plan: Option<Arc<Plan>>,
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
            security: None,
        }
    }

    /// DANE and MTA-STS for MX hosts (the delivery walker; callouts and probes go without).
    pub fn secured(mut self, security: Arc<Security>) -> Walker {
        self.security = Some(security);
        self
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
            for Target { host, addr, plan } in targets {
                permanent = false;
                if let Some(reply) = self.recently_dead(addr).filter(|_| skip_dead) {
                    last = Some(reply);
                    continue;
                }
                let settings = self.settings();
                // An enforced policy that rules this host out: reported, never contacted.
                if let Some(plan) = &plan
                    && let Some((result, reply)) = &plan.refusal
                {
                    plan.publish(&settings.events, &host, None, Some(result));
                    last = Some(reply.clone());
                    continue;
                }
                let guard = plan.as_ref().map(|p| p.guard(&host));
                let opened =
                    Session::open_guarded(addr, &host, &dest.tls, guard.as_ref(), &settings).await;
                if let (Some(plan), Some(guard)) = (&plan, &guard) {
                    report(plan, guard, &settings, &host, addr, opened.is_ok());
                }
                match opened {
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

    async fn targets(&self, hop: &NextHop, dest: &Destination) -> Result<Vec<Target>, DnsError> {
        let resolver = || {
            self.resolver
                .as_ref()
                .ok_or_else(|| DnsError::Temporary("4.4.3 no DNS resolver configured".into()))
        };
        let plain = |host: String, addr: SocketAddr| Target {
            host,
            addr,
            plan: None,
        };
        match hop {
            NextHop::Addr(addr) => Ok(vec![plain(addr.ip().to_string(), *addr)]),
            NextHop::Host { name, port } => {
                let ips = resolver()?.addresses(name).await?;
                Ok(ips
                    .into_iter()
                    .map(|ip| plain(name.clone(), SocketAddr::new(ip, *port)))
                    .collect())
            }
            NextHop::Mx => self.mx_targets(resolver()?, dest).await,
        }
    }

    /// The MX hosts of the destination's domain, each address with its host's plan.
    async fn mx_targets(
        &self,
        resolver: &Resolver,
        dest: &Destination,
    ) -> Result<Vec<Target>, DnsError> {
        let domain = dest.domain.as_deref().unwrap_or("");
        let security = self.security.as_deref();
        let set = match security {
            Some(s) => {
                let events = &self.settings().events;
                s.exchangers(resolver, domain, dest.dane, Some(events))
                    .await?
            }
            None => Security::plain_exchangers(resolver, domain).await?,
        };
        let us = self.us.read().unwrap_or_else(|e| e.into_inner()).clone();
        let usable = secondary::usable(set.exchangers, &us).map_err(|best| {
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
        let secure_tls = dest.tls.mode != TlsMode::None;
        let sts = match security {
            Some(s) if secure_tls => s.sts_policy(resolver, domain).await,
            _ => None,
        };
        let port = security.map_or(25, |s| s.mx_port);
        let mut targets = Vec::new();
        for e in usable {
            let plan = match security {
                Some(s) if secure_tls => {
                    let proven = set.secure && set.secure_hosts.contains(&e.host);
                    let plan = s.plan(domain, &e.host, dest.dane, proven, sts.as_deref());
                    Some(Arc::new(plan.await))
                }
                _ => None,
            };
            for ip in e.addrs {
                targets.push(Target {
                    host: e.host.clone(),
                    addr: SocketAddr::new(ip, port),
                    plan: plan.clone(),
                });
            }
        }
        match (targets.is_empty(), set.last) {
            // An MX host without addresses is a DNS fault the domain owner may fix.
            (true, Some(e)) => Err(DnsError::Temporary(e.to_string())),
            _ => Ok(targets),
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

/// Reports one attempt under `plan` once it reached the TLS stage, and says in the log when
/// a policy that is not enforced would have stopped the mail.
fn report(
    plan: &Plan,
    guard: &Guard,
    settings: &Settings,
    host: &str,
    addr: SocketAddr,
    opened: bool,
) {
    let Some(verdict) = guard.verdict() else {
        return;
    };
    let failure = verdict.as_ref().err().map(|(result, _)| *result);
    if let Err((result, text)) = &verdict {
        match (plan.enforce, opened) {
            (false, true) if plan.kind != "no-policy-found" => log::warn!(
                "{} not enforced for {}: {host}[{addr}] {result}: {text}; delivered anyway",
                plan.kind,
                plan.domain
            ),
            _ => log::info!(
                "{} for {}: {host}[{addr}] {result}: {text}",
                plan.kind,
                plan.domain
            ),
        }
    }
    plan.publish(&settings.events, host, Some(addr), failure);
}

fn dns_reply(e: &DnsError) -> Reply {
    match e {
        DnsError::Permanent(text) => Reply::local(550, text.clone()),
        DnsError::Temporary(text) => Reply::local(451, text.clone()),
    }
}
