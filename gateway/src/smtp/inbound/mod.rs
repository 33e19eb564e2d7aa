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
mod ehlo;
pub mod io;
pub mod limits;
mod mail;
mod rcpt;
mod session;
mod starttls;

use crate::config::{Config, Role};
use crate::policy::relay::Access;
use crate::queue::Queue;
use crate::smtp::proto::Reply;
use limits::{Limiter, Refusal};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Bytes per permit of the in-flight message budget.
pub const BUDGET_UNIT: usize = 1024;

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
}

impl Context {
    pub fn new(
        config: Arc<Config>,
        queue: Queue,
        recipients: Arc<crate::policy::Recipients>,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: CancellationToken,
    ) -> Arc<Context> {
        let limits = &config.limits;
        let units = (limits.inflight_bytes.0 as usize / BUDGET_UNIT).min(Semaphore::MAX_PERMITS);
        Arc::new(Context {
            limiter: Limiter::new(limits.max_connections, limits.max_connections_per_ip),
            access: Access::new(&config),
            inflight: Arc::new(Semaphore::new(units)),
            config,
            queue,
            recipients,
            tls,
            shutdown,
            sessions: TaskTracker::new(),
        })
    }
}

/// Accepts connections on `listener` until shutdown; each becomes a session task tracked
/// by `ctx.sessions`. `starttls` says whether this listener offers STARTTLS; `role` what
/// it is for.
pub async fn serve(ctx: Arc<Context>, listener: TcpListener, starttls: bool, role: Role) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
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
                    let why = match refusal {
                        Refusal::Total => "too many connections",
                        Refusal::PerIp => "too many connections from your address",
                    };
                    log::info!("refused connection from {peer}: {why}");
                    conn.last_words(&Reply::too_many_connections()).await;
                }
            }
        });
    }
}
