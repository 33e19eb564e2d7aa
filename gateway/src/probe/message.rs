//! The probe message: a real message submitted to this gateway's first listener, addressed
//! to the probe address, and timed until the next hop accepted it (`250` after DATA).
//!
//! Delivery publishes each settled recipient; [`Probes::settled`] hears it, and a registry of the
//! probe messages in flight turns the one that matters into a latency. At most one probe
//! message per probe is in the queue: while it waits (next hop down), no more are sent.

use super::Probes;
use crate::config::{Config, Probe};
use crate::envelope::{QueueId, RcptStatus};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageStatus {
    /// Queue id of the probe message still waiting for delivery.
    #[serde(deserialize_with = "Option::deserialize")]
    pub pending: Option<String>,
    /// Unix time its submission started, while `pending`.
    #[serde(deserialize_with = "Option::deserialize")]
    pub pending_since: Option<u64>,
    /// Last submission: connect to our `250` (durably queued).
    #[serde(deserialize_with = "Option::deserialize")]
    pub submit_ms: Option<u64>,
    /// Last delivered probe: start of submission to the next hop's `250`.
    #[serde(deserialize_with = "Option::deserialize")]
    pub latency_ms: Option<u64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub last_delivered: Option<u64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub last_error: Option<String>,
}

/// Probe messages between submission and delivery.
#[derive(Default)]
struct Registry {
    /// Queue id → (probe key, submission start): stored, waiting for delivery.
    in_flight: HashMap<QueueId, (String, Instant)>,
    /// Submissions under way. Our `250` is sent once the message is durable, and delivery
    /// may take it (over a cached connection) before the submitter has read that reply and
    /// learnt the id: while any submission is under way, deliveries of unknown ids are kept
    /// in `early` so the submitter finds its own there instead of waiting for good.
    submitting: usize,
    /// Deliveries seen during submissions: (id, when), oldest first, at most [`EARLY`].
    early: VecDeque<(QueueId, Instant)>,
}

/// Deliveries remembered while a submission is under way; more than are delivered during
/// one probe submission (a few milliseconds) at the fastest measured rate.
const EARLY: usize = 4_096;

/// The probe messages of one gateway between submission and delivery.
#[derive(Default)]
pub(super) struct InFlight {
    registry: Mutex<Registry>,
    /// Cheap check for the delivery hot path: submissions under way plus messages in flight.
    count: AtomicUsize,
}

