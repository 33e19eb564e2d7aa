//! Relay scenarios over real sockets: a client hands mail to the gateway, the fake backend
//! receives it.

use edgemx_tests::backend::{Backend, header};
use edgemx_tests::{FakeBackend, Gateway, SmtpClient, send_mail};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_for_a_served_domain_is_relayed_end_to_end() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    let body = "From: a@sender.test\r\nTo: user@example.com\r\nMessage-ID: <e2e@test>\r\nSubject: hi\r\n\r\nHello.\r\n.dotted line\r\n";
    let reply = send_mail(gw.addr, "a@sender.test", &["User@Example.COM"], body)
        .await
        .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    assert!(reply.text.contains("queued as"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].mail_from, "a@sender.test");
    // The domain is case-insensitive and relayed in lower case; the local part is kept.
    assert_eq!(got[0].rcpt_to, vec!["User@example.com".to_string()]);
    assert_eq!(got[0].message_id().as_deref(), Some("<e2e@test>"));
    let text = got[0].text();
    assert!(
        text.starts_with("Received: from client.test ([127.0.0.1])"),
        "{text}"
    );
    assert!(
        text.contains("by gateway.test (edgemx) with ESMTP id"),
        "{text}"
    );
    assert!(
        text.ends_with("Hello.\r\n.dotted line\r\n"),
        "dot-stuffing must round-trip: {text:?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_get_replies_in_order_and_nothing_runs_before_data_ends() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    let ehlo = c.command("EHLO client.test").await;
    for ext in [
        "PIPELINING",
        "SIZE 26214400",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "STARTTLS",
    ] {
        assert!(
            ehlo.text.lines().any(|l| l == ext),
            "EHLO lacks {ext}: {ehlo:?}"
        );
    }
    c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@elsewhere.test>\r\nDATA\r\n").await;
    assert!(c.reply().await.is("250 2.1.0"));
    assert!(c.reply().await.is("250 2.1.5"));
    assert!(c.reply().await.is("550 5.7.1"));
    assert!(c.reply().await.is("354"));
    c.send(b"Subject: pipelined\r\n\r\nNOOP\r\nQUIT\r\n.\r\nNOOP\r\nMAIL FROM:<x@sender.test>\r\n")
        .await;
    assert!(c.reply().await.is("250 2.0.0"), "end of data");
    assert!(c.reply().await.is("250 2.0.0"), "NOOP after the message");
    assert!(c.reply().await.is("250 2.1.0"), "MAIL after the message");
    let got = backend.wait_for_messages(1, WAIT).await;
    assert!(
        got[0].text().ends_with("\r\n\r\nNOOP\r\nQUIT\r\n"),
        "{:?}",
        got[0].text()
    );
    assert_eq!(got[0].rcpt_to, vec!["b@example.com".to_string()]);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bdat_chunks_are_joined_and_queued_on_last() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250 2.1.0").await;
    c.expect("RCPT TO:<b@example.com>", "250 2.1.5").await;
    let first = b"Subject: chunks\r\n\r\n.line one\r\n";
    let second = b"line two\r\n";
    let mut wire = format!("BDAT {}\r\n", first.len()).into_bytes();
    wire.extend_from_slice(first);
    wire.extend_from_slice(format!("BDAT {} LAST\r\n", second.len()).as_bytes());
    wire.extend_from_slice(second);
    c.send(&wire).await;
    assert!(c.reply().await.is("250 2.0.0"), "first chunk");
    let last = c.reply().await;
    assert!(
        last.is("250 2.0.0") && last.text.contains("queued as"),
        "{last:?}"
    );
    c.expect("DATA", "503 5.5.1").await;
    let got = backend.wait_for_messages(1, WAIT).await;
    assert!(
        got[0]
            .text()
            .ends_with("Subject: chunks\r\n\r\n.line one\r\nline two\r\n"),
        "{:?}",
        got[0].text()
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bdat_out_of_sequence_is_refused_and_its_payload_is_not_executed() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    let payload = b"RSET\r\nMAIL FROM:<x@y.test>\r\n";
    let mut wire = format!("BDAT {} LAST\r\n", payload.len()).into_bytes();
    wire.extend_from_slice(payload);
    c.send(&wire).await;
    assert!(c.reply().await.is("503 5.5.1"));
    c.expect("NOOP", "250 2.0.0").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtputf8_and_8bitmime_are_accepted_and_passed_on() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    c.expect(
        "MAIL FROM:<José@sender.test> SMTPUTF8 BODY=8BITMIME",
        "250 2.1.0",
    )
    .await;
    c.expect("RCPT TO:<Ünïcode@example.com>", "250 2.1.5").await;
    let reply = c
        .data("Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\nGrüße aus Köln\r\n")
        .await;
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].mail_from, "José@sender.test");
    assert!(
        got[0].mail_line.contains("SMTPUTF8"),
        "{}",
        got[0].mail_line
    );
    assert!(
        got[0].mail_line.contains("BODY=8BITMIME"),
        "{}",
        got[0].mail_line
    );
    assert!(got[0].text().contains("Grüße aus Köln"));
    assert!(
        got[0].text().contains("with UTF8SMTP id"),
        "{}",
        got[0].text()
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf8_address_without_smtputf8_is_refused() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    let reply = c.command("MAIL FROM:<José@sender.test>").await;
    assert!(
        reply.code == 553 || reply.code == 501 || reply.code == 555,
        "{reply:?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_inbound_is_recorded_in_received_and_used_towards_the_backend() {
    let backend = FakeBackend::start_with(
        "127.0.0.1:0".parse().unwrap(),
        Backend {
            starttls: Some(edgemx_tests::self_signed_server("backend.test")),
            ..Backend::default()
        },
    )
    .await;
    let gw = Gateway::start(backend.addr(), "").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    let version = c.starttls().await;
    assert!(version.contains("TLSv1_3"), "{version}");
    let ehlo = c.command("EHLO client.test").await;
    assert!(
        !ehlo.text.contains("STARTTLS"),
        "STARTTLS offered twice: {ehlo:?}"
    );
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    assert!(
        c.data("Subject: tls\r\n\r\nsecret\r\n")
            .await
            .is("250 2.0.0")
    );
    let got = backend.wait_for_messages(1, WAIT).await;
    let text = got[0].text();
    assert!(text.contains("with ESMTPS id"), "{text}");
    assert!(text.contains("(using TLSv1.3 with cipher TLS13_"), "{text}");
    assert_eq!(
        got[0].tls.as_deref(),
        Some("TLSv1_3"),
        "delivery should use STARTTLS"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_is_supported_inbound() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let version =
        edgemx_tests::client::starttls_with_versions(stream, &[&rustls::version::TLS12]).await;
    assert_eq!(version, "TLSv1_2");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_messages_to_one_backend_share_a_connection() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "[queue]\nretry_intervals = [\"1s\"]\n").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    for i in 0..20 {
        c.expect("MAIL FROM:<a@sender.test>", "250").await;
        c.expect("RCPT TO:<b@example.com>", "250").await;
        assert!(
            c.data(&format!("Message-ID: <reuse{i}@test>\r\n\r\nx\r\n"))
                .await
                .is("250")
        );
    }
    let got = backend.wait_for_messages(20, WAIT).await;
    assert_eq!(got.len(), 20);
    assert!(
        backend.connections() < 20,
        "{} connections for 20 messages",
        backend.connections()
    );
    assert!(header(&got[0].data, "received").is_some());
    gw.stop().await;
}
