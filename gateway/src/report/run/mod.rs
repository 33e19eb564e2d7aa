//! One reporting run: picks the buckets that are due, finds where their domain wants
//! reports (`_smtp._tls.DOMAIN` for TLS-RPT, `_dmarc.DOMAIN` for DMARC with RFC 7489 §7.1
//! verification of destinations outside the domain), builds each report and queues it
//! together with the removal of its buckets.
//!
//! A bucket taken out of the book goes back (merged with anything counted meanwhile)
//! when its report is not queued for a reason that may pass: a DNS error, a full run, the
//! DMARC rate limit, a queue failure. It is dropped when the domain asks for no reports.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | the run: its limits, queueing a report with its changes, what is noted |
//! | `tls.rs` | TLS-RPT: ended days, `_smtp._tls` lookup, the report message |
//! | `dmarc.rs` | DMARC: periods from `ri`, the rate limit, §7.1 and `!size`, the report message |
//! | `lookup.rs` | the DNS records reports depend on |

mod dmarc;
mod lookup;
mod tls;

use super::Inner;
use crate::config::Config;
use crate::dns::Resolver;
use crate::envelope::{Envelope, Recipient};
use crate::observe::events::Event;
use crate::observe::reports::Sent;
use crate::queue::Change;
use std::sync::Arc;

/// Why a report was not queued, as counted and shown.
enum Outcome {
    Queued(String),
    /// Kept for a later run.
    Later(&'static str, String),
    /// The data is dropped: the domain wants no (deliverable) report.
    Dropped(&'static str, String),
}

pub struct Run<'a> {
    inner: &'a Inner,
    config: Arc<Config>,
    force: bool,
    now: u64,
    /// Our `[[auth.dkim]]` keys: a report from a domain we sign for is signed like its
    /// other mail (receivers check DMARC on reports too).
    signer: crate::dkim::Signer,
    /// Reports and bytes this run may still queue.
    reports_left: u32,
    bytes_left: u64,
    sent: Vec<Sent>,
}

impl<'a> Run<'a> {
    pub fn new(inner: &'a Inner, force: bool) -> Run<'a> {
        let config = inner.config.borrow().clone();
        let signer = crate::dkim::Signer::load(&config).unwrap_or_else(|e| {
            log::warn!("reports: DKIM keys unusable, reports go unsigned: {e}");
            crate::dkim::Signer::default()
        });
        Run {
            inner,
            signer,
            force,
            now: crate::time::unix_now(),
            reports_left: config.auth.report_max_per_run,
            bytes_left: config.auth.report_max_bytes.0,
            config,
            sent: Vec::new(),
        }
    }

    pub async fn go(mut self) -> Vec<Sent> {
        let auth = &self.config.auth;
        if !auth.tls_reports && !auth.dmarc_reports {
            return self.sent;
        }
        let resolver = match Resolver::new(&self.config.dns) {
            Ok(resolver) => resolver,
            Err(e) => {
                log::warn!("reports: no DNS resolver, nothing sent this run: {e}");
                return self.sent;
            }
        };
        if auth.tls_reports {
            self.tls(&resolver).await;
        }
        if self.config.auth.dmarc_reports {
            self.dmarc(&resolver).await;
        }
        self.sent
    }

    /// Queues `message` to `to` with `changes` in one commit, within the run's limits.
    async fn queue(
        &mut self,
        message: Vec<u8>,
        to: &[String],
        mut changes: Vec<Change>,
    ) -> Outcome {
        let message = match self.signer.sign(&message) {
            Ok(mut fields) => {
                fields.extend_from_slice(&message);
                fields
            }
            Err(e) => {
                log::warn!("reports: DKIM signing failed, the report goes unsigned: {e}");
                message
            }
        };
        let size = message.len() as u64;
        if self.reports_left == 0 || size > self.bytes_left {
            return Outcome::Later(
                "skipped_run_limit",
                "the run's report or byte limit is reached; next run".into(),
            );
        }
        // Reports are mail we make up ourselves: they get no room that senders are refused
        // (quotas, the free-space reserve), unlike DSNs, which replace what they report on.
        if let Err(e) = self.inner.queue.admit(size) {
            return Outcome::Later("failed", format!("the queue takes no more now: {e}"));
        }
        let auth = &self.config.auth;
        let recipients = to.iter().map(|a| Recipient::pending(a.clone())).collect();
        let envelope = Envelope {
            client: format!("{} (report)", self.config.hostname),
            eight_bit: !message.is_ascii(),
            ..Envelope::new(auth.report_from.clone(), recipients, self.now)
        };
        changes.insert(
            0,
            Change::Insert {
                envelope,
                body: message,
            },
        );
        match self.inner.queue.apply(changes).await {
            Ok(ids) => {
                self.reports_left -= 1;
                self.bytes_left -= size;
                let id = ids.first().map(|id| id.to_string()).unwrap_or_default();
                Outcome::Queued(format!("{id} to {}", to.join(", ")))
            }
            Err(e) => Outcome::Later("failed", format!("cannot queue the report: {e}")),
        }
    }

    /// Removes the stored buckets `keys` of a domain that gets no report.
    async fn discard(&self, keys: &[String], result: &'static str, why: String) -> Outcome {
        let changes = keys.iter().cloned().map(Change::DeleteRecord).collect();
        if let Err(e) = self.inner.queue.apply(changes).await {
            // Still in the store: read back (and dropped again) after a restart.
            log::warn!("reports: cannot remove the aggregate: {e}");
        }
        Outcome::Dropped(result, why)
    }

    fn note(&mut self, kind: &'static str, domain: &str, outcome: Outcome) {
        let (result, detail) = match outcome {
            Outcome::Queued(detail) => ("queued", detail),
            Outcome::Later(result, detail) | Outcome::Dropped(result, detail) => (result, detail),
        };
        log::info!("reports: {kind} {domain}: {result}: {detail}");
        self.inner.events.publish(&Event::ReportSent {
            kind,
            domain,
            result,
        });
        self.sent.push(Sent {
            kind: kind.into(),
            domain: domain.into(),
            at: self.now,
            result: result.into(),
            detail,
        });
    }
}
