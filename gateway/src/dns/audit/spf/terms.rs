//! SPF record syntax (RFC 7208 §4.6, §5): terms, networks, qualifiers.
//!
//! Networks are the configuration's [`Cidr`] with SPF's own rules ([`Rules::SPF`]): a
//! missing length is /32 or /128 and host bits are ignored (RFC 7208 §5.6), where the
//! configuration refuses them; a client's IPv4-mapped address is compared as IPv4 (§5).

use crate::config::cidr::{Cidr, Rules};
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// Qualifier (`+ - ~ ?`), mechanism name, argument after `:` or `/`.
    Mechanism(char, String, Option<String>),
    Modifier(String, String),
}
/// The terms after `v=spf1`; an unknown mechanism or a malformed term is an error.
pub fn parse(record: &str) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    for word in record.split_ascii_whitespace().skip(1) {
        if let Some((name, value)) = word.split_once('=')
            && !name.contains(':')
            && !name.contains('/')
        {
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                || name.is_empty()
            {
                return Err(format!("`{word}` is not a valid modifier"));
            }
            terms.push(Term::Modifier(name.to_ascii_lowercase(), value.to_owned()));
            continue;
        }
        let (qualifier, rest) = match word.chars().next() {
            Some(q @ ('+' | '-' | '~' | '?')) => (q, &word[1..]),
            _ => ('+', word),
        };
        let split = rest.find([':', '/']).unwrap_or(rest.len());
        let (name, arg) = (rest[..split].to_ascii_lowercase(), &rest[split..]);
        let arg = arg.strip_prefix(':').unwrap_or(arg);
        let arg = (!arg.is_empty()).then(|| arg.to_owned());
        let ok = match name.as_str() {
            "all" => arg.is_none(),
            "include" | "exists" => arg.is_some(),
            "a" | "mx" | "ptr" => true,
            "ip4" => arg
                .as_deref()
                .is_some_and(|a| cidr(a).is_some_and(|net| net.addr().is_ipv4())),
            "ip6" => arg
                .as_deref()
                .is_some_and(|a| cidr(a).is_some_and(|net| net.addr().is_ipv6())),
            _ => return Err(format!("`{word}`: unknown mechanism `{name}`")),
        };
        if !ok {
            return Err(format!("`{word}`: malformed `{name}` mechanism"));
        }
        terms.push(Term::Mechanism(qualifier, name, arg));
    }
    Ok(terms)
}

/// The argument of `ip4:` or `ip6:`.
pub fn cidr(text: &str) -> Option<Cidr> {
    Cidr::parse(text, Rules::SPF).ok()
}

/// Whether `ip` is in `net/len`; a length beyond the family's (`a/40`) matches nothing.
pub fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    Cidr::new(net, len).is_some_and(|net| net.contains(ip))
}

pub fn name_of(qualifier: char) -> &'static str {
    match qualifier {
        '+' => "pass",
        '-' => "fail",
        '~' => "softfail",
        _ => "neutral",
    }
}

/// `a`/`mx` argument: optional domain, optional `/v4len` and `//v6len`.
pub fn host_and_len(arg: Option<&str>, domain: &str, ip: IpAddr) -> (String, u8) {
    let arg = arg.unwrap_or("");
    let (host, lens) = arg.split_once('/').map_or((arg, ""), |(h, l)| (h, l));
    let (v4, v6) = lens.split_once("//").map_or((lens, ""), |(a, b)| (a, b));
    let host = if host.is_empty() { domain } else { host };
    let len = if ip.is_ipv4() {
        v4.parse().unwrap_or(32)
    } else {
        v6.parse().unwrap_or(128)
    };
    (host.to_owned(), len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_parse_and_unknown_mechanisms_are_errors() {
        let terms =
            parse("v=spf1 ip4:192.0.2.0/24 include:_spf.x.test ~all redirect=y.test").unwrap();
        assert_eq!(
            terms[0],
            Term::Mechanism('+', "ip4".into(), Some("192.0.2.0/24".into()))
        );
        assert_eq!(terms[2], Term::Mechanism('~', "all".into(), None));
        assert_eq!(terms[3], Term::Modifier("redirect".into(), "y.test".into()));
        assert!(parse("v=spf1 ip5:1.2.3.4 -all").is_err());
        assert!(parse("v=spf1 ip4:300.1.1.1 -all").is_err());
        assert!(parse("v=spf1 include -all").is_err());
        assert!(parse("v=spf1 ip4:192.0.2.1/24 ip6:2001:db8::1 -all").is_ok());
        assert!(parse("v=spf1 ip4:192.0.2.0/33 -all").is_err());
        assert!(parse("v=spf1 ip4:2001:db8::1 -all").is_err());
        assert!(parse("v=spf1 ip6:192.0.2.1 -all").is_err());
    }

    #[test]
    fn networks_match_by_prefix() {
        let ip: IpAddr = "192.0.2.77".parse().unwrap();
        assert!(in_net(ip, "192.0.2.0".parse().unwrap(), 24));
        assert!(!in_net(ip, "192.0.3.0".parse().unwrap(), 24));
        assert!(in_net(ip, "10.0.0.0".parse().unwrap(), 0));
        assert!(in_net(
            "::ffff:192.0.2.1".parse().unwrap(),
            "192.0.2.0".parse().unwrap(),
            24
        ));
        // Was a shift by 32 - 40: a panic, or in release a mask of zero that matched all.
        assert!(!in_net(ip, "10.0.0.0".parse().unwrap(), 40));
        assert_eq!(
            host_and_len(Some("/24"), "d.test", ip),
            ("d.test".into(), 24)
        );
    }
}
