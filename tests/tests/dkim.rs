//! DKIM over real DNS on loopback: inbound signatures verified by the gateway (pass, and
//! fail once tampered with), outbound signing whose result mail-auth verifies against the
//! published key (RSA and Ed25519), and `edgemx dkim keygen` output that works as published.

use edgemx::config::Config;
use edgemx::dkim::Key;
use edgemx::dkim::keygen::Algorithm;
use edgemx::policy::auth::{MailAuth, Origin, Verdict};
use edgemx_tests::dns::{DnsServer, Zone};
use edgemx_tests::mailauth::{HEADERS, new_key, signed, signed_message, verify};
use edgemx_tests::{FakeBackend, Gateway, send_mail};
use mail_auth::DkimResult;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_signature_verifies_and_a_tampered_message_fails_dmarc() {
    let dir = tempfile::tempdir().unwrap();
    let (key, record) = new_key(dir.path(), Algorithm::Rsa, "signed.test", "s1");
    // SPF fails for the sender, so only an aligned DKIM pass satisfies p=reject.
    let dns = DnsServer::start(
        Zone::new()
            .txt("s1._domainkey.signed.test", &record)
            .txt("signed.test", "v=spf1 ip4:192.0.2.1 -all")
            .txt("_dmarc.signed.test", "v=DMARC1; p=reject"),
    )
    .await;
    let backend = FakeBackend::start().await;
    let extra = format!("{}\n[auth]\nverify = true\n", dns.config());
    let gw = Gateway::start(backend.addr(), &extra).await;
    let sender = "alice@signed.test";
    let good =
        String::from_utf8(signed(key, "signed.test", "s1", &signed_message(sender))).unwrap();
    let reply = send_mail(gw.addr, sender, &["user@example.com"], &good)
        .await
        .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    let ar = edgemx_tests::backend::header(&got[0].data, "Authentication-Results").unwrap();
    assert!(
        ar.contains("dkim=pass header.d=signed.test header.s=s1"),
        "{ar}"
    );
    assert!(ar.contains("dmarc=pass"), "{ar}");

    let tampered = good.replace("Hello, signed world.", "Hello, wired money.");
    let reply = send_mail(gw.addr, sender, &["user@example.com"], &tampered)
        .await
        .unwrap();
    assert!(reply.is("550 5.7.1"), "{reply:?}");
    assert_eq!(
        backend.messages().len(),
        1,
        "the tampered message was not relayed"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_outbound_mail_is_signed_per_from_domain_and_verifies_with_both_algorithms() {
    let dir = tempfile::tempdir().unwrap();
    // Keys at their default place, data_dir/dkim/DOMAIN.SELECTOR.key.
    let dkim_dir = dir.path().join("dkim");
    let (_, rsa) = new_key(&dkim_dir, Algorithm::Rsa, "example.com", "rsa1");
    let (_, ed) = new_key(&dkim_dir, Algorithm::Ed25519, "example.com", "ed1");
    let dns = DnsServer::start(
        Zone::new()
            .txt("rsa1._domainkey.example.com", &rsa)
            .txt("ed1._domainkey.example.com", &ed),
    )
    .await;
    let backend = FakeBackend::start().await;
    // 127.0.0.1 holds a relay grant: its mail is outbound (signed, never checked).
    let extra = format!(
        r#"{}
[relay]
networks = ["127.0.0.0/8"]
[auth]
verify = true
[[auth.dkim]]
domain = "example.com"
selector = "rsa1"
[[auth.dkim]]
domain = "example.com"
selector = "ed1"
"#,
        dns.config()
    );
    let gw = Gateway::start_in(dir, backend.addr(), &extra).await;
    // A subdomain's mail is signed by the parent's keys (relaxed alignment).
    for (sender, rcpt) in [
        ("app@mail.example.com", "user@example.com"),
        ("someone@elsewhere.test", "user@example.com"),
    ] {
        let reply = send_mail(gw.addr, sender, &[rcpt], &signed_message(sender))
            .await
            .unwrap();
        assert!(reply.is("250 2.0.0"), "{reply:?}");
    }
    let got = backend.wait_for_messages(2, WAIT).await;
    let signed = got
        .iter()
        .find(|m| m.mail_from == "app@mail.example.com")
        .unwrap();
    let text = signed.text();
    assert!(text.contains("a=rsa-sha256"), "{text}");
    assert!(text.contains("a=ed25519-sha256"), "{text}");
    assert!(text.contains("c=relaxed/relaxed"), "{text}");
    assert!(
        !text.contains("Authentication-Results"),
        "outbound is not checked: {text}"
    );
    assert_eq!(
        verify(&dns, &signed.data).await,
        vec![DkimResult::Pass, DkimResult::Pass]
    );
    // Another domain's mail is relayed unsigned.
    let foreign = got
        .iter()
        .find(|m| m.mail_from == "someone@elsewhere.test")
        .unwrap();
    assert!(
        !foreign.text().contains("DKIM-Signature"),
        "{}",
        foreign.text()
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_entry_point_signs_only_outbound_mail() {
    let dir = tempfile::tempdir().unwrap();
    let (_, record) = new_key(
        &dir.path().join("dkim"),
        Algorithm::Ed25519,
        "example.com",
        "ed1",
    );
    let dns = DnsServer::start(Zone::new().txt("ed1._domainkey.example.com", &record)).await;
    let config = Config::parse(&format!(
        "hostname = \"gateway.test\"\ndata_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n[auth]\nverify = false\n[[auth.dkim]]\ndomain = \"example.com\"\nselector = \"ed1\"\n",
        dir.path().display()
    ))
    .unwrap();
    let auth = MailAuth::load(&config).unwrap();
    for outbound in [true, false] {
        let origin = Origin {
            ip: "10.0.0.5".parse().unwrap(),
            helo: "exchange.example.com",
            mail_from: "a@example.com",
            outbound,
        };
        let mut bytes = signed_message("a@example.com").into_bytes();
        let verdict = auth.process(&origin, &mut bytes).await;
        assert_eq!(verdict, Verdict::Accept { held: false });
        let results = verify(&dns, &bytes).await;
        match outbound {
            true => assert_eq!(results, vec![DkimResult::Pass]),
            false => assert_eq!(bytes, signed_message("a@example.com").into_bytes()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_keygen_writes_a_private_key_and_a_record_that_verifies() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for (algorithm, selector) in [("rsa", "k1"), ("ed25519", "k2")] {
        let path = dir.path().join(format!("{selector}.key"));
        let out = std::process::Command::new(edgemx_tests::gateway::binary())
            .args([
                "dkim",
                "keygen",
                "Keys.Test",
                selector,
                "--algorithm",
                algorithm,
            ])
            .arg("--out")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let line = stdout.trim_end();
        // The owner is absolute: pasted into a zone it must not get the origin appended.
        let prefix = format!("{selector}._domainkey.keys.test. IN TXT ");
        let strings = line
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{line}"));
        let parts: Vec<&str> = strings
            .split('"')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        assert!(parts.iter().all(|p| p.len() <= 255), "{line}");
        let record = parts.concat();
        assert!(
            record.starts_with(&format!("v=DKIM1; k={algorithm}; p=")),
            "{record}"
        );

        // Standard PKCS#8 that OpenSSL 3.0 reads (Debian package openssl, via scripts/setup).
        let openssl = std::process::Command::new("openssl")
            .args(["pkey", "-noout", "-in"])
            .arg(&path)
            .output()
            .expect("openssl (scripts/setup installs it)");
        assert!(openssl.status.success(), "{algorithm}: {openssl:?}");
        // The record can be printed again from the key file alone.
        let again = std::process::Command::new(edgemx_tests::gateway::binary())
            .args(["dkim", "record"])
            .arg(&path)
            .args([selector, "Keys.Test."])
            .output()
            .unwrap();
        assert!(again.status.success(), "{again:?}");
        assert_eq!(String::from_utf8(again.stdout).unwrap(), stdout);

        let dns =
            DnsServer::start(Zone::new().txt(&format!("{selector}._domainkey.keys.test"), &record))
                .await;
        let headers: Vec<String> = HEADERS.iter().map(|h| h.to_string()).collect();
        let key = Key::load(&path, "keys.test", selector, &headers).unwrap();
        let message = signed(key, "keys.test", selector, &signed_message("a@keys.test"));
        assert_eq!(verify(&dns, &message).await, vec![DkimResult::Pass]);

        // Running it again never overwrites a key in service.
        let again = std::process::Command::new(edgemx_tests::gateway::binary())
            .args(["dkim", "keygen", "keys.test", selector, "--out"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!again.status.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_first_eight_signatures_of_a_message_are_verified() {
    let dir = tempfile::tempdir().unwrap();
    let mut zone = Zone::new();
    let mut text = signed_message("alice@many.test");
    // Twelve valid signatures, each by its own key; prepending makes s11 the first.
    for i in 0..12 {
        let selector = format!("s{i}");
        let (key, record) = new_key(dir.path(), Algorithm::Ed25519, "many.test", &selector);
        zone = zone.txt(&format!("{selector}._domainkey.many.test"), &record);
        text = String::from_utf8(signed(key, "many.test", &selector, &text)).unwrap();
    }
    let dns = DnsServer::start(zone).await;
    let backend = FakeBackend::start().await;
    let extra = format!("{}\n[auth]\nverify = true\n", dns.config());
    let gw = Gateway::start(backend.addr(), &extra).await;
    let before = dns.queries();
    let reply = send_mail(gw.addr, "alice@many.test", &["user@example.com"], &text)
        .await
        .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    let ar = edgemx_tests::backend::header(&got[0].data, "Authentication-Results").unwrap();
    assert_eq!(ar.matches("dkim=pass").count(), 8, "{ar}");
    assert!(
        ar.contains("header.s=s11") && !ar.contains("header.s=s3 "),
        "{ar}"
    );
    let key_lookups = dns.queries() - before;
    // 8 key lookups, SPF for HELO and MAIL FROM, the DMARC walk: 12; all twelve keys: 16.
    assert!(key_lookups <= 12, "{key_lookups} queries for one message");
    gw.stop().await;
}
