//! The session state machine over an in-memory pipe (`tokio::io::duplex`): the whole
//! gateway context (queue, routes, delivery) is real, the client is these tests, and no
//! socket is opened, so each dialogue runs in milliseconds.

use super::io::Conn;
use super::session::Session;
use super::{Context, Parts};
use crate::config::{Config, Role};
use crate::observe::events::Events;
use crate::queue::Queue;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio_util::sync::CancellationToken;

struct Bench {
    ctx: Arc<Context>,
    queue: Queue,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

/// A gateway context relaying `example.com` to a next hop that is never reached (delivery
/// holds the mail), for a client on 192.0.2.1 (not a relay network).
async fn bench(extra: &str) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "hostname = \"gw.test\"\ndata_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n\
         [[domain]]\nname = \"example.com\"\nnext_hops = [\"127.0.0.1:9\"]\n\
         [auth]\nverify = false\n{extra}",
        dir.path().display()
    );
    let config = Arc::new(Config::parse(&text).expect("config"));
    let (queue, resumed) = Queue::open(&config.queue_path(), &config.queue).expect("queue");
    let shutdown = CancellationToken::new();
    let events = Events::new();
    let recipients = crate::policy::Recipients::start(&config, &events, &shutdown).unwrap();
    let inflight = Context::budget(&config);
    let budget = crate::delivery::Budget::shared(inflight.clone(), config.limits.inflight_bytes.0);
    let deliveries = crate::delivery::start(
        config.clone(),
        queue.clone(),
        crate::delivery::Backlog::of(&config, resumed),
        budget,
        &events,
        shutdown.child_token(),
    );
    let mail_auth = crate::policy::auth::MailAuth::load(&config).unwrap();
    let ctx = Context::new(
        config,
        Parts {
            queue: queue.clone(),
            recipients,
            tls: None,
            shutdown: shutdown.clone(),
            mail_auth,
            inflight,
            deliveries,
            scanner: crate::scan::Scanner::new(&Default::default(), &events),
            events,
        },
    );
    Bench {
        ctx,
        queue,
        shutdown,
        _dir: dir,
    }
}

/// The client's end of one session.
struct Client {
    read: BufReader<tokio::io::ReadHalf<DuplexStream>>,
    write: tokio::io::WriteHalf<DuplexStream>,
}

impl Client {
    async fn open(bench: &Bench) -> Client {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let peer: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let permit = bench.ctx.limiter.admit(peer.ip()).expect("admitted");
        let session = Session::new(bench.ctx.clone(), Conn::new(theirs), peer, false, Role::Mx);
        tokio::spawn(session.run(permit));
        let (read, write) = tokio::io::split(ours);
        let mut client = Client {
            read: BufReader::new(read),
            write,
        };
        assert!(client.reply().await.starts_with("220 gw.test "));
        client
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.unwrap();
    }

    /// One whole reply, its lines joined by `\n`; empty when the session closed.
    async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.read.read_line(&mut line))
                .await
                .expect("a reply")
                .unwrap();
            if n == 0 {
                break;
            }
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                break;
            }
        }
        lines.join("\n")
    }

    async fn expect(&mut self, command: &str, code: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes()).await;
        let reply = self.reply().await;
        assert!(reply.starts_with(code), "{command} -> {reply}");
        reply
    }
}

