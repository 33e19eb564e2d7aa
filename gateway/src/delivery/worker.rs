//! Per-destination job queues and the workers that drain them.
//!
//! A worker owns at most one connection. After a job it takes the next queued job for the
//! same destination over the same connection (RSET, next MAIL), up to
//! `max_messages_per_connection`; with nothing queued it keeps the connection for
//! `idle_timeout`, then QUITs and ends. At most `max_connections_per_next_hop` workers run
//! per destination, and a transaction needs one of `max_concurrent` global permits.

use super::budget::{self, Budget};
use super::dest::DestQueue;
use super::hops::Walker;
use super::scheduler::Event;
use super::settle::Outcome;
use crate::envelope::{Envelope, QueueId};
use crate::queue::{HotBody, Queue, QueueError};
use crate::routing::Destination;
use crate::smtp::client::wire::Reply;
use crate::smtp::client::{Dsn, Outgoing, RcptDsn, Session};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A message as seen by one attempt, shared by its jobs. Each job reads the body itself,
/// within the byte budget, and drops it when its transaction ends: a body kept for a job
/// still waiting in another destination's queue would hold budget that the worker ahead of
/// that job may be waiting for (a deadlock). Most messages have one job. The exception is
/// fresh mail's body, handed over by the writer with its envelope (`queue::HotBody`): held
/// outside the budget, in the hot pool's own bounded bytes, until the attempt ends.
pub struct Message {
    pub env: Envelope,
    hot: Option<HotBody>,
}

impl Message {
    pub fn new(env: Envelope, hot: Option<HotBody>) -> Message {
        Message { env, hot }
    }

    #[cfg(test)]
    pub fn with_body(env: Envelope, body: Vec<u8>) -> Message {
        let hot = crate::queue::HotPool::new(usize::MAX).keep(body);
        assert!(hot.is_some(), "a test body larger than queue::HOT_MAX");
        Message { env, hot }
    }

    /// `Ok(None)`: the message is gone from the queue (deleted by the operator).
    async fn body(&self, queue: Option<&Queue>) -> Result<Option<Arc<Vec<u8>>>, QueueError> {
        if let Some(hot) = &self.hot {
            return Ok(Some(hot.bytes()));
        }
        let Some(queue) = queue else {
            return Ok(None);
        };
        queue.body(self.env.id).await
    }
}

