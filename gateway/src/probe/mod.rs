//! Mail-flow probes: per configured route or next hop, a periodic SMTP dialogue up to
//! `RCPT TO:<probe address>`, then `RSET` and `QUIT` — nothing is sent — and optionally a
//! real probe message submitted to this gateway and timed until the next hop accepted it.
//!
//! Owns the probe tasks and their state ([`Probes`], one per running gateway). Results go
//! to the metrics (`edgemx_probe_*`), to the status table read over the control socket
//! ([`Probes::status`]) and to the log, one line per state change, never one per probe. It
//! reads configuration, uses the delivery client and hears of delivered probe messages
//! through the published events; it changes nothing in the queue except by submitting
//! probe messages over SMTP like any client would.
//!
//! What is measured honestly: the RCPT probe's round trip (connect, greeting, EHLO, TLS as
//! the route's policy says, MAIL, RCPT); for a probe message, the time from the start of its
//! submission to our `250` (durably queued) and to the next hop's `250` for it. What happens
//! after the next hop (the backend's own queue, the mailbox) is outside our view.

mod message;
mod rcpt;
pub mod targets;

use crate::config::{Config, NextHop, Probe};
use crate::observe::events::{Event, Events};
use crate::observe::metrics::Metrics;
use crate::smtp::client::Settings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// One probe target as shown in the status output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The next hop probed (`host:port`, `ip:port`, or `mx:DOMAIN`).
    pub next_hop: String,
    /// The configured domain whose route this hop belongs to, if the probe names one.
    #[serde(deserialize_with = "Option::deserialize")]
    pub route: Option<String>,
    pub recipient: String,
    /// `None` until the first probe finished.
    #[serde(deserialize_with = "Option::deserialize")]
    pub up: Option<bool>,
    /// Unix time of the last change of `up`.
    pub since: u64,
    pub last_run: u64,
    #[serde(deserialize_with = "Option::deserialize")]
    pub last_success: Option<u64>,
    /// The reply (or error) of the last probe.
    pub last_reply: String,
    pub duration_ms: u64,
    pub runs: u64,
    pub failures: u64,
    #[serde(deserialize_with = "Option::deserialize")]
    pub message: Option<message::MessageStatus>,
}

/// The probes of one gateway: their state, the probe messages in flight, and the
/// registry their gauges go to.
pub struct Probes {
    states: Mutex<BTreeMap<String, Status>>,
    messages: message::InFlight,
    metrics: Arc<Metrics>,
    /// For the TLS sessions the RCPT probes open.
    events: Events,
    /// The running generation of probe tasks: its number (in every key, so a task of an
    /// earlier generation never touches a newer one's state) and the token that ends it.
    running: Mutex<(u64, Option<CancellationToken>)>,
}

impl Probes {
    /// Probes reporting to `metrics`, watching `events` for their delivered messages.
    pub fn new(metrics: Arc<Metrics>, events: &Events) -> Arc<Probes> {
        let probes = Arc::new(Probes {
            states: Mutex::default(),
            messages: message::InFlight::default(),
            metrics,
            events: events.clone(),
            running: Mutex::default(),
        });
        let watching = probes.clone();
        events.subscribe(move |event| {
            if let Event::Recipient { id, status } = event {
                watching.settled(*id, status);
            }
        });
        probes
    }

    /// Every probe target's current state, ordered by name.
    pub fn status(&self) -> Vec<Status> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Status>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts one task per probe target (and one per message probe) for `config`; they end
    /// with `shutdown` or at the next `start`, which replaces them: a committed configuration
    /// (new probes, host name, TLS policy) is probed from then on.
    pub fn start(self: &Arc<Self>, config: Arc<Config>, shutdown: &CancellationToken) {
        let shutdown = shutdown.child_token();
        let generation = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(old) = running.1.replace(shutdown.clone()) {
                old.cancel();
            }
            running.0 += 1;
            running.0
        };
        self.lock().clear();
        if config.admin.probes.is_empty() {
            return;
        }
        let resolver = crate::dns::Resolver::new(&config.dns).ok();
        let settings = Arc::new(Settings::new(&config, &self.events));
        for (i, probe) in config.admin.probes.iter().enumerate() {
            let tls = probe
                .tls
                .clone()
                .unwrap_or_else(|| config.delivery.tls.clone());
            for hop in &probe.hops {
                let target = rcpt::Target {
                    key: format!("{generation}:{i}:{}", hop_name(hop, probe)),
                    hop: hop.clone(),
                    domain: probe.domain.clone(),
                    tls: tls.clone(),
                    sender: sender(&config, probe),
                    probe: probe.clone(),
                    us: crate::dns::secondary::Us::new(&config.hostname, &config.flow.our_names),
                };
                self.register(&target.key, hop_name(hop, probe), probe);
                let (settings, resolver) = (settings.clone(), resolver.clone());
                tokio::spawn(
                    self.clone()
                        .rcpt(target, settings, resolver, shutdown.clone()),
                );
            }
            if probe.message {
                let key = format!("{generation}:{i}:{}", hop_name(&probe.hops[0], probe));
                tokio::spawn(self.clone().message(
                    key,
                    config.clone(),
                    probe.clone(),
                    sender(&config, probe),
                    shutdown.clone(),
                ));
            }
        }
    }

    fn register(&self, key: &str, next_hop: String, probe: &Probe) {
        let status = Status {
            next_hop,
            route: probe.domain.clone(),
            recipient: probe.recipient.clone(),
            message: probe.message.then(message::MessageStatus::default),
            ..Status::default()
        };
        self.lock().insert(key.to_owned(), status);
    }

    fn unregister(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Applies `f` to the state of `key`, if it is still registered.
    fn update<T>(&self, key: &str, f: impl FnOnce(&mut Status) -> T) -> Option<T> {
        self.lock().get_mut(key).map(f)
    }
}