impl Probes {
    fn registry<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self
            .messages
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner()))
    }

    /// Hears of every recipient settled in a delivery attempt.
    pub(super) fn settled(&self, id: QueueId, status: &RcptStatus) {
        if self.messages.count.load(Ordering::Relaxed) == 0
            || !matches!(status, RcptStatus::Delivered { .. })
        {
            return;
        }
        let now = Instant::now();
        let found = self.registry(|r| match r.in_flight.remove(&id) {
            Some(found) => Some(found),
            None => {
                if r.submitting > 0 {
                    if r.early.len() >= EARLY {
                        r.early.pop_front();
                    }
                    r.early.push_back((id, now));
                }
                None
            }
        });
        let Some((key, started)) = found else { return };
        self.messages.count.fetch_sub(1, Ordering::Relaxed);
        self.delivered(&key, id, now.duration_since(started));
    }

    fn delivered(&self, key: &str, id: QueueId, latency: Duration) {
        let hop = self.update(key, |s| {
            if let Some(m) = s.message.as_mut() {
                m.pending = None;
                m.pending_since = None;
                m.latency_ms = Some(latency.as_millis() as u64);
                m.last_delivered = Some(crate::time::unix_now());
            }
            s.next_hop.clone()
        });
        if let Some(hop) = hop {
            self.metrics.set(
                "edgemx_probe_message_seconds",
                &[("next_hop", hop.as_str())],
                latency.as_secs_f64(),
            );
            log::info!("probe {hop}: probe message {id} delivered in {latency:.2?}");
        }
    }

    /// Seconds the current probe message of each message probe has waited for delivery
    /// (0 with none waiting), by next hop; read at scrape time.
    pub fn waiting(&self) -> Vec<(String, f64)> {
        let started: HashMap<String, Instant> = self.registry(|r| {
            r.in_flight
                .values()
                .map(|(key, at)| (key.clone(), *at))
                .collect()
        });
        self.lock()
            .iter()
            .filter(|(_, s)| s.message.is_some())
            .map(|(key, s)| {
                let secs = started
                    .get(key)
                    .map_or(0.0, |at| at.elapsed().as_secs_f64());
                (s.next_hop.clone(), secs)
            })
            .collect()
    }

    fn begin_submit(&self) {
        self.registry(|r| r.submitting += 1);
        self.messages.count.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) async fn message(
        self: Arc<Self>,
        key: String,
        config: Arc<Config>,
        probe: Probe,
        sender: String,
        shutdown: CancellationToken,
    ) {
        let Some(listener) = config.listeners.first() else {
            return;
        };
        let mut ours = listener.address;
        if ours.ip().is_unspecified() {
            ours.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        loop {
            let waiting = self.update(&key, |s| s.message.as_ref().and_then(|m| m.pending.clone()));
            if waiting.flatten().is_none() {
                let started = Instant::now();
                self.begin_submit();
                let sent = tokio::time::timeout(
                    probe.timeout.0,
                    submit(ours, &config.hostname, &sender, &probe.recipient),
                )
                .await
                .unwrap_or_else(|_| Err("no answer from our own listener".into()));
                self.note(&key, sent, started);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(probe.interval.0) => {}
            }
        }
        let dropped = self.registry(|r| {
            let before = r.in_flight.len();
            r.in_flight.retain(|_, (k, _)| *k != key);
            before - r.in_flight.len()
        });
        self.messages.count.fetch_sub(dropped, Ordering::Relaxed);
    }

    /// Ends a submission begun with [`begin_submit`]: the message is now waiting for delivery,
    /// or was delivered already while we read our own `250`.
    fn note(&self, key: &str, sent: Result<QueueId, String>, started: Instant) {
        let submit = started.elapsed();
        let early = self.registry(|r| {
            r.submitting = r.submitting.saturating_sub(1);
            let early = match &sent {
                Ok(id) => match r.early.iter().position(|(e, _)| e == id) {
                    Some(at) => r.early.remove(at).map(|(_, when)| when),
                    None => {
                        r.in_flight.insert(*id, (key.to_owned(), started));
                        self.messages.count.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                },
                Err(_) => None,
            };
            if r.submitting == 0 {
                r.early.clear();
            }
            early
        });
        self.messages.count.fetch_sub(1, Ordering::Relaxed);
        let hop = self.update(key, |s| {
            if let Some(m) = s.message.as_mut() {
                match &sent {
                    Ok(id) => {
                        m.pending = early.is_none().then(|| id.to_string());
                        m.pending_since = early
                            .is_none()
                            .then(|| crate::time::unix_now().saturating_sub(submit.as_secs()));
                        m.submit_ms = Some(submit.as_millis() as u64);
                        m.last_error = None;
                    }
                    Err(e) => m.last_error = Some(e.clone()),
                }
            }
            s.next_hop.clone()
        });
        if let (Ok(id), Some(when)) = (&sent, early) {
            self.delivered(key, *id, when.duration_since(started));
        }
        match (sent, hop) {
            (Ok(_), Some(hop)) => {
                self.metrics.set(
                    "edgemx_probe_message_submit_seconds",
                    &[("next_hop", hop.as_str())],
                    submit.as_secs_f64(),
                );
            }
            (Err(e), Some(hop)) => log::warn!("probe {hop}: probe message not accepted: {e}"),
            _ => {}
        }
    }
}

/// A plain SMTP submission to ourselves; returns the queue id from `250 … queued as ID`.
async fn submit(
    ours: SocketAddr,
    hostname: &str,
    sender: &str,
    recipient: &str,
) -> Result<QueueId, String> {
    let stream = TcpStream::connect(ours)
        .await
        .map_err(|e| format!("connect {ours}: {e}"))?;
    let mut io = BufReader::new(stream);
    expect(&mut io, None, 220).await?;
    expect(&mut io, Some(format!("EHLO {hostname}\r\n")), 250).await?;
    expect(&mut io, Some(format!("MAIL FROM:<{sender}>\r\n")), 250).await?;
    expect(&mut io, Some(format!("RCPT TO:<{recipient}>\r\n")), 250).await?;
    expect(&mut io, Some("DATA\r\n".into()), 354).await?;
    let now = crate::time::unix_now();
    let body = format!(
        "From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: edgemx mail-flow probe\r\n\
         Date: {}\r\nMessage-ID: <probe.{now}.{}@{hostname}>\r\nX-Edgemx-Probe: {now}\r\n\r\n\
         Mail-flow probe from {hostname}; it may be discarded.\r\n.\r\n",
        crate::time::rfc5322_date(now),
        fastrand::u64(..),
    );
    let last = expect(&mut io, Some(body), 250).await?;
    let _ = io.get_mut().write_all(b"QUIT\r\n").await;
    last.rsplit(' ')
        .next()
        .unwrap_or_default()
        .parse::<QueueId>()
        .map_err(|e| format!("unexpected reply `{last}`: {e}"))
}

/// Sends `line` (if any) and reads one reply, which must have `code`; returns its last line.
async fn expect(
    io: &mut BufReader<TcpStream>,
    line: Option<String>,
    code: u16,
) -> Result<String, String> {
    if let Some(line) = &line {
        io.get_mut()
            .write_all(line.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
    let reply = crate::smtp::client::wire::read_reply(io, Duration::from_secs(60))
        .await
        .map_err(|e| e.to_string())?;
    // The last line, as the peer wrote it: `250 2.0.0 queued as ID`.
    let text = match reply.lines.last() {
        Some(last) if !last.is_empty() => format!("{} {last}", reply.code),
        _ => reply.code.to_string(),
    };
    if reply.code == code {
        Ok(text)
    } else {
        let what = line
            .as_deref()
            .map_or("greeting", |l| l.split(' ').next().unwrap_or(""));
        Err(format!("{} answered `{text}`", what.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::events::Events;
    use crate::observe::metrics::Metrics;

    fn probes(key: &str) -> Arc<Probes> {
        let probes = Probes::new(Metrics::new(), &Events::new());
        probes.lock().insert(
            key.to_owned(),
            super::super::Status {
                next_hop: format!("hop-{key}"),
                message: Some(MessageStatus::default()),
                ..Default::default()
            },
        );
        probes
    }

    fn message(probes: &Probes, key: &str) -> MessageStatus {
        probes
            .update(key, |s| s.message.clone())
            .flatten()
            .expect("registered")
    }

    fn delivered_status() -> RcptStatus {
        RcptStatus::Delivered {
            reply: "250 ok".into(),
            at: 0,
        }
    }

    #[test]
    fn probe_message_delivered_before_its_250_was_read_is_not_left_waiting() {
        let key = "race-test";
        let probes = probes(key);
        let started = Instant::now();
        probes.begin_submit();
        // Delivery over a cached connection wins the race with our own reply.
        probes.settled(QueueId(0xE1), &delivered_status());
        probes.note(key, Ok(QueueId(0xE1)), started);
        let m = message(&probes, key);
        assert_eq!(
            m.pending, None,
            "not waiting for a message already delivered"
        );
        assert!(m.latency_ms.is_some() && m.last_delivered.is_some());
        let waited = probes.waiting();
        let ours = waited.iter().find(|(hop, _)| hop == "hop-race-test");
        assert_eq!(ours.map(|(_, s)| *s), Some(0.0));
    }

    #[test]
    fn waiting_probe_message_reports_its_age_until_delivered() {
        let key = "wait-test";
        let (metrics, events) = (Metrics::new(), Events::new());
        let probes = Probes::new(metrics.clone(), &events);
        probes.lock().insert(
            key.to_owned(),
            super::super::Status {
                next_hop: format!("hop-{key}"),
                message: Some(MessageStatus::default()),
                ..Default::default()
            },
        );
        let started = Instant::now();
        probes.begin_submit();
        probes.note(key, Ok(QueueId(0xE2)), started);
        assert_eq!(
            message(&probes, key).pending.as_deref(),
            Some("00000000000000E2")
        );
        let age = |w: Vec<(String, f64)>| {
            w.into_iter()
                .find(|(hop, _)| hop == "hop-wait-test")
                .map(|(_, s)| s)
        };
        let first = age(probes.waiting()).expect("listed");
        let deadline = Instant::now() + Duration::from_secs(5);
        while age(probes.waiting()).unwrap_or(0.0) <= first {
            assert!(Instant::now() < deadline, "the age never grew");
            std::thread::yield_now();
        }
        // Delivery announces it on the bus, as the scheduler does.
        events.publish(&crate::observe::events::Event::Recipient {
            id: QueueId(0xE2),
            status: &delivered_status(),
        });
        assert_eq!(message(&probes, key).pending, None);
        assert_eq!(age(probes.waiting()), Some(0.0));
        let text = metrics.render(&Default::default());
        assert!(
            text.contains("edgemx_probe_message_seconds{next_hop=\"hop-wait-test\"}"),
            "{text}"
        );
    }
}
