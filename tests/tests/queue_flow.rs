//! Store and forward: held while the backend is down, retried, bounced with a DSN on a
//! permanent failure or on expiry; operator commands over the control socket.

use edgemx::control::Request;
use edgemx_tests::{FakeBackend, Gateway, send_mail};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const FAST_RETRY: &str = "[queue]\nretry_intervals = [\"1s\"]\nretry_jitter = 0.0\n";

async fn queued(gw: &Gateway) -> Vec<serde_json::Value> {
    let mut control = gw.control();
    let list = tokio::task::spawn_blocking(move || control.call(&Request::List))
        .await
        .unwrap();
    list.expect("queue list")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Polls the queue until `check` holds; panics with the last listing after `WAIT`.
async fn wait_queue(gw: &Gateway, what: &str, check: impl Fn(&[serde_json::Value]) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = queued(gw).await;
        if check(&list) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue never {what}: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_is_held_while_the_backend_is_down_and_delivered_when_it_returns() {
    let down = FakeBackend::start().await;
    let addr = down.stop();
    let gw = Gateway::start(addr, FAST_RETRY).await;
    let body = "Message-ID: <held@test>\r\nSubject: held\r\n\r\nwait for me\r\n";
    assert!(
        send_mail(gw.addr, "a@sender.test", &["b@example.com"], body)
            .await
            .unwrap()
            .is("250")
    );
    wait_queue(&gw, "showed a deferred attempt", |l| {
        l.len() == 1 && l[0]["attempts"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    let backend = FakeBackend::start_on(addr).await;
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].message_id().as_deref(), Some("<held@test>"));
    wait_queue(&gw, "emptied", |l| l.is_empty()).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_bounces_to_the_sender_with_a_dsn() {
    let backend = FakeBackend::start().await;
    backend.set(|b| {
        b.rcpt_replies
            .insert("nobody@example.com".into(), "550 5.1.1 no such user".into());
    });
    let gw = Gateway::start(backend.addr(), FAST_RETRY).await;
    let body = "Message-ID: <bounce@test>\r\nSubject: will bounce\r\n\r\nhello\r\n";
    let reply = send_mail(
        gw.addr,
        "sender@example.com",
        &["nobody@example.com", "real@example.com"],
        body,
    )
    .await;
    assert!(reply.unwrap().is("250"));
    let got = backend.wait_for_messages(2, WAIT).await;
    let original = got
        .iter()
        .find(|m| m.message_id().as_deref() == Some("<bounce@test>"))
        .expect("original");
    assert_eq!(original.rcpt_to, vec!["real@example.com".to_string()]);
    let dsn = got
        .iter()
        .find(|m| m.mail_from.is_empty())
        .expect("a DSN from the null sender");
    assert_eq!(dsn.rcpt_to, vec!["sender@example.com".to_string()]);
    let text = dsn.text();
    assert!(text.contains("multipart/report"), "{text}");
    assert!(text.contains("report-type=delivery-status"), "{text}");
    assert!(
        text.contains("Final-Recipient: rfc822; nobody@example.com"),
        "{text}"
    );
    assert!(text.contains("Action: failed"), "{text}");
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(
        text.contains("Subject: will bounce"),
        "original headers included: {text}"
    );
    wait_queue(&gw, "emptied", |l| l.is_empty()).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_null_sender_never_gets_a_dsn() {
    let backend = FakeBackend::start().await;
    backend.set(|b| {
        b.rcpt_replies
            .insert("nobody@example.com".into(), "550 5.1.1 no such user".into());
    });
    let gw = Gateway::start(backend.addr(), FAST_RETRY).await;
    let reply = send_mail(
        gw.addr,
        "",
        &["nobody@example.com"],
        "Subject: dsn\r\n\r\nx\r\n",
    )
    .await;
    assert!(reply.unwrap().is("250"));
    wait_queue(&gw, "emptied", |l| l.is_empty()).await;
    let canary = "Message-ID: <canary@test>\r\n\r\nx\r\n";
    assert!(
        send_mail(gw.addr, "a@sender.test", &["b@example.com"], canary)
            .await
            .unwrap()
            .is("250")
    );
    let got = backend.wait_for_messages(1, WAIT).await;
    wait_queue(&gw, "emptied", |l| l.is_empty()).await;
    assert_eq!(backend.messages().len(), 1, "{got:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_that_stays_deferred_until_expiry_bounces() {
    let backend = FakeBackend::start().await;
    backend.set(|b| {
        b.rcpt_replies
            .insert("slow@example.com".into(), "451 4.3.0 try later".into());
    });
    let extra = format!("{FAST_RETRY}max_lifetime = \"2s\"\n");
    let gw = Gateway::start(backend.addr(), &extra).await;
    let reply = send_mail(
        gw.addr,
        "sender@example.com",
        &["slow@example.com"],
        "Subject: slow\r\n\r\nx\r\n",
    )
    .await;
    assert!(reply.unwrap().is("250"));
    let got = backend.wait_for_messages(1, WAIT).await;
    let dsn = &got[0];
    assert!(dsn.mail_from.is_empty());
    let text = dsn.text();
    assert!(
        text.contains("Final-Recipient: rfc822; slow@example.com"),
        "{text}"
    );
    assert!(text.contains("Action: failed"), "{text}");
    assert!(text.contains("Status: 4.4.7"), "{text}");
    wait_queue(&gw, "emptied", |l| l.is_empty()).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_show_retry_and_delete_over_the_control_socket() {
    let down = FakeBackend::start().await;
    let addr = down.stop();
    let gw = Gateway::start(addr, "[queue]\nretry_intervals = [\"1h\"]\n").await;
    for i in 0..2 {
        let body = format!("Message-ID: <op{i}@test>\r\nSubject: op {i}\r\n\r\nx\r\n");
        assert!(
            send_mail(gw.addr, "a@sender.test", &["b@example.com"], &body)
                .await
                .unwrap()
                .is("250")
        );
    }
    wait_queue(&gw, "deferred both", |l| {
        l.len() == 2 && l.iter().all(|e| e["attempts"].as_u64().unwrap_or(0) >= 1)
    })
    .await;
    let list = queued(&gw).await;
    let ids: Vec<String> = list
        .iter()
        .map(|e| format!("{:016X}", e["id"].as_u64().unwrap()))
        .collect();
    let mut control = gw.control();
    let id0 = ids[0].parse().unwrap();
    let shown = tokio::task::spawn_blocking(move || control.call(&Request::Show { id: id0 }))
        .await
        .unwrap()
        .unwrap();
    assert!(
        shown["headers"].as_str().unwrap().contains("Subject: op"),
        "{shown}"
    );
    let mut control = gw.control();
    let id1 = ids[1].parse().unwrap();
    tokio::task::spawn_blocking(move || control.call(&Request::Delete { id: id1 }))
        .await
        .unwrap()
        .unwrap();
    wait_queue(&gw, "dropped the deleted message", |l| l.len() == 1).await;
    // The backend comes back, but the next scheduled attempt is an hour away: only an
    // operator's retry delivers now.
    let backend = FakeBackend::start_on(addr).await;
    let mut control = gw.control();
    tokio::task::spawn_blocking(move || control.call(&Request::Retry { id: None }))
        .await
        .unwrap()
        .unwrap();
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got.len(), 1);
    wait_queue(&gw, "emptied", |l| l.is_empty()).await;
    let mut control = gw.control();
    let missing = tokio::task::spawn_blocking(move || control.call(&Request::Delete { id: id1 }))
        .await
        .unwrap();
    assert!(missing.is_err());
    gw.stop().await;
}
