//! Disk full: a child process runs under a small RLIMIT_FSIZE (with SIGXFSZ ignored, so a
//! write beyond it fails with EFBIG like ENOSPC would) and enqueues until commits fail. What
//! was acknowledged must stay intact and the writer must keep answering new mail (with a
//! refusal). A delete at the limit is kept and committed once there is room (redb copies
//! pages on write, so it may need room too). Once the limit is lifted, the same writer must
//! work again without a restart.

use super::*;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use std::collections::HashMap;
use std::process::Stdio;

const CHILD: &str = "EDGEMX_QUEUE_DISK_FULL_CHILD";
const LIMIT: &str = "EDGEMX_QUEUE_DISK_FULL_LIMIT";
const LEN: usize = 16 << 10;
const ROOM: u64 = 3 << 20;

#[derive(Default, Debug)]
struct Report {
    acked: HashMap<u64, u64>,
    deleted: Vec<u64>,
    failures: Vec<String>,
    after_failure: usize,
    verified: bool,
}

fn read_report(output: &str) -> Report {
    let mut report = Report::default();
    for line in output.lines() {
        let mut words = line.splitn(3, ' ');
        let (kind, a, b) = (words.next(), words.next(), words.next());
        let num = |w: Option<&str>| w.and_then(|w| w.parse::<u64>().ok());
        match (kind, num(a), num(b)) {
            (Some("ACK"), Some(id), Some(n)) => {
                report.acked.insert(id, n);
            }
            (Some("AFTER"), Some(id), Some(n)) => {
                report.acked.insert(id, n);
                report.after_failure += 1;
            }
            (Some("DELETED"), Some(id), _) => report.deleted.push(id),
            (Some("FAIL"), _, _) => report.failures.push(line.to_string()),
            (Some("VERIFIED"), _, _) => report.verified = true,
            _ => {}
        }
    }
    report
}

#[test]
fn disk_full_refuses_mail_and_keeps_what_was_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.redb");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let (queue, _) = Queue::open(&path, &config()).expect("create");
        queue.close().await;
    });
    let start = std::fs::metadata(&path).expect("stat").len();
    let mut child = child(
        "disk_full::disk_full_child_process",
        (CHILD, path.to_str().expect("utf-8")),
    )
    .env(LIMIT, (start + ROOM).to_string())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn child");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    assert!(
        wait_with_deadline(&mut child, Duration::from_secs(60)),
        "child hung"
    );
    let output = reader.join().expect("reader");
    let report = read_report(&output);
    eprintln!(
        "disk full: file {} -> {} bytes, {} acknowledged, {} after the failure, {} deleted, failures: {:?}",
        start,
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
        report.acked.len(),
        report.after_failure,
        report.deleted.len(),
        report.failures.first()
    );
    assert!(
        child.wait().expect("status").success(),
        "child failed:\n{output}"
    );
    assert!(report.acked.len() > 10, "{output}");
    assert!(
        !report.failures.is_empty(),
        "the limit was never hit:\n{output}"
    );
    assert!(
        report
            .failures
            .iter()
            .all(|f| f.starts_with("FAIL disk full: ") && !f.contains("delete")),
        "{:?}",
        report.failures
    );
    assert!(
        report.verified,
        "child could not verify after reopening:\n{output}"
    );
    assert!(
        !report.deleted.is_empty(),
        "deleting never worked:\n{output}"
    );
    assert!(
        report.after_failure >= 3,
        "enqueue did not recover:\n{output}"
    );

    runtime.block_on(async {
        let (queue, existing) = Queue::open(&path, &config()).expect("fresh open");
        let present: HashMap<u64, &Envelope> = existing.iter().map(|e| (e.id.0, e)).collect();
        for (&id, &n) in &report.acked {
            let stored = queue.body(QueueId(id)).await.expect("read");
            if report.deleted.contains(&id) {
                assert!(
                    stored.is_none() && !present.contains_key(&id),
                    "{id} deleted"
                );
            } else {
                assert_eq!(stored.as_deref(), Some(&body(n, LEN)), "body of {id}");
                assert!(present.contains_key(&id));
            }
        }
        let extra: Vec<u64> = existing
            .iter()
            .map(|e| e.id.0)
            .filter(|id| !report.acked.contains_key(id))
            .collect();
        assert!(
            extra.is_empty(),
            "stored but never acknowledged: {extra:?}\n{output}"
        );
        queue.close().await;
    });
}

