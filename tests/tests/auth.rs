//! Inbound email authentication over real sockets: SPF verdicts for HELO and MAIL FROM,
//! our Authentication-Results header, forged ones removed, trusted relays exempt, and DNS
//! failures (SERVFAIL, a silent resolver) handled per `auth.dns_errors` and `auth.timeout`,
//! and an ARC chain verified.

use edgemx::config::Dns;
use edgemx::dkim::keygen::{self, Algorithm};
use edgemx_tests::dns::{DnsServer, Zone};
use edgemx_tests::mailauth::{auth_results, message, signed_message, start, zone};
use edgemx_tests::{FakeBackend, Gateway, SmtpClient, send_mail};
use mail_auth::{AuthenticatedMessage, MessageAuthenticator};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

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
        "[dns]\nnameservers = [\"{addr}\"]\ntimeout = \"1h\"\n[auth]\nverify = true\ntimeout = \"1s\"\n"
    );
    let gw = Gateway::start(backend.addr(), &extra).await;
    let started = std::time::Instant::now();
    let sender = "a@pass.test";
    let reply = send_mail(gw.addr, sender, &["user@example.com"], &message(sender, ""))
        .await
        .unwrap();
    let took = started.elapsed();
    // The resolver would wait an hour: a reply at all is `auth.timeout` at work.
    assert!(reply.is("451 4.7.0"), "{reply:?}");
    assert!(took >= Duration::from_secs(1), "took {took:?}");
    drain.abort();
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arc_sealed_message_verifies_as_arc_pass() {
    use mail_auth::arc::ArcSealer;
    use mail_auth::common::crypto::{RsaKey, Sha256};
    use mail_auth::common::headers::HeaderWriter;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;

    let pair = keygen::generate(Algorithm::Rsa).unwrap();
    let dns = DnsServer::start(
        Zone::new()
            .txt("arc1._domainkey.forwarder.test", &pair.record())
            .txt("client.test", "v=spf1 ip4:127.0.0.1 -all"),
    )
    .await;
    // A forwarder's seal over a message it received, as the next hop would see it.
    let original = signed_message("bob@origin.test");
    let parsed = AuthenticatedMessage::parse(original.as_bytes()).unwrap();
    let resolver = edgemx::dns::Resolver::new(&Dns {
        nameservers: vec![dns.addr],
        timeout: None,
    })
    .unwrap();
    let arc = MessageAuthenticator(resolver.hickory())
        .verify_arc(&parsed)
        .await;
    let results = mail_auth::AuthenticationResults::new("forwarder.test");
    let key = RsaKey::<Sha256>::from_key_der(
        PrivateKeyDer::from_pem_slice(pair.pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let set = ArcSealer::from_key(key)
        .domain("forwarder.test")
        .selector("arc1")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .seal(&parsed, &results, &arc)
        .unwrap();
    let sealed = format!("{}{original}", set.to_header());

    let backend = FakeBackend::start().await;
    let extra = format!("{}\n[auth]\nverify = true\n", dns.config());
    let gw = Gateway::start(backend.addr(), &extra).await;
    let reply = send_mail(gw.addr, "bob@origin.test", &["user@example.com"], &sealed)
        .await
        .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    let ar = edgemx_tests::backend::header(&got[0].data, "Authentication-Results").unwrap();
    assert!(ar.contains("arc=pass"), "{ar}");
    gw.stop().await;
}
