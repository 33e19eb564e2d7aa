//! `250` means on disk: SIGKILL under load, a full disk, and shutdown in the middle of DATA
//! never lose a message the gateway acknowledged.

use edgemx_tests::gateway::GatewayProcess;
use edgemx_tests::{FakeBackend, Gateway, SmtpClient, send_mail};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);
const FAST_RETRY: &str = "[queue]\nretry_intervals = [\"1s\"]\n";

/// Clients sending numbered messages as fast as they can, recording which got `250`.
fn load(
    addr: std::net::SocketAddr,
    clients: usize,
    acked: Arc<Mutex<Vec<String>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|c| {
            let acked = acked.clone();
            tokio::spawn(async move {
                for n in 0.. {
                    let id = format!("<c{c}n{n}@crash.test>");
                    let body = format!(
                        "Message-ID: {id}\r\nSubject: load\r\n\r\n{}\r\n",
                        "x".repeat(2000)
                    );
                    match send_mail(addr, "a@sender.test", &["b@example.com"], &body).await {
                        Ok(reply) if reply.code == 250 => acked.lock().unwrap().push(id),
                        _ => return,
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_concurrent_load_loses_no_acknowledged_message() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let gw = GatewayProcess::spawn(dir.path(), backend.addr(), FAST_RETRY);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let clients = load(gw.addr, 8, acked.clone());
        // Kill once a good number of messages were acknowledged, while clients still send.
        let deadline = tokio::time::Instant::now() + WAIT;
        while acked.lock().unwrap().len() < 150 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "load never reached 150 messages"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        gw.kill9();
        for c in clients {
            let _ = c.await;
        }
        let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
        // Restart on the same queue: everything acknowledged must reach the backend.
        let gw = GatewayProcess::spawn(dir.path(), backend.addr(), FAST_RETRY);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let seen: HashSet<String> = backend
                .messages()
                .iter()
                .filter_map(|m| m.message_id())
                .collect();
            let missing: Vec<&String> = acked.iter().filter(|id| !seen.contains(*id)).collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: {} of {} acknowledged messages lost, e.g. {:?}",
                missing.len(),
                acked.len(),
                &missing[..missing.len().min(5)]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(gw.terminate().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_452_and_keeps_everything_already_accepted() {
    let down = FakeBackend::start().await;
    let backend_addr = down.stop();
    let dir = tempfile::tempdir().unwrap();
    // The queue file may not grow past 3 MiB: the filesystem is "full" for the gateway.
    let gw = GatewayProcess::spawn_with(
        dir.path(),
        backend_addr,
        "[queue]\nretry_intervals = [\"1s\"]\nmin_free_space = 0\n",
        |cmd| {
            use std::os::unix::process::CommandExt;
            unsafe {
                cmd.pre_exec(|| {
                    use nix::sys::resource::{Resource, setrlimit};
                    use nix::sys::signal::{SigHandler, Signal, signal};
                    signal(Signal::SIGXFSZ, SigHandler::SigIgn).map_err(std::io::Error::from)?;
                    setrlimit(Resource::RLIMIT_FSIZE, 3 << 20, 3 << 20)
                        .map_err(std::io::Error::from)?;
                    Ok(())
                });
            }
        },
    );
    let mut acked = Vec::new();
    let mut refused = 0;
    for n in 0..400 {
        let id = format!("<full{n}@test>");
        let body = format!("Message-ID: {id}\r\n\r\n{}\r\n", "y".repeat(32 * 1024));
        let reply = send_mail(gw.addr, "a@sender.test", &["b@example.com"], &body).await;
        match reply {
            Ok(r) if r.code == 250 => acked.push(id),
            Ok(r) if r.is("452 4.3.1") => {
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
            // Once a commit failed, mail is refused early, at MAIL FROM.
            Err(e) if e.contains("code: 452") && e.contains("4.3.1") => {
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
            other => panic!("unexpected answer with a full disk: {other:?}"),
        }
    }
    assert!(
        refused >= 3,
        "the disk never filled ({} accepted)",
        acked.len()
    );
    assert!(
        !acked.is_empty(),
        "nothing was accepted before the disk filled"
    );
    // Monitoring sees why: /healthz and the metric, while the queue cannot commit.
    let admin = admin_address(&gw.config_path);
    let (status, text) = edgemx_tests::admin::http(admin, "GET", "/healthz")
        .await
        .unwrap();
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("cannot commit"), "{text}");
    let metrics = edgemx_tests::admin::scrape(admin).await;
    assert_eq!(
        edgemx_tests::admin::sample(&metrics, "edgemx_queue_commit_failing", ""),
        Some(1.0)
    );
    // Still alive and answering after the failed commits.
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    drop(c);
    assert!(gw.terminate().success());
    // With room again and the backend up, every acknowledged message is delivered.
    let backend = FakeBackend::start_on(backend_addr).await;
    let gw = GatewayProcess::spawn(dir.path(), backend_addr, FAST_RETRY);
    let got = backend.wait_for_messages(acked.len(), WAIT).await;
    let seen: HashSet<String> = got.iter().filter_map(|m| m.message_id()).collect();
    for id in &acked {
        assert!(seen.contains(id), "{id} was acknowledged but lost");
    }
    assert!(gw.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_a_message_in_data_and_sends_421_to_idle_sessions() {
    let down = FakeBackend::start().await;
    let backend_addr = down.stop();
    let gw = Gateway::start(backend_addr, FAST_RETRY).await;
    let mut idle = SmtpClient::connect(gw.addr).await.unwrap();
    idle.expect("EHLO idle.test", "250").await;
    let mut busy = SmtpClient::connect(gw.addr).await.unwrap();
    busy.expect("EHLO busy.test", "250").await;
    busy.expect("MAIL FROM:<a@sender.test>", "250").await;
    busy.expect("RCPT TO:<b@example.com>", "250").await;
    busy.expect("DATA", "354").await;
    busy.send(b"Message-ID: <inflight@test>\r\nSubject: in flight\r\n\r\nfirst half\r\n")
        .await;
    gw.begin_shutdown();
    assert!(
        idle.reply().await.is("421 4.3.2"),
        "idle session told to go away"
    );
    assert!(idle.closed().await);
    // New connections are no longer served: refused, or told 421 at once.
    let refused = match SmtpClient::connect(gw.addr).await {
        Err(_) => true,
        Ok(mut c) => c.banner.code == 421 || c.try_reply().await.map_or(true, |r| r.code == 421),
    };
    assert!(refused, "a new session was accepted during shutdown");
    busy.send(b"second half\r\n.\r\n").await;
    assert!(
        busy.reply().await.is("250 2.0.0"),
        "the message in DATA is committed"
    );
    assert!(busy.reply().await.is("421 4.3.2"));
    let dir = gw.stop().await;
    // After a restart the committed message is delivered.
    let backend = FakeBackend::start_on(backend_addr).await;
    let gw = Gateway::start_in(dir, backend_addr, FAST_RETRY).await;
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].message_id().as_deref(), Some("<inflight@test>"));
    assert!(got[0].text().ends_with("first half\r\nsecond half\r\n"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_process_with_status_zero_and_the_queue_cli_works() {
    let down = FakeBackend::start().await;
    let backend_addr = down.stop();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::spawn(
        dir.path(),
        backend_addr,
        "[queue]\nretry_intervals = [\"1h\"]\n",
    );
    let body = "Message-ID: <cli@test>\r\nSubject: cli\r\n\r\nx\r\n";
    let reply = send_mail(gw.addr, "a@sender.test", &["b@example.com"], body)
        .await
        .unwrap();
    let id = reply.text.rsplit(' ').next().unwrap().to_string();
    let list = gw.cli(&["queue", "list"]);
    assert!(list.status.success(), "{list:?}");
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(
        listing.contains(&id) && listing.contains("b@example.com"),
        "{listing}"
    );
    let show = gw.cli(&["queue", "show", &id]);
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("Subject: cli"),
        "{show:?}"
    );
    let bad = gw.cli(&["queue", "show", "FFFFFFFFFFFFFFFF"]);
    assert!(!bad.status.success());
    let socket = dir.path().join("control.sock");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(gw.terminate().success());
    assert!(!socket.exists(), "control socket removed on exit");
}

/// The admin listener's address from the configuration the harness wrote.
fn admin_address(config: &std::path::Path) -> std::net::SocketAddr {
    let text = std::fs::read_to_string(config).unwrap();
    let admin = text.split("[admin]").nth(1).expect("[admin] section");
    admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("address = "))
        .and_then(|v| v.trim_matches('"').parse().ok())
        .expect("admin address")
}
