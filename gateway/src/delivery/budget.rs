//! The byte budget of delivery: message bodies read from the queue to be sent are held
//! within `limits.inflight_bytes`, the same budget that caps messages being received, so
//! one figure bounds the message data the process holds (docs/mail-flow.md, "Memory per
//! session").
//!
//! Invariants: budget is held only by a worker that is delivering (from reading the body to
//! the end of its transaction) and by a result being written (a DSN that quotes the body),
//! never by a job waiting in a queue, so whoever holds it finishes without needing more and
//! a waiting delivery always gets its turn (the semaphore serves waiters in order). A
//! message larger than the whole budget takes all of it, alone: it is delayed, never refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A share of the message-bytes budget, in [`BUDGET_UNIT`]s, with its own accounting of
/// what delivery holds (for the tests and for operators).
pub struct Budget {
    pool: Arc<Semaphore>,
    /// Every unit of the pool: the most one delivery can take.
    units: u32,
    held: AtomicU64,
    peak: AtomicU64,
}

/// Bytes of the budget held until dropped.
pub struct Held {
    _permit: OwnedSemaphorePermit,
    bytes: u64,
    budget: Arc<Budget>,
}

impl Budget {
    /// Delivery's side of `pool`, whose units together are `total` bytes
    /// (`limits.inflight_bytes`); inbound sessions take from the same pool.
    pub fn shared(pool: Arc<Semaphore>, total: u64) -> Arc<Budget> {
        Arc::new(Budget {
            pool,
            units: units(total),
            held: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        })
    }

    /// A budget of `total` bytes of its own (tests, tools without inbound sessions).
    pub fn new(total: u64) -> Arc<Budget> {
        Budget::shared(Arc::new(Semaphore::new(units(total) as usize)), total)
    }

    /// Waits until `bytes` are free and holds them; a request beyond the whole budget
    /// takes all of it. `None` only if the pool was closed, which nothing does.
    pub async fn take(self: &Arc<Self>, bytes: u64) -> Option<Held> {
        let wanted = u32::try_from(bytes.div_ceil(BUDGET_UNIT as u64)).unwrap_or(u32::MAX);
        let wanted = wanted.clamp(1, self.units.max(1));
        let permit = self.pool.clone().acquire_many_owned(wanted).await.ok()?;
        let bytes = u64::from(wanted) * BUDGET_UNIT as u64;
        let now = self.held.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.peak.fetch_max(now, Ordering::AcqRel);
        Some(Held {
            _permit: permit,
            bytes,
            budget: self.clone(),
        })
    }

    /// Bytes delivery holds now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// The most delivery ever held at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Acquire)
    }

    /// The whole budget, in bytes (rounded down to whole units).
    pub fn total(&self) -> u64 {
        u64::from(self.units) * BUDGET_UNIT as u64
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Bytes per permit of the in-flight message budget (shared by inbound sessions, which
/// hold what they received and have not queued yet, and delivery).
pub const BUDGET_UNIT: usize = 1024;

/// What delivering a message of `size` bytes holds: the body read from the queue and the
/// dot-stuffed copy written to the next hop (a little larger than the body; one extra
/// byte per 64 covers lines that start with a dot).
pub fn cost(size: u64) -> u64 {
    size.saturating_mul(2).saturating_add(size / 64)
}

fn units(total: u64) -> u32 {
    let units = (total / BUDGET_UNIT as u64).min(Semaphore::MAX_PERMITS as u64);
    u32::try_from(units).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_request_waits_for_room_and_one_beyond_the_budget_takes_it_all() {
        let budget = Budget::new(100 * 1024);
        let first = budget.take(60 * 1024).await.unwrap();
        assert_eq!(budget.held(), 60 * 1024);
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.take(60 * 1024).await.map(|held| held.bytes) }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "two of 60 KiB fit in 100 KiB");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert_eq!(second.unwrap().unwrap(), Some(60 * 1024));
        let huge = budget.take(10 << 20).await.unwrap();
        assert_eq!(budget.held(), budget.total());
        drop(huge);
        assert_eq!(budget.held(), 0);
        assert_eq!(budget.peak(), budget.total());
    }
}
