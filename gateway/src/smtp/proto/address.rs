//! Paths and mailboxes of MAIL and RCPT (RFC 5321 §4.1.2; UTF-8 per RFC 6531) and the
//! detection of relay hacks, which policy refuses with `550 5.7.1`.
//!
//! Parsing is structural and allows UTF-8; the caller says whether the transaction carried
//! SMTPUTF8 and non-ASCII without it is [`AddressError::NonAscii`] (`553 5.6.7`).

use super::domain::{Domain, fold_compat, parse_literal, parse_name};
use std::fmt;

/// RFC 5321 §4.5.3.1.1, measured on the wire form (quotes and escapes included).
pub const MAX_LOCAL: usize = 64;
/// RFC 5321 §4.5.3.1.3, angle brackets and source route included.
pub const MAX_PATH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("{0}")]
    Syntax(&'static str),
    #[error("local part longer than 64 octets")]
    LocalTooLong,
    #[error("domain longer than 255 octets")]
    DomainTooLong,
    #[error("path longer than 256 octets")]
    PathTooLong,
    #[error("non-ASCII address without SMTPUTF8")]
    NonAscii,
    #[error("address literal type not supported")]
    UnsupportedLiteral,
}

/// MAIL FROM. A source route (`<@a:u@b>`) is accepted and dropped (RFC 5321 §4.1.1.2: the
/// server SHOULD ignore it); a return path is not routed through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    /// `<>`: bounces and other notifications.
    Null,
    Mailbox(Mailbox),
}

/// RCPT TO. `<Postmaster>` without a domain (RFC 5321 §4.1.1.3) is its own variant rather
/// than a mailbox with a made-up domain: the session must map it to its own postmaster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardPath {
    Postmaster,
    Mailbox {
        mailbox: Mailbox,
        source_route: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    /// As received (case preserved); unquoted and unescaped when `quoted_local`.
    pub local: String,
    pub domain: Domain,
    pub quoted_local: bool,
}

/// Ways an address asks us to route somewhere other than its domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayHack {
    /// `user%other@us`
    Percent,
    /// `other!user@us`
    Bang,
    /// `"user@other"@us`: an `@` inside the local part (only quoting allows one).
    QuotedAt,
    /// `user@[192.0.2.1]`, or a numeric name such as `user@127.0.0.1`.
    IpLiteral,
    /// `@other:user@us`
    SourceRoute,
}

impl ReversePath {
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ReversePath::Null => None,
            ReversePath::Mailbox(m) => Some(m),
        }
    }
}

impl ForwardPath {
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ForwardPath::Postmaster => None,
            ForwardPath::Mailbox { mailbox, .. } => Some(mailbox),
        }
    }

    /// The complete check policy must use: the source route, then [`Mailbox::relay_hack`].
    pub fn relay_hack(&self) -> Option<RelayHack> {
        match self {
            ForwardPath::Postmaster => None,
            ForwardPath::Mailbox {
                source_route: true, ..
            } => Some(RelayHack::SourceRoute),
            ForwardPath::Mailbox { mailbox, .. } => mailbox.relay_hack(),
        }
    }
}

impl Mailbox {
    /// Parses a bare `local@domain` (no angle brackets), e.g. from configuration.
    pub fn parse(s: &str, smtputf8: bool) -> Result<Mailbox, AddressError> {
        if !smtputf8 && !s.is_ascii() {
            return Err(AddressError::NonAscii);
        }
        match parse_mailbox(s)? {
            (mailbox, n) if n == s.len() => Ok(mailbox),
            _ => Err(AddressError::Syntax(
                "unexpected characters after the domain",
            )),
        }
    }

    /// Whether the mailbox itself hides another destination. The source route lives on the
    /// path: use [`ForwardPath::relay_hack`] for recipients. Fullwidth and small forms of
    /// `%`, `!` and `@` (possible with SMTPUTF8) count as the ASCII characters, since a
    /// next hop that applies NFKC would turn them into those.
    pub fn relay_hack(&self) -> Option<RelayHack> {
        let local = fold_compat(&self.local);
        if local.contains('@') {
            Some(RelayHack::QuotedAt)
        } else if local.contains('%') {
            Some(RelayHack::Percent)
        } else if local.contains('!') {
            Some(RelayHack::Bang)
        } else if self.domain.is_ip() {
            Some(RelayHack::IpLiteral)
        } else {
            None
        }
    }

    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }
}

/// `local@domain`, re-quoting a quoted local part.
impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quoted_local {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        } else {
            f.write_str(&self.local)?;
        }
        write!(f, "@{}", self.domain)
    }
}

/// Parses the path at the start of `s` (`<…>`); returns it and the rest of `s`.
pub fn parse_reverse_path(s: &str, smtputf8: bool) -> Result<(ReversePath, &str), AddressError> {
    let (path, n) = parse_path(s, smtputf8)?;
    let path = match path {
        RawPath::Null => ReversePath::Null,
        RawPath::Mailbox(mailbox, _route) => ReversePath::Mailbox(mailbox),
        RawPath::Postmaster => return Err(AddressError::Syntax("sender address needs a domain")),
    };
    Ok((path, s.get(n..).unwrap_or("")))
}

