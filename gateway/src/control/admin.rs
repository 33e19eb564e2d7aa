//! The console's side of the control socket: the running configuration and its revisions,
//! commits applied live (with `commit confirmed` rolled back automatically), and the
//! operational views (`ops.rs`).
//!
//! Owns the commit sequence: validate with the same [`Config::parse`] as startup, refuse
//! what cannot be applied live, record the revision (atomically, on the data partition),
//! publish the configuration on the live channel that `server::reload` applies.

use super::ops;
use super::reply::{Committed, Done, LogTail, Reply, RevisionText, Running, ScanStatus};
use crate::config::Config;
use crate::config::store::{Revision, Store};
use crate::firmware::ops::Outcome;
use crate::observe::reports::{Desk, ReportsStatus};
use crate::queue::Queue;
use crate::smtp::inbound::limits::Limiter;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What `edgemx console` asks for.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum ConsoleRequest {
    /// The running configuration text and its revision.
    Running,
    /// Validation only, as at startup.
    Check {
        text: String,
    },
    /// `confirm`: seconds before an automatic rollback unless `Confirm` arrives.
    Commit {
        text: String,
        comment: String,
        confirm: Option<u64>,
    },
    Confirm,
    History,
    /// The text of the revision `back` commits before the newest.
    Revision {
        back: usize,
    },
    Status,
    Log {
        lines: usize,
    },
    /// The log lines after sequence number `after` (`None`: none, only where to start).
    LogSince {
        #[serde(default)]
        after: Option<u64>,
    },
    Tls,
    /// The content scanners: reachable now, last verdicts and their latency.
    Scan,
    /// `show reports`; with `send`, `request reports send`: report everything now.
    Reports {
        #[serde(default)]
        send: bool,
    },
    /// `show tls policy DOMAIN`: DANE, MTA-STS, configured or opportunistic, and why.
    TlsPolicy {
        domain: String,
    },
    Route {
        address: String,
        /// The client's address, for the relay decision.
        #[serde(default)]
        client: Option<std::net::IpAddr>,
        /// A user the client authenticated as (SMTP AUTH), for the relay decision.
        #[serde(default)]
        user: Option<String>,
    },
    Probe {
        hop: String,
    },
    /// `request dkim keygen SELECTOR DOMAIN [rsa|ed25519]`: a new signing key in
    /// `data_dir/dkim/DOMAIN.SELECTOR.key`; the answer is the DNS record to publish.
    DkimKeygen {
        domain: String,
        selector: String,
        ed25519: bool,
    },
    /// Message tracking: every step of the messages matching the query, from the kept log.
    Track {
        query: crate::observe::track::Query,
    },
    /// `dns lookup NAME [TYPE]` through the gateway's nameservers (`[dns]`), uncached.
    DnsLookup {
        name: String,
        kind: String,
    },
    /// Stores a pasted certificate chain and key after checking they form a usable pair.
    InstallCert {
        cert: String,
        key: String,
    },
    /// Generates a new self-signed certificate (when none is configured) and puts it in use.
    RenewCert,
    /// `show system firmware`, `request firmware …` (and `edgemx firmware …` on the appliance).
    Firmware {
        op: crate::firmware::ops::FirmwareOp,
    },
}

pub struct Admin {
    pub(super) live: watch::Sender<Arc<Config>>,
    /// What the server applied last: a commit answers once its configuration is in use.
    applied: watch::Receiver<Arc<Config>>,
    store: Store,
    pub(super) queue: Queue,
    pub(super) limiter: Limiter,
    pub(super) started: Instant,
    shutdown: CancellationToken,
    /// One commit (or rollback) at a time.
    commits: tokio::sync::Mutex<()>,
    pending: Mutex<Option<Pending>>,
    /// The last scan verdicts, for `show scan`.
    scans: Arc<crate::scan::status::Recent>,
    /// The report senders, for `show reports` and `request reports send`.
    reports: std::sync::OnceLock<Arc<dyn Desk>>,
    /// Delivery's DANE and MTA-STS state, for `show tls policy`.
    deliveries: crate::delivery::DeliveryHandle,
}

/// A `commit confirmed` waiting for its `confirm`.
#[derive(Clone)]
struct Pending {
    revision: u64,
    deadline: u64,
    previous: String,
}

