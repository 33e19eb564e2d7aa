//! The certificates the gateway presents and the choice between them per handshake.
//!
//! `tls.certificate` (or the generated ECDSA P-256 one) comes first: ECDSA costs about a
//! third of RSA-2048 per full handshake. `tls.rsa_certificate`, when set, is served to
//! clients that cannot take the first one: their signature algorithms leave out its
//! scheme, or (TLS 1.2) none of their cipher suites signs with its algorithm. The first
//! certificate must not be RSA then and the second must be (checked by `files.rs` before
//! the gateway runs on the configuration, and again here), so the order is the preference.

use super::TlsError;
use rustls::SignatureAlgorithm;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// Picks, per ClientHello, the first certificate the client can verify.
#[derive(Debug)]
pub struct ByAlgorithm {
    /// In order of preference; never empty.
    keys: Vec<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

impl ByAlgorithm {
    /// `first` is the preferred certificate, `rsa` the RSA one beside it.
    pub fn new(
        first: Arc<CertifiedKey>,
        rsa: Option<Arc<CertifiedKey>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<ByAlgorithm, TlsError> {
        if let Some(rsa) = &rsa {
            pair(Some(&first), rsa)?;
        }
        Ok(ByAlgorithm {
            keys: std::iter::once(first).chain(rsa).collect(),
            provider,
        })
    }

    fn usable(&self, key: &CertifiedKey, hello: &ClientHello<'_>) -> bool {
        let algorithm = key.key.algorithm();
        key.key.choose_scheme(hello.signature_schemes()).is_some()
            && hello.cipher_suites().iter().any(|offered| {
                self.provider.cipher_suites.iter().any(|ours| {
                    ours.suite() == *offered && ours.usable_for_signature_algorithm(algorithm)
                })
            })
    }
}

impl ResolvesServerCert for ByAlgorithm {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A client that can take none of them gets the first, and rustls refuses the
        // handshake with the alert it would have sent with a single certificate.
        self.keys
            .iter()
            .find(|key| self.usable(key, &hello))
            .or(self.keys.first())
            .cloned()
    }
}

/// The RSA slot holds an RSA key, and the first certificate (when configured; the
/// generated one is ECDSA) is not RSA too, else the pair would choose nothing.
pub fn pair(first: Option<&CertifiedKey>, rsa: &CertifiedKey) -> Result<(), TlsError> {
    if rsa.key.algorithm() != SignatureAlgorithm::RSA {
        return Err(TlsError::Setting {
            key: "tls.rsa_private_key",
            reason: format!("not an RSA key but {}", algorithm_name(rsa)),
        });
    }
    if first.is_some_and(|first| first.key.algorithm() == SignatureAlgorithm::RSA) {
        return Err(TlsError::Setting {
            key: "tls.certificate",
            reason: "has an RSA key; with tls.rsa_certificate set it must be the ECDSA one".into(),
        });
    }
    Ok(())
}

/// A chain and its key, checked to belong together.
pub fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    Ok(Arc::new(CertifiedKey::from_der(chain, key, provider)?))
}

/// `ECDSA`, `RSA`, `ED25519`: the key's signature algorithm, for errors and `show tls`.
pub fn algorithm_name(key: &CertifiedKey) -> String {
    format!("{:?}", key.key.algorithm())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    const RSA_CERT: &str = include_str!("testdata/rsa-2048.pem");
    const RSA_KEY: &str = include_str!("testdata/rsa-2048.key");

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn ecdsa() -> Arc<CertifiedKey> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["gateway.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        certified(vec![cert.der().clone()], der, &provider()).unwrap()
    }

    fn rsa() -> Arc<CertifiedKey> {
        let chain = CertificateDer::pem_slice_iter(RSA_CERT.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(RSA_KEY.as_bytes()).unwrap();
        certified(chain, key, &provider()).unwrap()
    }

    /// Runs a handshake in memory with a client limited to `schemes` (all when empty)
    /// and `suites`, and returns the algorithm of the certificate it was shown.
    fn shown(
        resolver: Arc<ByAlgorithm>,
        schemes: &[rustls::SignatureScheme],
        tls12_only: bool,
    ) -> Result<String, rustls::Error> {
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        let verifier = Arc::new(Recorder {
            schemes: schemes.to_vec(),
            seen: Default::default(),
        });
        let mut client_provider = rustls::crypto::ring::default_provider();
        if tls12_only {
            // Old clients that know only RSA key exchange suites.
            client_provider.cipher_suites.retain(|s| {
                matches!(
                    s.suite(),
                    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                        | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
                )
            });
        }
        let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(client_provider))
            .with_protocol_versions(versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("gateway.test").unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut s = rustls::ServerConnection::new(Arc::new(server)).unwrap();
        while c.is_handshaking() || s.is_handshaking() {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets()?;
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets()?;
        }
        let seen = verifier.seen.lock().unwrap().clone();
        Ok(seen.expect("a certificate was shown"))
    }

    /// Accepts any certificate, offers `schemes` (all of ring's when empty) and records
    /// the public key algorithm of the leaf it was shown (from its DER: RSA or EC).
    #[derive(Debug)]
    struct Recorder {
        schemes: Vec<rustls::SignatureScheme>,
        seen: std::sync::Mutex<Option<String>>,
    }

    impl rustls::client::danger::ServerCertVerifier for Recorder {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            // rsaEncryption 1.2.840.113549.1.1.1 and id-ecPublicKey 1.2.840.10045.2.1.
            let der = end_entity.as_ref();
            let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
            let kind = if has(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]) {
                "RSA"
            } else if has(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]) {
                "ECDSA"
            } else {
                "other"
            };
            *self.seen.lock().unwrap() = Some(kind.into());
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            if self.schemes.is_empty() {
                rustls::crypto::ring::default_provider()
                    .signature_verification_algorithms
                    .supported_schemes()
            } else {
                self.schemes.clone()
            }
        }
    }

    #[test]
    fn ecdsa_is_preferred_and_rsa_goes_to_clients_without_ecdsa() {
        use rustls::SignatureScheme as S;
        let both = Arc::new(ByAlgorithm::new(ecdsa(), Some(rsa()), provider()).unwrap());
        assert_eq!(shown(both.clone(), &[], false).unwrap(), "ECDSA");
        let rsa_only = [S::RSA_PSS_SHA256, S::RSA_PKCS1_SHA256];
        assert_eq!(shown(both.clone(), &rsa_only, false).unwrap(), "RSA");
        // Offers ECDSA signatures but only ECDHE_RSA suites (TLS 1.2).
        assert_eq!(shown(both, &[], true).unwrap(), "RSA");
        // Without the RSA certificate such a client cannot be served.
        let alone = Arc::new(ByAlgorithm::new(ecdsa(), None, provider()).unwrap());
        assert!(shown(alone, &rsa_only, false).is_err());
    }

    #[test]
    fn the_rsa_slot_takes_only_rsa_and_the_first_must_not_be_rsa() {
        let swapped = ByAlgorithm::new(rsa(), Some(ecdsa()), provider()).unwrap_err();
        assert!(
            swapped.to_string().contains("tls.rsa_private_key"),
            "{swapped}"
        );
        let both_rsa = ByAlgorithm::new(rsa(), Some(rsa()), provider()).unwrap_err();
        assert!(
            both_rsa.to_string().contains("tls.certificate"),
            "{both_rsa}"
        );
        assert_eq!(algorithm_name(&rsa()), "RSA");
        assert_eq!(algorithm_name(&ecdsa()), "ECDSA");
    }
}