/// Parses the path at the start of `s` (`<…>`); returns it and the rest of `s`.
pub fn parse_forward_path(s: &str, smtputf8: bool) -> Result<(ForwardPath, &str), AddressError> {
    let (path, n) = parse_path(s, smtputf8)?;
    let path = match path {
        RawPath::Null => return Err(AddressError::Syntax("empty recipient address")),
        RawPath::Postmaster => ForwardPath::Postmaster,
        RawPath::Mailbox(mailbox, source_route) => ForwardPath::Mailbox {
            mailbox,
            source_route,
        },
    };
    Ok((path, s.get(n..).unwrap_or("")))
}

enum RawPath {
    Null,
    Postmaster,
    Mailbox(Mailbox, bool),
}

/// Returns the path and the number of bytes it spans, brackets included.
fn parse_path(s: &str, smtputf8: bool) -> Result<(RawPath, usize), AddressError> {
    let inner = s
        .strip_prefix('<')
        .ok_or(AddressError::Syntax("address must be enclosed in <>"))?;
    let (path, n) = if inner.starts_with('>') {
        (RawPath::Null, 0)
    } else if inner
        .get(..11)
        .is_some_and(|p| p.eq_ignore_ascii_case("postmaster>"))
    {
        (RawPath::Postmaster, 10)
    } else {
        let route = if inner.starts_with('@') {
            skip_route(inner)?
        } else {
            0
        };
        let (mailbox, n) = parse_mailbox(inner.get(route..).unwrap_or(""))?;
        (RawPath::Mailbox(mailbox, route > 0), route + n)
    };
    if inner.as_bytes().get(n) != Some(&b'>') {
        return Err(AddressError::Syntax("address must be enclosed in <>"));
    }
    let len = n + 2;
    if len > MAX_PATH {
        return Err(AddressError::PathTooLong);
    }
    if !smtputf8 && !s.get(..len).is_some_and(str::is_ascii) {
        return Err(AddressError::NonAscii);
    }
    Ok((path, len))
}

/// `@a,@b:` — each domain is checked, then forgotten. Returns the bytes up to the colon.
fn skip_route(s: &str) -> Result<usize, AddressError> {
    let mut i = 0;
    loop {
        if s.as_bytes().get(i) != Some(&b'@') {
            return Err(AddressError::Syntax("invalid source route"));
        }
        i += 1;
        i += parse_domain(s.get(i..).unwrap_or(""))?.1;
        match s.as_bytes().get(i) {
            Some(b',') => i += 1,
            Some(b':') => return Ok(i + 1),
            _ => return Err(AddressError::Syntax("invalid source route")),
        }
    }
}

/// `local@domain` at the start of `s`; returns it and the bytes it spans.
fn parse_mailbox(s: &str) -> Result<(Mailbox, usize), AddressError> {
    let (local, quoted_local, n) = parse_local(s)?;
    if n > MAX_LOCAL {
        return Err(AddressError::LocalTooLong);
    }
    if s.as_bytes().get(n) != Some(&b'@') {
        return Err(AddressError::Syntax(
            "expected @domain after the local part",
        ));
    }
    let (domain, m) = parse_domain(s.get(n + 1..).unwrap_or(""))?;
    Ok((
        Mailbox {
            local,
            domain,
            quoted_local,
        },
        n + 1 + m,
    ))
}

/// Dot-string or Quoted-string; returns (decoded text, quoted, wire length).
fn parse_local(s: &str) -> Result<(String, bool, usize), AddressError> {
    let Some(quoted) = s.strip_prefix('"') else {
        let end = s
            .bytes()
            .position(|b| !(is_atext(b) || b == b'.' || b >= 0x80));
        let local = s.get(..end.unwrap_or(s.len())).unwrap_or("");
        if local.is_empty() {
            return Err(AddressError::Syntax("empty local part"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(AddressError::Syntax("misplaced dot in local part"));
        }
        if local.chars().any(char::is_control) {
            return Err(AddressError::Syntax("control character in local part"));
        }
        return Ok((local.to_string(), false, local.len()));
    };
    let mut local = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' if local.is_empty() => return Err(AddressError::Syntax("empty local part")),
            '"' => return Ok((local, true, i + 2)),
            '\\' => match chars.next() {
                Some((_, e)) if e == ' ' || e.is_ascii_graphic() => local.push(e),
                _ => return Err(AddressError::Syntax("invalid escape in quoted local part")),
            },
            ' ' | '!' | '#'..='[' | ']'..='~' => local.push(c),
            c if !c.is_ascii() && !c.is_control() => local.push(c),
            _ => {
                return Err(AddressError::Syntax(
                    "invalid character in quoted local part",
                ));
            }
        }
    }
    Err(AddressError::Syntax("unterminated quoted local part"))
}

/// Name or address literal at the start of `s`; returns it and the bytes it spans.
fn parse_domain(s: &str) -> Result<(Domain, usize), AddressError> {
    if s.starts_with('[') {
        let end = s
            .find(']')
            .ok_or(AddressError::Syntax("unterminated address literal"))?
            + 1;
        return Ok((parse_literal(s.get(..end).unwrap_or(""))?, end));
    }
    let end = s
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b >= 0x80))
        .unwrap_or(s.len());
    Ok((Domain::Name(parse_name(s.get(..end).unwrap_or(""))?), end))
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

#[cfg(test)]
mod tests;
