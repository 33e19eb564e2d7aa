//! The group-commit writer: one std thread owns every write to the store.
//!
//! It blocks for the first request, drains whatever else is already waiting (up to
//! `max_batch` changes), applies all of it in one write transaction, commits (one fsync) and
//! only then answers. A caller therefore waits for at most the commit in progress plus its
//! own. A failed commit (disk full, I/O error) stores nothing of its batch; the store is
//! reopened (redb refuses writes on a handle whose commit failed). New messages of the batch
//! are refused; changes to stored messages are committed again, with backoff, until that
//! succeeds, and only then answered: a delivery result must not be lost, or the message is
//! delivered again. Until a commit succeeds nothing new is admitted (`452 4.3.1`). The
//! thread never panics on I/O: every failure becomes an answer or a retry.

use super::admission::{Counters, Limits};
use super::hot::{HotPool, Stored};
use super::store::StoreError;
use super::store::{Effect, Op, Store};
use super::{Change, Envelope, QueueError, QueueId};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub(super) enum Request {
    Enqueue {
        envelope: Envelope,
        body: Vec<u8>,
        reply: oneshot::Sender<Result<Envelope, QueueError>>,
    },
    Apply {
        changes: Vec<Change>,
        reply: oneshot::Sender<Result<Vec<QueueId>, QueueError>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
    /// Compact the file after this batch's commit: (size before, size after).
    Compact {
        reply: oneshot::Sender<Result<(u64, u64), QueueError>>,
    },
}

impl Request {
    fn weight(&self) -> usize {
        match self {
            Request::Apply { changes, .. } => changes.len().max(1),
            _ => 1,
        }
    }
}

pub(super) struct Writer {
    pub requests: Receiver<Request>,
    pub store: Arc<Store>,
    pub counters: Arc<Counters>,
    pub limits: Limits,
    pub max_batch: usize,
    /// Shared with [`super::Queue::reserve_id`]: the lowest id never handed out.
    pub next_id: Arc<AtomicU64>,
    pub notify: mpsc::UnboundedSender<Stored>,
    /// Committed bodies handed to delivery with their envelopes, within its limit.
    pub hot: HotPool,
    /// Changes to stored messages whose commit failed, tried again first.
    pub retry: Vec<Accepted>,
}

/// How soon a failed commit is tried again; doubled up to [`RETRY_LAST`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(5);

/// A request that passed admission, with its ids assigned.
pub(super) enum Accepted {
    Enqueue {
        envelope: Envelope,
        body: Vec<u8>,
        reply: oneshot::Sender<Result<Envelope, QueueError>>,
    },
    Apply {
        changes: Vec<Change>,
        ids: Vec<QueueId>,
        reply: oneshot::Sender<Result<Vec<QueueId>, QueueError>>,
    },
}

impl Writer {
    pub fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch.min(4096));
        let mut closing = None;
        let mut backoff = RETRY_FIRST;
        while closing.is_none() {
            // While commits fail, wake up to try again even when nobody asks.
            let first = if self.retry.is_empty() && self.counters.failing().is_none() {
                match self.requests.recv() {
                    Ok(first) => Some(first),
                    Err(_) => break,
                }
            } else {
                match self.requests.recv_timeout(backoff) {
                    Ok(first) => Some(first),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            let mut weight = self.retry.len();
            if let Some(first) = first {
                weight += first.weight();
                batch.push(first);
            }
            while weight < self.max_batch {
                match self.requests.try_recv() {
                    Ok(next) => {
                        weight += next.weight();
                        batch.push(next);
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            closing = self.process(&mut batch);
            backoff = match self.counters.failing() {
                Some(_) => (backoff * 2).min(RETRY_LAST),
                None => RETRY_FIRST,
            };
        }
        // Results still waiting are not stored: the messages keep their previous state and
        // are attempted again after the restart (at least once, never lost).
        let left = std::mem::take(&mut self.retry);
        if !left.is_empty() {
            log::error!(
                "queue: closing with {} unrecorded change request(s); they are attempted again",
                left.len()
            );
        }
        fail_all(
            left,
            &QueueError::Io("the queue closed before the change could be stored".into()),
        );
        self.store.shut();
        if let Some(reply) = closing {
            let _ = reply.send(());
        }
    }

    /// Commits one batch and answers it; returns the close request if one was in it.
    fn process(&mut self, batch: &mut Vec<Request>) -> Option<oneshot::Sender<()>> {
        let mut closing = None;
        let mut compact = Vec::new();
        let mut accepted = Vec::with_capacity(batch.len());
        let mut admission = self.limits.batch(&self.counters);
        for request in batch.drain(..) {
            match request {
                Request::Enqueue {
                    mut envelope,
                    body,
                    reply,
                } => {
                    // An id from `reserve_id` is kept; any other would later be handed out
                    // again (and the store refuses to overwrite a message, see `answer`).
                    if envelope.id.0 >= self.next_id.load(Ordering::Acquire) {
                        let why = format!("queue id {} was never reserved", envelope.id);
                        let _ = reply.send(Err(QueueError::Io(why)));
                        continue;
                    }
                    let size = body.len() as u64;
                    if let Err(e) = admission.take(size) {
                        let _ = reply.send(Err(e));
                        continue;
                    }
                    if envelope.id.0 == 0 {
                        envelope.id = take_id(&self.next_id);
                    }
                    envelope.size = size;
                    accepted.push(Accepted::Enqueue {
                        envelope,
                        body,
                        reply,
                    });
                }
                Request::Apply { changes, reply } => {
                    // Internal changes (status updates, DSNs replacing bounced mail) bypass
                    // the quotas: refusing them would block the queue from draining.
                    let mut changes = changes;
                    let mut ids = Vec::new();
                    for change in &mut changes {
                        if let Change::Insert { envelope, body } = change {
                            envelope.id = take_id(&self.next_id);
                            envelope.size = body.len() as u64;
                            ids.push(envelope.id);
                        }
                    }
                    accepted.push(Accepted::Apply {
                        changes,
                        ids,
                        reply,
                    });
                }
                Request::Close { reply } => closing = Some(reply),
                Request::Compact { reply } => compact.push(reply),
            }
        }
        // Changes whose commit failed go first, in their original order.
        let mut accepted = std::mem::take(&mut self.retry)
            .into_iter()
            .chain(accepted)
            .collect::<Vec<_>>();
        if accepted.is_empty() && self.counters.failing().is_some() {
            self.probe();
        } else if !accepted.is_empty() {
            accepted.shrink_to_fit();
            self.commit(accepted);
        }
        for reply in compact {
            let started = std::time::Instant::now();
            let result = self.store.compact();
            if let Ok((before, after)) = &result {
                log::info!(
                    "queue: compacted {} MiB to {} MiB in {:.1}s",
                    before >> 20,
                    after >> 20,
                    started.elapsed().as_secs_f64()
                );
            }
            let _ = reply.send(result);
        }
        closing
    }

    /// With nothing to retry, a small commit tells when the store takes writes again.
    fn probe(&mut self) {
        if !self.store.is_open()
            && let Err(e) = self.store.reopen()
        {
            log::debug!("queue: still cannot reopen the database: {e}");
            return;
        }
        match self.store.write(&[], self.next_id.load(Ordering::Acquire)) {
            Ok(_) => self.recovered(),
            Err(e) => {
                log::debug!("queue: commit still failing: {e}");
                self.recover(&[]);
            }
        }
    }

    fn recovered(&self) {
        if self.counters.failing().is_some() {
            log::warn!("queue: commits succeed again; accepting mail");
            self.counters.set_failing(None);
        }
    }

    fn commit(&mut self, accepted: Vec<Accepted>) {
        if !self.store.is_open()
            && let Err(e) = self.store.reopen()
        {
            log::error!("queue: database still cannot be reopened: {e}");
            self.failed(accepted, &e);
            return;
        }
        let ops = operations(&accepted);
        let result = self.store.write(&ops, self.next_id.load(Ordering::Acquire));
        match result {
            Ok(effects) => {
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
                self.recovered();
                self.count(&ops, &effects);
                drop(ops);
                self.answer(accepted, &effects);
            }
            Err(e) => {
                if self.counters.failing().is_none() {
                    log::error!("queue: commit failed, refusing new mail until one succeeds: {e}");
                } else {
                    log::debug!("queue: commit failed again: {e}");
                }
                self.recover(&ops);
                drop(ops);
                self.failed(accepted, &e);
            }
        }
    }

    /// A failed commit: new messages are refused (their senders get `452` and keep them);
    /// changes to stored messages (delivery results, deletions, DSNs) are kept and committed
    /// again until that succeeds. Their callers wait meanwhile, so delivery stops recording
    /// and, with the scheduler starting nothing while the queue is failing, a restart repeats
    /// at most the deliveries that were in flight.
    fn failed(&mut self, accepted: Vec<Accepted>, why: &StoreError) {
        self.counters.set_failing(Some(why.clone()));
        let (keep, refuse): (Vec<_>, Vec<_>) = accepted
            .into_iter()
            .partition(|a| matches!(a, Accepted::Apply { .. }));
        self.retry = keep;
        fail_all(refuse, &QueueError::from(why.clone()));
    }

    fn count(&self, ops: &[Op<'_>], effects: &[Effect]) {
        let (mut added, mut removed, mut grown, mut shrunk) = (0u64, 0u64, 0u64, 0u64);
        for (op, effect) in ops.iter().zip(effects) {
            match (op, effect) {
                (Op::Insert(_, body), Effect::Inserted) => {
                    added += 1;
                    grown += body.len() as u64;
                }
                (Op::Delete(_), Effect::Deleted(Some(size))) => {
                    removed += 1;
                    shrunk += size;
                }
                _ => {}
            }
        }
        let c = &self.counters;
        c.messages.fetch_add(added, Ordering::Relaxed);
        c.bytes.fetch_add(grown, Ordering::Relaxed);
        saturating_sub(&c.messages, removed);
        saturating_sub(&c.bytes, shrunk);
    }

    /// Answers a committed batch; `effects` has one entry per operation, in order.
    fn answer(&self, accepted: Vec<Accepted>, effects: &[Effect]) {
        let mut effects = effects.iter();
        for item in accepted {
            match item {
                Accepted::Enqueue {
                    envelope,
                    body,
                    reply,
                } => {
                    if effects.next() == Some(&Effect::Exists) {
                        let why = format!("queue id {} is already in use", envelope.id);
                        log::error!("queue: {why}; message refused");
                        let _ = reply.send(Err(QueueError::Io(why)));
                        continue;
                    }
                    self.announce(envelope.clone(), body);
                    let _ = reply.send(Ok(envelope));
                }
                Accepted::Apply {
                    changes,
                    ids,
                    reply,
                } => {
                    for change in changes {
                        let effect = effects.next();
                        if let Change::Insert { envelope, body } = change
                            && effect == Some(&Effect::Inserted)
                        {
                            self.announce(envelope, body);
                        }
                    }
                    let _ = reply.send(Ok(ids));
                }
            }
        }
    }

    /// Tells delivery about a committed message, with its body while the hot pool has room.
    fn announce(&self, envelope: Envelope, body: Vec<u8>) {
        let body = self.hot.keep(body);
        let _ = self.notify.send(Stored { envelope, body });
    }

    /// Reopens the store after a failed commit. When the failure came after the commit
    /// reached the file (an fsync error), its inserts may be visible after the reopen: their
    /// senders are still refused (a duplicate is allowed, a loss is not), but the stored copies
    /// are counted and handed to delivery so they do not sit unnoticed until a restart.
    fn recover(&self, ops: &[Op<'_>]) {
        if let Err(e) = self.store.reopen() {
            log::error!("queue: reopening after the failed commit: {e}");
            return;
        }
        log::warn!("queue: database reopened after a failed commit");
        for op in ops {
            let Op::Insert(envelope, _) = op else {
                continue;
            };
            if let Ok(Some(stored)) = self.store.envelope(envelope.id) {
                log::warn!("queue: {} was stored despite the failed commit", stored.id);
                self.counters.messages.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .bytes
                    .fetch_add(stored.size, Ordering::Relaxed);
                let _ = self.notify.send(Stored {
                    envelope: stored,
                    body: None,
                });
            }
        }
    }
}

/// The store operations of a batch, in request order.
fn operations(accepted: &[Accepted]) -> Vec<Op<'_>> {
    let mut ops = Vec::with_capacity(accepted.len());
    for item in accepted {
        match item {
            Accepted::Enqueue { envelope, body, .. } => ops.push(Op::Insert(envelope, body)),
            Accepted::Apply { changes, .. } => ops.extend(changes.iter().map(|c| match c {
                Change::Insert { envelope, body } => Op::Insert(envelope, body),
                Change::Update(envelope) => Op::Update(envelope),
                Change::Delete(id) => Op::Delete(*id),
                Change::PutRecord { key, value } => Op::PutRecord(key, value),
                Change::DeleteRecord(key) => Op::DeleteRecord(key),
            })),
        }
    }
    ops
}

pub(super) fn take_id(next_id: &AtomicU64) -> QueueId {
    QueueId(next_id.fetch_add(1, Ordering::AcqRel))
}

fn fail_all(accepted: Vec<Accepted>, error: &QueueError) {
    for item in accepted {
        let error = error.clone();
        match item {
            Accepted::Enqueue { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Accepted::Apply { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

fn saturating_sub(counter: &std::sync::atomic::AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}
