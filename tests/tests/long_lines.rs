//! Lines longer than RFC 5322's 998 octets: folded by default, before we sign (our
//! signature verifies on the relayed message) and after we verify (the sender's signature
//! passes), so no long line leaves the gateway; or refused at the end of DATA with
//! `limits.long_lines = "reject"`.

use edgemx::dkim::keygen::Algorithm;
use edgemx::smtp::proto::lines::longest_line;
use edgemx_tests::dns::{DnsServer, Zone};
use edgemx_tests::mailauth::{new_key, signed, signed_message, verify};
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
async fn with_reject_a_line_over_998_octets_is_refused_and_the_session_goes_on() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "[limits]\nlong_lines = \"reject\"\n").await;
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
async fn long_lines_of_our_mail_are_folded_before_signing_and_verify() {
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
        "{}\n[relay]\nnetworks = [\"127.0.0.0/8\"]\n\
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_long_lines_are_folded_after_the_senders_signature_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (key, record) = new_key(dir.path(), Algorithm::Rsa, "signed.test", "s1");
    let dns = DnsServer::start(Zone::new().txt("s1._domainkey.signed.test", &record)).await;
    let backend = FakeBackend::start().await;
    let extra = format!("{}\n[auth]\nverify = true\n", dns.config());
    let gw = Gateway::start(backend.addr(), &extra).await;
    let sender = "alice@signed.test";
    let message =
        String::from_utf8(signed(key, "signed.test", "s1", &long_message(sender))).unwrap();
    let reply = edgemx_tests::send_mail(gw.addr, sender, &["user@example.com"], &message)
        .await
        .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    let ar = edgemx_tests::backend::header(&got[0].data, "Authentication-Results").unwrap();
    assert!(ar.contains("dkim=pass"), "{ar}");
    assert!(longest_line(&got[0].data) <= 998, "a long line was relayed");
    gw.stop().await;
}
