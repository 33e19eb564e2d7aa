//! Email authentication at the end of DATA/BDAT: SPF, DKIM, DMARC and ARC for mail from
//! clients without relay permission, DKIM signing for mail from clients with it.
//!
//! Owns the verdict on a received message and the header fields that record it: our
//! Authentication-Results (with `auth.authserv_id`), the removal of forged ones claiming
//! that id, and the quarantine mark. Enforcement follows the DMARC policy (`decide.rs`);
//! DNS goes through a mail-auth resolver built from `[dns]` (never a public provider) and
//! all of one message's lookups together are bounded by `auth.timeout`. Trusted relays are
//! neither checked nor stripped. The session only calls [`MailAuth::process`] and acts on
//! the [`Verdict`]; nothing here touches the queue.

mod decide;
mod dkim;
mod dmarc;
mod header;
mod row;
mod verify;

pub use decide::{Action, Dmarc, Policy, decide};

use crate::config::Config;
use crate::config::auth::Auth;
use crate::dkim::{KeyError, Signer};
use crate::observe::events::{Event, Events};
use crate::smtp::proto::Reply;
use mail_auth::MessageAuthenticator;
use std::net::IpAddr;
use std::sync::OnceLock;

/// The header field that marks a message DMARC asked to quarantine.
pub const QUARANTINE_HEADER: &str = "X-Edgemx-Quarantine";

/// What the session knows about where a message came from.
pub struct Origin<'a> {
    pub ip: IpAddr,
    /// The EHLO/HELO argument as given.
    pub helo: &'a str,
    /// The reverse path without brackets; empty for `<>`.
    pub mail_from: &'a str,
    /// The client may relay (internal server or application): sign, do not verify.
    pub outbound: bool,
}

/// What the session does with the message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Queue it (its header fields may have been edited); `held` keeps it from delivery.
    Accept { held: bool },
    /// Answer with this reply and queue nothing.
    Refuse(Reply),
}

pub struct MailAuth {
    settings: Auth,
    hostname: String,
    dns: crate::config::Dns,
    /// Built at load, or at the first message after a resolver appeared: inside the image
    /// `/etc/resolv.conf` is written when DHCP delivers a lease, which may be after start.
    resolver: OnceLock<MessageAuthenticator>,
    signer: Signer,
    /// Where the verdicts are announced.
    events: Events,
}

impl MailAuth {
    /// Announces the verdicts of every check on `events`.
    pub fn publishing(mut self, events: &Events) -> MailAuth {
        self.events = events.clone();
        self
    }

    /// Loads the signing keys and builds the resolver (when verification is on). Must run
    /// inside the tokio runtime.
    pub fn load(config: &Config) -> Result<MailAuth, KeyError> {
        let signer = Signer::load(config)?;
        let auth = MailAuth {
            settings: config.auth.clone(),
            hostname: config.hostname.clone(),
            dns: config.dns.clone(),
            resolver: OnceLock::new(),
            signer,
            events: Events::new(),
        };
        if config.auth.verify
            && let Err(e) = crate::dns::Resolver::new(&config.dns).map(|r| auth.keep(r))
        {
            log::error!(
                "auth: verify is on but there is no DNS resolver ({e}): every check is a temporary error (auth.dns_errors decides) until [dns] or /etc/resolv.conf names one"
            );
        }
        Ok(auth)
    }

    fn keep(&self, resolver: crate::dns::Resolver) -> &MessageAuthenticator {
        self.resolver
            .get_or_init(|| MessageAuthenticator(resolver.hickory()))
    }

    /// The resolver, built now if none could be at load.
    fn resolver(&self) -> Option<&MessageAuthenticator> {
        if let Some(resolver) = self.resolver.get() {
            return Some(resolver);
        }
        let resolver = crate::dns::Resolver::new(&self.dns).ok()?;
        log::info!("auth: a DNS resolver is available now; checks run");
        Some(self.keep(resolver))
    }

    /// Signs outbound mail, or checks inbound mail and records the result in its header.
    pub async fn process(&self, origin: &Origin<'_>, message: &mut Vec<u8>) -> Verdict {
        if origin.outbound {
            self.sign(message);
            return Verdict::Accept { held: false };
        }
        if !self.settings.verify || self.is_trusted(origin.ip) {
            return Verdict::Accept { held: false };
        }
        let id = self.settings.authserv_id.as_str();
        let checks = match self.resolver() {
            Some(resolver) => {
                let limit = self.settings.timeout.0;
                let run = verify::run(resolver, id, &self.hostname, origin, message);
                match tokio::time::timeout(limit, run).await {
                    Ok(checks) => checks,
                    Err(_) => {
                        verify::unfinished(id, &format!("checks did not finish within {limit:?}"))
                    }
                }
            }
            None => verify::unfinished(id, "no DNS resolver"),
        };
        for (method, result) in verify::verdicts(&checks.header) {
            self.events.publish(&Event::AuthVerdict { method, result });
        }
        let action = decide(&checks.dmarc, &self.settings);
        if let Some(mut row) = checks.row {
            row.disposition = match &action {
                Action::Reject { .. } => "reject",
                Action::Quarantine { .. } => "quarantine",
                Action::Deliver | Action::Defer => "none",
            };
            // A deferred message was not received: the sender tries again and that
            // attempt is the one reported.
            if !matches!(action, Action::Defer) {
                self.events.publish(&Event::DmarcChecked(&row));
            }
        }
        log::info!(
            "auth {} from=<{}> {:?}: {}",
            origin.ip,
            origin.mail_from,
            action,
            checks.header.trim_end().replace("\r\n\t", " ")
        );
        let held = match &action {
            Action::Reject { domain } => return Verdict::Refuse(Reply::dmarc_reject(domain)),
            Action::Defer => return Verdict::Refuse(Reply::auth_temporary_failure()),
            Action::Deliver => false,
            Action::Quarantine { hold, .. } => *hold,
        };
        let removed = header::strip_forged(message, id);
        if removed > 0 {
            log::info!(
                "auth {}: removed {removed} forged Authentication-Results",
                origin.ip
            );
        }
        let mut fields = checks.header.into_bytes();
        if let Action::Quarantine { domain, .. } = &action {
            fields.extend_from_slice(
                format!("{QUARANTINE_HEADER}: dmarc=fail policy.dmarc=quarantine header.from={domain}\r\n")
                    .as_bytes(),
            );
        }
        header::prepend(message, &fields);
        Verdict::Accept { held }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        // `Cidr::contains` takes a v4 client on a dual-stack socket (::ffff:a.b.c.d) as v4.
        self.settings
            .trusted_nets
            .iter()
            .any(|net| net.contains(ip))
    }

    /// Prepends our DKIM signatures; a message we cannot sign is relayed unsigned.
    fn sign(&self, message: &mut Vec<u8>) {
        match offload(message.len(), || self.signer.sign(message)) {
            Ok(fields) if fields.is_empty() => {}
            Ok(fields) => header::prepend(message, &fields),
            Err(e) => log::warn!("DKIM signing failed, relaying unsigned: {e}"),
        }
    }
}

/// Messages larger than this are hashed off the async worker.
const OFFLOAD_BYTES: usize = 256 * 1024;

/// Runs CPU work over a message of `size` bytes; a large one runs in `block_in_place` so
/// the worker's other sessions move to another thread meanwhile (multi-thread runtime only:
/// a current-thread runtime has nowhere to move them).
fn offload<R>(size: usize, work: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_thread =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if size > OFFLOAD_BYTES && multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}
