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
use super::worker::{Ctx, Message, Report, ReportKind};
use crate::config::Config;
use crate::envelope::{Envelope, QueueId, Recipient};
use crate::queue::{Queue, Stored, schedule};
use crate::routing::{Destination, Routes};
use crate::smtp::client::wire::Reply;
use crate::time::unix_now;
use index::{Interner, Keys};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Destination queues kept before idle ones are pruned.
const MAX_IDLE_QUEUES: usize = 1024;

/// Messages whose envelope is in memory for an attempt (being read, or with jobs queued or
/// running) at most; the rest wait in `due`. A release of a million messages then reads
/// and holds this many envelopes at a time, not all of them.
pub(super) const MAX_ACTIVE: usize = 8_192;

pub enum Event {
    Report(Report),
    /// The write for this message is durable (or failed and was logged).
    Applied(QueueId),
    /// An active check of a destination ended.
    Checked(Arc<Destination>, Result<(), Reply>),
    /// Envelopes read for an attempt, or why they could not be.
    Loaded(Read),
}

/// Envelopes read for an attempt (`None`: deleted meanwhile), or the ids and why not.
pub type Read = Result<Vec<(QueueId, Option<Envelope>)>, (Vec<QueueId>, String)>;

pub struct Scheduler {
    pub config: Arc<Config>,
    pub queue: Queue,
    pub ctx: Arc<Ctx>,
    pub events: mpsc::UnboundedSender<Event>,
    routes: Routes,
    /// Every queued message in a compact form; the envelope itself stays in the queue
    /// except in `loaded`.
    messages: HashMap<QueueId, Entry>,
    /// Envelopes in memory: new mail until its first dispatch, and messages in an attempt
    /// (shared with their jobs).
    loaded: HashMap<QueueId, Arc<Message>>,
    /// Messages whose envelopes are being read for an attempt.
    loading: usize,
    keys: Interner,
    /// Waiting messages by (due unix seconds, id).
    due: BTreeSet<(Secs, QueueId)>,
    /// Attempts in progress (their messages are in [`State::Attempt`]).
    attempts: HashMap<QueueId, Attempt>,
    dests: HashMap<Arc<Destination>, Arc<DestQueue>>,
    down: HashMap<Arc<Destination>, Down>,
    /// Messages with open recipients per destination, as (received, id): oldest first, for
    /// recovery, probes and the queue gauges ([`Self::depths`]) without reading envelopes.
    by_dest: HashMap<Arc<Destination>, BTreeSet<(Secs, QueueId)>>,
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

/// Unix seconds as the scheduler keeps them: 4 bytes (good until 2106).
type Secs = u32;

fn secs(unix: u64) -> Secs {
    Secs::try_from(unix).unwrap_or(Secs::MAX)
}

/// One queued message as the scheduler keeps it: 24 bytes, whatever its envelope holds.
struct Entry {
    received: Secs,
    state: State,
    /// `Envelope::held`, and whether for a body that failed its checksum (released only by
    /// its id, after the body is read again).
    held: bool,
    corrupt: bool,
    /// Where its open recipients go.
    keys: Keys,
}

enum State {
    /// In `due` at this time.
    Waiting(Secs),
    /// Held: not in `due`, never dispatched until released.
    Held,
    /// Its envelope is being read for an attempt.
    Loading,
    /// In `attempts`.
    Attempt,
    /// A write is in flight; then it waits until `next` (`due_now`: dispatch as soon as it
    /// is applied); `rewrite`: the hold changed meanwhile and must be written again.
    Writing {
        next: Secs,
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

/// What the queue held at start, built while the queue is read (`Queue::open_each`), so the
/// envelopes are never all in memory at once.
pub struct Backlog {
    config: Arc<Config>,
    now: u64,
    messages: HashMap<QueueId, Entry>,
    keys: Interner,
    held: usize,
}

impl Backlog {
    pub fn new(config: &Arc<Config>) -> Backlog {
        Backlog {
            config: config.clone(),
            now: unix_now(),
            messages: HashMap::new(),
            keys: Interner::default(),
            held: 0,
        }
    }

    /// A message found in the queue. Its stored next attempt was computed with the
    /// configuration of its time; the wait is cut to what the current `retry_intervals`
    /// give, so shortening them (or fixing what made mail wait) takes effect on restart.
    pub fn push(&mut self, env: Envelope) {
        let wait = schedule::next_attempt(self.now, env.attempts, &self.config.queue);
        let due = secs(env.next_attempt.min(wait));
        let state = match env.held {
            true => State::Held,
            false => State::Waiting(due),
        };
        self.held += usize::from(env.held);
        let entry = Entry::new(&env, state, &mut self.keys);
        self.messages.insert(env.id, entry);
    }

    /// A backlog of `envelopes` (tests, and callers that read the queue with `Queue::open`).
    pub fn of(config: &Arc<Config>, envelopes: Vec<Envelope>) -> Backlog {
        let mut backlog = Backlog::new(config);
        envelopes.into_iter().for_each(|env| backlog.push(env));
        backlog
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

impl Entry {
    fn new(env: &Envelope, state: State, keys: &mut Interner) -> Entry {
        Entry {
            received: secs(env.received),
            state,
            held: env.held,
            corrupt: matches!(env.hold, Some(crate::envelope::Hold::Corrupt { .. })),
            keys: keys.of(env),
        }
    }
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
            loaded: HashMap::new(),
            loading: 0,
            keys: Interner::default(),
            due: BTreeSet::new(),
            attempts: HashMap::new(),
            dests: HashMap::new(),
            down: HashMap::new(),
            by_dest: HashMap::new(),
            jobs_in_flight: 0,
            hold,
        }
    }

    /// Takes over what the queue held at start.
    pub fn resume(&mut self, backlog: Backlog) {
        if backlog.held > 0 {
            log::info!(
                "{} queued messages are held; they wait for `edgemx queue release`",
                backlog.held
            );
        }
        self.keys = backlog.keys;
        self.messages = backlog.messages;
        for (&id, entry) in &self.messages {
            if let State::Waiting(due) = entry.state {
                self.due.insert((due, id));
            }
        }
        self.rebuild_index();
    }

    /// A message to deliver: new or re-queued. Known ids are ignored. When it can go at
    /// once it is dispatched here with the envelope in hand (no second read); otherwise it
    /// waits in `due` and its envelope is read again then. So an envelope in `loaded` always
    /// belongs to an attempt: none waits there holding a slot of the active set.
    pub fn add(&mut self, stored: Stored) {
        let Stored {
            envelope: env,
            body,
        } = stored;
        if self.messages.contains_key(&env.id) {
            return;
        }
        let id = env.id;
        let due = secs(env.next_attempt);
        let go = !env.held
            && env.next_attempt <= unix_now()
            && self.active() < MAX_ACTIVE
            && self.queue.failing().is_none();
        let state = if env.held {
            log::info!("{id} is held; it waits for `edgemx queue release`");
            State::Held
        } else if go {
            State::Loading // until `dispatch` just below
        } else {
            self.due.insert((due, id));
            State::Waiting(due)
        };
        let entry = Entry::new(&env, state, &mut self.keys);
        self.index(id, entry.received, &entry.keys.clone());
        self.messages.insert(id, entry);
        if go {
            self.loaded.insert(id, Arc::new(Message::new(env, body)));
            self.dispatch(id);
        }
    }

    /// Messages in an attempt or being read for one.
    fn active(&self) -> usize {
        self.loaded.len() + self.loading
    }

    pub fn event(&mut self, event: Event) {
        match event {
            Event::Report(report) => self.report(report),
            Event::Applied(id) => {
                let Some(entry) = self.messages.get_mut(&id) else {
                    return;
                };
                let State::Writing {
                    next,
                    due_now,
                    rewrite,
                } = entry.state
                else {
                    return;
                };
                if rewrite {
                    entry.state = State::Writing {
                        next,
                        due_now,
                        rewrite: false,
                    };
                    self.write_hold(id);
                } else if entry.held {
                    entry.state = State::Held;
                } else {
                    let due = if due_now { 0 } else { next };
                    entry.state = State::Waiting(due);
                    self.due.insert((due, id));
                }
            }
            Event::Checked(dest, result) => self.checked(dest, result),
            Event::Loaded(loaded) => self.loaded(loaded),
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
        let mut to_read = Vec::new();
        while let Some(&(due, id)) = self.due.first() {
            if u64::from(due) > now || stalled {
                break;
            }
            // An envelope already in memory costs no slot; one to read waits for a slot.
            let in_memory = self.loaded.contains_key(&id);
            if !in_memory && self.active() + to_read.len() >= MAX_ACTIVE {
                break;
            }
            self.due.pop_first();
            match in_memory {
                true => self.dispatch(id),
                false => to_read.push(id),
            }
        }
        self.read(to_read);
        self.keys.prune();
        let probe = self.probes();
        let full = self.active() >= MAX_ACTIVE;
        let next_due = self.due.first().map(|&(due, _)| match stalled {
            // While the active set is full, a finished attempt (an event) wakes the loop.
            false if full => Instant::now() + Duration::from_secs(60),
            true => Instant::now() + Duration::from_secs(1),
            false => {
                let wait_ms = u64::from(due) * 1000;
                let wait_ms = wait_ms.saturating_sub(unix_now_ms());
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

    /// Reads the envelopes of `ids` (in one read transaction) for their attempts.
    fn read(&mut self, ids: Vec<QueueId>) {
        if ids.is_empty() {
            return;
        }
        for id in &ids {
            if let Some(entry) = self.messages.get_mut(id) {
                entry.state = State::Loading;
            }
        }
        self.loading += ids.len();
        let (queue, events) = (self.queue.clone(), self.events.clone());
        self.ctx.tracker.spawn(async move {
            let read = queue.envelopes(ids.clone()).await;
            let _ = events.send(Event::Loaded(read.map_err(|e| (ids, e.to_string()))));
        });
    }

    /// Envelopes read for their attempts: dispatched, or written first when a hold came
    /// meanwhile. After shutdown or a failed read they wait again.
    fn loaded(&mut self, read: Read) {
        let read = match read {
            Ok(read) => read,
            Err((ids, why)) => {
                log::error!(
                    "delivery: cannot read {} envelopes: {why}; trying again in a minute",
                    ids.len()
                );
                let later = unix_now() + 60;
                self.loading = self.loading.saturating_sub(ids.len());
                ids.into_iter().for_each(|id| self.wait_again(id, later));
                return;
            }
        };
        self.loading = self.loading.saturating_sub(read.len());
        let stopping = self.ctx.shutdown.is_cancelled();
        for (id, env) in read {
            let Some(entry) = self.messages.get_mut(&id) else {
                continue; // deleted meanwhile
            };
            if !matches!(entry.state, State::Loading) {
                continue;
            }
            let Some(mut env) = env else {
                log::warn!("{id} is no longer in the queue; forgotten");
                self.forget(id);
                continue;
            };
            if entry.held {
                // Held while it was read: the hold is written instead of an attempt.
                if !env.held {
                    env.hold_for(crate::envelope::Hold::Operator);
                }
                self.write_held(id, env);
                continue;
            }
            if stopping {
                self.wait_again(id, env.next_attempt);
                continue;
            }
            self.loaded.insert(id, Arc::new(Message::new(env, None)));
            self.dispatch(id);
        }
    }

    fn wait_again(&mut self, id: QueueId, due: u64) {
        if let Some(entry) = self.messages.get_mut(&id)
            && matches!(entry.state, State::Loading)
        {
            entry.state = State::Waiting(secs(due));
            self.due.insert((secs(due), id));
        }
    }
}

/// Destination (as its metric label) → (messages, age of the oldest in seconds).
pub type Depths = std::collections::BTreeMap<String, (u64, u64)>;

fn depths(by_dest: &HashMap<Arc<Destination>, BTreeSet<(Secs, QueueId)>>, now: u64) -> Depths {
    let mut out = Depths::new();
    for (dest, ids) in by_dest {
        let Some(&(oldest, _)) = ids.first() else {
            continue;
        };
        let entry = out.entry(dest.to_string()).or_insert((0, 0));
        entry.0 += ids.len() as u64;
        entry.1 = entry.1.max(now.saturating_sub(u64::from(oldest)));
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
        self.rebuild_index();
    }
}

#[cfg(test)]
mod tests;
