use super::*;
use std::net::IpAddr;

fn rcpt(s: &str) -> Result<ForwardPath, AddressError> {
    parse_forward_path(s, false).map(|(p, _)| p)
}

fn mailbox(local: &str, domain: &str) -> Mailbox {
    Mailbox {
        local: local.into(),
        domain: Domain::Name(domain.into()),
        quoted_local: false,
    }
}

#[test]
fn plain_forward_path() {
    let (path, rest) = parse_forward_path("<User.Name+tag@Example.COM> NOTIFY=NEVER", false)
        .unwrap_or((ForwardPath::Postmaster, ""));
    assert_eq!(
        path.mailbox(),
        Some(&mailbox("User.Name+tag", "example.com"))
    );
    assert_eq!(rest, " NOTIFY=NEVER");
    assert_eq!(path.relay_hack(), None);
}

#[test]
fn null_reverse_path() {
    assert_eq!(parse_reverse_path("<>", false), Ok((ReversePath::Null, "")));
    assert!(rcpt("<>").is_err());
}

#[test]
fn postmaster_without_domain() {
    assert_eq!(rcpt("<POSTMASTER>"), Ok(ForwardPath::Postmaster));
    assert_eq!(rcpt("<postmaster>"), Ok(ForwardPath::Postmaster));
    assert!(parse_reverse_path("<Postmaster>", false).is_err());
    let with_domain = rcpt("<postmaster@example.com>");
    assert_eq!(
        with_domain.ok().and_then(|p| p.mailbox().cloned()),
        Some(mailbox("postmaster", "example.com"))
    );
}

