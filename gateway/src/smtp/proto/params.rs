//! ESMTP parameters of MAIL and RCPT (RFC 5321 §4.1.2 `Mail-parameters`): SIZE (RFC 1870),
//! BODY (RFC 6152), SMTPUTF8 (RFC 6531), AUTH (RFC 4954, ignored) and DSN's RET, ENVID,
//! NOTIFY and ORCPT (RFC 3461, see [`super::dsn`]). Nothing else is offered, so anything else is
//! `555 5.5.4`; malformed or duplicated parameters are `501 5.5.4`.

use super::dsn::{self, Notify, Orcpt, Ret};

/// Longest keyword echoed back in a reply.
const MAX_ECHO: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Body {
    /// Declared `BODY=7BIT`, or no BODY parameter (RFC 6152 §3).
    #[default]
    SevenBit,
    EightBitMime,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailParams {
    /// The client's estimate; saturates at `u64::MAX` (more than any limit) if it overflows.
    pub size: Option<u64>,
    pub body: Body,
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    /// Decoded from xtext.
    pub envid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RcptParams {
    pub notify: Option<Notify>,
    pub orcpt: Option<Orcpt>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("malformed parameter")]
    Syntax,
    #[error("duplicate parameter {0}")]
    Duplicate(String),
    #[error("invalid value for {0}")]
    BadValue(&'static str),
    #[error("{0}")]
    Unsupported(String),
}

pub(super) fn parse_mail_params(s: &str) -> Result<MailParams, ParamError> {
    let mut params = MailParams::default();
    for (key, value) in split(s)? {
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v)) if v.bytes().all(|b| b.is_ascii_digit()) => {
                params.size = Some(v.parse().unwrap_or(u64::MAX));
            }
            ("SIZE", _) => return Err(ParamError::BadValue("SIZE")),
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => params.body = Body::SevenBit,
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => {
                params.body = Body::EightBitMime;
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("BINARYMIME") => {
                return Err(ParamError::Unsupported("BODY=BINARYMIME".into()));
            }
            ("BODY", _) => return Err(ParamError::BadValue("BODY")),
            ("SMTPUTF8", None) => params.smtputf8 = true,
            ("SMTPUTF8", Some(_)) => return Err(ParamError::BadValue("SMTPUTF8")),
            // RFC 4954 §5: clients that saw AUTH in EHLO may name the original submitter;
            // it is accepted and ignored, since trust comes from the session's grant.
            ("AUTH", Some(_)) => {}
            ("RET", Some(v)) => params.ret = Some(dsn::parse_ret(v)?),
            ("ENVID", Some(v)) => params.envid = Some(dsn::parse_envid(v)?),
            ("RET" | "ENVID", None) => return Err(ParamError::BadValue(dsn_key(key))),
            _ => return Err(ParamError::Unsupported(echo(key))),
        }
    }
    Ok(params)
}

pub(super) fn parse_rcpt_params(s: &str) -> Result<RcptParams, ParamError> {
    let mut params = RcptParams::default();
    for (key, value) in split(s)? {
        match (key.to_ascii_uppercase().as_str(), value) {
            ("NOTIFY", Some(v)) => params.notify = Some(dsn::parse_notify(v)?),
            ("ORCPT", Some(v)) => params.orcpt = Some(dsn::parse_orcpt(v)?),
            ("NOTIFY" | "ORCPT", None) => return Err(ParamError::BadValue(dsn_key(key))),
            _ => return Err(ParamError::Unsupported(echo(key))),
        }
    }
    Ok(params)
}

impl From<dsn::Invalid> for ParamError {
    fn from(e: dsn::Invalid) -> ParamError {
        ParamError::BadValue(e.0)
    }
}

/// The static name of a DSN keyword (for [`ParamError::BadValue`]).
fn dsn_key(key: &str) -> &'static str {
    ["RET", "ENVID", "NOTIFY", "ORCPT"]
        .into_iter()
        .find(|k| k.eq_ignore_ascii_case(key))
        .unwrap_or("DSN parameter")
}

/// `s` is what follows the path: empty, or SP-separated `KEY[=VALUE]` (extra spaces
/// tolerated). Keys are `(ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`; values are printable
/// ASCII without `=`.
fn split(s: &str) -> Result<Vec<(&str, Option<&str>)>, ParamError> {
    if !s.is_empty() && !s.starts_with(' ') {
        return Err(ParamError::Syntax);
    }
    let mut params: Vec<(&str, Option<&str>)> = Vec::new();
    for token in s.split(' ').filter(|t| !t.is_empty()) {
        let (key, value) = match token.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (token, None),
        };
        let key_ok = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let value_ok = value.is_none_or(|v| {
            !v.is_empty() && v.bytes().all(|b| (33..=126).contains(&b) && b != b'=')
        });
        if !key_ok || !value_ok {
            return Err(ParamError::Syntax);
        }
        if params.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
            return Err(ParamError::Duplicate(echo(key)));
        }
        params.push((key, value));
    }
    Ok(params)
}

