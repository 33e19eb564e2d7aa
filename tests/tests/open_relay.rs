//! No open relay: only served domains, and no address trick routes mail elsewhere.

use edgemx_tests::{FakeBackend, Gateway, SmtpClient};

const DENIED: &str = "550 5.7.1 Relay access denied";

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
    // Each trick and the reply it gets. A domain we do not serve, and every address form
    // that some downstream server might route elsewhere, is a relay attempt: refused by
    // policy. An address with a second `@` after the domain is not an address at all.
    let refused = [
        ("user@elsewhere.test", DENIED),
        ("user@sub.example.com", DENIED),
        ("user@example.com.evil.test", DENIED),
        ("user%evil.test@example.com", DENIED),
        ("evil.test!user@example.com", DENIED),
        ("\"user@evil.test\"@example.com", DENIED),
        ("\"user%evil.test\"@example.com", DENIED),
        ("@example.com:user@evil.test", DENIED),
        ("@evil.test:user@example.com", DENIED),
        ("user@[127.0.0.1]", DENIED),
        ("user@[IPv6:::1]", DENIED),
        (
            "user@example.com@evil.test",
            "501 5.1.3 Bad recipient address syntax",
        ),
    ];
    for (address, expected) in refused {
        c.expect(&format!("RCPT TO:<{address}>"), expected).await;
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
