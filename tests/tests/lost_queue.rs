//! A queue file emptied or removed behind the gateway's back (a crashed copy, a bad
//! restore): `edgemx serve` refuses to start, names the file and says what to do, instead
//! of starting with an empty queue.

use edgemx_tests::gateway::{GatewayProcess, binary};
use edgemx_tests::{FakeBackend, send_mail};
use std::process::Command;

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
