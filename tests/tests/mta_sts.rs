//! MTA-STS (RFC 8461) for delivery by MX: the `_mta-sts` record in a loopback DNS server,
//! the policy served over HTTPS on loopback by a rustls server with the lab CA's
//! certificate for `mta-sts.sts.test`, and an MX host whose certificate does or does not
//! verify. `enforce` defers what does not verify or is not a policy MX host, `testing` only
//! counts, and a cached policy keeps applying while the policy host is down, also after the
//! gateway restarts (the cache is in redb).

use edgemx::control::Request;
use edgemx::queue::QueueId;
use edgemx_tests::backend::Backend;
use edgemx_tests::dns::{DnsServer, Zone};
use edgemx_tests::https::PolicyServer;
use edgemx_tests::pki::Ca;
use edgemx_tests::{FakeBackend, Gateway, send_mail};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

struct Lab {
    ca_dir: tempfile::TempDir,
    ca: Ca,
    dns: DnsServer,
    policy: PolicyServer,
    backend: FakeBackend,
}

fn policy(mode: &str, mx: &str) -> String {
    format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n")
}

fn zone(id: &str) -> Zone {
    Zone::new()
        .mx("sts.test", 10, "mx.sts.test")
        .a("mx.sts.test", LOOPBACK)
        .a("mta-sts.sts.test", LOOPBACK)
        .txt("_mta-sts.sts.test", &format!("v=STSv1; id={id}"))
}

/// The lab: DNS, the policy server with `policy_text`, an MX host presenting a certificate
/// of the lab CA for `mx_name`.
async fn lab(policy_text: &str, mx_name: &str) -> Lab {
    let ca = Ca::new("Lab CA");
    let ca_dir = tempfile::tempdir().unwrap();
    ca.write(ca_dir.path(), "ca.pem");
    let policy = PolicyServer::start(
        &ca.issue("mta-sts.sts.test", &["mta-sts.sts.test"]),
        policy_text,
    )
    .await;
    let behaviour = Backend {
        starttls: Some(ca.issue(mx_name, &[mx_name]).server_config(None)),
        ..Backend::default()
    };
    let backend = FakeBackend::start_with("127.0.0.1:0".parse().unwrap(), behaviour).await;
    let dns = DnsServer::start(zone("1")).await;
    Lab {
        ca_dir,
        ca,
        dns,
        policy,
        backend,
    }
}

impl Lab {
    fn body(&self) -> String {
        format!(
            "[[domain]]\nname = \"sts.test\"\nnext_hops = [\"mx\"]\n\n[delivery]\nmx_port = {mx}\n# Every message on a new connection, so each one meets the policy.\nmax_messages_per_connection = 1\n\n[dane]\nmode = \"off\"\n\n[mta_sts]\nca = \"{ca}\"\nport = {port}\nfetch_timeout = \"5s\"\n\n{dns}",
            mx = self.backend.addr().port(),
            ca = self.ca_dir.path().join("ca.pem").display(),
            port = self.policy.addr.port(),
            dns = self.dns.config(),
        )
    }

    async fn gateway(&self, dir: tempfile::TempDir) -> Gateway {
        Gateway::start_bare(dir, &self.body()).await
    }

    /// The MX host now presents a certificate for another name.
    fn mismatch(&self) {
        let wrong = self
            .ca
            .issue("other.test", &["other.test"])
            .server_config(None);
        self.backend.set(|b| b.starttls = Some(wrong));
    }
}

async fn send(gw: &Gateway) -> QueueId {
    let reply = send_mail(
        gw.addr,
        "a@sender.test",
        &["user@sts.test"],
        "Subject: sts\r\n\r\nhi\r\n",
    )
    .await
    .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    reply.text.rsplit(' ').next().unwrap().parse().unwrap()
}

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

