//! The end of an attempt: its outcomes applied to the envelope (status, expiry, the next
//! attempt, a delay notice) and written back in one commit, plus envelope-only writes for
//! hold and release.

use super::{Scheduler, State};
use crate::delivery::record::Write;
use crate::delivery::settle;
use crate::envelope::{Hold, QueueId};
use crate::queue::Change;
use crate::time::unix_now;

impl Scheduler {
    /// The attempt is complete: apply it to the envelope and write the result.
    pub(super) fn settle(&mut self, id: QueueId) {
        self.drained(id);
        let Some(entry) = self.messages.get_mut(&id) else {
            return;
        };
        let State::Attempt(mut attempt) = std::mem::replace(
            &mut entry.state,
            State::Writing {
                due_now: false,
                rewrite: false,
            },
        ) else {
            return;
        };
        if attempt.gone {
            self.forget(id);
            return;
        }
        if let Some(detail) = attempt.corrupt {
            // `Queue::body` has written the hold; keep the message here as held too, so
            // `queue release` finds it and re-checks the body, and `queue delete` forgets it.
            // Nothing was sent, so the other jobs' outcomes (held destinations) are moot.
            entry.env.held = false;
            entry.env.hold_for(Hold::Corrupt { detail });
            entry.state = State::Held;
            return;
        }
        if attempt.outcomes.is_empty() && !entry.env.is_finished() {
            // Abandoned at shutdown: nothing changed, nothing to write (but a hold placed
            // during the attempt, which its write was to carry).
            if entry.env.held {
                self.write_envelope(id);
                return;
            }
            let due = entry.env.next_attempt;
            entry.state = State::Waiting(due);
            self.due.insert((due, id));
            return;
        }
        if crate::delivery::fallback::reroute(&self.routes, &mut entry.env, &mut attempt.outcomes) {
            // The fallback route gets the recipient at once, not after a retry interval.
            attempt.retry_now = true;
        }
        let now = unix_now();
        let flow = &self.config.flow;
        let settled = settle::settle(
            &mut entry.env,
            &attempt.outcomes,
            now,
            &self.config.queue,
            flow.expired,
            &self.ctx.published,
        );
        let delayed = settle::delay_notice(&mut entry.env, now, flow.delay_notice.0);
        let failed = settled.failed;
        let relayed = settled.relayed;
        let change = if settled.finished {
            Change::Delete(id)
        } else {
            Change::Update(entry.env.clone())
        };
        let original = entry.env.clone();
        entry.state = State::Writing {
            due_now: attempt.retry_now,
            rewrite: false,
        };
        if settled.finished {
            self.forget(id);
        } else {
            self.reindex(id);
        }
        let write = Write {
            queue: self.queue.clone(),
            hostname: self.config.hostname.clone(),
            events: self.events.clone(),
            finished: settled.finished,
            delayed,
            expires: original.received + self.config.queue.max_lifetime.0.as_secs(),
            relayed,
            budget: self.ctx.budget.clone(),
        };
        self.ctx
            .tracker
            .spawn(write.run(original, failed, change, now));
    }

    /// Writes the envelope as the scheduler holds it (after hold or release); the entry
    /// must be in `Writing` so no other write for it runs meanwhile.
    pub(super) fn write_envelope(&mut self, id: QueueId) {
        let Some(entry) = self.messages.get(&id) else {
            return;
        };
        let write = Write {
            queue: self.queue.clone(),
            hostname: self.config.hostname.clone(),
            events: self.events.clone(),
            finished: false,
            delayed: Vec::new(),
            expires: 0,
            relayed: Vec::new(),
            budget: self.ctx.budget.clone(),
        };
        let change = Change::Update(entry.env.clone());
        let run = write.run(entry.env.clone(), Vec::new(), change, unix_now());
        self.ctx.tracker.spawn(run);
    }
}
