//! The scheduler: one task that owns the in-memory view of the queue, decides what is due,
//! splits due messages into jobs per destination, merges the reports and writes the results
//! back through `queue.apply` (status update or delete, plus a DSN, in one commit).
//!
//! Invariants: a message has at most one attempt in flight and at most one write in flight;
//! it is dispatched again only after its previous write has been applied, so writes for one
//! message are never reordered. Nothing here blocks: store I/O runs in spawned tasks.

use super::Command;
use super::dest::DestQueue;
use super::record::Write;
use super::settle::{self, Outcome};
use super::wire::Reply;
use super::worker::{Ctx, Job, Message, Report, ReportKind};
use crate::config::Config;
use crate::queue::{Change, Envelope, Queue, QueueId, schedule};
use crate::routing::{Destination, Routes};
use crate::time::unix_now;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Destination queues kept before idle ones are pruned.
const MAX_IDLE_QUEUES: usize = 1024;

pub enum Event {
    Report(Report),
    /// The write for this message is durable (or failed and was logged).
    Applied(QueueId),
}

pub struct Scheduler {
    pub config: Arc<Config>,
    pub queue: Queue,
    pub ctx: Arc<Ctx>,
    pub events: mpsc::UnboundedSender<Event>,
    routes: Routes,
    messages: HashMap<QueueId, Entry>,
    /// Waiting messages by (due unix seconds, id).
    due: BTreeSet<(u64, QueueId)>,
    dests: HashMap<Arc<Destination>, Arc<DestQueue>>,
    down: HashMap<Arc<Destination>, Down>,
    /// Messages with open recipients per destination, for recovery and probes.
    by_dest: HashMap<Arc<Destination>, HashSet<QueueId>>,
    jobs_in_flight: usize,
    /// How long a failing destination is held before it is tried again.
    hold: Duration,
}

struct Entry {
    env: Envelope,
    state: State,
    dests: Vec<Arc<Destination>>,
}

enum State {
    /// In `due` at this time.
    Waiting(u64),
    Attempt(Attempt),
    /// A write is in flight; `due_now`: dispatch as soon as it is applied.
    Writing {
        due_now: bool,
    },
}

struct Attempt {
    jobs: usize,
    outcomes: Vec<Outcome>,
    body: Option<Arc<Vec<u8>>>,
    gone: bool,
    retry_now: bool,
}

struct Down {
    until: Instant,
    reply: Reply,
    probed: bool,
}

