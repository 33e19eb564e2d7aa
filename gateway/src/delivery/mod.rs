//! Delivery: the scheduler that takes queued messages to their next hops, the SMTP client,
//! next-hop selection and failover, connection reuse and the TLS policy towards next hops.
//!
//! Owns everything between "the message is durably queued" and "its recipients' new state
//! is durably recorded". It reads and writes the queue only through [`Queue`] (`body`,
//! `apply`, `subscribe`) and never touches inbound sessions.
//!
//! # Layout
//!
//! | file | job |
//! | --- | --- |
//! | `scheduler/` | what is due (timer), jobs per destination, merging per-destination reports |
//! | `scheduler/ops.rs` | hold, release, flush, ETRN; health changes; active checks |
//! | `health.rs` | up/down per destination from results and checks, with hysteresis |
//! | `drain.rs` | paced release of waiting mail (rate, concurrency) |
//! | `record.rs` | an attempt's result (+ DSN) → one `queue.apply` |
//! | `dest.rs` | a destination's job queue: wakes idle workers, starts new ones within limits |
//! | `worker.rs` | workers holding and reusing connections; one log line per attempt |
//! | `hops.rs` | next hops in order, `mx` expansion, failover, unreachable-address memory |
//! | `client.rs` | the SMTP client session: connect, greeting, EHLO, STARTTLS |
//! | `client/transaction.rs` | MAIL/RCPT/DATA, pipelined when offered, per-recipient replies |
//! | `wire.rs` | stream (plain or TLS) and reply parsing |
//! | `settle.rs` | replies → recipient status, expiry, next attempt (pure) |
//! | `fallback.rs` | unknown users moved to their route's fallback instead of bouncing |
//!
//! Semantics: at least once. A result is written only after the next hop answered; a crash
//! before the write repeats the delivery, never loses it. A destination whose next hops
//! all fail is *held* for the first retry interval (no connection attempts, jobs deferred
//! at once); when the hold ends one message probes it, and the first success releases every
//! message waiting for it, whatever their own back-off. Active checks (connect, EHLO, QUIT
//! every `flow.check_interval`) watch every destination with mail or a configured domain;
//! when one comes back its mail is released at once, paced by `flow.drain_rate` and
//! `flow.drain_concurrency`.

pub mod budget;
mod dest;
mod drain;
mod explain;
mod fallback;
pub mod health;
mod hops;
pub mod quarantine;
mod record;
mod scheduler;
pub mod secure;
pub use explain::{HostView, TlsPolicyView};
mod settle;
mod worker;

#[cfg(test)]
mod backlog_tests;
#[cfg(test)]
mod budget_tests;
#[cfg(test)]
mod corrupt_tests;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod reload_tests;
#[cfg(test)]
mod stall_tests;
#[cfg(test)]
mod support;
#[cfg(test)]
mod tests;

pub use crate::routing::Destination;
pub use crate::smtp::client::wire::Reply;
/// The next-hop reply reader; public for the parser fuzzing harness
/// (tests/tests/fuzz_parsers.rs) until the SMTP client moves to `smtp::client`.
pub use crate::smtp::client::wire::{WireError, read_reply};
pub use crate::smtp::client::{Broken, Dsn, HopError, Outgoing, RcptDsn, Session, Settings};
pub use budget::Budget;
pub use hops::Walker;

use crate::config::Config;
use crate::dns;
use crate::envelope::QueueId;
use crate::queue::{Queue, Stored};
use health::{Health, HopHealth};
pub use scheduler::{Backlog, Depths};
use scheduler::{Event, Scheduler};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Talks to the running scheduler; cheap to clone.
#[derive(Clone)]
pub struct DeliveryHandle {
    commands: mpsc::UnboundedSender<Command>,
    /// To re-check a corrupt body before releasing its message.
    queue: Queue,
    tracker: TaskTracker,
    health: Health,
    /// Fired when the scheduler has ended, normally or by a panic.
    ended: CancellationToken,
    /// DANE and MTA-STS state (validating resolver, policy cache), for `show tls policy`.
    security: Arc<secure::Security>,
}

enum Command {
    Retry(QueueId),
    RetryAll,
    Forget(QueueId),
    /// A committed configuration: routes and retry settings change for every message.
    Reload(Arc<Config>),
    Hold(Target, oneshot::Sender<usize>),
    Release(Target, oneshot::Sender<usize>),
    Flush(Target, oneshot::Sender<usize>),
    Depths(oneshot::Sender<scheduler::Depths>),
}

/// Which messages an operation applies to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Message(QueueId),
    /// Messages with an open recipient in `name` (lower case), or also in its subdomains
    /// (ETRN's `@domain`).
    Domain {
        name: String,
        subdomains: bool,
    },
    All,
}

