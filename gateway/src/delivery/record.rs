//! Recording an attempt: the envelope's new state and the DSN for its failed recipients,
//! written in one `queue.apply` so a crash never keeps one without the other.

use super::budget::{self, Budget, Held};
use super::scheduler::Event;
use crate::envelope::{Envelope, Recipient};
use crate::queue::dsn;
use crate::queue::{Change, Queue};
use std::sync::Arc;
use tokio::sync::mpsc;

/// One durable write: the envelope's new state and the DSN for its failed recipients.
pub struct Write {
    pub queue: Queue,
    pub hostname: String,
    pub events: mpsc::UnboundedSender<Event>,
    /// The message is deleted: the scheduler forgot it already, no `Applied` needed.
    pub finished: bool,
    /// Recipients to name in a `delayed` DSN to the sender (empty: none is due).
    pub delayed: Vec<Recipient>,
    /// Unix time until which delayed recipients are retried, for that DSN.
    pub expires: u64,
    /// Recipients relayed to a next hop without DSN; those with `NOTIFY=SUCCESS` are named
    /// in a `relayed` DSN.
    pub relayed: Vec<Recipient>,
    /// A DSN that quotes the body reads it within the byte budget, like a delivery.
    pub budget: Arc<Budget>,
}

impl Write {
    pub async fn run(self, env: Envelope, failed: Vec<Recipient>, change: Change, now: u64) {
        let id = env.id;
        let mut changes = Vec::with_capacity(2);
        let mut bounced = false;
        // Held until the DSNs are written: the body read and the notices quoting it.
        let mut held = None;
        if !failed.is_empty() {
            let to: Vec<&str> = failed.iter().map(|r| r.address.as_str()).collect();
            if env.sender.is_empty() {
                log::info!(
                    "{id} failed for <{}>; no DSN to the null sender",
                    to.join(">,<")
                );
            } else {
                let body = self.body(&env, &mut held).await;
                let rcpts: Vec<&Recipient> = failed.iter().collect();
                let dsn = dsn::bounce(&self.hostname, &env, original(&body), &rcpts, now);
                if let Some((envelope, body)) = dsn {
                    changes.push(Change::Insert { envelope, body });
                    bounced = true;
                }
            }
        }
        let until = self.expires;
        for (rcpts, action) in [
            (&self.delayed, dsn::Action::Delayed { until }),
            (&self.relayed, dsn::Action::Relayed),
        ] {
            // Only a recipient that asked for this notice (NOTIFY) makes the body worth reading.
            let asked = rcpts.iter().any(|r| match action {
                dsn::Action::Relayed => r.notify().success,
                _ => r.notify().delay,
            });
            if env.sender.is_empty() || !asked {
                continue;
            }
            let body = self.body(&env, &mut held).await;
            let rcpts: Vec<&Recipient> = rcpts.iter().collect();
            if let Some((envelope, body)) =
                dsn::report(&self.hostname, &env, original(&body), &rcpts, action, now)
            {
                log::info!("{id} {action}; notice to <{}>", env.sender);
                changes.push(Change::Insert { envelope, body });
            }
        }
        changes.push(change);
        match self.queue.apply(changes).await {
            Ok(ids) => {
                if bounced {
                    let dsn_id = ids.first().map(|i| i.to_string()).unwrap_or_default();
                    let to: Vec<&str> = failed.iter().map(|r| r.address.as_str()).collect();
                    log::info!(
                        "{id} bounce to <{}> for <{}>: DSN queued as {dsn_id}",
                        env.sender,
                        to.join(">,<")
                    );
                }
            }
            // The store keeps the previous state: the message is attempted again after a
            // restart (at least once; a duplicate is possible, a loss is not).
            Err(e) => log::error!("{id} cannot record the delivery result: {e}"),
        }
        drop(held);
        if !self.finished {
            let _ = self.events.send(Event::Applied(id));
        }
    }

    /// The body for a DSN, read once the budget has room for it (and its quoted copy); why
    /// it could not be read, logged, otherwise: the DSN then says so instead of quoting an
    /// empty message.
    async fn body(&self, env: &Envelope, held: &mut Option<Held>) -> Result<Arc<Vec<u8>>, String> {
        if held.is_none() {
            *held = self.budget.take(budget::cost(env.size)).await;
        }
        let read = match self.queue.body(env.id).await {
            Ok(Some(body)) => Ok(body),
            Ok(None) => Err("its body is missing".to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(why) = &read {
            log::error!("{}: the DSN cannot quote the message: {why}", env.id);
        }
        read
    }
}

/// What a DSN quotes: the body, or why there is none.
fn original(body: &Result<Arc<Vec<u8>>, String>) -> dsn::Original<'_> {
    match body {
        Ok(body) => dsn::Original::Body(body),
        Err(why) => dsn::Original::Unreadable(why),
    }
}
