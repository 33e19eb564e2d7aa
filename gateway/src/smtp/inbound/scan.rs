//! The end-of-message hook into [`crate::scan`]: hands rspamd and clamd the message as it
//! will be queued, with what the session knows about the sender, and turns the outcome
//! into edits of the message, a hold or a reply.

use super::session::{Session, Transaction};
use crate::envelope::{Hold, QueueId};
use crate::policy::relay::RelayGrant;
use crate::scan::{Decision, Envelope};
use crate::smtp::proto::{Reply, ReversePath};

/// What to do with the scanned message.
pub enum Scanned {
    /// Queue it (edited), held for this reason if any.
    Queue(Option<Hold>),
    /// Answer this and store nothing; `permanent` counts towards the client's errors.
    Refuse { reply: Reply, permanent: bool },
}

impl Session {
    pub async fn scan(&self, tx: &Transaction, id: QueueId, body: &mut Vec<u8>) -> Scanned {
        if !crate::scan::wanted(&self.ctx.config, &tx.rcpts) {
            return Scanned::Queue(None);
        }
        let from = match &tx.from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        };
        let helo = self.helo.as_ref().map_or("", |h| h.name.as_str());
        let envelope = Envelope {
            queue_id: id.to_string(),
            from: &from,
            rcpts: tx.rcpts.iter().map(|r| r.address.as_str()).collect(),
            ip: self.peer.ip().to_canonical().to_string(),
            helo,
            // No PTR is resolved for clients; rspamd then does its own lookup.
            hostname: None,
            user: match &self.relay {
                Some(RelayGrant::User(user)) => Some(user.as_str()),
                _ => None,
            },
        };
        let outcome = self.ctx.scanner.scan(&envelope, body).await;
        match outcome.decision {
            Decision::Refuse(reply) => {
                log::info!(
                    "{}: message {id} refused by the content scan: {reply}",
                    self.peer
                );
                let permanent = reply.code >= 500;
                Scanned::Refuse { reply, permanent }
            }
            Decision::Accept => {
                outcome.edits.apply(body);
                Scanned::Queue(None)
            }
            Decision::Quarantine(reason) => {
                outcome.edits.apply(body);
                log::info!("{}: message {id} quarantined: {reason}", self.peer);
                Scanned::Queue(Some(Hold::Scan { reason }))
            }
        }
    }
}
