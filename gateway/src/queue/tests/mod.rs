//! Queue tests on real redb files in temporary directories. Crash and disk-full tests run
//! the test binary itself again as a child process (see [`child`]).

mod checksum;
mod crash;
mod disk_full;
pub(crate) mod enospc;
mod lost;
mod perf;
mod records;

use super::*;
use crate::config::Bytes;
use std::process::Command;
use std::time::Duration;

pub(super) fn config() -> config::Queue {
    config::Queue {
        min_free_space: config::Reserve::Fixed(Bytes(0)),
        ..config::Queue::default()
    }
}

pub(super) fn envelope(rcpt: &str) -> Envelope {
    Envelope {
        client: "client.example.org [192.0.2.1]".into(),
        ..Envelope::new(
            "sender@example.org",
            vec![Recipient::pending(rcpt)],
            1_700_000_000,
        )
    }
}

/// A message whose every byte depends on `n`, so that a mixed-up body is noticed.
pub(super) fn body(n: u64, len: usize) -> Vec<u8> {
    let mut out = format!("Subject: message {n}\r\n\r\n").into_bytes();
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(b'a' + (x % 26) as u8);
    }
    out
}

/// Like [`body`] but exactly `len` bytes, however small.
fn exact(n: u64, len: usize) -> Vec<u8> {
    let mut out = body(n, len);
    out.truncate(len);
    out
}

/// The test binary run again for the single test `name` (a path below this module), with
/// `env` telling that test it is the child. Child entry points are `#[ignore]`d so that a
/// normal run does not count them as passing tests; `--ignored` runs the one named.
pub(super) fn child(name: &str, env: (&str, &str)) -> Command {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let exe = std::env::current_exe().expect("test binary path");
    let mut command = Command::new(exe);
    command
        .arg(format!("{module}::{name}"))
        .args(["--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(env.0, env.1);
    command
}

#[tokio::test]
async fn enqueued_message_survives_reopen_and_ids_keep_growing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.redb");
    let (queue, existing) = Queue::open(&path, &config()).expect("open");
    assert!(existing.is_empty());
    let first = queue
        .enqueue(envelope("a@example.com"), body(1, 5_000))
        .await
        .expect("enqueue");
    let second = queue
        .enqueue(envelope("b@example.com"), body(2, 100))
        .await
        .expect("enqueue");
    assert!(first.id.0 >= 1 && second.id > first.id);
    assert_eq!(first.size, 5_000, "size is the stored body length");
    queue
        .apply(vec![Change::Delete(second.id)])
        .await
        .expect("delete");
    queue.close().await;
    assert!(matches!(
        queue.enqueue(envelope("c@example.com"), body(3, 10)).await,
        Err(QueueError::Closed)
    ));

    let (queue, existing) = Queue::open(&path, &config()).expect("reopen");
    assert_eq!(existing, vec![first.clone()], "envelope back intact");
    assert_eq!(
        queue.envelope(first.id).await.expect("read"),
        Some(first.clone())
    );
    let stored = queue
        .body(first.id)
        .await
        .expect("read")
        .expect("body present");
    assert_eq!(*stored, body(1, 5_000));
    assert_eq!(
        queue.stats(),
        QueueStats {
            messages: 1,
            bytes: 5_000
        }
    );
    let third = queue
        .enqueue(envelope("c@example.com"), body(3, 10))
        .await
        .expect("enqueue");
    assert!(
        third.id > second.id,
        "a deleted id is never handed out again"
    );
    assert_eq!(queue.list().await.expect("list"), vec![first, third]);
    queue.close().await;
}

#[tokio::test]
async fn reserved_ids_are_used_once_and_never_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (queue, _) = Queue::open(&dir.path().join("q.redb"), &config()).expect("open");
    let reserved = queue.reserve_id();
    let mut first = envelope("a@example.com");
    first.id = reserved;
    let stored = queue
        .enqueue(first.clone(), body(1, 50))
        .await
        .expect("enqueue");
    assert_eq!(stored.id, reserved, "the reserved id is kept");
    let later = queue
        .enqueue(envelope("b@example.com"), body(2, 50))
        .await
        .expect("enqueue");
    assert!(later.id > reserved);

    let again = queue.enqueue(first, body(3, 50)).await;
    assert!(matches!(again, Err(QueueError::Io(_))), "{again:?}");
    let kept = queue.body(reserved).await.expect("read").expect("present");
    assert_eq!(*kept, body(1, 50), "the stored message is not overwritten");

    let mut invented = envelope("c@example.com");
    invented.id = QueueId(later.id.0 + 1_000);
    let refused = queue.enqueue(invented, body(4, 50)).await;
    assert!(matches!(refused, Err(QueueError::Io(_))), "{refused:?}");
    assert_eq!(queue.stats().messages, 2);
    queue.close().await;
}

