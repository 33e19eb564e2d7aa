//! The admin listener of a gateway: counters scraped over HTTP after mail went through,
//! queue depth per destination while a backend is down, connections, and `/healthz`
//! turning 503 when the queue is full and during shutdown.
//!
//! The gateways run in this one process, side by side: each has its own registry, so
//! every one's counters start at zero.

use edgemx_tests::admin::{http, sample, scrape, sum};
use edgemx_tests::{Backend, FakeBackend, Gateway, SmtpClient, send_mail};
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const BODY: &str = "Subject: metrics\r\n\r\ncount me\r\n";

/// Polls `/metrics` until `check` holds; panics with the last scrape after `WAIT`.
async fn wait_metrics(admin: SocketAddr, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = scrape(admin).await;
        if check(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never showed {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_health(admin: SocketAddr, want: u16) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = http(admin, "GET", "/healthz").await.expect("healthz");
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz stayed {status} ({body}), expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn counter(text: &str, name: &str) -> f64 {
    sample(text, name, "").unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_queue_depth_and_connections_are_scraped_over_http() {
    let tls = Backend {
        starttls: Some(edgemx_tests::self_signed_server("backend.test")),
        ..Backend::default()
    };
    let backend = FakeBackend::start_with("127.0.0.1:0".parse().unwrap(), tls).await;
    let down = FakeBackend::start().await.stop();
    let extra = format!(
        "[[domain]]\nname = \"down.test\"\nnext_hops = [\"{down}\"]\n\
         [limits]\nmax_connections_per_ip = 2\n\
         [queue]\nretry_intervals = [\"1s\"]\nretry_jitter = 0.0\n\
         [flow]\ncheck_interval = \"200ms\"\n"
    );
    let gw = Gateway::start(backend.addr(), &extra).await;
    let admin = gw.admin;
    let before = scrape(admin).await;
    assert_eq!(counter(&before, "edgemx_messages_accepted_total"), 0.0);
    assert_eq!(counter(&before, "edgemx_up"), 1.0);

    for i in 0..3 {
        let to = format!("user{i}@example.com");
        let reply = send_mail(gw.addr, "a@sender.test", &[&to], BODY).await;
        assert!(reply.unwrap().is("250"));
    }
    for i in 0..2 {
        let to = format!("user{i}@down.test");
        let reply = send_mail(gw.addr, "a@sender.test", &[&to], BODY).await;
        assert!(reply.unwrap().is("250"));
    }
    // A relay attempt (550 5.7.1) over TLS: one refusal by policy, one inbound TLS session.
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    let version = c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<x@elsewhere.test>", "550 5.7.1").await;
    c.expect("QUIT", "221").await;

    let dest = format!("{{destination=\"{down}\"}}");
    let (up, down_hop) = (
        format!("{{next_hop=\"{}\"}}", backend.addr()),
        format!("{{next_hop=\"{down}\"}}"),
    );
    let text = wait_metrics(admin, "3 delivered, 2 held, the dead next hop down", |t| {
        sample(t, "edgemx_next_hop_up", &up) == Some(1.0)
            && sample(t, "edgemx_next_hop_up", &down_hop) == Some(0.0)
            && sample(t, "edgemx_delivered_total", "") == Some(3.0)
            && sample(t, "edgemx_queue_destination_messages", &dest) == Some(2.0)
            && sample(t, "edgemx_deferred_total", "").is_some_and(|d| d >= 2.0)
    })
    .await;
    assert_eq!(backend.messages().len(), 3);
    assert_eq!(counter(&text, "edgemx_messages_accepted_total"), 5.0);
    assert_eq!(counter(&text, "edgemx_bounced_total"), 0.0);
    assert_eq!(counter(&text, "edgemx_queue_messages"), 2.0);
    assert!(sample(&text, "edgemx_queue_destination_oldest_age_seconds", &dest).is_some());
    let delivered_dest = format!("{{destination=\"{}\"}}", backend.addr());
    assert_eq!(
        sample(&text, "edgemx_queue_destination_messages", &delivered_dest),
        None,
        "a destination with nothing queued has no series"
    );
    let refused = r#"{reason="policy",code="550"}"#;
    assert_eq!(
        sample(&text, "edgemx_smtp_rejected_total", refused),
        Some(1.0)
    );
    let version = version.replace("TLSv1_", "TLSv1.");
    let tls = sum(
        &text,
        "edgemx_tls_sessions_total",
        &["direction=\"inbound\"", &format!("version=\"{version}\"")],
    );
    assert_eq!(tls, 1.0, "{text}");
    // Deliveries to the backend went over STARTTLS; the next-hop health checks (every
    // 200 ms here) negotiate TLS too, so there is at least one outbound session.
    assert!(backend.messages().iter().all(|m| m.tls.is_some()));
    let outbound = sum(
        &text,
        "edgemx_tls_sessions_total",
        &["direction=\"outbound\""],
    );
    assert!(outbound >= 1.0, "{text}");
    // Six SMTP connections since the first scrape.
    let made =
        counter(&text, "edgemx_connections_total") - counter(&before, "edgemx_connections_total");
    assert_eq!(made, 6.0);

    // Two sessions held open: the third from the same address is refused (per-IP cap of 2).
    let _first = SmtpClient::connect(gw.addr).await.unwrap();
    let _second = SmtpClient::connect(gw.addr).await.unwrap();
    let third = SmtpClient::connect(gw.addr).await.unwrap();
    assert_eq!(third.banner.code, 421);
    let text = wait_metrics(admin, "two open sessions and one refusal", |t| {
        sample(t, "edgemx_connections_current", "") == Some(2.0)
            && sample(
                t,
                "edgemx_connections_refused_total",
                r#"{reason="per_ip"}"#,
            ) == Some(1.0)
    })
    .await;
    assert_eq!(
        counter(&text, "edgemx_connections_total") - counter(&before, "edgemx_connections_total"),
        9.0
    );

    // The listener's own rules.
    assert_eq!(http(admin, "GET", "/nope").await.unwrap().0, 404);
    assert_eq!(http(admin, "POST", "/metrics").await.unwrap().0, 405);
    assert_eq!(
        http(admin, "GET", "/healthz").await.unwrap(),
        (200, "ok\n".into())
    );
    drop((_first, _second, third));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_when_the_queue_is_full_connections_are_exhausted_or_shutting_down() {
    let down = FakeBackend::start().await.stop();
    let gw = Gateway::start(down, "[queue]\nmax_messages = 1\n").await;
    let admin = gw.admin;
    wait_health(admin, 200).await;
    let reply = send_mail(gw.addr, "a@sender.test", &["b@example.com"], BODY).await;
    assert!(reply.unwrap().is("250"));
    let why = wait_health(admin, 503).await;
    assert!(why.contains("queue full"), "{why}");
    let text = scrape(admin).await;
    assert_eq!(counter(&text, "edgemx_healthy"), 0.0);
    gw.stop().await;

    // Every connection slot taken: not healthy, yet the admin side still answers.
    let backend = FakeBackend::start().await;
    let extra = "[limits]\nmax_connections = 2\nmax_connections_per_ip = 2\n";
    let gw = Gateway::start(backend.addr(), extra).await;
    let admin = gw.admin;
    wait_health(admin, 200).await;
    let _one = SmtpClient::connect(gw.addr).await.unwrap();
    let _two = SmtpClient::connect(gw.addr).await.unwrap();
    let why = wait_health(admin, 503).await;
    assert!(why.contains("connection limit"), "{why}");
    let text = scrape(admin).await;
    assert_eq!(counter(&text, "edgemx_connections_current"), 2.0);
    drop((_one, _two));
    wait_health(admin, 200).await;
    gw.stop().await;

    // A healthy gateway with a message in DATA: a shutdown (what SIGTERM starts) waits for
    // that message, and /healthz says 503 meanwhile, so load balancers stop sending at once.
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "[limits]\nshutdown_timeout = \"20s\"\n").await;
    let admin = gw.admin;
    wait_health(admin, 200).await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    c.expect("DATA", "354").await;
    c.send(b"Subject: in flight\r\n\r\npart one\r\n").await;
    gw.begin_shutdown();
    let why = wait_health(admin, 503).await;
    assert!(why.contains("shutting down"), "{why}");
    c.send(b"part two\r\n.\r\n").await;
    assert!(c.reply().await.is("250"));
    gw.stop().await;
}