impl Admin {
    pub fn new(
        live: watch::Sender<Arc<Config>>,
        applied: watch::Receiver<Arc<Config>>,
        queue: Queue,
        limiter: Limiter,
        shutdown: CancellationToken,
        scans: Arc<crate::scan::status::Recent>,
        deliveries: crate::delivery::DeliveryHandle,
    ) -> Arc<Admin> {
        let config = live.borrow().clone();
        let store = Store::new(&config.data_dir, config.source.clone());
        // The first start (or a file edited by hand) becomes a revision of its own, so
        // `rollback` can always get back to what ran before the console changed it.
        let newest = store.back(0).ok().map(|(_, text)| text);
        if newest.as_deref() != Some(config.text.as_str()) && !config.text.is_empty() {
            let comment = if newest.is_none() {
                "initial"
            } else {
                "edited outside the console"
            };
            if let Err(e) = store.record(&config.text, comment) {
                log::warn!("cannot record the configuration revision: {e}");
            }
        }
        let admin = Arc::new(Admin {
            live,
            applied,
            store,
            queue,
            limiter,
            started: Instant::now(),
            shutdown,
            commits: tokio::sync::Mutex::new(()),
            pending: Mutex::new(None),
            scans,
            reports: std::sync::OnceLock::new(),
            deliveries,
        });
        admin.resume_pending();
        admin
    }

    /// Answers `Reports` with `reports` (without it: reporting is not running).
    pub fn with_reports(self: Arc<Self>, reports: Arc<dyn Desk>) -> Arc<Admin> {
        if self.reports.set(reports).is_err() {
            log::warn!("control: report senders attached twice; the first are kept");
        }
        self
    }

    pub async fn execute(self: &Arc<Self>, request: ConsoleRequest) -> Result<Reply, String> {
        let running = self.live.borrow().clone();
        match request {
            ConsoleRequest::Running => {
                let config = running;
                let revision = self.store.back(0).map(|(r, _)| r.number).unwrap_or(0);
                let text = config.text.clone();
                Ok(Running { text, revision }.into())
            }
            ConsoleRequest::Check { text } => {
                self.validate(&text).map(|_| Done::new("valid").into())
            }
            ConsoleRequest::Commit {
                text,
                comment,
                confirm,
            } => self.commit(text, comment, confirm).await.map(Reply::from),
            ConsoleRequest::Confirm => self.confirm().map(Reply::from),
            ConsoleRequest::History => self
                .store
                .history()
                .map(Reply::from)
                .map_err(|e| format!("cannot read the revisions: {e}")),
            ConsoleRequest::Revision { back } => self
                .store
                .back(back)
                .map(|(revision, text)| RevisionText { revision, text }.into())
                .map_err(|e| e.to_string()),
            ConsoleRequest::Status => ops::status(self).await.map(Reply::from),
            ConsoleRequest::Log { lines } => Ok(crate::observe::ring::recent(lines).into()),
            ConsoleRequest::LogSince { after } => {
                let (next, lines) = crate::observe::ring::since(after);
                Ok(LogTail { next, lines }.into())
            }
            ConsoleRequest::Tls => ops::tls(&running).map(Reply::from),
            ConsoleRequest::Reports { send } => {
                let Some(desk) = self.reports.get() else {
                    return Err("reporting is not running".into());
                };
                let sent = match send {
                    true => desk.send_now().await,
                    false => Vec::new(),
                };
                Ok(ReportsStatus {
                    sent,
                    ..desk.status()
                }
                .into())
            }
            ConsoleRequest::Scan => Ok(ScanStatus {
                enabled: running.scan.enabled(),
                scanners: crate::scan::status::reachability(&running.scan).await,
                recent: self.scans.list(),
            }
            .into()),
            ConsoleRequest::TlsPolicy { domain } => self
                .deliveries
                .explain_tls(&running, &domain)
                .await
                .map(Reply::from),
            ConsoleRequest::Route {
                address,
                client,
                user,
            } => ops::route(&running, &address, client, user.as_deref()).map(Reply::from),
            ConsoleRequest::Probe { hop } => ops::probe(running, &hop).await.map(Reply::from),
            ConsoleRequest::Track { query } => {
                // Reading up to (keep + 1) × max_size of log: off the runtime's threads.
                tokio::task::spawn_blocking(move || {
                    crate::observe::track::search(&query, crate::observe::kept_lines(), 100)
                })
                .await
                .map(Reply::from)
                .map_err(|e| format!("tracking failed: {e}"))
            }
            ConsoleRequest::DkimKeygen {
                domain,
                selector,
                ed25519,
            } => ops::dkim_keygen(&running, &domain, &selector, ed25519).map(Reply::from),
            ConsoleRequest::DnsLookup { name, kind } => ops::dns_lookup(&running, &name, &kind)
                .await
                .map(Reply::from),
            ConsoleRequest::InstallCert { cert, key } => {
                ops::install_cert(&running, &cert, &key).map(Reply::from)
            }
            ConsoleRequest::RenewCert => {
                let _one = self.commits.lock().await;
                ops::renew_cert(&running)?;
                // The same configuration again: the server rebuilds TLS from the new files.
                self.publish(Arc::new((*running).clone())).await;
                log::info!("self-signed certificate renewed from the console");
                ops::tls(&running).map(Reply::from)
            }
            ConsoleRequest::Firmware { op } => {
                // Bundle URLs may name a host: resolve it as delivery would ([dns]).
                let resolver = crate::dns::Resolver::new(&running.dns).ok();
                let outcome = crate::firmware::ops::execute(op, resolver.as_ref()).await?;
                Ok(match outcome {
                    Outcome::Status(status) => status.into(),
                    Outcome::Done(text) => Done(text).into(),
                })
            }
        }
    }

