//! rspamd's HTTP protocol: `POST /checkv2` with the envelope in request headers and the
//! message as the body; the verdict comes back as JSON. Connections are kept alive and
//! pooled; a kept connection the server closed meanwhile is retried once on a new one.

use super::ScanError;
use super::conn::{Lease, Pool};
use serde::Deserialize;
use std::collections::BTreeMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response head larger than this is garbage, not rspamd.
const MAX_HEAD: usize = 16 * 1024;
/// A verdict larger than this is garbage too (rspamd's are a few KiB).
const MAX_BODY: usize = 1 << 20;

/// What rspamd is told about the message besides its bytes.
#[derive(Debug, Default)]
pub struct Envelope<'a> {
    pub queue_id: String,
    pub from: &'a str,
    pub rcpts: Vec<&'a str>,
    pub ip: String,
    pub helo: &'a str,
    /// The client's verified reverse name; `None` while the gateway resolves no PTRs.
    /// Not the HELO name: rspamd takes `Hostname` as verified and a client would choose it.
    pub hostname: Option<&'a str>,
    pub user: Option<&'a str>,
}

/// The parts of rspamd's reply we act on.
#[derive(Debug, Clone, Deserialize)]
pub struct Verdict {
    pub action: String,
    #[serde(default)]
    pub score: f64,
    #[serde(default)]
    pub required_score: f64,
    #[serde(default)]
    pub symbols: BTreeMap<String, Symbol>,
    #[serde(default)]
    pub messages: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub milter: Option<Milter>,
    /// The new subject, with `rewrite subject`.
    #[serde(default)]
    pub subject: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Symbol {
    #[serde(default)]
    pub score: f64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Milter {
    /// Name → a value, or `{ "value": …, "order": … }`, or a list of either.
    #[serde(default)]
    pub add_headers: BTreeMap<String, serde_json::Value>,
    /// Name → which occurrence (0: all); we remove all.
    #[serde(default)]
    pub remove_headers: BTreeMap<String, serde_json::Value>,
}

impl Verdict {
    /// rspamd's text for the SMTP reply, if it gave one.
    pub fn smtp_message(&self) -> Option<&str> {
        self.messages.get("smtp_message").and_then(|v| v.as_str())
    }

    /// The headers rspamd asks to add, in its order.
    pub fn added_headers(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(milter) = &self.milter else {
            return out;
        };
        for (name, value) in &milter.add_headers {
            let values = match value {
                serde_json::Value::Array(list) => list.iter().collect(),
                one => vec![one],
            };
            for v in values {
                let text = match v {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Object(o) => {
                        o.get("value").and_then(|v| v.as_str()).map(str::to_string)
                    }
                    _ => None,
                };
                if let Some(text) = text {
                    out.push((name.clone(), text));
                }
            }
        }
        out
    }

    pub fn removed_headers(&self) -> Vec<String> {
        self.milter
            .as_ref()
            .map(|m| m.remove_headers.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// `action=… score=… required=… symbols=A(1.00), B(2.00)`, for the header and the log.
    pub fn summary(&self) -> String {
        let mut symbols: Vec<String> = self
            .symbols
            .iter()
            .map(|(name, s)| format!("{name}({:.2})", s.score))
            .collect();
        symbols.truncate(50);
        format!(
            "action=\"{}\" score={:.2} required={:.2} symbols={}",
            self.action,
            self.score,
            self.required_score,
            symbols.join(",")
        )
    }
}

/// Asks rspamd for its verdict on `message`.
pub async fn check(
    pool: &Pool,
    envelope: &Envelope<'_>,
    message: &[u8],
) -> Result<Verdict, ScanError> {
    let head = request_head(pool, envelope, message.len());
    let mut lease = pool.take(false).await.map_err(ScanError::Connect)?;
    let mut attempt = exchange(&mut lease, &head, message).await;
    if lease.reused && matches!(attempt, Err(Failed::Stale)) {
        lease = pool.take(true).await.map_err(ScanError::Connect)?;
        attempt = exchange(&mut lease, &head, message).await;
    }
    let (body, keep) = match attempt {
        Ok(done) => done,
        Err(Failed::Stale) => return Err(ScanError::Closed),
        Err(Failed::Error(e)) => return Err(e),
    };
    let verdict: Verdict = serde_json::from_slice(&body)
        .map_err(|e| ScanError::Protocol(format!("rspamd's verdict is not JSON: {e}")))?;
    if keep {
        pool.give_back(lease);
    }
    Ok(verdict)
}

enum Failed {
    /// The connection ended before any byte of a reply: a kept connection gone stale.
    Stale,
    Error(ScanError),
}

impl From<ScanError> for Failed {
    fn from(e: ScanError) -> Failed {
        Failed::Error(e)
    }
}

fn request_head(pool: &Pool, envelope: &Envelope<'_>, length: usize) -> Vec<u8> {
    // Header values come from the peer (HELO, addresses): no control characters pass.
    let clean = |v: &str| -> String { v.chars().filter(|c| !c.is_control()).collect() };
    let mut head = format!(
        "POST /checkv2 HTTP/1.1\r\nHost: {}\r\nContent-Length: {length}\r\n\
         Connection: keep-alive\r\nQueue-Id: {}\r\nIp: {}\r\nFrom: {}\r\n",
        pool.at,
        clean(&envelope.queue_id),
        clean(&envelope.ip),
        clean(envelope.from),
    );
    for rcpt in &envelope.rcpts {
        head.push_str(&format!("Rcpt: {}\r\n", clean(rcpt)));
    }
    if !envelope.helo.is_empty() {
        head.push_str(&format!("Helo: {}\r\n", clean(envelope.helo)));
    }
    if let Some(hostname) = envelope.hostname {
        head.push_str(&format!("Hostname: {}\r\n", clean(hostname)));
    }
    if let Some(user) = envelope.user {
        head.push_str(&format!("User: {}\r\n", clean(user)));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// One request and its response: the body, and whether the connection may be kept.
async fn exchange(
    lease: &mut Lease,
    head: &[u8],
    message: &[u8],
) -> Result<(Vec<u8>, bool), Failed> {
    let stream = &mut lease.stream;
    let sent = async {
        stream.write_all(head).await?;
        stream.write_all(message).await?;
        stream.flush().await
    }
    .await;
    if let Err(e) = sent {
        return Err(if lease.reused {
            Failed::Stale
        } else {
            ScanError::Io(e).into()
        });
    }
    let mut buf = Vec::with_capacity(4096);
    let end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD {
            return Err(ScanError::Protocol("response head too long".into()).into());
        }
        // Nothing at all from a kept connection (EOF or a reset): it went stale.
        let stale = buf.is_empty() && lease.reused;
        match read_more(stream, &mut buf).await {
            Ok(0) | Err(_) if stale => return Err(Failed::Stale),
            Ok(0) => return Err(ScanError::Closed.into()),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| ScanError::Protocol(format!("not an HTTP response: {status:.80}")))?;
    let (mut length, mut keep) = (None, status.starts_with("HTTP/1.1"));
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "connection" if value.eq_ignore_ascii_case("close") => keep = false,
            "transfer-encoding" => {
                return Err(
                    ScanError::Protocol(format!("unsupported transfer-encoding {value}")).into(),
                );
            }
            _ => {}
        }
    }
    let length =
        length.ok_or_else(|| ScanError::Protocol("response without Content-Length".into()))?;
    if length > MAX_BODY {
        return Err(ScanError::Protocol(format!("response of {length} bytes")).into());
    }
    let mut body = buf.split_off(end + 4);
    while body.len() < length {
        if read_more(stream, &mut body).await? == 0 {
            return Err(ScanError::Closed.into());
        }
    }
    if body.len() > length {
        return Err(ScanError::Protocol("bytes after the response".into()).into());
    }
    if code != 200 {
        let text = String::from_utf8_lossy(&body);
        return Err(ScanError::Protocol(format!("rspamd answered {code}: {text:.200}")).into());
    }
    Ok((body, keep))
}

async fn read_more(stream: &mut super::conn::Stream, buf: &mut Vec<u8>) -> Result<usize, Failed> {
    let mut chunk = [0u8; 8192];
    let n = stream
        .read(&mut chunk)
        .await
        .map_err(|e| Failed::Error(ScanError::Io(e)))?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::scan::Endpoint;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncWriteExt;

    /// An HTTP peer that answers `per_connection` requests on each connection and then
    /// closes it without saying so (as a keep-alive timeout does); counts connections.
    async fn server(per_connection: usize) -> (Endpoint, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    for _ in 0..per_connection {
                        let mut buf = Vec::new();
                        let end = loop {
                            if let Some(at) = find(&buf, b"\r\n\r\n") {
                                break at;
                            }
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let length: usize = head
                            .split("content-length: ")
                            .nth(1)
                            .and_then(|r| r.split("\r\n").next())
                            .and_then(|n| n.parse().ok())
                            .unwrap();
                        while buf.len() < end + 4 + length {
                            let mut chunk = [0u8; 4096];
                            let n = stream.read(&mut chunk).await.unwrap();
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        let body = r#"{"action":"no action","score":0.5}"#;
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        stream.write_all(reply.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        let at = Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        (at, accepted)
    }

    #[test]
    fn the_envelope_travels_in_request_headers_without_control_characters() {
        let pool = Pool::new(
            Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 11333,
            },
            1,
        );
        let envelope = Envelope {
            queue_id: "0000000000000007".into(),
            from: "a@b.test",
            rcpts: vec!["c@d.test", "e@f.test"],
            ip: "192.0.2.1".into(),
            helo: "client\r\nX-Injected: 1",
            hostname: None,
            user: Some("alice"),
        };
        let head = String::from_utf8(request_head(&pool, &envelope, 42)).unwrap();
        for line in [
            "POST /checkv2 HTTP/1.1\r\n",
            "Content-Length: 42\r\n",
            "Connection: keep-alive\r\n",
            "Queue-Id: 0000000000000007\r\n",
            "Ip: 192.0.2.1\r\n",
            "From: a@b.test\r\n",
            "Rcpt: c@d.test\r\nRcpt: e@f.test\r\n",
            "Helo: clientX-Injected: 1\r\n",
            "User: alice\r\n\r\n",
        ] {
            assert!(head.contains(line), "{line:?} in {head}");
        }
        assert!(!head.contains("Hostname"));
    }

    #[tokio::test]
    async fn connections_are_reused_and_a_stale_one_is_retried_once_on_a_new_one() {
        let (at, accepted) = server(2).await;
        let pool = Pool::new(at, 4);
        let envelope = Envelope {
            queue_id: "1".into(),
            from: "a@b.test",
            rcpts: vec!["c@d.test"],
            ..Envelope::default()
        };
        for n in 1..=3 {
            let verdict = check(&pool, &envelope, b"Subject: x\r\n\r\nbody\r\n").await;
            assert_eq!(verdict.unwrap().action, "no action", "request {n}");
        }
        // Two on the first connection; the third found it closed and took a second one.
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_verdict_gives_its_headers_message_and_summary() {
        let text = r#"{"is_skipped":false,"score":7.0,"required_score":15.0,"action":"add header",
            "symbols":{"EDGEMX_SUSPECT":{"name":"EDGEMX_SUSPECT","score":7.0}},
            "messages":{"smtp_message":"no thanks"},
            "milter":{"remove_headers":{"X-Remove-Me":0},
                      "add_headers":{"X-A":"one","X-B":{"value":"two","order":0}}}}"#;
        let v: Verdict = serde_json::from_str(text).unwrap();
        assert_eq!(v.smtp_message(), Some("no thanks"));
        assert_eq!(
            v.added_headers(),
            [("X-A".into(), "one".into()), ("X-B".into(), "two".into())]
        );
        assert_eq!(v.removed_headers(), ["X-Remove-Me"]);
        assert_eq!(
            v.summary(),
            "action=\"add header\" score=7.00 required=15.00 symbols=EDGEMX_SUSPECT(7.00)"
        );
    }
}