impl Target {
    pub fn matches(&self, domain: &str) -> bool {
        match self {
            Target::Message(_) => false,
            Target::All => true,
            Target::Domain { name, subdomains } => {
                domain == name
                    || *subdomains
                        && domain
                            .strip_suffix(name.as_str())
                            .is_some_and(|head| head.ends_with('.'))
            }
        }
    }
}

/// Starts the scheduler (must run inside a tokio runtime). `resumed` is what
/// `Queue::open_each` read (see [`Backlog`]); new messages arrive through `queue.subscribe()`,
/// small ones with their bodies (`queue::HotBody`: no read back for the first attempt). Bodies
/// read for delivery are held within `budget` (the gateway shares `limits.inflight_bytes` with the
/// inbound sessions). When `shutdown` fires no new transaction starts; those in flight get
/// `limits.shutdown_timeout` to finish, then are abandoned (their recipients keep their
/// stored state).
pub fn start(
    config: Arc<Config>,
    queue: Queue,
    resumed: Backlog,
    budget: Arc<Budget>,
    published: &crate::observe::events::Events,
    shutdown: CancellationToken,
) -> DeliveryHandle {
    let tracker = TaskTracker::new();
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (events, event_rx) = mpsc::unbounded_channel();
    let resolver = match dns::Resolver::new(&config.dns) {
        Ok(resolver) => Some(resolver),
        Err(e) => {
            log::warn!(
                "delivery: no DNS resolver ({e}); next hops by name and `mx` will be deferred"
            );
            None
        }
    };
    let settings = Arc::new(Settings::new(&config, published));
    let security = Arc::new(secure::Security::new(&config, Some(&config.data_dir)));
    let walker = hops::Walker::new(settings, resolver, &config.hostname, hold_period(&config))
        .our_names(&config.hostname, &config.flow.our_names)
        .secured(security.clone());
    let health = Health::new(config.flow.fall, config.flow.rise, published);
    let ctx = Arc::new(worker::Ctx {
        walker,
        queue: Some(queue.clone()),
        max_messages_per_connection: config.delivery.max_messages_per_connection.max(1),
        max_connections_per_next_hop: config.delivery.max_connections_per_next_hop.max(1),
        idle_timeout: config.delivery.idle_timeout.0,
        permits: Arc::new(Semaphore::new(config.delivery.max_concurrent.max(1))),
        budget,
        reports: events.clone(),
        published: published.clone(),
        shutdown: shutdown.clone(),
        grace: config.limits.shutdown_timeout.0,
        tracker: tracker.clone(),
    });
    let new = queue.subscribe();
    let scheduler = Scheduler::new(config, queue.clone(), ctx, events, health.clone());
    let ended = CancellationToken::new();
    // Dropped when the task ends, also while a panic unwinds it.
    let guard = ended.clone().drop_guard();
    tracker.spawn(async move {
        let _guard = guard;
        run(scheduler, resumed, new, command_rx, event_rx, shutdown).await
    });
    DeliveryHandle {
        commands,
        queue,
        tracker,
        health,
        ended,
        security,
    }
}

impl DeliveryHandle {
    /// `show tls policy DOMAIN` under the running configuration.
    pub async fn explain_tls(
        &self,
        config: &Config,
        domain: &str,
    ) -> Result<explain::TlsPolicyView, String> {
        self.security.explain(config, domain).await
    }

    /// Resolves when the scheduler has ended: after the shutdown token fired, or earlier by
    /// a failure (which the server turns into a shutdown).
    pub async fn ended(&self) {
        self.ended.cancelled().await
    }

    /// Attempts the message now (and lifts any hold on its destinations).
    pub fn retry(&self, id: QueueId) {
        let _ = self.commands.send(Command::Retry(id));
    }

    /// Attempts every queued message now and lifts every hold.
    pub fn retry_all(&self) {
        let _ = self.commands.send(Command::RetryAll);
    }

    /// Drops the message from the schedule after the operator deleted it from the queue.
    pub fn forget(&self, id: QueueId) {
        let _ = self.commands.send(Command::Forget(id));
    }

    /// Routes and queue settings from now on come from `config` (a console commit).
    pub fn reload(&self, config: Arc<Config>) {
        let _ = self.commands.send(Command::Reload(config));
    }

    /// Holds the matching messages (durably): they are not delivered until released.
    /// Returns how many were newly held; an error when the scheduler is gone.
    pub async fn hold(&self, target: Target) -> Result<usize, OpError> {
        self.ask(|reply| Command::Hold(target, reply)).await
    }

