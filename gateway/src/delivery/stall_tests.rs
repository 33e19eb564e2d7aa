//! While the queue cannot commit (a real full tmpfs), the scheduler starts no delivery:
//! its result could not be recorded and the message would go out again after a restart.
//! Once space is freed the queue recovers by itself and the mail goes out, once.

use super::fake::{self, Script};
use super::support::{self, stop, until};
use super::*;
use crate::envelope::Envelope;
use crate::envelope::Recipient;
use crate::queue::tests::enospc::{Tmpfs, fill};

/// The shared configuration without a free-space reserve (the tmpfs is tiny) and with
/// active checks every second.
fn config_text(dir: &std::path::Path, backend: std::net::SocketAddr) -> String {
    support::config_text(dir, backend).replacen("[queue]\n", "[queue]\nmin_free_space = \"0\"\n", 1)
        + "\n[flow]\ncheck_interval = \"1s\"\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_delivery_starts_while_the_queue_cannot_commit() {
    let fake = fake::start(Script::default()).await;
    let fs = Tmpfs::mount("4m");
    let config = Arc::new(Config::parse(&config_text(fs.path(), fake.addr)).unwrap());
    let path = config.queue_path();
    let (queue, _) = Queue::open(&path, &config.queue).unwrap();
    let envelope = || Envelope::new("s@a.test", vec![Recipient::pending("r@b.test")], 1);
    let body = b"Subject: due\r\n\r\nwaiting for the disk\r\n".to_vec();
    let due = queue.enqueue(envelope(), body).await.unwrap().id;
    queue.close().await;
    let (queue, resumed) = Queue::open(&path, &config.queue).unwrap();
    assert_eq!(resumed.len(), 1);

    // Fill the disk, then let one refused message put the queue in the failing state.
    let filler = fs.path().join("filler");
    fill(&filler);
    let large = vec![b'x'; 64 << 10];
    let mut refused = false;
    for _ in 0..50 {
        if queue.enqueue(envelope(), large.clone()).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(
        refused && queue.failing().is_some(),
        "the full disk was never noticed"
    );

    let budget = Budget::new(config.limits.inflight_bytes.0);
    let shutdown = CancellationToken::new();
    let handle = support::started(config, &queue, resumed, budget, &shutdown);
    // The active checks (every second) prove the scheduler is running and ticking; the
    // due message must not be attempted meanwhile.
    until("two active checks", async || {
        fake.seen.lock().unwrap().accepts >= 2
    })
    .await;
    assert!(queue.failing().is_some(), "the disk is still full");
    {
        let seen = fake.seen.lock().unwrap();
        assert!(
            !seen.commands.iter().any(|c| c.starts_with("MAIL")),
            "a delivery started while the queue could not commit: {:?}",
            seen.commands
        );
    }
    let env = queue.envelope(due).await.unwrap().expect("still queued");
    assert_eq!(env.attempts, 0);

    std::fs::remove_file(&filler).unwrap();
    until("delivered once the disk has room", async || {
        queue.list().await.is_ok_and(|l| l.is_empty())
    })
    .await;
    stop(handle, shutdown, queue).await;
    assert_eq!(fake.seen.lock().unwrap().messages.len(), 1);
}
