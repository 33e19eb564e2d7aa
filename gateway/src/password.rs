//! Password hashing for SMTP AUTH users and the console admin account.
//!
//! PBKDF2-HMAC-SHA256 from ring with a random 16-byte salt, stored as
//! `$pbkdf2-sha256$i=ITERATIONS$SALT$HASH` (unpadded standard base64), the form Python's
//! passlib and others read. The iteration count is stored with each hash, so raising
//! [`ITERATIONS`] later leaves existing hashes verifiable. Verification is constant time
//! (ring compares the derived key) and never panics on a malformed stored value.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};
use std::num::NonZeroU32;

/// OWASP's 2023 figure for PBKDF2-HMAC-SHA256: about 0.2 s on the appliance per check,
/// which is what makes a stolen hash file slow to attack.
pub const ITERATIONS: u32 = 600_000;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
const SCHEME: &str = "pbkdf2-sha256";

/// Hashes `plain` with a fresh salt.
pub fn hash(plain: &str) -> String {
    hash_with(plain, ITERATIONS)
}

/// Hashes with an explicit iteration count (tests use a small one to stay fast).
pub fn hash_with(plain: &str, iterations: u32) -> String {
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .unwrap_or_else(|_| panic!("the system random source failed"));
    let rounds = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
    let mut out = [0u8; HASH_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        &salt,
        plain.as_bytes(),
        &mut out,
    );
    format!(
        "${SCHEME}$i={}${}${}",
        rounds,
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    )
}

/// True when `plain` matches the stored `encoded` hash; false for any malformed value.
pub fn verify(plain: &str, encoded: &str) -> bool {
    let Some((rounds, salt, expected)) = parse(encoded) else {
        return false;
    };
    pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        &salt,
        plain.as_bytes(),
        &expected,
    )
    .is_ok()
}

/// True when `encoded` is a hash this module can check (for config validation).
pub fn is_valid(encoded: &str) -> bool {
    parse(encoded).is_some()
}

fn parse(encoded: &str) -> Option<(NonZeroU32, Vec<u8>, Vec<u8>)> {
    let mut parts = encoded.strip_prefix('$')?.split('$');
    if parts.next()? != SCHEME {
        return None;
    }
    let rounds: u32 = parts.next()?.strip_prefix("i=")?.parse().ok()?;
    let salt = STANDARD_NO_PAD.decode(parts.next()?).ok()?;
    let hash = STANDARD_NO_PAD.decode(parts.next()?).ok()?;
    if parts.next().is_some() || salt.is_empty() || hash.len() != HASH_LEN {
        return None;
    }
    Some((NonZeroU32::new(rounds)?, salt, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash_with("correct horse", 1000);
        assert!(stored.starts_with("$pbkdf2-sha256$i=1000$"));
        assert!(verify("correct horse", &stored));
        assert!(!verify("correct hors", &stored));
        assert!(!verify("", &stored));
    }

    #[test]
    fn salts_differ_so_equal_passwords_hash_differently() {
        assert_ne!(hash_with("same", 10), hash_with("same", 10));
    }

    #[test]
    fn malformed_stored_values_never_verify() {
        for bad in [
            "",
            "$",
            "plain",
            "$pbkdf2-sha256$i=0$AAAA$AAAA",
            "$pbkdf2-sha256$i=x$AAAA$AAAA",
            "$pbkdf2-sha1$i=10$AAAA$AAAA",
            "$pbkdf2-sha256$i=10$!!$AAAA",
            "$pbkdf2-sha256$i=10$AAAA$AAAA",
        ] {
            assert!(!verify("x", bad), "{bad:?}");
            assert!(!is_valid(bad), "{bad:?}");
        }
    }
}
