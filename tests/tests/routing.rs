//! Routing scenarios over real sockets: each hybrid pattern with two fake backends, the
//! per-recipient map and its reload, rewriting, and the route surviving a restart.

use edgemx_tests::backend::Backend;
use edgemx_tests::{FakeBackend, Gateway, SmtpClient, send_mail};
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const BODY: &str = "From: s@sender.test\r\nSubject: routed\r\n\r\nHello.\r\n";

/// Replaces `name` in `dir` atomically, as an administrator should (write, then rename).
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    path
}

fn rcpts(backend: &FakeBackend) -> Vec<String> {
    let mut all: Vec<String> = backend
        .messages()
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    all.sort();
    all
}

async fn rcpt(gw: &Gateway, to: &str) -> edgemx_tests::Reply {
    let mut c = SmtpClient::connect(gw.addr).await.expect("connect");
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<s@sender.test>", "250").await;
    let reply = c.command(&format!("RCPT TO:<{to}>")).await;
    c.command("QUIT").await;
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_first_sends_each_recipient_to_the_backend_the_map_names() {
    let (cloud, onprem) = (FakeBackend::start().await, FakeBackend::start().await);
    let dir = tempfile::tempdir().unwrap();
    let map = write(dir.path(), "recipients.map", "alice@example.com cloud\n");
    let aliases = write(
        dir.path(),
        "aliases",
        "team@example.com alice@example.com, carol@example.com\n",
    );
    let body = format!(
        r#"
[[route]]
name = "onprem"
domains = ["example.com"]
next_hops = ["{onprem}"]

[[route]]
name = "cloud"
next_hops = ["{cloud}"]

[routing]
map = "{map}"
aliases = "{aliases}"
"#,
        onprem = onprem.addr(),
        cloud = cloud.addr(),
        map = map.display(),
        aliases = aliases.display(),
    );
    let gw = Gateway::start_bare(dir, &body).await;
    let to = ["Alice@Example.com", "bob@example.com"];
    let reply = send_mail(gw.addr, "s@sender.test", &to, BODY)
        .await
        .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    cloud.wait_for_messages(1, WAIT).await;
    onprem.wait_for_messages(1, WAIT).await;
    assert_eq!(rcpts(&cloud), ["Alice@example.com"]);
    assert_eq!(rcpts(&onprem), ["bob@example.com"]);
    // An alias expands to several recipients, each routed on its own.
    send_mail(gw.addr, "s@sender.test", &["team@example.com"], BODY)
        .await
        .unwrap();
    cloud.wait_for_messages(2, WAIT).await;
    onprem.wait_for_messages(2, WAIT).await;
    assert_eq!(rcpts(&cloud), ["Alice@example.com", "alice@example.com"]);
    assert_eq!(rcpts(&onprem), ["bob@example.com", "carol@example.com"]);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subdomain_segmentation_rewrites_on_prem_users_to_the_local_subdomain() {
    let (cloud, onprem) = (FakeBackend::start().await, FakeBackend::start().await);
    let dir = tempfile::tempdir().unwrap();
    let map = write(dir.path(), "recipients.map", "bob@example.com onprem\n");
    let body = format!(
        r#"
[[route]]
name = "cloud"
domains = ["example.com"]
next_hops = ["{cloud}"]

[[route]]
name = "onprem"
domains = ["local.example.com"]
next_hops = ["{onprem}"]
rewrite = {{ "example.com" = "local.example.com" }}

[routing]
map = "{map}"
"#,
        onprem = onprem.addr(),
        cloud = cloud.addr(),
        map = map.display(),
    );
    let gw = Gateway::start_bare(dir, &body).await;
    let to = [
        "bob@example.com",
        "carol@example.com",
        "dave@local.example.com",
    ];
    let reply = send_mail(gw.addr, "s@sender.test", &to, BODY)
        .await
        .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    cloud.wait_for_messages(1, WAIT).await;
    onprem.wait_for_messages(1, WAIT).await;
    assert_eq!(rcpts(&cloud), ["carol@example.com"]);
    assert_eq!(
        rcpts(&onprem),
        ["bob@local.example.com", "dave@local.example.com"]
    );
    // Envelope only: the header the author wrote is untouched.
    assert!(onprem.messages()[0].text().contains("From: s@sender.test"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_address_space_at_delivery_moves_unknown_users_to_the_fallback() {
    let cloud = FakeBackend::start().await;
    let onprem = FakeBackend::start().await;
    let senders = FakeBackend::start().await;
    let unknown = |b: &mut Backend, who: &[&str]| {
        for w in who {
            let reply = "550 5.1.1 <user> unknown".to_string();
            b.rcpt_replies.insert(w.to_string(), reply);
        }
    };
    cloud.set(|b| unknown(b, &["dave@example.com", "ghost@example.com"]));
    onprem.set(|b| unknown(b, &["ghost@example.com"]));
    let body = format!(
        r#"
[[domain]]
name = "sender.test"
next_hops = ["{senders}"]

[[route]]
name = "cloud"
domains = ["example.com"]
next_hops = ["{cloud}"]
fallback = "onprem"

[[route]]
name = "onprem"
next_hops = ["{onprem}"]
"#,
        senders = senders.addr(),
        cloud = cloud.addr(),
        onprem = onprem.addr(),
    );
    let gw = Gateway::start_bare(tempfile::tempdir().unwrap(), &body).await;
    let to = ["erin@example.com", "dave@example.com", "ghost@example.com"];
    let reply = send_mail(gw.addr, "s@sender.test", &to, BODY)
        .await
        .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    cloud.wait_for_messages(1, WAIT).await;
    onprem.wait_for_messages(1, WAIT).await;
    assert_eq!(rcpts(&cloud), ["erin@example.com"]);
    assert_eq!(rcpts(&onprem), ["dave@example.com"]);
    // Only the recipient the last route does not know either bounces.
    let dsn = senders.wait_for_messages(1, WAIT).await;
    assert_eq!(dsn[0].rcpt_to, ["s@sender.test"]);
    let text = dsn[0].text();
    assert!(text.contains("ghost@example.com"), "{text}");
    assert!(!text.contains("dave@example.com"), "{text}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_change_is_picked_up_without_restart() {
    let onprem = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let map = write(dir.path(), "recipients.map", "# nobody yet\n");
    let closed = write(dir.path(), "closed.list", "");
    let body = format!(
        r#"
[[route]]
name = "onprem"
domains = ["example.com"]
next_hops = ["{onprem}"]

[[route]]
name = "closed"
next_hops = ["{onprem}"]
recipients = "{closed}"

[routing]
map = "{map}"
reload_interval = "100ms"
"#,
        onprem = onprem.addr(),
        closed = closed.display(),
        map = map.display(),
    );
    let gw = Gateway::start_bare(dir, &body).await;
    assert!(rcpt(&gw, "bob@example.com").await.is("250 2.1.5"));
    // Mapping bob to a route whose list is empty makes him unknown, once reloaded.
    write(gw.dir.path(), "recipients.map", "bob@example.com closed\n");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reply = rcpt(&gw, "bob@example.com").await;
        if reply.is("550 5.1.1") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "map never reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rcpt(&gw, "carol@example.com").await.is("250 2.1.5"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_chosen_at_rcpt_survives_a_restart() {
    let onprem = FakeBackend::start().await;
    let cloud_addr = FakeBackend::start().await.stop();
    let dir = tempfile::tempdir().unwrap();
    let map = write(dir.path(), "recipients.map", "alice@example.com cloud\n");
    let body = format!(
        r#"
[[route]]
name = "onprem"
domains = ["example.com"]
next_hops = ["{onprem}"]

[[route]]
name = "cloud"
next_hops = ["{cloud_addr}"]

[routing]
map = "{map}"

[queue]
retry_intervals = ["1s"]
retry_jitter = 0.0
"#,
        onprem = onprem.addr(),
        map = map.display(),
    );
    let gw = Gateway::start_bare(dir, &body).await;
    let reply = send_mail(gw.addr, "s@sender.test", &["alice@example.com"], BODY)
        .await
        .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let dir = gw.stop().await;
    // The map no longer names alice: only the stored route can still send her to the cloud.
    write(dir.path(), "recipients.map", "");
    let cloud = FakeBackend::start_on(cloud_addr).await;
    let gw = Gateway::start_bare(dir, &body).await;
    let got = cloud.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].rcpt_to, ["alice@example.com"]);
    assert!(onprem.messages().is_empty());
    gw.stop().await;
}
