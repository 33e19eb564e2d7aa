//! DMARC enforcement at the end of DATA and BDAT: `reject` refused with `550 5.7.1` and
//! nothing relayed, monitor mode relaying with the verdict recorded, `quarantine` marked and,
//! with `quarantine = "hold"`, kept in the queue until released.

use edgemx_tests::dns::DnsServer;
use edgemx_tests::mailauth::{auth_results, message, start, zone};
use edgemx_tests::{FakeBackend, SmtpClient, send_mail};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dmarc_reject_is_refused_at_end_of_data_and_nothing_is_relayed() {
    let dns = DnsServer::start(zone()).await;
    let backend = FakeBackend::start().await;
    let gw = start(&dns, &backend, "").await;
    let sender = "a@reject.test";
    let reply = send_mail(gw.addr, sender, &["user@example.com"], &message(sender, ""))
        .await
        .unwrap();
    assert!(reply.is("550 5.7.1"), "{reply:?}");
    assert!(reply.text.contains("reject.test"), "{reply:?}");
    // A passing message sent afterwards arrives alone: the refused one was never queued.
    let ok = send_mail(
        gw.addr,
        "a@pass.test",
        &["user@example.com"],
        &message("a@pass.test", ""),
    )
    .await
    .unwrap();
    assert!(ok.is("250 2.0.0"), "{ok:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mail_from, "a@pass.test");
    let list = gw.control().call(&edgemx::control::Request::List).unwrap();
    assert!(!list.to_string().contains("reject.test"), "{list}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_mode_relays_a_dmarc_failure_with_the_verdict_recorded() {
    let dns = DnsServer::start(zone()).await;
    let backend = FakeBackend::start().await;
    let gw = start(&dns, &backend, "mode = \"monitor\"").await;
    let sender = "a@reject.test";
    let reply = send_mail(gw.addr, sender, &["user@example.com"], &message(sender, ""))
        .await
        .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    let ar = &auth_results(&got[0].data)[0];
    assert!(ar.contains("dmarc=fail"), "{ar}");
    assert!(ar.contains("header.from=reject.test"), "{ar}");
    assert!(ar.contains("policy.dmarc=reject"), "{ar}");
    assert!(!got[0].text().contains("X-Edgemx-Quarantine"));
    // The verdict is counted by this gateway's registry, once.
    let metrics = gw.metrics().await;
    let fail = r#"{method="dmarc",result="fail"}"#;
    assert_eq!(
        edgemx_tests::admin::sample(&metrics, "edgemx_auth_verdicts_total", fail),
        Some(1.0),
        "{metrics}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dmarc_quarantine_is_marked_and_relayed() {
    let dns = DnsServer::start(zone()).await;
    let backend = FakeBackend::start().await;
    let gw = start(&dns, &backend, "").await;
    let sender = "a@quarantine.test";
    let reply = send_mail(gw.addr, sender, &["user@example.com"], &message(sender, ""))
        .await
        .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    let mark = edgemx_tests::backend::header(&got[0].data, "X-Edgemx-Quarantine");
    assert_eq!(
        mark.as_deref(),
        Some("dmarc=fail policy.dmarc=quarantine header.from=quarantine.test")
    );
    assert!(auth_results(&got[0].data)[0].contains("policy.dmarc=quarantine"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dmarc_quarantine_with_hold_is_kept_until_released() {
    use edgemx::control::Request;
    use edgemx::delivery::Target;
    let dns = DnsServer::start(zone()).await;
    let backend = FakeBackend::start().await;
    let gw = start(&dns, &backend, "quarantine = \"hold\"").await;
    let mut ids = Vec::new();
    for sender in ["a@quarantine.test", "a@pass.test"] {
        let reply = send_mail(gw.addr, sender, &["user@example.com"], &message(sender, ""))
            .await
            .unwrap();
        assert!(reply.is("250 2.0.0"), "{reply:?}");
        let id: edgemx::queue::QueueId = reply.text.rsplit(' ').next().unwrap().parse().unwrap();
        ids.push(id);
    }
    // The passing message, queued after the quarantined one, is delivered ...
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].mail_from, "a@pass.test");
    // ... while the quarantined one waits in the queue, held and marked.
    let shown = gw.control().call(&Request::Show { id: ids[0] }).unwrap();
    assert_eq!(shown["envelope"]["held"].as_bool(), Some(true), "{shown}");
    let headers = shown["headers"].as_str().unwrap_or_default();
    assert!(
        headers.contains("X-Edgemx-Quarantine: dmarc=fail"),
        "{headers}"
    );
    assert_eq!(backend.messages().len(), 1);
    // An operator releases it and it is delivered.
    gw.control()
        .call(&Request::Release {
            target: Target::Message(ids[0]),
        })
        .unwrap();
    let got = backend.wait_for_messages(2, WAIT).await;
    assert_eq!(got[1].mail_from, "a@quarantine.test");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bdat_last_gets_the_same_dmarc_verdict_as_data() {
    let dns = DnsServer::start(zone()).await;
    let backend = FakeBackend::start().await;
    let gw = start(&dns, &backend, "").await;
    for (sender, expected) in [("a@reject.test", "550 5.7.1"), ("a@pass.test", "250 2.0.0")] {
        let body = message(sender, "");
        let mut c = SmtpClient::connect(gw.addr).await.unwrap();
        c.expect("EHLO client.test", "250").await;
        c.expect(&format!("MAIL FROM:<{sender}>"), "250").await;
        c.expect("RCPT TO:<user@example.com>", "250").await;
        let (first, rest) = body.split_at(20);
        c.send(format!("BDAT {}\r\n{first}", first.len()).as_bytes())
            .await;
        assert!(c.reply().await.is("250"), "first chunk");
        c.send(format!("BDAT {} LAST\r\n{rest}", rest.len()).as_bytes())
            .await;
        let reply = c.reply().await;
        assert!(reply.is(expected), "{sender}: {reply:?}");
    }
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mail_from, "a@pass.test");
    assert!(
        auth_results(&got[0].data)[0].contains("dmarc=none"),
        "{:?}",
        auth_results(&got[0].data)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_dns_error_does_not_defer_a_sender_whose_own_record_exists() {
    use edgemx_tests::dns::Zone;
    // RFC 7489 §6.6.3: the parent (`_dmarc.test`) is asked about only when the From: domain
    // has no record. Here every parent lookup fails, as with an authoritative-only resolver.
    let dns = DnsServer::start(
        Zone::new()
            .txt("own.test", "v=spf1 ip4:127.0.0.1 -all")
            .txt("_dmarc.own.test", "v=DMARC1; p=reject")
            .txt("sub.orphan.test", "v=spf1 ip4:127.0.0.1 -all")
            .servfail("_dmarc.orphan.test")
            .txt("news.corp.test", "v=spf1 ip4:192.0.2.1 -all")
            .txt("_dmarc.news.corp.test", "v=DMARC1; p=reject")
            .txt("corp.test", "v=spf1 ip4:127.0.0.1 -all")
            .servfail("_dmarc.corp.test")
            .servfail("_dmarc.test"),
    )
    .await;
    let backend = FakeBackend::start().await;
    let gw = start(&dns, &backend, "").await;
    // Its own record exists and SPF aligns exactly: delivered, whatever the parents say.
    let reply = send_mail(
        gw.addr,
        "a@own.test",
        &["user@example.com"],
        &message("a@own.test", ""),
    )
    .await
    .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    let ar = &auth_results(&got[0].data)[0];
    assert!(ar.contains("dmarc=pass header.from=own.test"), "{ar}");
    // No record of its own: the parent's record decides, so its DNS error defers.
    let reply = send_mail(
        gw.addr,
        "a@sub.orphan.test",
        &["user@example.com"],
        &message("a@sub.orphan.test", ""),
    )
    .await
    .unwrap();
    assert!(reply.is("451 4.7.0"), "{reply:?}");
    // Only relaxed alignment with the parent whose lookup failed could pass: still open.
    let body = message("a@news.corp.test", "");
    let reply = send_mail(gw.addr, "bounce@corp.test", &["user@example.com"], &body)
        .await
        .unwrap();
    assert!(reply.is("451 4.7.0"), "{reply:?}");
    assert_eq!(backend.messages().len(), 1);
    gw.stop().await;
}