#[tokio::test]
async fn bodies_of_any_size_come_back_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("q.redb");
    let (queue, _) = Queue::open(&path, &config()).expect("open");
    let (chunk, whole) = (store::CHUNK, store::WHOLE);
    let sizes = [
        0,
        1,
        chunk - 1,
        chunk,
        chunk + 1,
        whole - 1,
        whole,
        whole + 1,
        3 * chunk,
        300_000,
    ];
    let mut ids = Vec::new();
    for (n, len) in sizes.iter().enumerate() {
        let e = queue
            .enqueue(envelope("a@example.com"), exact(n as u64, *len))
            .await
            .expect("enqueue");
        ids.push(e.id);
    }
    let total: usize = sizes.iter().sum();
    assert_eq!(queue.stats().bytes, total as u64);
    queue.close().await;
    let (queue, _) = Queue::open(&path, &config()).expect("reopen");
    for (n, (id, len)) in ids.iter().zip(sizes).enumerate() {
        let stored = queue.body(*id).await.expect("read").expect("present");
        assert_eq!(*stored, exact(n as u64, len), "size {len}");
    }
    queue
        .apply(ids.iter().map(|id| Change::Delete(*id)).collect())
        .await
        .expect("delete");
    assert_eq!(
        queue.stats(),
        QueueStats::default(),
        "deleted sizes are counted exactly"
    );
    queue.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_share_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (queue, _) = Queue::open(&dir.path().join("q.redb"), &config()).expect("open");
    let before = queue.commits();
    let tasks: Vec<_> = (0..64u64)
        .map(|n| {
            let queue = queue.clone();
            tokio::spawn(async move {
                queue
                    .enqueue(envelope("a@example.com"), body(n, 4_096))
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("task").expect("enqueue").id);
    }
    let commits = queue.commits() - before;
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 64, "every message got its own id");
    assert!(commits <= 16, "64 enqueues took {commits} commits");
    assert_eq!(queue.stats().messages, 64);
    queue.close().await;
}

#[tokio::test]
async fn apply_inserts_and_deletes_in_one_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("q.redb");
    let (queue, _) = Queue::open(&path, &config()).expect("open");
    let original = queue
        .enqueue(envelope("a@example.com"), body(1, 300))
        .await
        .expect("enqueue");
    let commits = queue.commits();
    let ids = queue
        .apply(vec![
            Change::Insert {
                envelope: envelope("sender@example.org"),
                body: body(2, 200),
            },
            Change::Delete(original.id),
        ])
        .await
        .expect("apply");
    assert_eq!(
        queue.commits(),
        commits + 1,
        "one commit for the whole change set"
    );
    assert_eq!(ids.len(), 1);
    assert!(ids[0] > original.id);
    assert_eq!(
        queue.stats(),
        QueueStats {
            messages: 1,
            bytes: 200
        }
    );
    assert_eq!(queue.body(original.id).await.expect("read"), None);
    assert_eq!(queue.envelope(original.id).await.expect("read"), None);
    queue.close().await;
    let (_, existing) = Queue::open(&path, &config()).expect("reopen");
    assert_eq!(existing.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
}

