//! Relay access: allowlisted networks, SMTP AUTH on a submission listener (only after
//! STARTTLS), client certificates for cloud connectors. Anyone without a grant reaches only
//! the served domain (`550 5.7.1` elsewhere).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use edgemx::config::Role;
use edgemx_tests::pki::Ca;
use edgemx_tests::{FakeBackend, Gateway, SmtpClient};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const ALLOWED: &str = "127.0.0.1";
const OTHER: &str = "127.0.0.2";

/// Outside domains go to the same fake backend, so relayed mail is observable.
fn relay_config(backend: SocketAddr, relay: &str) -> String {
    format!("[delivery]\ndefault_next_hops = [\"{backend}\"]\n\n[relay]\n{relay}\n")
}

async fn client(addr: SocketAddr, from: &str) -> SmtpClient {
    let source: IpAddr = from.parse().unwrap();
    let mut c = SmtpClient::connect_from(addr, source).await.unwrap();
    assert_eq!(c.banner.code, 220);
    c.expect("EHLO client.test", "250").await;
    c
}

/// MAIL, RCPT to an outside domain, DATA: `250` at every step.
async fn relay_one(c: &mut SmtpClient, to: &str) {
    c.expect("MAIL FROM:<app@example.com>", "250 2.1.0").await;
    c.expect(&format!("RCPT TO:<{to}>"), "250 2.1.5").await;
    let reply = c.data(&format!("Subject: to {to}\r\n\r\nhello\r\n")).await;
    assert!(reply.is("250 2.0.0"), "{reply:?}");
}

