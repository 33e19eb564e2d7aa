//! rustls configurations on the ring provider: the server side with the certificates the
//! gateway presents (ECDSA first, an RSA one beside it for clients without ECDSA, chosen per
//! ClientHello in `certs.rs`; asking for client certificates when `relay.client_ca` is set,
//! `clientauth.rs`), and the client side used towards next hops, one per TLS policy
//! (`client.rs`, `verify.rs`), with DANE and MTA-STS checks laid over them for MX hosts
//! (`dane.rs`, `guard.rs`). `cpu.rs` says which of ring's code paths this CPU runs.
//!
//! Owns loading the configured certificate, or generating a self-signed ECDSA P-256 one
//! into the data directory on first start. It must not touch sockets: sessions and the
//! delivery client build their streams from the configurations made here.

pub mod certs;
mod client;
mod clientauth;
pub mod cpu;
pub mod dane;
pub mod files;
pub mod guard;
mod verify;

pub use client::{ClientConfigs, client_config, server_name, webpki_verifier};
pub use clientauth::{ClientTrust, names as certificate_names};
pub use verify::spki_sha256;

use rustls::ServerConfig;
use rustls::crypto::ring as provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{key}: {reason}")]
    Setting { key: &'static str, reason: String },
    #[error("generating a certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Where the certificates came from, for the startup log line.
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub certificate: PathBuf,
    pub generated: bool,
    /// `tls.rsa_certificate`, served beside the first to clients without ECDSA.
    pub rsa_certificate: Option<PathBuf>,
}

/// Builds the server configuration: TLS 1.2 and 1.3, ring cipher suites, the configured
/// (or generated) certificate and the RSA one beside it (`certs.rs` chooses per client).
pub fn server(config: &crate::config::Config) -> Result<ServerTls, TlsError> {
    let (cert_path, key_path, generated) = match (&config.tls.certificate, &config.tls.private_key)
    {
        (Some(cert), Some(key)) => (cert.clone(), key.clone(), false),
        _ => {
            let dir = config.data_dir.join("tls");
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            let generated = !cert.exists() || !key.exists();
            if generated {
                self_signed(&config.hostname, &dir)?;
            }
            (cert, key, generated)
        }
    };
    let provider = Arc::new(provider::default_provider());
    let first = certs::certified(read_chain(&cert_path)?, read_key(&key_path)?, &provider)?;
    let rsa = match (&config.tls.rsa_certificate, &config.tls.rsa_private_key) {
        (Some(cert), Some(key)) => Some(certs::certified(
            read_chain(cert)?,
            read_key(key)?,
            &provider,
        )?),
        _ => None,
    };
    let resolver = certs::ByAlgorithm::new(first, rsa, provider.clone())?;
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &config.relay.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = read_certificates(ca)?;
            let trust = ClientTrust::new(&roots, &config.relay.client_names)?;
            builder.with_client_cert_verifier(trust.ask())
        }
    };
    let mut server = builder.with_cert_resolver(Arc::new(resolver));
    resumption(&mut server)?;
    Ok(ServerTls {
        config: Arc::new(server),
        certificate: cert_path,
        generated,
        rsa_certificate: config.tls.rsa_certificate.clone(),
    })
}

/// Session resumption (design: "session resumption both ways"): a reconnecting client
/// skips the full handshake. Stateless tickets for TLS 1.3 and TLS 1.2 (RFC 5077), under
/// keys that rotate every 6 hours (rustls' `Ticketer`, tickets live 12 hours), and session
/// IDs for TLS 1.2 clients without ticket support, from a bounded in-memory cache. Each
/// configuration gets its own ticket keys and cache, so a commit that changes client
/// certificate trust cannot resume a session authenticated under the old one.
fn resumption(server: &mut ServerConfig) -> Result<(), TlsError> {
    server.ticketer = provider::Ticketer::new()?;
    server.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok(())
}

/// TLS 1.2 sessions remembered by ID (a few hundred bytes each).
const SESSION_CACHE: usize = 4096;

