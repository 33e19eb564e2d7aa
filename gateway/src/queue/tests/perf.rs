//! Throughput of the group-commit writer: 64 producers × 4 KiB messages, every one durable.
//! Run with `cargo test --release -p edgemx queue::tests::perf -- --ignored --nocapture`.

use super::*;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run in release mode"]
async fn throughput_64_producers_4k_messages() {
    const PRODUCERS: u64 = 64;
    const PER_PRODUCER: u64 = 300;
    let dir = tempfile::tempdir().expect("tempdir");
    let (queue, _) = Queue::open(&dir.path().join("q.redb"), &config()).expect("open");
    let template = body(7, 4_096);
    let start = Instant::now();
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let queue = queue.clone();
            let template = template.clone();
            tokio::spawn(async move {
                let mut worst = Duration::ZERO;
                for _ in 0..PER_PRODUCER {
                    let t = Instant::now();
                    queue
                        .enqueue(envelope("a@example.com"), template.clone())
                        .await
                        .expect("enqueue");
                    worst = worst.max(t.elapsed());
                }
                worst
            })
        })
        .collect();
    let mut worst = Duration::ZERO;
    for task in tasks {
        worst = worst.max(task.await.expect("task"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let total = PRODUCERS * PER_PRODUCER;
    println!(
        "{total} durable messages in {elapsed:.2}s: {:.0} msg/s, {} commits ({:.1} per commit), slowest ack {worst:?}",
        total as f64 / elapsed,
        queue.commits(),
        total as f64 / queue.commits() as f64
    );
    queue.close().await;
}
