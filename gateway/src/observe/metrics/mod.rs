//! The process-wide metrics registry and its Prometheus text rendering (format 0.0.4).
//!
//! Owns every metric name. The data path reports events with one call each (`accepted()`,
//! `rejected(&reply)`, `recipient(id, &status)`…); hot, unlabelled counters are plain atomics,
//! labelled families sit in one map behind a mutex (their events are rare: TLS handshakes,
//! refusals, verdicts, state changes). Values read from elsewhere at scrape time (queue
//! depth, open connections, health) are rendered by [`render`] from a [`Scrape`].
//!
//! Other parts feed it through this API: `auth_verdict(method, result)` for SPF/DKIM/DMARC/ARC
//! results, `next_hop_state(hop, up)` for next-hop health, `tls_session(direction, described)`,
//! `tls_failure(direction, reason)`.

mod render;

pub use render::{Scrape, render};

use crate::queue::{QueueId, RcptStatus};
use crate::smtp::proto::Reply;
use render::label_set;
use std::collections::BTreeMap;
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

/// A TLS session that failed or was refused, by `reason` (a fixed word from the caller:
/// `starttls_refused`, `server_certificate`, `client_certificate_required`, …).
pub fn tls_failure(direction: &'static str, reason: &'static str) {
    add(
        "edgemx_tls_failures_total",
        &[("direction", direction), ("reason", reason)],
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
