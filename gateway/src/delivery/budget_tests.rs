//! The byte budget with the real queue and scheduler: bodies read for delivery stay within
//! it, and every message still goes out exactly once, even one larger than the budget.

use super::fake::{self, Script};
use super::support::config_text;
use super::*;
use crate::envelope::Envelope;
use crate::envelope::Recipient;
use std::collections::BTreeSet;
use std::time::Instant;

const KIB: u64 = 1024;

/// Queues `sizes.len()` messages of those sizes before delivery starts (so they are all
/// due at once), delivers them to a fake next hop within a budget of `budget` bytes and
/// returns the most delivery held at once, the most transactions the next hop saw at once
/// and the messages it received.
async fn deliver_all(budget: u64, sizes: &[usize]) -> (u64, usize, Vec<Vec<u8>>) {
    let fake = fake::start(Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(Config::parse(&config_text(dir.path(), fake.addr)).unwrap());
    let (queue, _) = Queue::open(&config.queue_path(), &config.queue).unwrap();
    for (n, size) in sizes.iter().enumerate() {
        let env = Envelope::new("s@a.test", vec![Recipient::pending("r@b.test")], 1);
        let line = format!("{}\r\n", "x".repeat(76));
        let mut body = format!("Subject: large {n}\r\n\r\n").into_bytes();
        while body.len() < *size {
            body.extend_from_slice(line.as_bytes());
        }
        queue.enqueue(env, body).await.unwrap();
    }
    queue.close().await;
    let (queue, resumed) = Queue::open(&config.queue_path(), &config.queue).unwrap();
    assert_eq!(resumed.len(), sizes.len());
    let budget = Budget::new(budget);
    let shutdown = CancellationToken::new();
    let handle = support::started(config, &queue, resumed, budget.clone(), &shutdown);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !queue.list().await.unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "not delivered: {:?}",
            queue.list().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle.stopped())
        .await
        .unwrap();
    queue.close().await;
    assert_eq!(budget.held(), 0, "budget still held after delivery");
    assert!(budget.peak() <= budget.total());
    let seen = fake.seen.lock().unwrap();
    (budget.peak(), seen.most_in_data, seen.messages.clone())
}

/// Each large message delivered exactly once (by its numbered subject).
fn assert_each_once(messages: &[Vec<u8>], count: usize) {
    let subjects: Vec<String> = messages
        .iter()
        .filter_map(|m| {
            let text = String::from_utf8_lossy(&m[..m.len().min(4096)]).into_owned();
            text.lines()
                .find(|l| l.starts_with("Subject: large "))
                .map(str::to_string)
        })
        .collect();
    let distinct: BTreeSet<&String> = subjects.iter().collect();
    assert_eq!(subjects.len(), count, "{subjects:?}");
    assert_eq!(distinct.len(), count, "delivered twice: {subjects:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_read_for_delivery_stay_within_the_budget_and_all_go_out_once() {
    // Six messages of 400 KiB (each holds about 806 KiB while delivered: the body and its
    // dot-stuffed copy) and one of 900 KiB, beyond the whole budget of 1 MiB.
    let mut sizes = vec![400 * KIB as usize; 6];
    sizes.push(900 * KIB as usize);
    let (peak, at_once, messages) = deliver_all(1024 * KIB, &sizes).await;
    assert_each_once(&messages, sizes.len());
    assert!(peak > 0 && peak <= 1024 * KIB, "peak {peak}");
    assert_eq!(at_once, 1, "two bodies of 400 KiB do not fit in 1 MiB");

    // The same mail with room for all: several are read at once, so the bound above is the
    // budget's doing, not the scenario's.
    let (peak, at_once, messages) = deliver_all(64 << 20, &sizes).await;
    assert_each_once(&messages, sizes.len());
    assert!(peak > 2 * 1024 * KIB, "only {peak} bytes held at once");
    assert!(
        at_once > 1,
        "the next hop never saw two transactions at once"
    );
}
