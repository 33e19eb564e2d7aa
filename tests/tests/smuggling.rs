//! SMTP smuggling and STARTTLS injection: only CRLF.CRLF ends DATA, and plaintext pipelined
//! behind STARTTLS is never executed.

use edgemx_tests::{FakeBackend, Gateway, SmtpClient};
use std::time::Duration;

/// Every end-of-data variant from facts.md other than the real one.
const VARIANTS: [&[u8]; 11] = [
    b"\n.\n",
    b"\n.\r",
    b"\r.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r.\r\n",
    b"\r\n.\n",
    b"\r\n.\r",
    b"\r\n.\r\r\n",
    b"\r\r\n.\r\r\n",
    b"\r\n\x00.\r\n",
];

/// Sends one message whose body hides a second transaction behind `variant`, then the real
/// terminator; returns the reply to the end of data.
async fn smuggle(c: &mut SmtpClient, variant: &[u8], n: usize) -> edgemx_tests::Reply {
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    c.expect("DATA", "354").await;
    let mut wire =
        format!("Message-ID: <outer{n}@test>\r\nSubject: outer\r\n\r\nbody").into_bytes();
    wire.extend_from_slice(variant);
    wire.extend_from_slice(
        format!(
            "MAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n\
             Message-ID: <smuggled{n}@test>\r\nSubject: smuggled\r\n\r\nwire money\r\n.\r\n"
        )
        .as_bytes(),
    );
    c.send(&wire).await;
    c.reply().await
}

async fn run(mode: &str) -> (Vec<u16>, Vec<edgemx_tests::ReceivedMessage>) {
    let backend = FakeBackend::start().await;
    let extra = format!("[limits]\nline_endings = \"{mode}\"\nmax_errors = 100\n");
    let gw = Gateway::start(backend.addr(), &extra).await;
    let mut codes = Vec::new();
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    for (n, variant) in VARIANTS.iter().enumerate() {
        let reply = smuggle(&mut c, variant, n).await;
        codes.push(reply.code);
        // Whatever was refused or accepted, the session must be in step: the next command
        // gets its own reply, and no reply for a hidden command is pending.
        c.expect("RSET", "250 2.0.0").await;
        c.expect("NOOP", "250 2.0.0").await;
    }
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    assert!(
        c.data("Message-ID: <canary@test>\r\n\r\nlast\r\n")
            .await
            .is("250")
    );
    let accepted = codes.iter().filter(|c| **c == 250).count();
    backend
        .wait_for_messages(accepted + 1, Duration::from_secs(30))
        .await;
    // Deliveries run in parallel: wait for the canary too, then nothing else may be there.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !backend
        .messages()
        .iter()
        .any(|m| m.message_id().as_deref() == Some("<canary@test>"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "canary never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.stop().await;
    let got = backend.messages();
    for m in &got {
        let id = m.message_id().unwrap_or_default();
        assert!(
            !id.contains("smuggled"),
            "a smuggled message was relayed: {}",
            m.text()
        );
    }
    (codes, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_smuggling_variant_ends_data_in_reject_mode() {
    let (codes, got) = run("reject").await;
    // Bare CR or LF, and NUL (a next hop that strips it would see CRLF.CRLF), all fail
    // the message with a 5xx after the real terminator.
    for (variant, code) in VARIANTS.iter().zip(&codes) {
        assert!((500..600).contains(code), "{variant:?} answered {code}");
    }
    // Only the canary arrives.
    assert_eq!(
        got.len(),
        1,
        "{:?}",
        got.iter().map(|m| m.message_id()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_smuggling_variant_ends_data_in_normalize_mode() {
    let (codes, got) = run("normalize").await;
    assert!(codes.iter().all(|c| *c == 250), "{codes:?}");
    assert_eq!(got.len(), VARIANTS.len() + 1);
    for m in &got {
        let id = m.message_id().unwrap_or_default();
        assert!(
            !m.data.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
            "bare LF relayed"
        );
        if id.contains("outer") {
            // The hidden transaction stayed inside the outer message as text.
            assert!(m.text().contains("wire money"), "{}", m.text());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_pipelined_after_starttls_is_discarded() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    // The injected commands arrive in the same segment as STARTTLS.
    c.send(b"STARTTLS\r\nEHLO injected.test\r\nMAIL FROM:<evil@injected.test>\r\n")
        .await;
    assert!(c.reply().await.is("220 2.0.0"));
    c.finish_tls_handshake().await;
    // Had the injected EHLO/MAIL run, this RCPT would be accepted; state must be fresh.
    c.expect("RCPT TO:<b@example.com>", "503 5.5.1").await;
    c.expect("MAIL FROM:<a@sender.test>", "503 5.5.1").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250 2.1.0").await;
    gw.stop().await;
}
