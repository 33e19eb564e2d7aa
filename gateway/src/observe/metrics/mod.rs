//! The metrics registry, a value, and its Prometheus text rendering (format 0.0.4).
//!
//! Owns every metric name. The data path does not call it: it publishes [`Event`]s and
//! [`Metrics::count`] (subscribed by `server`) turns them into samples. Hot, unlabelled
//! counters are atomics; labelled families sit in one map behind a mutex (their events are
//! rare: TLS handshakes, refusals, verdicts, state changes). Values read elsewhere at scrape
//! time (queue depth, open connections, health) are rendered by [`Metrics::render`] from a
//! [`Scrape`]. The probes set their gauges with [`Metrics::set`] and [`Metrics::add`].
//!
//! One registry per running gateway, so tests run many gateways in one process.

mod render;

pub use render::Scrape;

use super::events::{Event, Events};
use crate::envelope::RcptStatus;
use crate::smtp::proto::Reply;
use render::label_set;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Metrics {
    accepted: AtomicU64,
    delivered: AtomicU64,
    deferred: AtomicU64,
    bounced: AtomicU64,
    connections: AtomicU64,
    /// family → rendered label set → value.
    labelled: Mutex<BTreeMap<&'static str, BTreeMap<String, f64>>>,
}

/// A family never holds more label sets than this: values partly come from peers (cipher
/// names) and other modules, and a scrape must stay small whatever they send.
const MAX_SERIES: usize = 1000;

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Counts every event published on `events` from now on.
    pub fn count(self: &Arc<Self>, events: &Events) {
        let metrics = self.clone();
        events.subscribe(move |event| metrics.record(event));
    }

    fn record(&self, event: &Event<'_>) {
        match event {
            Event::Accepted => {
                self.accepted.fetch_add(1, Relaxed);
            }
            Event::Rejected(reply) => self.rejected(reply),
            Event::ConnectionAccepted => {
                self.connections.fetch_add(1, Relaxed);
            }
            Event::ConnectionRefused(reason) => self.add(
                "edgemx_connections_refused_total",
                &[("reason", reason)],
                1.0,
            ),
            Event::TlsSession {
                direction,
                described,
            } => {
                let (version, cipher) = described.split_once(' ').unwrap_or((described, ""));
                self.add(
                    "edgemx_tls_sessions_total",
                    &[
                        ("direction", direction.as_str()),
                        ("version", version),
                        ("cipher", cipher),
                    ],
                    1.0,
                );
            }
            Event::TlsFailure { direction, reason } => self.add(
                "edgemx_tls_failures_total",
                &[("direction", direction.as_str()), ("reason", reason)],
                1.0,
            ),
            Event::AuthVerdict { method, result } => self.add(
                "edgemx_auth_verdicts_total",
                &[("method", method), ("result", result)],
                1.0,
            ),
            Event::Recipient { status, .. } => {
                let counter = match status {
                    RcptStatus::Delivered { .. } => &self.delivered,
                    RcptStatus::Deferred { .. } => &self.deferred,
                    RcptStatus::Failed { .. } => &self.bounced,
                    _ => return,
                };
                counter.fetch_add(1, Relaxed);
            }
            Event::HopState { hop, up } => self.set(
                "edgemx_next_hop_up",
                &[("next_hop", hop)],
                if *up { 1.0 } else { 0.0 },
            ),
            Event::TlsPolicyOutcome {
                policy_type,
                failure,
                enforced,
                ..
            } => self.add(
                "edgemx_tls_policy_outcomes_total",
                &[
                    ("policy", policy_type),
                    ("result", failure.unwrap_or("success")),
                    ("enforced", if *enforced { "yes" } else { "no" }),
                ],
                1.0,
            ),
            Event::DmarcChecked(_) => {}
            Event::ReportSent { kind, result, .. } => self.add(
                "edgemx_reports_sent_total",
                &[("kind", kind), ("result", result)],
                1.0,
            ),
            Event::Scanned {
                scanner,
                verdict,
                seconds,
            } => {
                self.add(
                    "edgemx_scan_verdicts_total",
                    &[("scanner", scanner), ("verdict", verdict)],
                    1.0,
                );
                if *scanner != "any" {
                    self.add(
                        "edgemx_scan_seconds_total",
                        &[("scanner", scanner)],
                        *seconds,
                    );
                    self.add("edgemx_scans_total", &[("scanner", scanner)], 1.0);
                    self.set(
                        "edgemx_scan_last_seconds",
                        &[("scanner", scanner)],
                        *seconds,
                    );
                }
            }
        }
    }

    /// Refusals by the subject of their enhanced status code and the code.
    fn rejected(&self, reply: &Reply) {
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
        self.add(
            "edgemx_smtp_rejected_total",
            &[("reason", reason), ("code", &code)],
            1.0,
        );
    }

    /// Sets a labelled gauge (used by the probes).
    pub fn set(&self, family: &'static str, labels: &[(&str, &str)], value: f64) {
        self.update(family, labels, |v| *v = value);
    }

    /// Adds to a labelled counter.
    pub fn add(&self, family: &'static str, labels: &[(&str, &str)], delta: f64) {
        self.update(family, labels, |v| *v += delta);
    }

    fn update(&self, family: &'static str, labels: &[(&str, &str)], f: impl FnOnce(&mut f64)) {
        let key = label_set(labels);
        let mut all = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
        let series = all.entry(family).or_default();
        if series.len() >= MAX_SERIES && !series.contains_key(&key) {
            return;
        }
        f(series.entry(key).or_insert(0.0));
    }
}
