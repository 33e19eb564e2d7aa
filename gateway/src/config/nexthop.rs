//! Next-hop syntax: `mx`, `host`, `host:port`, `ip:port` and `[ipv6]:port`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Look up the recipient domain's MX records.
    Mx,
    /// A host name resolved with our resolver at delivery time.
    Host {
        name: String,
        port: u16,
    },
    Addr(SocketAddr),
}

impl NextHop {
    pub fn parse(text: &str) -> Result<NextHop, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("mx") {
            return Ok(NextHop::Mx);
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(NextHop::Addr(addr));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(NextHop::Addr(SocketAddr::new(ip, 25)));
        }
        let (name, port) = match text.rsplit_once(':') {
            Some((name, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("port `{port}` is not a number from 1 to 65535"))?;
                (name, port)
            }
            None => (text, 25),
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !valid_hostname(&name) {
            return Err("not `mx`, a host name, or an IP address with optional :port".into());
        }
        Ok(NextHop::Host { name, port })
    }
}

pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            NextHop::Mx => f.write_str("mx"),
            NextHop::Host { name, port } => write!(f, "{name}:{port}"),
            NextHop::Addr(addr) => write!(f, "{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_next_hop_form_parses() {
        assert_eq!(NextHop::parse("MX"), Ok(NextHop::Mx));
        assert_eq!(
            NextHop::parse("10.1.2.3:25"),
            Ok(NextHop::Addr("10.1.2.3:25".parse().unwrap()))
        );
        assert_eq!(
            NextHop::parse("[::1]:2525"),
            Ok(NextHop::Addr("[::1]:2525".parse().unwrap()))
        );
        assert_eq!(
            NextHop::parse("Backup.Example.NET:587"),
            Ok(NextHop::Host {
                name: "backup.example.net".into(),
                port: 587
            })
        );
        assert_eq!(
            NextHop::parse("relay.example.net"),
            Ok(NextHop::Host {
                name: "relay.example.net".into(),
                port: 25
            })
        );
    }

    #[test]
    fn malformed_next_hops_are_refused() {
        for bad in [
            "",
            "host:0",
            "host:99999",
            "bad_host:25",
            "-x.example:25",
            "a..b",
        ] {
            assert!(NextHop::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
