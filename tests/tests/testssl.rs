//! testssl.sh (Debian package, installed by scripts/setup) against a running gateway's
//! STARTTLS listener on loopback: no protocol below TLS 1.2, no suite that is not AEAD, no
//! finding rated MEDIUM or worse. Also OpenSSL's own client resumes a session by ticket
//! (TLS 1.3 and 1.2) and by session ID (TLS 1.2).
//!
//! The default run checks protocols, cipher categories and vulnerabilities (`-p -s -U`,
//! about 45 s on a quiet build machine). `EDGEMX_TESTSSL_FULL=1` adds the server defaults
//! and certificate (`-S`) and every cipher per protocol (`-E`), about two more minutes;
//! there the self-signed certificate's findings are expected (see `SELF_SIGNED`).

use edgemx_tests::{FakeBackend, Gateway};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Findings that come from the generated self-signed certificate, not from the TLS setup:
/// nobody can chain it to a CA, it names `gateway.test` and not 127.0.0.1, it has no CRL or
/// OCSP, and its ten years exceed what public CAs issue (a deliberate choice for a
/// certificate that is only ever used opportunistically; docs/configuration.md, "TLS inbound").
const SELF_SIGNED: &[&str] = &[
    "cert_chain_of_trust",
    "cert_trust",
    "cert_revocation",
    "cert_validityPeriod",
];

const BELOW_TLS12: &[&str] = &["SSLv2", "SSLv3", "TLS1", "TLS1_1"];

/// Cipher categories of `-s` that hold anything but AEAD suites.
const NOT_AEAD: &[&str] = &[
    "cipherlist_NULL",
    "cipherlist_aNULL",
    "cipherlist_EXPORT",
    "cipherlist_LOW",
    "cipherlist_3DES_IDEA",
    "cipherlist_AVERAGE",
];

fn testssl() -> &'static str {
    for path in ["/usr/bin/testssl", "/usr/bin/testssl.sh"] {
        if Path::new(path).exists() {
            return path;
        }
    }
    panic!("testssl.sh is not installed: run scripts/setup (Debian package testssl.sh)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testssl_finds_only_tls12_and_up_aead_suites_and_nothing_medium_or_worse() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    let json = gw.dir.path().join("testssl.json");
    let mut checks = vec!["-p", "-s", "-U"];
    let full = std::env::var("EDGEMX_TESTSSL_FULL").is_ok_and(|v| v == "1");
    if full {
        checks.extend(["-S", "-E"]);
    }
    let run = tokio::process::Command::new(testssl())
        .args([
            "--quiet",
            "--warnings",
            "off",
            "--color",
            "0",
            "--starttls",
            "smtp",
        ])
        .args(["--connect-timeout", "10", "--openssl-timeout", "10"])
        .args(&checks)
        .arg("--jsonfile")
        .arg(&json)
        .arg(gw.addr.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let limit = Duration::from_secs(if full { 900 } else { 300 });
    let out = tokio::time::timeout(limit, run)
        .await
        .expect("testssl.sh did not finish in time")
        .expect("run testssl.sh");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON from testssl.sh ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let findings: Vec<Value> = serde_json::from_str(&text).expect("testssl JSON");
    let finding = |id: &str| -> String {
        findings
            .iter()
            .find(|f| f["id"] == id)
            .and_then(|f| f["finding"].as_str())
            .unwrap_or_else(|| panic!("testssl reported nothing for {id}"))
            .to_string()
    };
    for id in BELOW_TLS12.iter().chain(NOT_AEAD) {
        assert_eq!(finding(id), "not offered", "{id}");
    }
    assert_eq!(finding("TLS1_2"), "offered");
    assert!(finding("TLS1_3").starts_with("offered"));
    assert_eq!(finding("cipherlist_STRONG"), "offered");
    let bad: Vec<String> = findings
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("MEDIUM" | "HIGH" | "CRITICAL")))
        .filter(|f| !SELF_SIGNED.contains(&f["id"].as_str().unwrap_or_default()))
        .map(|f| format!("{} {} {}", f["id"], f["severity"], f["finding"]))
        .collect();
    assert!(bad.is_empty(), "testssl.sh findings: {bad:#?}");
    println!(
        "testssl.sh {} finished in {}s",
        checks.join(" "),
        finding("scanTime")
    );
    gw.stop().await;
}

/// `openssl s_client` twice with the session of the first; true when the second says
/// `Reused`. Each sends QUIT and reads until the gateway closes, so the TLS 1.3 tickets
/// that follow the handshake have certainly been read.
async fn openssl_resumes(addr: std::net::SocketAddr, flags: &[&str]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("session.pem");
    let mut reused = false;
    for (i, direction) in ["-sess_out", "-sess_in"].into_iter().enumerate() {
        let mut child = tokio::process::Command::new("openssl")
            .args([
                "s_client",
                "-crlf",
                "-ign_eof",
                "-starttls",
                "smtp",
                "-connect",
            ])
            .arg(addr.to_string())
            .args(flags)
            .arg(direction)
            .arg(&session)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("run openssl (installed with testssl.sh)");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"QUIT\n").await.expect("write QUIT");
        drop(stdin);
        let run = child.wait_with_output();
        let out = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("openssl s_client hung")
            .expect("openssl s_client output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if i == 1 {
            reused = stdout.lines().any(|l| l.starts_with("Reused,"));
        }
    }
    reused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_resumes_sessions_by_ticket_and_by_id() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    for flags in [
        &["-tls1_3"][..],
        &["-tls1_2"][..],
        &["-tls1_2", "-no_ticket"][..],
    ] {
        assert!(openssl_resumes(gw.addr, flags).await, "{flags:?}");
    }
    gw.stop().await;
}
