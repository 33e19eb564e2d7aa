//! The SMTP client: one connection to one next-hop address, carrying one message after the
//! other (RFC 5321, PIPELINING RFC 2920, STARTTLS RFC 3207, SIZE RFC 1870, 8BITMIME RFC 6152,
//! SMTPUTF8 RFC 6531).
//!
//! [`Session::open`] either returns a session ready for `MAIL` (greeted, EHLO done, TLS as the
//! policy demands) or a [`HopError`], which means "try the next hop". [`Session::send`]
//! returns one reply per recipient, or [`Broken`] when the connection failed mid-way.
//!
//! 8-bit mail to a peer without 8BITMIME is sent as is, without `BODY=8BITMIME` (as Postfix
//! does by default): down-converting to 7 bit would rewrite MIME parts and break DKIM
//! signatures, deferring would hold the mail until it expires, and practically every server
//! that omits the keyword passes 8-bit data through.

use super::tls;
use super::wire::{self, Reply, Stream, WireError};
use crate::config::{self, TlsPolicy};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What every session needs; built once from the configuration.
pub struct Settings {
    /// Our name in EHLO.
    pub helo: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub tls: Arc<rustls::ClientConfig>,
}

impl Settings {
    pub fn new(config: &config::Config) -> Settings {
        Settings {
            helo: config.hostname.clone(),
            connect_timeout: config.delivery.connect_timeout.0,
            command_timeout: config.delivery.command_timeout.0,
            data_timeout: config.delivery.data_timeout.0,
            tls: tls::client_config(),
        }
    }
}

/// Why a next hop could not be used; the caller moves on to the next one.
#[derive(Debug, Clone)]
pub struct HopError {
    pub reply: Reply,
    /// The peer could not be reached at all (as opposed to refusing us in SMTP).
    pub unreachable: bool,
}

/// The connection failed during a transaction; every recipient of it is deferred.
#[derive(Debug, Clone)]
pub struct Broken {
    pub reply: Reply,
    /// Nothing can have been delivered: the end of data was never sent, so the message may
    /// be retried at once on a new connection.
    pub retry_safe: bool,
}

/// One message as the client needs it.
pub struct Outgoing<'a> {
    /// Reverse path without brackets; empty for `<>`.
    pub sender: &'a str,
    pub recipients: &'a [&'a str],
    /// Stored bytes: CRLF line endings, not dot-stuffed.
    pub body: &'a [u8],
    pub eight_bit: bool,
    pub smtputf8: bool,
}

#[derive(Debug, Default, Clone)]
struct Extensions {
    pipelining: bool,
    /// `Some(0)`: SIZE offered without a limit.
    size: Option<u64>,
    eight_bit_mime: bool,
    smtputf8: bool,
    starttls: bool,
}

pub struct Session {
    io: BufReader<Stream>,
    settings: Arc<Settings>,
    host: String,
    peer: SocketAddr,
    ext: Extensions,
    tls: Option<String>,
    sent: usize,
    /// Commands and the dot-stuffed body are built here; reused for every message.
    buf: Vec<u8>,
}

