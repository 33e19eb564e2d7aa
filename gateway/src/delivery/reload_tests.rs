//! A console commit reaches delivery: the next connection greets with the new host name
//! (issue 17: the EHLO kept the boot-time name until a restart).

use super::fake::{self, Script};
use super::support::{config_text, stop, until};
use super::*;
use crate::envelope::Envelope;
use crate::envelope::Recipient;

/// Enqueues one message and waits until the queue is empty again (delivered).
async fn deliver_one(queue: &Queue, n: usize) {
    let env = Envelope::new("s@a.test", vec![Recipient::pending("r@b.test")], 1);
    let body = format!("Subject: {n}\r\n\r\nhi\r\n").into_bytes();
    queue.enqueue(env, body).await.unwrap();
    until(&format!("message {n} delivered"), async || {
        queue.list().await.is_ok_and(|l| l.is_empty())
    })
    .await;
}

#[tokio::test]
async fn a_committed_host_name_is_the_next_connections_ehlo() {
    let fake = fake::start(Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    // One message per connection: the second message needs a new session (a cached one
    // keeps the name it greeted with until it closes, as documented).
    let text = config_text(dir.path(), fake.addr).replacen(
        "[delivery]\n",
        "[delivery]\nmax_messages_per_connection = 1\n",
        1,
    );
    let config = Arc::new(Config::parse(&text).unwrap());
    let (queue, resumed) = Queue::open(&config.queue_path(), &config.queue).unwrap();
    let shutdown = CancellationToken::new();
    let handle = support::started(config, &queue, resumed, Budget::new(64 << 20), &shutdown);
    deliver_one(&queue, 1).await;
    let before = fake.seen.lock().unwrap().commands.len();
    let renamed = text.replace("hostname = \"gw.test\"", "hostname = \"renamed.test\"");
    handle.reload(Arc::new(Config::parse(&renamed).unwrap()));
    deliver_one(&queue, 2).await;
    stop(handle, shutdown, queue).await;

    let seen = fake.seen.lock().unwrap();
    let ehlos = |commands: &[String]| -> Vec<String> {
        commands
            .iter()
            .filter(|c| c.starts_with("EHLO"))
            .cloned()
            .collect()
    };
    let (old, new) = seen.commands.split_at(before);
    let (old, new) = (ehlos(old), ehlos(new));
    assert!(
        !old.is_empty() && old.iter().all(|c| c == "EHLO gw.test"),
        "before the commit: {old:?}"
    );
    assert!(
        !new.is_empty() && new.iter().all(|c| c == "EHLO renamed.test"),
        "after the commit: {new:?}"
    );
}
