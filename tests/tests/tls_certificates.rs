//! An RSA certificate served beside the ECDSA one (issue 16 item 2): chosen per handshake
//! from the client's signature algorithms and cipher suites, ECDSA first, and both listed by
//! `show tls`.

use edgemx::control::{ConsoleRequest, Request};
use edgemx_tests::client::{tls_client, tls_client_limited};
use edgemx_tests::{FakeBackend, Gateway, control};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CipherSuite, SignatureScheme};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const RSA_CERT: &str = include_str!("../../gateway/src/tls/testdata/rsa-2048.pem");
const RSA_KEY: &str = include_str!("../../gateway/src/tls/testdata/rsa-2048.key");

/// EHLO, STARTTLS, handshake; the certificate the gateway presented.
async fn presented(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Vec<u8> {
    let mut io = BufReader::new(TcpStream::connect(addr).await.unwrap());
    let mut line = String::new();
    io.read_line(&mut line).await.unwrap();
    io.get_mut()
        .write_all(b"EHLO client.test\r\nSTARTTLS\r\n")
        .await
        .unwrap();
    loop {
        line.clear();
        io.read_line(&mut line).await.unwrap();
        if line.starts_with("220") {
            break;
        }
        assert!(line.starts_with("250"), "{line}");
    }
    let name = rustls::pki_types::ServerName::try_from("gateway.test").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, io.into_inner())
        .await
        .expect("handshake");
    tls.get_ref().1.peer_certificates().expect("certificate")[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_ecdsa_get_the_rsa_certificate_and_the_others_ecdsa() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("rsa.pem"), dir.path().join("rsa.key"));
    std::fs::write(&cert, RSA_CERT).unwrap();
    std::fs::write(&key, RSA_KEY).unwrap();
    let rsa_der = CertificateDer::pem_slice_iter(RSA_CERT.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    let backend = FakeBackend::start().await;
    let extra = format!(
        "[tls]\nrsa_certificate = \"{}\"\nrsa_private_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let gw = Gateway::start(backend.addr(), &extra).await;
    control::ready(&gw, Duration::from_secs(30)).await;
    let shown = control::call(
        &gw,
        Request::Console {
            call: ConsoleRequest::Tls,
        },
    )
    .await
    .unwrap();
    let certs = shown["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2, "{shown}");
    assert_eq!(certs[0]["key"], "ECDSA P-256", "{shown}");
    assert_eq!(certs[0]["generated"], true, "{shown}");
    assert_eq!(certs[1]["key"], "RSA 2048", "{shown}");
    assert_eq!(certs[1]["subject"], "CN=gateway.test", "{shown}");

    let default = presented(gw.addr, tls_client(rustls::DEFAULT_VERSIONS)).await;
    assert_ne!(
        default, rsa_der,
        "a client with ECDSA got the RSA certificate"
    );
    let fingerprint = |der: &[u8]| {
        let d = ring::digest::digest(&ring::digest::SHA256, der);
        let hex: Vec<String> = d.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        hex.join(":")
    };
    assert_eq!(certs[0]["sha256"], fingerprint(&default), "{shown}");

    let rsa_schemes = [
        SignatureScheme::RSA_PSS_SHA256,
        SignatureScheme::RSA_PKCS1_SHA256,
    ];
    for versions in [&[&rustls::version::TLS13], &[&rustls::version::TLS12]] {
        let only_rsa = tls_client_limited(versions, &rsa_schemes, None);
        assert_eq!(presented(gw.addr, only_rsa).await, rsa_der, "{versions:?}");
    }
    // TLS 1.2 with ECDSA signatures but only ECDHE_RSA suites: ECDSA cannot be used.
    let rsa_suites = [
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ];
    let all_schemes = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .supported_schemes();
    let old = tls_client_limited(&[&rustls::version::TLS12], &all_schemes, Some(&rsa_suites));
    assert_eq!(presented(gw.addr, old).await, rsa_der);
    gw.stop().await;
}
