//! Bytes on the client connection: the plain/TLS stream and SMTP reply parsing.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Longest reply line we read; RFC 5321 §4.5.3.1.5 allows 512, be generous but bounded.
const MAX_LINE: usize = 4096;
/// Most lines in one multi-line reply (EHLO lists a few dozen at most).
const MAX_LINES: usize = 128;

/// One SMTP reply. `text` keeps every line's text (without the code), joined by a space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
    /// Made up by us, not received from the peer.
    pub local: bool,
}

impl Reply {
    /// A reply we make up ourselves (connection failures, policy decisions), with an
    /// enhanced status code at the start of `text`.
    pub fn local(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
            local: true,
        }
    }

    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 5xx: the recipient fails for good. Anything else that is not 2xx is retried.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The text for envelope status and DSNs, verbatim as the peer sent it (lines joined by
    /// a space): `550 no such user here`. Nothing is added: a DSN's `Diagnostic-Code: smtp;`
    /// must carry the next hop's own words (RFC 3464 §2.3.6); the DSN derives its `Status:`
    /// from the basic code when the reply has no enhanced one.
    pub fn text(&self) -> String {
        let joined = self.lines.join(" ");
        if joined.is_empty() {
            self.code.to_string()
        } else {
            format!("{} {joined}", self.code)
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.text())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("timed out")]
    Timeout,
    #[error("connection closed by peer")]
    Closed,
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// Reads one (possibly multi-line) reply within `limit`.
pub async fn read_reply<R: AsyncBufRead + Unpin>(
    io: &mut R,
    limit: Duration,
) -> Result<Reply, WireError> {
    tokio::time::timeout(limit, read_reply_inner(io))
        .await
        .map_err(|_| WireError::Timeout)?
}

async fn read_reply_inner<R: AsyncBufRead + Unpin>(io: &mut R) -> Result<Reply, WireError> {
    let mut lines = Vec::new();
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        read_line(io, &mut line).await?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let bytes = text.as_bytes();
        if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
            return Err(WireError::Protocol(format!(
                "malformed reply line `{text}`"
            )));
        }
        let code = text[..3].parse::<u16>().unwrap_or(0);
        let (more, rest) = match bytes.get(3) {
            Some(b'-') => (true, &text[4..]),
            Some(b' ') => (false, &text[4..]),
            None => (false, ""),
            Some(_) => {
                return Err(WireError::Protocol(format!(
                    "malformed reply line `{text}`"
                )));
            }
        };
        lines.push((code, rest.to_owned()));
        if lines.len() > MAX_LINES {
            return Err(WireError::Protocol("reply has too many lines".into()));
        }
        if !more {
            break;
        }
    }
    let code = lines.last().map(|(c, _)| *c).unwrap_or(0);
    Ok(Reply {
        code,
        lines: lines.into_iter().map(|(_, t)| t).collect(),
        local: false,
    })
}

async fn read_line<R: AsyncBufRead + Unpin>(
    io: &mut R,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    loop {
        let available = io.fill_buf().await?;
        if available.is_empty() {
            return Err(WireError::Closed);
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if out.len() + take > MAX_LINE {
            return Err(WireError::Protocol("reply line too long".into()));
        }
        out.extend_from_slice(&available[..take]);
        io.consume(take);
        if done {
            return Ok(());
        }
    }
}

/// Writes `bytes` within `limit`.
pub async fn write_all<W: AsyncWrite + Unpin>(
    io: &mut W,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), WireError> {
    let write = async {
        io.write_all(bytes).await?;
        io.flush().await
    };
    tokio::time::timeout(limit, write)
        .await
        .map_err(|_| WireError::Timeout)?
        .map_err(WireError::Io)
}

/// The connection before or after STARTTLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Reply, WireError> {
        let mut reader = tokio::io::BufReader::new(bytes);
        read_reply(&mut reader, Duration::from_secs(1)).await
    }

    #[tokio::test]
    async fn multi_line_replies_keep_every_line() {
        let reply = parse(b"250-mx.test hello\r\n250-PIPELINING\r\n250 SIZE 1000\r\n")
            .await
            .unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines, ["mx.test hello", "PIPELINING", "SIZE 1000"]);
    }

    #[tokio::test]
    async fn reply_text_is_the_peers_reply_verbatim() {
        let with = parse(b"550 5.1.1 no such user\r\n").await.unwrap();
        assert_eq!(with.text(), "550 5.1.1 no such user");
        let without = parse(b"550 no such user here\r\n").await.unwrap();
        assert_eq!(without.text(), "550 no such user here");
    }

    #[tokio::test]
    async fn garbage_and_eof_are_errors() {
        assert!(matches!(
            parse(b"hello\r\n").await,
            Err(WireError::Protocol(_))
        ));
        assert!(matches!(
            parse(b"250-partial\r\n").await,
            Err(WireError::Closed)
        ));
        let long = [b'2'; MAX_LINE + 10];
        assert!(matches!(parse(&long).await, Err(WireError::Protocol(_))));
    }
}
