//! STARTTLS (RFC 3207): handshake on the same socket, then forget everything said before.
//! A client certificate presented in the handshake may earn a relay grant.

use super::io::Stream;
use super::session::{Flow, Session};
use crate::observe::events::{Direction, Event};
use crate::smtp::proto::Reply;
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsAcceptor;

impl Session {
    pub async fn starttls(&mut self) -> Flow {
        let Some(config) = self.ctx.tls.clone().filter(|_| self.starttls) else {
            return self.refuse(Reply::tls_not_available());
        };
        // Anything the client sent after STARTTLS in the same flight was written before it
        // saw our 220: it is plaintext injected ahead of the handshake, never a command.
        let injected = self.conn.discard_buffered();
        if injected > 0 {
            log::warn!(
                "{}: discarded {injected} bytes pipelined after STARTTLS",
                self.peer
            );
        }
        self.conn.reply(&Reply::tls_ready());
        if self.conn.flush().await.is_err() {
            return Flow::Close;
        }
        let Stream::Plain(tcp) = std::mem::replace(&mut self.conn.stream, Stream::Taken) else {
            return Flow::Close;
        };
        let limits = &self.ctx.config.limits;
        let mut timeout = limits.command_timeout.0;
        if *self.ctx.limiter.stress().borrow() {
            timeout = timeout.min(limits.stress_timeout.0);
        }
        let handshake = tokio::time::timeout(timeout, TlsAcceptor::from(config).accept(tcp));
        match handshake.await {
            Ok(Ok(mut tls)) => {
                // TLS 1.3 session tickets are queued after the handshake; send them now,
                // not with our next reply, so a client that resumes later has them even
                // if it leaves without another command.
                if tls.flush().await.is_err() {
                    return Flow::Close;
                }
                let described = crate::tls::describe(tls.get_ref().1);
                log::debug!("{}: STARTTLS {described}", self.peer);
                self.ctx.events.publish(&Event::TlsSession {
                    direction: Direction::Inbound,
                    described: &described,
                });
                self.tls = Some(described);
                if let Some(chain) = tls.get_ref().1.peer_certificates() {
                    self.client_certificate(chain);
                }
                self.conn.stream = Stream::Tls(Box::new(tls));
                // RFC 3207 §4.2: the client must start again with EHLO.
                self.helo = None;
                self.tx = None;
                Flow::Continue
            }
            Ok(Err(e)) => {
                log::info!("{}: TLS handshake failed: {e}", self.peer);
                Flow::Close
            }
            Err(_) => {
                log::info!("{}: TLS handshake timed out", self.peer);
                Flow::Close
            }
        }
    }
}

impl Session {
    /// A certificate from the trusted CA with a configured name grants relay (cloud
    /// connectors); any other certificate changes nothing.
    fn client_certificate(&mut self, chain: &[rustls::pki_types::CertificateDer<'_>]) {
        match self.ctx.access.certificate(chain) {
            Ok(grant) => {
                log::info!("{}: relay granted to client {grant}", self.peer);
                self.relay = Some(grant);
            }
            Err(why) => log::info!("{}: client certificate grants no relay: {why}", self.peer),
        }
    }
}
