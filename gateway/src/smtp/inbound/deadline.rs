//! How long a session waits for its client: a whole command line within
//! `limits.command_timeout`, a DATA/BDAT phase within `limits.data_timeout` plus the time
//! its bytes take at `limits.min_data_rate`, and at most `data_timeout` between two reads.
//!
//! The deadlines are totals, not per read: a client that sends one byte every few seconds
//! is cut off like a silent one (Postfix's `smtpd_per_request_deadline`). Under stress
//! (`limits.rs`) every limit is capped at `limits.stress_timeout`, also for sessions that
//! were already waiting when the stress began.

use super::io::ReadEnd;
use super::session::Session;
use crate::config::Limits;
use std::time::{Duration, Instant};

/// The time budget of one command line or one DATA/BDAT phase.
#[derive(Debug, Clone)]
pub struct Pace {
    started: Instant,
    base: Duration,
    /// Longest wait between two reads (data phases only).
    idle: Option<Duration>,
    /// Bytes per second that earn more time (data phases only).
    rate: Option<u64>,
    bytes: u64,
}

impl Pace {
    /// One command line, from the moment the session is ready for it.
    pub fn command(limits: &Limits, now: Instant) -> Pace {
        Pace {
            started: now,
            base: limits.command_timeout.0,
            idle: None,
            rate: None,
            bytes: 0,
        }
    }

    /// One DATA or BDAT phase.
    pub fn transfer(limits: &Limits, now: Instant) -> Pace {
        Pace {
            started: now,
            base: limits.data_timeout.0,
            idle: Some(limits.data_timeout.0),
            rate: Some(limits.min_data_rate.0.max(1)),
            bytes: 0,
        }
    }

    pub fn received(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_add(bytes as u64);
    }

    /// How long the next read may wait; `None` once the budget is spent. `stress` caps
    /// every limit while the gateway is under stress.
    pub fn wait(&self, now: Instant, stress: Option<Duration>) -> Option<Duration> {
        let cap = |d: Duration| stress.map_or(d, |s| d.min(s));
        let earned = self.rate.map_or(Duration::ZERO, |rate| {
            Duration::from_secs_f64(self.bytes as f64 / rate as f64)
        });
        let total = cap(self.base).saturating_add(earned);
        let left = (self.started + total).checked_duration_since(now)?;
        let wait = match self.idle {
            Some(idle) => left.min(cap(idle)),
            None => left,
        };
        (!wait.is_zero()).then_some(wait)
    }
}

impl Session {
    /// Reads more input within `pace` (flushing pending replies first); a change to stress
    /// recomputes the wait, so a session already waiting is shortened too.
    pub async fn read_within(&mut self, pace: &mut Pace) -> Result<usize, ReadEnd> {
        self.conn.flush().await.map_err(ReadEnd::Failed)?;
        let limits = &self.ctx.config.limits;
        let stress_timeout = limits.stress_timeout.0;
        let mut stress = self.ctx.limiter.stress();
        loop {
            let stressed = *stress.borrow_and_update();
            let now = Instant::now();
            let Some(wait) = pace.wait(now, stressed.then_some(stress_timeout)) else {
                return Err(ReadEnd::Timeout);
            };
            // A deadline that has passed is not lifted by what wakes us at the same moment:
            // bytes arriving at that instant, or the stress ending because the other
            // sessions were cut at the same tick. Otherwise a trickling client under stress
            // gets a fresh budget exactly when it should be cut.
            let deadline = now + wait;
            tokio::select! {
                biased;
                read = self.conn.read_some(wait) => {
                    if read.is_ok() && Instant::now() >= deadline {
                        return Err(ReadEnd::Timeout);
                    }
                    if let Ok(n) = read {
                        pace.received(n);
                    }
                    return read;
                }
                Ok(()) = stress.changed() => {
                    if Instant::now() >= deadline {
                        return Err(ReadEnd::Timeout);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Bytes, Span};

    fn limits() -> Limits {
        Limits {
            command_timeout: Span(Duration::from_secs(300)),
            data_timeout: Span(Duration::from_secs(180)),
            min_data_rate: Bytes(1000),
            ..Limits::default()
        }
    }

    #[test]
    fn a_command_line_has_one_deadline_however_it_trickles() {
        let t0 = Instant::now();
        let mut pace = Pace::command(&limits(), t0);
        pace.received(1);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(pace.wait(at(100), None), Some(Duration::from_secs(200)));
        pace.received(1);
        assert_eq!(pace.wait(at(299), None), Some(Duration::from_secs(1)));
        assert_eq!(pace.wait(at(300), None), None);
    }

    #[test]
    fn data_earns_time_at_the_minimum_rate_and_waits_at_most_data_timeout() {
        let t0 = Instant::now();
        let mut pace = Pace::transfer(&limits(), t0);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(pace.wait(t0, None), Some(Duration::from_secs(180)));
        // 1 MB at 1000 B/s earns 1000 s beyond the base.
        pace.received(1_000_000);
        assert_eq!(pace.wait(at(1000), None), Some(Duration::from_secs(180)));
        assert_eq!(pace.wait(at(1100), None), Some(Duration::from_secs(80)));
        assert_eq!(pace.wait(at(1180), None), None);
    }

    #[test]
    fn stress_caps_every_limit() {
        let t0 = Instant::now();
        let ten = Some(Duration::from_secs(10));
        let command = Pace::command(&limits(), t0);
        assert_eq!(command.wait(t0, ten), ten);
        assert_eq!(command.wait(t0 + Duration::from_secs(10), ten), None);
        let mut data = Pace::transfer(&limits(), t0);
        data.received(100_000);
        assert_eq!(data.wait(t0 + Duration::from_secs(50), ten), ten);
    }
}
