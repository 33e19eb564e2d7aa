//! Who may send what: the relay decision for each recipient, its route, and whether it
//! exists.
//!
//! Owns the rule that keeps edgemx from being an open relay: a recipient is accepted only
//! when its domain is one we serve (compared case-insensitively), and never when the
//! address carries a relay trick (`%` hack, `!` path, source route, quoted `@`, IP
//! literal) that some downstream server might route elsewhere, unless the client holds a
//! relay grant ([`relay`]). [`recipient`] is pure; [`validate`] checks existence (static
//! lists, the SMTP callout in [`callout`]); [`users`] reads the AUTH users file.

pub mod auth;
pub mod relay;
pub mod users;

pub mod callout;
pub mod validate;

pub use validate::Recipients;

use crate::envelope::Recipient;
use crate::routing::{RouteId, Snapshot, Table, rewrite};
use crate::smtp::proto::{Domain, ForwardPath, RelayHack, Reply};
use relay::RelayGrant;

/// Why a recipient was refused: the reply for the client and a reason for the log.
#[derive(Debug)]
pub struct Denial {
    pub reply: Reply,
    pub reason: &'static str,
}

/// A recipient as routed at RCPT, before validation.
#[derive(Debug, Clone)]
pub struct Routed {
    /// Address as delivered (rewritten by its route), with the route name stored.
    pub recipient: Recipient,
    /// The address as the client gave it; a fallback route rewrites from this one.
    pub original: String,
    pub route: Option<RouteId>,
    /// Checked at RCPT: false for alias targets (the operator's) and postmaster.
    pub validate: bool,
}

/// Accepts `to` for delivery, routed (and expanded when it is an alias), or says why not;
/// `grant` lets the client relay to domains we do not serve.
pub fn recipient(
    table: &Table,
    maps: &Snapshot,
    to: &ForwardPath,
    grant: Option<&RelayGrant>,
) -> Result<Vec<Routed>, Denial> {
    let mailbox = match to {
        ForwardPath::Postmaster => return postmaster(table, maps),
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
    if !table.serves(domain) {
        relay::outside(grant)?;
        return Ok(vec![route(table, maps, &mailbox.to_string(), false)]);
    }
    let address = mailbox.to_string();
    if let Some(targets) = maps.aliases.get(&address.to_lowercase()) {
        return Ok(targets
            .iter()
            .map(|t| route(table, maps, t, false))
            .collect());
    }
    // RFC 5321 §4.5.1: postmaster of a served domain is always accepted.
    let checked = !mailbox.local.eq_ignore_ascii_case("postmaster");
    Ok(vec![route(table, maps, &address, checked)])
}

/// One address routed: the per-recipient map first, then the domain; then the route's
/// rewriting.
pub fn route(table: &Table, maps: &Snapshot, address: &str, validate: bool) -> Routed {
    let plain = Recipient::pending(address);
    let id = maps
        .map
        .get(&address.to_lowercase())
        .or_else(|| table.by_domain(&plain.domain));
    let Some(id) = id else {
        return Routed {
            recipient: plain,
            original: address.to_owned(),
            route: None,
            validate,
        };
    };
    let route = table.route(id);
    let mut recipient = match rewrite::recipient(route, address) {
        Some(rewritten) => Recipient::pending(rewritten),
        None => plain,
    };
    recipient.route = Some(route.name.to_string());
    Routed {
        recipient,
        original: address.to_owned(),
        route: Some(id),
        validate,
    }
}

/// RFC 5321 §4.5.1: `<Postmaster>` must be accepted; it means our own postmaster, who
/// lives in the first domain we serve.
fn postmaster(table: &Table, maps: &Snapshot) -> Result<Vec<Routed>, Denial> {
    let Some(domain) = table.first_domain() else {
        return Err(deny("no domain configured for postmaster"));
    };
    Ok(vec![route(
        table,
        maps,
        &format!("postmaster@{domain}"),
        false,
    )])
}

fn deny(reason: &'static str) -> Denial {
    Denial {
        reply: Reply::relay_denied(),
        reason,
    }
}
