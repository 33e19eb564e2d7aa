//! Domains as they appear in SMTP paths: names (RFC 5321 §4.1.2 `Domain`, with RFC 6531
//! U-labels) and address literals (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).

use super::address::AddressError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// RFC 5321 §4.5.3.1.2.
pub const MAX_DOMAIN: usize = 255;
/// RFC 1035 §2.3.4.
const MAX_LABEL: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Domain {
    /// Lowercased, without a trailing dot. ASCII LDH labels; U-labels only when the
    /// transaction carried SMTPUTF8 (lowercased with Unicode rules, not IDNA-mapped).
    Name(String),
    Literal(IpAddr),
}

impl Domain {
    /// Parses a whole domain or address literal. Non-ASCII is refused unless `smtputf8`.
    pub fn parse(s: &str, smtputf8: bool) -> Result<Domain, AddressError> {
        if !smtputf8 && !s.is_ascii() {
            return Err(AddressError::NonAscii);
        }
        if s.starts_with('[') {
            parse_literal(s)
        } else {
            parse_name(s).map(Domain::Name)
        }
    }

    pub fn is_ascii(&self) -> bool {
        match self {
            Domain::Name(n) => n.is_ascii(),
            Domain::Literal(_) => true,
        }
    }

    /// An IP address in any form: a literal, or a name whose last label is numeric, which
    /// `inet_aton`-style parsers downstream would read as an address (`127.0.0.1`,
    /// `2130706433`, `0x7f.1`). No top-level domain is numeric.
    pub fn is_ip(&self) -> bool {
        match self {
            Domain::Literal(_) => true,
            Domain::Name(n) => n
                .rsplit('.')
                .next()
                .is_some_and(|l| is_numeric_label(&fold_compat(l))),
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Name(n) => f.write_str(n),
            Domain::Literal(IpAddr::V4(a)) => write!(f, "[{a}]"),
            Domain::Literal(IpAddr::V6(a)) => write!(f, "[IPv6:{a}]"),
        }
    }
}

/// `[1.2.3.4]` or `[IPv6:…]`; general literals (`[tag:…]`) cannot be routed and are refused.
pub(super) fn parse_literal(s: &str) -> Result<Domain, AddressError> {
    let inner = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or(AddressError::Syntax("malformed address literal"))?;
    let ip = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner[5..]
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| AddressError::Syntax("invalid IPv6 literal"))?,
        _ if inner.contains(':') => return Err(AddressError::UnsupportedLiteral),
        _ => inner
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| AddressError::Syntax("invalid IPv4 literal"))?,
    };
    Ok(Domain::Literal(ip))
}

pub(super) fn parse_name(s: &str) -> Result<String, AddressError> {
    if s.len() > MAX_DOMAIN {
        return Err(AddressError::DomainTooLong);
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() {
        return Err(AddressError::Syntax("empty domain"));
    }
    for label in name.split('.') {
        check_label(label)?;
    }
    Ok(if name.is_ascii() {
        name.to_ascii_lowercase()
    } else {
        name.to_lowercase()
    })
}

fn check_label(label: &str) -> Result<(), AddressError> {
    if label.is_empty() {
        return Err(AddressError::Syntax("empty domain label"));
    }
    if label.len() > MAX_LABEL {
        return Err(AddressError::Syntax("domain label too long"));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(AddressError::Syntax("domain label starts or ends with '-'"));
    }
    if label.chars().all(label_char) {
        Ok(())
    } else {
        Err(AddressError::Syntax("invalid character in domain"))
    }
}

/// LDH for ASCII. For U-labels, any non-control, non-space character except the full stops
/// that IDNA maps to '.', which could otherwise split a label after we have checked it.
fn label_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '-'
    } else {
        !c.is_control() && !c.is_whitespace() && !matches!(c, '\u{3002}' | '\u{ff0e}' | '\u{ff61}')
    }
}

/// Maps the fullwidth and small forms of ASCII (U+FF01–U+FF5E, and U+FE57 `!`, U+FE6A `%`,
/// U+FE6B `@`) to ASCII, as NFKC or IDNA mapping downstream would: `１２７` is `127` to them.
pub(super) fn fold_compat(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
            '\u{fe57}' => '!',
            '\u{fe6a}' => '%',
            '\u{fe6b}' => '@',
            _ => c,
        })
        .collect()
}

fn is_numeric_label(label: &str) -> bool {
    let hex = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"));
    match hex {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Domain {
        Domain::Name(s.into())
    }

    #[test]
    fn names_are_lowercased_and_lose_the_trailing_dot() {
        assert_eq!(
            Domain::parse("Mail.Example.COM.", false),
            Ok(name("mail.example.com"))
        );
        assert_eq!(Domain::parse("localhost", false), Ok(name("localhost")));
        assert_eq!(Domain::parse("a-b.c1", false), Ok(name("a-b.c1")));
    }

    #[test]
    fn malformed_names_are_refused() {
        for bad in [
            "", ".", "a..b", ".a", "-a.b", "a-.b", "a_b.c", "a b", "a..", "é.com",
        ] {
            assert!(Domain::parse(bad, false).is_err(), "{bad:?}");
        }
        assert!(Domain::parse(&format!("{}.com", "a".repeat(64)), false).is_err());
        let long = ["abcdefghi"; 26].join(".");
        assert_eq!(
            Domain::parse(&long, false),
            Err(AddressError::DomainTooLong)
        );
    }

    #[test]
    fn u_labels_need_smtputf8() {
        assert_eq!(
            Domain::parse("BÜCHER.example", false),
            Err(AddressError::NonAscii)
        );
        assert_eq!(
            Domain::parse("BÜCHER.example", true),
            Ok(name("bücher.example"))
        );
        assert!(Domain::parse("evil\u{3002}com", true).is_err());
        assert!(Domain::parse("a\u{85}b.com", true).is_err());
    }

    #[test]
    fn literals() {
        assert_eq!(
            Domain::parse("[192.0.2.1]", false).map(|d| d.to_string()),
            Ok("[192.0.2.1]".into())
        );
        let v6 = Domain::parse("[ipv6:2001:DB8::1]", false);
        assert_eq!(v6.map(|d| d.to_string()), Ok("[IPv6:2001:db8::1]".into()));
        assert_eq!(
            Domain::parse("[x-tag:abc]", false),
            Err(AddressError::UnsupportedLiteral)
        );
        for bad in ["[1.2.3]", "[01.2.3.4]", "[IPv6:1.2.3.4]", "[1.2.3.4", "[]"] {
            assert!(Domain::parse(bad, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn numeric_names_count_as_ip() {
        for ip in ["127.0.0.1", "2130706433", "0x7f.1", "a.0X7F", "[10.0.0.1]"] {
            assert!(Domain::parse(ip, false).is_ok_and(|d| d.is_ip()), "{ip}");
        }
        assert!(!name("example.com").is_ip());
        assert!(!name("123.example").is_ip());
        assert!(
            Domain::parse("\u{ff11}\u{ff12}\u{ff17}.0.0.\u{ff11}", true).is_ok_and(|d| d.is_ip())
        );
    }
}
