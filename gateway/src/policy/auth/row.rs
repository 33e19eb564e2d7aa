//! What a DMARC aggregate report needs of one checked message, taken from mail-auth's
//! outputs while they are at hand: the published policy, the aligned verdicts and each
//! underlying DKIM and SPF result (RFC 7489 §7.2, appendix C `row` and `auth_results`).
//!
//! The disposition is filled in by the caller once the policy decision is made.

use crate::observe::events::DmarcChecked;
use mail_auth::dmarc::{Alignment, Policy};
use mail_auth::{DkimOutput, DkimResult, DmarcOutput, DmarcResult, SpfOutput, SpfResult};
use std::net::IpAddr;

/// The row for a message whose From: domain publishes a DMARC policy; `None` otherwise
/// (RFC 7489 reports go to the policy's `rua` only). `mfrom` tells whether `spf` is the
/// MAIL FROM check (else the HELO one stood in for the null sender).
pub fn row(
    ip: IpAddr,
    dmarc: &DmarcOutput,
    dkim: &[DkimOutput<'_>],
    spf: &SpfOutput,
    spf_domain: &str,
    mfrom: bool,
) -> Option<DmarcChecked> {
    let record = dmarc.dmarc_record()?;
    let aligned = |r: &DmarcResult| match r {
        DmarcResult::Pass => "pass",
        _ => "fail",
    };
    Some(DmarcChecked {
        source_ip: ip,
        header_from: dmarc.domain().to_ascii_lowercase(),
        envelope_from: spf_domain.to_ascii_lowercase(),
        adkim: alignment(record.adkim),
        aspf: alignment(record.aspf),
        p: policy(record.p),
        sp: policy(match record.sp {
            Policy::Unspecified => record.p,
            sp => sp,
        }),
        disposition: "none",
        dkim_aligned: aligned(dmarc.dkim_result()),
        spf_aligned: aligned(dmarc.spf_result()),
        dkim: dkim
            .iter()
            .filter_map(|o| {
                let s = o.signature()?;
                Some((s.d.to_ascii_lowercase(), s.s.clone(), dkim_word(o.result())))
            })
            .collect(),
        spf: (
            spf_domain.to_ascii_lowercase(),
            if mfrom { "mfrom" } else { "helo" },
            spf_word(spf.result()),
        ),
    })
}

fn alignment(a: Alignment) -> &'static str {
    match a {
        Alignment::Relaxed => "r",
        Alignment::Strict => "s",
    }
}

fn policy(p: Policy) -> &'static str {
    match p {
        Policy::Quarantine => "quarantine",
        Policy::Reject => "reject",
        Policy::None | Policy::Unspecified => "none",
    }
}

fn dkim_word(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

fn spf_word(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}
