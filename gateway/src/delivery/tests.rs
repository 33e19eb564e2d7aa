//! Client, failover and worker tests against the fake server, over real sockets.

use super::dest::DestQueue;
use super::fake::{self, Script};
use super::hops::Walker;
use super::scheduler::Event;
use super::worker::{Ctx, Job, Message, Report, ReportKind};
use super::*;
use crate::config::{NextHop, TlsPolicy};
use crate::envelope::Envelope;
use crate::envelope::Recipient;
use crate::routing::Destination;
use std::net::SocketAddr;

fn settings() -> Arc<Settings> {
    Arc::new(Settings {
        helo: "client.test".into(),
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        data_timeout: Duration::from_secs(2),
        tls: crate::tls::ClientConfigs::default(),
        events: Default::default(),
    })
}

fn outgoing<'a>(recipients: &'a [&'a str], body: &'a [u8]) -> Outgoing<'a> {
    Outgoing {
        sender: "sender@a.test",
        recipients,
        body,
        eight_bit: false,
        smtputf8: false,
        dsn: Default::default(),
    }
}

async fn open(addr: SocketAddr, policy: TlsPolicy) -> Result<Session, HopError> {
    Session::open(addr, "localhost", &policy, &settings()).await
}

/// An address nobody listens on.
async fn refused_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn walker() -> Walker {
    Walker::new(settings(), None, "client.test", Duration::from_secs(1))
}

fn destination(hops: Vec<SocketAddr>, tls: TlsPolicy) -> Destination {
    Destination {
        domain: None,
        hops: hops.into_iter().map(NextHop::Addr).collect(),
        tls,
        dane: crate::config::DaneMode::Off,
    }
}

fn codes(replies: &[Reply]) -> Vec<u16> {
    replies.iter().map(|r| r.code).collect()
}

#[tokio::test]
async fn pipelined_transaction_reports_each_recipient() {
    let fake = fake::start(Script {
        rcpt: vec![
            ("b@b.test", "450 4.2.1 mailbox busy"),
            ("c@b.test", "550 5.1.1 no such user"),
        ],
        strict_pipelining: true,
        ..Script::default()
    })
    .await;
    let mut session = open(fake.addr, TlsPolicy::NONE).await.unwrap();
    let rcpts = ["a@b.test", "b@b.test", "c@b.test"];
    let replies = session
        .send(&outgoing(&rcpts, b"Subject: t\r\n\r\nhi\r\n"))
        .await
        .unwrap();
    assert_eq!(codes(&replies), [250, 450, 550]);
    assert_eq!(replies[1].text(), "450 4.2.1 mailbox busy");
    assert_eq!(replies[2].text(), "550 5.1.1 no such user");
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.messages.len(), 1);
    assert!(
        seen.commands
            .iter()
            .any(|c| c == "MAIL FROM:<sender@a.test> SIZE=18"),
        "{:?}",
        seen.commands
    );
}

#[tokio::test]
async fn dot_stuffing_on_the_wire() {
    let fake = fake::start(Script::default()).await;
    let mut session = open(fake.addr, TlsPolicy::NONE).await.unwrap();
    let body = b"Subject: dots\r\n\r\n.\r\n.x\r\nmid.dle\r\n..y\r\nend";
    let replies = session.send(&outgoing(&["a@b.test"], body)).await.unwrap();
    assert_eq!(codes(&replies), [250]);
    let seen = fake.seen.lock().unwrap();
    assert_eq!(
        seen.messages[0],
        b"Subject: dots\r\n\r\n..\r\n..x\r\nmid.dle\r\n...y\r\nend\r\n"
    );
}

#[tokio::test]
async fn a_5xx_to_data_fails_every_recipient() {
    let fake = fake::start(Script {
        final_reply: "554 5.6.0 content rejected",
        ..Script::default()
    })
    .await;
    let mut session = open(fake.addr, TlsPolicy::NONE).await.unwrap();
    let rcpts = ["a@b.test", "b@b.test"];
    let replies = session.send(&outgoing(&rcpts, b"x\r\n")).await.unwrap();
    assert_eq!(codes(&replies), [554, 554]);
    assert_eq!(replies[0].text(), "554 5.6.0 content rejected");
}

