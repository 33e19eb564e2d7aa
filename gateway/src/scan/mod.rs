//! Content scanning at the end of DATA: rspamd (`/checkv2`) and clamd (`INSTREAM`), run
//! concurrently on one message, their verdicts combined into one [`Outcome`].
//!
//! Owns the scanner clients, their connection pools and the mapping from verdicts to
//! replies, header edits and quarantine. It must not touch the session, the queue or
//! delivery: the session asks [`Scanner::scan`] and acts on the outcome (`smtp/inbound/
//! scan.rs`). What happened is published as [`Event::Scanned`]; metrics count it.
//!
//! The mapping (`[scan]` in docs/configuration.md): rspamd `reject` → `554 5.7.1` with its
//! SMTP message (or quarantine, `scan.spam`); `soft reject`/`greylist` → `451 4.7.1`; `add
//! header`/`rewrite subject` → its headers and subject (or quarantine, `scan.suspect`);
//! clamd `FOUND` → `554 5.7.1` naming the signature (or quarantine, `scan.virus`). A
//! scanner down, slow or garbled → `scan.on_error`. A permanent refusal from one scanner
//! wins over the other's failure.

mod clamd;
mod conn;
mod edit;
mod rspamd;
pub mod status;

pub use edit::Edits;
pub use rspamd::Envelope;

use crate::config::scan::{OnError, Scan, Severe, Suspect};
use crate::config::{Config, Domain};
use crate::envelope::Recipient;
use crate::observe::events::{Event, Events};
use crate::smtp::proto::Reply;
use conn::Pool;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("{0}")]
    Io(std::io::Error),
    #[error("connection closed before the verdict")]
    Closed,
    #[error("no verdict within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Protocol(String),
}

/// What the session does with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept,
    /// Answer this instead of queueing.
    Refuse(Reply),
    /// Queue it held, for this reason.
    Quarantine(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// Applied to the message when it is queued (accepted or quarantined).
    pub edits: Edits,
}

/// The scanners of one configuration; cheap to clone, shared by the sessions.
#[derive(Clone)]
pub struct Scanner {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    settings: Scan,
    rspamd: Option<Pool>,
    clamd: Option<Pool>,
    events: Events,
}

impl Scanner {
    /// The scanners `[scan]` names (none: every message passes unscanned, unmarked).
    pub fn new(settings: &Scan, events: &Events) -> Scanner {
        if !settings.enabled() {
            return Scanner { inner: None };
        }
        let pool = |at: &Option<_>| at.clone().map(|at| Pool::new(at, settings.max_connections));
        Scanner {
            inner: Some(Arc::new(Inner {
                rspamd: pool(&settings.rspamd_at),
                clamd: pool(&settings.clamd_at),
                settings: settings.clone(),
                events: events.clone(),
            })),
        }
    }

    /// The same scanners when `[scan]` did not change, so pooled connections survive a
    /// commit; new ones otherwise.
    pub fn renewed(&self, settings: &Scan, events: &Events) -> Scanner {
        match &self.inner {
            Some(inner) if inner.settings == *settings => self.clone(),
            None if !settings.enabled() => self.clone(),
            _ => Scanner::new(settings, events),
        }
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Scans `message` (as it will be queued) and decides.
    pub async fn scan(&self, envelope: &Envelope<'_>, message: &[u8]) -> Outcome {
        let accept = Outcome {
            decision: Decision::Accept,
            edits: Edits::default(),
        };
        let Some(inner) = &self.inner else {
            return accept;
        };
        inner.scan(envelope, message).await
    }
}

impl Inner {
    async fn scan(&self, envelope: &Envelope<'_>, message: &[u8]) -> Outcome {
        let s = &self.settings;
        let header = s.header.clone();
        if message.len() as u64 > s.max_size.0 {
            self.publish("any", "skipped_size", Duration::ZERO);
            log::info!(
                "{}: not scanned: {} bytes over scan.max_size",
                envelope.queue_id,
                message.len()
            );
            return Outcome {
                decision: Decision::Accept,
                edits: Edits {
                    add: vec![(
                        header,
                        format!("unscanned, size {} over scan.max_size", message.len()),
                    )],
                    ..Edits::default()
                },
            };
        }
        let timeout = s.timeout.0;
        let rspamd = async {
            let pool = self.rspamd.as_ref()?;
            let started = Instant::now();
            let verdict =
                match tokio::time::timeout(timeout, rspamd::check(pool, envelope, message)).await {
                    Ok(v) => v,
                    Err(_) => Err(ScanError::Timeout(timeout)),
                };
            let label = match &verdict {
                Ok(v) => v.action.replace(' ', "_"),
                Err(_) => "error".into(),
            };
            self.publish("rspamd", &label, started.elapsed());
            Some(verdict)
        };
        let clamd = async {
            let pool = self.clamd.as_ref()?;
            let started = Instant::now();
            let verdict = match tokio::time::timeout(timeout, clamd::check(pool, message)).await {
                Ok(v) => v,
                Err(_) => Err(ScanError::Timeout(timeout)),
            };
            let label = match &verdict {
                Ok(clamd::Verdict::Clean) => "clean",
                Ok(clamd::Verdict::Infected(_)) => "infected",
                Err(_) => "error",
            };
            self.publish("clamd", label, started.elapsed());
            Some(verdict)
        };
        let (rspamd, clamd) = tokio::join!(rspamd, clamd);
        self.decide(envelope, rspamd, clamd)
    }