    /// Releases held messages and attempts them now; returns how many were held. A message
    /// held because its body failed its checksum is released only by its id, after its body
    /// is read again: still corrupt, it stays held and the error says why.
    pub async fn release(&self, target: Target) -> Result<usize, OpError> {
        if let Target::Message(id) = &target {
            self.recheck(*id).await?;
        }
        self.ask(|reply| Command::Release(target, reply)).await
    }

    async fn recheck(&self, id: QueueId) -> Result<(), OpError> {
        let unreadable = |e: crate::queue::QueueError| OpError::Unreadable {
            id,
            reason: e.to_string(),
        };
        let env = self.queue.envelope(id).await.map_err(unreadable)?;
        let Some(env) = env.filter(|e| e.held) else {
            return Ok(());
        };
        if !matches!(env.hold, Some(crate::envelope::Hold::Corrupt { .. })) {
            return Ok(());
        }
        match self.queue.body(id).await {
            Err(crate::queue::QueueError::Corrupt { detail, .. }) => {
                Err(OpError::StillCorrupt { id, detail })
            }
            Err(e) => Err(unreadable(e)),
            Ok(_) => Ok(()),
        }
    }

    /// Delivers now (paced for a domain or everything, see `flow.drain_rate`), lifting
    /// holds on the destinations; held messages stay held. Returns how many go.
    pub async fn flush(&self, target: Target) -> Result<usize, OpError> {
        self.ask(|reply| Command::Flush(target, reply)).await
    }

    /// Messages waiting per destination and the age of the oldest, kept by the scheduler
    /// (no envelope is read); `None` when the scheduler is gone.
    pub async fn depths(&self) -> Option<scheduler::Depths> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Depths(reply)).ok()?;
        answer.await.ok()
    }

    /// The up/down state of every next hop (destination) being watched, for metrics and
    /// the console.
    pub fn health(&self) -> Vec<HopHealth> {
        self.health.snapshot()
    }

    async fn ask(
        &self,
        command: impl FnOnce(oneshot::Sender<usize>) -> Command,
    ) -> Result<usize, OpError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| OpError::Stopped)?;
        answer.await.map_err(|_| OpError::Stopped)
    }

    /// Waits until every delivery task has ended after the shutdown token fired, including
    /// the writes recording the last results. Call `Queue::close` after this.
    pub async fn stopped(self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Why an operation on the queue's messages (hold, release, flush) did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The scheduler has ended (the gateway is shutting down).
    #[error("delivery is stopped")]
    Stopped,
    /// A message held for a corrupt body still fails its checksum: it stays held.
    #[error(
        "{id}: stored body is still corrupt ({detail}); held again, `edgemx queue delete {id}` removes it"
    )]
    StillCorrupt { id: QueueId, detail: String },
    /// The message could not be read to check it.
    #[error("{id}: cannot read the body to check it: {reason}")]
    Unreadable { id: QueueId, reason: String },
}

/// How long a destination whose next hops all failed is held: the first retry interval
/// (at least 1 s), however long, so no message is tried sooner than `retry_intervals` says.
/// A recovery is noticed sooner anyway: active checks run while it is held.
fn hold_period(config: &Config) -> Duration {
    let first = config.queue.retry_intervals.first().map(|s| s.0);
    first
        .unwrap_or(Duration::from_secs(60))
        .max(Duration::from_secs(1))
}

async fn run(
    mut scheduler: Scheduler,
    resumed: Backlog,
    mut new: Option<mpsc::UnboundedReceiver<Stored>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut events: mpsc::UnboundedReceiver<Event>,
    shutdown: CancellationToken,
) {
    if new.is_none() {
        log::error!(
            "delivery: the queue's subscription was already taken; only resumed and retried mail is delivered"
        );
    }
    scheduler.resume(resumed);
    loop {
        let wake = scheduler.tick();
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let incoming = async {
            match new.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(event) = events.recv() => scheduler.event(event),
            env = incoming => match env {
                Some(stored) => scheduler.add(stored),
                None => new = None,
            },
            Some(command) = commands.recv() => scheduler.command(command),
            _ = sleep => {}
        }
    }
    scheduler.abandon_queued();
    let deadline = tokio::time::Instant::now() + scheduler.ctx.grace + Duration::from_secs(1);
    while scheduler.jobs_in_flight() > 0 {
        tokio::select! {
            Some(event) = events.recv() => scheduler.event(event),
            _ = tokio::time::sleep_until(deadline) => {
                log::warn!("delivery: {} jobs did not finish before the shutdown deadline", scheduler.jobs_in_flight());
                break;
            }
        }
    }
}
