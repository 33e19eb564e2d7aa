//! Retry schedule: when the next delivery attempt happens, with jitter, and when a message
//! has been queued too long. Pure functions of time and configuration.

use super::Envelope;
use crate::config;

/// Used only if the configuration has no interval (validation forbids that).
const FALLBACK_SECS: f64 = 300.0;

/// Unix seconds of the next attempt after `attempts` attempts have been made (counting the
/// one that just failed). The n-th wait is `retry_intervals[n - 1]`, the last one repeating,
/// spread by ±`retry_jitter` so that a backend coming back is not hit by everything at once.
/// Never less than one second.
pub fn next_attempt(now: u64, attempts: u32, config: &config::Queue) -> u64 {
    let spread = (fastrand::f64() * 2.0 - 1.0) * config.retry_jitter;
    now.saturating_add(wait(attempts, config, spread))
}

/// True when the message has been queued for `max_lifetime` or longer.
pub fn expired(envelope: &Envelope, now: u64, config: &config::Queue) -> bool {
    now.saturating_sub(envelope.received) >= config.max_lifetime.0.as_secs()
}

/// The wait in seconds for a `spread` in [-jitter, +jitter].
fn wait(attempts: u32, config: &config::Queue, spread: f64) -> u64 {
    let intervals = &config.retry_intervals;
    let index = (attempts.saturating_sub(1) as usize).min(intervals.len().saturating_sub(1));
    let base = intervals
        .get(index)
        .map_or(FALLBACK_SECS, |s| s.0.as_secs_f64());
    // `as` saturates for floats: a huge interval cannot wrap around.
    ((base * (1.0 + spread)).round() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Span;
    use std::time::Duration;

    fn config(intervals: &[u64], jitter: f64) -> config::Queue {
        config::Queue {
            retry_intervals: intervals
                .iter()
                .map(|s| Span(Duration::from_secs(*s)))
                .collect(),
            retry_jitter: jitter,
            ..config::Queue::default()
        }
    }

    #[test]
    fn intervals_are_used_in_order_and_the_last_repeats() {
        let c = config(&[60, 300, 900], 0.0);
        let waits: Vec<u64> = (1..=6)
            .map(|n| next_attempt(1_000, n, &c) - 1_000)
            .collect();
        assert_eq!(waits, [60, 300, 900, 900, 900, 900]);
        assert_eq!(
            next_attempt(1_000, 0, &c),
            1_060,
            "no attempt yet counts as the first"
        );
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let c = config(&[1_000], 0.1);
        let waits: Vec<u64> = (0..2_000).map(|_| next_attempt(0, 1, &c)).collect();
        assert!(waits.iter().all(|w| (900..=1_100).contains(w)), "{waits:?}");
        let low = waits.iter().filter(|w| **w < 1_000).count();
        let high = waits.iter().filter(|w| **w > 1_000).count();
        assert!(
            low > 500 && high > 500,
            "spread on both sides: {low} below, {high} above"
        );
    }

    #[test]
    fn wait_is_at_least_one_second() {
        let c = config(&[1], 0.5);
        assert_eq!(wait(1, &c, -0.5), 1);
        assert!((0..100).all(|_| next_attempt(10, 3, &c) >= 11));
    }

    #[test]
    fn expiry_starts_at_max_lifetime() {
        let c = config::Queue {
            max_lifetime: Span(Duration::from_secs(100)),
            ..config::Queue::default()
        };
        let envelope = Envelope::new("", Vec::new(), 1_000);
        assert!(!expired(&envelope, 1_099, &c));
        assert!(expired(&envelope, 1_100, &c));
        assert!(
            !expired(&envelope, 0, &c),
            "a clock set back never expires mail"
        );
    }
}
