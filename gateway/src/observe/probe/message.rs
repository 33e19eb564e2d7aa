//! The probe message: a real message submitted to this gateway's first listener, addressed
//! to the probe address, and timed until the next hop accepted it (`250` after DATA).
//!
//! The delivery side reports each settled recipient through [`settled`]; a registry of the
//! probe messages in flight turns the one that matters into a latency. At most one probe
//! message per probe is in the queue: while it waits (next hop down), no more are sent.

use crate::config::{Config, Probe};
use crate::queue::{QueueId, RcptStatus};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default, Serialize)]
pub struct MessageStatus {
    /// Queue id of the probe message still waiting for delivery.
    pub pending: Option<String>,
    /// Last submission: connect to our `250` (durably queued).
    pub submit_ms: Option<u64>,
    /// Last delivered probe: start of submission to the next hop's `250`.
    pub latency_ms: Option<u64>,
    pub last_delivered: Option<u64>,
    pub last_error: Option<String>,
}

/// Probe messages in flight: queue id → (probe key, submission start).
static IN_FLIGHT: Mutex<Option<HashMap<QueueId, (String, Instant)>>> = Mutex::new(None);
/// Cheap check for the delivery hot path: is any probe message in flight at all?
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// Called by delivery for every recipient settled in an attempt.
pub fn settled(id: QueueId, status: &RcptStatus) {
    if COUNT.load(Ordering::Relaxed) == 0 || !matches!(status, RcptStatus::Delivered { .. }) {
        return;
    }
    let found = IN_FLIGHT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
        .and_then(|m| m.remove(&id));
    let Some((key, started)) = found else { return };
    COUNT.fetch_sub(1, Ordering::Relaxed);
    let latency = started.elapsed();
    let hop = super::update(&key, |s| {
        if let Some(m) = s.message.as_mut() {
            m.pending = None;
            m.latency_ms = Some(latency.as_millis() as u64);
            m.last_delivered = Some(crate::time::unix_now());
        }
        s.next_hop.clone()
    });
    if let Some(hop) = hop {
        crate::observe::metrics::set(
            "edgemx_probe_message_seconds",
            &[("next_hop", hop.as_str())],
            latency.as_secs_f64(),
        );
        log::info!("probe {hop}: probe message {id} delivered in {latency:.2?}");
    }
}

pub async fn run(
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
        let waiting = super::update(&key, |s| s.message.as_ref().and_then(|m| m.pending.clone()));
        if waiting.flatten().is_none() {
            let started = Instant::now();
            let sent = tokio::time::timeout(
                probe.timeout.0,
                submit(ours, &config.hostname, &sender, &probe.recipient),
            )
            .await
            .unwrap_or_else(|_| Err("no answer from our own listener".into()));
            note(&key, sent, started);
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(probe.interval.0) => {}
        }
    }
    if let Some(map) = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let before = map.len();
        map.retain(|_, (k, _)| *k != key);
        COUNT.fetch_sub(before - map.len(), Ordering::Relaxed);
    }
}

fn note(key: &str, sent: Result<QueueId, String>, started: Instant) {
    let submit = started.elapsed();
    let hop = super::update(key, |s| {
        if let Some(m) = s.message.as_mut() {
            match &sent {
                Ok(id) => {
                    m.pending = Some(id.to_string());
                    m.submit_ms = Some(submit.as_millis() as u64);
                    m.last_error = None;
                }
                Err(e) => m.last_error = Some(e.clone()),
            }
        }
        s.next_hop.clone()
    });
    match (sent, hop) {
        (Ok(id), Some(hop)) => {
            IN_FLIGHT
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(HashMap::new)
                .insert(id, (key.to_owned(), started));
            COUNT.fetch_add(1, Ordering::Relaxed);
            crate::observe::metrics::set(
                "edgemx_probe_message_submit_seconds",
                &[("next_hop", hop.as_str())],
                submit.as_secs_f64(),
            );
        }
        (Err(e), Some(hop)) => log::warn!("probe {hop}: probe message not accepted: {e}"),
        _ => {}
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
    let mut text = String::new();
    loop {
        text.clear();
        let read = tokio::time::timeout(Duration::from_secs(60), io.read_line(&mut text)).await;
        match read {
            Ok(Ok(0)) | Err(_) => return Err("connection closed".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(_)) => {}
        }
        if text.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    let text = text.trim_end().to_owned();
    if text.get(..3) == Some(&code.to_string()) {
        Ok(text)
    } else {
        let what = line
            .as_deref()
            .map_or("greeting", |l| l.split(' ').next().unwrap_or(""));
        Err(format!("{} answered `{text}`", what.trim()))
    }
}
