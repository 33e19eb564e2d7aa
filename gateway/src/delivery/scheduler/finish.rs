//! The end of an attempt: its outcomes applied to the envelope (status, expiry, the next
//! attempt, a delay notice) and written back in one commit, plus envelope-only writes for
//! hold and release.

use super::{Event, Scheduler, State, secs};
use crate::delivery::record::Write;
use crate::delivery::settle;
use crate::envelope::{Envelope, Hold, QueueId};
use crate::queue::Change;
use crate::time::unix_now;
use std::sync::Arc;

impl Scheduler {
    /// The attempt is complete: apply it to the envelope and write the result. The
    /// envelope leaves memory here: the write takes it, the entry keeps its compact form.
    pub(super) fn settle(&mut self, id: QueueId) {
        self.drained(id);
        let msg = self.loaded.remove(&id);
        let Some(entry) = self.messages.get_mut(&id) else {
            return;
        };
        let State::Attempt = std::mem::replace(
            &mut entry.state,
            State::Writing {
                next: 0,
                due_now: false,
                rewrite: false,
            },
        ) else {
            return;
        };
        let Some(mut attempt) = self.attempts.remove(&id) else {
            return;
        };
        let Some(msg) = msg else {
            // Not possible: an attempt keeps its envelope until here. Read it again.
            log::error!("{id}: attempt ended without its envelope; tried again");
            entry.state = State::Waiting(0);
            self.due.insert((0, id));
            return;
        };
        let mut env = Arc::try_unwrap(msg).map_or_else(|shared| shared.env.clone(), |m| m.env);
        if attempt.gone {
            self.forget(id);
            return;
        }
        if let Some(detail) = attempt.corrupt {
            // `Queue::body` has written the hold; keep the message here as held too, so
            // `queue release` finds it and re-checks the body, and `queue delete` forgets it.
            // Nothing was sent, so the other jobs' outcomes (held destinations) are moot.
            log::debug!("{id} held: {detail}");
            entry.held = true;
            entry.corrupt = true;
            entry.state = State::Held;
            return;
        }
        if entry.held && !env.held {
            // Held by the operator during the attempt: its write carries the hold.
            env.hold_for(Hold::Operator);
        }
        if attempt.outcomes.is_empty() && !env.is_finished() {
            // Abandoned at shutdown: nothing changed, nothing to write (but a hold placed
            // during the attempt, which its write was to carry).
            if entry.held {
                self.write_held(id, env);
                return;
            }
            let due = secs(env.next_attempt);
            entry.state = State::Waiting(due);
            self.due.insert((due, id));
            return;
        }
        if crate::delivery::fallback::reroute(&self.routes, &mut env, &mut attempt.outcomes) {
            // The fallback route gets the recipient at once, not after a retry interval.
            attempt.retry_now = true;
        }
        let now = unix_now();
        let flow = &self.config.flow;
        let settled = settle::settle(
            &mut env,
            &attempt.outcomes,
            now,
            &self.config.queue,
            flow.expired,
            &self.ctx.published,
        );
        let delayed = settle::delay_notice(&mut env, now, flow.delay_notice.0);
        let failed = settled.failed;
        let relayed = settled.relayed;
        let change = if settled.finished {
            Change::Delete(id)
        } else {
            Change::Update(env.clone())
        };
        // Held for expiry (`flow.expired = "hold"`) by the settlement itself.
        entry.held = env.held;
        entry.state = State::Writing {
            next: secs(env.next_attempt),
            due_now: attempt.retry_now,
            rewrite: false,
        };
        if settled.finished {
            self.forget(id);
        } else {
            self.reindex(id, &env);
        }
        let write = Write {
            queue: self.queue.clone(),
            hostname: self.config.hostname.clone(),
            events: self.events.clone(),
            finished: settled.finished,
            delayed,
            expires: env.received + self.config.queue.max_lifetime.0.as_secs(),
            relayed,
            budget: self.ctx.budget.clone(),
        };
        self.ctx.tracker.spawn(write.run(env, failed, change, now));
    }

    /// Writes `env` as it is, carrying a hold placed while it was read or in an attempt;
    /// the entry is `Writing` meanwhile so no other write for it runs.
    pub(super) fn write_held(&mut self, id: QueueId, env: Envelope) {
        debug_assert_eq!(env.id, id);
        if let Some(entry) = self.messages.get_mut(&id) {
            entry.state = State::Writing {
                next: secs(env.next_attempt),
                due_now: false,
                rewrite: false,
            };
        }
        let change = Change::Update(env.clone());
        let run = self.plain_write().run(env, Vec::new(), change, unix_now());
        self.ctx.tracker.spawn(run);
    }

    /// Writes the hold as the scheduler holds it (after hold or release): the stored
    /// envelope is read, its hold set or lifted, and written back. The entry must be in
    /// `Writing` so no other write for it runs meanwhile.
    pub(super) fn write_hold(&mut self, id: QueueId) {
        let Some(entry) = self.messages.get(&id) else {
            return;
        };
        let held = entry.held;
        let write = self.plain_write();
        let (queue, events) = (self.queue.clone(), self.events.clone());
        self.ctx.tracker.spawn(async move {
            let mut env = match queue.envelope(id).await {
                Ok(Some(env)) => env,
                Ok(None) => return, // deleted meanwhile; `queue delete` forgets it
                Err(e) => {
                    log::error!("{id}: cannot read the envelope to record its hold: {e}");
                    let _ = events.send(Event::Applied(id));
                    return;
                }
            };
            match held {
                true => env.hold_for(Hold::Operator),
                false => env.release(),
            }
            let change = Change::Update(env.clone());
            write.run(env, Vec::new(), change, unix_now()).await
        });
    }

    fn plain_write(&self) -> Write {
        Write {
            queue: self.queue.clone(),
            hostname: self.config.hostname.clone(),
            events: self.events.clone(),
            finished: false,
            delayed: Vec::new(),
            expires: 0,
            relayed: Vec::new(),
            budget: self.ctx.budget.clone(),
        }
    }
}
