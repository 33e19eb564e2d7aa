//! The scheduler's indexes: the due set, messages per destination, idle queues.

use super::{Scheduler, State};
use crate::envelope::{Envelope, QueueId};
use crate::routing::{Destination, Routes};
use std::sync::Arc;

impl Scheduler {
    pub(super) fn make_due(&mut self, id: QueueId, now: u64) {
        let Some(entry) = self.messages.get_mut(&id) else {
            return;
        };
        match &mut entry.state {
            State::Waiting(due) => {
                self.due.remove(&(*due, id));
                *due = now;
                self.due.insert((now, id));
            }
            State::Held => {}
            State::Attempt(attempt) => attempt.retry_now = true,
            State::Writing { due_now, .. } => *due_now = true,
        }
    }

    pub(super) fn forget(&mut self, id: QueueId) {
        self.drained(id);
        if let Some(entry) = self.messages.remove(&id) {
            if let State::Waiting(due) = entry.state {
                self.due.remove(&(due, id));
            }
            let key = (entry.env.received, id);
            for dest in &entry.dests {
                if let Some(ids) = self.by_dest.get_mut(dest) {
                    ids.remove(&key);
                    if ids.is_empty() {
                        self.by_dest.remove(dest);
                        self.drop_idle_queue(dest);
                    }
                }
            }
        }
    }

    pub(super) fn reindex(&mut self, id: QueueId) {
        let Some(entry) = self.messages.get_mut(&id) else {
            return;
        };
        let fresh = dests_of(&mut self.routes, &entry.env);
        let key = (entry.env.received, id);
        let old = std::mem::replace(&mut entry.dests, fresh.clone());
        for dest in old.iter().filter(|d| !fresh.contains(d)) {
            if let Some(ids) = self.by_dest.get_mut(dest) {
                ids.remove(&key);
                if ids.is_empty() {
                    self.by_dest.remove(dest);
                }
            }
        }
        for dest in fresh {
            self.by_dest.entry(dest).or_default().insert(key);
        }
    }

    pub(super) fn drop_idle_queue(&mut self, dest: &Arc<Destination>) {
        if self.dests.get(dest).is_some_and(|dq| dq.is_idle()) {
            self.dests.remove(dest);
        }
    }
}

/// The distinct destinations of the recipients still to deliver.
pub(super) fn dests_of(routes: &mut Routes, env: &Envelope) -> Vec<Arc<Destination>> {
    let mut dests: Vec<Arc<Destination>> = Vec::new();
    for rcpt in env.recipients.iter().filter(|r| r.status.is_open()) {
        let dest = routes.get(rcpt);
        if !dests.contains(&dest) {
            dests.push(dest);
        }
    }
    dests
}