async fn delete(queue: &Queue, ids: &[QueueId]) -> bool {
    let deleting = queue.apply(ids.iter().map(|id| Change::Delete(*id)).collect());
    match tokio::time::timeout(Duration::from_secs(30), deleting)
        .await
        .expect("writer wedged")
    {
        Ok(_) => {
            ids.iter().for_each(|id| println!("DELETED {}", id.0));
            true
        }
        Err(e) => {
            println!("FAIL delete: {e}");
            false
        }
    }
}

/// The child side of `disk_full_refuses_mail_and_keeps_what_was_acknowledged`, not a test of
/// its own.
#[test]
#[ignore = "child-process entry point, run by disk_full_refuses_mail_and_keeps_what_was_acknowledged"]
fn disk_full_child_process() {
    let (Ok(path), Ok(limit)) = (std::env::var(CHILD), std::env::var(LIMIT)) else {
        // `--ignored` without the parent: there is nothing to do.
        return;
    };
    let limit: u64 = limit.parse().expect("limit");
    super::log_to_stderr();
    let (_, hard) = getrlimit(Resource::RLIMIT_FSIZE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_FSIZE, limit, hard).expect("setrlimit");
    // A line of its own: libtest has already written the test name without a newline.
    println!();
    // SAFETY: ignoring a signal installs no handler code; nothing else in this process
    // depends on SIGXFSZ.
    unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGXFSZ,
            nix::sys::signal::SigHandler::SigIgn,
        )
    }
    .expect("ignore SIGXFSZ");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(fill(std::path::PathBuf::from(path)));
}

async fn fill(path: std::path::PathBuf) {
    let deadline = Duration::from_secs(10);
    let (queue, _) = Queue::open(&path, &config()).expect("child open");
    let mut tasks = Vec::new();
    for task in 0..8u64 {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            for seq in 0..10_000u64 {
                let n = task << 32 | seq;
                match queue.enqueue(envelope("a@example.com"), body(n, LEN)).await {
                    Ok(e) => println!("ACK {} {n}", e.id.0),
                    Err(e) => {
                        println!("FAIL {e}");
                        return;
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }

    // Still at the limit, the writer must keep answering, whatever the answer is.
    let retry = queue.enqueue(envelope("a@example.com"), body(1, LEN));
    match tokio::time::timeout(deadline, retry)
        .await
        .expect("writer wedged")
    {
        Ok(e) => println!("AFTER {} 1", e.id.0),
        Err(e) => println!("FAIL {e}"),
    }
    let list = queue.list().await.expect("list");
    let victims: Vec<QueueId> = list.iter().step_by(2).map(|e| e.id).collect();
    // A change to stored messages is never refused for lack of room: it is committed again
    // until that works (it may work at once, from pages the file has free).
    let deleting = tokio::spawn({
        let queue = queue.clone();
        let victims = victims.clone();
        async move { delete(&queue, &victims).await }
    });

    // Room again (as when an operator frees space): the same writer must recover.
    let (_, hard) = getrlimit(Resource::RLIMIT_FSIZE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_FSIZE, hard, hard).expect("lift the limit");
    assert!(
        deleting.await.expect("delete task"),
        "the delete was stored"
    );
    for n in 2..5u64 {
        let again = queue.enqueue(envelope("a@example.com"), body(n, LEN));
        let stored = tokio::time::timeout(deadline, again)
            .await
            .expect("writer wedged");
        println!(
            "AFTER {} {n}",
            stored.expect("enqueue after the disk has room").id.0
        );
    }
    queue.close().await;

    let (queue, existing) = Queue::open(&path, &config()).expect("reopen under the limit");
    for e in &existing {
        let stored = queue.body(e.id).await.expect("read").expect("body");
        assert_eq!(stored.len(), LEN);
    }
    println!("VERIFIED {}", existing.len());
    queue.close().await;
}