impl Session {
    /// Connects to `peer` (named `host` for SNI and logs), reads the greeting, says EHLO and
    /// negotiates TLS as `policy` requires.
    pub async fn open(
        peer: SocketAddr,
        host: &str,
        policy: TlsPolicy,
        settings: &Arc<Settings>,
    ) -> Result<Session, HopError> {
        let who = format!("{host}[{}]:{}", peer.ip(), peer.port());
        let connect = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(peer));
        let tcp = match connect.await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(unreachable(format!("4.4.1 connect to {who} failed: {e}"))),
            Err(_) => return Err(unreachable(format!("4.4.1 connect to {who} timed out"))),
        };
        // Every write is a whole command group or message: Nagle would only add delay.
        let _ = tcp.set_nodelay(true);
        let mut session = Session {
            io: BufReader::new(Stream::Plain(tcp)),
            settings: settings.clone(),
            host: host.to_owned(),
            peer,
            ext: Extensions::default(),
            tls: None,
            sent: 0,
            buf: Vec::with_capacity(8192),
        };
        let greeting = session.read(settings.command_timeout).await;
        match greeting {
            Ok(reply) if reply.is_positive() => {}
            Ok(reply) => return Err(refused(reply)),
            Err(e) => return Err(unreachable(format!("4.4.2 {who} greeting: {e}"))),
        }
        session.hello(&who).await?;
        match policy {
            TlsPolicy::None => {}
            TlsPolicy::Opportunistic if !session.ext.starttls => {}
            TlsPolicy::Required if !session.ext.starttls => {
                return Err(refused(Reply::local(
                    451,
                    format!("4.7.4 TLS is required, but {who} does not offer STARTTLS"),
                )));
            }
            TlsPolicy::Opportunistic | TlsPolicy::Required => {
                session = session.starttls(&who, policy).await?;
            }
        }
        Ok(session)
    }

    /// Sends one message and returns one reply per recipient, in order: the `RCPT` reply for
    /// refused recipients, the final reply for accepted ones, the `MAIL` reply for all when
    /// `MAIL` failed.
    pub async fn send(&mut self, msg: &Outgoing<'_>) -> Result<Vec<Reply>, Broken> {
        let all = |reply: Reply| vec![reply; msg.recipients.len()];
        if let Some(reply) = self.precheck(msg) {
            return Ok(all(reply));
        }
        let reuse = self.sent > 0;
        self.sent += 1;
        self.build_commands(msg, reuse);
        let (mail, rcpts, data) = if self.ext.pipelining {
            self.pipelined(msg.recipients.len(), reuse).await?
        } else {
            self.lockstep(msg, reuse).await?
        };
        if !mail.is_positive() {
            if data.as_ref().is_some_and(|d| d.code == 354) {
                self.finish_data(true).await?;
            }
            return Ok(all(mail));
        }
        let accepted = rcpts.iter().filter(|r| r.is_positive()).count();
        let data = match data {
            Some(data) => data,
            None => return Ok(rcpts),
        };
        if data.code != 354 {
            return Ok(merge(rcpts, &data));
        }
        if accepted == 0 {
            // A pipelining server that said 354 with no recipient: end the empty message.
            self.finish_data(true).await?;
            return Ok(rcpts);
        }
        self.stuff_body(msg.body);
        let final_reply = self.finish_data(false).await?;
        Ok(merge(rcpts, &final_reply))
    }

    /// Ends the session politely; errors do not matter any more.
    pub async fn quit(mut self) {
        let limit = self.settings.command_timeout.min(Duration::from_secs(5));
        if wire::write_all(&mut self.io, b"QUIT\r\n", limit)
            .await
            .is_ok()
        {
            let _ = wire::read_reply(&mut self.io, limit).await;
        }
        let _ = tokio::time::timeout(limit, self.io.get_mut().shutdown()).await;
    }

    /// `TLSv1.3 TLS13_AES_256_GCM_SHA384` when TLS is in use.
    pub fn tls(&self) -> Option<&str> {
        self.tls.as_deref()
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Messages started on this connection.
    pub fn sent(&self) -> usize {
        self.sent
    }

    async fn hello(&mut self, who: &str) -> Result<(), HopError> {
        let limit = self.settings.command_timeout;
        let ehlo = format!("EHLO {}\r\n", self.settings.helo);
        let reply = self
            .command(ehlo.as_bytes(), limit)
            .await
            .map_err(|e| lost(who, "EHLO", e))?;
        if reply.is_positive() {
            self.ext = Extensions::parse(&reply);
            return Ok(());
        }
        if !reply.is_permanent() {
            return Err(refused(reply));
        }
        let helo = format!("HELO {}\r\n", self.settings.helo);
        let reply = self
            .command(helo.as_bytes(), limit)
            .await
            .map_err(|e| lost(who, "HELO", e))?;
        if !reply.is_positive() {
            return Err(refused(reply));
        }
        self.ext = Extensions::default();
        Ok(())
    }

    /// STARTTLS then EHLO again. A failed handshake fails this hop: the connection is never
    /// used in plaintext after it. A *refused* STARTTLS leaves the connection in a known
    /// plaintext state, which opportunistic TLS accepts (as Postfix `may` does).
    async fn starttls(mut self, who: &str, policy: TlsPolicy) -> Result<Session, HopError> {
        let limit = self.settings.command_timeout;
        let reply = self
            .command(b"STARTTLS\r\n", limit)
            .await
            .map_err(|e| lost(who, "STARTTLS", e))?;
        if reply.code != 220 {
            return match policy {
                TlsPolicy::Required => Err(refused(reply)),
                _ => Ok(self),
            };
        }
        if !self.io.buffer().is_empty() {
            // RFC 3207 §4.2 / response injection: nothing may precede the handshake.
            return Err(refused(Reply::local(
                451,
                format!("4.7.0 {who} sent data after its STARTTLS reply"),
            )));
        }
        let Stream::Plain(tcp) = self.io.into_inner() else {
            return Err(refused(Reply::local(
                451,
                format!("4.7.0 {who}: TLS already active"),
            )));
        };
        let connector = tokio_rustls::TlsConnector::from(self.settings.tls.clone());
        let name = tls::server_name(&self.host, self.peer.ip());
        let handshake = tokio::time::timeout(limit, connector.connect(name, tcp));
        let stream = match handshake.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(refused(tls_failed(who, &e.to_string()))),
            Err(_) => return Err(refused(tls_failed(who, "timed out"))),
        };
        let mut session = Session {
            tls: Some(tls::describe(stream.get_ref().1)),
            io: BufReader::new(Stream::Tls(Box::new(stream))),
            ext: Extensions::default(),
            ..self
        };
        session.hello(who).await?;
        Ok(session)
    }

    /// Refusals decided before talking: we must not send what the peer cannot take.
    fn precheck(&self, msg: &Outgoing<'_>) -> Option<Reply> {
        let who = format!("{}[{}]", self.host, self.peer.ip());
        let unsafe_path = |a: &str| a.bytes().any(|b| b == b'\r' || b == b'\n' || b == b'>');
        if unsafe_path(msg.sender) || msg.recipients.iter().any(|r| unsafe_path(r)) {
            return Some(Reply::local(553, "5.1.3 address not usable in SMTP"));
        }
        if msg.smtputf8 && !self.ext.smtputf8 {
            return Some(Reply::local(
                554,
                format!("5.6.7 {who} does not support SMTPUTF8, which this message requires"),
            ));
        }
        match self.ext.size {
            Some(limit) if limit > 0 && msg.body.len() as u64 > limit => Some(Reply::local(
                552,
                format!("5.3.4 message exceeds the size limit of {who} ({limit} bytes)"),
            )),
            _ => None,
        }
    }

    fn build_commands(&mut self, msg: &Outgoing<'_>, reuse: bool) {
        let mut cmd = String::with_capacity(64 + 48 * msg.recipients.len());
        if reuse {
            cmd.push_str("RSET\r\n");
        }
        let _ = write!(cmd, "MAIL FROM:<{}>", msg.sender);
        if self.ext.size.is_some() {
            let _ = write!(cmd, " SIZE={}", msg.body.len());
        }
        if msg.eight_bit && self.ext.eight_bit_mime {
            cmd.push_str(" BODY=8BITMIME");
        }
        if msg.smtputf8 {
            cmd.push_str(" SMTPUTF8");
        }
        cmd.push_str("\r\n");
        for rcpt in msg.recipients {
            let _ = write!(cmd, "RCPT TO:<{rcpt}>\r\n");
        }
        cmd.push_str("DATA\r\n");
        self.buf.clear();
        self.buf.extend_from_slice(cmd.as_bytes());
    }

    /// RFC 2920: the whole group in one write, then the replies in order.
    async fn pipelined(
        &mut self,
        count: usize,
        reuse: bool,
    ) -> Result<(Reply, Vec<Reply>, Option<Reply>), Broken> {
        let limit = self.settings.command_timeout;
        let buf = std::mem::take(&mut self.buf);
        let written = wire::write_all(&mut self.io, &buf, limit).await;
        self.buf = buf;
        written.map_err(|e| self.broken("MAIL FROM", e, true))?;
        if reuse {
            self.read(limit)
                .await
                .map_err(|e| self.broken("RSET", e, true))?;
        }
        let mail = self
            .read(limit)
            .await
            .map_err(|e| self.broken("MAIL FROM", e, true))?;
        let mut rcpts = Vec::with_capacity(count);
        for _ in 0..count {
            rcpts.push(
                self.read(limit)
                    .await
                    .map_err(|e| self.broken("RCPT TO", e, true))?,
            );
        }
        let data = self
            .read(limit)
            .await
            .map_err(|e| self.broken("DATA", e, true))?;
        Ok((mail, rcpts, Some(data)))
    }

    /// Without PIPELINING: one command, one reply, stopping as soon as the outcome is known.
    async fn lockstep(
        &mut self,
        msg: &Outgoing<'_>,
        reuse: bool,
    ) -> Result<(Reply, Vec<Reply>, Option<Reply>), Broken> {
        let commands = std::mem::take(&mut self.buf);
        let result = self
            .lockstep_inner(&commands, msg.recipients.len(), reuse)
            .await;
        self.buf = commands;
        result
    }

    async fn lockstep_inner(
        &mut self,
        commands: &[u8],
        count: usize,
        reuse: bool,
    ) -> Result<(Reply, Vec<Reply>, Option<Reply>), Broken> {
        let mut lines = commands.split_inclusive(|&b| b == b'\n');
        if reuse {
            self.step(lines.next(), "RSET").await?;
        }
        let mail = self.step(lines.next(), "MAIL FROM").await?;
        if !mail.is_positive() {
            return Ok((mail, Vec::new(), None));
        }
        let mut rcpts = Vec::with_capacity(count);
        for _ in 0..count {
            rcpts.push(self.step(lines.next(), "RCPT TO").await?);
        }
        if !rcpts.iter().any(Reply::is_positive) {
            return Ok((mail, rcpts, None));
        }
        let data = self.step(lines.next(), "DATA").await?;
        Ok((mail, rcpts, Some(data)))
    }

    async fn step(&mut self, line: Option<&[u8]>, stage: &str) -> Result<Reply, Broken> {
        let limit = self.settings.command_timeout;
        self.command(line.unwrap_or(b"NOOP\r\n"), limit)
            .await
            .map_err(|e| self.broken(stage, e, true))
    }

    fn stuff_body(&mut self, body: &[u8]) {
        if self.buf.capacity() > 1 << 20 {
            // Do not keep a huge message's buffer alive for the rest of the connection.
            self.buf = Vec::new();
        }
        self.buf.clear();
        self.buf.reserve(body.len() + body.len() / 64 + 5);
        super::pending::dot_stuff(body, &mut self.buf);
        if !self.buf.is_empty() && !self.buf.ends_with(b"\r\n") {
            self.buf.extend_from_slice(b"\r\n");
        }
    }

    /// Sends the (already stuffed) body and the end-of-data mark, reads the final reply.
    async fn finish_data(&mut self, empty: bool) -> Result<Reply, Broken> {
        let limit = self.settings.data_timeout;
        if empty {
            self.buf.clear();
        }
        self.buf.extend_from_slice(b".\r\n");
        let buf = std::mem::take(&mut self.buf);
        let written = wire::write_all(&mut self.io, &buf, limit).await;
        self.buf = buf;
        written.map_err(|e| self.broken("message data", e, true))?;
        self.read(limit)
            .await
            .map_err(|e| self.broken("end of data", e, false))
    }

    async fn command(&mut self, line: &[u8], limit: Duration) -> Result<Reply, WireError> {
        wire::write_all(&mut self.io, line, limit).await?;
        self.read(limit).await
    }

    async fn read(&mut self, limit: Duration) -> Result<Reply, WireError> {
        wire::read_reply(&mut self.io, limit).await
    }

    fn broken(&self, stage: &str, e: WireError, retry_safe: bool) -> Broken {
        let who = format!("{}[{}]:{}", self.host, self.peer.ip(), self.peer.port());
        Broken {
            reply: Reply::local(
                451,
                format!("4.4.2 lost connection with {who} during {stage}: {e}"),
            ),
            retry_safe,
        }
    }
}

impl Extensions {
    fn parse(ehlo: &Reply) -> Extensions {
        let mut ext = Extensions::default();
        for line in ehlo.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => ext.pipelining = true,
                "SIZE" => ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => ext.eight_bit_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "STARTTLS" => ext.starttls = true,
                _ => {}
            }
        }
        ext
    }
}

/// Refused recipients keep their RCPT reply; accepted ones get `outcome`.
fn merge(rcpts: Vec<Reply>, outcome: &Reply) -> Vec<Reply> {
    rcpts
        .into_iter()
        .map(|r| if r.is_positive() { outcome.clone() } else { r })
        .collect()
}

fn unreachable(text: String) -> HopError {
    HopError {
        reply: Reply::local(451, text),
        unreachable: true,
    }
}

fn refused(reply: Reply) -> HopError {
    HopError {
        reply,
        unreachable: false,
    }
}

fn lost(who: &str, stage: &str, e: WireError) -> HopError {
    unreachable(format!(
        "4.4.2 lost connection with {who} during {stage}: {e}"
    ))
}

fn tls_failed(who: &str, why: &str) -> Reply {
    Reply::local(451, format!("4.7.5 TLS handshake with {who} failed: {why}"))
}
