//! Talking to the gateway's admin HTTP listener: a raw HTTP/1.1 GET (or any method) and a
//! reader for single samples of the Prometheus text format.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `METHOD path` and returns the status code and the body.
pub async fn http(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("admin listener did not answer"))??;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {head}")))?;
    Ok((status, body.to_owned()))
}

/// `GET /metrics`, panicking unless it answers 200.
pub async fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http(addr, "GET", "/metrics").await.expect("scrape");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample `name{labels}` (labels exactly as rendered, `""` for none).
pub fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let key = format!("{name}{labels} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
}

/// The sum of every sample of `name` whose label set contains all of `parts`.
pub fn sum(text: &str, name: &str, parts: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}
