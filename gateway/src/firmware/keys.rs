//! The Ed25519 public keys this firmware trusts for updates, embedded at build time.
//!
//! Two sources, both compiled in (no file on the appliance can add a key):
//! - `trusted.keys` beside this file: release keys, committed;
//! - the `EDGEMX_TRUSTED_KEYS` environment variable at build time: `scripts/build-image`
//!   sets it to the build's signing key (the development key in `.work/signing/` unless
//!   `EDGEMX_SIGNING_KEY` names another) plus any in `EDGEMX_EXTRA_TRUSTED_KEYS`.
//!
//! Rotation: ship an image that trusts the old and the new key, then sign with the new one;
//! drop the old key from a later image. Each key is named by its [`KeyId`].
//! Text form, one or more per line, `#` starts a comment: `ed25519:<base64 of 32 bytes>`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::fmt;

const RELEASE_KEYS: &str = include_str!("trusted.keys");
const BUILD_KEYS: Option<&str> = option_env!("EDGEMX_TRUSTED_KEYS");

/// The first 8 bytes of SHA-256 of a public key: small enough to print, names the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    pub fn of(public: &[u8]) -> KeyId {
        let digest = ring::digest::digest(&ring::digest::SHA256, public);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest.as_ref()[..8]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::bundle::hex(&self.0))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0:?} is not ed25519:<base64 of a 32-byte public key>")]
    Public(String),
    #[error("not an Ed25519 PKCS#8 private key (DER or PEM)")]
    Private,
}

/// A set of trusted public keys.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: Vec<(KeyId, [u8; 32])>,
}

impl Keyring {
    /// The keys compiled into this binary.
    pub fn embedded() -> Keyring {
        let mut ring = Keyring::default();
        for text in [Some(RELEASE_KEYS), BUILD_KEYS].into_iter().flatten() {
            // A malformed build-time key fails the build-image self-check, not the appliance.
            if let Ok(more) = Keyring::parse(text) {
                ring.extend(&more);
            }
        }
        ring
    }

    pub fn parse(text: &str) -> Result<Keyring, KeyError> {
        let mut ring = Keyring::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            for word in line.split([' ', '\t', ',']).filter(|w| !w.is_empty()) {
                let key = word
                    .strip_prefix("ed25519:")
                    .and_then(|b| STANDARD.decode(b).ok())
                    .and_then(|k| <[u8; 32]>::try_from(k).ok())
                    .ok_or_else(|| KeyError::Public(word.to_string()))?;
                ring.add(key);
            }
        }
        Ok(ring)
    }

    pub fn add(&mut self, key: [u8; 32]) {
        let id = KeyId::of(&key);
        if self.find(id).is_none() {
            self.keys.push((id, key));
        }
    }

    pub fn extend(&mut self, other: &Keyring) {
        for (_, key) in &other.keys {
            self.add(*key);
        }
    }

    pub fn find(&self, id: KeyId) -> Option<&[u8]> {
        self.keys
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, key)| &key[..])
    }

    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|(id, _)| *id)
    }
}

/// The text form of a public key.
pub fn public_text(key: &Ed25519KeyPair) -> String {
    format!("ed25519:{}", STANDARD.encode(key.public_key().as_ref()))
}

/// Reads a PKCS#8 Ed25519 private key, DER (`openssl genpkey -outform DER`, ring) or PEM.
pub fn private(bytes: &[u8]) -> Result<Ed25519KeyPair, KeyError> {
    let der = match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN PRIVATE KEY-----") => {
            let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
            STANDARD
                .decode(body.trim())
                .map_err(|_| KeyError::Private)?
        }
        _ => bytes.to_vec(),
    };
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|_| KeyError::Private)
}
