//! RCPT TO: the recipient limit here; the relay decision and the route in
//! [`crate::policy::recipient`]; whether the recipient exists in
//! [`crate::policy::Recipients::check`] (static list or callout, bounded in time).

use super::session::{Flow, Session};
use crate::policy::{self, Denial};
use crate::smtp::proto::{ForwardPath, RcptParams, Reply};

impl Session {
    pub async fn rcpt(&mut self, to: ForwardPath, params: RcptParams) -> Flow {
        let max = self.ctx.config.limits.max_recipients;
        let Some(tx) = self.tx.as_ref() else {
            return self.refuse(Reply::bad_sequence());
        };
        if tx.rcpts.len() >= max {
            // RFC 5321 §4.5.3.1.10: 452 lets the client send the rest in another transaction.
            // It is flow control, not a client error (§4.5.3.1.8): counting it towards
            // `max_errors` would close a pipelining client and lose what it already sent.
            return self.decline(Reply::too_many_recipients());
        }
        let recipients = self.ctx.recipients.clone();
        let snapshot = recipients.maps.current();
        let routed = match policy::recipient(&recipients.table, &snapshot, &to, self.relay.as_ref())
        {
            Ok(routed) => routed,
            Err(denial) => return self.refuse_rcpt(&to, denial),
        };
        let mut accepted = Vec::with_capacity(routed.len());
        for one in routed {
            match recipients.check(one).await {
                Ok(recipient) => accepted.push(recipient),
                Err(denial) => return self.refuse_rcpt(&to, denial),
            }
        }
        let Some(tx) = self.tx.as_mut() else {
            return self.refuse(Reply::bad_sequence());
        };
        for mut recipient in accepted {
            // DSN (RFC 3461): kept per recipient, also for each address an alias expands to.
            recipient.notify = params.notify;
            recipient.orcpt.clone_from(&params.orcpt);
            // Duplicates (also through aliases) are accepted again without storing twice.
            if !tx.rcpts.iter().any(|r| r.address == recipient.address) {
                tx.rcpts.push(recipient);
            }
        }
        self.answer(Reply::recipient_ok())
    }

    /// The session relays for an internal sender (its envelope sender is masqueraded).
    pub fn outbound(&self) -> bool {
        self.relay.is_some()
    }

    fn refuse_rcpt(&mut self, to: &ForwardPath, denial: Denial) -> Flow {
        let address = to
            .mailbox()
            .map_or("<Postmaster>".into(), |m| m.to_string());
        log::info!(
            "{}: recipient {address} refused: {}",
            self.peer,
            denial.reason
        );
        self.refuse(denial.reply)
    }
}
