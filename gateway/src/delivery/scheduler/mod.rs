//! The scheduler: one task that owns the in-memory view of the queue, decides what is due,
//! splits due messages into jobs per destination, merges the reports and writes the results
//! back through `queue.apply` (status update or delete, plus a DSN, in one commit).
//!
//! Invariants: a message has at most one attempt in flight and at most one write in flight;
//! it is dispatched again only after its previous write has been applied, so writes for one
//! message are never reordered. Nothing here blocks: store I/O runs in spawned tasks.
//!
//! `ops.rs` holds what reacts to the outside: operator and ETRN commands (hold, release,
//! flush), next-hop health changes and the paced release of waiting mail, active checks.

mod ops;

use super::dest::DestQueue;
use super::drain::Drain;
use super::health::{Health, Seen};
use super::record::Write;
use super::settle::{self, Outcome};
use super::wire::Reply;
use super::worker::{Ctx, Job, Message, Report, ReportKind};
use crate::config::Config;
use crate::queue::{Change, Envelope, Queue, QueueId, Recipient, schedule};
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
    /// An active check of a destination ended.
    Checked(Arc<Destination>, Result<(), Reply>),
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
    pub health: Health,
    /// Paced releases in progress, per destination.
    drains: HashMap<Arc<Destination>, Drain>,
    /// Destinations of the configured domains: always checked.
    configured: Vec<Arc<Destination>>,
    /// Active checks in flight, and when the next round starts.
    checking: HashSet<Arc<Destination>>,
    next_check: Instant,
}

struct Entry {
    env: Envelope,
    state: State,
    dests: Vec<Arc<Destination>>,
}

enum State {
    /// In `due` at this time.
    Waiting(u64),
    /// `env.held`: not in `due`, never dispatched until released.
    Held,
    Attempt(Attempt),
    /// A write is in flight; `due_now`: dispatch as soon as it is applied; `rewrite`: the
    /// envelope changed meanwhile (hold, release) and must be written again.
    Writing {
        due_now: bool,
        rewrite: bool,
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
        health: Health,
    ) -> Scheduler {
        let hold = super::hold_period(&config);
        let mut routes = Routes::new(config.clone());
        let mut configured: Vec<Arc<Destination>> = Vec::new();
        // Every configured domain's destination, and every named route's that does not
        // depend on the recipient domain (`mx` routes are tracked through their domains).
        let mut probes: Vec<Recipient> = config
            .domains
            .iter()
            .map(|d| Recipient::pending(format!("postmaster@{}", d.name)))
            .collect();
        for route in &config.routes {
            let mut probe = Recipient::pending("postmaster@route.invalid");
            probe.route = Some(route.name.clone());
            probes.push(probe);
        }
        for probe in &probes {
            let dest = routes.get(probe);
            if dest.domain.as_deref() == Some("route.invalid") {
                continue;
            }
            if !configured.contains(&dest) {
                health.track(&dest);
                configured.push(dest);
            }
        }
        Scheduler {
            health,
            drains: HashMap::new(),
            configured,
            checking: HashSet::new(),
            next_check: Instant::now() + config.flow.check_interval.0,
            routes,
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
            self.health.track(dest);
        }
        let state = if env.held {
            log::info!("{id} is held; it waits for `edgemx queue release`");
            State::Held
        } else {
            self.due.insert((due, id));
            State::Waiting(due)
        };
        self.messages.insert(id, Entry { env, state, dests });
    }

    pub fn event(&mut self, event: Event) {
        match event {
            Event::Report(report) => self.report(report),
            Event::Applied(id) => {
                let Some(entry) = self.messages.get_mut(&id) else {
                    return;
                };
                let State::Writing { due_now, rewrite } = entry.state else {
                    return;
                };
                if rewrite {
                    entry.state = State::Writing {
                        due_now,
                        rewrite: false,
                    };
                    self.write_envelope(id);
                } else if entry.env.held {
                    entry.state = State::Held;
                } else {
                    let due = if due_now { 0 } else { entry.env.next_attempt };
                    entry.state = State::Waiting(due);
                    self.due.insert((due, id));
                }
            }
            Event::Checked(dest, result) => self.checked(dest, result),
        }
    }

    /// Dispatches everything due; returns when to wake up next.
    pub fn tick(&mut self) -> Option<Instant> {
        let drains = self.release_drains();
        let checks = self.start_checks();
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
        [next_due, probe, drains, Some(checks)]
            .into_iter()
            .flatten()
            .min()
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
                // Held: no connection attempt until the destination's hold ends (or an
                // active check or a flush ends it sooner).
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
        if super::fallback::reroute(&self.routes, &mut entry.env, &mut attempt.outcomes) {
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
        );
        let delayed = settle::delay_notice(&mut entry.env, now, flow.delay_notice.0);
        let failed = settled.failed;
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
        };
        self.ctx
            .tracker
            .spawn(write.run(original, failed, attempt.body, change, now));
    }

    /// Writes the envelope as the scheduler holds it (after hold or release); the entry
    /// must be in `Writing` so no other write for it runs meanwhile.
    fn write_envelope(&mut self, id: QueueId) {
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
        };
        let change = Change::Update(entry.env.clone());
        let run = write.run(entry.env.clone(), Vec::new(), None, change, unix_now());
        self.ctx.tracker.spawn(run);
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
            State::Held => {}
            State::Attempt(attempt) => attempt.retry_now = true,
            State::Writing { due_now, .. } => *due_now = true,
        }
    }

    fn forget(&mut self, id: QueueId) {
        self.drained(id);
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
