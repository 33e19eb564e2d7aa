//! Next-hop health: an up/down state per destination (its ordered next hops, as routing
//! groups them), driven by delivery results (passive) and by the scheduler's periodic
//! connect + EHLO + QUIT checks (active), with hysteresis so one lost connection does not
//! flap the state.
//!
//! Rules: `flow.fall` consecutive failures (unreachable attempts or failed checks) mark a
//! destination down; `flow.rise` consecutive successful checks mark it up again, and so
//! does one delivered transaction (proof that it works). Every change is logged. The
//! scheduler acts on the changes (no attempts while down, a paced release when it comes
//! back); [`Health::snapshot`] is what metrics and the console read.

use crate::observe::events::{Event, Events};
use crate::routing::Destination;
use crate::smtp::client::wire::Reply;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Up,
    Down,
}

impl State {
    /// As on the wire and in `queue health`: `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
        }
    }
}

/// One destination's health as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HopHealth {
    /// The destination's next hops as configured, e.g. `10.1.2.3:25,backup.example:25`.
    pub name: String,
    /// The TLS policy towards them (`verify name=mx.example.org`): destinations with the
    /// same next hops differ by it, so it tells such rows apart.
    pub tls: String,
    /// The configured domains (`domain example.com`) and routes (`route onprem`) that
    /// deliver to this destination; empty for one only queued mail uses (DSNs, relay).
    pub used_by: Vec<String>,
    pub state: State,
    /// When the state last changed (or the destination was first seen).
    pub since: SystemTime,
    /// The last failure, if any since the last success.
    #[serde(deserialize_with = "Option::deserialize")]
    pub last_error: Option<String>,
}

/// A state change caused by one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Same,
    WentDown,
    WentUp,
}

/// Shared by the scheduler (which writes) and readers of [`Health::snapshot`].
#[derive(Clone)]
pub struct Health {
    inner: Arc<Mutex<HashMap<Arc<Destination>, Entry>>>,
    fall: u32,
    rise: u32,
    /// Where state changes are announced (`edgemx_next_hop_up`).
    events: Events,
}

struct Entry {
    state: State,
    since: SystemTime,
    fails: u32,
    oks: u32,
    last_error: Option<Reply>,
    used_by: Vec<String>,
}

/// What was seen about a destination.
#[derive(Debug, Clone)]
pub enum Seen {
    /// A transaction reached a next hop: up at once.
    Delivered,
    /// An active check succeeded: counts towards `rise`.
    CheckPassed,
    /// No next hop could be reached (attempt or check): counts towards `fall`.
    Failed(Reply),
}

impl Health {
    pub fn new(fall: u32, rise: u32, events: &Events) -> Health {
        Health {
            inner: Arc::new(Mutex::new(HashMap::new())),
            fall: fall.max(1),
            rise: rise.max(1),
            events: events.clone(),
        }
    }

    fn announce(&self, dest: &Destination, up: bool) {
        self.events.publish(&Event::HopState {
            hop: &dest.to_string(),
            up,
        });
    }

    /// Starts tracking `dest` (as up) if it is not known yet.
    pub fn track(&self, dest: &Arc<Destination>) {
        self.lock().entry(dest.clone()).or_insert_with(|| {
            self.announce(dest, true);
            Entry::new(State::Up)
        });
    }

    /// Records one observation and returns the state change it caused (logged here).
    pub fn observe(&self, dest: &Arc<Destination>, seen: Seen) -> Change {
        let mut map = self.lock();
        let entry = map
            .entry(dest.clone())
            .or_insert_with(|| Entry::new(State::Up));
        let change = match seen {
            Seen::Failed(reply) => {
                entry.oks = 0;
                entry.fails = entry.fails.saturating_add(1);
                entry.last_error = Some(reply);
                match entry.state {
                    State::Up if entry.fails >= self.fall => Change::WentDown,
                    _ => Change::Same,
                }
            }
            Seen::Delivered | Seen::CheckPassed => {
                entry.fails = 0;
                entry.oks = entry.oks.saturating_add(1);
                let enough = matches!(seen, Seen::Delivered) || entry.oks >= self.rise;
                match entry.state {
                    State::Down if enough => Change::WentUp,
                    _ => Change::Same,
                }
            }
        };
        match change {
            Change::WentDown => {
                entry.state = State::Down;
                entry.since = SystemTime::now();
                self.announce(dest, false);
                let why = entry.last_error.as_ref().map(Reply::text);
                log::warn!(
                    "next hop {dest} is DOWN after {} consecutive failures: {}",
                    entry.fails,
                    why.unwrap_or_default()
                );
            }
            Change::WentUp => {
                let was = entry.since.elapsed().map(|d| d.as_secs()).unwrap_or(0);
                entry.state = State::Up;
                entry.since = SystemTime::now();
                entry.last_error = None;
                self.announce(dest, true);
                log::info!("next hop {dest} is UP again (was down {was}s)");
            }
            Change::Same => {}
        }
        change
    }

