//! Talking to a test gateway's control socket from async tests (the client is blocking),
//! and polling the queue until a condition holds.

use crate::Gateway;
use edgemx::control::Request;
use std::time::Duration;

/// Waits until the gateway's control socket answers (it is bound after the queue opens).
pub async fn ready(gw: &Gateway, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    let path = gw.config.control_socket();
    while edgemx::control::ControlClient::connect(&path).is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "control socket {} never answered",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends one request; the `data` of an ok answer or the error text.
pub async fn call(gw: &Gateway, request: Request) -> Result<serde_json::Value, String> {
    let mut control = gw.control();
    tokio::task::spawn_blocking(move || control.call(&request))
        .await
        .expect("control task")
}

/// Every queued envelope, as JSON.
pub async fn queued(gw: &Gateway) -> Vec<serde_json::Value> {
    let list = call(gw, Request::List).await.expect("queue list");
    list.as_array().cloned().unwrap_or_default()
}

/// Polls the queue until `check` holds; panics with the last listing after `limit`.
pub async fn wait_queue(
    gw: &Gateway,
    limit: Duration,
    what: &str,
    check: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let list = queued(gw).await;
        if check(&list) {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue never {what}: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The state (`"up"`/`"down"`) of the watched next hop whose name contains `hop`.
pub async fn hop_state(gw: &Gateway, hop: &str) -> Option<String> {
    let health = call(gw, Request::Health).await.expect("health");
    health.as_array().into_iter().flatten().find_map(|h| {
        let name = h["name"].as_str()?;
        name.contains(hop)
            .then(|| h["state"].as_str().unwrap_or("").to_string())
    })
}

/// Polls until the next hop `hop` reports `state`; panics after `limit`.
pub async fn wait_hop(gw: &Gateway, hop: &str, state: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let now = hop_state(gw, hop).await;
        if now.as_deref() == Some(state) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "next hop {hop} never {state} (is {now:?})"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The queue id (as the CLI spells it) of a listed envelope.
pub fn id_of(envelope: &serde_json::Value) -> edgemx::queue::QueueId {
    edgemx::queue::QueueId(envelope["id"].as_u64().expect("id"))
}
