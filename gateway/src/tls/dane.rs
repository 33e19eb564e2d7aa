//! TLSA records and the DANE check of a presented chain (RFC 6698, RFC 7671, RFC 7672 §3).
//!
//! Only what RFC 7672 §3.1.3 makes usable for SMTP counts: DANE-TA(2) and DANE-EE(3) with
//! selectors Cert(0)/SPKI(1) and matching Full(0)/SHA2-256(1)/SHA2-512(2). PKIX-TA(0) and
//! PKIX-EE(1) records, and unknown values, are unusable and ignored; a TLSA RRset with no
//! usable record is as if there were none.
//!
//! DANE-EE matches the leaf alone: no name, expiry or chain check (RFC 7672 §3.1.1). DANE-TA
//! matches a certificate of the presented chain (the trust anchor must be in the chain, we
//! do not keep certificates of our own); the leaf must chain to it, be valid now and name the
//! MX host (RFC 7672 §3.2.2).

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::fmt;

/// One TLSA record's fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

pub const DANE_TA: u8 = 2;
pub const DANE_EE: u8 = 3;

/// Why a chain did not satisfy the TLSA records, named as RFC 8460 §4.3 result types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub result: &'static str,
    pub text: String,
}

impl Tlsa {
    /// Usable for SMTP (RFC 7672 §3.1.3).
    pub fn usable(&self) -> bool {
        matches!(self.usage, DANE_TA | DANE_EE)
            && self.selector <= 1
            && match self.matching {
                0 => !self.data.is_empty(),
                1 => self.data.len() == 32,
                2 => self.data.len() == 64,
                _ => false,
            }
    }

    /// The certificate's selected part, matched as this record says.
    pub fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let selected: &[u8] = match self.selector {
            0 => cert.as_ref(),
            1 => match webpki::EndEntityCert::try_from(cert) {
                Ok(parsed) => return self.matches_bytes(parsed.subject_public_key_info().as_ref()),
                Err(_) => return false,
            },
            _ => return false,
        };
        self.matches_bytes(selected)
    }

    fn matches_bytes(&self, selected: &[u8]) -> bool {
        use ring::digest::{SHA256, SHA512, digest};
        match self.matching {
            0 => selected == self.data.as_slice(),
            1 => digest(&SHA256, selected).as_ref() == self.data.as_slice(),
            2 => digest(&SHA512, selected).as_ref() == self.data.as_slice(),
            _ => false,
        }
    }
}

/// Presentation form, as RFC 8460 quotes policies: `3 1 1 ABCD…`.
impl fmt::Display for Tlsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} ", self.usage, self.selector, self.matching)?;
        self.data.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

/// Checks the chain the peer presented against the usable `records`; `host` is the MX host
/// name (the reference identity for DANE-TA).
pub fn check(
    records: &[Tlsa],
    host: &str,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), Mismatch> {
    let usable = || records.iter().filter(|r| r.usable());
    if usable().any(|r| r.usage == DANE_EE && r.matches(end_entity)) {
        return Ok(());
    }
    let mut last = None;
    for anchor in intermediates {
        if !usable().any(|r| r.usage == DANE_TA && r.matches(anchor)) {
            continue;
        }
        match chains_to(anchor, host, end_entity, intermediates, now) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Mismatch {
        result: "tlsa-invalid",
        text: format!("the certificate of {host} matches none of its TLSA records"),
    }))
}

/// The leaf chains to `anchor` through the presented certificates, is valid now and names
/// `host`.
fn chains_to(
    anchor: &CertificateDer<'_>,
    host: &str,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), Mismatch> {
    let fail = |result: &'static str, text: String| Mismatch { result, text };
    let trust = webpki::anchor_from_trusted_cert(anchor)
        .map_err(|e| fail("tlsa-invalid", format!("unusable DANE-TA certificate: {e}")))?;
    let leaf = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|e| fail("validation-failure", format!("unparsable certificate: {e}")))?;
    let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    leaf.verify_for_usage(
        algorithms.all,
        &[trust],
        intermediates,
        now,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| match e {
        webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. } => fail(
            "certificate-expired",
            format!("certificate of {host} not valid now: {e:?}"),
        ),
        e => fail(
            "certificate-not-trusted",
            format!("certificate of {host} does not chain to its DANE-TA record: {e:?}"),
        ),
    })?;
    let name = ServerName::try_from(host)
        .map_err(|_| fail("certificate-host-mismatch", format!("bad host name {host}")))?;
    leaf.verify_is_valid_for_subject_name(&name).map_err(|_| {
        fail(
            "certificate-host-mismatch",
            format!("certificate does not name {host} (DANE-TA)"),
        )
    })
}

#[cfg(test)]
#[path = "dane_tests.rs"]
mod tests;
