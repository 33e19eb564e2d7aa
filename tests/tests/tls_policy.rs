//! TLS policy per route towards backends: `required` never falls back to plaintext,
//! `verify` checks chain and name, `pin` the leaf key, and a client certificate is
//! presented when the backend demands one. A failed check tries the next hop, then defers.

use edgemx::control::Request;
use edgemx::queue::QueueId;
use edgemx_tests::backend::Backend;
use edgemx_tests::pki::{Ca, Identity};
use edgemx_tests::{FakeBackend, Gateway, send_mail};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

async fn backend_with(tls: Option<Arc<rustls::ServerConfig>>) -> FakeBackend {
    let behaviour = Backend {
        starttls: tls,
        ..Backend::default()
    };
    FakeBackend::start_with("127.0.0.1:0".parse().unwrap(), behaviour).await
}

/// A `[[domain]]` routed to `hops` with the TLS policy `tls` (TOML string or table).
fn route(name: &str, hops: &[SocketAddr], tls: &str) -> String {
    let hops: Vec<String> = hops.iter().map(|h| format!("\"{h}\"")).collect();
    format!(
        "[[domain]]\nname = \"{name}\"\nnext_hops = [{}]\ntls = {tls}\n\n",
        hops.join(", ")
    )
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Sends one message to `to`; returns its queue id.
async fn send(gw: &Gateway, to: &str) -> QueueId {
    let body = format!("Subject: to {to}\r\n\r\nhello\r\n");
    let reply = send_mail(gw.addr, "a@sender.test", &[to], &body)
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
        assert!(
            tokio::time::Instant::now() < deadline,
            "message {id} never deferred: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_route_to_a_backend_without_starttls_defers_and_sends_nothing_in_plaintext() {
    let plain = FakeBackend::start().await;
    let extra = route("secure.test", &[plain.addr()], "\"required\"");
    let gw = Gateway::start(plain.addr(), &extra).await;
    let id = send(&gw, "user@secure.test").await;
    let reply = deferred(&gw, id).await;
    assert!(reply.contains("4.7.4"), "{reply}");
    assert!(plain.connections() >= 1, "the backend was never tried");
    assert!(plain.messages().is_empty(), "mail went out in plaintext");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_delivers_to_a_backend_certified_by_the_route_ca_and_defers_on_a_wrong_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Backend CA");
    let ca_file = path(&ca.write(dir.path(), "backend-ca.pem"));
    let identity = ca.issue("backend.test", &["backend.test"]);
    let backend = backend_with(Some(identity.server_config(None))).await;
    let hop = [backend.addr()];
    let verify =
        |name: &str| format!("{{ policy = \"verify\", ca = \"{ca_file}\", name = \"{name}\" }}");
    let extra = route("good.test", &hop, &verify("backend.test"))
        + &route("wrongname.test", &hop, &verify("other.test"))
        + &route(
            "webpki.test",
            &hop,
            "{ policy = \"verify\", name = \"backend.test\" }",
        );
    let gw = Gateway::start(backend.addr(), &extra).await;

    send(&gw, "user@good.test").await;
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].rcpt_to, ["user@good.test"]);
    assert!(got[0].tls.is_some());

    let wrong = send(&gw, "user@wrongname.test").await;
    let reply = deferred(&gw, wrong).await;
    assert!(
        reply.contains("4.7.5") && reply.contains("certificate"),
        "{reply}"
    );
    // Our private CA is not among the WebPKI roots.
    let webpki = send(&gw, "user@webpki.test").await;
    let reply = deferred(&gw, webpki).await;
    assert!(reply.contains("UnknownIssuer"), "{reply}");
    assert_eq!(backend.messages().len(), 1, "nothing else delivered");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_delivers_to_the_pinned_key_trying_the_next_hop_and_defers_on_a_wrong_pin() {
    let ca = Ca::new("Any CA");
    let (a, b): (Identity, Identity) = (
        ca.issue("a.test", &["a.test"]),
        ca.issue("b.test", &["b.test"]),
    );
    let backend_a = backend_with(Some(a.server_config(None))).await;
    let backend_b = backend_with(Some(b.server_config(None))).await;
    let pin_b = format!("{{ policy = \"pin\", pins = [\"{}\"] }}", b.pin());
    let extra = route("pinned.test", &[backend_a.addr(), backend_b.addr()], &pin_b)
        + &route("wrongpin.test", &[backend_a.addr()], &pin_b);
    let gw = Gateway::start(backend_b.addr(), &extra).await;

    send(&gw, "user@pinned.test").await;
    let got = backend_b.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].rcpt_to, ["user@pinned.test"]);
    assert!(backend_a.connections() >= 1, "the first hop was not tried");

    let wrong = send(&gw, "user@wrongpin.test").await;
    let reply = deferred(&gw, wrong).await;
    assert!(reply.contains("matches no configured pin"), "{reply}");
    assert!(backend_a.messages().is_empty());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_presented_to_a_backend_that_requires_one() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("Backend CA");
    let client_ca = Ca::new("Exchange connector CA");
    let server = server_ca.issue("exchange.test", &["exchange.test"]);
    let backend = backend_with(Some(server.server_config(Some(&client_ca)))).await;
    let (cert, key) = client_ca
        .issue("gateway.test", &["gateway.test"])
        .write(dir.path(), "gateway-client");
    let with_cert = format!(
        "{{ policy = \"required\", client_certificate = \"{}\", client_key = \"{}\" }}",
        path(&cert),
        path(&key)
    );
    let stranger = Ca::new("Some other CA").issue("gateway.test", &["gateway.test"]);
    let (bad_cert, bad_key) = stranger.write(dir.path(), "stranger");
    let with_bad_cert = format!(
        "{{ policy = \"required\", client_certificate = \"{}\", client_key = \"{}\" }}",
        path(&bad_cert),
        path(&bad_key)
    );
    let extra = route("onprem.test", &[backend.addr()], &with_cert)
        + &route("nocert.test", &[backend.addr()], "\"required\"")
        + &route("badcert.test", &[backend.addr()], &with_bad_cert);
    let gw = Gateway::start(backend.addr(), &extra).await;

    send(&gw, "user@onprem.test").await;
    let got = backend.wait_for_messages(1, WAIT).await;
    assert!(got[0].client_certificate && got[0].tls.is_some(), "{got:?}");

    let without = send(&gw, "user@nocert.test").await;
    let reply = deferred(&gw, without).await;
    // TLS 1.3: the backend's refusal arrives as an alert after the client's Finished; it is
    // a certificate problem (4.7.x) that says so, not a lost connection.
    assert!(
        reply.starts_with("451 4.7.5 ")
            && reply.contains("requires a TLS client certificate and none is configured"),
        "{reply}"
    );
    let rejected = send(&gw, "user@badcert.test").await;
    let reply = deferred(&gw, rejected).await;
    assert!(
        reply.starts_with("451 4.7.5 ")
            && reply.contains(&format!(
                "rejected our TLS client certificate {}",
                path(&bad_cert)
            )),
        "{reply}"
    );
    assert_eq!(backend.messages().len(), 1);
    // The registry is this gateway's own, whatever else runs in the process.
    let metrics = gw.metrics().await;
    for reason in ["client_certificate_required", "client_certificate_rejected"] {
        let labels = format!("reason=\"{reason}\"");
        let n = edgemx_tests::admin::sum(&metrics, "edgemx_tls_failures_total", &[&labels]);
        assert!(n >= 1.0, "{reason}: {metrics}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_the_next_hop_host_name_when_no_name_is_configured() {
    use edgemx_tests::dns::{DnsServer, Zone};
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Backend CA");
    let ca_file = path(&ca.write(dir.path(), "backend-ca.pem"));
    let identity = ca.issue("backend.test", &["backend.test"]);
    let backend = backend_with(Some(identity.server_config(None))).await;
    let loopback = "127.0.0.1".parse().unwrap();
    let dns = DnsServer::start(
        Zone::new()
            .a("backend.test", loopback)
            .a("impostor.test", loopback),
    )
    .await;
    let port = backend.addr().port();
    let verify = format!("{{ policy = \"verify\", ca = \"{ca_file}\" }}");
    let hop = |host: &str| {
        format!(
            "[[domain]]\nname = \"{host}.mail.test\"\nnext_hops = [\"{host}.test:{port}\"]\ntls = {verify}\n\n"
        )
    };
    let extra = hop("backend") + &hop("impostor") + &dns.config();
    let gw = Gateway::start(backend.addr(), &extra).await;

    send(&gw, "user@backend.mail.test").await;
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].rcpt_to, ["user@backend.mail.test"]);

    let impostor = send(&gw, "user@impostor.mail.test").await;
    let reply = deferred(&gw, impostor).await;
    assert!(
        reply.contains("not valid for name \"impostor.test\""),
        "{reply}"
    );
    assert_eq!(backend.messages().len(), 1);
    gw.stop().await;
}

#[test]
fn check_config_refuses_a_client_certificate_with_the_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Connector CA");
    let (cert, _) = ca.issue("gateway.test", &[]).write(dir.path(), "mine");
    let (_, other_key) = ca.issue("other.test", &[]).write(dir.path(), "other");
    let config = dir.path().join("edgemx.toml");
    let text = format!(
        "hostname = \"gw.test\"\ndata_dir = \"{data}\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\n\
         [[domain]]\nname = \"example.com\"\nnext_hops = [\"127.0.0.1:25\"]\n\
         tls = {{ policy = \"required\", client_certificate = \"{cert}\", client_key = \"{key}\" }}\n",
        data = path(dir.path()),
        cert = path(&cert),
        key = path(&other_key),
    );
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(edgemx_tests::gateway::binary())
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains(&format!("domain[0].tls.client_key = {}:", path(&other_key)))
            && err.contains("does not belong to the certificate"),
        "{err}"
    );
}