#[tokio::test]
async fn without_pipelining_commands_go_one_by_one() {
    let fake = fake::start(Script {
        extensions: vec!["8BITMIME"],
        rcpt: vec![("b@b.test", "550 5.1.1 no")],
        ..Script::default()
    })
    .await;
    let mut session = open(fake.addr, TlsPolicy::NONE).await.unwrap();
    let mut msg = outgoing(&["a@b.test", "b@b.test"], b"\xc3\xa9t\xc3\xa9\r\n");
    msg.eight_bit = true;
    let replies = session.send(&msg).await.unwrap();
    assert_eq!(codes(&replies), [250, 550]);
    let seen = fake.seen.lock().unwrap();
    assert!(
        seen.commands
            .contains(&"MAIL FROM:<sender@a.test> BODY=8BITMIME".to_string())
    );
}

#[tokio::test]
async fn smtputf8_mail_fails_with_5_6_7_when_the_peer_lacks_it() {
    let fake = fake::start(Script::default()).await;
    let mut session = open(fake.addr, TlsPolicy::NONE).await.unwrap();
    let mut msg = outgoing(&["jos\u{e9}@b.test"], b"x\r\n");
    msg.smtputf8 = true;
    let replies = session.send(&msg).await.unwrap();
    assert_eq!(replies[0].code, 554);
    assert!(replies[0].text().contains("5.6.7"));
    assert!(fake.seen.lock().unwrap().messages.is_empty());
}

#[tokio::test]
async fn failover_from_a_refused_port_to_the_next_hop() {
    let fake = fake::start(Script::default()).await;
    let dest = destination(vec![refused_addr().await, fake.addr], TlsPolicy::NONE);
    let session = walker().open(&dest).await.unwrap();
    assert_eq!(session.peer(), fake.addr);
}

#[tokio::test]
async fn a_4xx_greeting_moves_to_the_next_hop() {
    let busy = fake::start(Script {
        greeting: "421 4.3.2 too busy",
        ..Script::default()
    })
    .await;
    let fake = fake::start(Script::default()).await;
    let dest = destination(vec![busy.addr, fake.addr], TlsPolicy::NONE);
    let session = walker().open(&dest).await.unwrap();
    assert_eq!(session.peer(), fake.addr);
    assert_eq!(busy.seen.lock().unwrap().accepts, 1);
}

#[tokio::test]
async fn required_tls_without_starttls_is_a_temporary_failure() {
    let fake = fake::start(Script::default()).await;
    let dest = destination(vec![fake.addr], TlsPolicy::REQUIRED);
    let err = walker().open(&dest).await.err().unwrap();
    assert!(!err.permanent);
    assert_eq!(err.reply.code / 100, 4);
    assert!(err.reply.text().contains("4.7.4"), "{}", err.reply);
    assert!(fake.seen.lock().unwrap().messages.is_empty());
}

#[tokio::test]
async fn opportunistic_tls_negotiates_tls13() {
    let fake = fake::start(Script {
        tls: Some(fake::tls_config()),
        ..Script::default()
    })
    .await;
    let mut session = open(fake.addr, TlsPolicy::OPPORTUNISTIC).await.unwrap();
    assert!(
        session.tls().unwrap_or("").starts_with("TLSv1.3 "),
        "{:?}",
        session.tls()
    );
    let replies = session
        .send(&outgoing(&["a@b.test"], b"secret\r\n"))
        .await
        .unwrap();
    assert_eq!(codes(&replies), [250]);
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.tls, ["Some(TLSv1_3)"]);
    let ehlos = seen
        .commands
        .iter()
        .filter(|c| c.starts_with("EHLO"))
        .count();
    assert_eq!(ehlos, 2, "EHLO again after STARTTLS: {:?}", seen.commands);
}

#[tokio::test]
async fn a_failed_handshake_moves_to_the_next_hop_never_to_plaintext() {
    let broken = fake::start(Script {
        broken_tls: true,
        ..Script::default()
    })
    .await;
    let fake = fake::start(Script::default()).await;
    let dest = destination(vec![broken.addr, fake.addr], TlsPolicy::OPPORTUNISTIC);
    let session = walker().open(&dest).await.unwrap();
    assert_eq!(session.peer(), fake.addr);
    let seen = broken.seen.lock().unwrap();
    assert_eq!(seen.commands.last().map(String::as_str), Some("STARTTLS"));
}

#[tokio::test]
async fn tls_policy_none_never_starts_tls() {
    let fake = fake::start(Script {
        tls: Some(fake::tls_config()),
        ..Script::default()
    })
    .await;
    let session = open(fake.addr, TlsPolicy::NONE).await.unwrap();
    assert_eq!(session.tls(), None);
    assert!(
        !fake
            .seen
            .lock()
            .unwrap()
            .commands
            .iter()
            .any(|c| c == "STARTTLS")
    );
}

