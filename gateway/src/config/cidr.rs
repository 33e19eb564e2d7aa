//! Address blocks and interface addresses (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.10/24`):
//! one type on `ipnet` and one parser, used by the configuration, init, the console wizard
//! and the SPF audit.
//!
//! # The rules
//!
//! The text is `ADDRESS/LEN`, or a bare `ADDRESS` where the caller's [`Rules`] allow it.
//! `ADDRESS` is an IPv4 or IPv6 address as `std` parses it, `LEN` decimal digits from 0 to
//! 32 (IPv4) or 128 (IPv6); blanks around the whole text are ignored. Two things differ by
//! what the text is for, and each caller says which it wants:
//!
//! | rules | bare address | host bits set | used for |
//! | --- | --- | --- | --- |
//! | [`Rules::BLOCK`] | a host route (/32, /128) | refused | `relay.networks`, `auth.trusted_relays`, `flow.etrn_networks` |
//! | [`Rules::INTERFACE`] | refused | they are the address | `network.address` (config, init, wizard) |
//! | [`Rules::SPF`] | a host route | ignored when matching | SPF `ip4:`/`ip6:` (RFC 7208 §5.6) |
//!
//! Why: an allowlist entry `10.1.2.3/8` is more often a typo than a wish to let all of
//! 10/8 relay, so it is refused with the block it would have meant, while one address is a
//! common and unambiguous entry. An interface address needs its prefix length, which says
//! which hosts are on the link: guessing one (init once took a bare address as /24) would
//! configure a network nobody wrote down. SPF is not ours to tighten: RFC 7208 §5.6 makes
//! a missing length /32 (/128) and compares only the first LEN bits, and a record we audit
//! is valid or not by the RFC alone.
//!
//! Matching ([`Cidr::contains`]) compares an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, a
//! v4 client on a dual-stack socket) as the IPv4 address it is. A block written in mapped
//! form is kept as written and so matches no client: write it as IPv4.

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, de};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// An address with a prefix length. With [`Rules::BLOCK`] its host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

/// How [`Cidr::parse`] treats the two cases the uses disagree on (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub bare: Bare,
    pub host_bits: HostBits,
}

/// What a bare address (no `/LEN`) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bare {
    /// One host: /32 or /128.
    HostRoute,
    /// Refused: the prefix length is required.
    Refuse,
}

/// What bits set past the prefix length mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostBits {
    /// Refused, naming the block the text would mean.
    Refuse,
    /// Kept: they are an interface's address, or (SPF) do not take part in matching.
    Keep,
}

impl Rules {
    /// Allowlist entries in the configuration.
    pub const BLOCK: Rules = Rules {
        bare: Bare::HostRoute,
        host_bits: HostBits::Refuse,
    };
    /// The appliance's own address with the prefix length of its network.
    pub const INTERFACE: Rules = Rules {
        bare: Bare::Refuse,
        host_bits: HostBits::Keep,
    };
    /// The argument of SPF's `ip4` and `ip6` mechanisms (RFC 7208 §5.6).
    pub const SPF: Rules = Rules {
        bare: Bare::HostRoute,
        host_bits: HostBits::Keep,
    };
}

/// Why a text is not a [`Cidr`] under the rules it was parsed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidrError {
    /// Not an address, or the length is not decimal digits.
    Malformed(Rules),
    /// A bare address where the prefix length is required.
    NoPrefix,
    /// A prefix length beyond the address family's, `max` (32 or 128).
    PrefixTooLong { max: u8 },
    /// Bits set past the prefix length; `0` is the block the text would mean.
    HostBits(Cidr),
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            CidrError::Malformed(rules) if rules.bare == Bare::HostRoute => {
                f.write_str("not a network (`10.0.0.0/8`, `2001:db8::/32`) or address")
            }
            CidrError::Malformed(_) => {
                f.write_str("not an address with prefix length; write it as 192.0.2.10/24")
            }
            CidrError::NoPrefix => {
                f.write_str("the prefix length is missing; write it as 192.0.2.10/24")
            }
            CidrError::PrefixTooLong { max } => {
                write!(f, "not a network: the prefix length is at most {max}")
            }
            CidrError::HostBits(block) => write!(f, "host bits set; did you mean {block}?"),
        }
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// Parses `text` by the one set of rules, with the caller's choices for a bare address
    /// and for host bits.
    pub fn parse(text: &str, rules: Rules) -> Result<Cidr, CidrError> {
        let text = text.trim();
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::Malformed(rules))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None if rules.bare == Bare::Refuse => return Err(CidrError::NoPrefix),
            None => max,
            // Digits only: `u8::from_str` would also take `+8`.
            Some(len) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => {
                match len.parse() {
                    Ok(len) if len <= max => len,
                    _ => return Err(CidrError::PrefixTooLong { max }),
                }
            }
            Some(_) => return Err(CidrError::Malformed(rules)),
        };
        let cidr = Cidr::new(addr, len).ok_or(CidrError::Malformed(rules))?;
        if rules.host_bits == HostBits::Refuse && cidr.0.trunc() != cidr.0 {
            return Err(CidrError::HostBits(Cidr(cidr.0.trunc())));
        }
        Ok(cidr)
    }

    /// `addr/len`, host bits kept; `None` when `len` is beyond the family's maximum.
    pub fn new(addr: IpAddr, len: u8) -> Option<Cidr> {
        IpNet::new(addr, len).ok().map(Cidr)
    }

    /// Whether `ip` lies in this block; an IPv4-mapped IPv6 address counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }

    /// The address as written (with [`Rules::BLOCK`], the first address of the block).
    pub fn addr(&self) -> IpAddr {
        self.0.addr()
    }

    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }

    /// The IPv4 address and prefix length, for an IPv4 block.
    pub fn v4(&self) -> Option<(Ipv4Addr, u8)> {
        match self.0 {
            IpNet::V4(net) => Some((net.addr(), net.prefix_len())),
            IpNet::V6(_) => None,
        }
    }

    pub fn net(&self) -> IpNet {
        self.0
    }
}

