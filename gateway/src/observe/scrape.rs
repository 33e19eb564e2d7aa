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
use crate::routing::Routes;
use std::collections::BTreeMap;
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
}

/// Read at scrape time: a number owned by another part of the gateway.
pub type Counter = Arc<dyn Fn() -> usize + Send + Sync>;

/// Read at scrape time: seconds each probe message has waited, by next hop.
pub type Waiting = Arc<dyn Fn() -> Vec<(String, f64)> + Send + Sync>;

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

    /// The scrape-time values. Reading the queue costs one pass over the envelopes (no
    /// message bodies); a queue that cannot be read leaves the per-destination series out.
    pub async fn scrape(&self) -> Scrape {
        let stats = self.queue.stats();
        let healthy = self.health().await.is_ok();
        let destinations = match self.queue.list().await {
            Ok(envelopes) => by_destination(
                Routes::new(self.config.clone()),
                &envelopes,
                crate::time::unix_now(),
            ),
            Err(e) => {
                log::warn!("metrics: cannot read the queue: {e}");
                BTreeMap::new()
            }
        };
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

/// destination → (messages with an open recipient for it, age of the oldest in seconds).
fn by_destination(
    mut routes: Routes,
    envelopes: &[crate::envelope::Envelope],
    now: u64,
) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for env in envelopes {
        let mut seen: Vec<String> = Vec::new();
        for rcpt in env.recipients.iter().filter(|r| r.status.is_open()) {
            let dest = routes.get(rcpt).to_string();
            if seen.contains(&dest) {
                continue;
            }
            seen.push(dest.clone());
            let entry = out.entry(dest).or_insert((0, 0));
            entry.0 += 1;
            entry.1 = entry.1.max(now.saturating_sub(env.received));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Envelope, Recipient};

    #[test]
    fn messages_are_counted_once_per_destination_with_the_oldest_age() {
        let config = Config::parse(
            "hostname = \"gw.test\"\ndata_dir = \"/tmp/x\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n\
             [[domain]]\nname = \"a.test\"\nnext_hops = [\"127.0.0.1:2601\"]\n\
             [[domain]]\nname = \"b.test\"\nnext_hops = [\"127.0.0.1:2602\"]\n",
        )
        .unwrap();
        let rcpts = |list: &[&str]| list.iter().map(|a| Recipient::pending(*a)).collect();
        let envs = [
            Envelope::new("s@x.test", rcpts(&["1@a.test", "2@a.test"]), 100),
            Envelope::new("s@x.test", rcpts(&["1@a.test", "1@b.test"]), 150),
        ];
        let seen = by_destination(Routes::new(Arc::new(config)), &envs, 200);
        assert_eq!(seen.get("127.0.0.1:2601"), Some(&(2, 100)));
        assert_eq!(seen.get("127.0.0.1:2602"), Some(&(1, 50)));
    }
}
