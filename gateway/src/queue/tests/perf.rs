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

const REPAIR_CHILD: &str = "EDGEMX_QUEUE_REPAIR_CHILD";

/// How long the first open after a crash takes for a queue of about 400 MB (redb checks
/// every page when commits do not record the allocator state).
#[test]
#[ignore = "benchmark; run in release mode"]
fn repair_time_after_crash_with_400mb_queued() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("q.redb");
    let mut child = child(
        "perf::repair_child_process",
        (REPAIR_CHILD, path.to_str().expect("utf-8")),
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).lines() {
        if line.map(|l| l.contains("READY")).unwrap_or(true) {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let size = std::fs::metadata(&path).expect("stat").len();
    let start = Instant::now();
    let (queue, existing) = Queue::open(&path, &config()).expect("open after crash");
    println!(
        "open after crash: {} messages, {} MB file, {:?}",
        existing.len(),
        size >> 20,
        start.elapsed()
    );
    drop(queue);
}

/// The child side of `repair_time_after_crash_with_400mb_queued`, not a test of its own.
#[test]
#[ignore = "child-process entry point, run by repair_time_after_crash_with_400mb_queued"]
fn repair_child_process() {
    let Ok(path) = std::env::var(REPAIR_CHILD) else {
        // `--ignored` without the parent: there is nothing to do.
        return;
    };
    println!();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let (queue, _) = Queue::open(std::path::Path::new(&path), &config()).expect("open");
        let template = body(1, 4_096);
        for _ in 0..200 {
            let changes = (0..500)
                .map(|_| Change::Insert {
                    envelope: envelope("a@example.com"),
                    body: template.clone(),
                })
                .collect();
            queue.apply(changes).await.expect("apply");
        }
        println!("READY");
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}
