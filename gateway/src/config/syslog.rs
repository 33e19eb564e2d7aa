//! `[[log.syslog]]`: remote syslog collectors (RFC 5424 messages over TCP with octet
//! counting, RFC 6587; TLS, RFC 5425; or UDP, RFC 5426). The sending is `observe::syslog`'s.

use super::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;

/// Facility names in code order (RFC 5424 §6.2.1): `mail` is 2, `local0` 16.
pub const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Syslog {
    /// `HOST:PORT` (`[IPv6]:PORT`); a name is resolved at each connection.
    pub address: String,
    #[serde(default)]
    pub transport: Transport,
    /// PEM CA certificates the collector's certificate must chain to (`tls` only);
    /// absent: the Mozilla roots.
    pub ca: Option<PathBuf>,
    #[serde(default = "mail")]
    pub facility: String,
    /// Lines kept while the collector cannot be reached; the oldest go first.
    #[serde(default = "queue")]
    pub queue: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Tcp,
    Tls,
    Udp,
}

fn mail() -> String {
    "mail".into()
}

fn queue() -> usize {
    10_000
}

impl Syslog {
    /// The facility's code; `check` refuses an unknown name.
    pub fn facility_code(&self) -> u8 {
        FACILITIES
            .iter()
            .position(|f| *f == self.facility)
            .map_or(2, |p| p as u8)
    }

    /// The host part of `address` (brackets removed), also the name TLS verifies.
    pub fn host(&self) -> Option<&str> {
        let (host, port) = self.address.rsplit_once(':')?;
        port.parse::<u16>().ok().filter(|p| *p != 0)?;
        match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok().then_some(v6),
            None => (!host.is_empty() && !host.contains([':', ' ', '[', ']'])).then_some(host),
        }
    }
}

pub fn check(collectors: &[Syslog]) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for (i, c) in collectors.iter().enumerate() {
        let mut add = |field: &str, value: String, problem: &str| {
            out.push(ConfigError {
                key: format!("log.syslog[{i}].{field}"),
                value,
                problem: problem.into(),
            })
        };
        if c.host().is_none() {
            add(
                "address",
                c.address.clone(),
                "not HOST:PORT (an IPv6 address in brackets: [2001:db8::5]:6514)",
            );
        }
        if !FACILITIES.contains(&c.facility.as_str()) {
            add(
                "facility",
                c.facility.clone(),
                "not a syslog facility (mail, daemon, local0 … local7, …)",
            );
        }
        if c.ca.is_some() && c.transport != Transport::Tls {
            add(
                "ca",
                c.ca.as_ref()
                    .map_or(String::new(), |p| p.display().to_string()),
                "only for transport = \"tls\"",
            );
        }
        if !(1..=1_000_000).contains(&c.queue) {
            add("queue", c.queue.to_string(), "must be 1 to 1000000");
        }
    }
    out
}

/// The console's keys for one `[[log.syslog]]` entry (`config/keys.rs`).
impl super::Keys for Syslog {
    const KEYS: &'static [super::Key] = {
        use super::{Kind, keys::key};
        &[
            key("address", Kind::Str("HOST:PORT"), "the collector"),
            key(
                "transport",
                Kind::Enum(&["tcp", "tls", "udp"]),
                "TCP (octet counting), TLS or UDP",
            ),
            key(
                "ca",
                Kind::Str("PATH"),
                "CA certificates for tls (default: the Mozilla roots)",
            ),
            key("facility", Kind::Enum(FACILITIES), "syslog facility"),
            key(
                "queue",
                Kind::Int,
                "lines kept while the collector is unreachable",
            ),
        ]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(address: &str) -> Syslog {
        toml::from_str(&format!("address = \"{address}\"")).unwrap()
    }

    #[test]
    fn defaults_are_tcp_mail_and_ten_thousand_lines() {
        let c = at("192.0.2.5:6514");
        assert_eq!(c.transport, Transport::Tcp);
        assert_eq!(c.facility_code(), 2);
        assert_eq!(c.queue, 10_000);
        assert_eq!(c.host(), Some("192.0.2.5"));
        assert_eq!(at("[2001:db8::5]:514").host(), Some("2001:db8::5"));
        assert_eq!(at("logs.example.net:514").host(), Some("logs.example.net"));
        assert!(check(&[c]).is_empty());
    }

    #[test]
    fn every_finding_names_its_key() {
        let mut c = at("192.0.2.5");
        c.facility = "mial".into();
        c.ca = Some("/ca.pem".into());
        c.queue = 0;
        let found: Vec<String> = check(&[at("192.0.2.5:514"), c])
            .iter()
            .map(|e| e.key.clone())
            .collect();
        assert_eq!(
            found,
            [
                "log.syslog[1].address",
                "log.syslog[1].facility",
                "log.syslog[1].ca",
                "log.syslog[1].queue"
            ]
        );
        assert_eq!(at("2001:db8::5:514").host(), None);
        assert_eq!(at("x:0").host(), None);
    }
}
