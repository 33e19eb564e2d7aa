//! What the admin listener reads at request time: the gateway's health and the queue seen
//! per destination.
//!
//! Owns the health rule: the gateway is healthy when it is not shutting down, has room for
//! another connection, the queue admits a message (quotas, free-space reserve, not closed)
//! and the store answers a read. It only reads; it never changes the queue.

use super::metrics::{Metrics, Scrape};
use crate::config::Config;
use crate::envelope::QueueId;
use crate::queue::Queue;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Everything the admin listener may look at; cheap to clone.
#[derive(Clone)]
pub struct View {
    pub config: Arc<Config>,
    pub queue: Queue,
    /// Inbound sessions open now (the SMTP side's connection table).
    pub connections: Counter,
    /// Fired when the gateway begins to shut down: from then on it is unhealthy.
    pub shutdown: CancellationToken,
    /// The gateway's registry, rendered at each scrape.
    pub metrics: Arc<Metrics>,
    /// How long each message probe's message has waited, by next hop (the probes own it).
    pub probe_waiting: Waiting,
    /// Messages waiting per destination and the oldest's age (the delivery scheduler keeps
    /// the counts); `None` when it cannot answer.
    pub depths: Depths,
}

/// Read at scrape time: a number owned by another part of the gateway.
pub type Counter = Arc<dyn Fn() -> usize + Send + Sync>;

/// A [`Depths`] from an async function.
pub fn depths<F, Fut>(ask: F) -> Depths
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<BTreeMap<String, (u64, u64)>>> + Send + 'static,
{
    Arc::new(move || Box::pin(ask()))
}

/// Read at scrape time: seconds each probe message has waited, by next hop.
pub type Waiting = Arc<dyn Fn() -> Vec<(String, f64)> + Send + Sync>;

/// Read at scrape time: destination → (messages, oldest age in seconds), asked of its owner.
pub type Depths = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Option<BTreeMap<String, (u64, u64)>>> + Send>>
        + Send
        + Sync,
>;

/// Present only in the initramfs of a test build that must fail its health check.
pub const TEST_UNHEALTHY: &str = "/etc/edgemx/TEST-UNHEALTHY";

impl View {
    /// `Ok` when a load balancer may send mail here; otherwise why not.
    pub async fn health(&self) -> Result<(), String> {
        // TEST SWITCH: only firmware built with `EDGEMX_TEST_UNHEALTHY=1` (scripts/build-image)
        // carries this file; the boot tests use it to prove a failed trial falls back.
        if std::path::Path::new(TEST_UNHEALTHY).exists() {
            return Err("test build (EDGEMX_TEST_UNHEALTHY): never healthy".into());
        }
        if self.shutdown.is_cancelled() {
            return Err("shutting down".into());
        }
        if (self.connections)() >= self.config.limits.max_connections {
            return Err("connection limit reached".into());
        }
        self.queue.admit(0).map_err(|e| format!("queue: {e}"))?;
        self.queue
            .envelope(QueueId(0))
            .await
            .map_err(|e| format!("queue: {e}"))?;
        Ok(())
    }

    /// The scrape-time values. Nothing here reads envelopes: the queue's totals are kept by
    /// the queue and the per-destination ones by the delivery scheduler; when that cannot
    /// answer (shutting down) the per-destination series are left out.
    pub async fn scrape(&self) -> Scrape {
        let stats = self.queue.stats();
        let healthy = self.health().await.is_ok();
        let destinations = (self.depths)().await.unwrap_or_default();
        Scrape {
            healthy,
            queue_messages: stats.messages,
            queue_bytes: stats.bytes,
            queue_failing: self.queue.failing().is_some(),
            destinations,
            connections_current: (self.connections)() as u64,
            probe_waiting: (self.probe_waiting)(),
        }
    }
}
