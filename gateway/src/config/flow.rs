//! `[flow]`: how mail keeps flowing when next hops fail and come back — who we are among a
//! domain's MX hosts, next-hop health checks, the paced release of held mail, ETRN, delay
//! notices, what happens to expired mail, and the hop-count loop limit.
//!
//! Parsed and checked here; used by `delivery` (health, drain, secondary MX rule),
//! `smtp::inbound` (ETRN, hop count) and `queue` (notices, expiry).

use super::Span;
pub use super::cidr::Cidr;
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Flow {
    /// Our other names and addresses, besides `hostname`, as they appear in MX records: an
    /// MX host with one of these names or addresses is this gateway (RFC 5321 §5.1).
    pub our_names: Vec<String>,
    /// Period of the active check (connect, EHLO, QUIT) of every known next hop.
    pub check_interval: Span,
    /// Period of the active check of a next hop that is down or held while mail waits for
    /// it (never longer than `check_interval`): how soon a recovery is noticed.
    pub down_check_interval: Span,
    /// Consecutive failed checks or attempts before a next hop is marked down.
    pub fall: u32,
    /// Consecutive successful checks before a down next hop is marked up (a delivered
    /// message marks it up at once: that is proof enough).
    pub rise: u32,
    /// Messages per second released to a next hop that came back (0: no pacing).
    pub drain_rate: f64,
    /// Messages of a release in flight at once towards that next hop.
    pub drain_concurrency: usize,
    /// Clients allowed to use ETRN (RFC 1985): blocks or single addresses, host bits zero
    /// (`config::cidr`, [`super::cidr::Rules::BLOCK`]).
    pub etrn_networks: Vec<Cidr>,
    /// After this long undelivered, the sender gets one `delayed` DSN (0s: never).
    pub delay_notice: Span,
    /// What happens to mail still undelivered after `queue.max_lifetime`.
    pub expired: Expired,
    /// A message already carrying this many `Received` headers is refused (`554 5.4.6`).
    pub max_hops: usize,
}

/// The role of this gateway for a `[[domain]]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MxRole {
    /// The domain's main MX: delivers to the configured next hops.
    #[default]
    Primary,
    /// A backup MX: holds mail and delivers only to more-preferred MX hosts or the
    /// configured primaries, never to itself or an equal or less-preferred MX.
    Secondary,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expired {
    /// The sender gets a failure DSN (`4.4.7`) and the message is removed.
    #[default]
    Bounce,
    /// The message is held for the operator (`edgemx queue release`), no DSN.
    Hold,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            our_names: Vec::new(),
            check_interval: Span(Duration::from_secs(30)),
            down_check_interval: Span(Duration::from_secs(5)),
            fall: 2,
            rise: 2,
            drain_rate: 200.0,
            drain_concurrency: 10,
            etrn_networks: Vec::new(),
            delay_notice: Span(Duration::from_secs(4 * 3600)),
            expired: Expired::Bounce,
            // Postfix's hopcount_limit.
            max_hops: 50,
        }
    }
}

/// Semantic checks for `[flow]`; each finding is (key, value, problem).
pub fn check(flow: &mut Flow) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut add = |k: &str, v: String, p: &str| out.push((k.to_string(), v, p.to_string()));
    if flow.check_interval.0 < Duration::from_millis(100) {
        add(
            "flow.check_interval",
            flow.check_interval.to_string(),
            "must be at least 100ms",
        );
    }
    if flow.down_check_interval.0 < Duration::from_millis(100) {
        add(
            "flow.down_check_interval",
            flow.down_check_interval.to_string(),
            "must be at least 100ms",
        );
    }
    if flow.fall == 0 {
        add("flow.fall", "0".into(), "must be at least 1");
    }
    if flow.rise == 0 {
        add("flow.rise", "0".into(), "must be at least 1");
    }
    if !(flow.drain_rate.is_finite() && flow.drain_rate >= 0.0) {
        add(
            "flow.drain_rate",
            flow.drain_rate.to_string(),
            "must be a number of messages per second, 0 or more",
        );
    }
    if flow.drain_concurrency == 0 {
        add("flow.drain_concurrency", "0".into(), "must be at least 1");
    }
    if flow.max_hops == 0 {
        add("flow.max_hops", "0".into(), "must be at least 1");
    }
    for (i, name) in flow.our_names.iter_mut().enumerate() {
        *name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty()
            || name.parse::<IpAddr>().is_err() && !super::nexthop::valid_hostname(name)
        {
            add(
                &format!("flow.our_names[{i}]"),
                format!("{name:?}"),
                "not a host name or IP address",
            );
        }
    }
    out
}

