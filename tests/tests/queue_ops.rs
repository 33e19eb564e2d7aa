//! Queue operations: hold and release (durable across a restart), delay notices, expired
//! mail held instead of bounced, quotas, and loop protection by hop count.

use edgemx::control::Request;
use edgemx::delivery::Target;
use edgemx_tests::control::{call, id_of, queued, ready, wait_queue};
use edgemx_tests::{FakeBackend, Gateway, SmtpClient, send_mail};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const SLOW_RETRY: &str = "[queue]\nretry_intervals = [\"1h\"]\nretry_jitter = 0.0\n";
const FAST_RETRY: &str = "[queue]\nretry_intervals = [\"1s\"]\nretry_jitter = 0.0\n";

async fn send(gw: &Gateway, from: &str, to: &str, tag: &str) {
    let body = format!("Message-ID: <{tag}@test>\r\nSubject: {tag}\r\n\r\nx\r\n");
    let reply = send_mail(gw.addr, from, &[to], &body).await;
    assert!(
        reply.as_ref().is_ok_and(|r| r.is("250")),
        "{tag}: {reply:?}"
    );
}

fn ids(got: &[edgemx_tests::ReceivedMessage]) -> Vec<String> {
    got.iter().filter_map(|m| m.message_id()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_mail_is_never_delivered_until_released_even_across_a_restart() {
    let addr = FakeBackend::start().await.stop();
    let gw = Gateway::start(addr, SLOW_RETRY).await;
    send(&gw, "a@sender.test", "b@example.com", "held").await;
    let list = wait_queue(&gw, WAIT, "deferred", |l| {
        l.len() == 1 && l[0]["attempts"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    let id = id_of(&list[0]);
    let target = Target::Message(id);
    let held = call(&gw, Request::Hold { target }).await;
    assert_eq!(held.unwrap(), "1 message(s) held");
    wait_queue(&gw, WAIT, "stored the hold", |l| l[0]["held"] == true).await;
    let missing = Target::Message(edgemx::queue::QueueId(id.0 + 1000));
    assert!(call(&gw, Request::Hold { target: missing }).await.is_err());

    let dir = gw.stop().await;
    let backend = FakeBackend::start_on(addr).await;
    let gw = Gateway::start_in(dir, addr, SLOW_RETRY).await;
    ready(&gw, WAIT).await;
    let flushed = call(
        &gw,
        Request::Flush {
            target: Target::All,
        },
    )
    .await;
    assert_eq!(flushed.unwrap(), "0 message(s) scheduled for delivery now");
    send(&gw, "a@sender.test", "b@example.com", "canary").await;
    backend.wait_for_messages(1, WAIT).await;
    let list = wait_queue(&gw, WAIT, "kept only the held one", |l| l.len() == 1).await;
    assert_eq!(list[0]["held"], true);
    assert_eq!(ids(&backend.messages()), ["<canary@test>"]);

    let domain = Target::Domain {
        name: "example.com".into(),
        subdomains: false,
    };
    let released = call(&gw, Request::Release { target: domain }).await;
    assert_eq!(released.unwrap(), "1 message(s) released");
    let got = backend.wait_for_messages(2, WAIT).await;
    assert_eq!(ids(&got), ["<canary@test>", "<held@test>"]);
    wait_queue(&gw, WAIT, "emptied", |l| l.is_empty()).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_gets_one_delay_notice_while_delivery_goes_on() {
    let backend = FakeBackend::start().await;
    backend.set(|b| {
        b.rcpt_replies
            .insert("slow@example.com".into(), "451 4.3.0 try later".into());
    });
    let extra = format!("{FAST_RETRY}[flow]\ndelay_notice = \"2s\"\n");
    let gw = Gateway::start(backend.addr(), &extra).await;
    send(&gw, "sender@example.com", "slow@example.com", "slow").await;
    let got = backend.wait_for_messages(1, WAIT).await;
    let notice = &got[0];
    assert!(notice.mail_from.is_empty(), "from the null sender");
    assert_eq!(notice.rcpt_to, ["sender@example.com"]);
    let text = notice.text();
    assert!(text.contains("Action: delayed"), "{text}");
    assert!(
        text.contains("Final-Recipient: rfc822; slow@example.com"),
        "{text}"
    );
    assert!(text.contains("Subject: slow"), "{text}");
    let list = wait_queue(&gw, WAIT, "retried after the notice", |l| {
        l.len() == 1 && l[0]["attempts"].as_u64().unwrap_or(0) >= 5
    })
    .await;
    assert_eq!(list[0]["delay_notified"], true);
    assert_eq!(backend.messages().len(), 1, "one notice per message");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_mail_is_held_instead_of_bounced_when_configured() {
    let backend = FakeBackend::start().await;
    backend.set(|b| {
        b.rcpt_replies
            .insert("slow@example.com".into(), "451 4.3.0 try later".into());
    });
    let extra = format!(
        "{FAST_RETRY}max_lifetime = \"2s\"\n[flow]\nexpired = \"hold\"\n\
         [delivery]\nmax_messages_per_connection = 1\n"
    );
    let gw = Gateway::start(backend.addr(), &extra).await;
    send(&gw, "sender@example.com", "slow@example.com", "expiring").await;
    let list = wait_queue(&gw, WAIT, "held the expired message", |l| {
        l.len() == 1 && l[0]["held"] == true
    })
    .await;
    assert!(backend.messages().is_empty(), "no bounce");
    backend.set(|b| b.rcpt_replies.clear());
    let target = Target::Message(id_of(&list[0]));
    call(&gw, Request::Release { target }).await.unwrap();
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(ids(&got), ["<expiring@test>"]);
    wait_queue(&gw, WAIT, "emptied", |l| l.is_empty()).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_452() {
    let addr = FakeBackend::start().await.stop();
    let extra = format!("{SLOW_RETRY}max_messages = 1\n");
    let gw = Gateway::start(addr, &extra).await;
    send(&gw, "a@sender.test", "b@example.com", "first").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "452 4.3.1").await;
    c.expect("QUIT", "221").await;
    assert_eq!(queued(&gw).await.len(), 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_past_the_hop_limit_is_refused_and_nothing_is_queued() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    let body = |hops: usize| {
        let received = "Received: from a.test by b.test; Thu, 26 Nov 2026 09:00:00 +0000\r\n";
        format!(
            "{}Message-ID: <hops{hops}@test>\r\n\r\nx\r\n",
            received.repeat(hops)
        )
    };
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    let reply = c.data(&body(50)).await;
    assert!(reply.is("554 5.4.6"), "{reply:?}");
    let stats = call(&gw, Request::Stats).await.unwrap();
    assert_eq!(stats["messages"], 0, "nothing queued");
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    assert!(c.data(&body(49)).await.is("250"));
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(ids(&got), ["<hops49@test>"]);
    c.expect("QUIT", "221").await;
    gw.stop().await;
}
