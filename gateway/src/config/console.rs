//! `[console]`: the operator console's session settings (read by `edgemx console` from
//! the running configuration at login and after each commit).

use super::Span;
use super::keys::{Key, Keys, Kind, key};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Console {
    /// A session waiting at its prompt without a key pressed this long is logged out
    /// (`0s`: never), as Junos's `idle-timeout`: a serial line left logged in is an open
    /// door to the configuration.
    pub idle_timeout: Span,
}

impl Keys for Console {
    const KEYS: &'static [Key] = &[key(
        "idle_timeout",
        Kind::Span,
        "log out a session idle at its prompt this long (0s: never)",
    )];
}

impl Default for Console {
    fn default() -> Self {
        Console {
            idle_timeout: Span(Duration::from_secs(30 * 60)),
        }
    }
}

impl Console {
    /// The idle timeout written in a configuration text, the default when it says none
    /// (the console reads it from the running text, which the gateway has checked).
    pub fn idle_timeout_in(doc: &toml_edit::DocumentMut) -> Option<Duration> {
        let timeout = match doc
            .get("console")
            .and_then(|c| c.get("idle_timeout"))
            .and_then(|t| t.as_str())
        {
            Some(text) => super::units::parse_span(text).ok()?,
            None => Console::default().idle_timeout.0,
        };
        (!timeout.is_zero()).then_some(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_timeout_defaults_to_thirty_minutes_and_zero_turns_it_off() {
        let doc = |t: &str| t.parse::<toml_edit::DocumentMut>().unwrap();
        assert_eq!(
            Console::idle_timeout_in(&doc("")),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(
            Console::idle_timeout_in(&doc("[console]\nidle_timeout = \"90s\"\n")),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            Console::idle_timeout_in(&doc("[console]\nidle_timeout = \"0s\"\n")),
            None
        );
    }
}
