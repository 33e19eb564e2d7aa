//! MAIL FROM: opens a transaction once size, 8-bit/UTF-8 needs and queue room allow it.

use super::session::{Flow, Session, Transaction};
use crate::config::Role;
use crate::queue::QueueError;
use crate::smtp::proto::{MailParams, Reply, ReversePath};

impl Session {
    pub fn mail(&mut self, from: ReversePath, params: MailParams) -> Flow {
        if self.role == Role::Submission && self.relay.is_none() {
            // RFC 6409 §4.3 / RFC 4954 §6: submission takes nothing from anonymous clients.
            return self.refuse(Reply::auth_required());
        }
        let extended = self.helo.as_ref().is_some_and(|h| h.extended);
        if params.smtputf8 && !extended {
            return self.refuse(Reply::param_unsupported("SMTPUTF8 requires EHLO"));
        }
        let max = self.ctx.config.limits.max_message_size.0;
        let declared = params.size.unwrap_or(0);
        if declared > max {
            return self.refuse(Reply::message_too_big());
        }
        if self.messages >= self.ctx.config.limits.max_messages_per_session {
            return self.refuse(Reply::too_many_messages());
        }
        if let Err(e) = self.ctx.queue.admit(declared) {
            log::warn!("{}: refusing mail: {e}", self.peer);
            return self.refuse(match e {
                // Out of room (a quota, the reserve, a full disk): 4.3.1.
                QueueError::Full(_) | QueueError::DiskFull(_) => Reply::storage_full(),
                QueueError::Io(_)
                | QueueError::Open { .. }
                | QueueError::Closed
                | QueueError::Corrupt { .. } => Reply::local_error(),
            });
        }
        self.tx = Some(Transaction {
            from,
            params,
            rcpts: Vec::new(),
            chunking: None,
        });
        self.answer(Reply::sender_ok())
    }
}
