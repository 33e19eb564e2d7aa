//! Expiry of quarantined mail: a message held by a content scan (`Hold::Scan`) for longer
//! than `scan.quarantine_expiry` is deleted, as `edgemx queue delete` would delete it, and
//! the scheduler forgets it. Held mail is never attempted, so `queue.max_lifetime` does not
//! reach it; without this key it stays until an operator releases or deletes it.
//!
//! The sweep lists the queue's envelopes, so it runs at most every five minutes (a quarter
//! of the expiry when that is shorter, at least every 100 ms).

use super::DeliveryHandle;
use crate::config::Config;
use crate::envelope::Hold;
use crate::queue::{Change, Queue};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Sweeps until `shutdown`, with the expiry of the configuration applied last.
pub async fn expire(
    queue: Queue,
    deliveries: DeliveryHandle,
    config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) {
    loop {
        let expiry = config.borrow().scan.quarantine_expiry.map(|s| s.0);
        let pause = expiry.map_or(Duration::from_secs(300), |e| {
            (e / 4).clamp(Duration::from_millis(100), Duration::from_secs(300))
        });
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        if let Some(expiry) = expiry {
            sweep(&queue, &deliveries, expiry).await;
        }
    }
}

async fn sweep(queue: &Queue, deliveries: &DeliveryHandle, expiry: Duration) {
    let envelopes = match queue.list().await {
        Ok(list) => list,
        Err(e) => {
            log::warn!("quarantine expiry: cannot list the queue: {e}");
            return;
        }
    };
    let now = crate::time::unix_now();
    for env in envelopes {
        let quarantined = env.held && matches!(env.hold, Some(Hold::Scan { .. }));
        if !quarantined || env.received.saturating_add(expiry.as_secs()) > now {
            continue;
        }
        match queue.apply(vec![Change::Delete(env.id)]).await {
            Ok(_) => {
                deliveries.forget(env.id);
                log::info!(
                    "{} deleted: quarantined longer than scan.quarantine_expiry",
                    env.id
                );
            }
            Err(e) => log::warn!("quarantine expiry: cannot delete {}: {e}", env.id),
        }
    }
}