#[tokio::test]
async fn a_message_is_queued_and_acknowledged_with_its_id() {
    let bench = bench("").await;
    let mut c = Client::open(&bench).await;
    let ehlo = c.expect("EHLO client.test", "250").await;
    for ext in ["PIPELINING", "8BITMIME", "CHUNKING", "SMTPUTF8", "SIZE"] {
        assert!(ehlo.contains(ext), "{ext}: {ehlo}");
    }
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    c.expect("DATA", "354").await;
    c.send(b"Subject: hi\r\n\r\n..dot\r\n.\r\n").await;
    let queued = c.reply().await;
    assert!(queued.starts_with("250 2.0.0"), "{queued}");
    let listed = bench.queue.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(queued.ends_with(&listed[0].id.to_string()), "{queued}");
    let body = bench.queue.body(listed[0].id).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.ends_with("Subject: hi\r\n\r\n.dot\r\n"),
        "unstuffed: {text}"
    );
    assert!(text.starts_with("Received: from client.test"), "{text}");
    c.expect("QUIT", "221").await;
    assert_eq!(c.reply().await, "", "closed after QUIT");
    bench.shutdown.cancel();
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let bench = bench("").await;
    let mut c = Client::open(&bench).await;
    c.expect("EHLO client.test", "250").await;
    c.send(
        b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@example.com>\r\n\
          RCPT TO:<x@elsewhere.test>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n",
    )
    .await;
    let replies = [
        c.reply().await,
        c.reply().await,
        c.reply().await,
        c.reply().await,
        c.reply().await,
    ];
    let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
    assert_eq!(codes, ["250", "250", "550", "250", "354"], "{replies:?}");
    assert!(
        replies[2].starts_with("550 5.7.1"),
        "relay refused: {}",
        replies[2]
    );
    c.send(b"Subject: two\r\n\r\nbody\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250 2.0.0"));
    let listed = bench.queue.list().await.unwrap();
    let rcpts: Vec<&str> = listed[0]
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(rcpts, ["b@example.com", "c@example.com"]);
    bench.shutdown.cancel();
}

#[tokio::test]
async fn commands_out_of_order_and_malformed_lines_get_their_replies() {
    let bench = bench("").await;
    let mut c = Client::open(&bench).await;
    c.expect("MAIL FROM:<a@sender.test>", "503 5.5.1").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("RCPT TO:<b@example.com>", "503 5.5.1").await;
    c.expect("DATA", "503 5.5.1").await;
    c.expect("FROB", "500 5.5.").await;
    // A bare LF ends nothing: the line is refused, never executed.
    c.send(b"MAIL FROM:<a@sender.test>\n").await;
    assert!(c.reply().await.starts_with("500 5.5.2"));
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("MAIL FROM:<b@sender.test>", "503 5.5.1").await;
    c.expect("RSET", "250").await;
    c.expect("RCPT TO:<b@example.com>", "503 5.5.1").await;
    let long = format!("MAIL FROM:<{}@sender.test>", "a".repeat(3000));
    c.expect(&long, "500 5.5.2").await;
    c.expect("NOOP", "250").await;
    assert!(bench.queue.list().await.unwrap().is_empty());
    bench.shutdown.cancel();
}

#[tokio::test]
async fn bdat_chunks_make_one_message() {
    let bench = bench("").await;
    let mut c = Client::open(&bench).await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<b@example.com>", "250").await;
    c.send(b"BDAT 14\r\nSubject: x\r\n\r\n").await;
    assert!(c.reply().await.starts_with("250"));
    c.send(b"BDAT 6 LAST\r\nbody\r\n").await;
    let queued = c.reply().await;
    assert!(queued.starts_with("250 2.0.0"), "{queued}");
    let listed = bench.queue.list().await.unwrap();
    let body = bench.queue.body(listed[0].id).await.unwrap().unwrap();
    assert!(body.ends_with(b"Subject: x\r\n\r\nbody\r\n"));
    bench.shutdown.cancel();
}

#[tokio::test]
async fn a_shutdown_answers_421_to_an_idle_session() {
    let bench = bench("").await;
    let mut c = Client::open(&bench).await;
    c.expect("EHLO client.test", "250").await;
    bench.shutdown.cancel();
    assert!(c.reply().await.starts_with("421 4.3.2"));
    assert_eq!(c.reply().await, "");
}

#[tokio::test]
async fn too_many_errors_end_the_session() {
    let bench = bench("[limits]\nmax_errors = 3\n").await;
    let mut c = Client::open(&bench).await;
    c.expect("FROB", "500").await;
    c.expect("FROB", "500").await;
    c.send(b"FROB\r\n").await;
    let last = c.reply().await;
    assert!(last.contains("500"), "{last}");
    let closing = if last.contains("421") {
        last
    } else {
        c.reply().await
    };
    assert!(closing.contains("421"), "{closing}");
    assert_eq!(c.reply().await, "");
    bench.shutdown.cancel();
}