#[test]
fn quoted_local_part_is_decoded_and_requoted() {
    let path = rcpt(r#"<"john \"j\" doe"@example.com>"#);
    let mb = path.ok().and_then(|p| p.mailbox().cloned());
    assert_eq!(
        mb.as_ref().map(|m| m.local.as_str()),
        Some(r#"john "j" doe"#)
    );
    assert_eq!(
        mb.map(|m| m.to_string()),
        Some(r#""john \"j\" doe"@example.com"#.to_string())
    );
}

#[test]
fn quoted_local_part_may_contain_a_closing_bracket() {
    let path = rcpt(r#"<"a>b"@example.com>"#);
    assert_eq!(
        path.ok().and_then(|p| p.mailbox().map(|m| m.local.clone())),
        Some("a>b".into())
    );
}

#[test]
fn source_route_is_parsed_and_flagged() {
    let path = rcpt("<@relay.example,@[192.0.2.1]:user@example.com>");
    assert_eq!(
        path.as_ref().map(ForwardPath::relay_hack),
        Ok(Some(RelayHack::SourceRoute))
    );
    let (from, _) =
        parse_reverse_path("<@a.example:u@b.example>", false).unwrap_or((ReversePath::Null, ""));
    assert_eq!(from.mailbox(), Some(&mailbox("u", "b.example")));
}

#[test]
fn malformed_paths_are_refused() {
    for bad in [
        "user@example.com",
        "<user@example.com",
        "<user>",
        "<@example.com>",
        "<user@>",
        "<.user@example.com>",
        "<user.@example.com>",
        "<us..er@example.com>",
        "<us er@example.com>",
        "<\"\"@example.com>",
        "<\"unterminated@example.com>",
        "<\"a\tb\"@example.com>",
        "<user@exa_mple.com>",
        "<user@@example.com>",
        "<user@example.com@evil.com>",
        "<@a.example user@b.example>",
        "<@a.example,b.example:user@c.example>",
        "<user@[300.1.1.1]>",
        "<user@[tag:x]>",
        "< user@example.com>",
        "<user@example.com >",
    ] {
        assert!(rcpt(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn length_limits() {
    let local = "a".repeat(64);
    assert!(rcpt(&format!("<{local}@example.com>")).is_ok());
    assert_eq!(
        rcpt(&format!("<a{local}@example.com>")),
        Err(AddressError::LocalTooLong)
    );
    let domain = ["abcdefghi"; 24].join(".");
    assert!(rcpt(&format!("<u@{domain}>")).is_ok());
    let long = format!("<{local}@{domain}>");
    assert_eq!(rcpt(&long), Err(AddressError::PathTooLong));
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let s = "<jöran@bücher.example>";
    assert_eq!(rcpt(s), Err(AddressError::NonAscii));
    let path = parse_forward_path(s, true).map(|(p, _)| p);
    let mb = path.ok().and_then(|p| p.mailbox().cloned());
    assert_eq!(
        mb.as_ref().map(|m| m.to_string()),
        Some("jöran@bücher.example".into())
    );
    assert_eq!(mb.map(|m| m.is_ascii()), Some(false));
    assert_eq!(
        parse_reverse_path("<\"ü\"@example.com>", false),
        Err(AddressError::NonAscii)
    );
    assert!(parse_forward_path("<a\u{85}b@example.com>", true).is_err());
}

#[test]
fn mailbox_parse_takes_the_whole_string() {
    assert_eq!(
        Mailbox::parse("a@Example.com", false),
        Ok(mailbox("a", "example.com"))
    );
    assert!(Mailbox::parse("a@example.com>", false).is_err());
    assert_eq!(
        Mailbox::parse("ü@example.com", false),
        Err(AddressError::NonAscii)
    );
}

/// Every open-relay probe we know of must be detected, whatever the case or quoting.
#[test]
fn hostile_addresses_are_flagged() {
    use RelayHack::*;
    let table: &[(&str, RelayHack)] = &[
        ("<user%evil.com@example.com>", Percent),
        ("<USER%EVIL.COM@EXAMPLE.COM>", Percent),
        ("<user%evil.com%other.com@example.com>", Percent),
        ("<evil.com!user@example.com>", Bang),
        ("<EVIL.COM!User@Example.Com>", Bang),
        ("<\"user@evil.com\"@example.com>", QuotedAt),
        ("<\"USER@EVIL.COM\"@EXAMPLE.COM>", QuotedAt),
        ("<\"user\\@evil.com\"@example.com>", QuotedAt),
        ("<\"@evil.com:user\"@example.com>", QuotedAt),
        ("<\"user%evil\"@example.com>", Percent),
        ("<\"evil!user\"@example.com>", Bang),
        ("<@evil.com:user@example.com>", SourceRoute),
        ("<@EVIL.COM,@other.com:user@example.com>", SourceRoute),
        ("<@[192.0.2.1]:user@example.com>", SourceRoute),
        ("<user@[127.0.0.1]>", IpLiteral),
        ("<user@[IPv6:::1]>", IpLiteral),
        ("<user@[ipv6:::ffff:127.0.0.1]>", IpLiteral),
        ("<user@127.0.0.1>", IpLiteral),
        ("<user@2130706433>", IpLiteral),
        ("<user@0x7f.1>", IpLiteral),
        ("<user@localhost.0X7F000001>", IpLiteral),
    ];
    for (address, hack) in table {
        let path = rcpt(address);
        assert_eq!(
            path.as_ref().map(ForwardPath::relay_hack),
            Ok(Some(*hack)),
            "{address}"
        );
    }
}

#[test]
fn hostile_utf8_addresses_are_flagged() {
    use RelayHack::*;
    let table: &[(&str, RelayHack)] = &[
        ("<user\u{ff05}evil.com@example.com>", Percent),
        ("<user\u{fe6a}evil.com@example.com>", Percent),
        ("<evil.com\u{ff01}user@example.com>", Bang),
        ("<user\u{ff20}evil.com@example.com>", QuotedAt),
        ("<\"user\u{fe6b}evil.com\"@example.com>", QuotedAt),
        ("<user@\u{ff11}\u{ff12}\u{ff17}.0.0.1>", IpLiteral),
    ];
    for (address, hack) in table {
        let path = parse_forward_path(address, true).map(|(p, _)| p);
        assert_eq!(
            path.as_ref().map(ForwardPath::relay_hack),
            Ok(Some(*hack)),
            "{address}"
        );
    }
}

#[test]
fn ordinary_addresses_are_not_flagged() {
    for ok in [
        "<user@example.com>",
        "<\"john doe\"@example.com>",
        "<a.b-c+d=e@mx1.example.org>",
        "<Postmaster>",
    ] {
        assert_eq!(rcpt(ok).map(|p| p.relay_hack()), Ok(None), "{ok}");
    }
}

#[test]
fn literal_domains_keep_their_address() {
    let path = rcpt("<u@[IPv6:2001:db8::1]>");
    let domain = path
        .ok()
        .and_then(|p| p.mailbox().map(|m| m.domain.clone()));
    assert_eq!(
        domain,
        Some(Domain::Literal(IpAddr::V6(std::net::Ipv6Addr::new(
            0x2001, 0xdb8, 0, 0, 0, 0, 0, 1
        ))))
    );
}
