//! Reports to domain owners: TLS-RPT (RFC 8460) on our outbound sessions and DMARC
//! aggregate reports (RFC 7489 §7.2) on the mail we verified, sent as mail through our own
//! queue.
//!
//! Owns the aggregates and the reporting runs. It hears the data path only through
//! [`Event::TlsPolicyOutcome`] and [`Event::DmarcChecked`] (delivery and `policy::auth`
//! know nothing of it), writes through the queue (`Change::PutRecord` into the queue's
//! `records` table, reports as `Change::Insert`) and is reached by the control socket
//! through [`observe::reports::Desk`]. Only `server` imports it.
//!
//! # Durability
//!
//! Counting is in memory (`book.rs`); every [`FLUSH`] the buckets changed since are written
//! to the queue's store in one commit, and once more at shutdown. A crash therefore loses
//! at most the last [`FLUSH`] of counting (a power cut during a busy minute: that minute's
//! sessions and messages are missing from the next report; nothing is counted twice). A
//! report and the removal of the buckets it covers are one commit: after a crash a
//! report is either queued and its data gone, or not queued and its data still there.
//!
//! # Runs
//!
//! A run starts every hour at a random minute (RFC 8460 suggests a random delay after
//! the day ends, so that report receivers are not hit by every sender at midnight). It
//! reports TLS-RPT days that have ended and DMARC periods (the policy's `ri`, one hour to
//! one day) that have ended; `request reports send` (console) or `edgemx reports send`
//! runs one now and includes what is still open. Limits per run:
//! `auth.report_max_per_run` reports and `auth.report_max_bytes`; DMARC: one report per
//! policy domain per period.
//!
//! # Layout
//!
//! | file | owns |
//! | --- | --- |
//! | `book.rs` | the aggregates in memory and their stored form |
//! | `tlsrpt.rs` | TLS-RPT buckets and the RFC 8460 JSON report |
//! | `dmarc.rs` | DMARC buckets, the XML report, `ri` |
//! | `run/` | a reporting run: `rua` lookups, §7.1 verification, limits, queueing |

mod book;
mod dmarc;
mod run;
mod tlsrpt;

use crate::config::Config;
use crate::observe::events::{Event, Events};
use crate::observe::reports::{Desk, Pending, ReportsStatus, Sent};
use crate::queue::{Change, Queue};
use book::Book;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the aggregates are written to the store: the most counting a crash loses.
pub const FLUSH: Duration = Duration::from_secs(60);

/// Report attempts kept for `show reports`.
const RECENT: usize = 50;

/// The report senders of one gateway; cheap to clone.
#[derive(Clone)]
pub struct Reports {
    inner: Arc<Inner>,
}

struct Inner {
    config: watch::Receiver<Arc<Config>>,
    queue: Queue,
    events: Events,
    book: Mutex<Book>,
    recent: Mutex<VecDeque<Sent>>,
    /// One flush or run at a time: a run takes buckets out of the book and must not race
    /// a flush writing them back.
    busy: tokio::sync::Mutex<()>,
}

impl Reports {
    /// Reads the stored aggregates and counts every report event published on `events`
    /// from now on. `config` is the configuration in use (it follows commits).
    pub async fn start(
        queue: Queue,
        events: &Events,
        config: watch::Receiver<Arc<Config>>,
    ) -> Reports {
        let mut book = Book::default();
        for prefix in book::PREFIXES {
            match queue.records(prefix).await {
                Ok(records) => book.load(records),
                Err(e) => log::error!("reports: cannot read the stored aggregates: {e}"),
            }
        }
        let inner = Arc::new(Inner {
            config,
            queue,
            events: events.clone(),
            book: Mutex::new(book),
            recent: Mutex::new(VecDeque::new()),
            busy: tokio::sync::Mutex::new(()),
        });
        inner.follow_config();
        let counting = Arc::downgrade(&inner);
        events.subscribe(move |event| {
            if !matches!(
                event,
                Event::TlsPolicyOutcome { .. } | Event::DmarcChecked(_)
            ) {
                return;
            }
            if let Some(inner) = counting.upgrade() {
                inner.book().record(event, crate::time::unix_now());
            }
        });
        Reports { inner }
    }

