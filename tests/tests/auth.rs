//! Inbound email authentication over real sockets: SPF, DKIM, DMARC and ARC checked against
//! the loopback DNS server, the Authentication-Results header the backend receives, and
//! DMARC enforcement at the end of DATA.

use edgemx_tests::dns::{DnsServer, Zone};
use edgemx_tests::{FakeBackend, Gateway, SmtpClient, send_mail};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// SPF and DMARC records for every sender these scenarios use. The client says
/// `EHLO client.test` from 127.0.0.1.
fn zone() -> Zone {
    Zone::new()
        .txt("client.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("pass.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("fail.test", "v=spf1 ip4:192.0.2.1 -all")
        .txt("soft.test", "v=spf1 ip4:192.0.2.1 ~all")
        .txt("reject.test", "v=spf1 ip4:192.0.2.1 -all")
        .txt("_dmarc.reject.test", "v=DMARC1; p=reject")
        .txt("quarantine.test", "v=spf1 ip4:192.0.2.1 -all")
        .txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine")
        .servfail("broken.test")
        .servfail("_dmarc.broken.test")
}

async fn start(dns: &DnsServer, backend: &FakeBackend, auth: &str) -> Gateway {
    let extra = format!("{}\n[auth]\nverify = true\n{auth}\n", dns.config());
    Gateway::start(backend.addr(), &extra).await
}

fn message(from: &str, extra_headers: &str) -> String {
    format!(
        "{extra_headers}From: <{from}>\r\nTo: <user@example.com>\r\nSubject: auth\r\nMessage-ID: <{from}.auth@test>\r\n\r\nHello.\r\n"
    )
}

/// Every Authentication-Results field of a received message, unfolded, in order.
fn auth_results(data: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let unfolded = head.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("authentication-results"))
        .map(|(_, value)| value.trim().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spf_pass_fail_and_softfail_are_recorded_for_helo_and_mail_from() {
    let dns = DnsServer::start(zone()).await;
    let backend = FakeBackend::start().await;
    let gw = start(&dns, &backend, "").await;
    for sender in ["a@pass.test", "a@fail.test", "a@soft.test"] {
        let reply = send_mail(gw.addr, sender, &["user@example.com"], &message(sender, ""))
            .await
            .unwrap();
        assert!(reply.is("250 2.0.0"), "{sender}: {reply:?}");
    }
    let got = backend.wait_for_messages(3, WAIT).await;
    let results: Vec<String> = got
        .iter()
        .map(|m| {
            let all = auth_results(&m.data);
            assert_eq!(all.len(), 1, "{all:?}");
            assert!(
                m.text()
                    .starts_with("Authentication-Results: gateway.test;"),
                "ours is on top: {}",
                m.text()
            );
            all[0].clone()
        })
        .collect();
    let of = |sender: &str| {
        let i = got.iter().position(|m| m.mail_from == sender).unwrap();
        results[i].clone()
    };
    for (sender, verdict) in [
        ("a@pass.test", "spf=pass"),
        ("a@fail.test", "spf=fail"),
        ("a@soft.test", "spf=softfail"),
    ] {
        let ar = of(sender);
        assert!(ar.starts_with("gateway.test;"), "{ar}");
        assert!(
            ar.contains("spf=pass") && ar.contains("smtp.helo=client.test"),
            "{ar}"
        );
        assert!(
            ar.contains(&format!("{verdict} ")) && ar.contains(&format!("smtp.mailfrom={sender}")),
            "{sender}: {ar}"
        );
        assert!(ar.contains("dkim=none"), "{ar}");
        assert!(ar.contains("arc=none"), "{ar}");
    }
    gw.stop().await;
}

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
async fn forged_authentication_results_with_our_id_are_stripped_and_others_kept() {
    let dns = DnsServer::start(zone()).await;
    let backend = FakeBackend::start().await;
    let gw = start(&dns, &backend, "").await;
    let sender = "a@pass.test";
    let forged = "Authentication-Results: gateway.test; dmarc=pass header.from=bank.test\r\n\
                  Authentication-Results: GATEWAY.TEST;\r\n\tdkim=pass header.d=bank.test\r\n\
                  Authentication-Results: mx.other.test; spf=pass smtp.mailfrom=a@pass.test\r\n";
    let reply = send_mail(
        gw.addr,
        sender,
        &["user@example.com"],
        &message(sender, forged),
    )
    .await
    .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    let all = auth_results(&got[0].data);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all[0].starts_with("gateway.test;") && all[0].contains("spf=pass"),
        "{all:?}"
    );
    assert!(!all[0].contains("bank.test"), "{all:?}");
    assert_eq!(all[1], "mx.other.test; spf=pass smtp.mailfrom=a@pass.test");
    assert!(!got[0].text().contains("bank.test"), "{}", got[0].text());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_relays_are_neither_checked_nor_stripped() {
    let dns = DnsServer::start(zone()).await;
    let backend = FakeBackend::start().await;
    let gw = start(&dns, &backend, "trusted_relays = [\"127.0.0.2\"]").await;
    let sender = "a@reject.test";
    let theirs = "Authentication-Results: gateway.test; dmarc=pass header.from=reject.test\r\n";
    let body = message(sender, theirs);
    let send_from = |source: &'static str| {
        let body = body.clone();
        let addr = gw.addr;
        async move {
            let mut c = SmtpClient::connect_from(addr, source.parse().unwrap())
                .await
                .unwrap();
            c.expect("EHLO client.test", "250").await;
            c.expect(&format!("MAIL FROM:<{sender}>"), "250").await;
            c.expect("RCPT TO:<user@example.com>", "250").await;
            c.data(&body).await
        }
    };
    let before = dns.queries();
    let reply = send_from("127.0.0.2").await;
    assert!(
        reply.is("250 2.0.0"),
        "DMARC reject does not apply: {reply:?}"
    );
    assert_eq!(dns.queries(), before, "a trusted relay costs no DNS query");
    let got = backend.wait_for_messages(1, WAIT).await;
    let all = auth_results(&got[0].data);
    assert_eq!(
        all,
        vec!["gateway.test; dmarc=pass header.from=reject.test"]
    );
    // The same message from an address outside the list is checked.
    let reply = send_from("127.0.0.1").await;
    assert!(reply.is("550 5.7.1"), "{reply:?}");
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
async fn dns_servfail_defers_with_451_by_default_and_is_accepted_when_configured() {
    let dns = DnsServer::start(zone()).await;
    let backend = FakeBackend::start().await;
    let gw = start(&dns, &backend, "").await;
    let sender = "a@broken.test";
    let reply = send_mail(gw.addr, sender, &["user@example.com"], &message(sender, ""))
        .await
        .unwrap();
    assert!(reply.is("451 4.7.0"), "{reply:?}");
    gw.stop().await;

    let gw = start(&dns, &backend, "dns_errors = \"accept\"").await;
    let reply = send_mail(gw.addr, sender, &["user@example.com"], &message(sender, ""))
        .await
        .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got.len(), 1, "only the accepted attempt arrives");
    let ar = &auth_results(&got[0].data)[0];
    assert!(ar.contains("spf=temperror"), "{ar}");
    assert!(ar.contains("dmarc=temperror"), "{ar}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_against_a_silent_resolver_end_within_auth_timeout() {
    // A nameserver that reads queries and never answers (UDP, and TCP never accepted).
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let _tcp = std::net::TcpListener::bind(addr).ok();
    let drain = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while silent.recv_from(&mut buf).await.is_ok() {}
    });
    let backend = FakeBackend::start().await;
    let extra = format!(
        "[dns]\nnameservers = [\"{addr}\"]\ntimeout = \"30s\"\n[auth]\nverify = true\ntimeout = \"1s\"\n"
    );
    let gw = Gateway::start(backend.addr(), &extra).await;
    let started = std::time::Instant::now();
    let sender = "a@pass.test";
    let reply = send_mail(gw.addr, sender, &["user@example.com"], &message(sender, ""))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(reply.is("451 4.7.0"), "{reply:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(took >= Duration::from_secs(1), "took {took:?}");
    drain.abort();
    gw.stop().await;
}
