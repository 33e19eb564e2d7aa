//! DANE for SMTP (RFC 7672) against a real DNSSEC-signed zone served by knotd on loopback,
//! validated with the zone's own key as trust anchor: a next hop whose certificate matches
//! its TLSA record gets the mail over TLS; one that does not, or a Bogus answer, defers
//! under `enforce` (never bounces, never plaintext) and is only logged and counted under
//! `log-only`.

use edgemx::control::Request;
use edgemx::queue::QueueId;
use edgemx_tests::backend::Backend;
use edgemx_tests::dnssec::{SignedZone, tlsa_ee, tlsa_ta};
use edgemx_tests::pki::{Ca, Identity};
use edgemx_tests::{FakeBackend, Gateway, send_mail};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

struct Lab {
    zone: SignedZone,
    backend: FakeBackend,
    gw: Gateway,
}

/// A backend presenting `identity` (or no STARTTLS), the zone `dane.test` with its MX host
/// `mx.dane.test` at 127.0.0.1 and `tlsa` as the host's TLSA record, and a gateway
/// delivering `dane.test` by MX under DANE `mode`.
async fn lab(identity: Option<&Identity>, tlsa: &str, mode: &str, tamper: &[(&str, &str)]) -> Lab {
    lab_with(
        identity,
        tlsa,
        mode,
        tamper,
        "",
        "[mta_sts]\nenabled = false\n",
    )
    .await
}

/// [`lab`] with more zone records and configuration (`sts`: the `[mta_sts]` section).
async fn lab_with(
    identity: Option<&Identity>,
    tlsa: &str,
    mode: &str,
    tamper: &[(&str, &str)],
    more_records: &str,
    sts: &str,
) -> Lab {
    let behaviour = Backend {
        starttls: identity.map(|i| i.server_config(None)),
        ..Backend::default()
    };
    let backend = FakeBackend::start_with("127.0.0.1:0".parse().unwrap(), behaviour).await;
    let port = backend.addr().port();
    let records =
        format!("@ MX 10 mx\nmx A 127.0.0.1\n_{port}._tcp.mx TLSA {tlsa}\n{more_records}");
    let zone = SignedZone::start("dane.test", &records, tamper);
    let body = format!(
        "[[domain]]\nname = \"dane.test\"\nnext_hops = [\"mx\"]\n\n[delivery]\nmx_port = {port}\n\n{sts}\n{}",
        zone.config(mode)
    );
    let gw = Gateway::start_bare(tempfile::tempdir().unwrap(), &body).await;
    Lab { zone, backend, gw }
}

fn mx_identity(ca: &Ca) -> Identity {
    ca.issue("mx.dane.test", &["mx.dane.test"])
}

