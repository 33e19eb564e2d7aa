//! The durable queue: the redb store (the only code in edgemx that touches redb), the
//! group-commit writer thread, the retry schedule and delivery status notifications (DSNs).
//!
//! Invariant: a message is acknowledged to its sender only after `enqueue` returned, which
//! happens only after the commit holding its body, envelope and recipients was fsynced.
//! redb never runs on async worker threads: writes go through one blocking writer thread
//! that folds many callers' changes into one commit; reads run on the blocking pool.
//!
//! # Layout
//!
//! | file | owns |
//! | --- | --- |
//! | `store.rs` | redb tables and the storage format (its module doc is the design note) |
//! | `writer.rs` | the group-commit thread: batching, ids, failure recovery, notifications |
//! | `admission.rs` | message/byte quotas and the free-space reserve (`452 4.3.1`) |
//! | `marker.rs` | the "a queue existed here" marker: a lost queue file is an error |
//! | `schedule.rs` | retry times with jitter, expiry |
//! | `dsn.rs` | RFC 3464 delivery status notifications |
//!
//! The file shrinks by itself only when its tail is free; `Queue::compact` (`edgemx queue
//! compact`, run by the writer thread between commits) moves live pages to the front. A full disk is kept away by the free-space reserve; when it happens anyway
//! (another process filled it, `min_free_space = 0`), even deleting may fail (redb copies
//! pages on write): the writer keeps such changes and commits them again until there is
//! room, and admits nothing new meanwhile (see `writer.rs`).

mod admission;
pub mod dsn;
mod hot;
mod marker;
pub mod schedule;
mod store;
mod writer;

pub use crate::envelope::{Envelope, Hold, QueueId, RcptStatus, Recipient};
pub use hot::{HotBody, HotPool, Stored};
pub use store::StoreError;

use crate::config;
use admission::{Counters, Limits};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use store::Store;
use tokio::sync::{mpsc, oneshot};
use writer::{Request, Writer};

/// redb's quick repair (allocator state saved by every commit, two-phase commit) would make
/// the first open after a crash instant, but measured with 64 producers it cut durable
/// throughput by about 40 % (≈3,100 against ≈5,000–8,000 msg/s on the shared build machine).
/// Without it, that open checks every page: ≈1.5 s per GB of queue, paid once per crash.
const QUICK_REPAIR: bool = false;

#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// A quota or the free-space reserve would be exceeded: `452 4.3.1`.
    #[error("queue full: {0}")]
    Full(String),
    /// The commit failed for want of space (disk full, quota, file size limit); nothing of
    /// it was stored: `452 4.3.1`, like a quota.
    #[error("disk full: {0}")]
    DiskFull(String),
    /// The store failed otherwise (an I/O error, a damaged record, a database that could
    /// not be reopened); nothing of a failed commit was stored: `451 4.3.0`.
    #[error("storage failed: {0}")]
    Io(String),
    /// The database cannot be opened; it is never reset silently.
    #[error("cannot open queue database {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("queue is closed")]
    Closed,
    /// The stored body fails its checksum; the message is held, never delivered as it is.
    #[error("message {id}: stored body is corrupt: {detail}")]
    Corrupt { id: QueueId, detail: String },
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
    /// Stores `value` under `key` in the `records` table (replacing what was there): small
    /// state that must commit together with messages, such as the report aggregates that
    /// a queued report replaces (`report`).
    PutRecord {
        key: String,
        value: Vec<u8>,
    },
    /// Removes the record `key`, if any.
    DeleteRecord(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueStats {
    pub messages: u64,
    pub bytes: u64,
}

/// Handle to the queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    requests: std::sync::mpsc::Sender<Request>,
    store: Arc<Store>,
    counters: Arc<Counters>,
    limits: Limits,
    subscriber: Mutex<Option<mpsc::UnboundedReceiver<Stored>>>,
    closed: AtomicBool,
    next_id: Arc<AtomicU64>,
}

impl Queue {
    /// Opens or creates the store at `path` and starts the writer thread. Returns every
    /// envelope already queued so the scheduler can resume. A file that is not a readable
    /// queue database is an error, never replaced. Blocks while redb opens (and, after a
    /// crash, repairs) the file: call it before serving, not from an async worker.
    pub fn open(path: &Path, config: &config::Queue) -> Result<(Queue, Vec<Envelope>), QueueError> {
        let mut all = Vec::new();
        let queue = Queue::open_each(path, config, &mut |env| all.push(env))?;
        Ok((queue, all))
    }

