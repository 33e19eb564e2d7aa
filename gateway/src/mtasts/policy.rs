//! The MTA-STS policy file (RFC 8461 §3.2): `version: STSv1`, `mode`, `mx` patterns and
//! `max_age`, one `key: value` per line (CRLF or LF).

use serde::{Deserialize, Serialize};

/// RFC 8461 §5: what a sender does with a host the policy does not validate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// The `id` of the `_mta-sts` TXT record the policy was fetched under.
    pub id: String,
    pub mode: Mode,
    /// `mx.example.com` or `*.example.com` (one label), lower case.
    pub mx: Vec<String>,
    /// Seconds the policy may be cached (at most 31557600, RFC 8461 §3.2).
    pub max_age: u64,
    /// The policy's lines as fetched (RFC 8460 `policy-string`).
    pub lines: Vec<String>,
}

/// RFC 8461 §3.2: `max_age` is at most one year.
pub const MAX_AGE: u64 = 31_557_600;

impl Policy {
    pub fn parse(id: &str, text: &str) -> Result<Policy, String> {
        let mut version = false;
        let mut mode = None;
        let mut mx = Vec::new();
        let mut max_age = None;
        let mut lines = Vec::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            lines.push(line.to_owned());
            let Some((key, value)) = line.split_once(':') else {
                return Err(format!("not a key: value line: {line:?}"));
            };
            let value = value.trim();
            match key.trim() {
                "version" if value == "STSv1" => version = true,
                "version" => return Err(format!("unknown version {value:?}")),
                "mode" => {
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        _ => return Err(format!("unknown mode {value:?}")),
                    })
                }
                "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
                "max_age" => {
                    let seconds: u64 = value
                        .parse()
                        .map_err(|_| format!("max_age {value:?} is not a number"))?;
                    max_age = Some(seconds.min(MAX_AGE));
                }
                // RFC 8461 §3.2: unknown fields are ignored.
                _ => {}
            }
        }
        if !version {
            return Err("no version: STSv1".into());
        }
        let mode = mode.ok_or("no mode")?;
        let max_age = max_age.ok_or("no max_age")?;
        if mx.is_empty() && mode != Mode::None {
            return Err("no mx patterns".into());
        }
        Ok(Policy {
            id: id.to_owned(),
            mode,
            mx,
            max_age,
            lines,
        })
    }

    /// `host` matches one `mx` pattern; a wildcard covers exactly one leftmost label.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
                None => *pattern == host,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n";

    #[test]
    fn a_policy_parses_with_crlf_and_matches_its_patterns() {
        let p = Policy::parse("20240101", TEXT).unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604_800);
        assert_eq!(p.lines.len(), 5);
        assert!(p.matches("mail.example.com"));
        assert!(p.matches("MX1.example.net."));
        assert!(!p.matches("example.net"));
        assert!(!p.matches("a.b.example.net"));
        assert!(!p.matches("mail.example.org"));
    }

    #[test]
    fn broken_policies_are_refused() {
        for (text, why) in [
            ("mode: enforce\nmx: a.b\nmax_age: 5\n", "no version"),
            (
                "version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 5\n",
                "unknown version",
            ),
            (
                "version: STSv1\nmode: strict\nmx: a.b\nmax_age: 5\n",
                "unknown mode",
            ),
            ("version: STSv1\nmode: enforce\nmax_age: 5\n", "no mx"),
            ("version: STSv1\nmode: enforce\nmx: a.b\n", "no max_age"),
            (
                "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: soon\n",
                "max_age",
            ),
        ] {
            let e = Policy::parse("1", text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn max_age_is_capped_at_a_year_and_unknown_keys_ignored() {
        let text = "version: STSv1\nmode: testing\nmx: a.b\nmax_age: 99999999999\nfuture: x\n";
        let p = Policy::parse("1", text).unwrap();
        assert_eq!((p.mode, p.max_age), (Mode::Testing, MAX_AGE));
    }
}
