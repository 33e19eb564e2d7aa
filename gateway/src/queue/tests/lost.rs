//! A queue file that is missing or empty where a queue existed is an error, never a new,
//! empty queue; only a data directory that never held a queue creates one.

use super::*;

fn refused(path: &std::path::Path) -> String {
    match Queue::open(path, &config()) {
        Err(QueueError::Open {
            path: shown,
            reason,
        }) => {
            assert!(shown.ends_with("queue.redb"), "{shown}");
            reason
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a lost queue opened as an empty one"),
    }
}

async fn queue_with_one_message(path: &std::path::Path) {
    let (queue, _) = Queue::open(path, &config()).expect("create");
    queue
        .enqueue(envelope("a@example.com"), body(1, 100))
        .await
        .expect("enqueue");
    queue.close().await;
}

#[tokio::test]
async fn truncated_queue_file_is_refused_not_opened_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.redb");
    queue_with_one_message(&path).await;
    std::fs::File::create(&path).expect("truncate");
    let reason = refused(&path);
    assert!(
        reason.contains("empty") && reason.contains("backup"),
        "{reason}"
    );
    assert_eq!(
        std::fs::metadata(&path).expect("stat").len(),
        0,
        "left as found"
    );
}

#[tokio::test]
async fn missing_queue_file_is_refused_where_a_queue_existed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.redb");
    queue_with_one_message(&path).await;
    std::fs::remove_file(&path).expect("remove");
    let reason = refused(&path);
    assert!(
        reason.contains("missing") && reason.contains("queue.redb.created"),
        "{reason}"
    );
    assert!(!path.exists(), "no new file was created");

    // The documented way out: the operator removes the marker to start afresh.
    std::fs::remove_file(dir.path().join("queue.redb.created")).expect("remove marker");
    let (queue, existing) = Queue::open(&path, &config()).expect("fresh queue");
    assert!(existing.is_empty());
    queue.close().await;
}

#[tokio::test]
async fn empty_file_without_marker_is_refused_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.redb");
    std::fs::File::create(&path).expect("empty file");
    refused(&path);
}

#[tokio::test]
async fn queue_from_before_the_marker_gets_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.redb");
    queue_with_one_message(&path).await;
    let marker = dir.path().join("queue.redb.created");
    std::fs::remove_file(&marker).expect("as an older version left it");
    let (queue, existing) = Queue::open(&path, &config()).expect("open");
    assert_eq!(existing.len(), 1);
    queue.close().await;
    assert!(marker.exists(), "the marker is added on the first open");
}