fn echo(key: &str) -> String {
    key.chars()
        .take(MAX_ECHO)
        .collect::<String>()
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_params() {
        let p = parse_mail_params(" size=1000 Body=8bitmime  SMTPUTF8");
        assert_eq!(
            p,
            Ok(MailParams {
                size: Some(1000),
                body: Body::EightBitMime,
                smtputf8: true,
                ..MailParams::default()
            })
        );
        assert_eq!(parse_mail_params(""), Ok(MailParams::default()));
        assert_eq!(
            parse_mail_params(" AUTH=<> SIZE=5").map(|p| p.size),
            Ok(Some(5))
        );
        assert_eq!(
            parse_mail_params(" AUTH=app+40example.com").map(|p| p.size),
            Ok(None)
        );
        assert_eq!(
            parse_mail_params(" BODY=7BIT").map(|p| p.body),
            Ok(Body::SevenBit)
        );
    }

    #[test]
    fn size_saturates_instead_of_overflowing() {
        let p = parse_mail_params(" SIZE=99999999999999999999999");
        assert_eq!(p.map(|p| p.size), Ok(Some(u64::MAX)));
    }

    #[test]
    fn bad_values_are_syntax_errors() {
        for bad in [
            " SIZE=",
            " SIZE",
            " SIZE=-1",
            " SIZE=1k",
            " SIZE=+1",
            " BODY=8BIT",
            " SMTPUTF8=yes",
        ] {
            assert!(
                matches!(
                    parse_mail_params(bad),
                    Err(ParamError::BadValue(_) | ParamError::Syntax)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn malformed_parameters() {
        for bad in [
            "SIZE=1",
            " =1",
            " -X=1",
            " SIZE=1=2",
            " X_Y=1",
            " SIZE=\u{e9}",
            " K=v\u{7f}",
        ] {
            assert_eq!(parse_mail_params(bad), Err(ParamError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn duplicates_are_refused_whatever_the_case() {
        assert_eq!(
            parse_mail_params(" SIZE=1 size=2"),
            Err(ParamError::Duplicate("SIZE".into()))
        );
        assert_eq!(
            parse_mail_params(" SMTPUTF8 smtputf8"),
            Err(ParamError::Duplicate("SMTPUTF8".into()))
        );
    }

    #[test]
    fn unsupported_parameters() {
        assert_eq!(
            parse_mail_params(" BODY=BINARYMIME"),
            Err(ParamError::Unsupported("BODY=BINARYMIME".into()))
        );
        assert_eq!(
            parse_rcpt_params(" XNOTIFY=NEVER"),
            Err(ParamError::Unsupported("XNOTIFY".into()))
        );
        assert_eq!(parse_rcpt_params("  "), Ok(RcptParams::default()));
        assert_eq!(parse_rcpt_params(" X Y=bad=bad"), Err(ParamError::Syntax));
    }

    #[test]
    fn dsn_parameters_are_accepted_and_decoded() {
        let mail = parse_mail_params(" RET=hdrs ENVID=QQ+2B314159 SIZE=5").unwrap();
        assert_eq!(mail.ret, Some(Ret::Hdrs));
        assert_eq!(mail.envid.as_deref(), Some("QQ+314159"));
        let rcpt = parse_rcpt_params(" NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@x.test").unwrap();
        let notify = rcpt.notify.unwrap();
        assert!(notify.success && notify.failure && !notify.delay);
        assert_eq!(rcpt.orcpt.unwrap().address, "a+b@x.test");
        assert!(
            parse_rcpt_params(" notify=never")
                .unwrap()
                .notify
                .unwrap()
                .never()
        );
    }

    #[test]
    fn malformed_dsn_parameters_are_bad_values() {
        for bad in [" RET=ALL", " RET", " ENVID=a+zz", " ENVID"] {
            assert!(
                matches!(parse_mail_params(bad), Err(ParamError::BadValue(_))),
                "{bad}"
            );
        }
        for bad in [
            " NOTIFY=NEVER,DELAY",
            " NOTIFY=",
            " NOTIFY",
            " ORCPT=a@b",
            " ORCPT=rfc822;+4",
        ] {
            assert!(
                matches!(
                    parse_rcpt_params(bad),
                    Err(ParamError::BadValue(_) | ParamError::Syntax)
                ),
                "{bad}"
            );
        }
        assert_eq!(
            parse_rcpt_params(" NOTIFY=SUCCESS notify=DELAY"),
            Err(ParamError::Duplicate("NOTIFY".into()))
        );
    }
}