#[tokio::test]
async fn update_changes_recipient_status_and_ignores_deleted_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (queue, _) = Queue::open(&dir.path().join("q.redb"), &config()).expect("open");
    let mut stored = queue
        .enqueue(envelope("a@example.com"), body(1, 300))
        .await
        .expect("enqueue");
    stored.recipients[0].status = RcptStatus::Deferred {
        reply: "451 4.3.0 later".into(),
        at: 1_700_000_060,
    };
    stored.attempts = 1;
    stored.next_attempt = 1_700_000_120;
    queue
        .apply(vec![Change::Update(stored.clone())])
        .await
        .expect("update");
    assert_eq!(
        queue.envelope(stored.id).await.expect("read"),
        Some(stored.clone())
    );

    queue
        .apply(vec![Change::Delete(stored.id)])
        .await
        .expect("delete");
    queue
        .apply(vec![Change::Update(stored.clone())])
        .await
        .expect("update");
    assert_eq!(
        queue.envelope(stored.id).await.expect("read"),
        None,
        "not resurrected"
    );
    assert_eq!(queue.stats(), QueueStats::default());
    queue.close().await;
}

#[tokio::test]
async fn subscriber_receives_inserts_after_they_are_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (queue, _) = Queue::open(&dir.path().join("q.redb"), &config()).expect("open");
    let first = queue
        .enqueue(envelope("a@example.com"), body(1, 10))
        .await
        .expect("enqueue");
    let mut updates = queue.subscribe().expect("first subscriber");
    assert!(queue.subscribe().is_none(), "only one subscriber");
    let ids = queue
        .apply(vec![Change::Insert {
            envelope: envelope("b@example.com"),
            body: body(2, 10),
        }])
        .await
        .expect("apply");
    let buffered = updates.recv().await.expect("buffered until subscribed");
    assert_eq!(buffered.envelope, first);
    let hot = buffered
        .body
        .expect("a small body is handed over with its envelope");
    assert_eq!(*hot.bytes(), body(1, 10), "the committed bytes");
    let inserted = updates.recv().await.expect("the insert");
    assert_eq!(inserted.envelope.id, ids[0]);
    assert_eq!(inserted.body.map(|b| b.bytes().to_vec()), Some(body(2, 10)));
    queue
        .apply(vec![Change::Delete(ids[0])])
        .await
        .expect("delete");
    assert!(updates.try_recv().is_err(), "deletions are not announced");
    queue.close().await;
}

#[tokio::test]
async fn garbage_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.redb");
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &garbage).expect("write garbage");
    match Queue::open(&path, &config()) {
        Err(QueueError::Open {
            path: shown,
            reason,
        }) => {
            assert!(shown.ends_with("queue.redb"), "{shown}");
            assert!(!reason.is_empty());
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("garbage opened as a queue"),
    }
    assert_eq!(std::fs::read(&path).expect("read back"), garbage);
}

#[tokio::test]
async fn unreadable_file_and_second_opener_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-dir").join("q.redb");
    assert!(matches!(
        Queue::open(&missing, &config()),
        Err(QueueError::Open { .. })
    ));

    let path = dir.path().join("q.redb");
    let (queue, _) = Queue::open(&path, &config()).expect("open");
    assert!(
        matches!(Queue::open(&path, &config()), Err(QueueError::Open { .. })),
        "a second gateway on the same file must not share it"
    );
    queue.close().await;
    let (queue, _) = Queue::open(&path, &config()).expect("open after close");
    queue.close().await;
}

#[tokio::test]
async fn quota_refuses_the_third_message_and_keeps_the_first_two() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("q.redb");
    let limited = config::Queue {
        max_messages: 2,
        ..config()
    };
    let (queue, _) = Queue::open(&path, &limited).expect("open");
    let mut kept = Vec::new();
    for n in 0..2 {
        queue.admit(100).expect("room");
        kept.push(
            queue
                .enqueue(envelope("a@example.com"), body(n, 100))
                .await
                .expect("enqueue"),
        );
    }
    assert!(matches!(queue.admit(100), Err(QueueError::Full(_))));
    assert!(matches!(
        queue.enqueue(envelope("a@example.com"), body(9, 100)).await,
        Err(QueueError::Full(_))
    ));
    assert_eq!(queue.list().await.expect("list"), kept);
    for (n, e) in kept.iter().enumerate() {
        let stored = queue.body(e.id).await.expect("read").expect("present");
        assert_eq!(*stored, body(n as u64, 100));
    }
    queue.close().await;
}

