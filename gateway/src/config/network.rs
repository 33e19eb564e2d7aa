//! `[network]`: the appliance's own network settings (interface, DHCP or static address,
//! default gateway, DNS servers, time servers). The gateway only validates them and keeps them with its
//! revisions, so that a commit, a rollback and `commit confirmed` cover the network too;
//! init applies them (see `init::net`).

use super::ConfigError;
use super::cidr::{Cidr, CidrError, Rules};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// `auto` (the first Ethernet interface) or a kernel name such as `eth1`.
    #[serde(default = "auto")]
    pub interface: String,
    #[serde(default)]
    pub mode: NetMode,
    /// `A.B.C.D/N`, for `mode = "static"`: the prefix length is required
    /// ([`Rules::INTERFACE`]); read it with [`Network::static_address`].
    pub address: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers, IPv4 or IPv6 (added to what DHCP and router advertisements give).
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// SNTP servers init keeps the clock with, tried in order; empty: those from DHCP
    /// (option 42). Addresses only: init has no resolver. Read with [`Network::ntp_servers`].
    #[serde(default)]
    pub ntp: Vec<String>,
    /// `auto` (SLAAC and DNS from router advertisements), `static` (`address6`) or `off`.
    #[serde(default)]
    pub ipv6: Ipv6Mode,
    /// `2001:db8::10/64`: required with `ipv6 = "static"`, an extra address with `auto`.
    pub address6: Option<String>,
    /// The IPv6 default router (`fe80::1` or a global address); with `auto` the router
    /// advertisements give it.
    pub gateway6: Option<Ipv6Addr>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ipv6Mode {
    #[default]
    Auto,
    Static,
    Off,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    #[default]
    Dhcp,
    Static,
}

fn auto() -> String {
    "auto".into()
}

impl Default for Network {
    fn default() -> Self {
        Network {
            interface: auto(),
            mode: NetMode::Dhcp,
            address: None,
            gateway: None,
            dns: Vec::new(),
            ipv6: Ipv6Mode::Auto,
            address6: None,
            gateway6: None,
            ntp: Vec::new(),
        }
    }
}

/// Why `network.address` is not an address init can configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("{0}")]
    Cidr(#[from] CidrError),
    /// init configures IPv4 only (`init::netif`).
    #[error("not an IPv4 address with prefix, A.B.C.D/N")]
    NotIpv4,
}

impl Network {
    /// `address` as an IPv4 address and the prefix length of its network; `None` when
    /// it is not set. The one reading of the key, for `check`, init and the wizard.
    pub fn static_address(&self) -> Option<Result<(Ipv4Addr, u8), AddressError>> {
        self.address.as_deref().map(parse_address)
    }
}

impl Network {
    /// `address6` as an IPv6 address and prefix length; `None` when it is not set.
    pub fn static_address6(&self) -> Option<Result<(Ipv6Addr, u8), String>> {
        self.address6.as_deref().map(parse_address6)
    }
}

/// `2001:db8::10/64` by [`Rules::INTERFACE`]: the prefix length is required.
pub fn parse_address6(text: &str) -> Result<(Ipv6Addr, u8), String> {
    let cidr = Cidr::parse(text, Rules::INTERFACE).map_err(|e| e.to_string())?;
    match (cidr.addr(), cidr.prefix_len()) {
        (IpAddr::V6(v6), prefix) => Ok((v6, prefix)),
        _ => Err("not an IPv6 address with prefix, 2001:db8::10/64".into()),
    }
}

/// A time server: `192.0.2.123`, `2001:db8::123`, or with a port, `192.0.2.123:10123`
/// and `[2001:db8::123]:10123`. Names are refused: init, which asks them, has no resolver.
pub fn parse_ntp_server(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, crate::time::sntp::PORT))
    })
}

impl Network {
    /// The configured time servers that parse (`check` reports the others).
    pub fn ntp_servers(&self) -> Vec<SocketAddr> {
        self.ntp
            .iter()
            .filter_map(|s| parse_ntp_server(s))
            .collect()
    }
}

/// `A.B.C.D/N` by [`Rules::INTERFACE`]: a bare address is refused, host bits are the address.
pub fn parse_address(text: &str) -> Result<(Ipv4Addr, u8), AddressError> {
    Cidr::parse(text, Rules::INTERFACE)?
        .v4()
        .ok_or(AddressError::NotIpv4)
}

pub fn check(network: &Network) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let mut add = |key: &str, value: &str, problem: &str| {
        out.push(ConfigError {
            key: key.into(),
            value: value.into(),
            problem: problem.into(),
        })
    };
    if network.interface.is_empty() || network.interface.contains(['/', ' ']) {
        add(
            "network.interface",
            &network.interface,
            "not an interface name",
        );
    }
    match (network.mode, network.static_address()) {
        (NetMode::Static, None) => add(
            "network.address",
            "",
            "required with mode = \"static\" (A.B.C.D/N)",
        ),
        (_, Some(Err(e))) => add(
            "network.address",
            network.address.as_deref().unwrap_or_default(),
            &e.to_string(),
        ),
        _ => {}
    }
    match (network.ipv6, network.static_address6()) {
        (Ipv6Mode::Static, None) => add(
            "network.address6",
            "",
            "required with ipv6 = \"static\" (2001:db8::10/64)",
        ),
        (_, Some(Err(e))) => add(
            "network.address6",
            network.address6.as_deref().unwrap_or_default(),
            &e,
        ),
        (Ipv6Mode::Off, Some(Ok(_))) => add(
            "network.address6",
            network.address6.as_deref().unwrap_or_default(),
            "set with ipv6 = \"off\"; remove it or turn IPv6 on",
        ),
        _ => {}
    }
    for server in &network.ntp {
        if parse_ntp_server(server).is_none() {
            add(
                "network.ntp",
                server,
                "not an address (A.B.C.D, an IPv6 address, or either with :PORT); \
                 names cannot be used, init has no resolver",
            );
        }
    }
    out
}

