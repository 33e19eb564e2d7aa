//! One attempt of a message: its open recipients grouped into jobs per destination
//! (deferred at once where the destination is held), and the reports merged back.

use super::{Attempt, Down, MAX_IDLE_QUEUES, Scheduler, State};
use crate::delivery::dest::DestQueue;
use crate::delivery::health::Seen;
use crate::delivery::settle::Outcome;
use crate::delivery::worker::{Job, Report, ReportKind};
use crate::envelope::QueueId;
use crate::routing::Destination;
use crate::smtp::client::wire::Reply;
use std::sync::Arc;
use std::time::Instant;

impl Scheduler {
    pub(super) fn dispatch(&mut self, id: QueueId) {
        let Some(msg) = self.loaded.get(&id).cloned() else {
            return;
        };
        let mut groups: Vec<(Arc<Destination>, Vec<usize>)> = Vec::new();
        for (index, rcpt) in msg.env.recipients.iter().enumerate() {
            if !rcpt.status.is_open() {
                continue;
            }
            let dest = self.routes.get(rcpt);
            match groups.iter_mut().find(|(d, _)| *d == dest) {
                Some((_, rcpts)) => rcpts.push(index),
                None => groups.push((dest, vec![index])),
            }
        }
        let mut attempt = Attempt {
            jobs: 0,
            outcomes: Vec::new(),
            gone: false,
            corrupt: None,
            retry_now: false,
        };
        let held = Instant::now();
        for (dest, rcpts) in groups {
            if let Some(down) = self.down.get(&dest).filter(|d| d.until > held) {
                // Held: no connection attempt until the destination's hold ends (or an
                // active check or a flush ends it sooner).
                log::info!("{id} deferred, {dest} held: {}", down.reply);
                attempt
                    .outcomes
                    .extend(rcpts.into_iter().map(|index| Outcome {
                        index,
                        reply: down.reply.clone(),
                        mta: None,
                        dsn_passed: false,
                    }));
                continue;
            }
            if !self.dests.contains_key(&dest) && self.dests.len() >= MAX_IDLE_QUEUES {
                // DSNs to many outside domains: do not keep a queue per domain forever.
                self.dests.retain(|_, dq| !dq.is_idle());
            }
            let dq = self
                .dests
                .entry(dest.clone())
                .or_insert_with(|| DestQueue::new(dest))
                .clone();
            dq.push(
                Job {
                    msg: msg.clone(),
                    rcpts,
                },
                &self.ctx,
            );
            attempt.jobs += 1;
            self.jobs_in_flight += 1;
        }
        let finished_now = attempt.jobs == 0;
        let Some(entry) = self.messages.get_mut(&id) else {
            return;
        };
        entry.state = State::Attempt;
        self.attempts.insert(id, attempt);
        if finished_now {
            self.settle(id);
        }
    }

    pub(super) fn report(&mut self, report: Report) {
        self.jobs_in_flight = self.jobs_in_flight.saturating_sub(1);
        if let Some(drain) = self.drains.get_mut(&report.dest) {
            drain.finished(report.id);
        }
        match report.kind {
            ReportKind::Unreachable { permanent: false } => {
                let reply = report.outcomes.first().map(|o| o.reply.clone());
                let reply =
                    reply.unwrap_or_else(|| Reply::local(451, "4.4.1 next hop unreachable"));
                self.seen(&report.dest, Seen::Failed(reply.clone()));
                let until = Instant::now() + self.hold;
                self.down.insert(
                    report.dest.clone(),
                    Down {
                        until,
                        reply,
                        probed: false,
                    },
                );
            }
            ReportKind::Attempted { reached: true } => {
                let was_held = self.down.remove(&report.dest).is_some();
                if !self.seen(&report.dest, Seen::Delivered) && was_held {
                    self.recovered(&report.dest, "a delivery got through");
                }
            }
            _ => {}
        }
        let Some(entry) = self.messages.get_mut(&report.id) else {
            return; // forgotten meanwhile
        };
        let (State::Attempt, Some(attempt)) = (&entry.state, self.attempts.get_mut(&report.id))
        else {
            return;
        };
        attempt.jobs = attempt.jobs.saturating_sub(1);
        attempt.outcomes.extend(report.outcomes);
        attempt.gone |= report.kind == ReportKind::Gone;
        if let ReportKind::Corrupt(detail) = report.kind {
            attempt.corrupt = Some(detail);
        }
        if attempt.jobs == 0 {
            self.settle(report.id);
        }
    }
}