fn plain(user: &str, password: &str) -> String {
    STANDARD.encode(format!("\0{user}\0{password}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlisted_networks_relay_to_any_domain_and_other_clients_get_550_5_7_1() {
    let backend = FakeBackend::start().await;
    let relay = relay_config(
        backend.addr(),
        "networks = [\"127.0.0.1/32\", \"2001:db8::/32\"]",
    );
    let gw = Gateway::start(backend.addr(), &relay).await;

    let mut inside = client(gw.addr, ALLOWED).await;
    relay_one(&mut inside, "bob@elsewhere.test").await;
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].rcpt_to, ["bob@elsewhere.test"]);

    let mut outside = client(gw.addr, OTHER).await;
    outside.expect("MAIL FROM:<x@sender.test>", "250").await;
    outside
        .expect("RCPT TO:<bob@elsewhere.test>", "550 5.7.1")
        .await;
    outside
        .expect("RCPT TO:<user@example.com>", "250 2.1.5")
        .await;
    outside.expect("QUIT", "221").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_offers_auth_only_after_starttls_and_takes_nothing_without_it() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start_roles(backend.addr(), "", &[Role::Mx, Role::Submission]).await;
    let submission = gw.addrs[1];

    let mut c = SmtpClient::connect(submission).await.unwrap();
    let ehlo = c.expect("EHLO client.test", "250").await;
    assert!(!ehlo.text.contains("AUTH"), "AUTH before TLS: {ehlo:?}");
    c.expect(&format!("AUTH PLAIN {}", plain("app", "x")), "538 5.7.11")
        .await;
    c.expect("MAIL FROM:<app@example.com>", "530 5.7.0").await;
    c.starttls().await;
    let ehlo = c.expect("EHLO client.test", "250").await;
    assert!(
        ehlo.text.lines().any(|l| l == "AUTH PLAIN LOGIN"),
        "{ehlo:?}"
    );
    // Even mail for the served domain needs a grant on submission.
    c.expect("MAIL FROM:<app@example.com>", "530 5.7.0").await;

    let mut mx = SmtpClient::connect(gw.addrs[0]).await.unwrap();
    mx.expect("EHLO client.test", "250").await;
    mx.starttls().await;
    let ehlo = mx.expect("EHLO client.test", "250").await;
    assert!(
        !ehlo.text.contains("AUTH"),
        "MX listener offers AUTH: {ehlo:?}"
    );
    mx.expect("MAIL FROM:<a@sender.test>", "250").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_plain_and_login_relay_with_good_passwords_and_bad_ones_get_535_5_7_8() {
    let backend = FakeBackend::start().await;
    let relay = relay_config(backend.addr(), "users_file = \"{data_dir}/users\"");
    let gw = Gateway::start_roles(backend.addr(), &relay, &[Role::Submission]).await;
    // Written after the start: the users file is re-read when it changes.
    let hash = edgemx::password::hash_with("s3cret pass", 1000);
    std::fs::write(gw.dir.path().join("users"), format!("app:{hash}\n")).unwrap();

    let mut c = client(gw.addr, OTHER).await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("app", "wrong")),
        "535 5.7.8",
    )
    .await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("nobody", "s3cret pass")),
        "535 5.7.8",
    )
    .await;
    c.expect("AUTH PLAIN", "334").await;
    c.expect(&plain("app", "s3cret pass"), "235 2.7.0").await;
    c.expect("AUTH PLAIN", "503 5.5.1").await;
    relay_one(&mut c, "plain@elsewhere.test").await;

    let mut c = client(gw.addr, OTHER).await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    let user = STANDARD.encode("app");
    c.expect("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    c.expect(&user, "334 UGFzc3dvcmQ6").await;
    c.expect(&STANDARD.encode("nope"), "535 5.7.8").await;
    c.expect(&format!("AUTH LOGIN {user}"), "334 UGFzc3dvcmQ6")
        .await;
    c.expect("*", "501").await;
    c.expect("AUTH LOGIN", "334").await;
    c.expect(&user, "334").await;
    c.expect(&STANDARD.encode("s3cret pass"), "235 2.7.0").await;
    relay_one(&mut c, "login@elsewhere.test").await;

    let got = backend.wait_for_messages(2, WAIT).await;
    let mut rcpts: Vec<String> = got.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["login@elsewhere.test", "plain@elsewhere.test"]);
    // RFC 3848: authenticated submission over TLS is recorded as ESMTPSA.
    assert!(
        got.iter().all(|m| m.text().contains(" with ESMTPSA id ")),
        "{got:?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_auth_counts_as_an_error_and_closes_the_session_at_the_limit() {
    let backend = FakeBackend::start().await;
    let extra = "[limits]\nmax_errors = 3\n";
    let gw = Gateway::start_roles(backend.addr(), extra, &[Role::Submission]).await;
    let mut c = client(gw.addr, OTHER).await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    for _ in 0..2 {
        c.expect(
            &format!("AUTH PLAIN {}", plain("app", "guess")),
            "535 5.7.8",
        )
        .await;
    }
    c.send(format!("AUTH PLAIN {}\r\n", plain("app", "guess")).as_bytes())
        .await;
    assert!(c.reply().await.is("535 5.7.8"));
    assert!(c.reply().await.is("421 4.7.0"));
    assert!(c.closed().await);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_from_the_trusted_ca_with_a_listed_name_relay_and_others_do_not() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let trusted = Ca::new("Connector CA");
    let stranger = Ca::new("Someone else's CA");
    let ca_file = trusted.write(dir.path(), "connector-ca.pem");
    let relay = relay_config(
        backend.addr(),
        &format!(
            "client_ca = \"{}\"\nclient_names = [\"connector.cloud.test\", \"*.relay.cloud.test\"]",
            ca_file.display()
        ),
    );
    let gw = Gateway::start(backend.addr(), &relay).await;

    let cases = [
        (trusted.issue("connector.cloud.test", &[]), true, "CN match"),
        (
            trusted.issue("Connector", &["eu.relay.cloud.test"]),
            true,
            "SAN wildcard",
        ),
        (
            trusted.issue("other.cloud.test", &["other.cloud.test"]),
            false,
            "wrong name",
        ),
        (
            stranger.issue("connector.cloud.test", &["connector.cloud.test"]),
            false,
            "untrusted CA",
        ),
    ];
    let mut relayed = 0;
    for (identity, grants, what) in cases {
        let mut c = client(gw.addr, OTHER).await;
        c.starttls_as(identity.chain.clone(), identity.key()).await;
        c.expect("EHLO client.test", "250").await;
        if grants {
            relay_one(&mut c, "onprem@elsewhere.test").await;
            relayed += 1;
        } else {
            c.expect("MAIL FROM:<x@cloud.test>", "250").await;
            let reply = c.command("RCPT TO:<onprem@elsewhere.test>").await;
            assert!(reply.is("550 5.7.1"), "{what}: {reply:?}");
            // The session still works as ordinary MX traffic.
            c.expect("RCPT TO:<user@example.com>", "250 2.1.5").await;
        }
    }
    // No certificate at all: the handshake still succeeds, no relay.
    let mut c = client(gw.addr, OTHER).await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@cloud.test>", "250").await;
    c.expect("RCPT TO:<onprem@elsewhere.test>", "550 5.7.1")
        .await;

    let got = backend.wait_for_messages(relayed, WAIT).await;
    assert!(got.iter().all(|m| m.rcpt_to == ["onprem@elsewhere.test"]));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_unknown_and_misplaced_auth_commands_get_their_rfc_4954_replies() {
    let backend = FakeBackend::start().await;
    let relay = "[relay]\nnetworks = [\"127.0.0.1\"]\n";
    let gw = Gateway::start_roles(backend.addr(), relay, &[Role::Mx, Role::Submission]).await;
    let mut mx = client(gw.addrs[0], OTHER).await;
    mx.expect("AUTH PLAIN", "502 5.5.1").await;

    let mut c = client(gw.addrs[1], OTHER).await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    c.expect("AUTH CRAM-MD5", "504 5.5.4").await;
    c.expect("AUTH PLAIN not*base64", "501 5.5.4").await;
    c.expect("AUTH PLAIN", "334").await;
    c.expect("not*base64", "501 5.5.2").await;
    let other = STANDARD.encode("boss\0app\0pw");
    c.expect(&format!("AUTH PLAIN {other}"), "501 5.5.2").await;
    c.expect("AUTH PLAIN", "334").await;
    c.expect("*", "501 5.0.0").await;

    // An allowlisted address needs no AUTH on submission either; AUTH inside a
    // transaction is out of sequence.
    let mut inside = client(gw.addrs[1], ALLOWED).await;
    inside.expect("MAIL FROM:<app@example.com>", "250").await;
    inside.expect("AUTH PLAIN", "503 5.5.1").await;
    inside.expect("RCPT TO:<bob@elsewhere.test>", "250").await;
    gw.stop().await;
}
