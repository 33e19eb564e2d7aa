//! The verdicts behind the health gate and the health watchdog, as a pure state
//! machine fed with health observations and times (no I/O, so every path is
//! unit-tested; `trial` does the probing and acts on the verdicts).
//!
//! Two phases. **Gate**, from boot: the gateway must be healthy for
//! `healthy_for` without a break; then the booted slot is committed. A slot on
//! trial that has not passed by `trial_deadline` failed. **Follow**, after
//! the commit (and from boot for a slot not on trial, whose gate only resets
//! the try counter): a gateway unhealthy for `unhealthy_reboot_after` without a
//! break asks for a reboot.

use std::time::{Duration, Instant};

use crate::config::boot::Boot;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Healthy long enough: mark the booted slot good.
    Commit,
    /// The slot on trial failed its gate; the reason.
    FailTrial(String),
    /// The gateway stayed unhealthy too long; the reason.
    Reboot(String),
}

pub struct Judge {
    healthy_for: Duration,
    trial_deadline: Duration,
    unhealthy_limit: Duration,
    on_trial: bool,
    booted_at: Instant,
    committed: bool,
    healthy_since: Option<Instant>,
    unhealthy_since: Option<Instant>,
}

impl Judge {
    pub fn new(settings: &Boot, on_trial: bool, booted_at: Instant) -> Judge {
        Judge {
            healthy_for: settings.healthy_for.0,
            trial_deadline: settings.trial_deadline.0,
            unhealthy_limit: settings.unhealthy_reboot_after.0,
            on_trial,
            booted_at,
            committed: false,
            healthy_since: None,
            // Not yet healthy counts from boot: a gateway that never comes up is unhealthy.
            unhealthy_since: Some(booted_at),
        }
    }

    /// Whether the booted slot has been committed this boot.
    pub fn committed(&self) -> bool {
        self.committed
    }

    /// One health observation at `now`; at most one verdict. After a
    /// `FailTrial` or `Reboot` the caller reboots (or, past its reboot budget,
    /// keeps observing: the verdict repeats only after a new unhealthy period).
    pub fn observe(&mut self, now: Instant, health: Result<(), String>) -> Option<Verdict> {
        match health {
            Ok(()) => {
                self.unhealthy_since = None;
                let since = *self.healthy_since.get_or_insert(now);
                if !self.committed && now.duration_since(since) >= self.healthy_for {
                    self.committed = true;
                    return Some(Verdict::Commit);
                }
                None
            }
            Err(why) => {
                self.healthy_since = None;
                if self.on_trial && !self.committed {
                    if now.duration_since(self.booted_at) >= self.trial_deadline {
                        // Once: the caller reboots; the next observation starts a new wait.
                        self.booted_at = now;
                        let limit = self.trial_deadline.as_secs();
                        return Some(Verdict::FailTrial(format!(
                            "not healthy for {} s within {limit} s of boot: {why}",
                            self.healthy_for.as_secs()
                        )));
                    }
                    return None;
                }
                let since = *self.unhealthy_since.get_or_insert(now);
                if now.duration_since(since) >= self.unhealthy_limit {
                    self.unhealthy_since = Some(now);
                    return Some(Verdict::Reboot(format!(
                        "gateway unhealthy for {} s: {why}",
                        now.duration_since(since).as_secs()
                    )));
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Span;

    fn settings() -> Boot {
        Boot {
            healthy_for: Span(Duration::from_secs(10)),
            trial_deadline: Span(Duration::from_secs(30)),
            unhealthy_reboot_after: Span(Duration::from_secs(20)),
            max_unhealthy_reboots: 3,
        }
    }

    fn down() -> Result<(), String> {
        Err("/healthz: 503".into())
    }

    #[test]
    fn a_trial_is_committed_only_after_an_unbroken_healthy_period() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut j = Judge::new(&settings(), true, t0);
        assert_eq!(j.observe(s(2), Ok(())), None);
        assert_eq!(j.observe(s(8), Ok(())), None);
        assert_eq!(j.observe(s(9), down()), None); // the break restarts the period
        assert_eq!(j.observe(s(12), Ok(())), None);
        assert_eq!(j.observe(s(21), Ok(())), None);
        assert_eq!(j.observe(s(22), Ok(())), Some(Verdict::Commit));
        assert!(j.committed());
        assert_eq!(j.observe(s(40), Ok(())), None);
    }

    #[test]
    fn a_trial_never_healthy_fails_at_its_deadline_with_the_reason() {
        let t0 = Instant::now();
        let mut j = Judge::new(&settings(), true, t0);
        assert_eq!(j.observe(t0 + Duration::from_secs(29), down()), None);
        let v = j.observe(t0 + Duration::from_secs(30), down());
        assert!(
            matches!(&v, Some(Verdict::FailTrial(why)) if why.contains("/healthz: 503")),
            "{v:?}"
        );
        // A trial healthy only in bursts shorter than healthy_for fails too.
        let mut j = Judge::new(&settings(), true, t0);
        for i in 0..6 {
            assert_eq!(j.observe(t0 + Duration::from_secs(i * 5), Ok(())), None);
            assert_eq!(j.observe(t0 + Duration::from_secs(i * 5 + 4), down()), None);
        }
        assert!(matches!(
            j.observe(t0 + Duration::from_secs(34), down()),
            Some(Verdict::FailTrial(_))
        ));
    }

    #[test]
    fn after_the_commit_a_long_unhealthy_stretch_asks_for_a_reboot() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut j = Judge::new(&settings(), true, t0);
        j.observe(s(1), Ok(()));
        assert_eq!(j.observe(s(11), Ok(())), Some(Verdict::Commit));
        assert_eq!(j.observe(s(100), down()), None);
        assert_eq!(j.observe(s(110), Ok(())), None); // recovered: the stretch restarts
        assert_eq!(j.observe(s(111), down()), None);
        assert_eq!(j.observe(s(130), down()), None);
        assert!(matches!(
            j.observe(s(131), down()),
            Some(Verdict::Reboot(_))
        ));
        assert_eq!(j.observe(s(132), down()), None);
    }

    #[test]
    fn a_good_slot_whose_gateway_never_comes_up_asks_for_a_reboot_not_a_fallback() {
        let t0 = Instant::now();
        let mut j = Judge::new(&settings(), false, t0);
        assert_eq!(j.observe(t0 + Duration::from_secs(19), down()), None);
        assert!(matches!(
            j.observe(t0 + Duration::from_secs(20), down()),
            Some(Verdict::Reboot(_))
        ));
    }
}
