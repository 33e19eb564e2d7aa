//! Content scanning end to end against the real daemons (Debian's rspamd and clamd, started
//! on loopback by `edgemx_tests::scanners` with our own rules and signature): every verdict
//! decided at the end of DATA (or BDAT LAST) and answered to the sender, the headers rspamd
//! asks for on the delivered message, a scanner down, killed, slow or garbled answered by
//! `scan.on_error`, big messages passed unscanned, and quarantine through the CLI.

use edgemx_tests::backend::header;
use edgemx_tests::scanners::{
    Daemon, LATER, SPAM, SPAM_MESSAGE, SUBJECT, SUSPECT, VIRUS, fake_scanner,
    rspamd_needing_concurrent,
};
use edgemx_tests::{FakeBackend, Gateway, GatewayProcess, SmtpClient, control};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn message(marker: &str) -> String {
    format!(
        "From: a@sender.test\r\nTo: b@example.com\r\nSubject: hello\r\nX-Remove-Me: yes\r\n\r\n\
         A message with {marker} in it.\r\n"
    )
}

/// One session, one message to `to`: the reply to the end of DATA.
async fn send(addr: SocketAddr, to: &str, body: &str) -> edgemx_tests::Reply {
    let mut c = SmtpClient::connect(addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect(&format!("RCPT TO:<{to}>"), "250").await;
    let reply = c.data(body).await;
    c.command("QUIT").await;
    reply
}

fn scan_config(extra: &str) -> String {
    format!("[scan]\n{extra}\n")
}

#[tokio::test]
async fn rspamd_verdicts_are_answered_at_the_end_of_data() {
    let started = Instant::now();
    let rspamd = Daemon::rspamd();
    let backend = FakeBackend::start().await;
    let extra = format!(
        "[[domain]]\nname = \"internal.test\"\nnext_hops = [\"{}\"]\nscan = false\n\n{}",
        backend.addr(),
        scan_config(&format!("rspamd = \"http://{}\"", rspamd.addr))
    );
    let gw = Gateway::start(backend.addr(), &extra).await;

    let reply = send(gw.addr, "b@example.com", &message(SPAM)).await;
    assert!(reply.is("554 5.7.1"), "{reply:?}");
    assert!(
        reply.text.contains(SPAM_MESSAGE),
        "rspamd's message: {reply:?}"
    );

    let reply = send(gw.addr, "b@example.com", &message(LATER)).await;
    assert!(reply.is("451 4.7.1"), "{reply:?}");
    assert!(reply.text.contains("try again later (test)"), "{reply:?}");

    let reply = send(gw.addr, "b@example.com", &message(SUSPECT)).await;
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let reply = send(gw.addr, "b@example.com", &message(SUBJECT)).await;
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let reply = send(gw.addr, "b@example.com", &message("nothing special")).await;
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    // Not scanned: internal.test says `scan = false`, so the spam marker passes.
    let reply = send(gw.addr, "c@internal.test", &message(SPAM)).await;
    assert!(reply.is("250 2.0.0"), "{reply:?}");

    // BDAT LAST is decided the same way.
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    let body = message(SPAM);
    c.send(format!("BDAT {} LAST\r\n{body}", body.len()).as_bytes())
        .await;
    let reply = c.reply().await;
    assert!(reply.is("554 5.7.1"), "BDAT: {reply:?}");
    c.command("QUIT").await;

    let got = backend.wait_for_messages(4, WAIT).await;
    assert_eq!(got.len(), 4, "only the accepted four are delivered");
    let find = |marker: &str| {
        got.iter()
            .find(|m| m.text().contains(marker))
            .unwrap_or_else(|| panic!("{marker} not delivered"))
    };
    let suspect = &find(SUSPECT).data;
    assert_eq!(header(suspect, "X-Edgemx-Test").as_deref(), Some("suspect"));
    assert_eq!(
        header(suspect, "X-Remove-Me"),
        None,
        "removed as rspamd asked"
    );
    let status = header(suspect, "X-Spam-Status").expect("score header");
    assert!(
        status.starts_with("Yes,") && status.contains("EDGEMX_SUSPECT(7.00)"),
        "{status}"
    );
    let rewritten = &find(SUBJECT).data;
    assert_eq!(
        header(rewritten, "Subject").as_deref(),
        Some("*** SPAM *** hello"),
        "one Subject, rspamd's"
    );
    assert_eq!(
        String::from_utf8_lossy(rewritten)
            .matches("Subject:")
            .count(),
        1
    );
    let clean = &find("nothing special").data;
    let status = header(clean, "X-Spam-Status").expect("score header");
    assert!(
        status.starts_with("No,") && status.contains("no action"),
        "{status}"
    );
    assert_eq!(header(clean, "X-Remove-Me").as_deref(), Some("yes"));
    assert_eq!(
        header(&find(SPAM).data, "X-Spam-Status"),
        None,
        "not scanned"
    );

    // What the console's `show scan` shows: rspamd reachable, the verdicts just given.
    let call = edgemx::control::ConsoleRequest::Scan;
    let shown = control::call(&gw, edgemx::control::Request::Console { call })
        .await
        .expect("show scan");
    let shown: edgemx::control::reply::ScanStatus =
        edgemx::control::reply::decode(shown).expect("a ScanStatus");
    assert!(
        shown.enabled && shown.scanners[0].answered_ms.is_some(),
        "{shown:?}"
    );
    let verdicts: Vec<&str> = shown.recent.iter().map(|r| r.verdict.as_str()).collect();
    assert_eq!(
        verdicts,
        [
            "reject",
            "soft_reject",
            "add_header",
            "rewrite_subject",
            "no_action",
            "reject"
        ],
        "{shown:?}"
    );

    let metrics = gw.metrics().await;
    for line in [
        "edgemx_scan_verdicts_total{scanner=\"rspamd\",verdict=\"reject\"} 2",
        "edgemx_scan_verdicts_total{scanner=\"rspamd\",verdict=\"soft_reject\"} 1",
        "edgemx_scan_verdicts_total{scanner=\"rspamd\",verdict=\"add_header\"} 1",
        "edgemx_scan_verdicts_total{scanner=\"rspamd\",verdict=\"rewrite_subject\"} 1",
        "edgemx_scan_verdicts_total{scanner=\"rspamd\",verdict=\"no_action\"} 1",
        "edgemx_scans_total{scanner=\"rspamd\"} 6",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    gw.stop().await;
    eprintln!("rspamd scenario took {:?}", started.elapsed());
}

#[tokio::test]
async fn clamd_and_rspamd_together_reject_a_virus_by_its_signature() {
    let (rspamd, clamd) = (Daemon::rspamd(), Daemon::clamd("1M"));
    let backend = FakeBackend::start().await;
    let extra = scan_config(&format!(
        "rspamd = \"http://{}\"\nclamd = \"{}\"",
        rspamd.addr, clamd.addr
    ));
    let gw = Gateway::start(backend.addr(), &extra).await;
    let reply = send(gw.addr, "b@example.com", &message(VIRUS)).await;
    assert!(reply.is("554 5.7.1"), "{reply:?}");
    assert!(
        reply.text.contains("Edgemx.Test.Marker"),
        "names the signature: {reply:?}"
    );
    let reply = send(gw.addr, "b@example.com", &message("clean")).await;
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    // Over clamd's StreamMaxLength: clamd answers an error, which is on_error (tempfail).
    let big = message(&"x".repeat(80)).repeat(20_000);
    let reply = send(gw.addr, "b@example.com", &big).await;
    assert!(reply.is("451 4.7.1"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("edgemx_scan_verdicts_total{scanner=\"clamd\",verdict=\"infected\"} 1"),
        "{metrics}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_scanner_that_is_down_tempfails_or_accepts_as_configured() {
    let backend = FakeBackend::start().await;
    let down = edgemx_tests::gateway::free_port();
    let gw = Gateway::start(
        backend.addr(),
        &scan_config(&format!("rspamd = \"http://{down}\"\nclamd = \"{down}\"")),
    )
    .await;
    let reply = send(gw.addr, "b@example.com", &message("clean")).await;
    assert!(reply.is("451 4.7.1"), "{reply:?}");
    assert!(control::queued(&gw).await.is_empty(), "nothing stored");
    gw.stop().await;

    let gw = Gateway::start(
        backend.addr(),
        &scan_config(&format!(
            "rspamd = \"http://{down}\"\non_error = \"accept\""
        )),
    )
    .await;
    let reply = send(gw.addr, "b@example.com", &message("clean")).await;
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    let status = header(&got[0].data, "X-Spam-Status").expect("header");
    assert!(
        status.starts_with("unscanned, scan failed: rspamd: cannot connect"),
        "{status}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_scanner_killed_between_messages_of_a_session_is_a_scan_error() {
    let mut rspamd = Daemon::rspamd();
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(
        backend.addr(),
        &scan_config(&format!("rspamd = \"http://{}\"", rspamd.addr)),
    )
    .await;
    let mut c = SmtpClient::connect(gw.addr).await.unwrap();
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    assert!(c.data(&message("first")).await.is("250 2.0.0"));
    // The pooled keep-alive connection dies with rspamd: the retry on a new one finds
    // nobody listening, and the message is refused for now, never accepted unscanned.
    rspamd.kill();
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    let reply = c.data(&message("second")).await;
    assert!(reply.is("451 4.7.1"), "{reply:?}");
    c.expect("QUIT", "221").await;
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got.len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn garbage_cut_and_slow_replies_are_scan_errors_within_the_timeout() {
    let backend = FakeBackend::start().await;
    let garbage = fake_scanner(Some(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnope!")).await;
    let cut = fake_scanner(Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 900\r\n\r\n{\"act",
    ))
    .await;
    let not_clamd = fake_scanner(Some(b"stream: what?\0")).await;
    let slow = fake_scanner(None).await;
    for (scanner, at) in [
        ("rspamd", format!("http://{garbage}")),
        ("rspamd", format!("http://{cut}")),
        ("clamd", not_clamd.to_string()),
        ("rspamd", format!("http://{slow}")),
        ("clamd", slow.to_string()),
    ] {
        let gw = Gateway::start(
            backend.addr(),
            &scan_config(&format!("{scanner} = \"{at}\"\ntimeout = \"300ms\"")),
        )
        .await;
        let started = Instant::now();
        let reply = send(gw.addr, "b@example.com", &message("clean")).await;
        assert!(reply.is("451 4.7.1"), "{scanner} {at}: {reply:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "bounded by scan.timeout"
        );
        gw.stop().await;
    }
    assert!(backend.messages().is_empty());
}

#[tokio::test]
async fn a_message_over_max_size_passes_unscanned_with_a_header() {
    let backend = FakeBackend::start().await;
    let down = edgemx_tests::gateway::free_port();
    let gw = Gateway::start(
        backend.addr(),
        &scan_config(&format!("rspamd = \"http://{down}\"\nmax_size = \"4KiB\"")),
    )
    .await;
    // Small enough to be scanned: the scanner is down, so 451 proves it was asked.
    let reply = send(gw.addr, "b@example.com", &message("small")).await;
    assert!(reply.is("451 4.7.1"), "{reply:?}");
    let big = message(&"y".repeat(8 * 1024));
    let reply = send(gw.addr, "b@example.com", &big).await;
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let got = backend.wait_for_messages(1, WAIT).await;
    let status = header(&got[0].data, "X-Spam-Status").expect("header");
    assert!(
        status.contains("unscanned, size") && status.contains("scan.max_size"),
        "{status}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn quarantined_mail_is_held_listed_with_its_reason_and_released_by_the_cli() {
    let rspamd = Daemon::rspamd();
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::spawn(
        dir.path(),
        backend.addr(),
        &scan_config(&format!(
            "rspamd = \"http://{}\"\nspam = \"quarantine\"",
            rspamd.addr
        )),
    );
    let reply = send(gw.addr, "b@example.com", &message(SPAM)).await;
    assert!(reply.is("250 2.0.0"), "quarantined, not refused: {reply:?}");
    let out = |args: &[&str]| {
        let out = gw.cli(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (_, listed) = out(&["queue", "list"]);
    assert!(
        listed.contains("HELD: content scan quarantine: rspamd reject")
            && listed.contains("EDGEMX_SPAM"),
        "{listed}"
    );
    assert!(backend.messages().is_empty(), "held mail is not delivered");
    let id = listed.split_whitespace().next().expect("id").to_string();
    let (released, text) = out(&["queue", "release", &id]);
    assert!(released, "{text}");
    let got = backend.wait_for_messages(1, WAIT).await;
    let status = header(&got[0].data, "X-Spam-Status").expect("header");
    assert!(
        status.starts_with("Yes,") && status.contains("EDGEMX_SPAM(20.00)"),
        "{status}"
    );
    gw.terminate();
}

#[tokio::test]
async fn quarantined_mail_is_deleted_after_quarantine_expiry() {
    let rspamd = Daemon::rspamd();
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(
        backend.addr(),
        &scan_config(&format!(
            "rspamd = \"http://{}\"\nspam = \"quarantine\"\nquarantine_expiry = \"1s\"",
            rspamd.addr
        )),
    )
    .await;
    let reply = send(gw.addr, "b@example.com", &message(SPAM)).await;
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    let listed = control::queued(&gw).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["held"], true, "{listed:?}");
    assert_eq!(listed[0]["hold"]["by"], "scan", "{listed:?}");
    control::wait_queue(&gw, WAIT, "emptied by the expiry", |l| l.is_empty()).await;
    assert!(backend.messages().is_empty(), "expired, never delivered");
    gw.stop().await;
}

#[tokio::test]
async fn clamd_on_a_unix_socket_is_reached_by_its_path() {
    let clamd = Daemon::clamd_unix();
    let backend = FakeBackend::start().await;
    let socket = clamd.socket.clone().expect("socket");
    let gw = Gateway::start(
        backend.addr(),
        &scan_config(&format!("clamd = \"unix:{}\"", socket.display())),
    )
    .await;
    let reply = send(gw.addr, "b@example.com", &message(VIRUS)).await;
    assert!(reply.is("554 5.7.1"), "{reply:?}");
    assert!(reply.text.contains("Edgemx.Test.Marker"), "{reply:?}");
    let reply = send(gw.addr, "b@example.com", &message("clean")).await;
    assert!(reply.is("250 2.0.0"), "{reply:?}");
    gw.stop().await;
}

/// Four sessions at once: a stand-in rspamd answers only when four scans wait on it
/// together, so they pass only if sessions are scanned concurrently; with
/// `max_connections = 2` the bound holds the others back and they meet their timeout.
#[tokio::test]
async fn sessions_are_scanned_concurrently_within_max_connections() {
    let backend = FakeBackend::start().await;
    for (max, timeout, expect) in [(8, "10s", "250 2.0.0"), (2, "500ms", "451 4.7.1")] {
        let rspamd = rspamd_needing_concurrent(4).await;
        let gw = Gateway::start(
            backend.addr(),
            &scan_config(&format!(
                "rspamd = \"http://{rspamd}\"\ntimeout = \"{timeout}\"\nmax_connections = {max}"
            )),
        )
        .await;
        let addr = gw.addr;
        let sessions: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn(async move { send(addr, "b@example.com", &message("together")).await })
            })
            .collect();
        for session in sessions {
            let reply = session.await.expect("session task");
            assert!(reply.is(expect), "max_connections = {max}: {reply:?}");
        }
        gw.stop().await;
    }
}
