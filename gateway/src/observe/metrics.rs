//! The process-wide metrics registry and its Prometheus text rendering (format 0.0.4).
//!
//! Owns every metric name. The data path reports events with one call each (`accepted()`,
//! `rejected(&reply)`, `recipient(&status)`…); hot, unlabelled counters are plain atomics,
//! labelled families sit in one map behind a mutex (their events are rare: TLS handshakes,
//! refusals, verdicts, state changes). Values read from elsewhere at scrape time (queue
//! depth, open connections, health) are rendered by [`render`] from a [`Scrape`].
//!
//! Other parts feed it through this API: `auth_verdict(method, result)` for SPF/DKIM/DMARC/ARC
//! results, `next_hop_state(hop, up)` for next-hop health, `tls_session(direction, described)`.

use crate::queue::{QueueId, RcptStatus};
use crate::smtp::proto::Reply;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static DELIVERED: AtomicU64 = AtomicU64::new(0);
static DEFERRED: AtomicU64 = AtomicU64::new(0);
static BOUNCED: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// family → rendered label set → value.
static LABELLED: Mutex<BTreeMap<&'static str, BTreeMap<String, f64>>> = Mutex::new(BTreeMap::new());

/// A family never holds more label sets than this: values partly come from peers (cipher
/// names) and other modules, and a scrape must stay small whatever they send.
const MAX_SERIES: usize = 1000;

/// Name, type and help of every family, in output order.
const FAMILIES: &[(&str, &str, &str)] = &[
    ("edgemx_up", "gauge", "1 while the gateway runs"),
    ("edgemx_healthy", "gauge", "1 when /healthz answers 200"),
    (
        "edgemx_messages_accepted_total",
        "counter",
        "Messages queued and acknowledged with 250",
    ),
    (
        "edgemx_smtp_rejected_total",
        "counter",
        "Commands refused with 4xx/5xx, by reason (RFC 3463 subject) and code",
    ),
    (
        "edgemx_delivered_total",
        "counter",
        "Recipients delivered to a next hop (2xx)",
    ),
    (
        "edgemx_deferred_total",
        "counter",
        "Recipient delivery attempts deferred (4xx, unreachable, held)",
    ),
    (
        "edgemx_bounced_total",
        "counter",
        "Recipients failed for good (5xx or expired)",
    ),
    ("edgemx_queue_messages", "gauge", "Messages in the queue"),
    ("edgemx_queue_bytes", "gauge", "Message bytes in the queue"),
    (
        "edgemx_queue_destination_messages",
        "gauge",
        "Queued messages with recipients still open, per destination",
    ),
    (
        "edgemx_queue_destination_oldest_age_seconds",
        "gauge",
        "Age of the oldest such message, per destination",
    ),
    (
        "edgemx_connections_current",
        "gauge",
        "Inbound SMTP sessions open now",
    ),
    (
        "edgemx_connections_total",
        "counter",
        "Inbound SMTP connections accepted by the kernel",
    ),
    (
        "edgemx_connections_refused_total",
        "counter",
        "Inbound connections refused with 421, by reason",
    ),
    (
        "edgemx_tls_sessions_total",
        "counter",
        "TLS handshakes completed, by direction, version and cipher",
    ),
    (
        "edgemx_auth_verdicts_total",
        "counter",
        "Authentication verdicts, by method and result",
    ),
    (
        "edgemx_next_hop_up",
        "gauge",
        "1 when the next hop is considered up, 0 when down",
    ),
    (
        "edgemx_probe_up",
        "gauge",
        "1 when the last probe of the next hop succeeded",
    ),
    (
        "edgemx_probe_duration_seconds",
        "gauge",
        "Duration of the last RCPT probe",
    ),
    (
        "edgemx_probe_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful probe",
    ),
    ("edgemx_probes_total", "counter", "Probes run, by result"),
    (
        "edgemx_probe_message_seconds",
        "gauge",
        "Last probe message: from submission to the next hop's 250",
    ),
    (
        "edgemx_probe_message_submit_seconds",
        "gauge",
        "Last probe message: from connect to our 250 (durably queued)",
    ),
];

/// A message was durably queued and acknowledged.
pub fn accepted() {
    ACCEPTED.fetch_add(1, Relaxed);
}

/// A command was refused (4xx/5xx) in a session.
pub fn rejected(reply: &Reply) {
    let reason = match (reply.status.1, reply.status.2) {
        (_, _) if reply.status.is_none() => "other",
        (1, _) => "address",
        (2, _) => "mailbox",
        (3, 4) => "size",
        (3, _) => "system",
        (4, _) => "network",
        (5, _) => "protocol",
        (6, _) => "content",
        (7, _) => "policy",
        _ => "other",
    };
    let code = reply.code.to_string();
    add(
        "edgemx_smtp_rejected_total",
        &[("reason", reason), ("code", &code)],
        1.0,
    );
}

/// A recipient of message `id` and its status after one delivery attempt (or expiry).
pub fn recipient(id: QueueId, status: &RcptStatus) {
    super::probe::settled(id, status);
    let counter = match status {
        RcptStatus::Delivered { .. } => &DELIVERED,
        RcptStatus::Deferred { .. } => &DEFERRED,
        RcptStatus::Failed { .. } => &BOUNCED,
        _ => return,
    };
    counter.fetch_add(1, Relaxed);
}

