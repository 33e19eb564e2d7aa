//! Storage damaged behind the gateway's back. A queue file emptied or removed (a crashed
//! copy, a bad restore): `edgemx serve` refuses to start, names the file and says what to
//! do, instead of starting with an empty queue. A byte flipped inside a stored body: the
//! message is held with the reason, neither delivered nor deleted.

use edgemx_tests::gateway::{GatewayProcess, binary};
use edgemx_tests::{FakeBackend, send_mail};
use std::process::Command;
use std::time::{Duration, Instant};

const FAST_RETRY: &str = "[queue]\nretry_intervals = [\"1s\"]\n";

/// Runs `serve` on a configuration whose queue file is lost; it must exit by itself.
fn refused_start(config: &std::path::Path) -> String {
    let out = Command::new(binary())
        .args(["serve", "--config"])
        .arg(config)
        .output()
        .expect("run edgemx");
    assert!(!out.status.success(), "serve started with a lost queue");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_an_empty_or_missing_queue_file_where_a_queue_existed() {
    let down = FakeBackend::start().await;
    let backend = down.stop();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::spawn(dir.path(), backend, "");
    let reply = send_mail(
        gw.addr,
        "a@sender.test",
        &["b@example.com"],
        "Subject: x\r\n\r\nx\r\n",
    )
    .await
    .unwrap();
    assert_eq!(reply.code, 250);
    let config = gw.config_path.clone();
    assert!(gw.terminate().success());

    let queue = dir.path().join("queue.redb");
    std::fs::File::create(&queue).unwrap();
    let said = refused_start(&config);
    assert!(
        said.contains("queue.redb") && said.contains("empty"),
        "{said}"
    );
    assert_eq!(std::fs::metadata(&queue).unwrap().len(), 0, "left as found");

    std::fs::remove_file(&queue).unwrap();
    let said = refused_start(&config);
    assert!(
        said.contains("missing") && said.contains("queue.redb.created"),
        "{said}"
    );
    assert!(!queue.exists(), "no new queue was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_body_is_held_with_the_reason_not_delivered_released_only_when_sound_and_deletable()
{
    let down = FakeBackend::start().await;
    let backend_addr = down.stop();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::spawn(dir.path(), backend_addr, FAST_RETRY);
    let body = format!("Subject: x\r\n\r\n{}\r\n", "corruptme-".repeat(2_000));
    let reply = send_mail(gw.addr, "a@sender.test", &["b@example.com"], &body)
        .await
        .unwrap();
    assert_eq!(reply.code, 250);
    assert!(gw.terminate().success());

    let path = dir.path().join("queue.redb");
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = "corruptme-".repeat(40);
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("body in the file");
    bytes[at + 200] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();

    let backend = FakeBackend::start_on(backend_addr).await;
    let gw = GatewayProcess::spawn(dir.path(), backend_addr, FAST_RETRY);
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let out = gw.cli(&["queue", "list"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("HELD: stored body is corrupt") {
            break text;
        }
        assert!(Instant::now() < deadline, "never held: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        listed.contains("1 message(s)"),
        "kept, not deleted: {listed}"
    );
    let id = listed
        .split_whitespace()
        .next()
        .expect("the message's id")
        .to_string();
    let out = |args: &[&str]| {
        let out = gw.cli(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (shown, text) = out(&["queue", "show", &id]);
    assert!(shown && text.contains("stored body is corrupt"), "{text}");
    // A release reads the body again: still corrupt, it stays held and the reply says why.
    let (released, text) = out(&["queue", "release", &id]);
    assert!(
        !released && text.contains("still corrupt") && text.contains("CRC-32"),
        "{text}"
    );
    let (_, text) = out(&["queue", "list"]);
    assert!(text.contains("HELD: stored body is corrupt"), "{text}");
    let (deleted, text) = out(&["queue", "delete", &id]);
    assert!(deleted, "{text}");
    let (_, text) = out(&["queue", "list"]);
    assert!(text.contains("0 message(s)"), "{text}");
    assert!(backend.messages().is_empty(), "corrupt mail was delivered");
    assert!(gw.terminate().success());
}
