//! Every session limit is typed configuration and is enforced with the right reply.

use edgemx_tests::{FakeBackend, Gateway, SmtpClient};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_command_line_is_refused_and_the_session_continues() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "[limits]\nmax_line_length = 600\n").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect(&format!("EHLO {}", "a".repeat(700)), "500 5.5.2")
        .await;
    c.expect("EHLO client.test", "250").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_size_is_enforced_when_declared_and_while_streaming() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(
        backend.addr(),
        "[limits]\nmax_message_size = 4096\ninflight_bytes = 65536\n",
    )
    .await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    let ehlo = c.command("EHLO client.test").await;
    assert!(ehlo.text.lines().any(|l| l == "SIZE 4096"), "{ehlo:?}");
    c.expect("MAIL FROM:<a@sender.test> SIZE=5000", "552 5.3.4")
        .await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    let reply = c
        .data(&format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(70)).repeat(100))
        .await;
    assert!(reply.is("552 5.3.4"), "{reply:?}");
    // The session is still in step after the oversized message.
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    assert!(c.data("Subject: small\r\n\r\nok\r\n").await.is("250 2.0.0"));
    let got = backend.wait_for_messages(1, Duration::from_secs(30)).await;
    assert!(got[0].text().contains("Subject: small"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_beyond_the_limit_get_452() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "[limits]\nmax_recipients = 2\n").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<one@example.com>", "250").await;
    c.expect("RCPT TO:<two@example.com>", "250").await;
    c.expect("RCPT TO:<three@example.com>", "452 4.5.3").await;
    gw.stop().await;
}

/// RFC 5321 §4.5.3.1.8: a client pipelining more recipients than we take keeps the first
/// `max_recipients`, and the 452s for the rest are not errors that end the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_recipients_beyond_the_limit_keep_the_transaction() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "[limits]\nmax_errors = 10\n").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    let mut flight = String::from("MAIL FROM:<a@sender.test>\r\n");
    for i in 0..111 {
        flight.push_str(&format!("RCPT TO:<r{i}@example.com>\r\n"));
    }
    c.send(flight.as_bytes()).await;
    assert!(c.reply().await.is("250"));
    for i in 0..111 {
        let reply = c.reply().await;
        let expected = if i < 100 { "250" } else { "452 4.5.3" };
        assert!(reply.is(expected), "RCPT {i}: {reply:?}");
    }
    assert!(
        c.data("Subject: many\r\n\r\nhello\r\n")
            .await
            .is("250 2.0.0")
    );
    let got = backend.wait_for_messages(1, Duration::from_secs(30)).await;
    let delivered: usize = got.iter().map(|m| m.rcpt_to.len()).sum();
    assert_eq!(delivered, 100);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_errors_close_the_session_with_421() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "[limits]\nmax_errors = 3\n").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("BOGUS", "500 5.5.1").await;
    c.expect("RCPT TO:<x@example.com>", "503 5.5.1").await;
    c.send(b"MAIL FROM:<a@b.test>\r\n").await;
    assert!(c.reply().await.is("503 5.5.1"));
    assert!(c.reply().await.is("421 4.7.0"));
    assert!(c.closed().await);
    gw.stop().await;
}

/// With `max_commands = 10`: nine NOOPs pass, the tenth is answered and then `421`, closed.
async fn tenth_idle_command_ends_the_session(c: &mut SmtpClient) {
    for _ in 0..9 {
        c.expect("NOOP", "250").await;
    }
    c.send(b"NOOP\r\n").await;
    assert!(c.reply().await.is("250"));
    assert!(c.reply().await.is("421"));
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_commands_close_the_session_with_421() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "[limits]\nmax_commands = 10\n").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    tenth_idle_command_ends_the_session(&mut c).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_limit_counts_from_the_last_queued_message_not_from_the_connection() {
    // An MTA reusing one connection for many messages must not be cut off by a limit meant
    // for clients that talk without sending mail (issue 16's benchmarks: ~330 messages).
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "[limits]\nmax_commands = 10\n").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    for n in 0..5 {
        c.expect("MAIL FROM:<a@sender.test>", "250").await;
        c.expect("RCPT TO:<u@example.com>", "250").await;
        let body = format!("Subject: {n}\r\n\r\nhi\r\n");
        assert!(c.data(&body).await.is("250 2.0.0"), "message {n}");
    }
    // 21 commands so far and still open; ten without a message still end it.
    tenth_idle_command_ends_the_session(&mut c).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_is_disconnected_after_the_command_timeout() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "[limits]\ncommand_timeout = \"300ms\"\n").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    assert!(c.reply().await.is("421 4.4.2"));
    assert!(c.closed().await);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_data_transfer_is_cut_after_the_data_timeout() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "[limits]\ndata_timeout = \"300ms\"\n").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    c.expect("DATA", "354").await;
    c.send(b"Subject: half\r\n").await;
    assert!(c.reply().await.is("421 4.4.2"));
    assert!(c.closed().await);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_total_cap_get_421() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(
        backend.addr(),
        "[limits]\nmax_connections = 2\nmax_connections_per_ip = 2\n",
    )
    .await;
    let a = SmtpClient::connect(gw.addr).await.unwrap();
    let b = SmtpClient::connect(gw.addr).await.unwrap();
    assert_eq!((a.banner.code, b.banner.code), (220, 220));
    let c = SmtpClient::connect(gw.addr).await.unwrap();
    assert_eq!(c.banner.code, 421, "{:?}", c.banner);
    drop(a);
    // The slot is free again once the first session has ended.
    let mut ok = false;
    for _ in 0..200 {
        if SmtpClient::connect(gw.addr).await.unwrap().banner.code == 220 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "slot was not released");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_address_cap_get_421() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(
        backend.addr(),
        "[limits]\nmax_connections = 10\nmax_connections_per_ip = 1\n",
    )
    .await;
    let a = SmtpClient::connect(gw.addr).await.unwrap();
    assert_eq!(a.banner.code, 220);
    let b = SmtpClient::connect(gw.addr).await.unwrap();
    assert!(b.banner.is("421 4.7.0"), "{:?}", b.banner);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_per_session_are_capped() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "[limits]\nmax_messages_per_session = 1\n").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    assert!(c.data("Subject: one\r\n\r\n1\r\n").await.is("250"));
    c.expect("MAIL FROM:<a@sender.test>", "452").await;
    gw.stop().await;
}

#[test]
fn a_bad_configuration_names_every_key_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "hostname = \"mx.test\"\ndata_dir = \"/tmp/x\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n\
         [[domain]]\nname = \"example.com\"\nnext_hops = [\"bad host:25\"]\n[limits]\nmax_recipients = 0\n",
    )
    .unwrap();
    let out = std::process::Command::new(edgemx_tests::gateway::binary())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("domain[0].next_hops[0] = \"bad host:25\""),
        "{err}"
    );
    assert!(err.contains("limits.max_recipients = 0"), "{err}");
    std::fs::write(&path, "hostname = \"mx.test\"\nbogus_key = 1\n").unwrap();
    let out = std::process::Command::new(edgemx_tests::gateway::binary())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus_key"));
}
