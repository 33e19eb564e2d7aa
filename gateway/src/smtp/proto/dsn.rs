//! The DSN extension's parameters (RFC 3461): `RET` and `ENVID` on MAIL, `NOTIFY` and
//! `ORCPT` on RCPT, and the xtext encoding (§4) their values travel in.
//!
//! Values are stored decoded (they are kept with the envelope and reported in our own DSNs)
//! and encoded again when passed on to a next hop that offers DSN.

use serde::{Deserialize, Serialize};
use std::fmt::{self, Write};

/// RFC 3461 §4.3: ENVID is at most 100 characters (as sent, xtext).
const MAX_ENVID: usize = 100;
/// RFC 3461 §4.2: ORCPT's value is at most 500 characters (as sent, xtext).
const MAX_ORCPT: usize = 500;

/// `RET=`: what a failure DSN returns of the original message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    Full,
    Hdrs,
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        })
    }
}

/// `NOTIFY=`: the DSNs the sender wants for one recipient. All false is `NEVER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// What a recipient without NOTIFY gets (RFC 3461 §4.1 lets the MTA choose
    /// `FAILURE` or `FAILURE,DELAY`; we send delay notices, so both).
    pub const DEFAULT: Notify = Notify {
        success: false,
        failure: true,
        delay: true,
    };

    pub fn never(&self) -> bool {
        !self.success && !self.failure && !self.delay
    }
}

impl fmt::Display for Notify {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.never() {
            return f.write_str("NEVER");
        }
        let words = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ];
        let on: Vec<&str> = words.iter().filter(|w| w.0).map(|w| w.1).collect();
        f.write_str(&on.join(","))
    }
}

/// `ORCPT=addr-type;xtext`, decoded: the recipient as the sender originally gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orcpt {
    /// `rfc822` (or `utf-8`), as given.
    pub kind: String,
    pub address: String,
}

impl fmt::Display for Orcpt {
    /// The wire form, xtext-encoded: `rfc822;a+2Bb@example.com`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{};{}", self.kind, xtext(&self.address))
    }
}

/// Why a DSN parameter was refused; the caller answers `501 5.5.4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

pub fn parse_ret(value: &str) -> Result<Ret, Invalid> {
    match value.to_ascii_uppercase().as_str() {
        "FULL" => Ok(Ret::Full),
        "HDRS" => Ok(Ret::Hdrs),
        _ => Err(Invalid("RET")),
    }
}

pub fn parse_envid(value: &str) -> Result<String, Invalid> {
    if value.len() > MAX_ENVID {
        return Err(Invalid("ENVID"));
    }
    unxtext(value).ok_or(Invalid("ENVID"))
}

/// `NEVER` alone, or a comma list of `SUCCESS`, `FAILURE`, `DELAY` without repeats.
pub fn parse_notify(value: &str) -> Result<Notify, Invalid> {
    let bad = Invalid("NOTIFY");
    if value.eq_ignore_ascii_case("NEVER") {
        return Ok(Notify::default());
    }
    let mut notify = Notify::default();
    for word in value.split(',') {
        let slot = match word.to_ascii_uppercase().as_str() {
            "SUCCESS" => &mut notify.success,
            "FAILURE" => &mut notify.failure,
            "DELAY" => &mut notify.delay,
            _ => return Err(bad),
        };
        if std::mem::replace(slot, true) {
            return Err(bad);
        }
    }
    Ok(notify)
}

/// `addr-type ";" xtext`, where addr-type is an atom (RFC 3461 §4.2).
pub fn parse_orcpt(value: &str) -> Result<Orcpt, Invalid> {
    let bad = Invalid("ORCPT");
    if value.len() > MAX_ORCPT {
        return Err(bad);
    }
    let (kind, encoded) = value.split_once(';').ok_or(bad)?;
    let atom = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&c);
    if kind.is_empty() || !kind.bytes().all(atom) || encoded.is_empty() {
        return Err(bad);
    }
    let address = unxtext(encoded).ok_or(bad)?;
    Ok(Orcpt {
        kind: kind.to_string(),
        address,
    })
}

/// RFC 3461 §4: `+XX` for `+`, `=` and anything outside `!`..`~`.
pub fn xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            let _ = write!(out, "+{b:02X}");
        }
    }
    out
}

/// The decoded value, or `None` for malformed xtext (a bare `+`, bad hex, a byte outside
/// `!`..`~` or `=`, or a decoding that is not UTF-8).
pub fn unxtext(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = text.get(i + 1..i + 3)?;
                if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'=' => return None,
            b @ 33..=126 => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_round_trips() {
        assert_eq!(unxtext("a+2Bb+3Dc@x.test").as_deref(), Some("a+b=c@x.test"));
        assert_eq!(xtext("a+b=c d@x.test"), "a+2Bb+3Dc+20d@x.test");
        for bad in ["a+", "a+4", "a+zz", "a=b", "a b", "+C3"] {
            assert_eq!(unxtext(bad), None, "{bad}");
        }
    }

    #[test]
    fn notify_combinations() {
        assert_eq!(parse_notify("never"), Ok(Notify::default()));
        let all = parse_notify("SUCCESS,failure,Delay").unwrap();
        assert!(all.success && all.failure && all.delay);
        assert_eq!(all.to_string(), "SUCCESS,FAILURE,DELAY");
        for bad in [
            "",
            "NEVER,SUCCESS",
            "SUCCESS,NEVER",
            "FAILURE,FAILURE",
            "SUCCESS,",
            "X",
        ] {
            assert_eq!(parse_notify(bad), Err(Invalid("NOTIFY")), "{bad}");
        }
    }

    #[test]
    fn orcpt_is_typed_and_decoded() {
        let o = parse_orcpt("rfc822;a+2Bb@x.test").unwrap();
        assert_eq!(
            (o.kind.as_str(), o.address.as_str()),
            ("rfc822", "a+b@x.test")
        );
        assert_eq!(o.to_string(), "rfc822;a+2Bb@x.test");
        for bad in ["a@x.test", ";a@x.test", "rfc822;", "rfc822;a+2", "rf c;a"] {
            assert_eq!(parse_orcpt(bad), Err(Invalid("ORCPT")), "{bad}");
        }
        assert!(parse_orcpt(&format!("rfc822;{}", "a".repeat(600))).is_err());
    }

    #[test]
    fn ret_and_envid() {
        assert_eq!(parse_ret("hdrs"), Ok(Ret::Hdrs));
        assert_eq!(parse_ret("FULL"), Ok(Ret::Full));
        assert_eq!(parse_ret("ALL"), Err(Invalid("RET")));
        assert_eq!(parse_envid("QQ+2B1").as_deref(), Ok("QQ+1"));
        assert!(parse_envid(&"x".repeat(101)).is_err());
        assert!(parse_envid("a+g0").is_err());
    }
}
