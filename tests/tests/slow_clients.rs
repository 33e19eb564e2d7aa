//! Clients that trickle bytes cannot hold a session open for ever: a command line and a
//! DATA phase have total deadlines, and timeouts shrink when the connection table is
//! nearly full (stress). Each test uses a real socket that keeps sending, and waits for the
//! gateway to close it, bounded by a generous deadline.

use edgemx_tests::{FakeBackend, Gateway};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a test waits for the gateway to give up on a client.
const LIMIT: Duration = Duration::from_secs(30);

/// Writes `first`, then one byte of `filler` every 200 ms, until the gateway closes the
/// connection; returns what it said after `first` and how long that took, or `None` if it
/// was still open after [`LIMIT`].
async fn trickle(stream: &mut TcpStream, first: &[u8], filler: u8) -> Option<(String, Duration)> {
    let started = Instant::now();
    stream.write_all(first).await.ok()?;
    let mut said = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut buf = [0u8; 512];
    while started.elapsed() < LIMIT {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    return Some((String::from_utf8_lossy(&said).into_owned(), started.elapsed()));
                }
                Ok(n) => said.extend_from_slice(&buf[..n]),
            },
            _ = tick.tick() => {
                // A write may fail once the gateway has closed; the read reports it.
                let _ = stream.write_all(&[filler]).await;
            }
        }
    }
    None
}

/// A raw connection past the banner.
async fn connect(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut banner = [0u8; 256];
    let n = stream.read(&mut banner).await.unwrap();
    assert!(banner[..n].starts_with(b"220"), "{:?}", &banner[..n]);
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_line_trickled_byte_by_byte_is_cut_at_the_command_timeout() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "[limits]\ncommand_timeout = \"2s\"\n").await;
    let mut stream = connect(gw.addr).await;
    let (said, took) = trickle(&mut stream, b"EHLO ", b'a')
        .await
        .expect("a trickling client was never disconnected");
    assert!(said.starts_with("421 4.4.2"), "{said:?}");
    println!("command line trickle cut after {took:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_trickled_below_the_minimum_rate_is_cut() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(
        backend.addr(),
        "[limits]\ndata_timeout = \"2s\"\nmin_data_rate = 100\n",
    )
    .await;
    // A raw socket, so the body can trickle.
    let mut stream = connect(gw.addr).await;
    let mut replies = Vec::new();
    stream
        .write_all(
            b"EHLO client.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n",
        )
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&replies).contains("354") {
        let n = tokio::time::timeout(LIMIT, stream.read(&mut buf))
            .await
            .expect("no 354")
            .unwrap();
        assert!(n > 0, "closed before 354");
        replies.extend_from_slice(&buf[..n]);
    }
    let (said, took) = trickle(&mut stream, b"Subject: slow\r\n\r\n", b'x')
        .await
        .expect("a trickling DATA phase was never cut");
    assert!(said.starts_with("421 4.4.2"), "{said:?}");
    println!("DATA trickle cut after {took:?}");
    assert!(backend.messages().is_empty());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_shrink_when_the_connection_table_is_nearly_full() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(
        backend.addr(),
        "[limits]\nmax_connections = 4\nmax_connections_per_ip = 4\nstress_threshold = 0.5\n\
         command_timeout = \"300s\"\nstress_timeout = \"1s\"\n",
    )
    .await;
    // One idle client alone keeps its five minutes…
    let mut first = connect(gw.addr).await;
    // …until more bring the table to half full: then it is cut after a second, although
    // it was already waiting when the stress began.
    let _second = connect(gw.addr).await;
    let _third = connect(gw.addr).await;
    let (said, took) = trickle(&mut first, b"", b'a')
        .await
        .expect("under stress an idle client was not cut");
    assert!(said.starts_with("421 4.4.2"), "{said:?}");
    println!("cut under stress after {took:?}");
    gw.stop().await;
}