    /// Startup validation plus what a running gateway cannot take: another data directory,
    /// an unusable certificate, a listener address that cannot be bound.
    fn validate(&self, text: &str) -> Result<Config, String> {
        let config = crate::loader::parse(text).map_err(|errors| {
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        let running = self.live.borrow().clone();
        if config.data_dir != running.data_dir {
            return Err(format!(
                "data_dir = {}: cannot change while the gateway runs (it holds the queue); keep {}",
                config.data_dir.display(),
                running.data_dir.display()
            ));
        }
        crate::tls::server(&config).map_err(|e| format!("tls: {e}"))?;
        crate::policy::auth::MailAuth::load(&config).map_err(|e| e.to_string())?;
        for (i, l) in config.listeners.iter().enumerate() {
            let bound = running.listeners.iter().any(|r| r.address == l.address);
            if !bound && let Err(e) = crate::smtp::inbound::can_listen(l.address) {
                return Err(format!(
                    "listener[{i}].address = {}: cannot listen: {e}",
                    l.address
                ));
            }
        }
        Ok(config)
    }

    async fn commit(
        self: &Arc<Self>,
        text: String,
        comment: String,
        confirm: Option<u64>,
    ) -> Result<Committed, String> {
        let _one = self.commits.lock().await;
        let config = self.validate(&text)?;
        let old = self.live.borrow().clone();
        let revision = self
            .store
            .save(&text, &comment)
            .map_err(|e| format!("cannot store the revision: {e}"))?;
        let restart = restart_needed(&old.text, &text);
        self.publish(Arc::new(config)).await;
        log::info!(
            "configuration revision {} committed: {comment}",
            revision.number
        );
        // A plain commit confirms a pending `commit confirmed` (as on Junos).
        let rollback_in = match confirm {
            Some(secs) => {
                let previous = self.pending().map_or(old.text.clone(), |p| p.previous);
                self.set_pending(Some(Pending {
                    revision: revision.number,
                    deadline: crate::time::unix_now() + secs,
                    previous,
                }));
                self.arm(revision.number, Duration::from_secs(secs));
                Some(secs)
            }
            None => {
                self.set_pending(None);
                None
            }
        };
        Ok(Committed {
            revision,
            restart,
            rollback_in,
        })
    }

    /// Hands the configuration to the server and waits (bounded) until it is in use, so
    /// the operator's next connection already sees it.
    async fn publish(&self, config: Arc<Config>) {
        self.live.send_replace(config.clone());
        let mut applied = self.applied.clone();
        let done = applied.wait_for(|c| Arc::ptr_eq(c, &config));
        if tokio::time::timeout(Duration::from_secs(10), done)
            .await
            .is_err()
        {
            log::warn!("the new configuration is taking long to apply");
        }
    }

    fn confirm(&self) -> Result<Done, String> {
        match self.pending() {
            Some(p) => {
                self.set_pending(None);
                log::info!("configuration revision {} confirmed", p.revision);
                Ok(Done(format!("revision {} confirmed", p.revision)))
            }
            None => Err("nothing to confirm: no `commit confirmed` is pending".into()),
        }
    }

    fn arm(self: &Arc<Self>, revision: u64, wait: Duration) {
        let admin = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(wait) => admin.expire(revision).await,
                // The pending file stays; the next start finishes the rollback.
                _ = admin.shutdown.cancelled() => {}
            }
        });
    }

    async fn expire(self: &Arc<Self>, revision: u64) {
        let _one = self.commits.lock().await;
        let Some(p) = self.pending().filter(|p| p.revision == revision) else {
            return;
        };
        let comment = format!("automatic rollback: revision {revision} was not confirmed");
        match crate::loader::parse(&p.previous) {
            Ok(config) => match self.store.save(&p.previous, &comment) {
                Ok(r) => {
                    self.publish(Arc::new(config)).await;
                    log::warn!("{comment}; revision {} is running", r.number);
                }
                Err(e) => log::error!("rollback of revision {revision} failed: {e}"),
            },
            Err(_) => log::error!(
                "rollback of revision {revision}: the previous text no longer validates"
            ),
        }
        self.set_pending(None);
    }

    fn pending(&self) -> Option<Pending> {
        self.pending.lock().ok().and_then(|p| p.clone())
    }

    /// Kept in memory and on disk, so a gateway restart cannot skip the rollback.
    fn set_pending(&self, pending: Option<Pending>) {
        let file = pending
            .as_ref()
            .map(|p| format!("{} {}", p.revision, p.deadline));
        if let Err(e) = self.store.set_pending(file.as_deref()) {
            log::warn!("cannot record the pending confirmation: {e}");
        }
        if let Ok(mut slot) = self.pending.lock() {
            *slot = pending;
        }
    }

    fn resume_pending(self: &Arc<Self>) {
        let Some((revision, deadline)) = self.store.pending() else {
            return;
        };
        let Ok((_, previous)) = self.store.number(revision.saturating_sub(1)) else {
            let _ = self.store.set_pending(None);
            return;
        };
        log::warn!(
            "revision {revision} was committed with `commit confirmed` and is not confirmed"
        );
        if let Ok(mut slot) = self.pending.lock() {
            *slot = Some(Pending {
                revision,
                deadline,
                previous,
            });
        }
        let wait = deadline.saturating_sub(crate::time::unix_now());
        self.arm(revision, Duration::from_secs(wait));
    }

    pub(super) fn pending_view(&self) -> Option<(u64, u64)> {
        self.pending().map(|p| (p.revision, p.deadline))
    }

    pub(super) fn newest(&self) -> Option<Revision> {
        self.store.back(0).ok().map(|(r, _)| r)
    }
}