pub fn connection_accepted() {
    CONNECTIONS.fetch_add(1, Relaxed);
}

/// `reason`: `total` or `per_ip`.
pub fn connection_refused(reason: &'static str) {
    add(
        "edgemx_connections_refused_total",
        &[("reason", reason)],
        1.0,
    );
}

/// `direction`: `inbound` or `outbound`; `described` as [`crate::tls::describe`] writes it.
pub fn tls_session(direction: &'static str, described: &str) {
    let (version, cipher) = described.split_once(' ').unwrap_or((described, ""));
    add(
        "edgemx_tls_sessions_total",
        &[
            ("direction", direction),
            ("version", version),
            ("cipher", cipher),
        ],
        1.0,
    );
}

/// An authentication verdict, e.g. `("spf", "pass")`, `("dmarc", "fail")`.
pub fn auth_verdict(method: &str, result: &str) {
    add(
        "edgemx_auth_verdicts_total",
        &[("method", method), ("result", result)],
        1.0,
    );
}

/// The up/down state of a next hop (`host:port`), fed by next-hop health checks.
pub fn next_hop_state(hop: &str, up: bool) {
    set(
        "edgemx_next_hop_up",
        &[("next_hop", hop)],
        if up { 1.0 } else { 0.0 },
    );
}

/// Sets a labelled gauge (used by the probes).
pub fn set(family: &'static str, labels: &[(&str, &str)], value: f64) {
    update(family, labels, |v| *v = value);
}

/// Adds to a labelled counter.
pub fn add(family: &'static str, labels: &[(&str, &str)], delta: f64) {
    update(family, labels, |v| *v += delta);
}

fn update(family: &'static str, labels: &[(&str, &str)], f: impl FnOnce(&mut f64)) {
    let key = label_set(labels);
    let mut all = LABELLED.lock().unwrap_or_else(|e| e.into_inner());
    let series = all.entry(family).or_default();
    if series.len() >= MAX_SERIES && !series.contains_key(&key) {
        return;
    }
    f(series.entry(key).or_insert(0.0));
}

/// What is read at scrape time rather than counted.
#[derive(Debug, Default)]
pub struct Scrape {
    pub healthy: bool,
    pub queue_messages: u64,
    pub queue_bytes: u64,
    /// destination → (messages, oldest age in seconds).
    pub destinations: BTreeMap<String, (u64, u64)>,
    pub connections_current: u64,
}

/// The whole exposition: every family with its HELP and TYPE, then its samples.
pub fn render(scrape: &Scrape) -> String {
    let labelled = LABELLED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out = String::with_capacity(4096);
    for (name, kind, help) in FAMILIES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        let plain = match *name {
            "edgemx_up" => Some(1),
            "edgemx_healthy" => Some(u64::from(scrape.healthy)),
            "edgemx_messages_accepted_total" => Some(ACCEPTED.load(Relaxed)),
            "edgemx_delivered_total" => Some(DELIVERED.load(Relaxed)),
            "edgemx_deferred_total" => Some(DEFERRED.load(Relaxed)),
            "edgemx_bounced_total" => Some(BOUNCED.load(Relaxed)),
            "edgemx_queue_messages" => Some(scrape.queue_messages),
            "edgemx_queue_bytes" => Some(scrape.queue_bytes),
            "edgemx_connections_current" => Some(scrape.connections_current),
            "edgemx_connections_total" => Some(CONNECTIONS.load(Relaxed)),
            _ => None,
        };
        if let Some(value) = plain {
            let _ = writeln!(out, "{name} {value}");
        }
        for (dest, (messages, age)) in &scrape.destinations {
            let labels = label_set(&[("destination", dest)]);
            match *name {
                "edgemx_queue_destination_messages" => {
                    let _ = writeln!(out, "{name}{labels} {messages}");
                }
                "edgemx_queue_destination_oldest_age_seconds" => {
                    let _ = writeln!(out, "{name}{labels} {age}");
                }
                _ => {}
            }
        }
        for (labels, value) in labelled.get(name).into_iter().flatten() {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    }
    out
}

/// `{a="x",b="y"}` with the exposition format's escapes; values are cut to 128 characters.
fn label_set(labels: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars().take(128) {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c if c.is_control() => {}
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_families_carry_help_and_type() {
        assert_eq!(
            label_set(&[("a", "x\"y\\z\n"), ("b", "ok")]),
            r#"{a="x\"y\\z\n",b="ok"}"#
        );
        auth_verdict("spf", "pass");
        let text = render(&Scrape::default());
        assert!(text.contains("# TYPE edgemx_auth_verdicts_total counter\n"));
        assert!(text.contains("edgemx_auth_verdicts_total{method=\"spf\",result=\"pass\"} "));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn refusals_are_labelled_by_the_subject_of_their_enhanced_status() {
        rejected(&Reply::relay_denied());
        let text = render(&Scrape::default());
        let code = Reply::relay_denied().code;
        assert!(
            text.contains(&format!(
                "edgemx_smtp_rejected_total{{reason=\"policy\",code=\"{code}\"}}"
            )),
            "{text}"
        );
    }
}