    /// [`Queue::open`], handing each queued envelope to `each` as it is read instead of
    /// returning them all (a million envelopes need not be in memory at once).
    pub fn open_each(
        path: &Path,
        config: &config::Queue,
        each: &mut dyn FnMut(Envelope),
    ) -> Result<Queue, QueueError> {
        let (store, loaded) = Store::open(path, QUICK_REPAIR, each)?;
        let store = Arc::new(store);
        let counters = Arc::new(Counters::default());
        counters.messages.store(loaded.messages, Ordering::Relaxed);
        counters.bytes.store(loaded.bytes, Ordering::Relaxed);
        let limits = Limits::new(config, path);
        let next_id = Arc::new(AtomicU64::new(loaded.next_id));
        let (requests, receiver) = std::sync::mpsc::channel();
        let (notify, subscriber) = mpsc::unbounded_channel();
        let writer = Writer {
            requests: receiver,
            store: store.clone(),
            counters: counters.clone(),
            limits: limits.clone(),
            max_batch: config.max_batch.max(1),
            next_id: next_id.clone(),
            notify,
            hot: hot::HotPool::default(),
            retry: Vec::new(),
        };
        std::thread::Builder::new()
            .name("queue-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| QueueError::Open {
                path: path.display().to_string(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        log::info!(
            "queue: opened {} with {} message(s), {} bytes",
            path.display(),
            loaded.messages,
            loaded.bytes
        );
        let inner = Inner {
            requests,
            store,
            counters,
            limits,
            subscriber: Mutex::new(Some(subscriber)),
            closed: AtomicBool::new(false),
            next_id,
        };
        Ok(Queue {
            inner: Arc::new(inner),
        })
    }

    /// Refuses new mail early (at MAIL FROM) when quotas or the free-space reserve would be
    /// exceeded by a message of `size` bytes.
    pub fn admit(&self, size: u64) -> Result<(), QueueError> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(QueueError::Closed);
        }
        self.inner.limits.check(&self.inner.counters, size)
    }

    /// Hands out the id a message will be stored under, before it is received, so that
    /// its Received header can name it. Ids of messages that are never stored are skipped.
    pub fn reserve_id(&self) -> QueueId {
        writer::take_id(&self.inner.next_id)
    }

