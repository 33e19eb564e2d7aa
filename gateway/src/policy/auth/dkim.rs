//! Our DKIM verdicts on top of mail-auth's, and the `dkim=` clauses of our
//! Authentication-Results field.
//!
//! mail-auth 0.13 departs from what we promise in three places, corrected here:
//! - it verifies `a=rsa-sha1` signatures and reports them `pass`, which DMARC then accepts.
//!   RFC 8301 §3.1 says verifiers must not consider them valid: we take them out before
//!   verification (no DNS lookup, no RSA operation, never aligned) and report them
//!   `dkim=fail` with the reason;
//! - it reports a body-hash mismatch as `neutral`; the signature is valid in form and the
//!   body was changed, which RFC 6376 §6.3 calls a failure: `dkim=fail`;
//! - it writes `header.i` *instead of* `header.d` when the signature has `i=`; the domain
//!   is what DMARC and people read, so we always write `header.d` and add `header.i`.
//!
//! Results keep their RFC 8601 shape: `dkim=RESULT [reason="…"] header.d=… [header.i=…]
//! header.s=… header.b=…`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{Algorithm, CryptoError};
use mail_auth::dkim::{DkimError, Signature};
use mail_auth::{AuthenticatedMessage, DkimOutput, DkimResult, Error};

/// The reason given for a withheld rsa-sha1 signature.
pub const SHA1_REASON: &str = "rsa-sha1 is not accepted (RFC 8301)";

/// Removes the rsa-sha1 signatures from `parsed` before verification and returns them.
pub fn withhold_sha1(parsed: &mut AuthenticatedMessage<'_>) -> Vec<Signature> {
    parsed
        .dkim_headers
        .extract_if(.., |h| h.header.a == Algorithm::RsaSha1)
        .map(|h| h.header)
        .collect()
}

/// The `;\r\n\tdkim=…` clauses for every verified signature and every withheld one, or
/// `dkim=none` when the message carried no signature (RFC 8601 §2.7.1).
pub fn clauses(outputs: &[DkimOutput<'_>], withheld: &[Signature]) -> String {
    let mut out = String::new();
    for output in outputs {
        let (result, reason) = verdict(output.result());
        clause(&mut out, result, reason.as_deref(), output.signature());
    }
    for signature in withheld {
        clause(&mut out, "fail", Some(SHA1_REASON), Some(signature));
    }
    if out.is_empty() {
        out.push_str(";\r\n\tdkim=none");
    }
    out
}

/// The RFC 8601 result word and the reason for one mail-auth result.
fn verdict(result: &DkimResult) -> (&'static str, Option<String>) {
    match result {
        DkimResult::Pass => ("pass", None),
        DkimResult::None => ("none", None),
        DkimResult::Neutral(e @ Error::Dkim(DkimError::FailedBodyHashMatch)) => {
            ("fail", Some(reason(e)))
        }
        DkimResult::Neutral(e) => ("neutral", Some(reason(e))),
        DkimResult::Fail(e) => ("fail", Some(reason(e))),
        DkimResult::PermError(e) => ("permerror", Some(reason(e))),
        DkimResult::TempError(e) => ("temperror", Some(reason(e))),
    }
}

fn reason(error: &Error) -> String {
    match error {
        Error::Dkim(DkimError::FailedBodyHashMatch) => "body hash did not verify".into(),
        Error::Crypto(CryptoError::FailedVerification) => "signature did not verify".into(),
        Error::Dkim(DkimError::SignatureExpired) => "signature expired".into(),
        other => other.to_string(),
    }
}

fn clause(out: &mut String, result: &str, reason: Option<&str>, signature: Option<&Signature>) {
    out.push_str(";\r\n\tdkim=");
    out.push_str(result);
    if let Some(reason) = reason {
        out.push_str(" reason=");
        quoted(out, reason);
    }
    let Some(signature) = signature else {
        return;
    };
    out.push_str(" header.d=");
    pvalue(out, &signature.d);
    if !signature.i.is_empty() {
        out.push_str(" header.i=");
        pvalue(out, &signature.i);
    }
    out.push_str(" header.s=");
    pvalue(out, &signature.s);
    if let Some(prefix) = signature.b.get(..6) {
        // The first 8 base64 characters tell signatures of one message apart (RFC 6008).
        out.push_str(" header.b=");
        out.push_str(&STANDARD.encode(prefix));
    }
}

/// A property value: bare when it is a token or `local@domain` made of safe characters,
/// a quoted string otherwise.
fn pvalue(out: &mut String, value: &str) {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && !"()<>,;:\\\"/[]?=".contains(c));
    if bare {
        out.push_str(value);
    } else {
        quoted(out, value);
    }
}

fn quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars().filter(|c| !c.is_control()) {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature(i: &str) -> Signature {
        Signature {
            d: "sender.example".into(),
            s: "s1".into(),
            i: i.into(),
            b: b"abcdefgh".to_vec(),
            ..Signature::default()
        }
    }

    #[test]
    fn a_body_hash_mismatch_is_a_failure_with_its_reason() {
        let sig = signature("");
        let output =
            DkimOutput::neutral(Error::Dkim(DkimError::FailedBodyHashMatch)).with_signature(&sig);
        assert_eq!(
            clauses(&[output], &[]),
            ";\r\n\tdkim=fail reason=\"body hash did not verify\" header.d=sender.example header.s=s1 header.b=YWJjZGVm"
        );
    }

    #[test]
    fn header_d_is_always_written_and_header_i_beside_it() {
        let sig = signature("alice@mail.sender.example");
        let output = DkimOutput::pass().with_signature(&sig);
        assert_eq!(
            clauses(&[output], &[]),
            ";\r\n\tdkim=pass header.d=sender.example header.i=alice@mail.sender.example header.s=s1 header.b=YWJjZGVm"
        );
        let odd = signature("a b\"@x");
        let output = DkimOutput::pass().with_signature(&odd);
        assert!(clauses(&[output], &[]).contains(" header.i=\"a b\\\"@x\" "));
    }

    #[test]
    fn a_withheld_sha1_signature_fails_and_no_signature_is_none() {
        let sig = signature("");
        let text = clauses(&[], std::slice::from_ref(&sig));
        assert_eq!(
            text,
            format!(
                ";\r\n\tdkim=fail reason=\"{SHA1_REASON}\" header.d=sender.example header.s=s1 header.b=YWJjZGVm"
            )
        );
        assert_eq!(clauses(&[], &[]), ";\r\n\tdkim=none");
    }

    #[test]
    fn sha1_signatures_are_taken_out_before_verification() {
        let message =
            b"DKIM-Signature: v=1; a=rsa-sha1; d=old.example; s=s; h=from; bh=AAAA; b=AAAA\r\n\
DKIM-Signature: v=1; a=rsa-sha256; d=new.example; s=s; h=from; bh=AAAA; b=AAAA\r\n\
From: a@old.example\r\n\r\nbody\r\n";
        let mut parsed = AuthenticatedMessage::parse(message).unwrap();
        assert_eq!(parsed.dkim_headers.len(), 2);
        let withheld = withhold_sha1(&mut parsed);
        assert_eq!(withheld.len(), 1);
        assert_eq!(withheld[0].d, "old.example");
        assert_eq!(parsed.dkim_headers.len(), 1);
        assert_eq!(parsed.dkim_headers[0].header.d, "new.example");
    }
}
