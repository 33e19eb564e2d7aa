//! `edgemx dkim keygen`: a new signing key written as PKCS#8 PEM (mode 0600) and the DNS
//! TXT record that publishes its public half; `edgemx dkim record`: the record again, from
//! an existing key file.
//!
//! Ed25519 keys are written as RFC 8410 PKCS#8 v1 (the private seed only): ring's own
//! format is PKCS#8 v2 with the public key attached, which OpenSSL 3.0 refuses to read. The
//! seed comes from ring's system random source. ring cannot generate RSA keys, so RSA-2048 generation uses
//! the RustCrypto `rsa` crate (0.9) — for generation only: signing always goes through
//! ring, so `rsa`'s non-constant-time private operations (RUSTSEC-2023-0071) never touch
//! a key in service.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::KeyPair as _;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// RSA modulus size: RFC 8301 asks for at least 1024 and recommends 2048.
pub const RSA_BITS: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

/// A fresh key: the private half as PKCS#8 DER, the public half as DKIM publishes it.
pub struct KeyPair {
    pub algorithm: Algorithm,
    pkcs8: Vec<u8>,
    /// RSA: SubjectPublicKeyInfo DER (what `openssl rsa -pubout` gives); Ed25519: the raw
    /// 32-byte key (RFC 8463 §4.2).
    public: Vec<u8>,
}

pub fn generate(algorithm: Algorithm) -> Result<KeyPair, String> {
    match algorithm {
        Algorithm::Ed25519 => {
            use ring::rand::SecureRandom;
            let mut seed = [0u8; 32];
            ring::rand::SystemRandom::new()
                .fill(&mut seed)
                .map_err(|e| format!("Ed25519 key generation failed: {e}"))?;
            let mut pkcs8 = ED25519_PKCS8_V1_PREFIX.to_vec();
            pkcs8.extend_from_slice(&seed);
            let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
                .map_err(|e| format!("Ed25519 key unusable: {e}"))?;
            Ok(KeyPair {
                algorithm,
                public: pair.public_key().as_ref().to_vec(),
                pkcs8,
            })
        }
        Algorithm::Rsa => {
            use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
            let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                .map_err(|e| format!("RSA key generation failed: {e}"))?;
            let pkcs8 = private
                .to_pkcs8_der()
                .map_err(|e| format!("RSA key encoding failed: {e}"))?;
            let public = private
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| format!("RSA public key encoding failed: {e}"))?;
            Ok(KeyPair {
                algorithm,
                pkcs8: pkcs8.as_bytes().to_vec(),
                public: public.as_bytes().to_vec(),
            })
        }
    }
}

/// DER of an RFC 8410 OneAsymmetricKey v1 for Ed25519 up to the 32-byte seed: SEQUENCE,
/// version 0, AlgorithmIdentifier { id-Ed25519 (1.3.101.112) }, OCTET STRING { OCTET STRING }.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The algorithm and DKIM public key (as [`KeyPair`] holds it) of a PEM private key file:
/// PKCS#8 Ed25519 (v1 or v2) or RSA, or PKCS#1 RSA.
pub fn public_of(pem: &[u8]) -> Result<(Algorithm, Vec<u8>), String> {
    use ring::signature::Ed25519KeyPair;
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let der =
        PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("not a PEM private key: {e}"))?;
    let rsa = match &der {
        PrivateKeyDer::Pkcs8(pkcs8) => {
            if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8.secret_pkcs8_der()) {
                return Ok((Algorithm::Ed25519, pair.public_key().as_ref().to_vec()));
            }
            rsa::RsaPrivateKey::from_pkcs8_der(pkcs8.secret_pkcs8_der()).map_err(|e| e.to_string())
        }
        PrivateKeyDer::Pkcs1(pkcs1) => {
            rsa::RsaPrivateKey::from_pkcs1_der(pkcs1.secret_pkcs1_der()).map_err(|e| e.to_string())
        }
        _ => return Err("an EC (SEC1) key: DKIM signs with RSA or Ed25519 only".into()),
    };
    let public = rsa
        .map_err(|e| format!("neither an Ed25519 nor an RSA key: {e}"))?
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| format!("RSA public key encoding failed: {e}"))?;
    Ok((Algorithm::Rsa, public.as_bytes().to_vec()))
}

/// The TXT record text for a public key: `v=DKIM1; k=rsa; p=…`.
pub fn record_text(algorithm: Algorithm, public: &[u8]) -> String {
    let k = match algorithm {
        Algorithm::Rsa => "rsa",
        Algorithm::Ed25519 => "ed25519",
    };
    format!("v=DKIM1; k={k}; p={}", STANDARD.encode(public))
}

impl KeyPair {
    /// `-----BEGIN PRIVATE KEY-----` PEM, lines of 64 characters (RFC 7468).
    pub fn pem(&self) -> String {
        let encoded = STANDARD.encode(&self.pkcs8);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }

    /// The TXT record text: `v=DKIM1; k=rsa; p=…`.
    pub fn record(&self) -> String {
        record_text(self.algorithm, &self.public)
    }
}

/// The zone-file line publishing `record`: `SELECTOR._domainkey.DOMAIN. IN TXT "…" "…"`, the
/// owner absolute (a trailing dot, or a zone file appends its origin:
/// `…example.com.example.com`), the text split into strings of at most 255 bytes
/// (RFC 1035 §3.3.14; RFC 6376 §3.6.2.2 joins them back).
pub fn zone_entry(domain: &str, selector: &str, record: &str) -> String {
    let strings: Vec<String> = record
        .as_bytes()
        .chunks(255)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect();
    format!(
        "{selector}._domainkey.{domain}. IN TXT {}",
        strings.join(" ")
    )
}

/// Writes `pem` to `path`, creating its directory (0700) and the file (0600). An existing
/// file is never overwritten: replacing a key in service breaks every signature in flight.
pub fn write_key(path: &Path, pem: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(pem.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_entry_splits_long_records_into_255_byte_strings() {
        let record = format!("v=DKIM1; k=rsa; p={}", "A".repeat(400));
        let line = zone_entry("example.com", "s1", &record);
        assert!(
            line.starts_with("s1._domainkey.example.com. IN TXT \""),
            "{line}"
        );
        let strings: Vec<&str> = line
            .split_once(" TXT ")
            .unwrap()
            .1
            .split('"')
            .filter(|s| !s.trim().is_empty())
            .collect();
        assert_eq!(strings.len(), 2);
        assert_eq!(strings[0].len(), 255);
        assert_eq!(strings.concat(), record);
    }

    #[test]
    fn ed25519_record_carries_the_raw_32_byte_key() {
        let pair = generate(Algorithm::Ed25519).unwrap();
        let record = pair.record();
        let p = record.strip_prefix("v=DKIM1; k=ed25519; p=").unwrap();
        assert_eq!(STANDARD.decode(p).unwrap().len(), 32);
        assert!(pair.pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
    }
}