fn hop_name(hop: &NextHop, probe: &Probe) -> String {
    match hop {
        NextHop::Mx => format!("mx:{}", probe.domain.as_deref().unwrap_or("")),
        other => other.to_string(),
    }
}

fn sender(config: &Config, probe: &Probe) -> String {
    probe
        .sender
        .clone()
        .unwrap_or_else(|| format!("postmaster@{}", config.hostname))
}

impl Probes {
    /// Records one RCPT probe result; logs only when the state changes.
    fn record(&self, key: &str, result: Result<String, String>, started: Instant) {
        let now = crate::time::unix_now();
        let elapsed = started.elapsed();
        let ok = result.is_ok();
        let text = match &result {
            Ok(text) | Err(text) => text.clone(),
        };
        let change = self.update(key, |s| {
            let before = s.up;
            s.runs += 1;
            s.last_run = now;
            s.duration_ms = elapsed.as_millis() as u64;
            s.last_reply = text.clone();
            if ok {
                s.last_success = Some(now);
            } else {
                s.failures += 1;
            }
            let down_for = now.saturating_sub(s.since);
            if before != Some(ok) {
                s.up = Some(ok);
                s.since = now;
            }
            (before, s.next_hop.clone(), s.last_success, down_for)
        });
        let Some((before, hop, last_success, down_for)) = change else {
            return;
        };
        let labels = [("next_hop", hop.as_str())];
        self.metrics
            .set("edgemx_probe_up", &labels, if ok { 1.0 } else { 0.0 });
        self.metrics.set(
            "edgemx_probe_duration_seconds",
            &labels,
            elapsed.as_secs_f64(),
        );
        if let Some(at) = last_success {
            self.metrics.set(
                "edgemx_probe_last_success_timestamp_seconds",
                &labels,
                at as f64,
            );
        }
        let result = if ok { "success" } else { "failure" };
        self.metrics.add(
            "edgemx_probes_total",
            &[("next_hop", hop.as_str()), ("result", result)],
            1.0,
        );
        match (before, ok) {
            (None, true) => log::info!("probe {hop}: up ({text})"),
            (None, false) => log::warn!("probe {hop}: DOWN ({text})"),
            (Some(false), true) => log::info!("probe {hop}: up again after {down_for}s ({text})"),
            (Some(true), false) => log::warn!("probe {hop}: DOWN ({text})"),
            _ => {}
        }
    }
}

/// The status table as `edgemx probes` prints it, from the control socket's answer.
pub fn format_status(rows: &[Status]) -> String {
    if rows.is_empty() {
        return "no probes configured ([[admin.probe]])\n".into();
    }
    let mut out = format!(
        "{:<24} {:<5} {:>8} {:>8} {:>10}  {}\n",
        "NEXT HOP", "STATE", "SINCE", "RCPT ms", "MESSAGE ms", "LAST REPLY"
    );
    let now = crate::time::unix_now();
    for row in rows {
        let state = match row.up {
            Some(true) => "up",
            Some(false) => "DOWN",
            None => "?",
        };
        let since = format!("{}s", now.saturating_sub(row.since));
        let latency = match &row.message {
            None => "-".to_string(),
            Some(m) if m.pending.is_some() => match m.pending_since {
                Some(t) => format!("waiting {}s", now.saturating_sub(t)),
                None => "waiting".into(),
            },
            Some(m) => m.latency_ms.map_or("-".into(), |v| v.to_string()),
        };
        out.push_str(&format!(
            "{:<24} {:<5} {:>8} {:>8} {:>10}  {}\n",
            row.next_hop, state, since, row.duration_ms, latency, row.last_reply
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(recipient: &str) -> Arc<Config> {
        let text = format!(
            "hostname = \"gw.test\"\ndata_dir = \"/tmp/x\"\n\
             [[listener]]\naddress = \"127.0.0.1:25\"\n\
             [[admin.probe]]\nnext_hop = \"127.0.0.1:9\"\nrecipient = \"{recipient}\"\n\
             interval = \"1h\"\ntimeout = \"100ms\"\n"
        );
        Arc::new(crate::loader::parse(&text).expect("config"))
    }

    #[tokio::test]
    async fn a_new_configuration_replaces_the_probes_and_the_old_tasks_leave_it_alone() {
        let probes = Probes::new(Metrics::new(), &Events::new());
        let shutdown = CancellationToken::new();
        probes.start(config("old@example.com"), &shutdown);
        let first = probes.status();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].recipient, "old@example.com");
        probes.start(config("new@example.com"), &shutdown);
        // The old generation's task ends (it unregisters its own key only); the new one
        // probes and records its first result.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let now = probes.status();
            assert_eq!(now.len(), 1, "{now:?}");
            assert_eq!(now[0].recipient, "new@example.com");
            if now[0].runs > 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never probed");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        shutdown.cancel();
    }
}
