//! What the delivery tests that run the real queue and scheduler share: a configuration
//! for one fake next hop, waiting for a condition, and a clean stop.

use super::*;
use std::net::SocketAddr;
use std::time::Instant;

/// One domain `b.test` relayed to `backend`, retries after 1 s, plain SMTP.
pub(super) fn config_text(dir: &std::path::Path, backend: SocketAddr) -> String {
    format!(
        r#"
        hostname = "gw.test"
        data_dir = "{dir}"
        [[listener]]
        address = "127.0.0.1:2525"
        [[domain]]
        name = "b.test"
        next_hops = ["{backend}"]
        [queue]
        retry_intervals = ["1s"]
        retry_jitter = 0.0
        [delivery]
        tls = "none"
        connect_timeout = "5s"
        command_timeout = "5s"
        data_timeout = "5s"
        [limits]
        shutdown_timeout = "1s"
        "#,
        dir = dir.display()
    )
}

/// Waits until `done` holds (at most 30 s, then fails naming `what`).
pub(super) async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops delivery and closes the queue.
pub(super) async fn stop(handle: DeliveryHandle, shutdown: CancellationToken, queue: Queue) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle.stopped())
        .await
        .unwrap();
    queue.close().await;
}

/// Starts delivery for a test, with nobody listening to its events.
pub(super) fn started(
    config: std::sync::Arc<crate::config::Config>,
    queue: &Queue,
    resumed: Vec<crate::envelope::Envelope>,
    budget: std::sync::Arc<super::Budget>,
    shutdown: &CancellationToken,
) -> DeliveryHandle {
    super::start(
        config.clone(),
        queue.clone(),
        super::Backlog::of(&config, resumed),
        budget,
        &Default::default(),
        shutdown.clone(),
    )
}