/// A secondary domain's explicit next hops must not be this gateway: a listener address,
/// `hostname` or one of `flow.our_names` (the mail would loop back to us).
pub fn check_roles(config: &super::Config) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let ours = |name: &str| {
        name.eq_ignore_ascii_case(&config.hostname)
            || config
                .flow
                .our_names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
    };
    for (i, d) in config.domains.iter().enumerate() {
        if d.role != MxRole::Secondary {
            continue;
        }
        for (j, hop) in d.hops.iter().enumerate() {
            let us = match hop {
                super::NextHop::Addr(addr) => {
                    config.listeners.iter().any(|l| l.address == *addr)
                        || ours(&addr.ip().to_string())
                }
                super::NextHop::Host { name, .. } => ours(name),
                super::NextHop::Mx => false,
            };
            if us {
                out.push((
                    format!("domain[{i}].next_hops[{j}]"),
                    format!("{:?}", d.next_hops.get(j).cloned().unwrap_or_default()),
                    "is this gateway: a secondary must deliver to its primaries".into(),
                ));
            }
        }
    }
    out
}

/// The console's keys for `[flow]` (`config/keys.rs`).
impl super::Keys for Flow {
    const KEYS: &'static [super::Key] = {
        use super::{Kind, keys::key};
        &[
            key(
                "our_names",
                Kind::List("NAME|IP"),
                "our other names and addresses in MX records",
            ),
            key(
                "check_interval",
                Kind::Span,
                "active check of every known next hop",
            ),
            key(
                "down_check_interval",
                Kind::Span,
                "active check of a next hop that is down",
            ),
            key("fall", Kind::Int, "failures before a next hop is down"),
            key("rise", Kind::Int, "successes before a down next hop is up"),
            key(
                "drain_rate",
                Kind::Float,
                "messages/s released to a next hop that came back",
            ),
            key(
                "drain_concurrency",
                Kind::Int,
                "messages of a release in flight at once",
            ),
            key(
                "etrn_networks",
                Kind::List("CIDR"),
                "clients allowed to use ETRN",
            ),
            key(
                "delay_notice",
                Kind::Span,
                "one delayed DSN after this long (0s: never)",
            ),
            key(
                "expired",
                Kind::Enum(&["bounce", "hold"]),
                "mail undelivered after queue.max_lifetime",
            ),
            key("max_hops", Kind::Int, "Received headers before 554 5.4.6"),
        ]
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_secondary_may_not_name_itself_as_next_hop() {
        let text = r#"
            hostname = "mx2.example.net"
            data_dir = "/tmp/x"
            [[listener]]
            address = "127.0.0.1:2525"
            [[domain]]
            name = "a.test"
            role = "secondary"
            next_hops = ["mx", "mx2.example.net:25", "127.0.0.1:2525", "192.0.2.7:25", "mx1.example.net"]
            [flow]
            our_names = ["192.0.2.7"]
        "#;
        let errors = crate::config::Config::parse(text).unwrap_err();
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown.len(), 3, "{shown:?}");
        for j in 1..=3 {
            let key = format!("domain[0].next_hops[{j}]");
            assert!(shown.iter().any(|s| s.starts_with(&key)), "{shown:?}");
        }
        let fine = text.replace("role = \"secondary\"", "role = \"primary\"");
        assert!(crate::config::Config::parse(&fine).is_ok());
    }

    #[test]
    fn etrn_networks_take_the_allowlist_rules() {
        let base = "hostname = \"mx.test\"\ndata_dir = \"/tmp/x\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n[flow]\n";
        let config = crate::config::Config::parse(&format!(
            "{base}etrn_networks = [\"192.0.2.0/24\", \"127.0.0.1\"]\n"
        ))
        .unwrap();
        let nets = &config.flow.etrn_networks;
        assert!(nets[0].contains("::ffff:192.0.2.77".parse().unwrap()));
        assert_eq!(nets[1].prefix_len(), 32);
        for bad in ["10.0.0.0/33", "host/8", "10.1.2.3/8"] {
            let text = format!("{base}etrn_networks = [\"{bad}\"]\n");
            let errors = crate::config::Config::parse(&text).unwrap_err();
            assert!(errors[0].to_string().contains(bad), "{errors:?}");
        }
    }
}