impl Scheduler {
    pub fn new(
        config: Arc<Config>,
        queue: Queue,
        ctx: Arc<Ctx>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Scheduler {
        let hold = super::hold_period(&config);
        Scheduler {
            routes: Routes::new(config.clone()),
            config,
            queue,
            ctx,
            events,
            messages: HashMap::new(),
            due: BTreeSet::new(),
            dests: HashMap::new(),
            down: HashMap::new(),
            by_dest: HashMap::new(),
            jobs_in_flight: 0,
            hold,
        }
    }

    /// A message found in the queue at start. Its stored next attempt was computed with
    /// the configuration of its time; the wait is cut to what the current `retry_intervals`
    /// give, so shortening them (or fixing what made mail wait) takes effect on restart.
    pub fn resume(&mut self, mut env: Envelope) {
        let now = unix_now();
        let wait = schedule::next_attempt(now, env.attempts, &self.config.queue);
        env.next_attempt = env.next_attempt.min(wait);
        self.add(env);
    }

    /// A message to deliver: new or re-queued. Known ids are ignored.
    pub fn add(&mut self, env: Envelope) {
        if self.messages.contains_key(&env.id) {
            return;
        }
        let id = env.id;
        let due = env.next_attempt;
        let dests = dests_of(&mut self.routes, &env);
        for dest in &dests {
            self.by_dest.entry(dest.clone()).or_default().insert(id);
        }
        self.messages.insert(
            id,
            Entry {
                env,
                state: State::Waiting(due),
                dests,
            },
        );
        self.due.insert((due, id));
    }

    pub fn command(&mut self, command: Command) {
        let now = unix_now();
        match command {
            Command::Retry(id) => {
                self.ctx.walker.forget_failures();
                if let Some(entry) = self.messages.get(&id) {
                    for dest in entry.dests.clone() {
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
        }
    }

    pub fn event(&mut self, event: Event) {
        match event {
            Event::Report(report) => self.report(report),
            Event::Applied(id) => {
                if let Some(entry) = self.messages.get_mut(&id)
                    && let State::Writing { due_now } = entry.state
                {
                    let due = if due_now { 0 } else { entry.env.next_attempt };
                    entry.state = State::Waiting(due);
                    self.due.insert((due, id));
                }
            }
        }
    }

    /// Dispatches everything due; returns when to wake up next.
    pub fn tick(&mut self) -> Option<Instant> {
        let now = unix_now();
        while let Some(&(due, id)) = self.due.first() {
            if due > now {
                break;
            }
            self.due.pop_first();
            self.dispatch(id);
        }
        let probe = self.probes();
        let next_due = self.due.first().map(|&(due, _)| {
            let wait_ms = due.saturating_mul(1000).saturating_sub(unix_now_ms());
            Instant::now() + Duration::from_millis(wait_ms)
        });
        match (next_due, probe) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn jobs_in_flight(&self) -> usize {
        self.jobs_in_flight
    }

    /// Shutdown: queued jobs will never run; their messages keep their stored state.
    pub fn abandon_queued(&mut self) {
        let queues: Vec<Arc<DestQueue>> = self.dests.values().cloned().collect();
        for dq in queues {
            for job in dq.drain() {
                self.report(Report {
                    id: job.msg.env.id,
                    dest: dq.dest.clone(),
                    kind: ReportKind::Abandoned,
                    outcomes: Vec::new(),
                    body: None,
                });
            }
        }
        self.due.clear();
    }

    fn dispatch(&mut self, id: QueueId) {
        let Some(entry) = self.messages.get_mut(&id) else {
            return;
        };
        let msg = Arc::new(Message::new(entry.env.clone()));
        let mut groups: Vec<(Arc<Destination>, Vec<usize>)> = Vec::new();
        for (index, rcpt) in entry.env.recipients.iter().enumerate() {
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
            body: None,
            gone: false,
            retry_now: false,
        };
        let held = Instant::now();
        for (dest, rcpts) in groups {
            if let Some(down) = self.down.get(&dest).filter(|d| d.until > held) {
                // Held: no connection attempt until the destination's hold ends.
                log::info!("{id} deferred, {dest} held: {}", down.reply);
                attempt
                    .outcomes
                    .extend(rcpts.into_iter().map(|index| Outcome {
                        index,
                        reply: down.reply.clone(),
                        mta: None,
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
        entry.state = State::Attempt(attempt);
        if finished_now {
            self.settle(id);
        }
    }

    fn report(&mut self, report: Report) {
        self.jobs_in_flight = self.jobs_in_flight.saturating_sub(1);
        match report.kind {
            ReportKind::Unreachable { permanent: false } => {
                let reply = report.outcomes.first().map(|o| o.reply.clone());
                let reply =
                    reply.unwrap_or_else(|| Reply::local(451, "4.4.1 next hop unreachable"));
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
            ReportKind::Attempted { reached: true } if self.down.remove(&report.dest).is_some() => {
                self.recovered(&report.dest);
            }
            _ => {}
        }
        let Some(entry) = self.messages.get_mut(&report.id) else {
            return; // forgotten meanwhile
        };
        let State::Attempt(attempt) = &mut entry.state else {
            return;
        };
        attempt.jobs = attempt.jobs.saturating_sub(1);
        attempt.outcomes.extend(report.outcomes);
        attempt.gone |= report.kind == ReportKind::Gone;
        if attempt.body.is_none() {
            attempt.body = report.body;
        }
        if attempt.jobs == 0 {
            self.settle(report.id);
        }
    }

    /// The attempt is complete: apply it to the envelope and write the result.
    fn settle(&mut self, id: QueueId) {
        let Some(entry) = self.messages.get_mut(&id) else {
            return;
        };
        let State::Attempt(mut attempt) =
            std::mem::replace(&mut entry.state, State::Writing { due_now: false })
        else {
            return;
        };
        if attempt.gone {
            self.forget(id);
            return;
        }
        if attempt.outcomes.is_empty() && !entry.env.is_finished() {
            // Abandoned at shutdown: nothing changed, nothing to write.
            let due = entry.env.next_attempt;
            entry.state = State::Waiting(due);
            self.due.insert((due, id));
            return;
        }
        if super::fallback::reroute(&self.routes, &mut entry.env, &mut attempt.outcomes) {
            // The fallback route gets the recipient at once, not after a retry interval.
            attempt.retry_now = true;
        }
        let now = unix_now();
        let settled = settle::settle(&mut entry.env, &attempt.outcomes, now, &self.config.queue);
        let failed = settled.failed;
        let change = if settled.finished {
            Change::Delete(id)
        } else {
            Change::Update(entry.env.clone())
        };
        let original = entry.env.clone();
        entry.state = State::Writing {
            due_now: attempt.retry_now,
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
        };
        self.ctx
            .tracker
            .spawn(write.run(original, failed, attempt.body, change, now));
    }

    fn make_due(&mut self, id: QueueId, now: u64) {
        let Some(entry) = self.messages.get_mut(&id) else {
            return;
        };
        match &mut entry.state {
            State::Waiting(due) => {
                self.due.remove(&(*due, id));
                *due = now;
                self.due.insert((now, id));
            }
            State::Attempt(attempt) => attempt.retry_now = true,
            State::Writing { due_now } => *due_now = true,
        }
    }

    fn forget(&mut self, id: QueueId) {
        if let Some(entry) = self.messages.remove(&id) {
            if let State::Waiting(due) = entry.state {
                self.due.remove(&(due, id));
            }
            for dest in &entry.dests {
                if let Some(ids) = self.by_dest.get_mut(dest) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.by_dest.remove(dest);
                        self.drop_idle_queue(dest);
                    }
                }
            }
        }
    }

    fn reindex(&mut self, id: QueueId) {
        let Some(entry) = self.messages.get_mut(&id) else {
            return;
        };
        let fresh = dests_of(&mut self.routes, &entry.env);
        let old = std::mem::replace(&mut entry.dests, fresh.clone());
        for dest in old.iter().filter(|d| !fresh.contains(d)) {
            if let Some(ids) = self.by_dest.get_mut(dest) {
                ids.remove(&id);
            }
        }
        for dest in fresh {
            self.by_dest.entry(dest).or_default().insert(id);
        }
    }

    fn drop_idle_queue(&mut self, dest: &Arc<Destination>) {
        if self.dests.get(dest).is_some_and(|dq| dq.is_idle()) {
            self.dests.remove(dest);
        }
    }

    /// A held destination answered again: everything waiting for it goes now, instead of
    /// after each message's own back-off.
    fn recovered(&mut self, dest: &Arc<Destination>) {
        let now = unix_now();
        let ids: Vec<QueueId> = self
            .by_dest
            .get(dest)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        log::info!(
            "{dest} is reachable again; releasing {} held messages",
            ids.len()
        );
        for id in ids {
            self.make_due(id, now);
        }
    }

    /// When a hold ends, one waiting message is tried at once as a probe, so a destination
    /// that comes back is noticed within one hold period whatever the messages' back-off.
    fn probes(&mut self) -> Option<Instant> {
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
                    .filter_map(|id| match self.messages.get(id).map(|e| &e.state) {
                        Some(State::Waiting(due)) if *due > unix => Some((*due, *id)),
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

/// The distinct destinations of the recipients still to deliver.
fn dests_of(routes: &mut Routes, env: &Envelope) -> Vec<Arc<Destination>> {
    let mut dests: Vec<Arc<Destination>> = Vec::new();
    for rcpt in env.recipients.iter().filter(|r| r.status.is_open()) {
        let dest = routes.get(rcpt);
        if !dests.contains(&dest) {
            dests.push(dest);
        }
    }
    dests
}

fn unix_now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map(|d| d.as_millis() as u64).unwrap_or(0)
}
