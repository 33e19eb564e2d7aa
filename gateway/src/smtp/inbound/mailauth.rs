//! The end-of-message hook into [`crate::policy::auth`]: hands it what the session knows
//! about the sender and turns its verdict into a reply. Email authentication (SPF, DKIM,
//! DMARC, ARC, signing), not SMTP AUTH.

use super::session::{Session, Transaction};
use crate::policy::auth::{Origin, Verdict};
use crate::smtp::proto::{Reply, ReversePath};

impl Session {
    /// Checks or signs `body` before it is queued; `Ok(held)` to queue it, `Err` to answer
    /// with that reply instead.
    pub async fn authenticate(&self, tx: &Transaction, body: &mut Vec<u8>) -> Result<bool, Reply> {
        let mail_from = match &tx.from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        };
        let origin = Origin {
            ip: self.peer.ip().to_canonical(),
            helo: self.helo.as_ref().map_or("", |h| h.name.as_str()),
            mail_from: &mail_from,
            // A client that may relay (network, SMTP AUTH, client certificate) is one of
            // ours: its mail is signed, not checked.
            outbound: self.relay.is_some(),
        };
        match self.ctx.mail_auth.process(&origin, body).await {
            Verdict::Accept { held } => Ok(held),
            Verdict::Refuse(reply) => Err(reply),
        }
    }
}
