//! Running the checks with mail-auth: SPF for HELO and MAIL FROM, DKIM, ARC, then DMARC
//! with alignment; the result is our Authentication-Results field (RFC 8601) and the DMARC
//! outcome the decision needs.
//!
//! Bounded in time by the caller. The only CPU-heavy step is parsing, which hashes the body
//! once per distinct DKIM/ARC body-hash setting; for large messages it runs in
//! `block_in_place` so the worker's other sessions move to another thread meanwhile.

use super::Origin;
use super::decide::{Dmarc, Policy};
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator};

/// DKIM signatures verified per message, in header order (OpenDKIM verifies 3 by default):
/// each costs a DNS lookup and a public-key operation, so a message carrying thousands must
/// not buy thousands.
pub const MAX_DKIM_SIGNATURES: usize = 8;

pub struct Checks {
    /// The complete `Authentication-Results: …\r\n` field.
    pub header: String,
    pub dmarc: Dmarc,
    /// For DMARC aggregate reports, when the From: domain publishes a policy.
    pub row: Option<crate::observe::events::DmarcChecked>,
}

pub async fn run(
    auth: &MessageAuthenticator,
    authserv_id: &str,
    host: &str,
    origin: &Origin<'_>,
    message: &[u8],
) -> Checks {
    let Some(mut parsed) = parse(message) else {
        return Checks {
            header: format!("Authentication-Results: {authserv_id}; none\r\n"),
            dmarc: Dmarc::None,
            row: None,
        };
    };
    parsed.dkim_headers.truncate(MAX_DKIM_SIGNATURES);
    let sha1 = super::dkim::withhold_sha1(&mut parsed);
    // Malformed signatures are reported as `dkim=neutral`, one line each: bound them too.
    let mut malformed = 0;
    parsed.errors.retain(|h| {
        let dkim = matches!(h.header, mail_auth::Error::Dkim(_));
        malformed += usize::from(dkim);
        !dkim || malformed <= MAX_DKIM_SIGNATURES
    });
    let (ip, helo) = (origin.ip, origin.helo);
    // An address literal or a bare word cannot publish SPF: there is no HELO identity.
    let helo_is_name = helo.contains('.') && !helo.starts_with('[');
    let spf_helo = async {
        match helo_is_name {
            true => Some(
                auth.verify_spf(SpfParameters::verify_ehlo(ip, helo, host))
                    .await,
            ),
            false => None,
        }
    };
    let spf_from = async {
        match origin.mail_from.is_empty() {
            true => None,
            false => Some(
                auth.verify_spf(SpfParameters::verify_mail_from(
                    ip,
                    helo,
                    host,
                    origin.mail_from,
                ))
                .await,
            ),
        }
    };
    let (spf_helo, spf_from, dkim, arc) = tokio::join!(
        spf_helo,
        spf_from,
        auth.verify_dkim(&parsed),
        auth.verify_arc(&parsed)
    );
    // RFC 7208 §2.4: for the null sender the HELO identity stands in for MAIL FROM.
    let (spf_for_dmarc, spf_domain) = match (&spf_from, origin.mail_from.rsplit_once('@')) {
        (Some(spf), Some((_, domain))) => (spf.clone(), domain),
        _ => (spf_helo.clone().unwrap_or_default(), helo),
    };
    let dmarc = super::dmarc::verify(
        auth,
        DmarcParameters::new(&parsed, &dkim, spf_domain, &spf_for_dmarc),
    )
    .await;

    let mut results = AuthenticationResults::new(authserv_id);
    if let Some(spf) = &spf_helo {
        results = results.with_spf_ehlo_result(spf, ip, helo);
    }
    if let Some(spf) = &spf_from {
        results = results.with_spf_mailfrom_result(spf, ip, origin.mail_from, helo);
    }
    let results = results.with_arc_result(&arc, ip).with_dmarc_result(&dmarc);
    // mail-auth writes `ID;\r\n\tspf=…`; our DKIM clauses go first, as in docs/authentication.md.
    let rest = results.to_string();
    let rest = rest.strip_prefix(authserv_id).unwrap_or(&rest);
    let header = format!(
        "Authentication-Results: {authserv_id}{}{rest}\r\n",
        super::dkim::clauses(&dkim, &sha1)
    );
    let row = super::row::row(
        ip,
        &dmarc,
        &dkim,
        &spf_for_dmarc,
        spf_domain,
        spf_from.is_some(),
    );
    Checks {
        header,
        dmarc: outcome(&dmarc),
        row,
    }
}

/// Every `method=result` of the four methods in the field we wrote, read back from the
/// one place that states them (published for `edgemx_auth_verdicts_total`).
pub(super) fn verdicts(header: &str) -> Vec<(&str, &str)> {
    header
        .split(|c: char| c == ';' || c.is_whitespace())
        .filter_map(|word| word.split_once('='))
        .filter(|(method, _)| matches!(*method, "spf" | "dkim" | "arc" | "dmarc"))
        .map(|(method, result)| {
            (
                method,
                result.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()),
            )
        })
        .collect()
}

/// The field written when the checks could not run to the end (`reason` says why): the
/// verdict is temperror.
pub fn unfinished(authserv_id: &str, reason: &str) -> Checks {
    Checks {
        header: format!(
            "Authentication-Results: {authserv_id};\r\n\tdmarc=temperror reason=\"{reason}\"\r\n"
        ),
        dmarc: Dmarc::TempError,
        row: None,
    }
}

fn outcome(dmarc: &mail_auth::DmarcOutput) -> Dmarc {
    match dmarc.result() {
        DmarcResult::Pass => Dmarc::Pass,
        DmarcResult::TempError(_) => Dmarc::TempError,
        DmarcResult::Fail(_) => Dmarc::Fail {
            domain: dmarc.domain().to_string(),
            policy: match dmarc.policy() {
                mail_auth::dmarc::Policy::Reject => Policy::Reject,
                mail_auth::dmarc::Policy::Quarantine => Policy::Quarantine,
                mail_auth::dmarc::Policy::None | mail_auth::dmarc::Policy::Unspecified => {
                    Policy::None
                }
            },
        },
        DmarcResult::PermError(_) | DmarcResult::None => Dmarc::None,
    }
}

fn parse(message: &[u8]) -> Option<AuthenticatedMessage<'_>> {
    super::offload(message.len(), || AuthenticatedMessage::parse(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_read_back_from_the_results_field() {
        let header = "Authentication-Results: mx.test;\r\n\tdkim=pass header.d=a.test;\r\n\tspf=fail smtp.helo=x.test;\r\n\tspf=pass smtp.mailfrom=a@a.test;\r\n\tarc=none;\r\n\tdmarc=pass header.from=a.test\r\n";
        assert_eq!(
            verdicts(header),
            [
                ("dkim", "pass"),
                ("spf", "fail"),
                ("spf", "pass"),
                ("arc", "none"),
                ("dmarc", "pass")
            ]
        );
    }
}
