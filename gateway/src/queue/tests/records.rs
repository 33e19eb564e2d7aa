//! The `records` table: small state of other parts, committed with messages.

use super::*;

#[tokio::test]
async fn records_commit_with_messages_survive_reopen_and_are_read_by_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.redb");
    let (queue, _) = Queue::open(&path, &config()).expect("open");
    assert!(
        queue.records("a/").await.unwrap().is_empty(),
        "no table yet"
    );
    let put = |key: &str, value: &[u8]| Change::PutRecord {
        key: key.into(),
        value: value.to_vec(),
    };
    queue
        .apply(vec![
            put("a/2", b"two"),
            put("a/1", b"one"),
            put("b/1", b"other"),
        ])
        .await
        .expect("put");
    // A message and the removal of a record in one commit, as a report replaces its data.
    let ids = queue
        .apply(vec![
            Change::Insert {
                envelope: envelope("r@example.com"),
                body: body(1, 100),
            },
            Change::DeleteRecord("a/2".into()),
            Change::DeleteRecord("a/none".into()),
        ])
        .await
        .expect("insert and delete");
    assert_eq!(ids.len(), 1);
    queue.close().await;
    let (queue, existing) = Queue::open(&path, &config()).expect("reopen");
    assert_eq!(existing.len(), 1);
    assert_eq!(
        queue.records("a/").await.unwrap(),
        [("a/1".to_string(), b"one".to_vec())]
    );
    assert_eq!(queue.records("").await.unwrap().len(), 2);
    assert_eq!(queue.stats().messages, 1, "records are not messages");
    queue.close().await;
}