    /// Durably stores a new message and returns its envelope with the assigned id. Returns
    /// only after the fsync of the commit that holds it (shared with concurrent callers).
    /// The quotas are checked again, exactly, by the writer; `size` is set to `body.len()`.
    pub async fn enqueue(&self, envelope: Envelope, body: Vec<u8>) -> Result<Envelope, QueueError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Enqueue {
            envelope,
            body,
            reply,
        })?;
        answer.await.map_err(|_| QueueError::Closed)?
    }

    /// Applies `changes` atomically in one durable commit; returns the ids of inserted
    /// messages in order. Used by delivery (status updates, deletions, DSN + delete).
    /// Inserts here bypass the quotas (a DSN replacing a bounced message must not be
    /// refused); an `Update` of a message that is gone is ignored, not resurrected.
    pub async fn apply(&self, changes: Vec<Change>) -> Result<Vec<QueueId>, QueueError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.send(Request::Apply { changes, reply })?;
        answer.await.map_err(|_| QueueError::Closed)?
    }

    /// The stored message bytes (headers and body, CRLF line endings, not dot-stuffed).
    /// A body that fails its checksum is never returned: the message is held (durably, with
    /// the reason) and the answer is [`QueueError::Corrupt`]; delivery keeps it held too.
    pub async fn body(&self, id: QueueId) -> Result<Option<Arc<Vec<u8>>>, QueueError> {
        match self.blocking(move |store| store.body(id)).await {
            Ok(body) => Ok(body.map(Arc::new)),
            Err(QueueError::Corrupt { id, detail }) => {
                self.hold_corrupt(id, &detail).await;
                Err(QueueError::Corrupt { id, detail })
            }
            Err(e) => Err(e),
        }
    }

    async fn hold_corrupt(&self, id: QueueId, detail: &str) {
        log::error!("{id}: stored body is corrupt ({detail}); held, not delivered");
        let mut envelope = match self.envelope(id).await {
            Ok(Some(envelope)) => envelope,
            Ok(None) => return,
            Err(e) => {
                log::error!("{id}: cannot read the envelope to hold it: {e}");
                return;
            }
        };
        if matches!(envelope.hold, Some(Hold::Corrupt { .. })) {
            return;
        }
        envelope.held = false;
        envelope.hold_for(Hold::Corrupt {
            detail: detail.to_string(),
        });
        if let Err(e) = self.apply(vec![Change::Update(envelope)]).await {
            log::error!("{id}: cannot record the hold: {e}");
        }
    }

    /// One envelope as stored.
    pub async fn envelope(&self, id: QueueId) -> Result<Option<Envelope>, QueueError> {
        self.blocking(move |store| store.envelope(id)).await
    }

    /// Shrinks the file to what the queued messages need (redb keeps a file at its peak
    /// size while anything is queued near its end). New mail waits for its commit while
    /// this runs; returns the file size before and after.
    pub async fn compact(&self) -> Result<(u64, u64), QueueError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Compact { reply })?;
        answer.await.map_err(|_| QueueError::Closed)?
    }

    /// Up to `limit` envelopes with ids above `after`, oldest first: a page of a listing.
    pub async fn page(
        &self,
        after: Option<QueueId>,
        limit: usize,
    ) -> Result<Vec<Envelope>, QueueError> {
        self.blocking(move |store| store.page(after, limit)).await
    }

    /// The envelopes of `ids`, read in one transaction; `None` for those not queued.
    pub async fn envelopes(
        &self,
        ids: Vec<QueueId>,
    ) -> Result<Vec<(QueueId, Option<Envelope>)>, QueueError> {
        self.blocking(move |store| store.envelopes(&ids)).await
    }

    /// Every record (see [`Change::PutRecord`]) whose key starts with `prefix`, in key order.
    pub async fn records(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, QueueError> {
        let prefix = prefix.to_string();
        self.blocking(move |store| store.records(&prefix)).await
    }

    /// Every envelope as stored, oldest first.
    pub async fn list(&self) -> Result<Vec<Envelope>, QueueError> {
        self.blocking(|store| store.list()).await
    }

    /// Receives every message inserted after `open`, once its commit is durable, with its
    /// body while the hot pool has room (`hot.rs`). Only the first call gets the receiver (the
    /// delivery scheduler). Until then notifications are buffered.
    pub fn subscribe(&self) -> Option<mpsc::UnboundedReceiver<Stored>> {
        self.inner
            .subscriber
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    pub fn stats(&self) -> QueueStats {
        QueueStats {
            messages: self.inner.counters.messages.load(Ordering::Relaxed),
            bytes: self.inner.counters.bytes.load(Ordering::Relaxed),
        }
    }

    /// Tests elsewhere: a message's checksum removed, as if its record predated checksums
    /// (stands for a store repaired under a held corrupt message).
    #[cfg(test)]
    pub(crate) fn drop_checksum(&self, id: QueueId) -> Result<(), StoreError> {
        self.inner.store.drop_checksum(id)
    }

    /// Why the queue cannot store anything now (the last commit failed and none has
    /// succeeded since), or `None` when it can. Mail is refused meanwhile: `452 4.3.1` when
    /// the disk is full, `451 4.3.0` for other failures.
    pub fn failing(&self) -> Option<StoreError> {
        self.inner.counters.failing()
    }

    /// Durable commits made since `open`: with `stats`, how well group commit batches.
    pub fn commits(&self) -> u64 {
        self.inner.counters.commits.load(Ordering::Relaxed)
    }

    /// Finishes pending commits and stops the writer thread; the file is closed (and its lock
    /// released) when this returns. Later calls get [`QueueError::Closed`].
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        let (reply, done) = oneshot::channel();
        if self.inner.requests.send(Request::Close { reply }).is_ok() {
            let _ = done.await;
        }
    }

    fn send(&self, request: Request) -> Result<(), QueueError> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(QueueError::Closed);
        }
        self.inner
            .requests
            .send(request)
            .map_err(|_| QueueError::Closed)
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, QueueError> + Send + 'static,
    {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| QueueError::Io(format!("queue read task failed: {e}")))?
    }
}

#[cfg(test)]
pub(crate) mod tests;
