//! What the gateway writes about inbound DKIM signatures: rsa-sha1 is never a pass and never
//! satisfies DMARC (RFC 8301), a changed body is `dkim=fail` with the reason, and every result
//! names the signing domain (`header.d`, plus `header.i` when the signature has `i=`).

use edgemx_tests::dns::{DnsServer, Zone};
use edgemx_tests::mailauth::{HEADERS, Sha1Key, auth_results, signed_message, verify};
use edgemx_tests::{FakeBackend, Gateway, send_mail};
use mail_auth::DkimResult;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A gateway checking inbound mail in monitor mode, so every verdict is relayed and readable.
async fn monitor(dns: &DnsServer, backend: &FakeBackend) -> Gateway {
    let extra = format!(
        "{}\n[auth]\nverify = true\nmode = \"monitor\"\n",
        dns.config()
    );
    Gateway::start(backend.addr(), &extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_sha1_signature_fails_and_never_satisfies_dmarc() {
    let (key, record) = Sha1Key::generate();
    // SPF fails for the sender: only an aligned DKIM pass could satisfy DMARC.
    let dns = DnsServer::start(
        Zone::new()
            .txt("old._domainkey.legacy.test", &record)
            .txt("legacy.test", "v=spf1 ip4:192.0.2.1 -all")
            .txt("_dmarc.legacy.test", "v=DMARC1; p=reject"),
    )
    .await;
    let sender = "alice@legacy.test";
    let message = key.sign("legacy.test", "old", &signed_message(sender));
    // The signature is genuine: a verifier that still accepts SHA-1 says pass.
    assert_eq!(verify(&dns, &message).await, vec![DkimResult::Pass]);

    let backend = FakeBackend::start().await;
    let gw = monitor(&dns, &backend).await;
    let text = String::from_utf8(message).unwrap();
    let reply = send_mail(gw.addr, sender, &["user@example.com"], &text)
        .await
        .unwrap();
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    let ar = &auth_results(&got[0].data)[0];
    assert!(
        ar.contains("dkim=fail reason=\"rsa-sha1 is not accepted (RFC 8301)\" header.d=legacy.test header.s=old"),
        "{ar}"
    );
    assert!(!ar.contains("dkim=pass"), "{ar}");
    assert!(ar.contains("dmarc=fail"), "{ar}");
    gw.stop().await;

    // Enforcing, the same message is refused as DMARC asks.
    let gw = Gateway::start(
        backend.addr(),
        &format!("{}\n[auth]\nverify = true\n", dns.config()),
    )
    .await;
    let reply = send_mail(gw.addr, sender, &["user@example.com"], &text)
        .await
        .unwrap();
    assert!(reply.is("550 5.7.1"), "{reply:?}");
    gw.stop().await;
}

/// `text` signed with a fresh Ed25519 key that sets `i=@signed.test`, and the key's record.
fn signed_with_identity(text: &str) -> (Vec<u8>, String) {
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let pair = edgemx::dkim::keygen::generate(edgemx::dkim::keygen::Algorithm::Ed25519).unwrap();
    let PrivateKeyDer::Pkcs8(der) = PrivateKeyDer::from_pem_slice(pair.pem().as_bytes()).unwrap()
    else {
        panic!("keygen writes PKCS#8")
    };
    let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der()).unwrap();
    let signature = mail_auth::dkim::DkimSigner::from_key(key)
        .domain("signed.test")
        .selector("s1")
        .headers(HEADERS.iter().copied())
        .agent_user_identifier("@signed.test")
        .sign(text.as_bytes())
        .unwrap();
    let mut out = signature.to_header().into_bytes();
    out.extend_from_slice(text.as_bytes());
    (out, pair.record())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_body_is_dkim_fail_with_the_reason_and_results_name_the_domain() {
    let sender = "alice@signed.test";
    let (good, record) = signed_with_identity(&signed_message(sender));
    let dns = DnsServer::start(
        Zone::new()
            .txt("s1._domainkey.signed.test", &record)
            .txt("signed.test", "v=spf1 ip4:192.0.2.1 -all")
            .txt("_dmarc.signed.test", "v=DMARC1; p=reject"),
    )
    .await;
    let backend = FakeBackend::start().await;
    let gw = monitor(&dns, &backend).await;
    let good = String::from_utf8(good).unwrap();
    let tampered = good.replace("Hello, signed world.", "Hello, wired money.");
    for text in [&good, &tampered] {
        let reply = send_mail(gw.addr, sender, &["user@example.com"], text)
            .await
            .unwrap();
        assert!(reply.is("250 2.0.0"), "{reply:?}");
    }
    let got = backend.wait_for_messages(2, WAIT).await;
    let results: Vec<String> = got
        .iter()
        .map(|m| auth_results(&m.data)[0].clone())
        .collect();
    let (pass, fail) = match results[0].contains("dkim=pass") {
        true => (&results[0], &results[1]),
        false => (&results[1], &results[0]),
    };
    assert!(
        pass.contains("dkim=pass header.d=signed.test header.i=@signed.test header.s=s1 header.b="),
        "{pass}"
    );
    assert!(pass.contains("dmarc=pass"), "{pass}");
    assert!(
        fail.contains("dkim=fail reason=\"body hash did not verify\" header.d=signed.test header.i=@signed.test header.s=s1"),
        "{fail}"
    );
    assert!(fail.contains("dmarc=fail"), "{fail}");
    gw.stop().await;
}
