//! DKIM signing of outbound mail (RFC 6376, RFC 8463) and key generation.
//!
//! Owns the signing keys (`[[auth.dkim]]`, read once at start) and the choice of key for a
//! message: the domain of its From: header, or the nearest parent domain we hold keys for
//! (DMARC's relaxed alignment accepts it). Every key of that domain signs, so a domain can
//! publish RSA and Ed25519 side by side. Signatures are relaxed/relaxed and made over the
//! message exactly as it will be relayed: delivery sends the stored bytes unchanged and
//! rewriting touches only the envelope. It does no verification (that is
//! [`crate::policy::auth`]) and no I/O after start.

pub mod cli;
mod key;
pub mod keygen;

pub use key::Key;

use crate::config::Config;
use mail_auth::AuthenticatedMessage;
use mail_auth::common::headers::HeaderWriter;
use std::collections::HashMap;

/// A key that could not be loaded at start, named by its configuration key.
#[derive(Debug, thiserror::Error)]
#[error("auth.dkim[{index}].key = {path}: {problem}")]
pub struct KeyError {
    pub index: usize,
    pub path: String,
    pub problem: String,
}

/// The signing keys, by `d=` domain.
#[derive(Default)]
pub struct Signer {
    keys: HashMap<String, Vec<(String, Key)>>,
}

impl Signer {
    /// Loads every `[[auth.dkim]]` key; the first unreadable or unusable one is an error.
    pub fn load(config: &Config) -> Result<Signer, KeyError> {
        let mut signer = Signer::default();
        for (index, entry) in config.auth.dkim.iter().enumerate() {
            let path = entry.path(&config.data_dir);
            let key = Key::load(
                &path,
                &entry.domain,
                &entry.selector,
                &config.auth.sign_headers,
            )
            .map_err(|problem| KeyError {
                index,
                path: path.display().to_string(),
                problem,
            })?;
            signer.add(&entry.domain, &entry.selector, key);
        }
        Ok(signer)
    }

    pub fn add(&mut self, domain: &str, selector: &str, key: Key) {
        self.keys
            .entry(domain.to_ascii_lowercase())
            .or_default()
            .push((selector.to_string(), key));
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `DKIM-Signature` header fields to prepend to `message`, one per key of its From:
    /// domain; empty when we hold no key for it. `Err` carries a reason for the log.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        if self.keys.is_empty() {
            return Ok(Vec::new());
        }
        let Some(from) = from_domain(message) else {
            return Ok(Vec::new());
        };
        let Some((domain, keys)) = self.keys_for(&from) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (selector, key) in keys {
            let signature = key
                .sign(message)
                .map_err(|e| format!("d={domain} s={selector}: {e}"))?;
            out.extend_from_slice(signature.to_header().as_bytes());
        }
        Ok(out)
    }

    /// Keys of `domain` or of its nearest parent.
    fn keys_for<'a>(&'a self, domain: &'a str) -> Option<(&'a str, &'a [(String, Key)])> {
        let mut name = domain;
        loop {
            if let Some(keys) = self.keys.get(name) {
                return Some((name, keys));
            }
            name = name.split_once('.')?.1;
        }
    }
}

/// The lower-case domain of the first From: address.
fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = AuthenticatedMessage::parse(message)?;
    let first = parsed.from.first()?;
    let domain = first.rsplit_once('@')?.1.trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}
