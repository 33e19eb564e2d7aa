//! The scheduler with the real queue: held and released, bounced, expired.

use super::fake::{self, Script};
use super::*;
use crate::envelope::Envelope;
use crate::envelope::{RcptStatus, Recipient};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Flow {
    queue: Queue,
    handle: DeliveryHandle,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

/// `b.test` goes to `backend`, everything else (DSNs to `a.test`) to `dsn_hop`.
async fn flow(backend: SocketAddr, dsn_hop: SocketAddr, max_lifetime: &str) -> Flow {
    flow_with(backend, dsn_hop, max_lifetime, "1s").await
}

async fn flow_with(
    backend: SocketAddr,
    dsn_hop: SocketAddr,
    max_lifetime: &str,
    retry: &str,
) -> Flow {
    flow_extra(backend, dsn_hop, max_lifetime, retry, "").await
}

/// As [`flow_with`], with `extra` appended to the configuration.
async fn flow_extra(
    backend: SocketAddr,
    dsn_hop: SocketAddr,
    max_lifetime: &str,
    retry: &str,
    extra: &str,
) -> Flow {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
        hostname = "gw.test"
        data_dir = "{dir}"
        [[listener]]
        address = "127.0.0.1:2525"
        [[domain]]
        name = "b.test"
        next_hops = ["{backend}"]
        [queue]
        retry_intervals = ["{retry}"]
        retry_jitter = 0.0
        max_lifetime = "{max_lifetime}"
        [delivery]
        tls = "none"
        default_next_hops = ["{dsn_hop}"]
        connect_timeout = "2s"
        command_timeout = "2s"
        data_timeout = "2s"
        [limits]
        shutdown_timeout = "1s"
        {extra}
        "#,
        dir = dir.path().display()
    );
    let config = Arc::new(Config::parse(&text).unwrap());
    let (queue, resumed) = Queue::open(&config.queue_path(), &config.queue).unwrap();
    let shutdown = CancellationToken::new();
    let budget = Budget::new(config.limits.inflight_bytes.0);
    let handle = support::started(config, &queue, resumed, budget, &shutdown);
    Flow {
        queue,
        handle,
        shutdown,
        _dir: dir,
    }
}

impl Flow {
    async fn enqueue(&self, sender: &str, rcpts: &[&str], received: u64) -> QueueId {
        let recipients = rcpts.iter().map(|a| Recipient::pending(*a)).collect();
        let envelope = Envelope {
            client: "client.test [127.0.0.1]".into(),
            ..Envelope::new(sender, recipients, received)
        };
        let body = b"Subject: flow\r\nMessage-ID: <flow@a.test>\r\n\r\nhello\r\n".to_vec();
        self.queue.enqueue(envelope, body).await.unwrap().id
    }