/// Keys whose new values apply only when the gateway starts again (they size structures
/// made once at start: the queue's admission limits, the delivery pool, the resolver,
/// the logger, the in-flight budget). The delivery timeouts and the EHLO name apply to
/// the next outbound connection (`delivery::hops::Walker::reconfigure`).
fn restart_needed(old: &str, new: &str) -> Vec<String> {
    const AT_START: &[&str] = &[
        "limits.inflight_bytes",
        "queue.max_messages",
        "queue.max_bytes",
        "queue.min_free_space",
        "queue.max_batch",
        "delivery.max_connections_per_next_hop",
        "delivery.max_messages_per_connection",
        "delivery.idle_timeout",
        "delivery.max_concurrent",
        "dns",
        "log",
    ];
    let (Ok(old), Ok(new)) = (old.parse::<toml::Table>(), new.parse::<toml::Table>()) else {
        return Vec::new();
    };
    let get = |t: &toml::Table, key: &str| -> Option<toml::Value> {
        let mut parts = key.split('.');
        let mut value = t.get(parts.next()?)?.clone();
        for p in parts {
            value = value.get(p)?.clone();
        }
        Some(value)
    };
    AT_START
        .iter()
        .filter(|k| get(&old, k) != get(&new, k))
        .map(|k| k.to_string())
        .collect()
}
