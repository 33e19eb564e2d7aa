//! What happened on the data path, published once and read by whoever subscribed: the
//! metrics registry counts events, the probes watch for their own messages being delivered.
//!
//! Owns the event vocabulary. Publishers (the SMTP session, the queue writer's callers,
//! delivery, next-hop health, the authentication checks) know nothing of their readers,
//! so no module below `server` imports metrics or probes. Subscribers run synchronously on
//! the publisher's thread: they must be cheap and never block (a counter, a map lookup).

use crate::envelope::{QueueId, RcptStatus};
use crate::smtp::proto::Reply;
use std::sync::{Arc, RwLock};

/// One thing that happened. Borrowed, so publishing allocates nothing.
#[derive(Debug)]
pub enum Event<'a> {
    /// A message was durably queued and acknowledged with `250`.
    Accepted,
    /// A command was refused with 4xx/5xx in a session.
    Rejected(&'a Reply),
    /// The kernel handed us an inbound connection.
    ConnectionAccepted,
    /// An inbound connection was refused with `421`; `total` or `per_ip`.
    ConnectionRefused(&'static str),
    /// A TLS handshake completed; `described` as [`crate::tls::describe`] writes it.
    TlsSession {
        direction: Direction,
        described: &'a str,
    },
    /// A TLS session failed or was refused, for a fixed `reason` word.
    TlsFailure {
        direction: Direction,
        reason: &'static str,
    },
    /// One `method=result` of the Authentication-Results field we wrote.
    AuthVerdict { method: &'a str, result: &'a str },
    /// A recipient of message `id` after one delivery attempt (or expiry).
    Recipient { id: QueueId, status: &'a RcptStatus },
    /// Next-hop health decided that `hop` (`host:port`) is up or down.
    HopState { hop: &'a str, up: bool },
    /// A content scanner (`rspamd`, `clamd`; `any` for a message over `scan.max_size`)
    /// gave `verdict` (`reject`, `add_header`, `no_action`, `clean`, `infected`, `error`,
    /// `skipped_size`…) after `seconds`.
    Scanned {
        scanner: &'static str,
        verdict: &'a str,
        seconds: f64,
    },
    /// One outbound connection attempt to an MX host of `policy_domain` under its transport
    /// policy, as RFC 8460 (TLS-RPT) counts them: metrics count outcomes, the TLS-RPT
    /// aggregator sums them per policy domain and day.
    TlsPolicyOutcome {
        /// The recipient domain whose policy applied.
        policy_domain: &'a str,
        /// RFC 8460 §4.4 `policy-type`: `tlsa`, `sts` or `no-policy-found`.
        policy_type: &'static str,
        /// The policy as RFC 8460 quotes it: TLSA records in presentation form, or the
        /// MTA-STS policy's lines. Empty for `no-policy-found`.
        policy_string: &'a [String],
        /// The MX host name we connected to (or tried to).
        mx_host: &'a str,
        /// The address we connected to, when a connection was made.
        receiving_ip: Option<std::net::IpAddr>,
        /// `None` on success, else an RFC 8460 §4.3 `result-type`
        /// (`starttls-not-supported`, `certificate-host-mismatch`, `certificate-expired`,
        /// `certificate-not-trusted`, `validation-failure`, `tlsa-invalid`,
        /// `dnssec-invalid`, `dane-required`, `sts-policy-fetch-error`,
        /// `sts-policy-invalid`, `sts-webpki-invalid`).
        failure: Option<&'static str>,
        /// Whether the policy was enforced (`false`: `log-only`/`testing`, delivery went on).
        enforced: bool,
    },
    /// A message from outside was checked against the DMARC policy of its From: domain
    /// (published only when that domain has a policy): one row of an RFC 7489 aggregate
    /// report.
    DmarcChecked(&'a DmarcChecked),
    /// A TLS-RPT (`tlsrpt`) or DMARC aggregate (`dmarc`) report for `domain` was queued,
    /// failed, or skipped, `result` saying which (`queued`, `failed`, `skipped_…`).
    ReportSent {
        kind: &'static str,
        domain: &'a str,
        result: &'static str,
    },
}

/// What RFC 7489 §7.2 reports about one checked message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcChecked {
    pub source_ip: std::net::IpAddr,
    /// The From: domain, lower case: the policy domain.
    pub header_from: String,
    /// The MAIL FROM domain (the HELO name for the null sender), lower case.
    pub envelope_from: String,
    /// The policy as published: `adkim`/`aspf` (`r`, `s`), `p`/`sp` (`none`, `quarantine`,
    /// `reject`).
    pub adkim: &'static str,
    pub aspf: &'static str,
    pub p: &'static str,
    pub sp: &'static str,
    /// What we did: `none`, `quarantine` or `reject`.
    pub disposition: &'static str,
    /// DMARC's DKIM and SPF evaluations (aligned and passing): `pass` or `fail`.
    pub dkim_aligned: &'static str,
    pub spf_aligned: &'static str,
    /// Each DKIM signature checked: (`d=` domain, selector, result word).
    pub dkim: Vec<(String, String, &'static str)>,
    /// The SPF result DMARC used: domain, scope (`mfrom` or `helo`), result word.
    pub spf: (String, &'static str, &'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

type Subscriber = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// The publish side, cheap to clone; every clone reaches the same subscribers.
#[derive(Clone, Default)]
pub struct Events {
    subscribers: Arc<RwLock<Vec<Subscriber>>>,
}

impl Events {
    /// A bus with no subscribers yet.
    pub fn new() -> Events {
        Events::default()
    }

    /// Calls `f` for every event published from now on.
    pub fn subscribe(&self, f: impl Fn(&Event<'_>) + Send + Sync + 'static) {
        self.subscribers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(f));
    }

    pub fn publish(&self, event: &Event<'_>) {
        let subscribers = self.subscribers.read().unwrap_or_else(|e| e.into_inner());
        for subscriber in subscribers.iter() {
            subscriber(event);
        }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.subscribers.read().map(|s| s.len()).unwrap_or_default();
        write!(f, "Events({n} subscribers)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_subscriber_sees_every_event_published_after_it_subscribed() {
        let events = Events::new();
        events.publish(&Event::Accepted);
        let (a, b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let seen = a.clone();
        events.subscribe(move |e| {
            if matches!(e, Event::Accepted) {
                seen.fetch_add(1, Ordering::Relaxed);
            }
        });
        let seen = b.clone();
        events.clone().subscribe(move |e| {
            if let Event::HopState { up: false, .. } = e {
                seen.fetch_add(1, Ordering::Relaxed);
            }
        });
        events.publish(&Event::Accepted);
        events.clone().publish(&Event::HopState {
            hop: "10.0.0.1:25",
            up: false,
        });
        assert_eq!(a.load(Ordering::Relaxed), 1);
        assert_eq!(b.load(Ordering::Relaxed), 1);
    }
}
