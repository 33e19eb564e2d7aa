//! Secondary MX and next-hop health: mail held while the primary is down goes out within
//! seconds of its return (not after the retry back-off), a flapping primary loses nothing,
//! and the MX preference rule never sends mail to ourselves or a less-preferred MX.

use edgemx_tests::control::{queued, wait_hop, wait_queue};
use edgemx_tests::dns::{DnsServer, Zone};
use edgemx_tests::{FakeBackend, Gateway, ReceivedMessage, send_mail};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
/// Retries an hour apart: only the release on recovery can deliver within the test.
const SLOW_RETRY: &str = "[queue]\nretry_intervals = [\"1h\"]\nretry_jitter = 0.0\n";
const FAST_CHECKS: &str =
    "[flow]\ncheck_interval = \"200ms\"\nfall = 1\nrise = 2\ndrain_rate = 0\n";

fn secondary(addr: std::net::SocketAddr) -> String {
    format!(
        "{SLOW_RETRY}{FAST_CHECKS}\n[[domain]]\nname = \"sec.example\"\nrole = \"secondary\"\n\
         next_hops = [\"{addr}\"]\n"
    )
}

async fn send(gw: &Gateway, tag: &str, rcpt: &str) {
    let body = format!("Message-ID: <{tag}@test>\r\nSubject: {tag}\r\n\r\nx\r\n");
    let reply = send_mail(gw.addr, "a@sender.test", &[rcpt], &body).await;
    assert!(
        reply.as_ref().is_ok_and(|r| r.is("250")),
        "{tag}: {reply:?}"
    );
}

/// Waits until a stopped backend's port can be bound again (its listener is dropped
/// asynchronously).
async fn until_free(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + WAIT;
    while std::net::TcpListener::bind(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} never freed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn unique_ids(got: &[ReceivedMessage]) -> HashSet<String> {
    got.iter().filter_map(|m| m.message_id()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_delivers_held_mail_within_seconds_of_the_primary_returning() {
    let addr = FakeBackend::start().await.stop();
    let gw = Gateway::start(addr, &secondary(addr)).await;
    const N: usize = 50;
    for i in 0..N {
        send(&gw, &format!("held{i}"), "user@sec.example").await;
    }
    wait_queue(&gw, WAIT, "deferred everything", |l| {
        l.len() == N && l.iter().all(|e| e["attempts"].as_u64().unwrap_or(0) >= 1)
    })
    .await;
    wait_hop(&gw, &addr.to_string(), "down", WAIT).await;
    let back = Instant::now();
    let backend = FakeBackend::start_on(addr).await;
    let got = backend.wait_for_messages(N, WAIT).await;
    let took = back.elapsed();
    eprintln!("recovery: {N} held messages delivered {took:?} after the primary returned");
    assert!(
        took < Duration::from_secs(10),
        "retry interval is 1h; the release on recovery took {took:?}"
    );
    assert_eq!(unique_ids(&got).len(), N);
    wait_queue(&gw, WAIT, "emptied", |l| l.is_empty()).await;
    wait_hop(&gw, &addr.to_string(), "up", WAIT).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_primary_loses_nothing() {
    let addr = FakeBackend::start().await.stop();
    let extra = format!("{}[delivery]\nidle_timeout = \"100ms\"\n", secondary(addr));
    let gw = Gateway::start(addr, &extra).await;
    let hop = addr.to_string();
    let mut seen: Vec<Box<dyn Fn() -> Vec<ReceivedMessage>>> = Vec::new();
    let mut sent = 0;
    for round in 0..3 {
        for _ in 0..10 {
            send(&gw, &format!("flap{sent}"), "user@sec.example").await;
            sent += 1;
        }
        wait_hop(&gw, &hop, "down", WAIT).await;
        let backend = FakeBackend::start_on(addr).await;
        wait_hop(&gw, &hop, "up", WAIT).await;
        // Down again while the release may still be running.
        seen.push(Box::new(backend.recorder()));
        until_free(backend.stop()).await;
        eprintln!("flap round {round}: primary up then down again");
    }
    let backend = FakeBackend::start_on(addr).await;
    wait_queue(&gw, WAIT, "emptied", |l| l.is_empty()).await;
    seen.push(Box::new(backend.recorder()));
    let got: Vec<ReceivedMessage> = seen.iter().flat_map(|f| f()).collect();
    let ids = unique_ids(&got);
    eprintln!(
        "flapping: {sent} sent, {} deliveries, {} distinct",
        got.len(),
        ids.len()
    );
    assert_eq!(ids.len(), sent, "every message delivered at least once");
    assert!(
        got.len() <= sent * 2,
        "no storm of duplicates: {}",
        got.len()
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mx_rule_sends_only_to_more_preferred_hosts_and_never_loops() {
    // The gateway is `gateway.test` (MX 20 for sec.test; MX 10 for best.test) and also
    // 127.0.9.12 (an MX of best2.test under another name). MX delivery uses port 25.
    let ip = |last: u8| std::net::IpAddr::from([127, 0, 9, last]);
    let dns = DnsServer::start(
        Zone::new()
            .mx("sec.test", 10, "mx1.sec.test")
            .mx("sec.test", 20, "gateway.test")
            .mx("best.test", 10, "gateway.test")
            .mx("best.test", 20, "mx3.best.test")
            .mx("best2.test", 10, "alias.best2.test")
            .mx("best2.test", 20, "mx3.best.test")
            .a("mx1.sec.test", ip(11))
            .a("gateway.test", ip(12))
            .a("alias.best2.test", ip(12))
            .a("mx3.best.test", ip(13)),
    )
    .await;
    let bind = |last| std::net::SocketAddr::new(ip(last), 25);
    let primary = FakeBackend::start_on(bind(11)).await;
    let lesser = FakeBackend::start_on(bind(13)).await;
    let mut extra = format!(
        "[queue]\nretry_intervals = [\"1s\"]\nretry_jitter = 0.0\n\
         [dns]\nnameservers = [\"{}\"]\n[flow]\nour_names = [\"127.0.9.12\"]\n",
        dns.addr
    );
    for name in ["sec.test", "best.test", "best2.test"] {
        extra.push_str(&format!(
            "[[domain]]\nname = \"{name}\"\nrole = \"secondary\"\nnext_hops = [\"mx\"]\n"
        ));
    }
    let gw = Gateway::start(primary.addr(), &extra).await;
    send(&gw, "to-primary", "user@sec.test").await;
    let got = primary.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].message_id().as_deref(), Some("<to-primary@test>"));
    wait_queue(&gw, WAIT, "emptied", |l| l.is_empty()).await;

    send(&gw, "we-are-best", "user@best.test").await;
    send(&gw, "we-are-best-by-address", "user@best2.test").await;
    // Attempted several times, deferred every time with the loop verdict.
    let list = wait_queue(&gw, WAIT, "retried the looping mail", |l| {
        l.len() == 2 && l.iter().all(|e| e["attempts"].as_u64().unwrap_or(0) >= 3)
    })
    .await;
    for env in &list {
        let status = env["recipients"][0]["status"].to_string();
        assert!(
            status.contains("Deferred") && status.contains("4.4.6"),
            "{status}"
        );
    }
    assert!(lesser.messages().is_empty(), "never to a less-preferred MX");
    assert_eq!(primary.messages().len(), 1, "nor elsewhere");
    assert_eq!(queued(&gw).await.len(), 2, "deferred, not bounced");
    gw.stop().await;
}
