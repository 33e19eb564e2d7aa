//! The admin HTTP listener: `GET /metrics` (Prometheus text format), `GET /healthz`, and
//! our MTA-STS policy at `GET /.well-known/mta-sts.txt` when `[mta_sts.publish]` sets one
//! (for a TLS reverse proxy at `mta-sts.DOMAIN`: docs/transport-security.md).
//!
//! It runs on its own thread with its own single-threaded runtime, so it answers while the
//! SMTP side has every worker busy. It speaks just enough HTTP/1.1 for scrapers and load
//! balancers: one request per connection, GET only (405 otherwise), unknown paths 404, the
//! request head capped at [`MAX_HEAD`] bytes and `admin.head_timeout` in total, writes
//! bounded by [`IO_TIMEOUT`], at most `admin.max_clients` at once; slow clients cannot
//! starve `/healthz` (`slots.rs`). It must not change any state.

use super::scrape::View;
use super::slots::Slots;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const MAX_HEAD: usize = 8 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The running listener; [`Running::stop`] ends it and joins its thread.
pub struct Running {
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts serving `listener` (already bound, so a busy port fails before anything runs).
pub fn start(listener: std::net::TcpListener, view: View) -> std::io::Result<Running> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stop = CancellationToken::new();
    let token = stop.clone();
    let thread = std::thread::Builder::new()
        .name("admin-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener, view, token).await,
                    Err(e) => log::error!("admin listener: {e}"),
                }
            })
        })?;
    Ok(Running {
        stop,
        thread: Some(thread),
    })
}

impl Running {
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

async fn serve(listener: TcpListener, view: View, stop: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        log::info!("admin HTTP listening on {addr} (/metrics, /healthz)");
    }
    let slots = Slots::new(view.config.admin.max_clients);
    let head_timeout = view.config.admin.head_timeout.0;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some(slot) = slots.take().await else {
            continue; // dropped: closes the connection
        };
        let view = view.clone();
        tokio::spawn(async move {
            let head = tokio::select! {
                _ = slot.evicted.cancelled() => return,
                head = tokio::time::timeout(head_timeout, read_head(&mut stream)) => {
                    head.unwrap_or(Err(408))
                }
            };
            slot.answering();
            let _ = tokio::time::timeout(4 * IO_TIMEOUT, answer(stream, head, &view)).await;
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    head: Result<String, u16>,
    view: &View,
) -> std::io::Result<()> {
    let (status, content_type, body) = match head {
        Ok(head) => route(&head, view).await,
        Err(status) => (status, "text/plain", format!("{}\n", reason(status))),
    };
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    tokio::time::timeout(IO_TIMEOUT, stream.write_all(out.as_bytes())).await??;
    let _ = tokio::time::timeout(IO_TIMEOUT, stream.shutdown()).await;
    Ok(())
}

/// The request line and headers, up to the blank line. Errors are HTTP status codes; the
/// caller bounds the time.
async fn read_head(stream: &mut TcpStream) -> Result<String, u16> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > MAX_HEAD {
            return Err(431);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(400),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8(head).map_err(|_| 400)
}

async fn route(head: &str, view: &View) -> (u16, &'static str, String) {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        return (400, "text/plain", "bad request line\n".into());
    };
    if !version.starts_with("HTTP/1.") {
        return (400, "text/plain", "HTTP/1.x only\n".into());
    }
    let path = target.split('?').next().unwrap_or_default();
    if path == "/.well-known/mta-sts.txt" && method == "GET" {
        return match &view.config.mta_sts.publish {
            Some(policy) => (200, "text/plain", policy.text()),
            None => (404, "text/plain", "no [mta_sts.publish] policy\n".into()),
        };
    }
    if !matches!(path, "/metrics" | "/healthz") {
        return (
            404,
            "text/plain",
            "not found; try /metrics or /healthz\n".into(),
        );
    }
    if method != "GET" {
        return (405, "text/plain", "GET only\n".into());
    }
    if path == "/healthz" {
        return match view.health().await {
            Ok(()) => (200, "text/plain", "ok\n".into()),
            Err(why) => (503, "text/plain", format!("unavailable: {why}\n")),
        };
    }
    let scrape = view.scrape().await;
    (
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        view.metrics.render(&scrape),
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::queue::Queue;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(request).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// A listener on a free loopback port with `admin` settings; the view and the queue
    /// to close at the end.
    async fn listener(
        admin: &str,
    ) -> (
        std::net::SocketAddr,
        Running,
        View,
        Queue,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "hostname = \"gw.test\"\ndata_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n[admin]\n{admin}\n",
            dir.path().display()
        );
        let config = Arc::new(Config::parse(&text).unwrap());
        let (queue, _) = Queue::open(&config.queue_path(), &config.queue).unwrap();
        let view = View {
            config,
            queue: queue.clone(),
            connections: Arc::new(|| 0usize) as crate::observe::scrape::Counter,
            shutdown: CancellationToken::new(),
            metrics: crate::observe::metrics::Metrics::new(),
            probe_waiting: Arc::new(Vec::new) as crate::observe::scrape::Waiting,
            depths: crate::observe::scrape::depths(|| async { None }),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let running = start(listener, view.clone()).unwrap();
        (addr, running, view, queue, dir)
    }

    #[tokio::test]
    async fn slow_clients_cannot_starve_healthz() {
        let (addr, running, _view, queue, _dir) = listener("").await;
        // More clients than the old 16 slots and than the 64 slots now: each sends half a
        // request head and then nothing.
        let mut slow = Vec::new();
        for _ in 0..80 {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\n")
                .await
                .unwrap();
            slow.push(stream);
        }
        let ok = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n"),
        )
        .await
        .expect("no answer");
        assert!(ok.starts_with("HTTP/1.1 200 "), "{ok:?}");
        // A client that trickles its head is answered 408 once the total head time is up,
        // however often it sends a byte.
        let mut trickler = TcpStream::connect(addr).await.unwrap();
        trickler
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let mut buf = [0u8; 256];
        while started.elapsed() < std::time::Duration::from_secs(30) {
            tokio::select! {
                read = trickler.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                },
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                    let _ = trickler.write_all(b"X").await;
                }
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
        drop(slow);
        running.stop().await;
        queue.close().await;
    }

    #[tokio::test]
    async fn requests_are_bounded_and_only_get_is_served() {
        let (addr, running, view, queue, _dir) = listener("").await;
        let huge = format!(
            "GET /metrics HTTP/1.1\r\nX-Fill: {}\r\n\r\n",
            "a".repeat(20_000)
        );
        assert!(
            exchange(addr, huge.as_bytes())
                .await
                .starts_with("HTTP/1.1 431 ")
        );
        assert!(
            exchange(addr, b"nonsense\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 400 ")
        );
        let head = exchange(addr, b"HEAD /healthz HTTP/1.1\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 405 ") && head.contains("Allow: GET"));
        let ok = exchange(addr, b"GET /healthz HTTP/1.0\r\n\r\n").await;
        assert!(
            ok.starts_with("HTTP/1.1 200 ") && ok.ends_with("\r\n\r\nok\n"),
            "{ok}"
        );
        let metrics = exchange(addr, b"GET /metrics?x=1 HTTP/1.1\r\n\r\n").await;
        assert!(metrics.contains("\r\n\r\n# HELP edgemx_up"), "{metrics}");
        view.shutdown.cancel();
        let down = exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(down.starts_with("HTTP/1.1 503 ") && down.contains("shutting down"));
        running.stop().await;
        queue.close().await;
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "stopped means closed"
        );
    }
}
