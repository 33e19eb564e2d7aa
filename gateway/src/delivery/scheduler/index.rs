//! The scheduler's indexes: the due set, messages per destination, idle queues, and the
//! interned routing keys that stand for a message's recipients while its envelope is not
//! in memory.

use super::{Scheduler, Secs, State, secs};
use crate::envelope::{Envelope, QueueId};
use crate::routing::{Destination, Routes};
use std::collections::HashMap;
use std::sync::Arc;

/// Where one open recipient goes: its domain and its stored route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RouteKey {
    pub domain: Box<str>,
    pub route: Option<Box<str>>,
}

/// The distinct routing keys of a message's open recipients, shared by every message that
/// goes to the same places (interned; one pointer per message).
pub(super) type Keys = Arc<Vec<RouteKey>>;

#[derive(Default)]
pub(super) struct Interner {
    sets: HashMap<Vec<RouteKey>, Keys>,
    /// Size after the last prune; the next prune waits until the set has doubled.
    pruned_at: usize,
}

impl Interner {
    /// The keys of `env`'s open recipients.
    pub fn of(&mut self, env: &Envelope) -> Keys {
        let mut keys: Vec<RouteKey> = Vec::new();
        for rcpt in env.recipients.iter().filter(|r| r.status.is_open()) {
            let key = RouteKey {
                domain: rcpt.domain.as_str().into(),
                route: rcpt.route.as_deref().map(Into::into),
            };
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        match self.sets.get(keys.as_slice()) {
            Some(shared) => shared.clone(),
            None => {
                let shared = Arc::new(keys.clone());
                self.sets.insert(keys, shared.clone());
                shared
            }
        }
    }

    /// Drops sets no message uses any more (DSNs to many outside domains leave many).
    pub fn prune(&mut self) {
        if self.sets.len() < 1024 || self.sets.len() < 2 * self.pruned_at {
            return;
        }
        self.sets.retain(|_, set| Arc::strong_count(set) > 1);
        self.pruned_at = self.sets.len();
    }
}

impl Scheduler {
    pub(super) fn make_due(&mut self, id: QueueId, now: u64) {
        let Some(entry) = self.messages.get_mut(&id) else {
            return;
        };
        match &mut entry.state {
            State::Waiting(due) => {
                self.due.remove(&(*due, id));
                *due = secs(now);
                self.due.insert((secs(now), id));
            }
            State::Held | State::Loading => {}
            State::Attempt => {
                if let Some(attempt) = self.attempts.get_mut(&id) {
                    attempt.retry_now = true;
                }
            }
            State::Writing { due_now, .. } => *due_now = true,
        }
    }

    pub(super) fn forget(&mut self, id: QueueId) {
        self.drained(id);
        self.loaded.remove(&id);
        self.attempts.remove(&id);
        if let Some(entry) = self.messages.remove(&id) {
            if let State::Waiting(due) = entry.state {
                self.due.remove(&(due, id));
            }
            self.unindex(id, entry.received, &entry.keys);
        }
    }

    /// The destinations of a message's open recipients under the current routes.
    pub(super) fn dests(&mut self, keys: &Keys) -> Vec<Arc<Destination>> {
        dests_of_keys(&mut self.routes, keys)
    }

    pub(super) fn index(&mut self, id: QueueId, received: Secs, keys: &Keys) {
        for dest in self.dests(keys) {
            self.health.track(&dest);
            self.by_dest.entry(dest).or_default().insert((received, id));
        }
    }

    fn unindex(&mut self, id: QueueId, received: Secs, keys: &Keys) {
        for dest in self.dests(keys) {
            if let Some(ids) = self.by_dest.get_mut(&dest) {
                ids.remove(&(received, id));
                if ids.is_empty() {
                    self.by_dest.remove(&dest);
                    self.drop_idle_queue(&dest);
                }
            }
        }
    }

    /// After an attempt changed which recipients are open (or moved one to a fallback
    /// route): the message's keys and its place in the index follow `env`.
    pub(super) fn reindex(&mut self, id: QueueId, env: &Envelope) {
        let fresh = self.keys.of(env);
        let Some(entry) = self.messages.get_mut(&id) else {
            return;
        };
        if Arc::ptr_eq(&entry.keys, &fresh) {
            return;
        }
        let (received, old) = (
            entry.received,
            std::mem::replace(&mut entry.keys, fresh.clone()),
        );
        self.unindex(id, received, &old);
        self.index(id, received, &fresh);
    }

    /// The index built again from every message's keys (at start, after a commit changed
    /// the routes).
    pub(super) fn rebuild_index(&mut self) {
        self.by_dest.clear();
        let mut memo: HashMap<*const Vec<RouteKey>, Vec<Arc<Destination>>> = HashMap::new();
        for (&id, entry) in &self.messages {
            let dests = memo
                .entry(Arc::as_ptr(&entry.keys))
                .or_insert_with(|| dests_of_keys(&mut self.routes, &entry.keys));
            for dest in dests.iter() {
                let key = (entry.received, id);
                self.by_dest.entry(dest.clone()).or_default().insert(key);
            }
        }
        for dest in self.by_dest.keys() {
            self.health.track(dest);
        }
    }

    pub(super) fn drop_idle_queue(&mut self, dest: &Arc<Destination>) {
        if self.dests.get(dest).is_some_and(|dq| dq.is_idle()) {
            self.dests.remove(dest);
        }
    }
}

fn dests_of_keys(routes: &mut Routes, keys: &[RouteKey]) -> Vec<Arc<Destination>> {
    let mut dests: Vec<Arc<Destination>> = Vec::new();
    for key in keys {
        let dest = routes.get_for(&key.domain, key.route.as_deref());
        if !dests.contains(&dest) {
            dests.push(dest);
        }
    }
    dests
}

/// The distinct destinations of the recipients still to deliver.
#[cfg(test)]
pub(super) fn dests_of(routes: &mut Routes, env: &Envelope) -> Vec<Arc<Destination>> {
    dests_of_keys(routes, &Interner::default().of(env))
}
