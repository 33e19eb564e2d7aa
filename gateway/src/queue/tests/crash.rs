//! Crash consistency: a child enqueues from many tasks and prints each id the moment
//! `enqueue` returned; it is killed with SIGKILL mid-stream. Every printed id must then be
//! in the database with its exact body.

use super::*;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

const CHILD: &str = "EDGEMX_QUEUE_CRASH_CHILD";
const ROUNDS: usize = 3;

/// `(id, task, seq)` of one acknowledged message, as printed by the child.
fn parse(line: &str) -> Option<(u64, u64, u64)> {
    let mut words = line.strip_prefix("ACK ")?.split(' ');
    let mut next = || words.next()?.parse().ok();
    Some((next()?, next()?, next()?))
}

fn message_number(task: u64, seq: u64) -> u64 {
    task << 32 | seq
}

fn message_len(task: u64, seq: u64) -> usize {
    1_000 + ((task * 131 + seq * 17) % 7_000) as usize
}

#[test]
fn every_acknowledged_message_survives_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.redb");
    let mut last_max = 0;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for round in 0..ROUNDS {
        let mut child = child(
            "crash::crash_child_process",
            (CHILD, path.to_str().expect("utf-8 path")),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut acked = Vec::new();
        // Kill after a varying number of acknowledgements, while the writer is busy.
        let kill_after = 150 + round * 170;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(ack) = parse(&line) {
                acked.push(ack);
                if acked.len() == kill_after {
                    child.kill().expect("SIGKILL");
                }
            }
        }
        let _ = child.wait();
        assert!(acked.len() >= kill_after, "round {round}: child died early");

        runtime.block_on(async {
            let (queue, existing) = Queue::open(&path, &config()).expect("reopen after kill");
            let present: std::collections::HashSet<u64> = existing.iter().map(|e| e.id.0).collect();
            for &(id, task, seq) in &acked {
                assert!(
                    present.contains(&id),
                    "round {round}: acknowledged {id} is lost"
                );
                let stored = queue.body(QueueId(id)).await.expect("read").expect("body");
                let n = message_number(task, seq);
                assert_eq!(
                    *stored,
                    body(n, message_len(task, seq)),
                    "round {round}: body of {id}"
                );
            }
            let max = acked.iter().map(|a| a.0).max().unwrap_or(0);
            let min = acked.iter().map(|a| a.0).min().unwrap_or(0);
            assert!(min > last_max, "ids continue after the crash");
            last_max = max;
            queue.close().await;
        });
    }
}

/// The child side of `every_acknowledged_message_survives_sigkill`, not a test of its own.
#[test]
#[ignore = "child-process entry point, run by every_acknowledged_message_survives_sigkill"]
fn crash_child_process() {
    let Ok(path) = std::env::var(CHILD) else {
        // `--ignored` without the parent: there is nothing to do.
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // A line of its own: libtest has already written the test name without a newline.
    println!();
    runtime.block_on(async move {
        let (queue, _) = Queue::open(std::path::Path::new(&path), &config()).expect("child open");
        let mut tasks = Vec::new();
        for task in 0..32u64 {
            let queue = queue.clone();
            tasks.push(tokio::spawn(async move {
                for seq in 0.. {
                    let len = message_len(task, seq);
                    let message = body(message_number(task, seq), len);
                    let Ok(stored) = queue.enqueue(envelope("a@example.com"), message).await else {
                        return;
                    };
                    let line = format!("ACK {} {task} {seq}\n", stored.id.0);
                    let mut out = std::io::stdout().lock();
                    if out
                        .write_all(line.as_bytes())
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return;
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
}