#[tokio::test]
async fn byte_quota_and_free_space_reserve_refuse_mail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let small = config::Queue {
        max_bytes: Bytes(1_000),
        ..config()
    };
    let (queue, _) = Queue::open(&dir.path().join("a.redb"), &small).expect("open");
    queue.admit(1_000).expect("exactly the limit fits");
    assert!(matches!(queue.admit(1_001), Err(QueueError::Full(_))));
    queue
        .enqueue(envelope("a@example.com"), body(1, 600))
        .await
        .expect("enqueue");
    assert!(matches!(
        queue.enqueue(envelope("a@example.com"), body(2, 600)).await,
        Err(QueueError::Full(_))
    ));
    queue.close().await;

    let reserve = config::Queue {
        min_free_space: config::Reserve::Fixed(Bytes(u64::MAX / 2)),
        ..config()
    };
    let (queue, _) = Queue::open(&dir.path().join("b.redb"), &reserve).expect("open");
    assert!(matches!(queue.admit(1), Err(QueueError::Full(_))));
    assert!(matches!(
        queue.enqueue(envelope("a@example.com"), body(1, 10)).await,
        Err(QueueError::Full(_))
    ));
    assert_eq!(queue.stats(), QueueStats::default());
    queue.close().await;
}

/// Waits for `child` with a deadline, so that a wedged child fails the test instead of
/// hanging it.
pub(super) fn wait_with_deadline(child: &mut std::process::Child, limit: Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// Child processes log to stderr, which the parent shows when the test fails.
pub(super) fn log_to_stderr() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            eprintln!("{} {}", record.level(), record.args());
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}

#[tokio::test]
async fn pages_and_batches_read_what_is_queued_in_id_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (queue, _) = Queue::open(&dir.path().join("queue.redb"), &config()).expect("open");
    let mut ids = Vec::new();
    for n in 0..5 {
        let env = queue
            .enqueue(envelope(&format!("{n}@example.com")), body(n, 10))
            .await
            .expect("enqueue");
        ids.push(env.id);
    }
    queue
        .apply(vec![Change::Delete(ids[2])])
        .await
        .expect("delete");
    let first = queue.page(None, 2).await.expect("page");
    let got: Vec<QueueId> = first.iter().map(|e| e.id).collect();
    assert_eq!(got, [ids[0], ids[1]]);
    let second = queue.page(Some(ids[1]), 2).await.expect("page");
    let got: Vec<QueueId> = second.iter().map(|e| e.id).collect();
    assert_eq!(
        got,
        [ids[3], ids[4]],
        "the deleted one is skipped, not a hole"
    );
    assert!(queue.page(Some(ids[4]), 2).await.expect("page").is_empty());
    // The scheduler's batch read: every id answered, a deleted one as None.
    let read = queue
        .envelopes(vec![ids[4], ids[2], ids[0]])
        .await
        .expect("read");
    let found: Vec<(QueueId, bool)> = read.iter().map(|(id, e)| (*id, e.is_some())).collect();
    assert_eq!(found, [(ids[4], true), (ids[2], false), (ids[0], true)]);
    let address = |e: &Envelope| e.recipients[0].address.clone();
    assert_eq!(
        read[0].1.as_ref().map(address).as_deref(),
        Some("4@example.com")
    );
    queue.close().await;
}

#[tokio::test]
async fn compact_gives_back_the_space_of_drained_mail_and_keeps_what_is_queued() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.redb");
    let (queue, _) = Queue::open(&path, &config()).expect("open");
    let mut ids = Vec::new();
    for n in 0..400 {
        let env = queue
            .enqueue(envelope(&format!("{n}@example.com")), body(n, 64 << 10))
            .await
            .expect("enqueue");
        ids.push(env.id);
    }
    // Everything but the newest goes: its pages near the end keep the file at its peak.
    let kept = *ids.last().unwrap();
    let drained = ids[..ids.len() - 1].iter().map(|&id| Change::Delete(id));
    queue.apply(drained.collect()).await.expect("delete");
    let (before, after) = queue.compact().await.expect("compact");
    assert!(before > 20 << 20, "400 × 64 KiB grew the file: {before}");
    assert!(after < before / 4, "compacted {before} → {after}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), after);
    let body_kept = queue.body(kept).await.expect("read").expect("still queued");
    assert_eq!(*body_kept, body(399, 64 << 10));
    // The queue still takes mail after a compaction.
    queue
        .enqueue(envelope("after@example.com"), body(1, 100))
        .await
        .expect("enqueue after compact");
    queue.close().await;
}
