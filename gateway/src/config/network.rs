//! `[network]`: the appliance's own network settings (interface, DHCP or static address,
//! default gateway, DNS servers). The gateway only validates them and keeps them with its
//! revisions, so that a commit, a rollback and `commit confirmed` cover the network too;
//! init applies them (see `init::net`).

use super::ConfigError;
use serde::Deserialize;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// `auto` (the first Ethernet interface) or a kernel name such as `eth1`.
    #[serde(default = "auto")]
    pub interface: String,
    #[serde(default)]
    pub mode: NetMode,
    /// `A.B.C.D/N`, for `mode = "static"`.
    pub address: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
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

/// `A.B.C.D/N` → address and prefix length.
pub fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = text.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((ip.parse().ok()?, len))
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
    match (&network.mode, &network.address) {
        (NetMode::Static, None) => add(
            "network.address",
            "",
            "required with mode = \"static\" (A.B.C.D/N)",
        ),
        (_, Some(a)) if parse_cidr(a).is_none() => add(
            "network.address",
            a,
            "not an IPv4 address with prefix, A.B.C.D/N",
        ),
        _ => {}
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
            key("dns", Kind::List("A.B.C.D"), "DNS servers"),
        ]
    };
}
