//! One SMTP session: the command loop, the state it keeps, and the dispatcher that hands
//! each command to its stage (`ehlo`, `mail`, `rcpt`, `data`, `bdat`, `starttls`, `auth`).
//!
//! Pipelining: every complete command in the read buffer is executed in order and its
//! reply queued; replies are flushed only before the session waits for more input. DATA
//! and BDAT consume their payload from the same buffer, so commands pipelined behind a
//! message are executed only after it.

use super::deadline::Pace;
use super::io::{Conn, Line, ReadEnd};
use super::limits::Permit;
use super::{Context, bdat::Chunking};
use crate::config::Role;
use crate::envelope::Recipient;
use crate::observe::events::Event;
use crate::policy::relay::RelayGrant;
use crate::smtp::proto::{Command, MailParams, Reply, ReversePath, parse_command_with};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub struct Session {
    pub ctx: Arc<Context>,
    pub conn: Conn,
    pub peer: SocketAddr,
    pub starttls: bool,
    /// What the listener is for (submission needs a relay grant for everything).
    pub role: Role,
    /// Why this client may send to domains we do not serve, if it may.
    pub relay: Option<RelayGrant>,
    pub helo: Option<Helo>,
    pub tx: Option<Transaction>,
    /// `TLSv1.3 TLS13_AES_256_GCM_SHA384` once the handshake finished.
    pub tls: Option<String>,
    errors: u32,
    commands: u32,
    /// Commands since the last message was queued: what `limits.max_commands` bounds, so
    /// an MTA sending hundreds of messages on one connection is not cut off (the number of
    /// messages has its own limit, `max_messages_per_session`).
    pub idle_commands: u32,
    pub messages: u32,
}

pub struct Helo {
    pub name: String,
    pub extended: bool,
}

/// A mail transaction: from MAIL until the message is queued or the transaction reset.
pub struct Transaction {
    pub from: ReversePath,
    pub params: MailParams,
    pub rcpts: Vec<Recipient>,
    pub chunking: Option<Chunking>,
}

/// What the dispatcher wants the loop to do next.
pub enum Flow {
    Continue,
    Close,
}

/// A command that is valid SMTP but not in this state: always `503 5.5.1`, from one place.
#[derive(Debug)]
pub enum Misplaced {
    NeedHelo,
    NestedMail,
    NeedMail,
    NeedRcpt,
    ChunkingInProgress,
    AlreadyTls,
    AuthInTransaction,
    AlreadyAuthenticated,
}

impl Session {
    pub fn new(
        ctx: Arc<Context>,
        conn: Conn,
        peer: SocketAddr,
        starttls: bool,
        role: Role,
    ) -> Session {
        let starttls = starttls && ctx.tls.is_some();
        let relay = ctx.access.network(peer.ip());
        Session {
            ctx,
            conn,
            peer,
            starttls,
            role,
            relay,
            helo: None,
            tx: None,
            tls: None,
            errors: 0,
            commands: 0,
            idle_commands: 0,
            messages: 0,
        }
    }

    pub async fn run(mut self, _permit: Permit) {
        let started = Instant::now();
        let greeting = Reply::plain(
            220,
            vec![format!("{} ESMTP edgemx", self.ctx.config.hostname)],
        );
        self.conn.reply(&greeting);
        let end = self.command_loop().await;
        log::info!(
            "session {} closed ({end}) helo={} tls={} relay={} commands={} messages={} {:.1}s",
            self.peer,
            self.helo.as_ref().map_or("-", |h| h.name.as_str()),
            self.tls.as_deref().unwrap_or("no"),
            self.relay.as_ref().map_or("no".into(), |g| g.to_string()),
            self.commands,
            self.messages,
            started.elapsed().as_secs_f64()
        );
    }

