//! The session's connection: plain or TLS stream, a bounded read buffer split into
//! CRLF lines, and a reply buffer flushed only when the client waits for us (pipelining).
//!
//! The byte stream is anything that reads and writes ([`Io`]): a TCP socket in service, an
//! in-memory `tokio::io::duplex` pipe in the session tests.

use crate::smtp::proto::Reply;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::server::TlsStream;

/// The transport under a session.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// How much is read from the socket at once; together with the longest command line this
/// bounds the read buffer of a session.
pub const READ_CHUNK: usize = 16 * 1024;

pub enum Stream {
    Plain(Box<dyn Io>),
    Tls(Box<TlsStream<Box<dyn Io>>>),
    /// Only while the handshake owns the socket.
    Taken,
}

/// One line taken from the buffer.
pub enum Line {
    /// A command line without its CRLF.
    Complete(Vec<u8>),
    /// A line ended by a bare LF: refused, never executed.
    BareLf,
    /// More than the allowed length arrived without a line end; the excess is discarded
    /// up to the next LF.
    TooLong,
}

pub enum ReadEnd {
    Closed,
    Timeout,
    Failed(io::Error),
}

pub struct Conn {
    pub stream: Stream,
    buf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    /// Set after a too-long line until its end has been skipped.
    skipping: bool,
}

impl Conn {
    pub fn new(stream: impl Io + 'static) -> Conn {
        Conn {
            stream: Stream::Plain(Box::new(stream)),
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            out: Vec::with_capacity(1024),
            skipping: false,
        }
    }

    /// Bytes received but not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Drops everything buffered (used for plaintext pipelined after STARTTLS).
    pub fn discard_buffered(&mut self) -> usize {
        let n = self.buf.len() - self.pos;
        self.buf.clear();
        self.pos = 0;
        n
    }

    /// Takes the next line from the buffer, if a whole one is there.
    pub fn take_line(&mut self, max: usize) -> Option<Line> {
        loop {
            let pending = &self.buf[self.pos..];
            let Some(lf) = pending.iter().position(|&b| b == b'\n') else {
                if pending.len() > max + 1 && !self.skipping {
                    self.skipping = true;
                    self.consume(pending.len());
                    return Some(Line::TooLong);
                }
                if self.skipping {
                    let n = pending.len();
                    self.consume(n);
                }
                return None;
            };
            if self.skipping {
                self.skipping = false;
                self.consume(lf + 1);
                continue;
            }
            let line = if lf == 0 || pending[lf - 1] != b'\r' {
                Line::BareLf
            } else if lf - 1 > max {
                Line::TooLong
            } else {
                Line::Complete(pending[..lf - 1].to_vec())
            };
            self.consume(lf + 1);
            return Some(line);
        }
    }

    /// Reads more bytes into the buffer, waiting at most `timeout`. Cancel-safe: nothing
    /// read is lost when the future is dropped. Pending replies are not written here: the
    /// caller flushes first (`Session::read_within`), since the client may be waiting for
    /// them before it sends more.
    pub async fn read_some(&mut self, timeout: Duration) -> Result<usize, ReadEnd> {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(READ_CHUNK);
        let read = tokio::time::timeout(timeout, self.stream.read_buf(&mut self.buf));
        match read.await {
            Err(_) => Err(ReadEnd::Timeout),
            Ok(Ok(0)) => Err(ReadEnd::Closed),
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(ReadEnd::Failed(e)),
        }
    }

    /// Queues a reply; it is written by the next `flush` (or `fill`).
    pub fn reply(&mut self, reply: &Reply) {
        reply.write_to(&mut self.out);
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        self.out.clear();
        Ok(())
    }

    /// Best-effort final reply before closing, bounded in time.
    pub async fn last_words(&mut self, reply: &Reply) {
        self.reply(reply);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = self.flush().await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Taken => std::task::Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, data),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, data),
            Stream::Taken => std::task::Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Taken => std::task::Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Taken => std::task::Poll::Ready(Ok(())),
        }
    }
}
