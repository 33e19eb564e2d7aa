//! What `show scan` reports: whether each configured scanner answers now (rspamd's
//! `/ping`, clamd's `PING`), and the last verdicts with their latency, kept from the
//! events bus (a bounded ring: subscribers must be cheap).

use super::conn::connect;
use crate::config::scan::{Endpoint, Scan};
use crate::observe::events::{Event, Events};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Verdicts kept for `show scan`.
const KEPT: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// Unix seconds.
    pub at: u64,
    pub scanner: String,
    pub verdict: String,
    pub seconds: f64,
}

/// The last verdicts published on one gateway's bus.
#[derive(Default)]
pub struct Recent {
    seen: Mutex<VecDeque<Seen>>,
}

impl Recent {
    pub fn watch(events: &Events) -> Arc<Recent> {
        let recent = Arc::new(Recent::default());
        let keep = recent.clone();
        events.subscribe(move |event| {
            if let Event::Scanned {
                scanner,
                verdict,
                seconds,
            } = event
            {
                let mut seen = keep.seen.lock().unwrap_or_else(|e| e.into_inner());
                if seen.len() == KEPT {
                    seen.pop_front();
                }
                seen.push_back(Seen {
                    at: crate::time::unix_now(),
                    scanner: scanner.to_string(),
                    verdict: verdict.to_string(),
                    seconds: *seconds,
                });
            }
        });
        recent
    }

    /// Oldest first.
    pub fn list(&self) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter().cloned().collect()
    }
}

/// `Option` fields must be present (`null`), as every control reply's (`control::reply`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reach {
    pub scanner: String,
    pub at: String,
    /// Milliseconds to the answer, when it answered.
    #[serde(deserialize_with = "Option::deserialize")]
    pub answered_ms: Option<f64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub error: Option<String>,
}

/// Asks every configured scanner whether it is there, at once, each within
/// `scan.timeout` (at most 5 s).
pub async fn reachability(scan: &Scan) -> Vec<Reach> {
    let limit = scan.timeout.0.min(Duration::from_secs(5));
    let ask = |scanner: &'static str, at: Option<Endpoint>| async move {
        let at = at?;
        let started = Instant::now();
        let answer = match tokio::time::timeout(limit, ping(scanner, &at)).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {limit:?}")),
        };
        Some(Reach {
            scanner: scanner.to_string(),
            at: at.to_string(),
            answered_ms: answer
                .is_ok()
                .then(|| started.elapsed().as_secs_f64() * 1000.0),
            error: answer.err(),
        })
    };
    let (r, c) = tokio::join!(
        ask("rspamd", scan.rspamd_at.clone()),
        ask("clamd", scan.clamd_at.clone())
    );
    r.into_iter().chain(c).collect()
}

async fn ping(scanner: &str, at: &Endpoint) -> Result<(), String> {
    let mut stream = connect(at)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (request, expect): (&[u8], &str) = match scanner {
        "rspamd" => (
            b"GET /ping HTTP/1.1\r\nHost: edgemx\r\nConnection: close\r\n\r\n",
            "pong",
        ),
        _ => (b"zPING\0", "PONG"),
    };
    stream.write_all(request).await.map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 1024];
    while reply.len() < 4096 {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(e.to_string()),
        }
        if String::from_utf8_lossy(&reply).contains(expect) {
            return Ok(());
        }
    }
    Err(format!(
        "unexpected answer: {:.80}",
        String::from_utf8_lossy(&reply)
    ))
}
