//! The durable queue: the redb store (the only code in edgemx that touches redb), the
//! group-commit writer thread, the retry schedule and delivery status notifications (DSNs).
//!
//! Invariant: a message is acknowledged to its sender only after `enqueue` returned, which
//! happens only after the commit holding its body, envelope and recipients was fsynced.
//! redb never runs on async worker threads: writes go through one blocking writer thread
//! that folds many callers' changes into one commit; reads run on the blocking pool.

pub mod dsn;
mod envelope;
pub mod schedule;

pub use envelope::{Envelope, QueueId, RcptStatus, Recipient};

use crate::config;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A quota or the free-space reserve would be exceeded: `452 4.3.1`.
    #[error("queue full: {0}")]
    Full(String),
    /// The commit failed (I/O error, disk full); nothing of it was stored: `452 4.3.1`.
    #[error("storage failed: {0}")]
    Storage(String),
    /// The database cannot be opened; it is never reset silently.
    #[error("cannot open queue database {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("queue is closed")]
    Closed,
}

/// One change applied by [`Queue::apply`]; all changes of one call share one commit.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new message; its id is assigned by the queue and returned by `apply`.
    Insert {
        envelope: Envelope,
        body: Vec<u8>,
    },
    Update(Envelope),
    Delete(QueueId),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub messages: u64,
    pub bytes: u64,
}

/// Handle to the queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<()>,
}

impl Queue {
    /// Opens or creates the store at `path` and starts the writer thread. Returns every
    /// envelope already queued so the scheduler can resume. A file that is not a readable
    /// queue database is an error, never replaced.
    pub fn open(path: &Path, config: &config::Queue) -> Result<(Queue, Vec<Envelope>), QueueError> {
        let _ = (path, config);
        todo!()
    }

    /// Refuses new mail early (at MAIL FROM) when quotas or the free-space reserve would be
    /// exceeded by a message of `size` bytes.
    pub fn admit(&self, size: u64) -> Result<(), QueueError> {
        let _ = size;
        todo!()
    }

    /// Durably stores a new message and returns its envelope with the assigned id. Returns
    /// only after the fsync of the commit that holds it (shared with concurrent callers).
    pub async fn enqueue(&self, envelope: Envelope, body: Vec<u8>) -> Result<Envelope, QueueError> {
        let _ = (envelope, body);
        todo!()
    }

    /// Applies `changes` atomically in one durable commit; returns the ids of inserted
    /// messages in order. Used by delivery (status updates, deletions, DSN + delete).
    pub async fn apply(&self, changes: Vec<Change>) -> Result<Vec<QueueId>, QueueError> {
        let _ = changes;
        todo!()
    }

    /// The stored message bytes (headers and body, CRLF line endings, not dot-stuffed).
    pub async fn body(&self, id: QueueId) -> Result<Option<Arc<Vec<u8>>>, QueueError> {
        let _ = id;
        todo!()
    }

    /// One envelope as stored.
    pub async fn envelope(&self, id: QueueId) -> Result<Option<Envelope>, QueueError> {
        let _ = id;
        todo!()
    }

    /// Every envelope as stored, oldest first.
    pub async fn list(&self) -> Result<Vec<Envelope>, QueueError> {
        todo!()
    }

    /// Receives every message inserted after `open`, once its commit is durable. Only the
    /// first call gets the receiver (the delivery scheduler).
    pub fn subscribe(&self) -> Option<mpsc::UnboundedReceiver<Envelope>> {
        todo!()
    }

    pub fn stats(&self) -> QueueStats {
        todo!()
    }

    /// Finishes pending commits and stops the writer thread.
    pub async fn close(&self) {
        let _ = &self.inner;
        todo!()
    }
}
