//! A real full file system (a small tmpfs; the tests run as root): a delivery result whose
//! commit fails with ENOSPC is committed again until it succeeds, the same handle recovers
//! without a restart, and nothing new is admitted meanwhile.

use super::*;
use std::io::Write;

/// A tmpfs of `size` mounted on a temporary directory, detached again on drop.
pub(crate) struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub(crate) fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = format!("size={size},mode=0700");
        nix::mount::mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .expect("mounting a tmpfs (the queue tests run as root)");
        Tmpfs { dir }
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let detached = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
        if let Err(e) = detached {
            eprintln!("umount {}: {e}", self.dir.path().display());
        }
    }
}

/// Writes zeros to `path` until the file system is full.
pub(crate) fn fill(path: &std::path::Path) {
    let mut file = std::fs::File::create(path).expect("filler");
    let block = vec![0u8; 64 << 10];
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    // The last partial block: one byte at a time.
    while matches!(file.write(&[0]), Ok(1)) {}
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_result_failing_with_enospc_is_kept_until_it_commits() {
    let fs = Tmpfs::mount("8m");
    let path = fs.path().join("queue.redb");
    let (queue, _) = Queue::open(&path, &config()).expect("open");
    let mut stored = Vec::new();
    for n in 0..20 {
        let env = queue
            .enqueue(envelope("a@example.com"), body(n, 16 << 10))
            .await
            .expect("enqueue");
        stored.push(env);
    }
    let filler = fs.path().join("filler");
    fill(&filler);

    // The result of delivering the first message, with a bounce for another large enough
    // that it cannot fit in pages the file already has free.
    let mut delivered = stored[0].clone();
    delivered.recipients[0].status = RcptStatus::Delivered {
        reply: "250 ok".into(),
        at: 1,
    };
    let changes = vec![
        Change::Insert {
            envelope: envelope("sender@example.org"),
            body: body(99, 1 << 20),
        },
        Change::Update(delivered.clone()),
    ];
    let writing = tokio::spawn({
        let queue = queue.clone();
        async move { queue.apply(changes).await }
    });
    until("the queue reports the failed commit", || {
        queue.failing().is_some()
    })
    .await;
    // Told apart from an I/O error: the disk is full.
    let why = queue.failing().expect("failing");
    assert!(
        matches!(&why, StoreError::DiskFull(text) if text.contains("os error 28")),
        "{why:?}"
    );
    assert!(!writing.is_finished(), "a delivery result is not given up");
    assert!(matches!(queue.admit(0), Err(QueueError::DiskFull(_))));
    let refused = queue.enqueue(envelope("b@example.com"), body(1, 10)).await;
    assert!(
        matches!(refused, Err(QueueError::DiskFull(_))),
        "{refused:?}"
    );
    // Reads work meanwhile (`queue list`): the handle was reopened.
    assert_eq!(queue.list().await.expect("list").len(), 20);

    std::fs::remove_file(&filler).expect("free space");
    let ids = tokio::time::timeout(Duration::from_secs(30), writing)
        .await
        .expect("the result is committed once there is room")
        .expect("task")
        .expect("apply");
    assert_eq!(ids.len(), 1, "the bounce is stored");
    assert_eq!(queue.failing(), None);
    assert!(queue.admit(0).is_ok());
    assert_eq!(
        queue.envelope(delivered.id).await.expect("read"),
        Some(delivered)
    );
    queue
        .enqueue(envelope("c@example.com"), body(2, 10))
        .await
        .expect("new mail is taken again");
    queue.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_queue_recovers_by_itself_once_space_is_freed() {
    let fs = Tmpfs::mount("4m");
    let path = fs.path().join("queue.redb");
    let (queue, _) = Queue::open(&path, &config()).expect("open");
    let filler = fs.path().join("filler");
    fill(&filler);
    // Nothing to retry: a refused message alone puts the queue in the failing state.
    let mut refused = 0;
    for n in 0..50 {
        if queue
            .enqueue(envelope("a@example.com"), body(n, 64 << 10))
            .await
            .is_err()
        {
            refused += 1;
            break;
        }
    }
    assert_eq!(refused, 1, "the full disk was never noticed");
    assert!(queue.failing().is_some());
    std::fs::remove_file(&filler).expect("free space");
    until("the writer's own probe clears the state", || {
        queue.failing().is_none()
    })
    .await;
    queue
        .enqueue(envelope("b@example.com"), body(1, 10))
        .await
        .expect("accepted again");
    queue.close().await;
}
