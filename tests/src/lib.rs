//! Test harness for edgemx scenario tests: a fake backend MTA that records what it
//! receives, an SMTP client that speaks transcripts, and helpers that start the gateway
//! in-process or as a child process. Everything listens on 127.0.0.1 only.

pub mod admin;
pub mod backend;
pub mod client;
pub mod control;
pub mod dns;
pub mod dnssec;
pub mod docs;
pub mod gateway;
pub mod https;
pub mod mailauth;
pub mod pki;
pub mod pty;
pub mod scanners;

pub use backend::{Backend, FakeBackend, ReceivedMessage};
pub use client::{Reply, SmtpClient, send_mail};
pub use gateway::{Gateway, GatewayProcess};

/// A certificate for `name`, self-signed, as rustls server configuration.
pub fn self_signed_server(name: &str) -> std::sync::Arc<rustls::ServerConfig> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], der)
    .expect("server config");
    std::sync::Arc::new(config)
}
