//! ETRN (RFC 1985): an authorized client flushes a domain at once; everyone else is
//! refused and never sees ETRN in EHLO.

use edgemx_tests::control::wait_queue;
use edgemx_tests::{FakeBackend, Gateway, SmtpClient, send_mail};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
/// No retry and no health check within the test: only ETRN can deliver.
const QUIET: &str = "[queue]\nretry_intervals = [\"1h\"]\nretry_jitter = 0.0\n\
                     [flow]\ncheck_interval = \"1h\"\ndown_check_interval = \"1h\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etrn_from_an_authorized_client_flushes_the_domain_at_once() {
    let addr = FakeBackend::start().await.stop();
    let extra = format!("{QUIET}etrn_networks = [\"127.0.0.0/8\"]\n");
    let gw = Gateway::start(addr, &extra).await;
    for i in 0..3 {
        let body = format!("Message-ID: <etrn{i}@test>\r\n\r\nx\r\n");
        let reply = send_mail(gw.addr, "a@sender.test", &["b@example.com"], &body).await;
        assert!(reply.unwrap().is("250"));
    }
    wait_queue(&gw, WAIT, "deferred all three", |l| {
        l.len() == 3 && l.iter().all(|e| e["attempts"].as_u64().unwrap_or(0) >= 1)
    })
    .await;
    let backend = FakeBackend::start_on(addr).await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("ETRN example.com", "503 5.5.1").await;
    let ehlo = c.expect("EHLO primary.example.com", "250").await;
    assert!(ehlo.text.lines().any(|l| l == "ETRN"), "{ehlo:?}");
    let asked = Instant::now();
    c.expect("ETRN example.com", "250 2.0.0").await;
    backend.wait_for_messages(3, WAIT).await;
    eprintln!(
        "ETRN: 3 messages delivered {:?} after ETRN",
        asked.elapsed()
    );
    wait_queue(&gw, WAIT, "emptied", |l| l.is_empty()).await;
    c.expect("ETRN example.com", "251 2.0.0").await;
    c.expect("ETRN @example.com", "251 2.0.0").await;
    c.expect("ETRN unknown.example", "459 4.7.1").await;
    c.expect("ETRN #outbound", "459 4.7.1").await;
    c.expect("ETRN ex%ample.com", "501 5.5.4").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("ETRN example.com", "503 5.5.1").await;
    c.expect("QUIT", "221").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etrn_from_other_clients_is_refused_and_not_advertised() {
    let backend = FakeBackend::start().await;
    let extra = format!("{QUIET}etrn_networks = [\"10.0.0.0/8\", \"::1\"]\n");
    let gw = Gateway::start(backend.addr(), &extra).await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    let ehlo = c.expect("EHLO stranger.example", "250").await;
    assert!(!ehlo.text.contains("ETRN"), "{ehlo:?}");
    c.expect("ETRN example.com", "554 5.7.1").await;
    c.expect("QUIT", "221").await;
    gw.stop().await;
}