    async fn command_loop(&mut self) -> &'static str {
        let ctx = self.ctx.clone();
        let limits = &ctx.config.limits;
        let max_line = limits.max_line_length;
        // The budget of the command line being received, from when we were ready for it.
        let mut pace: Option<Pace> = None;
        loop {
            let Some(line) = self.conn.take_line(max_line) else {
                let shutdown = self.ctx.shutdown.clone();
                let pace = pace.get_or_insert_with(|| Pace::command(limits, Instant::now()));
                let filled = tokio::select! {
                    _ = shutdown.cancelled() => {
                        self.conn.last_words(&Reply::shutting_down()).await;
                        return "shutdown";
                    }
                    filled = self.read_within(pace) => filled,
                };
                match filled {
                    Ok(_) => continue,
                    Err(ReadEnd::Closed) => return "client closed",
                    Err(ReadEnd::Timeout) => {
                        self.conn.last_words(&Reply::timeout()).await;
                        return "timeout";
                    }
                    Err(ReadEnd::Failed(_)) => return "read error",
                }
            };
            pace = None;
            self.commands += 1;
            self.idle_commands += 1;
            let flow = match line {
                Line::Complete(bytes) => self.dispatch(&bytes).await,
                Line::BareLf => self.refuse(Reply::syntax_error("bare LF in command; use CRLF")),
                Line::TooLong => self.refuse(Reply::line_too_long()),
            };
            if let Flow::Close = flow {
                return "closed by server";
            }
            if self.errors >= limits.max_errors {
                self.conn.last_words(&Reply::too_many_errors()).await;
                return "too many errors";
            }
            if self.idle_commands >= limits.max_commands {
                self.conn.last_words(&Reply::too_many_commands()).await;
                return "too many commands";
            }
            if self.ctx.shutdown.is_cancelled() {
                self.conn.last_words(&Reply::shutting_down()).await;
                return "shutdown";
            }
        }
    }

    async fn dispatch(&mut self, line: &[u8]) -> Flow {
        let utf8 = self.tx.as_ref().is_some_and(|t| t.params.smtputf8);
        let command = match parse_command_with(line, utf8) {
            Ok(command) => command,
            Err(e) => return self.refuse(e.reply()),
        };
        if let Err(misplaced) = self.check_sequence(&command) {
            log::debug!("{}: {misplaced:?}", self.peer);
            if let Command::Bdat { size, .. } = command {
                // The chunk follows the command regardless: it must not be read as commands.
                if let Err(end) = self.skip_chunk(size).await {
                    return end;
                }
            }
            return self.refuse(Reply::bad_sequence());
        }
        match command {
            Command::Ehlo(name) => self.ehlo(name, true),
            Command::Helo(name) => self.ehlo(name, false),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params).await,
            Command::Data => self.data().await,
            Command::Bdat { size, last } => self.bdat(size, last).await,
            Command::StartTls => self.starttls().await,
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial).await,
            Command::Rset => {
                self.tx = None;
                self.answer(Reply::ok())
            }
            Command::Noop => self.answer(Reply::ok()),
            Command::Quit => {
                self.conn.last_words(&Reply::closing()).await;
                Flow::Close
            }
            Command::Vrfy(_) => self.answer(Reply::vrfy()),
            Command::Help(_) => self.answer(Reply::help()),
            Command::Etrn(node) => self.etrn(node).await,
            Command::Expn(_) => self.refuse(Reply::not_implemented()),
        }
    }

    /// The one place where state decides whether a command may run.
    fn check_sequence(&self, command: &Command) -> Result<(), Misplaced> {
        let chunking = self.tx.as_ref().is_some_and(|t| t.chunking.is_some());
        match command {
            Command::Mail { .. } | Command::Etrn(_) if self.helo.is_none() => {
                Err(Misplaced::NeedHelo)
            }
            // RFC 1985 §5: not inside a mail transaction.
            Command::Etrn(_) if self.tx.is_some() => Err(Misplaced::NestedMail),
            Command::Mail { .. } if self.tx.is_some() => Err(Misplaced::NestedMail),
            Command::Rcpt { .. } if self.tx.is_none() => Err(Misplaced::NeedMail),
            Command::Rcpt { .. } | Command::Data if chunking => Err(Misplaced::ChunkingInProgress),
            Command::Data | Command::Bdat { .. }
                if self.tx.as_ref().is_none_or(|t| t.rcpts.is_empty()) =>
            {
                Err(Misplaced::NeedRcpt)
            }
            Command::StartTls if self.tls.is_some() => Err(Misplaced::AlreadyTls),
            // RFC 4954 §4: not during a transaction, and only once per session.
            Command::Auth { .. } if self.tx.is_some() => Err(Misplaced::AuthInTransaction),
            Command::Auth { .. } if self.authenticated() => Err(Misplaced::AlreadyAuthenticated),
            _ => Ok(()),
        }
    }

    /// Queues a reply to a command that succeeded or was merely informational.
    pub fn answer(&mut self, reply: Reply) -> Flow {
        self.conn.reply(&reply);
        Flow::Continue
    }

    /// Queues a failure reply and counts it towards `limits.max_errors`.
    pub fn refuse(&mut self, reply: Reply) -> Flow {
        self.ctx.events.publish(&Event::Rejected(&reply));
        self.errors += 1;
        self.conn.reply(&reply);
        Flow::Continue
    }

    /// Queues a refusal that is not the client's fault (a limit it could not know in
    /// advance): counted in metrics, not towards `limits.max_errors`. `limits.max_commands`
    /// still bounds how often a client may hear it.
    pub fn decline(&mut self, reply: Reply) -> Flow {
        self.ctx.events.publish(&Event::Rejected(&reply));
        self.conn.reply(&reply);
        Flow::Continue
    }

    /// Client name and address as written in logs and Received headers.
    pub fn client(&self) -> String {
        let helo = self.helo.as_ref().map_or("unknown", |h| h.name.as_str());
        format!("{helo} [{}]", self.peer.ip())
    }
}
