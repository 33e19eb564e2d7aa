//! A queue larger than the scheduler's active set: after a restart only compact entries
//! are in memory and envelopes are read in batches when due; every message still goes out
//! exactly once (issue 16 item 3).

use super::fake::{self, Script};
use super::support::{config_text, stop};
use super::*;
use crate::envelope::Envelope;
use crate::envelope::Recipient;
use crate::queue::Change;
use std::collections::BTreeSet;

#[tokio::test]
async fn a_backlog_larger_than_the_active_set_goes_out_exactly_once() {
    let total = scheduler::MAX_ACTIVE + 300;
    let fake = fake::start(Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(Config::parse(&config_text(dir.path(), fake.addr)).unwrap());
    let (queue, _) = Queue::open(&config.queue_path(), &config.queue).unwrap();
    let inserts = (0..total)
        .map(|n| Change::Insert {
            envelope: Envelope::new("s@a.test", vec![Recipient::pending("r@b.test")], 1),
            body: format!("Subject: {n}\r\n\r\nhi\r\n").into_bytes(),
        })
        .collect();
    queue.apply(inserts).await.unwrap();
    queue.close().await;

    // A restart: the backlog is read into compact entries, envelopes stay on disk.
    let mut backlog = Backlog::new(&config);
    let queue = Queue::open_each(&config.queue_path(), &config.queue, &mut |env| {
        backlog.push(env)
    })
    .unwrap();
    assert_eq!(backlog.len(), total);
    let shutdown = CancellationToken::new();
    let handle = start(
        config,
        queue.clone(),
        backlog,
        Budget::new(64 << 20),
        &Default::default(),
        shutdown.clone(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while queue.stats().messages > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {total} still queued",
            queue.stats().messages
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(handle, shutdown, queue).await;
    let seen = fake.seen.lock().unwrap();
    let subjects: BTreeSet<String> = seen
        .messages
        .iter()
        .map(|m| {
            String::from_utf8_lossy(m)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(seen.messages.len(), total, "every message once, none twice");
    assert_eq!(
        subjects.len(),
        total,
        "{} distinct messages",
        subjects.len()
    );
}
