//! Mail-flow probes in a real `edgemx serve` process: the RCPT probe and the probe message
//! see the backend go down and come back; the state shows in `edgemx probes`, in the
//! metrics, and in the log as one line per change.

use edgemx_tests::admin::{sample, scrape};
use edgemx_tests::gateway::free_port;
use edgemx_tests::{FakeBackend, GatewayProcess};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn probes(gw: &GatewayProcess) -> Value {
    let out = gw.cli(&["probes", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("probes JSON")
}

/// Polls `edgemx probes --json` until `check` holds for the only probe.
async fn wait_probe(gw: &GatewayProcess, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let all = probes(gw);
        if all.as_array().is_some_and(|a| a.len() == 1) && check(&all[0]) {
            return all[0].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "probe never {what}: {all:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn log_lines(path: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter(|l| l.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_sees_the_backend_go_down_and_come_back() {
    let backend = FakeBackend::start().await;
    let addr = backend.addr();
    let admin = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gateway.log");
    let extra = format!(
        "[admin]\naddress = \"{admin}\"\n\
         [[admin.probe]]\ndomain = \"example.com\"\nrecipient = \"probe@example.com\"\n\
         interval = \"200ms\"\ntimeout = \"5s\"\nmessage = true\n\
         [queue]\nretry_intervals = [\"1s\"]\nretry_jitter = 0.0\n\
         [delivery]\nmax_messages_per_connection = 1\n"
    );
    let gw = GatewayProcess::spawn_with(dir.path(), addr, &extra, |command| {
        // State changes are logged at info; the harness default is warn.
        let config = dir.path().join("edgemx.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            text.replace("level = \"warn\"", "level = \"info\""),
        )
        .unwrap();
        command.stderr(std::fs::File::create(&log).unwrap());
    });
    let hop = addr.to_string();

    // Up: the RCPT probe passes and a probe message reaches the backend, timed.
    let up = wait_probe(&gw, "up with a delivered probe message", |p| {
        p["up"] == true && p["message"]["latency_ms"].is_u64()
    })
    .await;
    assert_eq!(up["next_hop"], hop.as_str());
    assert!(up["last_reply"].as_str().unwrap().contains("250"), "{up}");
    let got = backend.wait_for_messages(1, WAIT).await;
    assert!(
        got[0].text().contains("X-Edgemx-Probe:"),
        "{}",
        got[0].text()
    );
    assert_eq!(got[0].rcpt_to, ["probe@example.com"]);
    let labels = format!("{{next_hop=\"{hop}\"}}");
    let text = scrape(admin).await;
    assert_eq!(
        sample(&text, "edgemx_probe_up", &labels),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, "edgemx_probe_message_seconds", &labels).is_some());

    // Down: noticed, and logged once however many probes fail.
    backend.stop();
    let down = wait_probe(&gw, "down", |p| p["up"] == false).await;
    let failures = down["failures"].as_u64().unwrap();
    wait_probe(&gw, "failing three more times", |p| {
        p["failures"].as_u64().unwrap() >= failures + 3 && p["message"]["pending"].is_string()
    })
    .await;
    let text = scrape(admin).await;
    assert_eq!(
        sample(&text, "edgemx_probe_up", &labels),
        Some(0.0),
        "{text}"
    );

    // Back: up again; the probe message that waited in the queue is delivered.
    let waiting = probes(&gw)[0]["message"]["pending"].clone();
    assert!(waiting.is_string(), "a probe message waits in the queue");
    let backend = FakeBackend::start_on(addr).await;
    wait_probe(&gw, "up again with nothing pending", |p| {
        p["up"] == true && p["message"]["pending"].is_null()
    })
    .await;
    backend.wait_for_messages(1, WAIT).await;
    assert!(gw.terminate().success());
    if std::env::var_os("EDGEMX_SHOW_LOG").is_some() {
        eprintln!("{}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    assert_eq!(log_lines(&log, &format!("probe {hop}: up (")), 1);
    assert_eq!(log_lines(&log, &format!("probe {hop}: DOWN")), 1);
    assert_eq!(log_lines(&log, &format!("probe {hop}: up again")), 1);
}
