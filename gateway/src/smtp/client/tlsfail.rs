//! TLS failures towards a next hop, named for what they are.
//!
//! Under TLS 1.3 a server checks the client certificate only after the client's Finished, so
//! a backend that requires one we did not present (or rejects the one we did) answers our
//! first command with an alert. Read as a lost connection that would say `4.4.2`, hide the
//! cause and blame the network; it is a security failure of this destination (`4.7.5`, still
//! temporary) whose reply names the certificate, for the log, `queue show` and DSNs. Every
//! failure is also counted in `edgemx_tls_failures_total` by reason.

use super::wire::{Reply, WireError};
use super::{HopError, Session, lost};
use rustls::AlertDescription as Alert;

impl Session {
    /// The connection failed at `stage`: a TLS alert from the peer becomes a `4.7.5` reply
    /// that says why; anything else is a lost connection.
    pub(super) fn lost(&self, who: &str, stage: &str, e: WireError) -> HopError {
        match self.tls.is_some().then(|| alert(&e)).flatten() {
            Some(alert) => HopError {
                reply: self.refused_by_peer(who, alert),
                unreachable: false,
            },
            None => lost(who, stage, e),
        }
    }

    /// The reply for a session the peer ended with `alert` after the handshake.
    pub(super) fn refused_by_peer(&self, who: &str, alert: Alert) -> Reply {
        let certificate = self.client_certificate.as_ref().map(|p| p.display());
        let (reason, text) = match (alert, certificate) {
            (Alert::CertificateRequired, None) => (
                "client_certificate_required",
                format!(
                    "4.7.5 {who} requires a TLS client certificate and none is configured for \
                     this destination (tls.client_certificate, tls.client_key)"
                ),
            ),
            (
                Alert::CertificateRequired
                | Alert::BadCertificate
                | Alert::UnsupportedCertificate
                | Alert::CertificateRevoked
                | Alert::CertificateExpired
                | Alert::CertificateUnknown
                | Alert::UnknownCA
                | Alert::AccessDenied,
                Some(path),
            ) => (
                "client_certificate_rejected",
                format!("4.7.5 {who} rejected our TLS client certificate {path} ({alert:?})"),
            ),
            (alert, _) => (
                "alert_received",
                format!("4.7.5 TLS session with {who} ended by the peer ({alert:?})"),
            ),
        };
        self.settings.tls_failure(reason);
        Reply::local(451, text)
    }
}

/// The alert a peer sent, when `e` is one.
pub(super) fn alert(e: &WireError) -> Option<Alert> {
    let WireError::Io(io) = e else {
        return None;
    };
    match io.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// The metrics reason for a failed handshake.
pub(super) fn handshake_reason(e: &std::io::Error) -> &'static str {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_)) => "server_certificate",
        Some(rustls::Error::AlertReceived(_)) => "alert_received",
        Some(rustls::Error::PeerIncompatible(_)) => "incompatible",
        _ => "handshake",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rustls_alerts_are_alerts() {
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(Alert::CertificateRequired),
        );
        assert_eq!(alert(&WireError::Io(tls)), Some(Alert::CertificateRequired));
        assert_eq!(alert(&WireError::Closed), None);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(alert(&WireError::Io(reset)), None);
    }
}
