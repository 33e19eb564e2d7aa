//! Bodies kept in memory from their commit to their first delivery attempt.
//!
//! Fresh mail is usually relayed within milliseconds of its `250`. Reading its body back
//! from redb for that attempt cost a hand-off to the blocking pool (two thread wake-ups), a
//! read transaction and a copy per message, about a tenth of the relay path's CPU. So the
//! writer hands each committed body to the delivery scheduler with its envelope
//! ([`Stored`]), as long as the bodies held this way stay under [`HOT_BYTES`] together and
//! each is at most [`HOT_MAX`]; anything else is read from the store as before.
//!
//! A hot body is only a cache of what was just committed: the same bytes whose checksum was
//! stored, never changed afterwards. Dropping it (the attempt ended, the message waits for a
//! retry, the gateway stops) loses nothing.

use super::Envelope;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of hot bodies held at once. Enough for the messages in flight of a busy relay
/// (a thousand of 4 KiB), small beside the memory a large queue needs.
pub const HOT_BYTES: usize = 4 << 20;
/// Larger bodies are read from the store when their attempt starts.
pub const HOT_MAX: usize = 256 << 10;

/// A message the writer has committed, as announced to the scheduler.
#[derive(Debug)]
pub struct Stored {
    pub envelope: Envelope,
    /// Its body, when the hot pool had room for it.
    pub body: Option<HotBody>,
}

/// A committed body held in memory; its bytes return to the pool when it is dropped.
#[derive(Debug)]
pub struct HotBody {
    bytes: Arc<Vec<u8>>,
    pool: Arc<AtomicUsize>,
}

impl HotBody {
    pub fn bytes(&self) -> Arc<Vec<u8>> {
        self.bytes.clone()
    }
}

impl Drop for HotBody {
    fn drop(&mut self) {
        self.pool.fetch_sub(self.bytes.len(), Ordering::Relaxed);
    }
}

/// What hot bodies hold together, shared by the writer and every [`HotBody`].
#[derive(Debug, Clone)]
pub struct HotPool {
    held: Arc<AtomicUsize>,
    limit: usize,
}

impl Default for HotPool {
    fn default() -> HotPool {
        HotPool::new(HOT_BYTES)
    }
}

impl HotPool {
    pub fn new(limit: usize) -> HotPool {
        HotPool {
            held: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// Keeps `body` when it fits; `None` gives it back to the allocator.
    pub fn keep(&self, body: Vec<u8>) -> Option<HotBody> {
        let len = body.len();
        if len > HOT_MAX {
            return None;
        }
        let limit = self.limit;
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held + len <= limit).then_some(held + len)
            })
            .ok()?;
        Some(HotBody {
            bytes: Arc::new(body),
            pool: self.held.clone(),
        })
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_kept_within_the_limit_and_given_back_when_dropped() {
        let pool = HotPool::new(10_000);
        let a = pool.keep(vec![1; 6_000]).expect("fits");
        assert_eq!(pool.held(), 6_000);
        assert!(pool.keep(vec![2; 5_000]).is_none(), "over the limit");
        let b = pool.keep(vec![3; 4_000]).expect("fits exactly");
        assert_eq!(pool.held(), 10_000);
        let bytes = a.bytes();
        drop(a);
        assert_eq!(pool.held(), 4_000, "a dropped body gives its bytes back");
        assert_eq!(bytes.len(), 6_000, "a reader keeps its copy meanwhile");
        drop(b);
        assert_eq!(pool.held(), 0);
    }

    #[test]
    fn a_large_body_is_never_kept() {
        let pool = HotPool::new(usize::MAX);
        assert!(pool.keep(vec![0; HOT_MAX + 1]).is_none());
        assert!(pool.keep(vec![0; HOT_MAX]).is_some());
    }
}
