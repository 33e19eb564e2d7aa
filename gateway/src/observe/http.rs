//! The admin HTTP listener: `GET /metrics` (Prometheus text format) and `GET /healthz`.
//!
//! It runs on its own thread with its own single-threaded runtime, so it answers while the
//! SMTP side has every worker busy. It speaks just enough HTTP/1.1 for scrapers and load
//! balancers: one request per connection, GET only (405 otherwise), unknown paths 404, the
//! request head capped at [`MAX_HEAD`] bytes and [`IO_TIMEOUT`] per read and write, at most
//! [`MAX_CLIENTS`] at once (more are closed at once). It must not change any state.

use super::metrics;
use super::scrape::View;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

const MAX_HEAD: usize = 8 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CLIENTS: usize = 16;

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
    let clients = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = clients.clone().try_acquire_owned() else {
            continue; // dropped: closes the connection
        };
        let view = view.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(4 * IO_TIMEOUT, answer(stream, &view)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, view: &View) -> std::io::Result<()> {
    let (status, content_type, body) = match read_head(&mut stream).await {
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

/// The request line and headers, up to the blank line. Errors are HTTP status codes.
async fn read_head(stream: &mut TcpStream) -> Result<String, u16> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > MAX_HEAD {
            return Err(431);
        }
        match tokio::time::timeout(IO_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err(400),
            Ok(Ok(n)) => head.extend_from_slice(&chunk[..n]),
            Err(_) => return Err(408),
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
        metrics::render(&scrape),
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
    use crate::smtp::inbound::limits::Limiter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(request).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn requests_are_bounded_and_only_get_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "hostname = \"gw.test\"\ndata_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n",
            dir.path().display()
        );
        let config = Arc::new(Config::parse(&text).unwrap());
        let (queue, _) = Queue::open(&config.queue_path(), &config.queue).unwrap();
        let view = View {
            config,
            queue: queue.clone(),
            limiter: Limiter::new(10, 10),
            shutdown: CancellationToken::new(),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let running = start(listener, view.clone()).unwrap();

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
