//! The MX preference rule of RFC 5321 §5.1 for a gateway that is itself one of the
//! domain's exchangers: only hosts *more* preferred than us may be used, never ourselves
//! and never an equal or less-preferred MX, or mail would loop between backups.
//!
//! Pure: the caller resolves the MX set and each host's addresses; this decides.

use std::collections::HashSet;
use std::net::IpAddr;

/// The names and addresses by which MX records may point at this gateway.
#[derive(Debug, Clone, Default)]
pub struct Us {
    names: HashSet<String>,
    addrs: HashSet<IpAddr>,
}

/// One MX host with its preference and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchanger {
    pub preference: u16,
    pub host: String,
    pub addrs: Vec<IpAddr>,
}

/// We are the most preferred exchanger: nothing may be used (a DNS or configuration error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeAreBest {
    /// Our own preference in the MX set.
    pub preference: u16,
    /// The MX host that is us.
    pub host: String,
}

impl Us {
    /// `hostname` plus `[flow] our_names` (host names or IP addresses).
    pub fn new(hostname: &str, others: &[String]) -> Us {
        let mut us = Us::default();
        for name in std::iter::once(hostname).chain(others.iter().map(String::as_str)) {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            match name.parse::<IpAddr>() {
                Ok(ip) => {
                    us.addrs.insert(ip);
                }
                Err(_) => {
                    us.names.insert(name);
                }
            }
        }
        us
    }

    /// True when `host` (or one of its addresses) is this gateway.
    pub fn is(&self, host: &str, addrs: &[IpAddr]) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.contains(&host) || addrs.iter().any(|a| self.addrs.contains(a))
    }
}

/// The exchangers we may deliver to, in their order. When we are among them, only those
/// strictly more preferred than our best entry remain; none left is [`WeAreBest`]. When we
/// are not among them, every one may be used (RFC 5321 §5.1).
pub fn usable(mx: Vec<Exchanger>, us: &Us) -> Result<Vec<Exchanger>, WeAreBest> {
    let ours = mx
        .iter()
        .filter(|e| us.is(&e.host, &e.addrs))
        .min_by_key(|e| e.preference)
        .map(|e| (e.preference, e.host.clone()));
    let Some((preference, host)) = ours else {
        return Ok(mx);
    };
    let better: Vec<Exchanger> = mx
        .into_iter()
        .filter(|e| e.preference < preference)
        .collect();
    if better.is_empty() {
        return Err(WeAreBest { preference, host });
    }
    Ok(better)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(preference: u16, host: &str, ip: &str) -> Exchanger {
        Exchanger {
            preference,
            host: host.into(),
            addrs: vec![ip.parse().unwrap()],
        }
    }

    #[test]
    fn a_backup_delivers_only_to_more_preferred_hosts() {
        let mx = vec![
            ex(10, "primary.test", "192.0.2.10"),
            ex(20, "mx2.us.test", "192.0.2.20"),
            ex(20, "peer.test", "192.0.2.21"),
            ex(30, "last.test", "192.0.2.30"),
        ];
        let us = Us::new("MX2.us.test.", &[]);
        assert_eq!(usable(mx.clone(), &us).unwrap(), [mx[0].clone()]);
        let stranger = Us::new("other.test", &[]);
        assert_eq!(usable(mx.clone(), &stranger).unwrap(), mx);
    }

    #[test]
    fn we_are_recognised_by_address_too() {
        let mx = vec![
            ex(10, "primary.test", "192.0.2.10"),
            ex(20, "alias-of-us.test", "192.0.2.20"),
        ];
        let us = Us::new("gw.test", &["192.0.2.20".into()]);
        assert_eq!(usable(mx.clone(), &us).unwrap(), [mx[0].clone()]);
    }

    #[test]
    fn being_the_best_or_tied_with_the_best_is_an_error_not_a_loop() {
        let mx = vec![
            ex(10, "us.test", "192.0.2.1"),
            ex(10, "twin.test", "192.0.2.2"),
            ex(20, "backup.test", "192.0.2.3"),
        ];
        let err = usable(mx, &Us::new("us.test", &[])).unwrap_err();
        assert_eq!(err.preference, 10);
        assert_eq!(err.host, "us.test");
    }
}
