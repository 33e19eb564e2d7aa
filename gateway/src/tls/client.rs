//! rustls client configurations for STARTTLS towards next hops: one per TLS policy, built
//! on first use and kept, so that each policy keeps its own session-resumption cache.
//!
//! `opportunistic` and `required` accept any certificate (like Postfix `may`/`encrypt`):
//! they protect against passive eavesdropping, and backends commonly present self-signed
//! or internal-CA certificates. `verify` checks the chain and name, `pin` the leaf's key
//! (see `verify.rs`). The handshake signatures are always checked with ring's algorithms,
//! so the peer must hold the private key of the certificate it presents.

use super::TlsError;
use super::guard::{Check, Guard, Guarded};
use super::verify::{AnyCertificate, Pinned};
use crate::config::{TlsMode, TlsPolicy};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::ring;
use rustls::pki_types::ServerName;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The client configuration per policy.
#[derive(Default)]
pub struct ClientConfigs {
    built: Mutex<HashMap<TlsPolicy, Arc<rustls::ClientConfig>>>,
    /// Guarded connections get a configuration each (the guard records that connection's
    /// outcome); those without a policy check share this session cache.
    resumption: Mutex<Option<rustls::client::Resumption>>,
}

impl ClientConfigs {
    /// The configuration for `policy`; fails when its files no longer load (they were
    /// checked when the configuration was read, so they changed since).
    pub fn get(&self, policy: &TlsPolicy) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(config) = built.get(policy) {
            return Ok(config.clone());
        }
        let config = Arc::new(build(policy)?);
        built.insert(policy.clone(), config.clone());
        Ok(config)
    }

    /// A configuration for one connection under `policy` with `guard` laid over it.
    pub fn guarded(
        &self,
        policy: &TlsPolicy,
        guard: &Arc<Guard>,
    ) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let base = verifier(policy)?;
        let verifier = Arc::new(Guarded {
            guard: guard.clone(),
            base,
        });
        let mut config = assemble(policy, verifier)?;
        // A resumed session skips the certificate check: a ticket from a session accepted
        // under a weaker policy (log-only, another TLSA set) must not carry a DANE or
        // MTA-STS connection past its check. Only policy-less guards share a cache.
        config.resumption = match guard.check {
            Check::Nothing => self
                .resumption
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(rustls::client::Resumption::default)
                .clone(),
            Check::Dane(_) | Check::WebPki(_) => rustls::client::Resumption::disabled(),
        };
        Ok(Arc::new(config))
    }
}

/// The opportunistic configuration (any certificate, no client certificate).
pub fn client_config() -> Arc<rustls::ClientConfig> {
    match build(&TlsPolicy::OPPORTUNISTIC) {
        Ok(config) => Arc::new(config),
        // Not network-reachable: no files are read for this policy.
        Err(e) => panic!("the ring provider supports TLS 1.2 and 1.3: {e}"),
    }
}

/// Server name for SNI and the `verify` name check: the policy's `name`, else the host
/// name when we have one, else the address.
pub fn server_name(policy: &TlsPolicy, host: &str, addr: std::net::IpAddr) -> ServerName<'static> {
    let wanted = policy.name.as_deref().unwrap_or(host);
    ServerName::try_from(wanted.to_owned()).unwrap_or_else(|_| ServerName::IpAddress(addr.into()))
}

fn build(policy: &TlsPolicy) -> Result<rustls::ClientConfig, TlsError> {
    assemble(policy, verifier(policy)?)
}

/// WebPKI chain and name checks against the Mozilla roots plus the certificates in `extra`
/// (MTA-STS: RFC 8461 §4.2 asks for PKIX, and labs bring their own CA).
pub fn webpki_verifier(
    extra: Option<&std::path::Path>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra {
        for cert in super::read_certificates(path)? {
            roots.add(cert).map_err(TlsError::Config)?;
        }
    }
    let provider = Arc::new(ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::Generate(format!("certificate verifier: {e}")))?;
    Ok(verifier)
}

fn verifier(policy: &TlsPolicy) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ServerCertVerifier> = match policy.mode {
        TlsMode::Verify => {
            let mut roots = rustls::RootCertStore::empty();
            match &policy.ca {
                Some(path) => {
                    for cert in super::read_certificates(path)? {
                        roots.add(cert).map_err(TlsError::Config)?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TlsError::Generate(format!("certificate verifier: {e}")))?
        }
        TlsMode::Pin => Arc::new(Pinned {
            pins: policy.pins.clone(),
            algorithms,
        }),
        TlsMode::None | TlsMode::Opportunistic | TlsMode::Required => {
            Arc::new(AnyCertificate { algorithms })
        }
    };
    Ok(verifier)
}

fn assemble(
    policy: &TlsPolicy,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&policy.client_certificate, &policy.client_key) {
        (Some(cert), Some(key)) => {
            let (chain, key) = super::read_identity(cert, key)?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a handshake in memory and reads the server's first bytes after it, so that TLS
    /// 1.3 tickets reach the client; how the handshake went.
    fn connect(
        client: Arc<rustls::ClientConfig>,
        server: Arc<rustls::ServerConfig>,
    ) -> rustls::HandshakeKind {
        use std::io::Write;
        let name = ServerName::try_from("gw.test").unwrap();
        let mut c = rustls::ClientConnection::new(client, name).unwrap();
        let mut s = rustls::ServerConnection::new(server).unwrap();
        s.writer().write_all(b"220 after\r\n").unwrap();
        for _ in 0..4 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets().unwrap();
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets().unwrap();
        }
        assert!(!c.is_handshaking());
        c.handshake_kind().unwrap()
    }

    /// The outbound session cache (issue 16 item 2): one configuration per policy, kept,
    /// so a second connection to a next hop resumes the first one's session.
    #[test]
    fn a_second_connection_under_the_same_policy_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "hostname = \"gw.test\"\ndata_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n",
            dir.path().display()
        );
        let config = crate::config::Config::parse(&text).unwrap();
        let server = super::super::server(&config).unwrap().config;
        let configs = ClientConfigs::default();
        for policy in [TlsPolicy::OPPORTUNISTIC, TlsPolicy::REQUIRED] {
            let first = connect(configs.get(&policy).unwrap(), server.clone());
            assert_eq!(first, rustls::HandshakeKind::Full, "{policy:?}");
            let second = connect(configs.get(&policy).unwrap(), server.clone());
            assert_eq!(second, rustls::HandshakeKind::Resumed, "{policy:?}");
        }
    }
}