    /// Marks `dest` up without waiting for checks (an operator or ETRN says it is back).
    pub fn force_up(&self, dest: &Arc<Destination>, why: &str) {
        let mut map = self.lock();
        let entry = map
            .entry(dest.clone())
            .or_insert_with(|| Entry::new(State::Up));
        entry.fails = 0;
        if entry.state == State::Down {
            entry.state = State::Up;
            entry.since = SystemTime::now();
            entry.last_error = None;
            self.announce(dest, true);
            log::info!("next hop {dest} marked UP ({why})");
        }
    }

    /// The reply that stands for the destination while it is down; `None` when up.
    pub fn down(&self, dest: &Arc<Destination>) -> Option<Reply> {
        let map = self.lock();
        let entry = map.get(dest).filter(|e| e.state == State::Down)?;
        let text = entry.last_error.as_ref().map(Reply::text);
        Some(Reply::local(
            451,
            format!("4.4.1 next hop down: {}", text.unwrap_or_default()),
        ))
    }

    /// Names who uses each destination (see [`HopHealth::used_by`]), replacing the
    /// previous names (after a reload).
    pub fn label(&self, used_by: &HashMap<Arc<Destination>, Vec<String>>) {
        for (dest, entry) in self.lock().iter_mut() {
            entry.used_by = used_by.get(dest).cloned().unwrap_or_default();
        }
    }

    /// Stops tracking destinations for which `keep` is false (no queued mail, not
    /// configured), so checks do not go on for a DSN's one-off destination.
    pub fn retain(&self, keep: impl Fn(&Arc<Destination>) -> bool) {
        self.lock().retain(|dest, _| keep(dest));
    }

    pub fn destinations(&self) -> Vec<Arc<Destination>> {
        self.lock().keys().cloned().collect()
    }

    /// Every tracked destination's state, sorted by name.
    pub fn snapshot(&self) -> Vec<HopHealth> {
        let mut out: Vec<HopHealth> = self
            .lock()
            .iter()
            .map(|(dest, e)| HopHealth {
                name: dest.to_string(),
                tls: tls_summary(&dest.tls),
                used_by: e.used_by.clone(),
                state: e.state,
                since: e.since,
                last_error: e.last_error.as_ref().map(Reply::text),
            })
            .collect();
        out.sort_by(|a, b| (&a.name, &a.tls).cmp(&(&b.name, &b.tls)));
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<Destination>, Entry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Entry {
    fn new(state: State) -> Entry {
        Entry {
            state,
            since: SystemTime::now(),
            fails: 0,
            oks: 0,
            last_error: None,
            used_by: Vec::new(),
        }
    }
}

/// The TLS policy in one word and the options that set it apart.
fn tls_summary(policy: &crate::config::TlsPolicy) -> String {
    let mut out = policy.mode.to_string();
    if let Some(name) = &policy.name {
        out.push_str(&format!(" name={name}"));
    }
    if let Some(ca) = &policy.ca {
        out.push_str(&format!(" ca={}", ca.display()));
    }
    if !policy.pins.is_empty() {
        out.push_str(&format!(" pins={}", policy.pins.len()));
    }
    if let Some(cert) = &policy.client_certificate {
        out.push_str(&format!(" client_certificate={}", cert.display()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NextHop, TlsPolicy};

    fn dest() -> Arc<Destination> {
        Arc::new(Destination {
            domain: None,
            hops: vec![NextHop::Addr("127.0.0.1:25".parse().unwrap())],
            tls: TlsPolicy::NONE,
            dane: crate::config::DaneMode::Off,
        })
    }

    fn failed() -> Seen {
        Seen::Failed(Reply::local(451, "4.4.1 connection refused"))
    }

    #[test]
    fn it_takes_fall_failures_to_go_down_and_rise_checks_to_come_back() {
        let (health, d) = (Health::new(2, 2, &Events::new()), dest());
        assert_eq!(health.observe(&d, failed()), Change::Same);
        assert!(health.down(&d).is_none());
        assert_eq!(health.observe(&d, failed()), Change::WentDown);
        assert!(
            health
                .down(&d)
                .unwrap()
                .text()
                .contains("connection refused")
        );
        assert_eq!(health.observe(&d, failed()), Change::Same);
        assert_eq!(health.observe(&d, Seen::CheckPassed), Change::Same);
        assert_eq!(health.observe(&d, failed()), Change::Same, "streak broken");
        assert_eq!(health.observe(&d, Seen::CheckPassed), Change::Same);
        assert_eq!(health.observe(&d, Seen::CheckPassed), Change::WentUp);
        assert_eq!(health.snapshot()[0].state, State::Up);
    }

    #[test]
    fn a_delivery_is_proof_enough() {
        let (health, d) = (Health::new(1, 5, &Events::new()), dest());
        assert_eq!(health.observe(&d, failed()), Change::WentDown);
        assert_eq!(health.snapshot()[0].state, State::Down);
        assert_eq!(health.observe(&d, Seen::Delivered), Change::WentUp);
        assert_eq!(health.observe(&d, Seen::Delivered), Change::Same);
    }
}
