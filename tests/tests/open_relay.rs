//! No open relay: only served domains, and no address trick routes mail elsewhere.

use edgemx_tests::{FakeBackend, Gateway, SmtpClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_served_domains_are_accepted_and_relay_tricks_are_refused() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "[limits]\nmax_errors = 100\n").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    for accepted in ["user@example.com", "USER@EXAMPLE.COM", "user@example.com."] {
        c.expect(&format!("RCPT TO:<{accepted}>"), "250 2.1.5")
            .await;
    }
    c.expect("RCPT TO:<Postmaster>", "250 2.1.5").await;
    let refused = [
        "user@elsewhere.test",
        "user@sub.example.com",
        "user@example.com.evil.test",
        "user%evil.test@example.com",
        "evil.test!user@example.com",
        "\"user@evil.test\"@example.com",
        "\"user%evil.test\"@example.com",
        "@example.com:user@evil.test",
        "@evil.test:user@example.com",
        "user@[127.0.0.1]",
        "user@[IPv6:::1]",
        "user@example.com@evil.test",
    ];
    for address in refused {
        let reply = c.command(&format!("RCPT TO:<{address}>")).await;
        assert!(
            reply.is("550 5.7.1") || reply.code == 501 || reply.code == 553,
            "{address} was not refused: {reply:?}"
        );
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_without_helo_and_rcpt_without_mail_are_out_of_sequence() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("MAIL FROM:<a@sender.test>", "503 5.5.1").await;
    c.expect("HELO client.test", "250").await;
    c.expect("RCPT TO:<b@example.com>", "503 5.5.1").await;
    c.expect("DATA", "503 5.5.1").await;
    c.expect("VRFY someone", "252 2.").await;
    c.expect("HELP", "214").await;
    c.expect("RSET", "250 2.0.0").await;
    c.expect("QUIT", "221 2.0.0").await;
    gw.stop().await;
}
