//! The per-message cost of inbound checks: `MailAuth::process` on a DKIM-signed message
//! (SPF for HELO and MAIL FROM, DKIM, ARC, DMARC) against the loopback DNS server, cold
//! (first message, empty resolver cache) and warm. Run with `--nocapture` to see the
//! figures (BENCHMARKS.md keeps them). It asserts what every measured message must show
//! (accepted, dkim=pass, dmarc=pass); times are reported, never asserted, because a
//! shared machine makes any bound either flaky or meaningless.

use edgemx::config::Config;
use edgemx::dkim::keygen::{self, Algorithm};
use edgemx::dkim::{Key, Signer};
use edgemx::policy::auth::{MailAuth, Origin, Verdict};
use edgemx_tests::dns::{DnsServer, Zone};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_checks_pass_on_every_measured_message() {
    let dir = tempfile::tempdir().unwrap();
    let pair = keygen::generate(Algorithm::Rsa).unwrap();
    let path = dir.path().join("s1.key");
    keygen::write_key(&path, &pair.pem()).unwrap();
    let dns = DnsServer::start(
        Zone::new()
            .txt("s1._domainkey.sender.test", &pair.record())
            .txt("sender.test", "v=spf1 ip4:127.0.0.1 -all")
            .txt("client.sender.test", "v=spf1 ip4:127.0.0.1 -all")
            .txt("_dmarc.sender.test", "v=DMARC1; p=reject"),
    )
    .await;
    let config = Config::parse(&format!(
        "hostname = \"gateway.test\"\ndata_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n{}\n[auth]\nverify = true\n",
        dir.path().display(),
        dns.config()
    ))
    .unwrap();
    let auth = MailAuth::load(&config).unwrap();
    let mut signer = Signer::default();
    let headers: Vec<String> = ["From", "To", "Subject", "Date", "Message-ID"]
        .iter()
        .map(|h| h.to_string())
        .collect();
    signer.add(
        "sender.test",
        "s1",
        Key::load(&path, "sender.test", "s1", &headers).unwrap(),
    );
    let origin = Origin {
        ip: "127.0.0.1".parse().unwrap(),
        helo: "client.sender.test",
        mail_from: "alice@sender.test",
        outbound: false,
    };
    for (label, body_bytes, runs) in [("4 KiB", 4 << 10, 200), ("1 MiB", 1 << 20, 20)] {
        let body = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"
            .repeat(body_bytes / 64);
        let text = format!(
            "From: <alice@sender.test>\r\nTo: <u@example.com>\r\nSubject: cost\r\nDate: Thu, 26 Nov 2026 09:00:00 +0000\r\nMessage-ID: <cost@test>\r\n\r\n{body}"
        );
        let mut message = signer.sign(text.as_bytes()).unwrap();
        message.extend_from_slice(text.as_bytes());
        let mut timings = Vec::new();
        for _ in 0..runs {
            let mut copy = message.clone();
            let started = Instant::now();
            let verdict = auth.process(&origin, &mut copy).await;
            timings.push(started.elapsed());
            assert_eq!(verdict, Verdict::Accept { held: false });
            let head = String::from_utf8_lossy(&copy[..1500]).into_owned();
            assert!(
                head.contains("dkim=pass") && head.contains("dmarc=pass"),
                "{head}"
            );
        }
        let cold = timings[0];
        let mut warm = timings[1..].to_vec();
        warm.sort();
        let median = warm[warm.len() / 2];
        let mean = warm.iter().sum::<Duration>() / warm.len() as u32;
        eprintln!(
            "auth cost, {label} message: cold {cold:?}, warm median {median:?}, mean {mean:?} over {} runs",
            warm.len()
        );
    }
}
