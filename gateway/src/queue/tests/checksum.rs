//! Body checksums: a byte flipped inside a stored body is found before delivery, and the
//! message is held with the reason, neither delivered nor deleted.

use super::*;

/// Flips one byte of `needle`'s first occurrence in the file at `path`.
fn flip_inside(path: &std::path::Path, needle: &[u8]) {
    let mut bytes = std::fs::read(path).expect("read file");
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("body bytes found in the file");
    bytes[at + needle.len() / 2] ^= 0x01;
    std::fs::write(path, &bytes).expect("write file");
}

#[tokio::test]
async fn flipped_byte_in_a_stored_body_is_held_not_returned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.redb");
    let (queue, _) = Queue::open(&path, &config()).expect("open");
    let text = body(7, 10_000);
    let stored = queue
        .enqueue(envelope("a@example.com"), text.clone())
        .await
        .expect("enqueue");
    let other = queue
        .enqueue(envelope("b@example.com"), body(8, 10_000))
        .await
        .expect("enqueue");
    queue.close().await;

    flip_inside(&path, &text[5_000..5_064]);
    let (queue, existing) = Queue::open(&path, &config()).expect("reopen");
    assert_eq!(existing.len(), 2);
    match queue.body(stored.id).await {
        Err(QueueError::Corrupt { id, detail }) => {
            assert_eq!(id, stored.id);
            assert!(detail.contains("CRC-32"), "{detail}");
        }
        other => panic!("a corrupt body was returned: {other:?}"),
    }
    let held = queue
        .envelope(stored.id)
        .await
        .expect("read")
        .expect("still stored, not deleted");
    assert!(held.held, "held");
    assert!(
        matches!(&held.hold, Some(Hold::Corrupt { detail }) if detail.contains("CRC-32")),
        "{:?}",
        held.hold
    );
    assert!(
        held.hold_reason().unwrap_or_default().contains("corrupt"),
        "queue show says why"
    );
    let intact = queue.body(other.id).await.expect("read").expect("body");
    assert_eq!(*intact, body(8, 10_000), "the other message is untouched");
    queue.close().await;
}

#[tokio::test]
async fn record_without_a_checksum_is_read_unverified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.redb");
    let (queue, _) = Queue::open(&path, &config()).expect("open");
    let stored = queue
        .enqueue(envelope("a@example.com"), body(3, 5_000))
        .await
        .expect("enqueue");
    queue
        .inner
        .store
        .drop_checksum(stored.id)
        .expect("drop checksum");
    let read = queue.body(stored.id).await.expect("read").expect("body");
    assert_eq!(*read, body(3, 5_000));
    queue.close().await;
}
