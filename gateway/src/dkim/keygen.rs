//! `edgemx dkim keygen`: a new signing key written as PKCS#8 PEM (mode 0600) and the DNS
//! TXT record that publishes its public half.
//!
//! Ed25519 keys come from ring. ring cannot generate RSA keys, so RSA-2048 generation uses
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
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|e| format!("Ed25519 key generation failed: {e}"))?;
            let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .map_err(|e| format!("Ed25519 key unusable: {e}"))?;
            Ok(KeyPair {
                algorithm,
                public: pair.public_key().as_ref().to_vec(),
                pkcs8: pkcs8.as_ref().to_vec(),
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
        let k = match self.algorithm {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        };
        format!("v=DKIM1; k={k}; p={}", STANDARD.encode(&self.public))
    }
}

/// The zone-file line publishing `record`: `SELECTOR._domainkey.DOMAIN IN TXT "…" "…"`, the
/// text split into strings of at most 255 bytes (RFC 1035 §3.3.14; RFC 6376 §3.6.2.2 joins
/// them back).
pub fn zone_entry(domain: &str, selector: &str, record: &str) -> String {
    let strings: Vec<String> = record
        .as_bytes()
        .chunks(255)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect();
    format!(
        "{selector}._domainkey.{domain} IN TXT {}",
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
            line.starts_with("s1._domainkey.example.com IN TXT \""),
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
