//! Recipient validation at RCPT: does the recipient exist on its route's backend? A static
//! list answers from memory; otherwise the callout asks the backend. A recipient the
//! backend does not know moves to the route's fallback (shared address space) and is
//! checked there; only when the last route does not know it either is it refused with
//! `550 5.1.1`, so unknown users are refused at RCPT instead of bounced later.

use super::callout::{Callout, Verdict};
use super::{Denial, Routed};
use crate::config::Config;
use crate::config::routes::Unreachable;
use crate::envelope::Recipient;
use crate::routing::load::LoadError;
use crate::routing::{Maps, Table, rewrite};
use crate::smtp::proto::Reply;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What RCPT needs to route and check recipients; shared by every session.
pub struct Recipients {
    pub table: Arc<Table>,
    pub maps: Arc<Maps>,
    callout: Callout,
    unreachable: Unreachable,
    /// Ends the file watcher when these recipients are replaced or dropped.
    watching: CancellationToken,
}

impl Recipients {
    /// Builds the route table, loads the address files and watches them for changes until
    /// `shutdown` or until the returned value is dropped (a new configuration replaced it).
    /// Must run inside a tokio runtime.
    pub fn start(
        config: &Arc<Config>,
        events: &crate::observe::events::Events,
        shutdown: &CancellationToken,
    ) -> Result<Arc<Recipients>, LoadError> {
        let table = Arc::new(Table::new(config));
        let maps = Arc::new(Maps::load(table.clone(), config)?);
        let watching = shutdown.child_token();
        let interval = config.routing.reload_interval.0;
        tokio::spawn(maps.clone().watch(interval, watching.clone()));
        Ok(Arc::new(Recipients {
            callout: Callout::new(config, events),
            unreachable: config.routing.callout.unreachable,
            table,
            maps,
            watching,
        }))
    }

    /// The recipient to store (possibly moved to a fallback route), or the refusal.
    pub async fn check(&self, routed: Routed) -> Result<Recipient, Denial> {
        let (Some(mut id), true) = (routed.route, routed.validate) else {
            return Ok(routed.recipient);
        };
        let snapshot = self.maps.current();
        let mut rcpt = routed.recipient;
        // Config validation rules out fallback loops; the bound is a second guard.
        for _ in 0..=self.table.routes().len() {
            let route = self.table.route(id);
            let key = rcpt.address.to_lowercase();
            let verdict = if snapshot.list(id).is_some_and(|l| l.contains(&key)) {
                Verdict::Known
            } else if route.callout {
                self.callout.verdict(id, route, &key).await
            } else if route.recipients.is_some() {
                Verdict::Unknown
            } else {
                Verdict::Known
            };
            match verdict {
                Verdict::Known => return Ok(rcpt),
                Verdict::Unavailable(why) => {
                    log::info!(
                        "callout for <{}> on route {}: {why}",
                        rcpt.address,
                        route.name
                    );
                    return match self.unreachable {
                        Unreachable::Accept => Ok(rcpt),
                        Unreachable::Defer => Err(Denial {
                            reply: Reply::recipient_unverifiable(),
                            reason: "route backend unreachable for the callout",
                        }),
                    };
                }
                Verdict::Unknown => {
                    let Some(next) = route.fallback else { break };
                    let to = self.table.route(next);
                    let address = rewrite::recipient(to, &routed.original);
                    rcpt = Recipient::pending(address.unwrap_or_else(|| routed.original.clone()));
                    rcpt.route = Some(to.name.to_string());
                    id = next;
                }
            }
        }
        Err(Denial {
            reply: Reply::unknown_recipient(),
            reason: "unknown user on every route tried",
        })
    }

    /// The envelope sender to store: masqueraded when the session is outbound.
    pub fn sender(&self, sender: String, outbound: bool) -> String {
        if !outbound {
            return sender;
        }
        rewrite::sender(&self.table, &sender).unwrap_or(sender)
    }
}

impl Drop for Recipients {
    fn drop(&mut self) {
        self.watching.cancel();
    }
}
