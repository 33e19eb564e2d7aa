//! Paced release: the messages waiting for a destination that came back (or that an
//! operator or ETRN flushed) are handed to the scheduler at `flow.drain_rate` messages per
//! second with at most `flow.drain_concurrency` of them in flight, so a recovering server
//! gets a steady stream instead of the whole backlog at once.
//!
//! Pure bookkeeping: the scheduler asks [`Drain::next`] which messages to make due and
//! reports back with [`Drain::finished`]; nothing here touches the queue.

use crate::envelope::QueueId;
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

pub struct Drain {
    pending: VecDeque<QueueId>,
    queued: HashSet<QueueId>,
    in_flight: HashSet<QueueId>,
    /// Messages per second; 0 means no pacing.
    rate: f64,
    concurrency: usize,
    tokens: f64,
    refilled: Instant,
    pub started: Instant,
    pub released: usize,
}

impl Drain {
    pub fn new(rate: f64, concurrency: usize, now: Instant) -> Drain {
        Drain {
            pending: VecDeque::new(),
            queued: HashSet::new(),
            in_flight: HashSet::new(),
            rate,
            concurrency: concurrency.max(1),
            // One message goes at once: the first proof that the release works.
            tokens: 1.0,
            refilled: now,
            started: now,
            released: 0,
        }
    }

    /// Adds messages to release (those already pending or in flight are skipped).
    pub fn extend(&mut self, ids: impl IntoIterator<Item = QueueId>) {
        for id in ids {
            if !self.in_flight.contains(&id) && self.queued.insert(id) {
                self.pending.push_back(id);
            }
        }
    }

    /// The messages that may go now; each is counted in flight until [`Drain::finished`].
    /// `ready(id)` says whether the message can be made due (it still exists, waits, and is
    /// not held); those that cannot are dropped from the release without using a slot.
    pub fn next(&mut self, now: Instant, mut ready: impl FnMut(QueueId) -> bool) -> Vec<QueueId> {
        if self.rate > 0.0 {
            let gained = now.saturating_duration_since(self.refilled).as_secs_f64() * self.rate;
            // A burst of at most one second's worth (and at least one message).
            self.tokens = (self.tokens + gained).min(self.rate.max(1.0));
            self.refilled = now;
        }
        let mut out = Vec::new();
        while self.in_flight.len() < self.concurrency && (self.rate == 0.0 || self.tokens >= 1.0) {
            let Some(id) = self.pending.pop_front() else {
                break;
            };
            self.queued.remove(&id);
            if !ready(id) {
                continue;
            }
            if self.rate > 0.0 {
                self.tokens -= 1.0;
            }
            self.in_flight.insert(id);
            self.released += 1;
            out.push(id);
        }
        out
    }

    /// The attempt of a released message is over (whatever its result).
    pub fn finished(&mut self, id: QueueId) {
        self.in_flight.remove(&id);
    }

    pub fn is_done(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_empty()
    }

    pub fn left(&self) -> usize {
        self.pending.len()
    }

    /// When the next message may go, if one waits and a slot is free; `None` when only a
    /// finished attempt can free the way (the scheduler wakes up for that anyway).
    pub fn wake(&self, now: Instant) -> Option<Instant> {
        if self.pending.is_empty() || self.in_flight.len() >= self.concurrency {
            return None;
        }
        if self.rate == 0.0 || self.tokens >= 1.0 {
            return Some(now);
        }
        let wait = (1.0 - self.tokens) / self.rate;
        Some(now + Duration::from_secs_f64(wait.clamp(0.0, 1.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u64) -> Vec<QueueId> {
        (1..=n).map(QueueId).collect()
    }

    #[test]
    fn the_rate_paces_the_release() {
        let t0 = Instant::now();
        let mut drain = Drain::new(10.0, 100, t0);
        drain.extend(ids(50));
        assert_eq!(drain.next(t0, |_| true).len(), 1, "one at once");
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(drain.next(t1, |_| true).len(), 5);
        assert!(drain.wake(t1).unwrap() > t1);
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(drain.next(t2, |_| true).len(), 10, "burst capped at 1 s");
        assert_eq!(drain.left(), 34);
    }

    #[test]
    fn concurrency_caps_messages_in_flight() {
        let t0 = Instant::now();
        let mut drain = Drain::new(0.0, 3, t0);
        drain.extend(ids(5));
        drain.extend(ids(5));
        let first = drain.next(t0, |_| true);
        assert_eq!(first, ids(3));
        assert!(drain.next(t0, |_| true).is_empty());
        assert_eq!(drain.wake(t0), None);
        drain.finished(QueueId(2));
        assert_eq!(drain.next(t0, |_| true), [QueueId(4)]);
        drain.extend([QueueId(1)]);
        assert_eq!(drain.left(), 1, "in flight ones are not queued twice");
    }

    #[test]
    fn messages_that_cannot_go_are_skipped_without_using_a_slot() {
        let t0 = Instant::now();
        let mut drain = Drain::new(0.0, 2, t0);
        drain.extend(ids(4));
        let got = drain.next(t0, |id| id.0 % 2 == 0);
        assert_eq!(got, [QueueId(2), QueueId(4)]);
        drain.finished(QueueId(2));
        drain.finished(QueueId(4));
        assert!(drain.is_done());
    }
}
