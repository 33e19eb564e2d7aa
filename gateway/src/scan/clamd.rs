//! clamd's `INSTREAM`: `zINSTREAM\0`, the message in chunks each preceded by its length
//! (4 bytes, big-endian), a zero length to end, then one reply: `stream: OK`,
//! `stream: NAME FOUND` or `… ERROR` (e.g. clamd's `StreamMaxLength` exceeded). One
//! connection per scan (clamd closes it after the reply), at most `max_connections` at once.

use super::ScanError;
use super::conn::Pool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes sent per chunk.
const CHUNK: usize = 64 * 1024;
/// A longer reply is not clamd's.
const MAX_REPLY: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// The signature's name.
    Infected(String),
}

pub async fn check(pool: &Pool, message: &[u8]) -> Result<Verdict, ScanError> {
    let mut lease = pool.take(true).await.map_err(ScanError::Connect)?;
    let stream = &mut lease.stream;
    let sent = async {
        stream.write_all(b"zINSTREAM\0").await?;
        for chunk in message.chunks(CHUNK) {
            stream
                .write_all(&(chunk.len() as u32).to_be_bytes())
                .await?;
            stream.write_all(chunk).await?;
        }
        stream.write_all(&0u32.to_be_bytes()).await?;
        stream.flush().await
    }
    .await;
    // clamd answers and closes early when the stream is over its limit: read what it said
    // before reporting a failed write.
    let mut reply = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&chunk[..n]);
                if reply.contains(&0) || reply.len() > MAX_REPLY {
                    break;
                }
            }
            Err(e) if reply.is_empty() => {
                return Err(match sent {
                    Err(first) => ScanError::Io(first),
                    Ok(()) => ScanError::Io(e),
                });
            }
            Err(_) => break,
        }
    }
    if reply.is_empty() {
        return Err(match sent {
            Err(e) => ScanError::Io(e),
            Ok(()) => ScanError::Closed,
        });
    }
    parse(&reply)
}

pub fn parse(reply: &[u8]) -> Result<Verdict, ScanError> {
    let end = reply.iter().position(|&b| b == 0).unwrap_or(reply.len());
    let text = String::from_utf8_lossy(&reply[..end]);
    let text = text.trim_end_matches(['\n', '\r']);
    let garbled = || ScanError::Protocol(format!("clamd said: {text:.200}"));
    let rest = text.strip_prefix("stream: ").ok_or_else(garbled)?;
    if rest == "OK" {
        return Ok(Verdict::Clean);
    }
    match rest.strip_suffix(" FOUND") {
        Some(name) if !name.is_empty() => Ok(Verdict::Infected(name.to_string())),
        _ => Err(garbled()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_and_errors_are_errors() {
        assert_eq!(parse(b"stream: OK\0").unwrap(), Verdict::Clean);
        assert_eq!(
            parse(b"stream: Eicar-Signature FOUND\0").unwrap(),
            Verdict::Infected("Eicar-Signature".into())
        );
        for bad in [
            &b"INSTREAM size limit exceeded. ERROR\0"[..],
            b"stream: lstat() failed. ERROR\0",
            b"HTTP/1.1 200 OK\r\n",
            b"stream:  FOUND",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
