//! The delivery client's STARTTLS step, where the route's TLS policy is enforced.
//!
//! Under `required`, `verify` and `pin` every way this step can fail (STARTTLS refused, a
//! failed handshake, a certificate that fails its check) is a temporary failure of this
//! hop: the walk moves on to the next hop and the mail is deferred if none works. The
//! connection is never used in plaintext after a STARTTLS attempt that went wrong.

use super::wire::{Reply, Stream};
use super::{Extensions, HopError, Session, lost, refused, tls_failed};
use crate::config::TlsPolicy;
use crate::observe::events::{Direction, Event};
use crate::tls::guard::Guard;
use std::sync::Arc;
use tokio::io::BufReader;

impl Session {
    /// STARTTLS then EHLO again. A *refused* STARTTLS leaves the connection in a known
    /// plaintext state, which opportunistic TLS accepts (as Postfix `may` does); stronger
    /// policies fail the hop.
    pub(super) async fn starttls(
        mut self,
        who: &str,
        policy: &TlsPolicy,
        guard: Option<&Arc<Guard>>,
        mandatory: bool,
    ) -> Result<Session, HopError> {
        let limit = self.settings.command_timeout;
        let reply = self
            .command(b"STARTTLS\r\n", limit)
            .await
            .map_err(|e| lost(who, "STARTTLS", e))?;
        if reply.code != 220 {
            if let Some(guard) = guard {
                let text = format!("{who} refused STARTTLS: {reply}");
                guard.record(Err(("starttls-not-supported", text)));
            }
            if mandatory {
                self.settings.tls_failure("starttls_refused");
                // Always 4xx: a 5xx here must not bounce mail that a later attempt carries.
                return Err(refused(Reply::local(
                    451,
                    format!(
                        "4.7.4 {who} refused STARTTLS under TLS policy {}: {reply}",
                        policy.mode
                    ),
                )));
            }
            return Ok(self);
        }
        if !self.io.buffer().is_empty() {
            // RFC 3207 §4.2 / response injection: nothing may precede the handshake.
            self.settings.tls_failure("data_before_handshake");
            return Err(refused(Reply::local(
                451,
                format!("4.7.0 {who} sent data after its STARTTLS reply"),
            )));
        }
        let config = match guard {
            Some(guard) => self.settings.tls.guarded(policy, guard),
            None => self.settings.tls.get(policy),
        };
        let config = match config {
            Ok(config) => config,
            Err(e) => {
                let why = format!("TLS policy: {e}");
                return Err(refused(tls_failed(&self.settings, who, &why, "policy")));
            }
        };
        let Stream::Plain(tcp) = self.io.into_inner() else {
            return Err(refused(Reply::local(
                451,
                format!("4.7.0 {who}: TLS already active"),
            )));
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = match guard {
            // RFC 7672 §3.2.2 / RFC 8461 §4.2: SNI is the MX host name.
            Some(guard) => crate::tls::server_name(&TlsPolicy::NONE, &guard.host, self.peer.ip()),
            None => crate::tls::server_name(policy, &self.host, self.peer.ip()),
        };
        let handshake = tokio::time::timeout(limit, connector.connect(name, tcp));
        let stream = match handshake.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                if let Some(guard) = guard {
                    guard.record(Err(("validation-failure", e.to_string())));
                }
                let reason = super::tlsfail::handshake_reason(&e);
                return Err(refused(tls_failed(
                    &self.settings,
                    who,
                    &e.to_string(),
                    reason,
                )));
            }
            Err(_) => {
                if let Some(guard) = guard {
                    guard.record(Err(("validation-failure", "handshake timed out".into())));
                }
                return Err(refused(tls_failed(
                    &self.settings,
                    who,
                    "timed out",
                    "timeout",
                )));
            }
        };
        if let Some(guard) = guard {
            guard.record(Ok(()));
        }
        let described = crate::tls::describe(stream.get_ref().1);
        self.settings.events.publish(&Event::TlsSession {
            direction: Direction::Outbound,
            described: &described,
        });
        let mut session = Session {
            tls: Some(described),
            io: BufReader::new(Stream::Tls(Box::new(stream))),
            ext: Extensions::default(),
            client_certificate: policy.client_certificate.clone(),
            ..self
        };
        // A failure here is the TLS session failing (TLS 1.3 servers reject a client
        // certificate only after the handshake): the host is reachable and must not be
        // marked dead for the other destinations that use it.
        session.hello(who).await.map_err(|e| HopError {
            unreachable: false,
            ..e
        })?;
        Ok(session)
    }
}
