//! Connection slots of the admin HTTP listener, so slow clients cannot starve `/healthz`.
//!
//! Every connection holds one of `admin.max_clients` slots. A connection still sending its
//! request head holds it at most `admin.head_timeout` in total (not per read), and when
//! every slot is taken the oldest such connection is closed to make room: a monitor sends
//! its request at once and is answered, while clients that connect and say nothing only
//! push each other out.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct Slots {
    permits: Arc<Semaphore>,
    /// Connections still reading their head, oldest first.
    reading: Arc<Mutex<VecDeque<(u64, CancellationToken)>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

/// A slot for one connection; `evicted` fires when a newer connection needs it.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    id: u64,
    pub evicted: CancellationToken,
    slots: Slots,
}

impl Slots {
    pub fn new(max: usize) -> Slots {
        Slots {
            permits: Arc::new(Semaphore::new(max.max(1))),
            reading: Arc::new(Mutex::new(VecDeque::new())),
            next: Arc::default(),
        }
    }

    /// A slot for a new connection, evicting the oldest connection still reading its head
    /// when all are taken; `None` when every slot is busy answering.
    pub async fn take(&self) -> Option<Slot> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let oldest = self.lock().pop_front();
                oldest?.1.cancel();
                // The evicted task gives its permit back as soon as it runs.
                let wait = self.permits.clone().acquire_owned();
                tokio::time::timeout(std::time::Duration::from_secs(1), wait)
                    .await
                    .ok()?
                    .ok()?
            }
        };
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let evicted = CancellationToken::new();
        self.lock().push_back((id, evicted.clone()));
        Some(Slot {
            _permit: permit,
            id,
            evicted,
            slots: self.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, CancellationToken)>> {
        self.reading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Slot {
    /// The head is read: from now on this connection is being answered and is not evicted.
    pub fn answering(&self) {
        self.slots.lock().retain(|(id, _)| *id != self.id);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.answering();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_table_evicts_the_oldest_reader_but_not_one_being_answered() {
        let slots = Slots::new(2);
        let first = slots.take().await.unwrap();
        let second = slots.take().await.unwrap();
        second.answering();
        let evicted = first.evicted.clone();
        // The first slot is handed back once its task sees the eviction.
        let task = tokio::spawn(async move {
            first.evicted.cancelled().await;
            drop(first);
        });
        let third = slots.take().await.expect("room made by eviction");
        assert!(evicted.is_cancelled());
        assert!(!second.evicted.is_cancelled());
        task.await.unwrap();
        third.answering();
        // Both slots answering: nothing to evict, the newcomer is turned away.
        assert!(slots.take().await.is_none());
    }
}
