//! The operator's view of the report senders (`report`): what is aggregated and waiting,
//! and what the last runs did. The types are shared by the control socket and the console;
//! the control socket reaches the senders through [`Desk`], so `control` and `report` do
//! not import each other (only `server` knows both).

use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;

/// `show reports`, `edgemx reports`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportsStatus {
    /// `[auth] tls_reports` and `dmarc_reports` as running.
    pub tls_reports: bool,
    pub dmarc_reports: bool,
    /// Aggregates not yet reported, oldest first.
    pub pending: Vec<Pending>,
    /// The last report attempts, oldest first (a bounded list).
    pub recent: Vec<Sent>,
    /// What this request sent, for `request reports send` (empty for `show`).
    pub sent: Vec<Sent>,
}

/// One domain's aggregate waiting for its report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// `tlsrpt` or `dmarc`.
    pub kind: String,
    pub domain: String,
    /// Unix seconds of the first period aggregated.
    pub begin: u64,
    /// Sessions (TLS-RPT) or messages (DMARC) counted.
    pub count: u64,
    /// Of them, failed sessions or messages that did not pass DMARC.
    pub failed: u64,
}

/// One report attempt for one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub kind: String,
    pub domain: String,
    /// Unix seconds.
    pub at: u64,
    /// `queued`, `failed` or `skipped_…` (as in `edgemx_reports_sent_total`).
    pub result: String,
    /// The destinations (queued), or why not.
    pub detail: String,
}

/// What the control socket may ask of the report senders.
pub trait Desk: Send + Sync {
    fn status(&self) -> ReportsStatus;
    /// Reports everything aggregated so far now, without waiting for the period to end
    /// (the per-domain rate limit still applies); answers what was done.
    fn send_now(&self) -> Pin<Box<dyn Future<Output = Vec<Sent>> + Send + '_>>;
}

impl ReportsStatus {
    /// `show reports`, `edgemx reports`: the switches, the data waiting, the last sends.
    pub fn text(&self) -> String {
        let on = |b: bool| if b { "on" } else { "off" };
        let mut out = format!(
            "TLS-RPT reports {}, DMARC aggregate reports {}\n",
            on(self.tls_reports),
            on(self.dmarc_reports)
        );
        if self.pending.is_empty() {
            out.push_str("nothing aggregated\n");
        } else {
            out.push_str("waiting:\n");
            for p in &self.pending {
                let what = if p.kind == "tlsrpt" {
                    "sessions"
                } else {
                    "messages"
                };
                let _ = writeln!(
                    out,
                    "  {:<6} {:<30} since {}  {} {what}, {} failed",
                    p.kind,
                    p.domain,
                    crate::time::rfc5322_date(p.begin),
                    p.count,
                    p.failed
                );
            }
        }
        if self.recent.is_empty() {
            out.push_str("no report sent since start\n");
        } else {
            let _ = writeln!(out, "last {} report attempts:", self.recent.len());
            out.push_str(&lines(&self.recent));
        }
        out
    }

    /// `request reports send`: what this run did.
    pub fn sent_text(&self) -> String {
        match self.sent.is_empty() {
            true => "nothing to report\n".into(),
            false => lines(&self.sent),
        }
    }
}

fn lines(sent: &[Sent]) -> String {
    let mut out = String::new();
    for s in sent {
        let _ = writeln!(
            out,
            "  {:02}:{:02}:{:02}Z  {:<6} {:<30} {}: {}",
            s.at % 86_400 / 3_600,
            s.at / 60 % 60,
            s.at % 60,
            s.kind,
            s.domain,
            s.result,
            s.detail
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_reports_names_the_switches_what_waits_and_the_last_sends() {
        let sent = Sent {
            kind: "dmarc".into(),
            domain: "example.org".into(),
            at: 86_400 + 3_723,
            result: "queued".into(),
            detail: "0000000000000007 to dmarc@example.net".into(),
        };
        let status = ReportsStatus {
            tls_reports: true,
            dmarc_reports: false,
            pending: vec![Pending {
                kind: "tlsrpt".into(),
                domain: "example.com".into(),
                begin: 0,
                count: 5,
                failed: 2,
            }],
            recent: vec![sent.clone()],
            sent: vec![sent],
        };
        let text = status.text();
        assert!(
            text.starts_with("TLS-RPT reports on, DMARC aggregate reports off\n"),
            "{text}"
        );
        assert!(text.contains("tlsrpt example.com"), "{text}");
        assert!(text.contains("5 sessions, 2 failed"), "{text}");
        assert!(text.contains("01:02:03Z  dmarc  example.org"), "{text}");
        assert!(
            text.contains("queued: 0000000000000007 to dmarc@example.net"),
            "{text}"
        );
        assert_eq!(status.sent_text().lines().count(), 1);
        let idle = ReportsStatus::default();
        assert!(idle.text().contains("nothing aggregated"));
        assert_eq!(idle.sent_text(), "nothing to report\n");
    }
}
