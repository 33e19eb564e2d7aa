//! Client certificates on our STARTTLS (cloud connectors): asked for, never required, and
//! judged after the handshake.
//!
//! The handshake accepts any certificate (or none) so that ordinary MX traffic keeps
//! working: many sending servers present a certificate from some unrelated CA when asked,
//! and failing their handshake would lose their mail. Whether a presented chain earns relay
//! is decided by [`ClientTrust::check`]: it must lead to `relay.client_ca` and the leaf must
//! carry one of `relay.client_names` as subject CN or DNS SAN.

use super::TlsError;
use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use std::sync::Arc;

/// Asks for a certificate, hinting the trusted CAs; accepts whatever comes.
#[derive(Debug)]
pub struct AskClientCert {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The CA and names that grant relay to a client certificate.
#[derive(Debug)]
pub struct ClientTrust {
    verifier: Arc<dyn ClientCertVerifier>,
    hints: Vec<DistinguishedName>,
    names: Vec<String>,
}

impl ClientTrust {
    pub fn new(
        roots: &[CertificateDer<'static>],
        names: &[String],
    ) -> Result<ClientTrust, TlsError> {
        let mut store = rustls::RootCertStore::empty();
        for cert in roots {
            store.add(cert.clone())?;
        }
        let hints = store.subjects();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider)
            .build()
            .map_err(|e| TlsError::Generate(format!("client certificate verifier: {e}")))?;
        Ok(ClientTrust {
            verifier,
            hints,
            names: names.to_vec(),
        })
    }

    /// The verifier to install in the server configuration.
    pub fn ask(&self) -> Arc<AskClientCert> {
        Arc::new(AskClientCert {
            hints: self.hints.clone(),
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        })
    }

    /// The configured name `chain` (leaf first) earns, or why it earns nothing.
    pub fn check(&self, chain: &[CertificateDer<'_>]) -> Result<String, String> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err("no client certificate".into());
        };
        self.verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(|e| format!("not trusted: {e}"))?;
        let presented = names(leaf);
        self.names
            .iter()
            .find(|pattern| presented.iter().any(|name| matches(pattern, name)))
            .cloned()
            .ok_or_else(|| format!("names {presented:?} not in relay.client_names"))
    }
}

/// The leaf's DNS SANs and subject common names, lower case.
pub fn names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok(parsed) = webpki::EndEntityCert::try_from(cert) else {
        return Vec::new();
    };
    let mut out: Vec<String> = parsed
        .valid_dns_names()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    out.extend(common_names(parsed.subject()));
    out
}

/// `pattern` is a configured name (lower case); `*.x` matches exactly one label under x.
fn matches(pattern: &str, name: &str) -> bool {
    let name = name.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(parent) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && label != "*" && rest == parent),
        None => name == pattern,
    }
}

/// Common names (OID 2.5.4.3) in a DER Name without its outer SEQUENCE: a list of SETs of
/// SEQUENCE { OID, value }.
fn common_names(mut rdns: &[u8]) -> Vec<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let mut out = Vec::new();
    while let Some((0x31, mut set, rest)) = tlv(rdns) {
        rdns = rest;
        while let Some((0x30, attr, more)) = tlv(set) {
            set = more;
            if let Some((0x06, oid, value)) = tlv(attr)
                && oid == CN
                && let Some((_, text, _)) = tlv(value)
            {
                out.push(String::from_utf8_lossy(text).to_ascii_lowercase());
            }
        }
    }
    out
}

/// One DER tag-length-value: (tag, content, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || input.len() < n {
            return None;
        }
        let len = input[..n]
            .iter()
            .fold(0usize, |l, b| l << 8 | usize::from(*b));
        input = &input[n..];
        len
    };
    (input.len() >= len).then(|| (tag, &input[..len], &input[len..]))
}

impl ClientCertVerifier for AskClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_patterns_match_one_label() {
        assert!(matches(
            "connector.example.com",
            "Connector.example.com".to_ascii_lowercase().as_str()
        ));
        assert!(matches("*.outlook.com", "mail.outlook.com"));
        assert!(!matches("*.outlook.com", "a.mail.outlook.com"));
        assert!(!matches("*.outlook.com", "outlook.com"));
        assert!(!matches("*.outlook.com", "*.outlook.com"));
        assert!(!matches("a.example.com", "b.example.com"));
    }

    #[test]
    fn names_come_from_subject_cn_and_dns_sans() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["san.example.com".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "CN.Example.com");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(names(cert.der()), ["san.example.com", "cn.example.com"]);
        assert!(names(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).is_empty());
    }

    #[test]
    fn truncated_der_is_refused_not_read_past_its_end() {
        assert_eq!(tlv(&[0x30, 0x05, 1, 2]), None);
        assert_eq!(tlv(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(
            tlv(&[0x30, 0x81, 0x01, 9, 8]),
            Some((0x30, &[9u8][..], &[8u8][..]))
        );
        assert!(common_names(&[0x31, 0x7f, 0x30]).is_empty());
    }
}
