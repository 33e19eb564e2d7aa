//! Recipient validation at RCPT over real sockets: static lists, the SMTP callout with its
//! positive and negative cache, an unreachable or silent backend, and the shared address
//! space decided at RCPT time.

use edgemx_tests::{FakeBackend, Gateway, SmtpClient};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn route(name: &str, backend: SocketAddr, extra: &str) -> String {
    format!("[[route]]\nname = \"{name}\"\nnext_hops = [\"{backend}\"]\n{extra}\n",)
}

fn unknown(backend: &FakeBackend, who: &[&str]) {
    backend.set(|b| {
        for w in who {
            b.rcpt_replies
                .insert(w.to_string(), "550 5.1.1 no such user".into());
        }
    });
}

async fn session(gw: &Gateway) -> SmtpClient {
    let mut c = SmtpClient::connect(gw.addr).await.expect("connect");
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<s@sender.test>", "250").await;
    c
}

fn list(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write list");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_list_refuses_unknown_users_at_rcpt() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let users = list(dir.path(), "users", "alice@example.com\n");
    let extra = format!("domains = [\"example.com\"]\nrecipients = \"{users}\"");
    let gw = Gateway::start_bare(dir, &route("onprem", backend.addr(), &extra)).await;
    let mut c = session(&gw).await;
    c.expect("RCPT TO:<ALICE@example.com>", "250 2.1.5").await;
    c.expect("RCPT TO:<nobody@example.com>", "550 5.1.1").await;
    c.expect("RCPT TO:<postmaster@example.com>", "250 2.1.5")
        .await;
    c.command("QUIT").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callout_verdicts_are_cached_both_ways() {
    let backend = FakeBackend::start().await;
    unknown(&backend, &["ghost@example.com"]);
    let extra = "domains = [\"example.com\"]\ncallout = true";
    let config = route("cloud", backend.addr(), extra)
        + "[routing.callout]\npositive_ttl = \"1h\"\nnegative_ttl = \"1h\"\n";
    let gw = Gateway::start_bare(tempfile::tempdir().unwrap(), &config).await;
    let mut c = session(&gw).await;
    c.expect("RCPT TO:<alice@example.com>", "250 2.1.5").await;
    assert_eq!(
        backend.connections(),
        1,
        "the first RCPT probes the backend"
    );
    c.expect("RSET", "250").await;
    c.expect("MAIL FROM:<s@sender.test>", "250").await;
    c.expect("RCPT TO:<Alice@Example.com>", "250 2.1.5").await;
    assert_eq!(
        backend.connections(),
        1,
        "a cached yes does not probe again"
    );
    c.expect("RCPT TO:<ghost@example.com>", "550 5.1.1").await;
    assert_eq!(backend.connections(), 2, "a miss probes");
    c.expect("RCPT TO:<ghost@example.com>", "550 5.1.1").await;
    assert_eq!(backend.connections(), 2, "a cached no does not probe again");
    c.command("QUIT").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_verdict_is_asked_again() {
    let backend = FakeBackend::start().await;
    let extra = "domains = [\"example.com\"]\ncallout = true";
    let config =
        route("cloud", backend.addr(), extra) + "[routing.callout]\npositive_ttl = \"300ms\"\n";
    let gw = Gateway::start_bare(tempfile::tempdir().unwrap(), &config).await;
    let mut c = session(&gw).await;
    c.expect("RCPT TO:<alice@example.com>", "250 2.1.5").await;
    assert_eq!(backend.connections(), 1);
    let deadline = tokio::time::Instant::now() + WAIT;
    while backend.connections() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never probed again");
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.expect("RCPT TO:<alice@example.com>", "250 2.1.5").await;
    }
    c.command("QUIT").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_backend_defers_with_451_4_4_3_or_accepts_when_configured() {
    let dead = FakeBackend::start().await.stop();
    let extra = "domains = [\"example.com\"]\ncallout = true";
    let gw = Gateway::start_bare(tempfile::tempdir().unwrap(), &route("cloud", dead, extra)).await;
    let mut c = session(&gw).await;
    c.expect("RCPT TO:<alice@example.com>", "451 4.4.3").await;
    c.command("QUIT").await;
    gw.stop().await;
    let config = route("cloud", dead, extra) + "[routing.callout]\nunreachable = \"accept\"\n";
    let gw = Gateway::start_bare(tempfile::tempdir().unwrap(), &config).await;
    let mut c = session(&gw).await;
    c.expect("RCPT TO:<alice@example.com>", "250 2.1.5").await;
    c.command("QUIT").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_backend_costs_rcpt_no_more_than_the_callout_timeout() {
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let extra = "domains = [\"example.com\"]\ncallout = true";
    let config = route("cloud", addr, extra) + "[routing.callout]\ntimeout = \"500ms\"\n";
    let gw = Gateway::start_bare(tempfile::tempdir().unwrap(), &config).await;
    let mut c = session(&gw).await;
    let started = std::time::Instant::now();
    c.expect("RCPT TO:<alice@example.com>", "451 4.4.3").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    c.command("QUIT").await;
    gw.stop().await;
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_address_space_at_rcpt_sends_cloud_unknowns_to_the_fallback() {
    let (cloud, onprem) = (FakeBackend::start().await, FakeBackend::start().await);
    unknown(&cloud, &["dave@example.com", "zed@example.com"]);
    let dir = tempfile::tempdir().unwrap();
    let users = list(dir.path(), "onprem-users", "dave@example.com\n");
    let cloud_route = "domains = [\"example.com\"]\ncallout = true\nfallback = \"onprem\"";
    let config = route("cloud", cloud.addr(), cloud_route)
        + &route(
            "onprem",
            onprem.addr(),
            &format!("recipients = \"{users}\""),
        );
    let gw = Gateway::start_bare(dir, &config).await;
    let mut c = session(&gw).await;
    c.expect("RCPT TO:<erin@example.com>", "250 2.1.5").await;
    c.expect("RCPT TO:<dave@example.com>", "250 2.1.5").await;
    // Unknown in the cloud and not on-prem either: refused now, never bounced later.
    c.expect("RCPT TO:<zed@example.com>", "550 5.1.1").await;
    let reply = c.data("Subject: shared\r\n\r\nhi\r\n").await;
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    c.command("QUIT").await;
    let got = onprem.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].rcpt_to, ["dave@example.com"]);
    let got = cloud.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].rcpt_to, ["erin@example.com"]);
    gw.stop().await;
}