    fn decide(
        &self,
        envelope: &Envelope<'_>,
        rspamd: Option<Result<rspamd::Verdict, ScanError>>,
        clamd: Option<Result<clamd::Verdict, ScanError>>,
    ) -> Outcome {
        let s = &self.settings;
        let id = &envelope.queue_id;
        let mut edits = Edits::default();
        // From the mildest to the most final: a later, stronger decision replaces it.
        let mut decision = Decision::Accept;
        let mut failed = Vec::new();
        let mut tempfail = None;
        let mut refuse = None;
        match rspamd {
            None => {}
            Some(Err(e)) => failed.push(format!("rspamd: {e}")),
            Some(Ok(v)) => {
                let summary = v.summary();
                log::info!("{id}: rspamd {summary}");
                let spam = matches!(
                    v.action.as_str(),
                    "reject" | "add header" | "rewrite subject"
                );
                edits.add.push((
                    s.header.clone(),
                    format!("{}, {summary}", if spam { "Yes" } else { "No" }),
                ));
                let message = v.smtp_message().map(str::to_string);
                match v.action.as_str() {
                    "reject" => match s.spam {
                        Severe::Reject => {
                            refuse = Some(Reply::content_rejected(
                                message.as_deref().unwrap_or("Spam message rejected"),
                            ))
                        }
                        Severe::Quarantine => {
                            decision = Decision::Quarantine(format!("rspamd reject: {summary}"))
                        }
                    },
                    "soft reject" | "greylist" => {
                        tempfail = Some(Reply::content_deferred(
                            message.as_deref().unwrap_or("Try again later"),
                        ))
                    }
                    "add header" | "rewrite subject" => {
                        edits.add.extend(v.added_headers());
                        edits.remove.extend(v.removed_headers());
                        edits.subject = v.subject.clone();
                        if s.suspect == Suspect::Quarantine {
                            decision =
                                Decision::Quarantine(format!("rspamd {}: {summary}", v.action));
                        }
                    }
                    "no action" => {
                        edits.add.extend(v.added_headers());
                        edits.remove.extend(v.removed_headers());
                    }
                    other => failed.push(format!("rspamd: unknown action `{other}`")),
                }
            }
        }
        match clamd {
            None => {}
            Some(Err(e)) => failed.push(format!("clamd: {e}")),
            Some(Ok(clamd::Verdict::Clean)) => {}
            Some(Ok(clamd::Verdict::Infected(name))) => {
                log::info!("{id}: clamd found {name}");
                match s.virus {
                    Severe::Reject => refuse = Some(Reply::virus_found(&name)),
                    Severe::Quarantine => decision = Decision::Quarantine(format!("virus {name}")),
                }
            }
        }
        if let Some(reply) = refuse {
            return Outcome {
                decision: Decision::Refuse(reply),
                edits,
            };
        }
        if let Some(reply) = tempfail {
            return Outcome {
                decision: Decision::Refuse(reply),
                edits,
            };
        }
        if !failed.is_empty() {
            let what = failed.join("; ");
            match s.on_error {
                OnError::Tempfail => {
                    log::warn!("{id}: scan failed, answered 451: {what}");
                    return Outcome {
                        decision: Decision::Refuse(Reply::scan_failed()),
                        edits,
                    };
                }
                OnError::Accept => {
                    log::warn!("{id}: scan failed, accepted unscanned (scan.on_error): {what}");
                    edits
                        .add
                        .push((s.header.clone(), format!("unscanned, scan failed: {what}")));
                }
            }
        }
        Outcome { decision, edits }
    }

