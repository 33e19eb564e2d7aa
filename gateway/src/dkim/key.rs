//! DKIM private keys read from PEM files: RSA (PKCS#8 or PKCS#1) and Ed25519 (PKCS#8),
//! turned into mail-auth signers (ring, relaxed/relaxed).

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::dkim::{Canonicalization, DkimSigner, Done, Signature};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;

/// One selector's key, ready to sign.
pub enum Key {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

impl Key {
    /// Reads the PEM key at `path` for `domain`/`selector`, signing `headers`.
    pub fn load(
        path: &Path,
        domain: &str,
        selector: &str,
        headers: &[String],
    ) -> Result<Key, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        let der = PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|e| format!("not a PEM private key: {e}"))?;
        Key::from_der(der, domain, selector, headers)
    }

    pub fn from_der(
        der: PrivateKeyDer<'_>,
        domain: &str,
        selector: &str,
        headers: &[String],
    ) -> Result<Key, String> {
        let headers = headers.to_vec();
        match der {
            PrivateKeyDer::Pkcs8(pkcs8) => {
                // PKCS#8 holds either algorithm; the algorithm OID decides which parse works.
                if let Ok(key) =
                    Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der())
                {
                    return Ok(Key::Ed25519(relaxed(
                        DkimSigner::from_key(key)
                            .domain(domain)
                            .selector(selector)
                            .headers(headers),
                    )));
                }
                let key = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(pkcs8))
                    .map_err(|e| format!("neither an Ed25519 nor a usable RSA key: {e}"))?;
                Ok(Key::Rsa(relaxed(
                    DkimSigner::from_key(key)
                        .domain(domain)
                        .selector(selector)
                        .headers(headers),
                )))
            }
            PrivateKeyDer::Pkcs1(_) => {
                let key = RsaKey::<Sha256>::from_key_der(der)
                    .map_err(|e| format!("not a usable RSA key: {e}"))?;
                Ok(Key::Rsa(relaxed(
                    DkimSigner::from_key(key)
                        .domain(domain)
                        .selector(selector)
                        .headers(headers),
                )))
            }
            _ => Err("an EC (SEC1) key: DKIM signs with RSA or Ed25519 only".into()),
        }
    }

    pub fn sign(&self, message: &[u8]) -> mail_auth::Result<Signature> {
        match self {
            Key::Rsa(signer) => signer.sign(message),
            Key::Ed25519(signer) => signer.sign(message),
        }
    }

    pub fn algorithm(&self) -> &'static str {
        match self {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        }
    }
}

fn relaxed<T: mail_auth::common::crypto::SigningKey>(
    signer: DkimSigner<T, Done>,
) -> DkimSigner<T, Done> {
    signer
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}
