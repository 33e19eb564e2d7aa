//! A message held because its stored body failed its checksum: `queue release ID` reads it
//! again (still corrupt: it stays held and the reply says why; sound: released and
//! delivered), a release in bulk leaves it held, and `queue delete` removes it.

use super::fake::{self, Script};
use super::support::{config_text, stop, until};
use super::*;
use crate::envelope::Envelope;
use crate::envelope::{Hold, Recipient};
use crate::queue::Change;

/// Flips one byte of `needle`'s first occurrence in the file at `path`.
fn flip_inside(path: &std::path::Path, needle: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("body bytes found in the file");
    bytes[at + needle.len() / 2] ^= 0x01;
    std::fs::write(path, &bytes).unwrap();
}

fn body(tag: &str) -> Vec<u8> {
    let mut body = format!("Subject: {tag}\r\n\r\n").into_bytes();
    for n in 0..200 {
        body.extend_from_slice(format!("{tag} line {n:04} of the body\r\n").as_bytes());
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_rechecks_a_corrupt_body_and_delete_removes_it() {
    let fake = fake::start(Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(Config::parse(&config_text(dir.path(), fake.addr)).unwrap());
    let path = config.queue_path();
    let (queue, _) = Queue::open(&path, &config.queue).unwrap();
    let envelope = || Envelope::new("s@a.test", vec![Recipient::pending("r@b.test")], 1);
    let (kept_body, deleted_body) = (body("kept"), body("deleted"));
    let kept = queue
        .enqueue(envelope(), kept_body.clone())
        .await
        .unwrap()
        .id;
    let deleted = queue
        .enqueue(envelope(), deleted_body.clone())
        .await
        .unwrap()
        .id;
    queue.close().await;
    flip_inside(&path, &kept_body[2000..2064]);
    flip_inside(&path, &deleted_body[2000..2064]);

    let (queue, resumed) = Queue::open(&path, &config.queue).unwrap();
    let budget = Budget::new(config.limits.inflight_bytes.0);
    let shutdown = CancellationToken::new();
    let handle = support::started(config, &queue, resumed, budget, &shutdown);
    let stored = async |id| queue.envelope(id).await.unwrap();
    let corrupt = |env: &Envelope| {
        env.held && matches!(&env.hold, Some(Hold::Corrupt { detail }) if detail.contains("CRC-32"))
    };
    for id in [kept, deleted] {
        until("the damaged messages are held", async || {
            stored(id).await.is_some_and(|e| corrupt(&e))
        })
        .await;
    }

    // Still corrupt: refused with the reason, and held as before.
    let refused = handle.release(Target::Message(kept)).await.unwrap_err();
    assert!(
        matches!(&refused, super::OpError::StillCorrupt { id, detail } if *id == kept && detail.contains("CRC-32")),
        "{refused}"
    );
    assert!(refused.to_string().contains("still corrupt"), "{refused}");
    assert!(stored(kept).await.is_some_and(|e| corrupt(&e)));
    // A release in bulk leaves them held: they would only be held again.
    assert_eq!(handle.release(Target::All).await, Ok(0));
    assert!(stored(kept).await.is_some_and(|e| corrupt(&e)));

    queue.apply(vec![Change::Delete(deleted)]).await.unwrap();
    handle.forget(deleted);
    assert!(stored(deleted).await.is_none());

    // Once the body reads correctly (here: no checksum left to fail, as for a record from
    // before checksums), releasing it by id delivers it.
    queue.drop_checksum(kept).unwrap();
    assert_eq!(handle.release(Target::Message(kept)).await, Ok(1));
    until("the released message is delivered", async || {
        queue.list().await.is_ok_and(|l| l.is_empty())
    })
    .await;
    stop(handle, shutdown, queue.clone()).await;
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.messages.len(), 1, "only the released message went out");
    assert!(String::from_utf8_lossy(&seen.messages[0]).contains("Subject: kept"));
}