    async fn until_empty(&self, limit: Duration) {
        let start = std::time::Instant::now();
        while !self.queue.list().await.unwrap().is_empty() {
            assert!(
                start.elapsed() < limit,
                "queue not empty: {:?}",
                self.queue.list().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.handle.stopped())
            .await
            .unwrap();
        self.queue.close().await;
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn free_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_held_while_the_backend_is_down_goes_out_when_it_returns() {
    let backend = free_addr().await;
    let flow = flow(backend, backend, "1d").await;
    let id = flow.enqueue("s@a.test", &["r@b.test"], now()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let env = flow.queue.envelope(id).await.unwrap().unwrap();
    assert!(env.attempts >= 1, "{env:?}");
    assert!(
        matches!(&env.recipients[0].status, RcptStatus::Deferred { reply, .. } if reply.contains("4.4.1")),
        "{env:?}"
    );
    let fake = fake::start_on(backend, Script::default()).await;
    flow.until_empty(Duration::from_secs(6)).await;
    assert_eq!(fake.seen.lock().unwrap().messages.len(), 1);
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_retry_goes_out_at_once_despite_holds_and_back_off() {
    let backend = free_addr().await;
    let flow = flow_with(backend, backend, "1d", "1h").await;
    let id = flow.enqueue("s@a.test", &["r@b.test"], now()).await;
    let start = std::time::Instant::now();
    while flow.queue.envelope(id).await.unwrap().unwrap().attempts == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "never attempted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fake = fake::start_on(backend, Script::default()).await;
    flow.handle.retry_all();
    flow.until_empty(Duration::from_secs(5)).await;
    assert_eq!(fake.seen.lock().unwrap().messages.len(), 1);
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_recipient_bounces_to_the_sender_and_the_others_are_delivered() {
    let fake = fake::start(Script {
        rcpt: vec![("bad@b.test", "550 5.1.1 no such user")],
        ..Script::default()
    })
    .await;
    let flow = flow(fake.addr, fake.addr, "1d").await;
    flow.enqueue("s@a.test", &["good@b.test", "bad@b.test"], now())
        .await;
    flow.until_empty(Duration::from_secs(5)).await;
    flow.stop().await;
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.messages.len(), 2, "the message and its DSN");
    let dsn = String::from_utf8_lossy(&seen.messages[1]);
    assert!(
        dsn.contains("multipart/report") && dsn.contains("5.1.1"),
        "{dsn}"
    );
    assert!(seen.commands.iter().any(|c| c.starts_with("MAIL FROM:<>")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_null_sender_gets_no_dsn() {
    let fake = fake::start(Script {
        rcpt: vec![("bad@b.test", "550 5.1.1 no such user")],
        ..Script::default()
    })
    .await;
    let flow = flow(fake.addr, fake.addr, "1d").await;
    flow.enqueue("", &["bad@b.test"], now()).await;
    flow.until_empty(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.seen.lock().unwrap().messages.is_empty());
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_message_bounces_with_4_4_7() {
    let dsn_hop = fake::start(Script::default()).await;
    let flow = flow(free_addr().await, dsn_hop.addr, "1h").await;
    flow.enqueue("s@a.test", &["r@b.test"], now() - 7200).await;
    flow.until_empty(Duration::from_secs(5)).await;
    flow.stop().await;
    let seen = dsn_hop.seen.lock().unwrap();
    assert_eq!(seen.messages.len(), 1);
    let dsn = String::from_utf8_lossy(&seen.messages[0]);
    assert!(
        dsn.contains("Action: failed") && dsn.contains("Status: 4.4.7"),
        "{dsn}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_abandons_a_stalled_transaction_in_time_and_keeps_the_message() {
    let fake = fake::start(Script {
        stall_after_data: true,
        ..Script::default()
    })
    .await;
    let flow = flow(fake.addr, fake.addr, "1d").await;
    let id = flow.enqueue("s@a.test", &["r@b.test"], now()).await;
    let start = std::time::Instant::now();
    while fake.seen.lock().unwrap().messages.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(30), "data never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queue = flow.queue.clone();
    let stopping = std::time::Instant::now();
    flow.shutdown.cancel();
    flow.handle.stopped().await;
    // limits.shutdown_timeout is 1 s (data_timeout 2 s): the transaction was abandoned.
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "{:?}",
        stopping.elapsed()
    );
    let env = queue
        .envelope(id)
        .await
        .unwrap()
        .expect("the message is kept");
    assert_eq!(env.recipients[0].status, RcptStatus::Pending);
    queue.close().await;
}

/// Rough delivery rate from a resumed queue to `smtp-sink` (run by hand, `--ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_to_smtp_sink() {
    let count: usize = std::env::var("FLOW_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000);
    let sink = free_addr().await;
    let mut child = std::process::Command::new("smtp-sink")
        .args(["-u", "nobody", "-c", &sink.to_string(), "256"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "hostname = \"gw.test\"\ndata_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\n\
         [[domain]]\nname = \"b.test\"\nnext_hops = [\"{sink}\"]\n[delivery]\ntls = \"none\"\n",
        dir.path().display()
    );
    let config = Arc::new(Config::parse(&text).unwrap());
    {
        let (queue, _) = Queue::open(&config.queue_path(), &config.queue).unwrap();
        let body = Arc::new(vec![b'x'; 4096]);
        let mut tasks = Vec::new();
        for i in 0..count {
            let (queue, body) = (queue.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let rcpt = Recipient::pending(format!("r{i}@b.test"));
                let env = Envelope::new("s@a.test", vec![rcpt], now());
                queue.enqueue(env, body.to_vec()).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        queue.close().await;
    }
    let (queue, resumed) = Queue::open(&config.queue_path(), &config.queue).unwrap();
    let shutdown = CancellationToken::new();
    let started = std::time::Instant::now();
    let budget = Budget::new(config.limits.inflight_bytes.0);
    let handle = support::started(config, &queue, resumed, budget, &shutdown);
    while queue.stats().messages > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{count} messages delivered in {secs:.2}s: {:.0} msg/s, {} commits",
        count as f64 / secs,
        queue.commits()
    );
    shutdown.cancel();
    handle.stopped().await;
    queue.close().await;
    let _ = child.kill();
    let _ = child.wait();
}

/// The shipped check settings (every 30 s, `rise = 2`) and a retry interval of an hour: only
/// the checks of a down next hop can bring the mail out within the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_hop_that_comes_back_is_noticed_by_the_down_checks_and_drained() {
    use super::health::State as Hop;
    let backend = free_addr().await;
    let extra =
        "[flow]\ncheck_interval = \"30s\"\nrise = 2\nfall = 1\ndown_check_interval = \"1s\"";
    let flow = flow_extra(backend, backend, "1d", "1h", extra).await;
    let id = flow.enqueue("s@a.test", &["r@b.test"], now()).await;
    let state = |flow: &Flow| {
        let hops = flow.handle.health();
        hops.iter()
            .find(|h| h.name == backend.to_string())
            .map(|h| h.state)
    };
    let start = std::time::Instant::now();
    while state(&flow) != Some(Hop::Down) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never marked down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while flow.queue.envelope(id).await.unwrap().unwrap().attempts == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "attempt never recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fake = fake::start_on(backend, Script::default()).await;
    // Generous: the bound is the down-check period plus two checks; the shipped 30 s
    // period alone would take 30–60 s.
    flow.until_empty(Duration::from_secs(25)).await;
    assert_eq!(fake.seen.lock().unwrap().messages.len(), 1);
    assert_eq!(state(&flow), Some(Hop::Up));
    flow.stop().await;
}
