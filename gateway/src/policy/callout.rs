//! The SMTP callout: asks a route's backend whether it knows a recipient (EHLO, `MAIL
//! FROM:<>`, `RCPT TO`, RSET, QUIT) with the route's next hops, failover and TLS policy,
//! and remembers the answer: "known" for `positive_ttl`, "unknown" for `negative_ttl`.
//! Failures to ask (unreachable, timeout, 4xx) are never cached.

use crate::config::{self, Config};
use crate::delivery::Walker;
use crate::dns::Resolver;
use crate::routing::{Destination, Route, RouteId};
use crate::smtp::client::Settings;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Known,
    /// The backend refused the recipient (5xx to RCPT).
    Unknown,
    /// The backend could not be asked; the reason for the log.
    Unavailable(String),
}

/// Route and lower-case address → (known, until when).
type Cache = HashMap<(RouteId, Box<str>), (bool, Instant)>;

pub struct Callout {
    config: Arc<Config>,
    settings: config::routes::Callout,
    walker: Walker,
    cache: Mutex<Cache>,
}

impl Callout {
    /// `events` hears of the TLS sessions callouts open.
    pub fn new(config: &Arc<Config>, events: &crate::observe::events::Events) -> Callout {
        let resolver = Resolver::new(&config.dns).ok();
        let settings = config.routing.callout.clone();
        // An unreachable backend address is skipped for a while, so that a dead backend
        // costs RCPT one connect timeout, not one per recipient.
        let dead_for = settings.negative_ttl.0.min(Duration::from_secs(60));
        Callout {
            walker: Walker::new(
                Arc::new(Settings::new(config, events)),
                resolver,
                &config.hostname,
                dead_for,
            ),
            config: config.clone(),
            settings,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the backend of `route` (id `id`) knows `address` (lower case).
    pub async fn verdict(&self, id: RouteId, route: &Route, address: &str) -> Verdict {
        let key = (id, Box::from(address));
        if let Some(known) = self.cached(&key) {
            return if known {
                Verdict::Known
            } else {
                Verdict::Unknown
            };
        }
        let limit = self.settings.timeout.0;
        let verdict = match tokio::time::timeout(limit, self.ask(route, address)).await {
            Ok(verdict) => verdict,
            Err(_) => Verdict::Unavailable(format!("no answer within {limit:?}")),
        };
        let ttl = match verdict {
            Verdict::Known => self.settings.positive_ttl.0,
            Verdict::Unknown => self.settings.negative_ttl.0,
            Verdict::Unavailable(_) => return verdict,
        };
        self.remember(key, verdict == Verdict::Known, ttl);
        verdict
    }

    async fn ask(&self, route: &Route, address: &str) -> Verdict {
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
        let dest = Destination::new(&self.config, Some(route), domain);
        let mut session = match self.walker.open(&dest).await {
            Ok(session) => session,
            Err(e) => return Verdict::Unavailable(e.reply.text()),
        };
        let probed = session.probe(address).await;
        // QUIT off the RCPT path: the verdict is known, the client should not wait for it.
        tokio::spawn(session.quit());
        match probed {
            Ok(Ok(rcpt)) if rcpt.is_positive() => Verdict::Known,
            Ok(Ok(rcpt)) if rcpt.is_permanent() => {
                log::info!("callout: {} refused <{address}>: {rcpt}", route.name);
                Verdict::Unknown
            }
            Ok(Ok(rcpt)) => Verdict::Unavailable(format!("RCPT answered {rcpt}")),
            Ok(Err(mail)) => Verdict::Unavailable(format!("MAIL FROM:<> answered {mail}")),
            Err(why) => Verdict::Unavailable(why),
        }
    }

    fn cached(&self, key: &(RouteId, Box<str>)) -> Option<bool> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(key) {
            Some(&(known, until)) if until > Instant::now() => Some(known),
            Some(_) => {
                cache.remove(key);
                None
            }
            None => None,
        }
    }

    fn remember(&self, key: (RouteId, Box<str>), known: bool, ttl: Duration) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.settings.max_cached.max(1) {
            let now = Instant::now();
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= self.settings.max_cached.max(1) {
                // Still full of live entries: start over rather than grow without bound.
                cache.clear();
            }
        }
        cache.insert(key, (known, Instant::now() + ttl));
    }
}