    /// Flushes every [`FLUSH`] and runs the reports every hour until `shutdown`, then
    /// flushes once more. Must end before the queue closes.
    pub async fn serve(self, shutdown: CancellationToken) {
        let mut flush = tokio::time::interval(FLUSH);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_run = tokio::time::Instant::now() + until_next_run(crate::time::unix_now());
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = flush.tick() => {
                    self.inner.follow_config();
                    let _busy = self.inner.busy.lock().await;
                    self.inner.flush().await;
                }
                _ = tokio::time::sleep_until(next_run) => {
                    self.inner.follow_config();
                    self.inner.run(false).await;
                    next_run = tokio::time::Instant::now()
                        + until_next_run(crate::time::unix_now());
                }
            }
        }
        let _busy = self.inner.busy.lock().await;
        self.inner.flush().await;
    }
}

/// Seconds to the next run: the next full hour plus a random 1–10 minutes.
fn until_next_run(now: u64) -> Duration {
    let next_hour = (now / 3_600 + 1) * 3_600;
    Duration::from_secs(next_hour - now + fastrand::u64(60..600))
}

impl Inner {
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn follow_config(&self) {
        let config = self.config.borrow().clone();
        let mut book = self.book();
        book.tls_on = config.auth.tls_reports;
        book.dmarc_on = config.auth.dmarc_reports;
    }

    /// One commit with every bucket changed since the last flush. Caller holds `busy`.
    async fn flush(&self) {
        let (changes, dropped) = {
            let mut book = self.book();
            let keys = std::mem::take(&mut book.dirty);
            let changes: Vec<Change> = keys
                .into_iter()
                .map(|key| match book.encoded(&key) {
                    Some(value) => Change::PutRecord { key, value },
                    None => Change::DeleteRecord(key),
                })
                .collect();
            (changes, std::mem::take(&mut book.dropped))
        };
        if dropped > 0 {
            log::warn!(
                "reports: {dropped} event(s) not counted: {} buckets per kind at most",
                book::MAX_BUCKETS
            );
        }
        if changes.is_empty() {
            return;
        }
        let keys: Vec<String> = changes
            .iter()
            .filter_map(|c| match c {
                Change::PutRecord { key, .. } | Change::DeleteRecord(key) => Some(key.clone()),
                _ => None,
            })
            .collect();
        if let Err(e) = self.queue.apply(changes).await {
            log::error!("reports: cannot store the aggregates (tried again later): {e}");
            self.book().dirty.extend(keys);
        }
    }

    /// A reporting run (`force`: everything, now); holds `busy` for its whole length.
    async fn run(&self, force: bool) -> Vec<Sent> {
        let _busy = self.busy.lock().await;
        self.flush().await;
        let sent = run::Run::new(self, force).go().await;
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        for s in &sent {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(s.clone());
        }
        sent
    }

    fn status(&self) -> ReportsStatus {
        let config = self.config.borrow().clone();
        let book = self.book();
        let mut pending: Vec<Pending> = Vec::new();
        for t in book.tls.values() {
            let (ok, failed) = t.totals();
            pending.push(Pending {
                kind: "tlsrpt".into(),
                domain: t.domain.clone(),
                begin: t.begin,
                count: ok + failed,
                failed,
            });
        }
        for d in book.dmarc.values() {
            let (count, failed) = d.totals();
            match pending
                .iter_mut()
                .find(|p| p.kind == "dmarc" && p.domain == d.domain)
            {
                Some(p) => {
                    p.count += count;
                    p.failed += failed;
                    p.begin = p.begin.min(d.hour * 3_600);
                }
                None => pending.push(Pending {
                    kind: "dmarc".into(),
                    domain: d.domain.clone(),
                    begin: d.hour * 3_600,
                    count,
                    failed,
                }),
            }
        }
        pending.sort_by(|a, b| (a.begin, &a.domain).cmp(&(b.begin, &b.domain)));
        ReportsStatus {
            tls_reports: config.auth.tls_reports,
            dmarc_reports: config.auth.dmarc_reports,
            pending,
            recent: self
                .recent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect(),
            sent: Vec::new(),
        }
    }
}

impl Desk for Reports {
    fn status(&self) -> ReportsStatus {
        self.inner.status()
    }

    fn send_now(&self) -> Pin<Box<dyn Future<Output = Vec<Sent>> + Send + '_>> {
        Box::pin(async move {
            self.inner.follow_config();
            self.inner.run(true).await
        })
    }
}
