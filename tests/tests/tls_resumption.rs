//! Inbound TLS session resumption (tickets for TLS 1.3 and 1.2, session IDs for 1.2), and
//! the generated certificate: ten years, renewed from the console and put in use at once.

use edgemx::control::{ConsoleRequest, Request};
use edgemx_tests::client::tls_client;
use edgemx_tests::{FakeBackend, Gateway, control};
use rustls::HandshakeKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// EHLO, STARTTLS and a handshake with `config` (whose resumption store persists between
/// calls); how the handshake went and the server's certificate.
async fn starttls(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> (HandshakeKind, Vec<u8>) {
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
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, io.into_inner())
        .await
        .expect("handshake");
    // TLS 1.3 tickets arrive after the handshake: read the reply to a command so the
    // client has processed them before the connection ends.
    tls.write_all(b"NOOP\r\n").await.unwrap();
    let mut reply = [0u8; 64];
    let n = tls.read(&mut reply).await.unwrap();
    assert!(reply[..n].starts_with(b"250"), "{:?}", &reply[..n]);
    let conn = tls.get_ref().1;
    let kind = conn.handshake_kind().expect("handshake done");
    let cert = conn.peer_certificates().expect("server certificate")[0].to_vec();
    let _ = tls.write_all(b"QUIT\r\n").await;
    (kind, cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_resumes_with_tls13_and_tls12() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    for versions in [&[&rustls::version::TLS13], &[&rustls::version::TLS12]] {
        let config = tls_client(versions);
        let (first, _) = starttls(gw.addr, config.clone()).await;
        assert_eq!(first, HandshakeKind::Full);
        let (second, _) = starttls(gw.addr, config.clone()).await;
        assert_eq!(second, HandshakeKind::Resumed, "{versions:?}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_renews_the_generated_certificate_and_shows_its_expiry() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    control::ready(&gw, Duration::from_secs(30)).await;
    let console = |call| Request::Console { call };
    let shown = control::call(&gw, console(ConsoleRequest::Tls))
        .await
        .unwrap();
    let expires = shown["certificates"][0]["not_after"]
        .as_str()
        .unwrap()
        .to_string();
    let year: u32 = expires[..4].parse().unwrap();
    assert!((2030..2100).contains(&year), "expires {expires}");
    let (_, before) = starttls(gw.addr, tls_client(rustls::DEFAULT_VERSIONS)).await;
    let renewed = control::call(&gw, console(ConsoleRequest::RenewCert))
        .await
        .unwrap();
    assert_ne!(
        renewed["sha256"], shown["certificates"][0]["sha256"],
        "{renewed}"
    );
    // In use for the next connection, without a restart.
    let (_, after) = starttls(gw.addr, tls_client(rustls::DEFAULT_VERSIONS)).await;
    assert_ne!(before, after, "the old certificate is still served");
    gw.stop().await;
}
