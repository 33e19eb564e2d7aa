//! Lines longer than RFC 5322's 998 octets: refused at the end of DATA by default (nothing
//! altered, the sender's MTA bounces to its user), or folded before DKIM signing with
//! `limits.long_lines = "fold"`, so the relayed message has no long line and our signature
//! still verifies.

use edgemx::dkim::keygen::Algorithm;
use edgemx::smtp::proto::lines::longest_line;
use edgemx_tests::dns::{DnsServer, Zone};
use edgemx_tests::mailauth::{new_key, signed_message, verify};
use edgemx_tests::{FakeBackend, Gateway, SmtpClient};
use mail_auth::DkimResult;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn long_message(from: &str) -> String {
    let mut text = signed_message(from);
    text.push_str(&format!("<p>{}</p>\r\n", "long ".repeat(400)));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_over_998_octets_is_refused_by_default_and_the_session_goes_on() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    let reply = c.data(&long_message("a@sender.test")).await;
    assert!(reply.is("554 5.6.0"), "{reply:?}");
    // Exactly 998 octets is allowed.
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    let edge = format!("Subject: edge\r\n\r\n{}\r\n", "e".repeat(998));
    assert!(c.data(&edge).await.is("250 2.0.0"));
    let got = backend.wait_for_messages(1, WAIT).await;
    assert!(got[0].text().contains("Subject: edge"));
    assert_eq!(got.len(), 1, "the long message was relayed");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folded_long_lines_are_signed_after_folding_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (_, record) = new_key(
        &dir.path().join("dkim"),
        Algorithm::Rsa,
        "example.com",
        "k1",
    );
    let dns = DnsServer::start(Zone::new().txt("k1._domainkey.example.com", &record)).await;
    let backend = FakeBackend::start().await;
    // 127.0.0.1 may relay: its mail is outbound and signed.
    let extra = format!(
        "{}\n[limits]\nlong_lines = \"fold\"\n[relay]\nnetworks = [\"127.0.0.0/8\"]\n\
         [auth]\nverify = true\n[[auth.dkim]]\ndomain = \"example.com\"\nselector = \"k1\"\n",
        dns.config()
    );
    let gw = Gateway::start_in(dir, backend.addr(), &extra).await;
    let sender = "app@example.com";
    let reply = edgemx_tests::send_mail(
        gw.addr,
        sender,
        &["user@example.com"],
        &long_message(sender),
    )
    .await
    .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    assert!(longest_line(&got[0].data) <= 998, "a long line was relayed");
    assert!(got[0].text().contains("DKIM-Signature"));
    assert_eq!(verify(&dns, &got[0].data).await, vec![DkimResult::Pass]);
    gw.stop().await;
}