async fn send(gw: &Gateway) -> QueueId {
    let body = "Subject: dane\r\n\r\nhello\r\n";
    let reply = send_mail(gw.addr, "a@sender.test", &["user@dane.test"], body)
        .await
        .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    reply.text.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Waits until the message's recipient was deferred; returns the deferral reply.
async fn deferred(gw: &Gateway, id: QueueId) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut control = gw.control();
        let shown = tokio::task::spawn_blocking(move || control.call(&Request::Show { id }))
            .await
            .unwrap()
            .expect("queue show");
        let status = &shown["envelope"]["recipients"][0]["status"];
        if let Some(reply) = status["Deferred"]["reply"].as_str() {
            return reply.to_string();
        }
        assert!(status.get("Bounced").is_none(), "bounced: {shown}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "never deferred: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn outcome(metrics: &str, policy: &str, result: &str, enforced: &str) -> bool {
    let labels = format!("policy=\"{policy}\",result=\"{result}\",enforced=\"{enforced}\"");
    metrics
        .lines()
        .any(|l| l.starts_with("edgemx_tls_policy_outcomes_total{") && l.contains(&labels))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_matching_its_dane_ee_record_gets_the_mail_over_tls() {
    let ca = Ca::new("Lab CA");
    let id = mx_identity(&ca);
    let lab = lab(Some(&id), &tlsa_ee(&id.chain), "enforce", &[]).await;
    send(&lab.gw).await;
    let got = lab.backend.wait_for_messages(1, WAIT).await;
    assert!(got[0].tls.is_some(), "delivered without TLS");
    let metrics = lab.gw.metrics().await;
    assert!(outcome(&metrics, "tlsa", "success", "yes"), "{metrics}");
    drop(lab.zone);
    lab.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dane_ta_record_accepts_a_leaf_of_that_ca_naming_the_mx_host() {
    let ca = Ca::new("Lab CA");
    let id = mx_identity(&ca);
    let lab = lab(Some(&id), &tlsa_ta(&id.chain), "enforce", &[]).await;
    send(&lab.gw).await;
    let got = lab.backend.wait_for_messages(1, WAIT).await;
    assert!(got[0].tls.is_some());
    lab.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_enforce_a_certificate_matching_no_tlsa_record_defers_and_nothing_is_sent() {
    let ca = Ca::new("Lab CA");
    let presented = mx_identity(&ca);
    let published = mx_identity(&ca);
    let lab = lab(Some(&presented), &tlsa_ee(&published.chain), "enforce", &[]).await;
    let queued = send(&lab.gw).await;
    let reply = deferred(&lab.gw, queued).await;
    assert!(reply.starts_with("451 4.7."), "{reply}");
    assert!(
        lab.backend.messages().is_empty(),
        "mail went to a mismatching host"
    );
    let metrics = lab.gw.metrics().await;
    assert!(
        outcome(&metrics, "tlsa", "tlsa-invalid", "yes"),
        "{metrics}"
    );
    lab.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_log_only_a_mismatch_is_counted_and_the_mail_still_delivered() {
    let ca = Ca::new("Lab CA");
    let presented = mx_identity(&ca);
    let published = mx_identity(&ca);
    let lab = lab(
        Some(&presented),
        &tlsa_ee(&published.chain),
        "log-only",
        &[],
    )
    .await;
    send(&lab.gw).await;
    lab.backend.wait_for_messages(1, WAIT).await;
    let metrics = lab.gw.metrics().await;
    assert!(outcome(&metrics, "tlsa", "tlsa-invalid", "no"), "{metrics}");
    lab.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_enforce_a_host_with_tlsa_but_no_starttls_defers_rather_than_send_plaintext() {
    let ca = Ca::new("Lab CA");
    let published = mx_identity(&ca);
    let lab = lab(None, &tlsa_ee(&published.chain), "enforce", &[]).await;
    let queued = send(&lab.gw).await;
    let reply = deferred(&lab.gw, queued).await;
    assert!(reply.contains("4.7.4"), "{reply}");
    assert!(
        lab.backend.messages().is_empty(),
        "mail went out in plaintext"
    );
    let metrics = lab.gw.metrics().await;
    assert!(
        outcome(&metrics, "tlsa", "starttls-not-supported", "yes"),
        "{metrics}"
    );
    lab.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bogus_signature_defers_with_4_7_5_and_never_connects() {
    let ca = Ca::new("Lab CA");
    let id = mx_identity(&ca);
    // The MX host's address changed after signing: its RRSIG no longer verifies.
    let tamper = [(
        "mx.dane.test.\t300\tIN\tA\t127.0.0.1",
        "mx.dane.test.\t300\tIN\tA\t127.0.0.2",
    )];
    let lab = lab(Some(&id), &tlsa_ee(&id.chain), "enforce", &tamper).await;
    let queued = send(&lab.gw).await;
    let reply = deferred(&lab.gw, queued).await;
    assert!(reply.contains("4.7.5"), "{reply}");
    assert_eq!(
        lab.backend.connections(),
        0,
        "connected despite a bogus answer"
    );
    lab.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_log_only_a_bogus_zone_is_delivered_as_without_dane() {
    let ca = Ca::new("Lab CA");
    let id = mx_identity(&ca);
    let tamper = [("IN\tMX\t10 mx.dane.test.", "IN\tMX\t20 mx.dane.test.")];
    let lab = lab(Some(&id), &tlsa_ee(&id.chain), "log-only", &tamper).await;
    send(&lab.gw).await;
    let got = lab.backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got.len(), 1);
    lab.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_tls_policy_names_dane_with_the_records_it_saw() {
    let ca = Ca::new("Lab CA");
    let id = mx_identity(&ca);
    let tlsa = tlsa_ee(&id.chain);
    let lab = lab(Some(&id), &tlsa, "enforce", &[]).await;
    send(&lab.gw).await;
    lab.backend.wait_for_messages(1, WAIT).await;
    let call = edgemx::control::ConsoleRequest::TlsPolicy {
        domain: "dane.test".into(),
    };
    let shown = edgemx_tests::control::call(&lab.gw, edgemx::control::Request::Console { call })
        .await
        .expect("show tls policy");
    let shown: edgemx::delivery::TlsPolicyView =
        edgemx::control::reply::decode(shown).expect("a TlsPolicyView");
    assert_eq!(shown.applies, "DANE (enforce)", "{shown:?}");
    let host = &shown.hosts[0];
    assert_eq!(
        (host.host.as_str(), host.dnssec.as_str()),
        ("mx.dane.test", "secure")
    );
    assert_eq!(host.policy, "DANE (enforce)");
    assert_eq!(host.tlsa, [tlsa.to_uppercase()]);
    lab.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dane_takes_precedence_over_an_mta_sts_policy_that_would_refuse_the_host() {
    let ca = Ca::new("Lab CA");
    let id = mx_identity(&ca);
    let ca_dir = tempfile::tempdir().unwrap();
    ca.write(ca_dir.path(), "ca.pem");
    // An enforced STS policy that does not list mx.dane.test: alone it would defer.
    let policy = "version: STSv1\r\nmode: enforce\r\nmx: *.elsewhere.test\r\nmax_age: 600\r\n";
    let sts_host = ca.issue("mta-sts.dane.test", &["mta-sts.dane.test"]);
    let server = edgemx_tests::https::PolicyServer::start(&sts_host, policy).await;
    let records = "_mta-sts TXT \"v=STSv1; id=1\"\nmta-sts A 127.0.0.1\n";
    let sts = format!(
        "[mta_sts]\nca = \"{}\"\nport = {}\n",
        ca_dir.path().join("ca.pem").display(),
        server.addr.port()
    );
    let lab = lab_with(
        Some(&id),
        &tlsa_ee(&id.chain),
        "enforce",
        &[],
        records,
        &sts,
    )
    .await;
    send(&lab.gw).await;
    let got = lab.backend.wait_for_messages(1, WAIT).await;
    assert!(got[0].tls.is_some());
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
    let metrics = lab.gw.metrics().await;
    assert!(outcome(&metrics, "tlsa", "success", "yes"), "{metrics}");
    lab.gw.stop().await;
}
