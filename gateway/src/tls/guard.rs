//! A transport-security policy (DANE or MTA-STS) laid over one connection's TLS policy.
//!
//! The delivery walk makes one [`Guard`] per connection attempt to an MX host; the SMTP
//! client hands it to [`super::ClientConfigs::guarded`] and records what happened in it
//! (STARTTLS missing or refused, the certificate check, the handshake), so the walk can report
//! the attempt as RFC 8460 counts it. An enforced guard decides the certificate check and
//! makes TLS mandatory; one that is not (`log-only`, `testing`, no policy) only records,
//! and the route's own TLS policy decides as it would without it.

use super::dane::{self, Tlsa};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::{Arc, Mutex};

/// The check a guard makes of the presented certificate.
#[derive(Debug, Clone)]
pub enum Check {
    /// No policy: only whether TLS was negotiated is recorded.
    Nothing,
    /// The usable TLSA records of the MX host (RFC 7672).
    Dane(Vec<Tlsa>),
    /// WebPKI chain and the MX host's name (RFC 8461 §4.2).
    WebPki(Arc<dyn ServerCertVerifier>),
}

/// What one attempt came to: `Ok` once TLS was negotiated and the check passed, else the
/// RFC 8460 result type and a text for the log.
pub type Verdict = Result<(), (&'static str, String)>;

#[derive(Debug)]
pub struct Guard {
    pub check: Check,
    /// A failed check fails the handshake and TLS is mandatory.
    pub enforce: bool,
    /// The MX host: SNI and the name checked (DANE-TA, WebPKI).
    pub host: String,
    verdict: Mutex<Option<Verdict>>,
}

impl Guard {
    pub fn new(check: Check, enforce: bool, host: &str) -> Guard {
        Guard {
            check,
            enforce,
            host: host.to_owned(),
            verdict: Mutex::new(None),
        }
    }

    /// TLS must be used whatever the route's policy says.
    pub fn mandatory(&self) -> bool {
        self.enforce && !matches!(self.check, Check::Nothing)
    }

    /// Records the outcome unless one is already recorded (the first failure is the cause).
    pub fn record(&self, verdict: Verdict) {
        let mut slot = self.verdict.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() || matches!(slot.as_ref(), Some(Ok(()))) && verdict.is_err() {
            *slot = Some(verdict);
        }
    }

    /// `None`: the attempt never reached the TLS stage (connection or greeting failed).
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn examine(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        ocsp: &[u8],
        now: UnixTime,
    ) -> Verdict {
        match &self.check {
            Check::Nothing => Ok(()),
            Check::Dane(records) => {
                dane::check(records, &self.host, end_entity, intermediates, now)
                    .map_err(|m| (m.result, m.text))
            }
            Check::WebPki(verifier) => {
                let name = ServerName::try_from(self.host.clone()).map_err(|_| {
                    (
                        "certificate-host-mismatch",
                        format!("bad name {}", self.host),
                    )
                })?;
                verifier
                    .verify_server_cert(end_entity, intermediates, &name, ocsp, now)
                    .map(|_| ())
                    .map_err(|e| (webpki_result(&e), e.to_string()))
            }
        }
    }
}

/// RFC 8460 §4.3 result type of a WebPKI verification error.
fn webpki_result(e: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "certificate-expired"
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => "certificate-host-mismatch",
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "certificate-not-trusted"
        }
        _ => "validation-failure",
    }
}

/// The verifier a guarded connection uses: the guard's check, then (unless the guard is
/// enforced) the route policy's own verifier, which decides.
#[derive(Debug)]
pub struct Guarded {
    pub guard: Arc<Guard>,
    pub base: Arc<dyn ServerCertVerifier>,
}

impl ServerCertVerifier for Guarded {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.guard.examine(end_entity, intermediates, ocsp, now);
        self.guard.record(verdict.clone());
        if self.guard.mandatory() {
            return verdict
                .map(|()| ServerCertVerified::assertion())
                .map_err(|(_, text)| rustls::Error::General(text));
        }
        self.base
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.base.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.base.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.base.supported_verify_schemes()
    }
}
