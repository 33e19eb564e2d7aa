//! The SMTP client: one connection to one next-hop address, carrying one message after the
//! other (RFC 5321, PIPELINING RFC 2920, STARTTLS RFC 3207, SIZE RFC 1870, 8BITMIME RFC 6152,
//! SMTPUTF8 RFC 6531, DSN RFC 3461: the sender's RET/ENVID/NOTIFY/ORCPT are passed on to a
//! peer that offers DSN, and only to one).
//!
//! [`Session::open`] either returns a session ready for `MAIL` (greeted, EHLO done, TLS as the
//! policy demands) or a [`HopError`], which means "try the next hop". [`Session::send`]
//! returns one reply per recipient, or [`Broken`] when the connection failed mid-way.
//!
//! 8-bit mail to a peer without 8BITMIME is sent as is, without `BODY=8BITMIME` (as Postfix
//! does by default): down-converting to 7 bit would rewrite MIME parts and break DKIM
//! signatures, deferring would hold the mail until it expires, and practically every server
//! that omits the keyword passes 8-bit data through.

mod flow_probe;
mod probe;
mod starttls;
mod tlsfail;
mod transaction;
pub mod wire;

use crate::config::{self, TlsMode, TlsPolicy};
use crate::observe::events::{Direction, Event, Events};
use crate::smtp::proto::dsn::{Notify, Orcpt, Ret};
use crate::tls::guard::Guard;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use wire::{Reply, Stream, WireError};

/// What every session needs; built once from the configuration.
pub struct Settings {
    /// Our name in EHLO.
    pub helo: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    /// One rustls configuration per TLS policy, built on first use.
    pub tls: crate::tls::ClientConfigs,
    /// Where TLS sessions and failures are reported.
    pub events: Events,
}

impl Settings {
    pub fn new(config: &config::Config, events: &Events) -> Settings {
        Settings {
            helo: config.hostname.clone(),
            connect_timeout: config.delivery.connect_timeout.0,
            command_timeout: config.delivery.command_timeout.0,
            data_timeout: config.delivery.data_timeout.0,
            tls: crate::tls::ClientConfigs::default(),
            events: events.clone(),
        }
    }

    /// Reports a failed or refused outbound TLS session.
    fn tls_failure(&self, reason: &'static str) {
        self.events.publish(&Event::TlsFailure {
            direction: Direction::Outbound,
            reason,
        });
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
    pub dsn: Dsn<'a>,
}

/// The sender's DSN requests (RFC 3461), passed on when the peer offers DSN.
#[derive(Debug, Default, Clone, Copy)]
pub struct Dsn<'a> {
    pub ret: Option<Ret>,
    pub envid: Option<&'a str>,
    /// One per recipient, in the order of `Outgoing::recipients` (empty: none asked).
    pub rcpts: &'a [RcptDsn<'a>],
}

#[derive(Debug, Default, Clone, Copy)]
pub struct RcptDsn<'a> {
    pub notify: Option<Notify>,
    pub orcpt: Option<&'a Orcpt>,
}

#[derive(Debug, Default, Clone)]
struct Extensions {
    pipelining: bool,
    /// `Some(0)`: SIZE offered without a limit.
    size: Option<u64>,
    eight_bit_mime: bool,
    smtputf8: bool,
    starttls: bool,
    dsn: bool,
}

pub struct Session {
    io: BufReader<Stream>,
    settings: Arc<Settings>,
    host: String,
    peer: SocketAddr,
    ext: Extensions,
    tls: Option<String>,
    /// The client certificate offered in TLS (its path), to name in replies when the peer
    /// refuses it; `None` in plaintext or when the policy has none.
    client_certificate: Option<std::path::PathBuf>,
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
        policy: &TlsPolicy,
        settings: &Arc<Settings>,
    ) -> Result<Session, HopError> {
        Session::open_guarded(peer, host, policy, None, settings).await
    }

    /// [`Session::open`] with a DANE or MTA-STS `guard` over `policy` (an MX host): the
    /// guard records what happened and, when enforced, makes TLS mandatory and decides the
    /// certificate check.
    pub async fn open_guarded(
        peer: SocketAddr,
        host: &str,
        policy: &TlsPolicy,
        guard: Option<&Arc<Guard>>,
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
            client_certificate: None,
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
        let mandatory = policy.mandatory() || guard.is_some_and(|g| g.mandatory());
        if policy.mode == TlsMode::None {
            return Ok(session);
        }
        if !session.ext.starttls {
            if let Some(guard) = guard {
                let text = format!("{who} does not offer STARTTLS");
                guard.record(Err(("starttls-not-supported", text)));
            }
            if !mandatory {
                return Ok(session);
            }
            let why = match guard.filter(|g| g.mandatory()) {
                Some(_) => "the destination's DANE or MTA-STS policy".to_owned(),
                None => format!("TLS policy {}", policy.mode),
            };
            return Err(refused(Reply::local(
                451,
                format!("4.7.4 {why} needs STARTTLS, but {who} does not offer it"),
            )));
        }
        session.starttls(&who, policy, guard, mandatory).await
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

    /// The peer offers DSN: it takes over the sender's NOTIFY (we do not report success).
    pub fn offers_dsn(&self) -> bool {
        self.ext.dsn
    }

    /// Messages started on this connection.
    pub fn sent(&self) -> usize {
        self.sent
    }

    async fn hello(&mut self, who: &str) -> Result<(), HopError> {
        let limit = self.settings.command_timeout;
        let ehlo = format!("EHLO {}\r\n", self.settings.helo);
        let reply = match self.command(ehlo.as_bytes(), limit).await {
            Ok(reply) => reply,
            Err(e) => return Err(self.lost(who, "EHLO", e)),
        };
        if reply.is_positive() {
            self.ext = Extensions::parse(&reply);
            return Ok(());
        }
        if !reply.is_permanent() {
            return Err(refused(reply));
        }
        let helo = format!("HELO {}\r\n", self.settings.helo);
        let reply = match self.command(helo.as_bytes(), limit).await {
            Ok(reply) => reply,
            Err(e) => return Err(self.lost(who, "HELO", e)),
        };
        if !reply.is_positive() {
            return Err(refused(reply));
        }
        self.ext = Extensions::default();
        Ok(())
    }

    async fn command(&mut self, line: &[u8], limit: Duration) -> Result<Reply, WireError> {
        wire::write_all(&mut self.io, line, limit).await?;
        self.read(limit).await
    }

    async fn read(&mut self, limit: Duration) -> Result<Reply, WireError> {
        wire::read_reply(&mut self.io, limit).await
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
                "DSN" => ext.dsn = true,
                _ => {}
            }
        }
        ext
    }
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

fn tls_failed(settings: &Settings, who: &str, why: &str, reason: &'static str) -> Reply {
    settings.tls_failure(reason);
    Reply::local(451, format!("4.7.5 TLS handshake with {who} failed: {why}"))
}