/// Validity of a generated certificate: ten years, renewed with `renew-certificate` on the
/// console (a certificate valid until 4096 is refused by careful clients and hides expiry).
const GENERATED_VALIDITY_DAYS: u64 = 3650;

/// Writes `cert.pem` and `key.pem` (mode 0600) for `hostname` into `dir`, valid from a day
/// ago (clocks disagree) for [`GENERATED_VALIDITY_DAYS`].
pub fn self_signed(hostname: &str, dir: &Path) -> Result<(), TlsError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(vec![hostname.to_string()])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let today = crate::time::unix_now() / 86_400;
    let (y, m, d) = ymd(today.saturating_sub(1))?;
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(today + GENERATED_VALIDITY_DAYS)?;
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let file_err = |path: &Path, e: std::io::Error| TlsError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    // Key first: a certificate without its key would be unusable after a crash here.
    write_private(&dir.join("key.pem"), key.serialize_pem().as_bytes())
        .map_err(|e| file_err(&dir.join("key.pem"), e))?;
    write_private(&dir.join("cert.pem"), cert.pem().as_bytes())
        .map_err(|e| file_err(&dir.join("cert.pem"), e))?;
    Ok(())
}

/// Year, month and day of a day counted from 1970-01-01, in the types rcgen wants.
fn ymd(days: u64) -> Result<(i32, u8, u8), TlsError> {
    let (y, m, d) = crate::time::civil(days);
    let bad = |e: std::num::TryFromIntError| TlsError::Generate(e.to_string());
    Ok((
        i32::try_from(y).map_err(bad)?,
        u8::try_from(m).map_err(bad)?,
        u8::try_from(d).map_err(bad)?,
    ))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// Every PEM certificate in `path` (a chain, or a set of trust anchors); at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    read_chain(path)
}

/// A certificate chain and its private key (a client identity).
pub fn read_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    Ok((read_chain(cert)?, read_key(key)?))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::File {
        path: path.to_path_buf(),
        reason,
    };
    let pem = fs::read(path).map_err(|e| err(e.to_string()))?;
    let chain = pem_certificates(&pem).map_err(err)?;
    if chain.is_empty() {
        return Err(err("no PEM certificate found".into()));
    }
    Ok(chain)
}

/// Every certificate in a PEM text (other sections are skipped).
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM text; `None` when it has none.
pub fn pem_private_key(pem: &[u8]) -> Result<Option<PrivateKeyDer<'static>>, String> {
    use rustls::pki_types::pem::{self, PemObject};
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(Some(key)),
        Err(pem::Error::NoItemsFound) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let err = |reason: String| TlsError::File {
        path: path.to_path_buf(),
        reason,
    };
    let pem = fs::read(path).map_err(|e| err(e.to_string()))?;
    pem_private_key(&pem)
        .map_err(err)?
        .ok_or_else(|| err("no PEM private key found".into()))
}

/// `TLSv1.3 TLS13_AES_256_GCM_SHA384`: a finished handshake, for logs, Received headers
/// and the envelope.
pub fn describe(conn: &rustls::CommonState) -> String {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    };
    let suite = conn
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .unwrap_or("unknown");
    format!("{version} {suite}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_certificate_is_valid_for_ten_years_and_tickets_are_on() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "hostname = \"gw.test\"\ndata_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n",
            dir.path().display()
        );
        let config = crate::config::Config::parse(&text).unwrap();
        let tls = server(&config).unwrap();
        assert!(tls.generated);
        assert!(tls.config.ticketer.enabled(), "no session tickets");
        let chain = read_chain(&tls.certificate).unwrap();
        let until = crate::control::not_after(chain[0].as_ref()).expect("notAfter");
        let year: u64 = until[..4].parse().unwrap();
        let (now, _, _) = crate::time::civil(crate::time::unix_now() / 86_400);
        assert!((now + 9..=now + 10).contains(&year), "valid until {until}");
    }
}
