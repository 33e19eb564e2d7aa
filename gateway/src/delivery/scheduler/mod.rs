//! The scheduler: one task that owns the in-memory view of the queue, decides what is due,
//! splits due messages into jobs per destination, merges the reports and writes the results
//! back through `queue.apply` (status update or delete, plus a DSN, in one commit).
//!
//! Invariants: a message has at most one attempt in flight and at most one write in flight;
//! it is dispatched again only after its previous write has been applied, so writes for one
//! message are never reordered. Nothing here blocks: store I/O runs in spawned tasks.
//!
//! Beside this file: `ops.rs` (operator and ETRN commands), `recovery.rs` (health, active
//! checks, paced release), `finish.rs` (an attempt's result written back), `index.rs`.

mod attempt;
mod finish;
mod index;
mod ops;
mod recovery;

use super::dest::DestQueue;
use super::drain::Drain;
use super::health::Health;
use super::settle::Outcome;
use super::worker::{Ctx, Report, ReportKind};
use crate::config::Config;
use crate::envelope::{Envelope, QueueId, Recipient};
use crate::queue::{Queue, schedule};
use crate::routing::{Destination, Routes};
use crate::smtp::client::wire::Reply;
use crate::time::unix_now;
use index::dests_of;
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
    /// Messages with open recipients per destination, as (received, id): oldest first, for
    /// recovery, probes and the queue gauges ([`Self::depths`]) without reading envelopes.
    by_dest: HashMap<Arc<Destination>, BTreeSet<(u64, QueueId)>>,
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
    /// When the destinations that are down or held are checked next.
    next_down_check: Instant,
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
    gone: bool,
    /// Why the body failed its checksum, when it did.
    corrupt: Option<String>,
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
        let configured = configured(&config, &mut routes, &health);
        Scheduler {
            health,
            drains: HashMap::new(),
            configured,
            checking: HashSet::new(),
            next_check: Instant::now() + config.flow.check_interval.0,
            next_down_check: Instant::now() + down_check_interval(&config),
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
            let key = (env.received, id);
            self.by_dest.entry(dest.clone()).or_default().insert(key);
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
        // While the queue cannot commit, a delivery's result could not be recorded and the
        // message would go out again after a restart: start nothing, look again soon.
        let stalled = self.queue.failing().is_some();
        while let Some(&(due, id)) = self.due.first() {
            if due > now || stalled {
                break;
            }
            self.due.pop_first();
            self.dispatch(id);
        }
        let probe = self.probes();
        let next_due = self.due.first().map(|&(due, _)| match stalled {
            true => Instant::now() + Duration::from_secs(1),
            false => {
                let wait_ms = due.saturating_mul(1000).saturating_sub(unix_now_ms());
                Instant::now() + Duration::from_millis(wait_ms)
            }
        });
        [next_due, probe, drains, Some(checks)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Messages with an open recipient per destination and the age of the oldest, for the
    /// metrics scrape: counted from the index, one step per destination.
    pub fn depths(&self) -> Depths {
        depths(&self.by_dest, unix_now())
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
                });
            }
        }
        self.due.clear();
    }
}

/// Destination (as its metric label) → (messages, age of the oldest in seconds).
pub type Depths = std::collections::BTreeMap<String, (u64, u64)>;

fn depths(by_dest: &HashMap<Arc<Destination>, BTreeSet<(u64, QueueId)>>, now: u64) -> Depths {
    let mut out = Depths::new();
    for (dest, ids) in by_dest {
        let Some(&(oldest, _)) = ids.first() else {
            continue;
        };
        let entry = out.entry(dest.to_string()).or_insert((0, 0));
        entry.0 += ids.len() as u64;
        entry.1 = entry.1.max(now.saturating_sub(oldest));
    }
    out
}

/// `flow.down_check_interval`, but never longer than `flow.check_interval`.
fn down_check_interval(config: &Config) -> Duration {
    let flow = &config.flow;
    flow.down_check_interval.0.min(flow.check_interval.0)
}

fn unix_now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Every configured domain's destination, and every named route's that does not depend on
/// the recipient domain (`mx` routes are tracked through their domains), watched for health.
fn configured(config: &Config, routes: &mut Routes, health: &Health) -> Vec<Arc<Destination>> {
    let mut configured: Vec<Arc<Destination>> = Vec::new();
    let mut probes: Vec<(Recipient, String)> = config
        .domains
        .iter()
        .map(|d| {
            let probe = Recipient::pending(format!("postmaster@{}", d.name));
            (probe, format!("domain {}", d.name))
        })
        .collect();
    for route in &config.routes {
        let mut probe = Recipient::pending("postmaster@route.invalid");
        probe.route = Some(route.name.clone());
        probes.push((probe, format!("route {}", route.name)));
    }
    let mut used_by: HashMap<Arc<Destination>, Vec<String>> = HashMap::new();
    for (probe, label) in &probes {
        let dest = routes.get(probe);
        if dest.domain.as_deref() == Some("route.invalid") {
            continue;
        }
        used_by.entry(dest.clone()).or_default().push(label.clone());
        if !configured.contains(&dest) {
            health.track(&dest);
            configured.push(dest);
        }
    }
    health.label(&used_by);
    configured
}

impl Scheduler {
    /// A console commit: routes, retry settings and the watched next hops come from
    /// `config` from now on. Waiting messages are re-routed at once; those in flight finish
    /// on their old route and are re-routed when they come back.
    pub fn reload(&mut self, config: Arc<Config>) {
        self.routes = Routes::new(config.clone());
        self.configured = configured(&config, &mut self.routes, &self.health);
        self.hold = super::hold_period(&config);
        self.ctx.walker.reconfigure(&config);
        self.config = config;
        let ids: Vec<QueueId> = self.messages.keys().copied().collect();
        for id in ids {
            self.reindex(id);
        }
    }
}

#[cfg(test)]
mod tests;