/// The recipients of one message that go to one destination.
pub struct Job {
    pub msg: Arc<Message>,
    pub rcpts: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportKind {
    /// `outcomes` holds the replies; `reached`: a next hop answered the transaction, so
    /// the destination is up.
    Attempted { reached: bool },
    /// No next hop could be used; `outcomes` all carry the reason.
    Unreachable { permanent: bool },
    /// The message is no longer in the queue.
    Gone,
    /// The stored body failed its checksum; the queue has held the message durably.
    Corrupt(String),
    /// Shutdown came first; nothing is known about these recipients.
    Abandoned,
}

pub struct Report {
    pub id: QueueId,
    pub dest: Arc<Destination>,
    pub kind: ReportKind,
    pub outcomes: Vec<Outcome>,
}

/// What workers share.
pub struct Ctx {
    pub walker: Walker,
    /// `None` only in unit tests, where every body is preloaded.
    pub queue: Option<Queue>,
    pub max_messages_per_connection: usize,
    pub max_connections_per_next_hop: usize,
    pub idle_timeout: Duration,
    pub permits: Arc<Semaphore>,
    /// Message bytes delivery may hold (shared with inbound sessions).
    pub budget: Arc<Budget>,
    pub reports: mpsc::UnboundedSender<Event>,
    /// Where settled recipients are announced (metrics, probes).
    pub published: crate::observe::events::Events,
    pub shutdown: CancellationToken,
    /// How long an in-flight transaction may continue after shutdown began.
    pub grace: Duration,
    pub tracker: TaskTracker,
}

impl Ctx {
    fn send(&self, report: Report) {
        // Fails only when the scheduler is gone, i.e. after shutdown: nothing to record then.
        let _ = self.reports.send(Event::Report(report));
    }
}

/// One worker: jobs for one destination, over one connection at a time.
pub(super) async fn work(dq: Arc<DestQueue>, ctx: Arc<Ctx>) {
    let mut conn: Option<Session> = None;
    while let Some(job) = dq.next(&ctx, conn.is_some()).await {
        let Ok(permit) = ctx.permits.clone().acquire_owned().await else {
            // The semaphore is never closed; should it be, the stored state stays as is.
            ctx.send(report(&dq, &job, ReportKind::Abandoned, Vec::new()));
            break;
        };
        let grace = async {
            ctx.shutdown.cancelled().await;
            tokio::time::sleep(ctx.grace).await;
        };
        let step = tokio::select! {
            step = deliver(&dq, &ctx, &mut conn, &job) => step,
            _ = grace => {
                dq.close(&mut conn);
                Step::Done(report(&dq, &job, ReportKind::Abandoned, Vec::new()))
            }
        };
        drop(permit);
        let (job, first, reply) = match step {
            Step::Done(report) => {
                ctx.send(report);
                continue;
            }
            // Other workers are connected: the destination limits our connections rather
            // than being down. Leave the job to them and end this worker.
            Step::GiveBack(first, reply) => match dq.give_back(job) {
                Ok(()) => return,
                Err(job) => (job, first, reply),
            },
            Step::Unreachable(first, reply) => (job, first, reply),
        };
        let kind = first.kind.clone();
        log_attempt(&job, None, std::slice::from_ref(&reply));
        ctx.send(first);
        // Do not hammer a dead destination: what is queued for it shares the verdict; the
        // scheduler then holds new jobs for it until the hold ends.
        for other in dq.drain() {
            log_attempt(&other, None, std::slice::from_ref(&reply));
            let outcomes = all(&other, &reply);
            ctx.send(report(&dq, &other, kind.clone(), outcomes));
        }
    }
    if let Some(session) = conn.take() {
        dq.track(true, false);
        session.quit().await;
    }
}

enum Step {
    Done(Report),
    /// No next hop could be used; the report covers this job, the reply the others.
    Unreachable(Report, Reply),
    /// As `Unreachable`, but other workers hold connections: hand the job to them.
    GiveBack(Report, Reply),
}

async fn deliver(dq: &DestQueue, ctx: &Ctx, conn: &mut Option<Session>, job: &Job) -> Step {
    let env = &job.msg.env;
    // Held until this transaction ends (the body and its dot-stuffed copy are dropped then).
    let Some(_held) = ctx.budget.take(budget::cost(env.size)).await else {
        return Step::Done(report(dq, job, ReportKind::Abandoned, Vec::new()));
    };
    let body = match job.msg.body(ctx.queue.as_ref()).await {
        Ok(Some(body)) => body,
        Ok(None) => return Step::Done(report(dq, job, ReportKind::Gone, Vec::new())),
        // The queue has held it durably (checksum mismatch); the scheduler holds it too.
        Err(QueueError::Corrupt { detail, .. }) => {
            return Step::Done(report(dq, job, ReportKind::Corrupt(detail), Vec::new()));
        }
        Err(e) => {
            let reply = Reply::local(
                451,
                format!("4.3.0 cannot read the message from the queue: {e}"),
            );
            log_attempt(job, None, std::slice::from_ref(&reply));
            let kind = ReportKind::Attempted { reached: false };
            return Step::Done(report(dq, job, kind, all(job, &reply)));
        }
    };
    let addresses: Vec<&str> = job
        .rcpts
        .iter()
        .map(|&i| env.recipients.get(i).map_or("", |r| r.address.as_str()))
        .collect();
    let rcpt_dsn: Vec<RcptDsn> = job
        .rcpts
        .iter()
        .map(|&i| {
            env.recipients
                .get(i)
                .map_or_else(RcptDsn::default, |r| RcptDsn {
                    notify: r.notify,
                    orcpt: r.orcpt.as_ref(),
                })
        })
        .collect();
    let msg = Outgoing {
        sender: &env.sender,
        recipients: &addresses,
        body: &body,
        eight_bit: env.eight_bit,
        smtputf8: env.smtputf8,
        dsn: Dsn {
            ret: env.ret,
            envid: env.envid.as_deref(),
            rcpts: &rcpt_dsn,
        },
    };
    let mut last = None;
    for round in 0..2 {
        let session = match conn {
            Some(session) => session,
            None => match ctx.walker.open(&dq.dest).await {
                Ok(session) => {
                    dq.track(false, true);
                    conn.insert(session)
                }
                Err(e) => {
                    let kind = ReportKind::Unreachable {
                        permanent: e.permanent,
                    };
                    let report = report(dq, job, kind, all(job, &e.reply));
                    return match e.permanent {
                        true => Step::Unreachable(report, e.reply),
                        false => Step::GiveBack(report, e.reply),
                    };
                }
            },
        };
        let reused = session.sent() > 0;
        match session.send(&msg).await {
            Ok(got) => {
                log_attempt(job, Some(session), &got);
                let reached = ReportKind::Attempted { reached: true };
                let mta: Arc<str> = Arc::from(session.host());
                let dsn_passed = session.offers_dsn();
                let outcomes = job.rcpts.iter().zip(got).map(|(&index, reply)| Outcome {
                    index,
                    mta: (!reply.local).then(|| mta.clone()),
                    dsn_passed: dsn_passed && !reply.local,
                    reply,
                });
                let outcomes = outcomes.collect();
                if session.sent() >= ctx.max_messages_per_connection
                    && let Some(session) = conn.take()
                {
                    dq.track(true, false);
                    session.quit().await;
                }
                return Step::Done(report(dq, job, reached, outcomes));
            }
            Err(broken) => {
                // A cached connection the peer closed meanwhile: nothing was delivered, so
                // the message goes out at once on a fresh connection.
                let again = broken.retry_safe && reused && round == 0;
                if again {
                    log::debug!("{} cached connection lost: {}", env.id, broken.reply);
                } else {
                    log_attempt(job, Some(session), std::slice::from_ref(&broken.reply));
                }
                dq.close(conn);
                last = Some(broken.reply);
                if !again {
                    break;
                }
            }
        }
    }
    let reply = last.unwrap_or_else(|| Reply::local(451, "4.4.2 connection lost"));
    let kind = ReportKind::Attempted { reached: false };
    Step::Done(report(dq, job, kind, all(job, &reply)))
}

fn report(dq: &DestQueue, job: &Job, kind: ReportKind, outcomes: Vec<Outcome>) -> Report {
    Report {
        id: job.msg.env.id,
        dest: dq.dest.clone(),
        kind,
        outcomes,
    }
}

fn all(job: &Job, reply: &Reply) -> Vec<Outcome> {
    job.rcpts
        .iter()
        .map(|&index| Outcome {
            index,
            reply: reply.clone(),
            mta: None,
            dsn_passed: false,
        })
        .collect()
}

/// One log line per delivery attempt: queue id, recipients, relay, TLS, reply.
fn log_attempt(job: &Job, session: Option<&Session>, replies: &[Reply]) {
    let env = &job.msg.env;
    let to: Vec<&str> = job
        .rcpts
        .iter()
        .filter_map(|&i| env.recipients.get(i).map(|r| r.address.as_str()))
        .collect();
    let (relay, tls) = match session {
        Some(s) => (
            format!("{}[{}]:{}", s.host(), s.peer().ip(), s.peer().port()),
            s.tls().unwrap_or("none"),
        ),
        None => ("none".to_string(), "none"),
    };
    let same = replies.windows(2).all(|w| w[0] == w[1]);
    let status = if same {
        replies.first().map(Reply::text).unwrap_or_default()
    } else {
        let parts: Vec<String> = to
            .iter()
            .zip(replies)
            .map(|(a, r)| format!("<{a}> {r}"))
            .collect();
        parts.join("; ")
    };
    log::info!(
        "{} to=<{}> relay={relay} tls={tls} reply=\"{status}\"",
        env.id,
        to.join(">,<")
    );
}