/// With [`Rules::BLOCK`], the rules of every allowlist in the configuration.
impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        Cidr::parse(text, Rules::BLOCK)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// From a string, with [`Rules::BLOCK`].
impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e: CidrError| de::Error::custom(format!("`{text}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_parse_in_v4_and_v6() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.255.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        let net: Cidr = " 2001:db8::/32 ".parse().unwrap();
        assert_eq!(net.prefix_len(), 32);
        assert!(net.contains(ip("2001:db8:ffff::1")));
        assert!(!net.contains(ip("2001:db9::1")));
        let all: Cidr = "::/0".parse().unwrap();
        assert!(all.contains(ip("2001:db8::1")));
        assert!(
            !all.contains(ip("192.0.2.1")),
            "an IPv4 client is not in ::/0"
        );
    }

    #[test]
    fn a_mapped_client_address_matches_as_ipv4() {
        let net: Cidr = "192.0.2.0/24".parse().unwrap();
        assert!(net.contains(ip("::ffff:192.0.2.1")));
        assert!(!net.contains(ip("::ffff:192.0.3.1")));
        // A real IPv6 address whose low bits happen to look like the block is not in it.
        assert!(!net.contains(ip("2001:db8::c000:201")));
    }

    #[test]
    fn a_bare_address_is_a_host_route_in_an_allowlist_and_in_spf() {
        for rules in [Rules::BLOCK, Rules::SPF] {
            let one = Cidr::parse("192.0.2.7", rules).unwrap();
            assert_eq!(one.to_string(), "192.0.2.7/32");
            assert!(one.contains(ip("192.0.2.7")));
            assert!(!one.contains(ip("192.0.2.8")));
            assert_eq!(Cidr::parse("::1", rules).unwrap().prefix_len(), 128);
        }
    }

    #[test]
    fn a_bare_address_is_refused_as_an_interface_address() {
        let e = Cidr::parse("192.0.2.10", Rules::INTERFACE).unwrap_err();
        assert_eq!(e, CidrError::NoPrefix);
        assert!(e.to_string().contains("prefix length is missing"), "{e}");
        let with = Cidr::parse("192.0.2.10/24", Rules::INTERFACE).unwrap();
        assert_eq!(with.v4(), Some((Ipv4Addr::new(192, 0, 2, 10), 24)));
    }

    #[test]
    fn prefix_lengths_beyond_the_family_are_refused() {
        for rules in [Rules::BLOCK, Rules::INTERFACE, Rules::SPF] {
            let e = Cidr::parse("10.0.0.0/33", rules).unwrap_err();
            assert_eq!(e, CidrError::PrefixTooLong { max: 32 });
            assert!(e.to_string().starts_with("not a network"), "{e}");
            let e = Cidr::parse("2001:db8::/129", rules).unwrap_err();
            assert_eq!(e, CidrError::PrefixTooLong { max: 128 });
            let e = Cidr::parse("10.0.0.0/99999", rules).unwrap_err();
            assert_eq!(e, CidrError::PrefixTooLong { max: 32 });
        }
        assert!(Cidr::parse("10.0.0.0/32", Rules::BLOCK).is_ok());
        assert!(Cidr::parse("::/128", Rules::BLOCK).is_ok());
    }

    #[test]
    fn host_bits_are_refused_in_blocks_and_kept_otherwise() {
        let e = Cidr::parse("10.1.2.3/8", Rules::BLOCK).unwrap_err();
        assert_eq!(e.to_string(), "host bits set; did you mean 10.0.0.0/8?");
        let e = Cidr::parse("2001:db8::1/32", Rules::BLOCK).unwrap_err();
        assert!(e.to_string().contains("2001:db8::/32"), "{e}");
        let kept = Cidr::parse("10.1.2.3/8", Rules::INTERFACE).unwrap();
        assert_eq!(kept.to_string(), "10.1.2.3/8");
        let spf = Cidr::parse("192.0.2.1/24", Rules::SPF).unwrap();
        assert!(spf.contains(ip("192.0.2.200")));
        assert!(!spf.contains(ip("192.0.3.1")));
    }

    #[test]
    fn malformed_text_is_refused_with_the_form_expected() {
        for text in [
            "example.com",
            "host/8",
            "300.1.1.1",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "/8",
            "",
        ] {
            assert!(Cidr::parse(text, Rules::BLOCK).is_err(), "{text}");
            assert!(Cidr::parse(text, Rules::INTERFACE).is_err(), "{text}");
        }
        let e = Cidr::parse("300.1.1.1", Rules::BLOCK).unwrap_err();
        assert!(e.to_string().starts_with("not a network"), "{e}");
        let e = Cidr::parse("10.0.0.300/24", Rules::INTERFACE).unwrap_err();
        assert!(e.to_string().contains("write it as 192.0.2.10/24"), "{e}");
    }

    #[test]
    fn deserializing_applies_the_block_rules_and_names_the_text() {
        #[derive(Deserialize)]
        struct T {
            n: Vec<Cidr>,
        }
        let t: T = toml::from_str("n = [\"10.0.0.0/8\", \"::1\"]").unwrap();
        assert_eq!(t.n[1].to_string(), "::1/128");
        let e = toml::from_str::<T>("n = [\"10.1.0.0/8\"]").err().unwrap();
        assert!(e.message().contains("`10.1.0.0/8`: host bits set"), "{e}");
    }
}
