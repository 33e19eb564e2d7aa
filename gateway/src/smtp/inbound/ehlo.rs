//! EHLO and HELO: greet, reset any transaction, advertise extensions (EHLO only).

use super::session::{Flow, Helo, Session};
use crate::smtp::proto::Reply;

impl Session {
    pub fn ehlo(&mut self, name: String, extended: bool) -> Flow {
        if !plausible_client_name(&name) {
            return self.refuse(Reply::param_syntax("invalid domain or address literal"));
        }
        // RFC 5321 §4.1.4: EHLO/HELO resets the state as RSET does.
        self.tx = None;
        let hostname = &self.ctx.config.hostname;
        let reply = if extended {
            let mut lines = vec![
                format!("{hostname} greets {name}"),
                "PIPELINING".into(),
                format!("SIZE {}", self.ctx.config.limits.max_message_size.0),
                "8BITMIME".into(),
                "SMTPUTF8".into(),
                "ENHANCEDSTATUSCODES".into(),
                "CHUNKING".into(),
                "DSN".into(),
            ];
            if self.starttls && self.tls.is_none() {
                lines.push("STARTTLS".into());
            }
            if self.offers_auth() {
                lines.push("AUTH PLAIN LOGIN".into());
            }
            if self.etrn_allowed() {
                lines.push("ETRN".into());
            }
            lines.push("HELP".into());
            Reply::plain(250, lines)
        } else {
            Reply::plain(250, vec![hostname.clone()])
        };
        self.helo = Some(Helo { name, extended });
        self.answer(reply)
    }
}

/// A domain or address literal; we do not verify it, but refuse what cannot be either,
/// since it ends up in our Received header.
fn plausible_client_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:-".contains(&b));
    }
    name.chars()
        .all(|c| c.is_alphanumeric() || c == '.' || c == '-' || c == '_')
}
