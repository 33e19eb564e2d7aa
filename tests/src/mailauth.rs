//! Shared pieces of the email-authentication scenarios (`auth`, `dmarc`, `dkim` tests):
//! the sender zone, a gateway with checks on, test messages, DKIM keys and verification with
//! mail-auth against the loopback DNS server.

use crate::dns::{DnsServer, Zone};
use crate::{FakeBackend, Gateway};
use edgemx::config::Dns;
use edgemx::dkim::keygen::{self, Algorithm};
use edgemx::dkim::{Key, Signer};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
use std::path::Path;

/// SPF and DMARC records for every sender these scenarios use. The client says
/// `EHLO client.test` from 127.0.0.1.
pub fn zone() -> Zone {
    Zone::new()
        .txt("client.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("pass.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("fail.test", "v=spf1 ip4:192.0.2.1 -all")
        .txt("soft.test", "v=spf1 ip4:192.0.2.1 ~all")
        .txt("reject.test", "v=spf1 ip4:192.0.2.1 -all")
        .txt("_dmarc.reject.test", "v=DMARC1; p=reject")
        .txt("quarantine.test", "v=spf1 ip4:192.0.2.1 -all")
        .txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine")
        .servfail("broken.test")
        .servfail("_dmarc.broken.test")
}

pub async fn start(dns: &DnsServer, backend: &FakeBackend, auth: &str) -> Gateway {
    let extra = format!("{}\n[auth]\nverify = true\n{auth}\n", dns.config());
    Gateway::start(backend.addr(), &extra).await
}

pub fn message(from: &str, extra_headers: &str) -> String {
    format!(
        "{extra_headers}From: <{from}>\r\nTo: <user@example.com>\r\nSubject: auth\r\nMessage-ID: <{from}.auth@test>\r\n\r\nHello.\r\n"
    )
}

/// Every Authentication-Results field of a received message, unfolded, in order.
pub fn auth_results(data: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let unfolded = head.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("authentication-results"))
        .map(|(_, value)| value.trim().to_string())
        .collect()
}

pub const HEADERS: &[&str] = &["From", "To", "Subject", "Date", "Message-ID"];

/// A message with the headers our test signatures cover.
pub fn signed_message(from: &str) -> String {
    format!(
        "From: Alice <{from}>\r\nTo: <user@example.com>\r\nSubject: signed\r\nDate: Thu, 26 Nov 2026 09:00:00 +0000\r\nMessage-ID: <{from}.dkim@test>\r\n\r\nHello, signed world.\r\n"
    )
}

/// A fresh key of `algorithm` for `domain`/`selector`, its PEM file under `dir` and the TXT
/// record text to publish.
pub fn new_key(dir: &Path, algorithm: Algorithm, domain: &str, selector: &str) -> (Key, String) {
    let pair = keygen::generate(algorithm).unwrap();
    let path = dir.join(format!("{domain}.{selector}.key"));
    keygen::write_key(&path, &pair.pem()).unwrap();
    let headers: Vec<String> = HEADERS.iter().map(|h| h.to_string()).collect();
    (
        Key::load(&path, domain, selector, &headers).unwrap(),
        pair.record(),
    )
}

/// Signs `text` with `key` the way the gateway does: signature fields prepended.
pub fn signed(key: Key, domain: &str, selector: &str, text: &str) -> Vec<u8> {
    let mut signer = Signer::default();
    signer.add(domain, selector, key);
    let mut out = signer.sign(text.as_bytes()).unwrap();
    assert!(!out.is_empty(), "no signature for {domain}");
    out.extend_from_slice(text.as_bytes());
    out
}

/// What mail-auth says of each DKIM signature of `message`, looking keys up in `dns`.
pub async fn verify(dns: &DnsServer, message: &[u8]) -> Vec<DkimResult> {
    let resolver = edgemx::dns::Resolver::new(&Dns {
        nameservers: vec![dns.addr],
        timeout: None,
    })
    .unwrap();
    let auth = MessageAuthenticator(resolver.hickory());
    let parsed = AuthenticatedMessage::parse(message).unwrap();
    auth.verify_dkim(&parsed)
        .await
        .iter()
        .map(|o| o.result().clone())
        .collect()
}

/// An RSA key that signs DKIM with rsa-sha1, which RFC 8301 retired: mail-auth (with ring)
/// signs with SHA-256 only, so the SHA-1 PKCS#1 v1.5 signature is made with the `rsa` crate.
pub struct Sha1Key(rsa::RsaPrivateKey);

impl Sha1Key {
    /// A fresh RSA-2048 key and its TXT record (`v=DKIM1; k=rsa; p=…`).
    pub fn generate() -> (Sha1Key, String) {
        use rsa::pkcs8::DecodePrivateKey;
        let pair = keygen::generate(Algorithm::Rsa).unwrap();
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pair.pem()).unwrap();
        (Sha1Key(key), pair.record())
    }

    /// `text` with an rsa-sha1 signature of `domain`/`selector` prepended.
    pub fn sign(self, domain: &str, selector: &str, text: &str) -> Vec<u8> {
        use mail_auth::common::headers::HeaderWriter;
        let signature = mail_auth::dkim::DkimSigner::from_key(self)
            .domain(domain)
            .selector(selector)
            .headers(HEADERS.iter().copied())
            .sign(text.as_bytes())
            .unwrap();
        let mut out = signature.to_header().into_bytes();
        out.extend_from_slice(text.as_bytes());
        out
    }
}

impl mail_auth::common::crypto::SigningKey for Sha1Key {
    type Hasher = mail_auth::common::crypto::Sha1;

    fn sign(&self, input: impl mail_auth::common::headers::Writable) -> mail_auth::Result<Vec<u8>> {
        // DER DigestInfo prefix for SHA-1 (RFC 8017 §9.2, note 1).
        const PREFIX: &[u8] = &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ];
        let mut data = Vec::new();
        input.write(&mut data);
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &data);
        let padding = rsa::Pkcs1v15Sign {
            hash_len: Some(20),
            prefix: PREFIX.into(),
        };
        self.0
            .sign(padding, digest.as_ref())
            .map_err(|e| mail_auth::Error::Io(e.to_string()))
    }

    fn algorithm(&self) -> mail_auth::common::crypto::Algorithm {
        mail_auth::common::crypto::Algorithm::RsaSha1
    }
}
