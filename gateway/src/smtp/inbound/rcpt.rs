//! RCPT TO: the recipient limit here, the relay decision in [`crate::policy`].

use super::session::{Flow, Session};
use crate::policy;
use crate::smtp::proto::{ForwardPath, RcptParams, Reply};

impl Session {
    pub fn rcpt(&mut self, to: ForwardPath, _params: RcptParams) -> Flow {
        let max = self.ctx.config.limits.max_recipients;
        let Some(tx) = self.tx.as_mut() else {
            return self.refuse(Reply::bad_sequence());
        };
        if tx.rcpts.len() >= max {
            // RFC 5321 §4.5.3.1.10: 452 lets the client send the rest in another transaction.
            return self.refuse(Reply::too_many_recipients());
        }
        match policy::recipient(&self.ctx.config, &to, self.relay.as_ref()) {
            Ok(recipient) => {
                if tx.rcpts.iter().any(|r| r.address == recipient.address) {
                    // Duplicate: accept again without storing it twice.
                    return self.answer(Reply::recipient_ok());
                }
                tx.rcpts.push(recipient);
                self.answer(Reply::recipient_ok())
            }
            Err(denial) => {
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
    }
}