fn envelope(id: u64, rcpts: &[&str]) -> Envelope {
    let recipients = rcpts.iter().map(|a| Recipient::pending(*a)).collect();
    Envelope {
        id: QueueId(id),
        ..Envelope::new("sender@a.test", recipients, 0)
    }
}

fn ctx(per_hop: usize) -> (Arc<Ctx>, mpsc::UnboundedReceiver<Event>) {
    let (reports, rx) = mpsc::unbounded_channel();
    let ctx = Ctx {
        walker: walker(),
        queue: None,
        max_messages_per_connection: 10,
        max_connections_per_next_hop: per_hop,
        idle_timeout: Duration::from_secs(1),
        permits: Arc::new(Semaphore::new(8)),
        budget: super::Budget::new(64 << 20),
        reports,
        published: Default::default(),
        shutdown: CancellationToken::new(),
        grace: Duration::from_secs(1),
        tracker: TaskTracker::new(),
    };
    (Arc::new(ctx), rx)
}

fn job(id: u64, body: &[u8]) -> Job {
    let msg = Message::with_body(envelope(id, &["a@b.test"]), body.to_vec());
    Job {
        msg: Arc::new(msg),
        rcpts: vec![0],
    }
}

async fn next_report(rx: &mut mpsc::UnboundedReceiver<Event>) -> Report {
    let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    match event {
        Event::Report(report) => report,
        Event::Applied(_) | Event::Checked(..) | Event::Loaded(_) => panic!("unexpected event"),
    }
}

#[tokio::test]
async fn connection_reuse_carries_two_messages_on_one_connection() {
    let fake = fake::start(Script::default()).await;
    let (ctx, mut rx) = ctx(1);
    let dq = DestQueue::new(Arc::new(destination(vec![fake.addr], TlsPolicy::NONE)));
    dq.push(job(1, b"one\r\n"), &ctx);
    dq.push(job(2, b"two\r\n"), &ctx);
    for _ in 0..2 {
        let report = next_report(&mut rx).await;
        assert_eq!(report.kind, ReportKind::Attempted { reached: true });
        assert_eq!(report.outcomes[0].reply.code, 250);
    }
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.accepts, 1);
    assert_eq!(seen.messages, [b"one\r\n".to_vec(), b"two\r\n".to_vec()]);
    assert!(seen.commands.iter().any(|c| c == "RSET"));
}

#[tokio::test]
async fn a_cached_connection_closed_by_the_peer_is_replaced_at_once() {
    let fake = fake::start(Script {
        close_after: Some(1),
        ..Script::default()
    })
    .await;
    let (ctx, mut rx) = ctx(1);
    let dq = DestQueue::new(Arc::new(destination(vec![fake.addr], TlsPolicy::NONE)));
    dq.push(job(1, b"one\r\n"), &ctx);
    dq.push(job(2, b"two\r\n"), &ctx);
    for _ in 0..2 {
        let report = next_report(&mut rx).await;
        assert_eq!(report.outcomes[0].reply.code, 250, "{:?}", report.outcomes);
    }
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.accepts, 2);
    assert_eq!(seen.messages.len(), 2);
}

#[tokio::test]
async fn an_unreachable_destination_defers_queued_jobs_without_reconnecting() {
    let (ctx, mut rx) = ctx(1);
    let dq = DestQueue::new(Arc::new(destination(
        vec![refused_addr().await],
        TlsPolicy::NONE,
    )));
    for id in 1..=3 {
        dq.push(job(id, b"x\r\n"), &ctx);
    }
    for _ in 0..3 {
        let report = next_report(&mut rx).await;
        assert_eq!(report.kind, ReportKind::Unreachable { permanent: false });
        assert!(
            report.outcomes[0].reply.text().contains("4.4.1"),
            "{}",
            report.outcomes[0].reply
        );
    }
}

#[test]
fn the_hold_period_honours_retry_intervals_beyond_five_minutes() {
    let config = |retry: &str| {
        let text = format!(
            "hostname = \"gw.test\"\ndata_dir = \"/nonexistent\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\n\
             [[domain]]\nname = \"b.test\"\nnext_hops = [\"127.0.0.1:25\"]\n\
             [queue]\nretry_intervals = [\"{retry}\", \"2h\"]\n"
        );
        Config::parse(&text).expect("config")
    };
    assert_eq!(hold_period(&config("1h")), Duration::from_secs(3600));
    assert_eq!(hold_period(&config("30s")), Duration::from_secs(30));
}
