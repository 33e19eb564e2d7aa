//! Who may send what: the relay decision for each recipient.
//!
//! Owns the rule that keeps edgemx from being an open relay: a recipient is accepted only
//! when its domain is one we serve (compared case-insensitively), and never when the
//! address carries a relay trick (`%` hack, `!` path, source route, quoted `@`, IP
//! literal) that some downstream server might route elsewhere. It does no I/O.

pub mod auth;

use crate::config::Config;
use crate::queue::{RcptStatus, Recipient};
use crate::smtp::proto::{Domain, ForwardPath, RelayHack, Reply};

/// Why a recipient was refused: the reply for the client and a reason for the log.
#[derive(Debug)]
pub struct Denial {
    pub reply: Reply,
    pub reason: &'static str,
}

/// Accepts `to` for delivery or says why not.
pub fn recipient(config: &Config, to: &ForwardPath) -> Result<Recipient, Denial> {
    let mailbox = match to {
        ForwardPath::Postmaster => return postmaster(config),
        ForwardPath::Mailbox { mailbox, .. } => mailbox,
    };
    if let Some(hack) = to.relay_hack() {
        return Err(deny(match hack {
            RelayHack::Percent => "% hack in local part",
            RelayHack::Bang => "! path in local part",
            RelayHack::QuotedAt => "quoted local part holding @",
            RelayHack::IpLiteral => "IP literal domain",
            RelayHack::SourceRoute => "source route",
        }));
    }
    let Domain::Name(domain) = &mailbox.domain else {
        return Err(deny("IP literal domain"));
    };
    if config.domain(domain.as_str()).is_none() {
        return Err(deny("domain not served here"));
    }
    Ok(Recipient {
        address: mailbox.to_string(),
        domain: domain.clone(),
        status: RcptStatus::Pending,
    })
}

/// RFC 5321 §4.5.1: `<Postmaster>` must be accepted; it means our own postmaster, who
/// lives in the first domain we serve.
fn postmaster(config: &Config) -> Result<Recipient, Denial> {
    let Some(domain) = config.domains.first() else {
        return Err(deny("no domain configured for postmaster"));
    };
    Ok(Recipient {
        address: format!("postmaster@{}", domain.name),
        domain: domain.name.clone(),
        status: RcptStatus::Pending,
    })
}

fn deny(reason: &'static str) -> Denial {
    Denial {
        reply: Reply::relay_denied(),
        reason,
    }
}
