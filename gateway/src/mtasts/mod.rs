//! MTA-STS (RFC 8461) for delivery by MX: the `_mta-sts.DOMAIN` TXT record, the policy
//! fetched from `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` (WebPKI-verified, no
//! redirects, 64 KiB and `mta_sts.fetch_timeout` at most) and its persisted cache.
//!
//! Owns finding the policy that applies; applying it to MX hosts and certificates is
//! [`crate::delivery`]'s. A policy is refetched when the record's `id` changes; while DNS
//! or the policy host fail, the cached policy applies until its `max_age` runs out.

mod cache;
mod policy;

pub use cache::Cached;
pub use policy::{Mode, Policy};

use crate::config;
use crate::dns::Resolver;
use crate::fetch::{self, Url};
use cache::Cache;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// RFC 8461 §3.3: policy bodies larger than this are refused.
const MAX_POLICY: u64 = 64 << 10;

pub struct Sts {
    port: u16,
    timeout: Duration,
    /// WebPKI roots plus `mta_sts.ca`; `None` when `ca` does not load (fetches fail).
    tls: Option<Arc<rustls::ClientConfig>>,
    cache: Cache,
    /// One fetch per domain at a time: deliveries that find the same new `id` wait for the
    /// first one's fetch instead of each fetching the policy again.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What DNS said about the `_mta-sts` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Id(String),
    Absent,
    Failed(String),
}

impl Sts {
    /// `dir`: where the cache file lives (`data_dir`); `None` keeps it in memory.
    pub fn new(config: &config::MtaSts, dir: Option<&Path>) -> Sts {
        let tls = match crate::tls::webpki_verifier(config.ca.as_deref()) {
            Ok(verifier) => {
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .ok()
                    .map(|b| {
                        Arc::new(
                            b.dangerous()
                                .with_custom_certificate_verifier(verifier)
                                .with_no_client_auth(),
                        )
                    })
            }
            Err(e) => {
                log::error!("MTA-STS: mta_sts.ca unusable: {e}");
                None
            }
        };
        Sts {
            port: config.port,
            timeout: config.fetch_timeout.0,
            tls,
            cache: Cache::open(dir),
            fetching: Mutex::new(HashMap::new()),
        }
    }

    /// The policy that applies to mail for `domain` now, if any.
    pub async fn policy(&self, resolver: &Resolver, domain: &str) -> Option<Arc<Policy>> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let now = crate::time::unix_now();
        let cached = self.cache.get(&domain).filter(|c| c.fresh(now));
        let id = match record(resolver, &domain).await {
            Record::Id(id) => id,
            // RFC 8461 §5.1: the record gone or DNS failing does not end a cached policy.
            Record::Absent => return cached.map(|c| Arc::new(c.policy.clone())),
            Record::Failed(why) => {
                log::info!("MTA-STS: _mta-sts.{domain}: {why}; using the cache");
                return cached.map(|c| Arc::new(c.policy.clone()));
            }
        };
        if let Some(c) = cached.as_ref().filter(|c| c.policy.id == id) {
            return Some(Arc::new(c.policy.clone()));
        }
        let lock = self
            .fetching
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(domain.clone())
            .or_default()
            .clone();
        let one = lock.lock().await;
        let fetched = self.fetch_once(resolver, &domain, &id, cached, now).await;
        drop(one);
        let mut fetching = self.fetching.lock().unwrap_or_else(|e| e.into_inner());
        // The last holder removes the lock: the map holds no domain nobody fetches.
        if Arc::strong_count(&lock) <= 2 {
            fetching.remove(&domain);
        }
        fetched
    }

    /// Under the domain's fetch lock: the policy another delivery fetched meanwhile, or a
    /// fetch of our own.
    async fn fetch_once(
        &self,
        resolver: &Resolver,
        domain: &str,
        id: &str,
        cached: Option<Arc<Cached>>,
        now: u64,
    ) -> Option<Arc<Policy>> {
        if let Some(c) = self
            .cache
            .get(domain)
            .filter(|c| c.policy.id == id && c.fresh(now))
        {
            return Some(Arc::new(c.policy.clone()));
        }
        match self.fetch(resolver, domain, id).await {
            Ok(policy) => {
                let entry = Cached {
                    policy: policy.clone(),
                    fetched: now,
                };
                self.cache.put(domain, entry).await;
                Some(Arc::new(policy))
            }
            Err(why) => {
                log::warn!("MTA-STS: policy of {domain} (id {id}): {why}; using the cache");
                cached.map(|c| Arc::new(c.policy.clone()))
            }
        }
    }

    /// The cached entry of `domain`, fresh or expired (for `show tls policy`).
    pub fn cached(&self, domain: &str) -> Option<Arc<Cached>> {
        self.cache
            .get(&domain.trim_end_matches('.').to_ascii_lowercase())
    }

    async fn fetch(&self, resolver: &Resolver, domain: &str, id: &str) -> Result<Policy, String> {
        let tls = self
            .tls
            .clone()
            .ok_or("no TLS configuration (mta_sts.ca)")?;
        let url = Url {
            tls: true,
            host: format!("mta-sts.{domain}"),
            port: self.port,
            path: "/.well-known/mta-sts.txt".into(),
        };
        let get = async {
            let (mut body, size) = fetch::get_with(&url, MAX_POLICY, Some(resolver), Some(tls))
                .await
                .map_err(|e| e.to_string())?;
            let mut text = String::with_capacity(size as usize);
            body.read_to_string(&mut text)
                .await
                .map_err(|e| format!("reading the policy: {e}"))?;
            Ok::<String, String>(text)
        };
        let text = tokio::time::timeout(self.timeout, get)
            .await
            .map_err(|_| format!("fetch timed out after {:?}", self.timeout))??;
        Policy::parse(id, &text)
    }
}

/// The `id` of the `_mta-sts` record of `domain` (RFC 8461 §3.1: exactly one record
/// starting `v=STSv1`, else there is none).
pub async fn record(resolver: &Resolver, domain: &str) -> Record {
    use mail_auth::common::parse::TxtRecordParser;
    let texts = match resolver.txt(&format!("_mta-sts.{domain}")).await {
        Ok(texts) => texts,
        Err(e) if e.is_permanent() => return Record::Absent,
        Err(e) => return Record::Failed(e.to_string()),
    };
    let mut ids = texts
        .iter()
        .filter(|t| t.starts_with("v=STSv1"))
        .filter_map(|t| mail_auth::mta_sts::MtaSts::parse(t.as_bytes()).ok());
    match (ids.next(), ids.next()) {
        (Some(record), None) => Record::Id(record.id),
        _ => Record::Absent,
    }
}
