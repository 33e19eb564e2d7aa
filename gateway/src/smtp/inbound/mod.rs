//! The inbound SMTP server: listener, session state machine (one file per stage),
//! STARTTLS and limits.
//!
//! Owns the conversation with the sending client. It decides nothing about routing or
//! relay permission itself (that is [`crate::policy`]) and reaches the rest of the system
//! only through [`crate::queue::Queue::enqueue`]: a `250` after DATA is sent only once the
//! queue said the message is on disk.
//!
//! Memory per session is bounded by: the read buffer (`limits.max_line_length` plus one
//! [`io::READ_CHUNK`] of 16 KiB), the reply buffer (a few hundred bytes; pipelined replies
//! are flushed before every read), the recipient list (`limits.max_recipients`) and the
//! message being received (at most `limits.max_message_size`). Message bytes held by all
//! sessions together are capped by `limits.inflight_bytes`; a message that would exceed it
//! gets `452 4.3.1` instead of growing memory.

mod auth;
mod bdat;
mod data;
mod deadline;
mod ehlo;
mod etrn;
mod hops;
pub mod io;
pub mod limits;
mod mail;
mod mailauth;
mod rcpt;
mod scan;
mod session;
#[cfg(test)]
mod session_tests;
mod starttls;

use crate::config::{Config, Role};
use crate::observe::events::{Event, Events};
use crate::policy::auth::MailAuth;
use crate::policy::relay::Access;
use crate::queue::Queue;
use crate::smtp::proto::Reply;
use limits::{Limiter, Refusal};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::delivery::budget::BUDGET_UNIT;

/// What every session shares.
pub struct Context {
    pub config: Arc<Config>,
    pub queue: Queue,
    /// Routes, maps and recipient validation (RCPT).
    pub recipients: Arc<crate::policy::Recipients>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limiter: Limiter,
    /// Relay grants: networks, AUTH users, client-certificate trust.
    pub access: Access,
    /// Message bytes that sessions may hold in memory, in [`BUDGET_UNIT`]s.
    pub inflight: Arc<Semaphore>,
    pub shutdown: CancellationToken,
    pub sessions: TaskTracker,
    /// The scheduler, for ETRN.
    pub deliveries: crate::delivery::DeliveryHandle,
    /// SPF/DKIM/DMARC/ARC checks and DKIM signing at the end of each message.
    pub mail_auth: MailAuth,
    /// Where sessions announce what happened (accepted, refused, TLS): metrics count it.
    pub events: Events,
    /// rspamd and clamd at the end of each message (`[scan]`).
    pub scanner: crate::scan::Scanner,
}

/// What a [`Context`] is built from besides the configuration.
pub struct Parts {
    pub queue: Queue,
    pub recipients: Arc<crate::policy::Recipients>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub shutdown: CancellationToken,
    pub mail_auth: MailAuth,
    /// The in-flight byte budget, shared with delivery ([`Context::budget`] makes one).
    pub inflight: Arc<Semaphore>,
    pub deliveries: crate::delivery::DeliveryHandle,
    pub events: Events,
    pub scanner: crate::scan::Scanner,
}

impl Context {
    /// The in-flight message budget for `limits.inflight_bytes`, in [`BUDGET_UNIT`]s.
    pub fn budget(config: &Config) -> Arc<Semaphore> {
        let units =
            (config.limits.inflight_bytes.0 as usize / BUDGET_UNIT).min(Semaphore::MAX_PERMITS);
        Arc::new(Semaphore::new(units))
    }

    pub fn new(config: Arc<Config>, parts: Parts) -> Arc<Context> {
        let limits = &config.limits;
        let limiter = Limiter::new(limits.max_connections, limits.max_connections_per_ip);
        limiter.set_stress_at(limits.stress_connections());
        Arc::new(Context {
            limiter,
            access: Access::new(&config),
            inflight: parts.inflight,
            config,
            queue: parts.queue,
            recipients: parts.recipients,
            tls: parts.tls,
            shutdown: parts.shutdown,
            sessions: TaskTracker::new(),
            deliveries: parts.deliveries,
            mail_auth: parts.mail_auth,
            events: parts.events,
            scanner: parts.scanner,
        })
    }

    /// The context for sessions accepted after a configuration commit: new configuration
    /// (and TLS, when its certificate changed), the same queue, budget, caps and tracker,
    /// so sessions already open keep theirs and shutdown still waits for all of them.
    pub fn renewed(
        &self,
        config: Arc<Config>,
        tls: Option<Arc<rustls::ServerConfig>>,
        recipients: Option<Arc<crate::policy::Recipients>>,
        mail_auth: MailAuth,
    ) -> Arc<Context> {
        let scanner = self.scanner.renewed(&config.scan, &self.events);
        let limits = &config.limits;
        self.limiter
            .set_caps(limits.max_connections, limits.max_connections_per_ip);
        self.limiter.set_stress_at(limits.stress_connections());
        Arc::new(Context {
            access: Access::new(&config),
            config,
            queue: self.queue.clone(),
            recipients: recipients.unwrap_or_else(|| self.recipients.clone()),
            tls: tls.or_else(|| self.tls.clone()),
            limiter: self.limiter.clone(),
            inflight: self.inflight.clone(),
            shutdown: self.shutdown.clone(),
            sessions: self.sessions.clone(),
            deliveries: self.deliveries.clone(),
            mail_auth,
            events: self.events.clone(),
            scanner,
        })
    }
}

/// Accepts connections on `listener` until shutdown or `stop`; each becomes a session task
/// tracked by `ctx.sessions`, with the context current when it was accepted (a commit
/// publishes a new one). `starttls` says whether this listener offers STARTTLS; `role` what
/// it is for.
pub async fn serve(
    contexts: watch::Receiver<Arc<Context>>,
    listener: TcpListener,
    starttls: bool,
    role: Role,
    stop: CancellationToken,
) {
    let shutdown = contexts.borrow().shutdown.clone();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let ctx = contexts.borrow().clone();
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                log::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        ctx.events.publish(&Event::ConnectionAccepted);
        let permit = ctx.limiter.admit(peer.ip());
        let ctx2 = ctx.clone();
        ctx.sessions.spawn(async move {
            let mut conn = io::Conn::new(stream);
            match permit {
                Ok(permit) => {
                    session::Session::new(ctx2, conn, peer, starttls, role)
                        .run(permit)
                        .await
                }
                Err(refusal) => {
                    let (why, label) = match refusal {
                        Refusal::Total => ("too many connections", "total"),
                        Refusal::PerIp => ("too many connections from your address", "per_ip"),
                    };
                    ctx2.events.publish(&Event::ConnectionRefused(label));
                    log::info!("refused connection from {peer}: {why}");
                    conn.last_words(&Reply::too_many_connections()).await;
                }
            }
        });
    }
}

/// A listening SMTP socket for `addr`. An IPv6 address listens on IPv6 only, so
/// `0.0.0.0:25` and `[::]:25` can be two listeners side by side (the appliance's default):
/// with the kernel's dual-stack default the second would find the port taken.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => {
            let socket = tokio::net::TcpSocket::new_v6()?;
            nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::Ipv6V6Only, &true)
                .map_err(std::io::Error::from)?;
            socket
        }
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Whether `addr` could be listened on now (a commit's check; the socket is closed again).
pub fn can_listen(addr: std::net::SocketAddr) -> std::io::Result<()> {
    listen(addr).map(drop)
}