/// The console's keys for `[network]` (`config/keys.rs`).
impl super::Keys for Network {
    const KEYS: &'static [super::Key] = {
        use super::{Kind, keys::key};
        &[
            key(
                "interface",
                Kind::Str("NAME"),
                "auto, or a kernel name such as eth1",
            ),
            key(
                "mode",
                Kind::Enum(&["dhcp", "static"]),
                "DHCP or a static address",
            ),
            key(
                "address",
                Kind::Str("A.B.C.D/N"),
                "static address with prefix length",
            ),
            key("gateway", Kind::Str("A.B.C.D"), "default gateway"),
            key("dns", Kind::List("IP"), "DNS servers (IPv4 or IPv6)"),
            key(
                "ipv6",
                Kind::Enum(&["auto", "static", "off"]),
                "auto: SLAAC and DNS from router advertisements",
            ),
            key(
                "address6",
                Kind::Str("IPV6/N"),
                "static IPv6 address with prefix length",
            ),
            key("gateway6", Kind::Str("IPV6"), "IPv6 default router"),
            key(
                "ntp",
                Kind::List("ADDRESS[:PORT]"),
                "time servers (SNTP); empty: from DHCP",
            ),
        ]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn static_at(address: &str) -> Network {
        Network {
            mode: NetMode::Static,
            address: Some(address.into()),
            ..Network::default()
        }
    }

    #[test]
    fn a_static_address_needs_its_prefix_length() {
        assert_eq!(
            static_at("192.0.2.10/24").static_address(),
            Some(Ok((Ipv4Addr::new(192, 0, 2, 10), 24)))
        );
        assert!(check(&static_at("192.0.2.10/24")).is_empty());
        let found = check(&static_at("192.0.2.10"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].to_string(),
            "network.address = 192.0.2.10: the prefix length is missing; write it as 192.0.2.10/24"
        );
    }

    #[test]
    fn a_static_address_is_ipv4_within_32_bits() {
        for bad in ["2001:db8::10/64", "192.0.2.10/33", "192.0.2.300/24"] {
            let found = check(&static_at(bad));
            assert_eq!(found.len(), 1, "{bad}: {found:?}");
            assert!(
                found[0]
                    .to_string()
                    .starts_with(&format!("network.address = {bad}: "))
            );
        }
        assert_eq!(parse_address("2001:db8::10/64"), Err(AddressError::NotIpv4));
        let missing = Network {
            mode: NetMode::Static,
            ..Network::default()
        };
        assert!(check(&missing)[0].to_string().contains("required"));
    }

    #[test]
    fn time_servers_are_addresses_with_an_optional_port() {
        let network = Network {
            ntp: vec![
                "192.0.2.123".into(),
                "[2001:db8::123]:10123".into(),
                "ntp.example.net".into(),
            ],
            ..Network::default()
        };
        assert_eq!(
            network.ntp_servers(),
            [
                "192.0.2.123:123".parse::<SocketAddr>().unwrap(),
                "[2001:db8::123]:10123".parse().unwrap()
            ]
        );
        let found = check(&network);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .to_string()
                .starts_with("network.ntp = ntp.example.net: not an address"),
            "{}",
            found[0]
        );
    }
}

#[cfg(test)]
mod ipv6_tests {
    use super::*;

    #[test]
    fn ipv6_static_needs_an_address_with_prefix_and_off_refuses_one() {
        let net = |mode: Ipv6Mode, address6: Option<&str>| Network {
            ipv6: mode,
            address6: address6.map(str::to_string),
            ..Network::default()
        };
        assert!(check(&net(Ipv6Mode::Auto, None)).is_empty());
        assert!(check(&net(Ipv6Mode::Static, Some("2001:db8::10/64"))).is_empty());
        assert_eq!(
            net(Ipv6Mode::Static, Some("2001:db8::10/64")).static_address6(),
            Some(Ok(("2001:db8::10".parse().unwrap(), 64)))
        );
        for (mode, address, problem) in [
            (Ipv6Mode::Static, None, "required"),
            (Ipv6Mode::Auto, Some("192.0.2.1/24"), "not an IPv6 address"),
            (
                Ipv6Mode::Auto,
                Some("2001:db8::10"),
                "prefix length is missing",
            ),
            (Ipv6Mode::Off, Some("2001:db8::10/64"), "ipv6 = \"off\""),
        ] {
            let found = check(&net(mode, address));
            assert_eq!(found.len(), 1, "{address:?}: {found:?}");
            assert!(found[0].key == "network.address6", "{found:?}");
            assert!(found[0].problem.contains(problem), "{found:?}");
        }
    }
}
