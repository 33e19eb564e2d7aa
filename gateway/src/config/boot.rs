//! `[boot]`: how init judges the firmware it booted (applied by init, read at boot).
//!
//! Owns the shape, defaults and checks of these keys; the health gate and the watchdog
//! that use them live in `init::trial` and `init::supervise`.

use super::keys::{Key, Keys, Kind, key};
use super::{ConfigError, Span};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Boot {
    /// A booted slot is committed (marked good in GRUB's environment) once the gateway
    /// has answered `/healthz` with 200 and held every listener this long without a break.
    pub healthy_for: Span,
    /// A slot on trial that has not been healthy for `healthy_for` by this long after boot
    /// failed its trial: init records why and reboots (GRUB counts the try).
    pub trial_deadline: Span,
    /// After its trial, a gateway unhealthy for this long without a break makes init
    /// reboot the appliance (bounded by `max_unhealthy_reboots`).
    pub unhealthy_reboot_after: Span,
    /// Reboots for an unhealthy gateway of a committed slot, counted on gw-data and reset
    /// by a healthy boot; beyond it init stays up for the operator (a fault in the
    /// persistent data would otherwise reboot the appliance forever).
    pub max_unhealthy_reboots: u32,
}

impl Keys for Boot {
    const KEYS: &'static [Key] = &[
        key(
            "healthy_for",
            Kind::Span,
            "healthy this long: the booted firmware is committed",
        ),
        key(
            "trial_deadline",
            Kind::Span,
            "a trial not healthy by then fails; back to the old slot",
        ),
        key(
            "unhealthy_reboot_after",
            Kind::Span,
            "reboot when the gateway stays unhealthy this long",
        ),
        key(
            "max_unhealthy_reboots",
            Kind::Int,
            "then stay up for the operator (counted on gw-data)",
        ),
    ];
}

impl Default for Boot {
    fn default() -> Self {
        Boot {
            healthy_for: Span(Duration::from_secs(60)),
            trial_deadline: Span(Duration::from_secs(300)),
            unhealthy_reboot_after: Span(Duration::from_secs(300)),
            max_unhealthy_reboots: 3,
        }
    }
}

pub fn check(boot: &Boot) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut add = |key: &str, value: String, problem: &str| {
        errors.push(ConfigError {
            key: format!("boot.{key}"),
            value,
            problem: problem.into(),
        })
    };
    if boot.healthy_for.0 < Duration::from_secs(1) {
        add(
            "healthy_for",
            format!("{:?}", boot.healthy_for.0),
            "must be at least 1s",
        );
    }
    if boot.trial_deadline.0 <= boot.healthy_for.0 {
        add(
            "trial_deadline",
            format!("{:?}", boot.trial_deadline.0),
            "must be longer than boot.healthy_for",
        );
    }
    if boot.unhealthy_reboot_after.0 < Duration::from_secs(10) {
        add(
            "unhealthy_reboot_after",
            format!("{:?}", boot.unhealthy_reboot_after.0),
            "must be at least 10s",
        );
    }
    errors
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn boot_keys_default_and_bad_values_name_the_key() {
        let base = "hostname = \"gw.test\"\ndata_dir = \"/tmp/x\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n";
        let config = Config::parse(base).unwrap();
        assert_eq!(config.boot.healthy_for.0.as_secs(), 60);
        let short = format!("{base}[boot]\nhealthy_for = \"5s\"\ntrial_deadline = \"30s\"\n");
        let config = Config::parse(&short).unwrap();
        assert_eq!(config.boot.trial_deadline.0.as_secs(), 30);
        let bad = format!("{base}[boot]\nhealthy_for = \"60s\"\ntrial_deadline = \"30s\"\n");
        let errors = Config::parse(&bad).unwrap_err();
        assert!(
            errors.iter().any(|e| e.key == "boot.trial_deadline"),
            "{errors:?}"
        );
        let typo = format!("{base}[boot]\nhealthy = \"5s\"\n");
        let errors = Config::parse(&typo).unwrap_err();
        assert!(
            errors.iter().any(|e| e.to_string().contains("healthy")),
            "{errors:?}"
        );
    }
}
