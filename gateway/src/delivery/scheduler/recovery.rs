//! Next-hop health in the scheduler: observations from attempts and active checks, the
//! paced release of the mail waiting for a destination that came back, and the probe
//! message sent when a hold ends.

use super::{Event, Scheduler, State};
use crate::delivery::drain::Drain;
use crate::delivery::health::{Change, Seen};
use crate::envelope::QueueId;
use crate::routing::Destination;
use crate::smtp::client::wire::Reply;
use crate::time::unix_now;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

impl Scheduler {
    /// Records an observation of `dest`; true when it just came back (mail released).
    pub(super) fn seen(&mut self, dest: &Arc<Destination>, seen: Seen) -> bool {
        match self.health.observe(dest, seen) {
            Change::WentUp => {
                self.down.remove(dest);
                self.ctx.walker.forget_failures();
                self.recovered(dest, "next hop up again");
                true
            }
            Change::WentDown => {
                if let Some(drain) = self.drains.remove(dest) {
                    log::warn!(
                        "{dest}: release stopped, down again ({} released, {} left on their schedule)",
                        drain.released,
                        drain.left()
                    );
                }
                false
            }
            Change::Same => false,
        }
    }

    /// A destination answered again: everything waiting for it is released now, paced,
    /// instead of after each message's own back-off.
    pub(super) fn recovered(&mut self, dest: &Arc<Destination>, why: &str) {
        let mut ids: Vec<QueueId> = self
            .by_dest
            .get(dest)
            .map(|s| s.iter().map(|&(_, id)| id).collect())
            .unwrap_or_default();
        ids.sort();
        self.release(dest, ids, why);
    }

    pub(super) fn release(&mut self, dest: &Arc<Destination>, ids: Vec<QueueId>, why: &str) {
        let flow = &self.config.flow;
        let (rate, concurrency) = (flow.drain_rate, flow.drain_concurrency);
        log::info!(
            "{dest}: releasing {} waiting messages ({why}), {rate}/s, {concurrency} at a time",
            ids.len()
        );
        self.drains
            .entry(dest.clone())
            .or_insert_with(|| Drain::new(rate, concurrency, Instant::now()))
            .extend(ids);
    }

    /// Makes due what the paced releases allow now; returns when to come back.
    pub(super) fn release_drains(&mut self) -> Option<Instant> {
        if self.drains.is_empty() {
            return None;
        }
        let (now, unix) = (Instant::now(), unix_now());
        let mut wake: Option<Instant> = None;
        let dests: Vec<Arc<Destination>> = self.drains.keys().cloned().collect();
        for dest in dests {
            let Some(mut drain) = self.drains.remove(&dest) else {
                continue;
            };
            let messages = &self.messages;
            let ready = |id: QueueId| {
                matches!(
                    messages.get(&id).map(|e| &e.state),
                    Some(State::Waiting(_) | State::Writing { .. })
                )
            };
            for id in drain.next(now, ready) {
                self.make_due(id, unix);
            }
            if drain.is_done() {
                log::info!(
                    "{dest}: release done, {} messages in {:.1}s",
                    drain.released,
                    drain.started.elapsed().as_secs_f64()
                );
                continue;
            }
            if let Some(at) = drain.wake(now) {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
            self.drains.insert(dest, drain);
        }
        wake
    }

    /// The attempt of `id` is over: it no longer counts against a release's concurrency.
    pub(super) fn drained(&mut self, id: QueueId) {
        for drain in self.drains.values_mut() {
            drain.finished(id);
        }
    }

    /// Starts a round of active checks when one is due: of every watched destination each
    /// `check_interval`, and of those down or held each `down_check_interval`, so a
    /// recovery is noticed within that shorter period (plus `rise` checks run back to back,
    /// see [`Self::checked`]). Returns when the next round is.
    pub(super) fn start_checks(&mut self) -> Instant {
        let now = Instant::now();
        if now >= self.next_check {
            self.next_check = now + self.config.flow.check_interval.0;
            let mut keep: HashSet<Arc<Destination>> = self.configured.iter().cloned().collect();
            keep.extend(self.by_dest.keys().cloned());
            self.health.retain(|d| keep.contains(d));
            for dest in keep {
                self.check(dest);
            }
        }
        if now >= self.next_down_check {
            self.next_down_check = now + super::down_check_interval(&self.config);
            let mut waiting: HashSet<Arc<Destination>> = self.down.keys().cloned().collect();
            let down = self.health.destinations().into_iter();
            waiting.extend(down.filter(|d| self.health.down(d).is_some()));
            for dest in waiting {
                self.check(dest);
            }
        }
        self.next_check.min(self.next_down_check)
    }

    /// Starts one active check of `dest` unless one is running.
    fn check(&mut self, dest: Arc<Destination>) {
        if !self.checking.insert(dest.clone()) {
            return;
        }
        let (ctx, events) = (self.ctx.clone(), self.events.clone());
        self.ctx.tracker.spawn(async move {
            let result = tokio::select! {
                result = ctx.walker.check(&dest) => result,
                _ = ctx.shutdown.cancelled() => return,
            };
            let _ = events.send(Event::Checked(dest, result));
        });
    }

    pub(super) fn checked(&mut self, dest: Arc<Destination>, result: Result<(), Reply>) {
        self.checking.remove(&dest);
        match result {
            Ok(()) => {
                let released = self.seen(&dest, Seen::CheckPassed);
                // Held after failed attempts but never marked down (fewer than `fall`
                // failures): the check is proof enough to end the hold. A destination
                // marked down waits for `rise` checks.
                let marked_down = self.health.down(&dest).is_some();
                if !released && !marked_down && self.down.remove(&dest).is_some() {
                    self.ctx.walker.forget_failures();
                    self.recovered(&dest, "active check passed");
                }
                if marked_down {
                    // Passed, but fewer than `rise` in a row: the next check at once, so
                    // coming back takes one check period, not `rise` of them.
                    self.check(dest);
                }
            }
            Err(reply) => {
                log::debug!("check of {dest} failed: {reply}");
                self.seen(&dest, Seen::Failed(reply));
            }
        }
    }

    /// When a hold ends, one waiting message is tried at once as a probe, so a destination
    /// that comes back is noticed within one hold period whatever the messages' back-off.
    pub(super) fn probes(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut expired = Vec::new();
        for (dest, down) in self.down.iter_mut().filter(|(_, d)| !d.probed) {
            if down.until <= now {
                down.probed = true;
                expired.push(dest.clone());
            } else {
                next = Some(next.map_or(down.until, |n| n.min(down.until)));
            }
        }
        let unix = unix_now();
        for dest in expired {
            let waiting = self.by_dest.get(&dest).and_then(|ids| {
                ids.iter()
                    .filter_map(|(_, id)| match self.messages.get(id).map(|e| &e.state) {
                        Some(State::Waiting(due)) if u64::from(*due) > unix => Some((*due, *id)),
                        _ => None,
                    })
                    .min()
            });
            if let Some((_, id)) = waiting {
                self.make_due(id, unix);
                next = Some(now);
            }
        }
        next
    }
}