fn outcome(metrics: &str, result: &str, enforced: &str) -> bool {
    let labels = format!("policy=\"sts\",result=\"{result}\",enforced=\"{enforced}\"");
    metrics
        .lines()
        .any(|l| l.starts_with("edgemx_tls_policy_outcomes_total{") && l.contains(&labels))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforced_policy_delivers_to_a_listed_mx_host_with_a_verified_certificate() {
    let lab = lab(&policy("enforce", "mx.sts.test"), "mx.sts.test").await;
    let gw = lab.gateway(tempfile::tempdir().unwrap()).await;
    send(&gw).await;
    let got = lab.backend.wait_for_messages(1, WAIT).await;
    assert!(got[0].tls.is_some());
    assert_eq!(lab.policy.requests.load(Ordering::SeqCst), 1);
    assert!(outcome(&gw.metrics().await, "success", "yes"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforced_policy_defers_when_the_certificate_does_not_name_the_mx_host() {
    let lab = lab(&policy("enforce", "mx.sts.test"), "other.test").await;
    let gw = lab.gateway(tempfile::tempdir().unwrap()).await;
    let id = send(&gw).await;
    let reply = deferred(&gw, id).await;
    assert!(reply.starts_with("451 4.7."), "{reply}");
    assert!(lab.backend.messages().is_empty());
    let metrics = gw.metrics().await;
    assert!(
        outcome(&metrics, "certificate-host-mismatch", "yes"),
        "{metrics}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforced_policy_never_connects_to_an_mx_host_it_does_not_list() {
    let lab = lab(&policy("enforce", "*.elsewhere.test"), "mx.sts.test").await;
    let gw = lab.gateway(tempfile::tempdir().unwrap()).await;
    let id = send(&gw).await;
    let reply = deferred(&gw, id).await;
    assert!(reply.contains("4.7.5"), "{reply}");
    assert_eq!(lab.backend.connections(), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_testing_policy_counts_the_failure_and_delivers() {
    let lab = lab(&policy("testing", "mx.sts.test"), "other.test").await;
    let gw = lab.gateway(tempfile::tempdir().unwrap()).await;
    send(&gw).await;
    lab.backend.wait_for_messages(1, WAIT).await;
    let metrics = gw.metrics().await;
    assert!(
        outcome(&metrics, "certificate-host-mismatch", "no"),
        "{metrics}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_policy_is_enforced_while_the_policy_host_is_down_also_after_a_restart() {
    let lab = lab(&policy("enforce", "mx.sts.test"), "mx.sts.test").await;
    let gw = lab.gateway(tempfile::tempdir().unwrap()).await;
    send(&gw).await;
    lab.backend.wait_for_messages(1, WAIT).await;
    // The policy host goes away and the MX host's certificate stops verifying: without
    // the cached policy this mail would go out over opportunistic TLS.
    lab.policy.stop();
    lab.mismatch();
    let id = send(&gw).await;
    assert!(deferred(&gw, id).await.starts_with("451 4.7."));
    // After a restart the record announces a new policy that cannot be fetched: the
    // policy cached in redb still applies.
    lab.dns.set(zone("2"));
    let dir = gw.stop().await;
    let gw = lab.gateway(dir).await;
    let id = send(&gw).await;
    assert!(deferred(&gw, id).await.starts_with("451 4.7."));
    assert_eq!(
        lab.backend.messages().len(),
        1,
        "only the first message went out"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_tls_policy_names_the_sts_policy_and_its_cache() {
    let lab = lab(&policy("enforce", "mx.sts.test"), "mx.sts.test").await;
    let gw = lab.gateway(tempfile::tempdir().unwrap()).await;
    send(&gw).await;
    lab.backend.wait_for_messages(1, WAIT).await;
    let call = edgemx::control::ConsoleRequest::TlsPolicy {
        domain: "sts.test".into(),
    };
    let shown = edgemx_tests::control::call(&gw, edgemx::control::Request::Console { call })
        .await
        .expect("show tls policy");
    let shown: edgemx::delivery::TlsPolicyView =
        edgemx::control::reply::decode(shown).expect("a TlsPolicyView");
    assert_eq!(shown.applies, "MTA-STS (enforce)", "{shown:?}");
    assert_eq!(shown.sts_record, "v=STSv1; id=1");
    assert!(
        shown
            .sts_cached
            .as_deref()
            .is_some_and(|c| c.starts_with("id 1,")),
        "{shown:?}"
    );
    assert_eq!(shown.hosts[0].policy, "MTA-STS (enforce)");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_policy_is_served_on_the_admin_listener_and_parses() {
    let body = "[[domain]]\nname = \"example.com\"\nnext_hops = [\"127.0.0.1:2526\"]\n\n\
                [mta_sts.publish]\nmode = \"enforce\"\nmx = [\"mx1.example.com\", \"*.mx.example.com\"]\nmax_age = \"7d\"\n";
    let gw = Gateway::start_bare(tempfile::tempdir().unwrap(), body).await;
    let (status, text) = edgemx_tests::admin::http(gw.admin, "GET", "/.well-known/mta-sts.txt")
        .await
        .expect("admin listener");
    assert_eq!(status, 200, "{text}");
    let policy = edgemx::mtasts::Policy::parse("1", &text).expect(&text);
    assert_eq!(policy.mode, edgemx::mtasts::Mode::Enforce);
    assert!(policy.matches("mx1.example.com") && policy.matches("a.mx.example.com"));
    assert_eq!(policy.max_age, 604_800);
    gw.stop().await;
}