    fn publish(&self, scanner: &'static str, verdict: &str, took: Duration) {
        self.events.publish(&Event::Scanned {
            scanner,
            verdict,
            seconds: took.as_secs_f64(),
        });
    }
}

/// Whether a message to `rcpts` is scanned: unless every recipient's route says
/// `scan = false`. A `[[domain]]` is a route named after the domain (`routing::Table`);
/// a recipient routed by neither counts as scanned.
pub fn wanted(config: &Config, rcpts: &[Recipient]) -> bool {
    if !config.scan.enabled() {
        return false;
    }
    let off = |r: &Recipient| {
        let name = r.route.as_deref().unwrap_or(&r.domain);
        match config.routes.iter().find(|route| route.name == name) {
            Some(route) => !route.scan,
            None => config.domain(name).is_some_and(|d: &Domain| !d.scan),
        }
    };
    rcpts.is_empty() || !rcpts.iter().all(off)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::scan::Endpoint;

    fn inner(settings: Scan) -> Inner {
        Inner {
            settings,
            rspamd: None,
            clamd: None,
            events: Events::new(),
        }
    }

    fn rspamd(action: &str, message: Option<&str>) -> Option<Result<rspamd::Verdict, ScanError>> {
        let messages = match message {
            Some(m) => format!(r#"{{"smtp_message":"{m}"}}"#),
            None => "{}".into(),
        };
        let text = format!(r#"{{"action":"{action}","score":1.0,"messages":{messages}}}"#);
        Some(Ok(serde_json::from_str(&text).unwrap()))
    }

    fn failed() -> Option<Result<clamd::Verdict, ScanError>> {
        Some(Err(ScanError::Closed))
    }

    fn decided(
        settings: Scan,
        r: Option<Result<rspamd::Verdict, ScanError>>,
        c: Option<Result<clamd::Verdict, ScanError>>,
    ) -> Outcome {
        let envelope = Envelope::default();
        inner(settings).decide(&envelope, r, c)
    }

    #[test]
    fn a_permanent_refusal_wins_over_the_other_scanners_failure() {
        let virus = Some(Ok(clamd::Verdict::Infected("Test.Sig".into())));
        let out = decided(Scan::default(), Some(Err(ScanError::Closed)), virus);
        assert_eq!(
            out.decision,
            Decision::Refuse(Reply::virus_found("Test.Sig"))
        );
        let out = decided(Scan::default(), rspamd("reject", Some("go away")), failed());
        assert_eq!(
            out.decision,
            Decision::Refuse(Reply::content_rejected("go away"))
        );
        let out = decided(Scan::default(), rspamd("soft reject", None), failed());
        assert_eq!(
            out.decision,
            Decision::Refuse(Reply::content_deferred("Try again later"))
        );
    }

    #[test]
    fn failures_follow_on_error_and_quarantine_follows_its_setting() {
        let out = decided(Scan::default(), rspamd("no action", None), failed());
        assert_eq!(out.decision, Decision::Refuse(Reply::scan_failed()));
        let accept = Scan {
            on_error: OnError::Accept,
            ..Scan::default()
        };
        let out = decided(accept, rspamd("no action", None), failed());
        assert_eq!(out.decision, Decision::Accept);
        let values: Vec<&str> = out.edits.add.iter().map(|(_, v)| v.as_str()).collect();
        assert!(
            values[0].starts_with("No, action=\"no action\""),
            "{values:?}"
        );
        assert!(
            values[1].starts_with("unscanned, scan failed: clamd"),
            "{values:?}"
        );
        let quarantine = Scan {
            spam: Severe::Quarantine,
            virus: Severe::Quarantine,
            ..Scan::default()
        };
        let out = decided(quarantine, rspamd("reject", None), None);
        assert!(matches!(out.decision, Decision::Quarantine(r) if r.starts_with("rspamd reject")));
        let out = decided(
            Scan {
                virus: Severe::Quarantine,
                ..Scan::default()
            },
            None,
            Some(Ok(clamd::Verdict::Infected("X".into()))),
        );
        assert_eq!(out.decision, Decision::Quarantine("virus X".into()));
    }

    #[test]
    fn a_commit_keeps_the_pools_unless_scan_changed() {
        let events = Events::new();
        let mut settings = Scan::default();
        assert!(!Scanner::new(&settings, &events).enabled());
        settings.rspamd_at = Some(Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: 11333,
        });
        let first = Scanner::new(&settings, &events);
        let same = first.renewed(&settings.clone(), &events);
        let (a, b) = (first.inner.as_ref().unwrap(), same.inner.as_ref().unwrap());
        assert!(Arc::ptr_eq(a, b));
        settings.timeout = crate::config::Span(Duration::from_secs(5));
        let changed = first.renewed(&settings, &events);
        assert!(!Arc::ptr_eq(a, changed.inner.as_ref().unwrap()));
        assert!(!first.renewed(&Scan::default(), &events).enabled());
    }
}
