//! The DSN extension (RFC 3461) end to end: advertised, parameters checked, passed on to a
//! next hop that offers DSN, and honoured in our own DSNs when it does not.

use edgemx::control::Request;
use edgemx_tests::{Backend, FakeBackend, Gateway, ReceivedMessage, SmtpClient};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const FAST_RETRY: &str = "[queue]\nretry_intervals = [\"1s\"]\nretry_jitter = 0.0\n";

/// One message in one session, each command with the given parameters; every reply must
/// be positive.
async fn send(gw: &Gateway, mail: &str, rcpts: &[&str], body: &str) {
    let mut c = SmtpClient::connect(gw.addr).await.expect("connect");
    let ehlo = c.expect("EHLO client.test", "250").await;
    assert!(ehlo.text.lines().any(|l| l == "DSN"), "{}", ehlo.text);
    c.expect(&format!("MAIL FROM:{mail}"), "250").await;
    for rcpt in rcpts {
        c.expect(&format!("RCPT TO:{rcpt}"), "250").await;
    }
    assert!(c.data(body).await.is("250"), "message accepted");
    c.command("QUIT").await;
}

async fn wait_empty(gw: &Gateway) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut control = gw.control();
        let list = tokio::task::spawn_blocking(move || control.call(&Request::List))
            .await
            .expect("join")
            .expect("queue list");
        if list.as_array().is_some_and(Vec::is_empty) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "queue: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn dsns(got: &[ReceivedMessage]) -> Vec<String> {
    let from_null = got.iter().filter(|m| m.mail_from.is_empty());
    from_null.map(ReceivedMessage::text).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_dsn_parameters_get_501() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), FAST_RETRY).await;
    let mut c = SmtpClient::connect(gw.addr).await.expect("connect");
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<s@example.com> RET=BODY", "501 5.5.4")
        .await;
    c.expect("MAIL FROM:<s@example.com> ENVID=a+ZZ", "501 5.5.4")
        .await;
    c.expect("MAIL FROM:<s@example.com> RET=HDRS ENVID=x", "250")
        .await;
    c.expect("RCPT TO:<a@example.com> NOTIFY=NEVER,SUCCESS", "501 5.5.4")
        .await;
    c.expect("RCPT TO:<a@example.com> ORCPT=a@example.com", "501 5.5.4")
        .await;
    c.expect(
        "RCPT TO:<a@example.com> NOTIFY=DELAY ORCPT=rfc822;a@example.com",
        "250",
    )
    .await;
    c.command("QUIT").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dsn_requests_are_passed_on_to_a_next_hop_that_offers_dsn() {
    let mut behaviour = Backend::default();
    behaviour.extensions.push("DSN".into());
    let backend = FakeBackend::start_with("127.0.0.1:0".parse().unwrap(), behaviour).await;
    let gw = Gateway::start(backend.addr(), FAST_RETRY).await;
    send(
        &gw,
        "<s@example.com> RET=HDRS ENVID=QQ+2B1",
        &["<a@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bx@example.com"],
        "Message-ID: <pass@test>\r\nSubject: pass on\r\n\r\nhi\r\n",
    )
    .await;
    let got = backend.wait_for_messages(1, WAIT).await;
    assert!(
        got[0].mail_line.contains(" RET=HDRS"),
        "{}",
        got[0].mail_line
    );
    assert!(
        got[0].mail_line.contains(" ENVID=QQ+2B1"),
        "{}",
        got[0].mail_line
    );
    let rcpt = &got[0].rcpt_lines[0];
    assert!(rcpt.contains(" NOTIFY=SUCCESS,FAILURE"), "{rcpt}");
    assert!(rcpt.contains(" ORCPT=rfc822;a+2Bx@example.com"), "{rcpt}");
    wait_empty(&gw).await;
    // The next hop reports success now: no `relayed` DSN from us.
    assert!(
        dsns(&backend.messages()).is_empty(),
        "{:?}",
        backend.messages()
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_is_reported_as_relayed_when_the_next_hop_has_no_dsn() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), FAST_RETRY).await;
    send(
        &gw,
        "<s@example.com> ENVID=QQ314159",
        &[
            "<a@example.com> NOTIFY=SUCCESS ORCPT=rfc822;a+2Bx@example.com",
            "<b@example.com>",
        ],
        "Message-ID: <relayed@test>\r\nSubject: relayed\r\n\r\nhi\r\n",
    )
    .await;
    let got = backend.wait_for_messages(2, WAIT).await;
    let original = got
        .iter()
        .find(|m| !m.mail_from.is_empty())
        .expect("original");
    assert!(
        !original.mail_line.contains("ENVID"),
        "{}",
        original.mail_line
    );
    assert!(original.rcpt_lines.iter().all(|l| !l.contains("NOTIFY")));
    let dsn = dsns(&got).pop().expect("a relayed DSN");
    assert!(dsn.contains("Original-Envelope-Id: QQ314159\r\n"), "{dsn}");
    assert!(
        dsn.contains("Original-Recipient: rfc822;a+x@example.com\r\n"),
        "{dsn}"
    );
    assert!(
        dsn.contains(
            "Final-Recipient: rfc822; a@example.com\r\nAction: relayed\r\nStatus: 2.0.0\r\n"
        ),
        "{dsn}"
    );
    assert!(
        !dsn.contains("b@example.com"),
        "only the recipient that asked: {dsn}"
    );
    wait_empty(&gw).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_never_suppresses_the_bounce_and_ret_full_returns_the_message() {
    let backend = FakeBackend::start().await;
    backend.set(|b| {
        b.rcpt_replies
            .insert("nobody@example.com".into(), "550 no such user here".into());
    });
    let gw = Gateway::start(backend.addr(), FAST_RETRY).await;
    send(
        &gw,
        "<s@example.com>",
        &["<nobody@example.com> NOTIFY=NEVER"],
        "Subject: never\r\n\r\nquiet\r\n",
    )
    .await;
    wait_empty(&gw).await;
    send(
        &gw,
        "<s@example.com> RET=FULL",
        &["<nobody@example.com> NOTIFY=FAILURE"],
        "Subject: full\r\n\r\nthe whole body comes back\r\n",
    )
    .await;
    let got = backend.wait_for_messages(1, WAIT).await;
    wait_empty(&gw).await;
    let dsns = dsns(&backend.messages());
    assert_eq!(dsns.len(), 1, "one DSN, for the FAILURE recipient: {got:?}");
    let dsn = &dsns[0];
    assert!(dsn.contains("Content-Type: message/rfc822\r\n"), "{dsn}");
    assert!(dsn.contains("the whole body comes back"), "{dsn}");
    assert!(dsn.contains("Subject: full"), "{dsn}");
    assert!(
        dsn.contains("Diagnostic-Code: smtp; 550 no such user here\r\n"),
        "{dsn}"
    );
    assert!(dsn.contains("Status: 5.0.0\r\n"), "{dsn}");
    gw.stop().await;
}
