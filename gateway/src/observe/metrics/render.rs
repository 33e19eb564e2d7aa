//! The Prometheus text exposition (format 0.0.4): every family's HELP and TYPE, the
//! counted samples and the values read at scrape time.

use super::Metrics;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

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
        "edgemx_queue_commit_failing",
        "gauge",
        "1 while the queue cannot commit (disk full, I/O error); mail gets 452 meanwhile",
    ),
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
        "edgemx_tls_failures_total",
        "counter",
        "TLS sessions that failed or were refused, by direction and reason",
    ),
    (
        "edgemx_tls_policy_outcomes_total",
        "counter",
        "Outbound attempts to MX hosts under DANE, MTA-STS or no policy, by result (RFC 8460)",
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
        "edgemx_scan_verdicts_total",
        "counter",
        "Content scan verdicts, by scanner (rspamd, clamd; any: over scan.max_size) and verdict",
    ),
    (
        "edgemx_scans_total",
        "counter",
        "Content scans finished (with a verdict or an error), by scanner",
    ),
    (
        "edgemx_scan_seconds_total",
        "counter",
        "Time spent waiting for scanners, by scanner (divide by edgemx_scans_total for the mean)",
    ),
    (
        "edgemx_scan_last_seconds",
        "gauge",
        "Duration of the last scan, by scanner",
    ),
    (
        "edgemx_reports_sent_total",
        "counter",
        "TLS-RPT and DMARC aggregate report attempts, by kind (tlsrpt, dmarc) and result (queued, failed, skipped_…)",
    ),
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
    (
        "edgemx_probe_message_waiting_seconds",
        "gauge",
        "How long the current probe message has waited for delivery (0: none waiting)",
    ),
];

/// What is read at scrape time rather than counted.
#[derive(Debug, Default)]
pub struct Scrape {
    pub healthy: bool,
    pub queue_messages: u64,
    pub queue_bytes: u64,
    /// The last queue commit failed and none has succeeded since.
    pub queue_failing: bool,
    /// destination → (messages, oldest age in seconds).
    pub destinations: BTreeMap<String, (u64, u64)>,
    pub connections_current: u64,
    /// next hop → seconds its current probe message has waited (0: none waiting).
    pub probe_waiting: Vec<(String, f64)>,
}

impl Metrics {
    /// The whole exposition: every family with its HELP and TYPE, then its samples.
    pub fn render(&self, scrape: &Scrape) -> String {
        let labelled = self
            .labelled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = String::with_capacity(4096);
        for (name, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let plain = match *name {
                "edgemx_up" => Some(1),
                "edgemx_healthy" => Some(u64::from(scrape.healthy)),
                "edgemx_messages_accepted_total" => Some(self.accepted.load(Relaxed)),
                "edgemx_delivered_total" => Some(self.delivered.load(Relaxed)),
                "edgemx_deferred_total" => Some(self.deferred.load(Relaxed)),
                "edgemx_bounced_total" => Some(self.bounced.load(Relaxed)),
                "edgemx_queue_messages" => Some(scrape.queue_messages),
                "edgemx_queue_bytes" => Some(scrape.queue_bytes),
                "edgemx_queue_commit_failing" => Some(u64::from(scrape.queue_failing)),
                "edgemx_connections_current" => Some(scrape.connections_current),
                "edgemx_connections_total" => Some(self.connections.load(Relaxed)),
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
            if *name == "edgemx_probe_message_waiting_seconds" {
                for (hop, secs) in &scrape.probe_waiting {
                    let labels = label_set(&[("next_hop", hop)]);
                    let _ = writeln!(out, "{name}{labels} {secs:.3}");
                }
            }
            for (labels, value) in labelled.get(name).into_iter().flatten() {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        }
        out
    }
}

/// `{a="x",b="y"}` with the exposition format's escapes; values are cut to 128 characters.
pub(super) fn label_set(labels: &[(&str, &str)]) -> String {
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
    use super::super::super::events::{Event, Events};
    use super::*;
    use crate::smtp::proto::Reply;

    #[test]
    fn labels_are_escaped_and_families_carry_help_and_type() {
        assert_eq!(
            label_set(&[("a", "x\"y\\z\n"), ("b", "ok")]),
            r#"{a="x\"y\\z\n",b="ok"}"#
        );
        let (metrics, events) = (Metrics::new(), Events::new());
        metrics.count(&events);
        events.publish(&Event::AuthVerdict {
            method: "spf",
            result: "pass",
        });
        for up in [true, false] {
            events.publish(&Event::HopState {
                hop: "10.0.0.1:25",
                up,
            });
        }
        let text = metrics.render(&Scrape::default());
        assert!(text.contains("# TYPE edgemx_auth_verdicts_total counter\n"));
        assert!(text.contains("edgemx_auth_verdicts_total{method=\"spf\",result=\"pass\"} 1\n"));
        assert!(text.contains("edgemx_next_hop_up{next_hop=\"10.0.0.1:25\"} 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn refusals_are_labelled_by_the_subject_of_their_enhanced_status() {
        let (metrics, events) = (Metrics::new(), Events::new());
        metrics.count(&events);
        events.publish(&Event::Rejected(&Reply::relay_denied()));
        let text = metrics.render(&Scrape::default());
        let code = Reply::relay_denied().code;
        assert!(
            text.contains(&format!(
                "edgemx_smtp_rejected_total{{reason=\"policy\",code=\"{code}\"}} 1\n"
            )),
            "{text}"
        );
    }

    #[test]
    fn two_registries_count_apart() {
        let (one, two) = (Metrics::new(), Metrics::new());
        let (events_one, events_two) = (Events::new(), Events::new());
        one.count(&events_one);
        two.count(&events_two);
        events_one.publish(&Event::Accepted);
        events_one.publish(&Event::Accepted);
        events_two.publish(&Event::Accepted);
        let scrape = Scrape::default();
        assert!(
            one.render(&scrape)
                .contains("\nedgemx_messages_accepted_total 2\n")
        );
        assert!(
            two.render(&scrape)
                .contains("\nedgemx_messages_accepted_total 1\n")
        );
    }
}
