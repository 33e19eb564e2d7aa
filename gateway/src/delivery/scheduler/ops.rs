//! Operator and ETRN commands: retry, hold, release, flush.

use super::{Scheduler, State};
use crate::delivery::{Command, Target};
use crate::envelope::QueueId;
use crate::routing::Destination;
use crate::time::unix_now;
use std::sync::Arc;

impl Scheduler {
    pub fn command(&mut self, command: Command) {
        let now = unix_now();
        match command {
            Command::Retry(id) => {
                self.ctx.walker.forget_failures();
                if let Some(keys) = self.messages.get(&id).map(|e| e.keys.clone()) {
                    for dest in self.dests(&keys) {
                        self.down.remove(&dest);
                    }
                }
                self.make_due(id, now);
            }
            Command::RetryAll => {
                self.ctx.walker.forget_failures();
                self.down.clear();
                let ids: Vec<QueueId> = self.messages.keys().copied().collect();
                for id in ids {
                    self.make_due(id, now);
                }
            }
            Command::Forget(id) => self.forget(id),
            Command::Hold(target, reply) => {
                let _ = reply.send(self.hold(&target));
            }
            Command::Release(target, reply) => {
                let _ = reply.send(self.release_held(&target));
            }
            Command::Flush(target, reply) => {
                let _ = reply.send(self.flush(&target));
            }
            Command::Reload(config) => self.reload(config),
            Command::Depths(reply) => {
                let _ = reply.send(self.depths());
            }
        }
    }

    /// Messages with an open recipient matching `target`, oldest first.
    fn matching(&self, target: &Target) -> Vec<QueueId> {
        let mut ids: Vec<QueueId> = match target {
            Target::Message(id) => self
                .messages
                .get_key_value(id)
                .map(|(id, _)| *id)
                .into_iter()
                .collect(),
            Target::All => self.messages.keys().copied().collect(),
            Target::Domain { .. } => self
                .messages
                .iter()
                .filter(|(_, e)| e.keys.iter().any(|k| target.matches(&k.domain)))
                .map(|(id, _)| *id)
                .collect(),
        };
        ids.sort();
        ids
    }

    /// Marks messages held (durably); they are not attempted until released.
    fn hold(&mut self, target: &Target) -> usize {
        let mut count = 0;
        for id in self.matching(target) {
            let Some(entry) = self.messages.get_mut(&id) else {
                continue;
            };
            if entry.held {
                continue;
            }
            entry.held = true;
            count += 1;
            log::info!("{id} held by the operator");
            match &mut entry.state {
                State::Waiting(due) => {
                    self.due.remove(&(*due, id));
                    entry.state = State::Writing {
                        next: *due,
                        due_now: false,
                        rewrite: false,
                    };
                    self.loaded.remove(&id);
                    self.write_hold(id);
                }
                // The read's or the attempt's own write carries the flag.
                State::Held | State::Loading | State::Attempt => {}
                State::Writing { rewrite, .. } => *rewrite = true,
            }
        }
        count
    }

    /// Lifts the hold (durably) and makes the messages due at once. A message held for a
    /// corrupt body is released only by its id, after `DeliveryHandle::release` has read the
    /// body again and found it sound: released in bulk it would only be held again.
    fn release_held(&mut self, target: &Target) -> usize {
        let mut count = 0;
        for id in self.matching(target) {
            let Some(entry) = self.messages.get_mut(&id) else {
                continue;
            };
            if !entry.held {
                continue;
            }
            if entry.corrupt && !matches!(target, Target::Message(_)) {
                continue;
            }
            entry.held = false;
            entry.corrupt = false;
            count += 1;
            log::info!("{id} released by the operator");
            match &mut entry.state {
                State::Held => {
                    entry.state = State::Writing {
                        next: 0,
                        due_now: true,
                        rewrite: false,
                    };
                    self.write_hold(id);
                }
                State::Waiting(_) | State::Loading => {}
                State::Attempt => {
                    if let Some(attempt) = self.attempts.get_mut(&id) {
                        attempt.retry_now = true;
                    }
                }
                State::Writing {
                    due_now, rewrite, ..
                } => {
                    *due_now = true;
                    *rewrite = true;
                }
            }
        }
        count
    }

    /// Delivers now: one message at once; a domain or everything through a paced release
    /// per destination, with any hold on those destinations lifted. Held messages stay.
    fn flush(&mut self, target: &Target) -> usize {
        self.ctx.walker.forget_failures();
        if let Target::Message(id) = target {
            let open = self.messages.get(id).is_some_and(|e| !e.held);
            if open {
                self.command(Command::Retry(*id));
            }
            return usize::from(open);
        }
        let ids = self.matching(target);
        let mut count = 0;
        let mut per_dest: Vec<(Arc<Destination>, Vec<QueueId>)> = Vec::new();
        for id in ids {
            let Some(keys) = self
                .messages
                .get(&id)
                .filter(|e| !e.held)
                .map(|e| e.keys.clone())
            else {
                continue;
            };
            count += 1;
            for dest in self.dests(&keys) {
                match per_dest.iter_mut().find(|(d, _)| *d == dest) {
                    Some((_, list)) => list.push(id),
                    None => per_dest.push((dest, vec![id])),
                }
            }
        }
        for (dest, ids) in per_dest {
            self.down.remove(&dest);
            self.health.force_up(&dest, "flush requested");
            self.release(&dest, ids, "flush requested");
        }
        count
    }
}
