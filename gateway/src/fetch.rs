//! A small HTTP/1.1 GET for firmware bundles and MTA-STS policies: `http://` and `https://`
//! (rustls with the image's CA bundle, or a configuration the caller brings), streaming, with
//! no redirects and a size limit.
//!
//! The body is handed out as a reader capped at `Content-Length`; a connection that ends
//! before that reads as end of file, which the bundle reader reports as truncation. A
//! redirect is refused rather than followed: a signed bundle does not need one, and
//! following it would send the appliance to a place the operator did not name (and RFC 8461
//! §3.3 forbids following one for an MTA-STS policy).

use crate::dns::Resolver;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The image's CA bundle (build-image copies the build host's).
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const CONNECT: Duration = Duration::from_secs(20);
const MAX_HEAD: usize = 16 * 1024;

pub type Body = Pin<Box<dyn AsyncRead + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0:?} is not an http:// or https:// URL")]
    Url(String),
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the server answered {0:?}")]
    Status(String),
    #[error("redirect to {0:?} refused (give the bundle's final URL)")]
    Redirect(String),
    #[error("the server sent no Content-Length (chunked or unknown-length bodies are refused)")]
    NoLength,
    #[error("the server offers {size} bytes; at most {limit} are accepted here")]
    TooBig { size: u64, limit: u64 },
    #[error("reading the response: {0}")]
    Io(#[from] std::io::Error),
}

/// A parsed `http://` or `https://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, FetchError> {
        let bad = || FetchError::Url(text.to_string());
        let (tls, rest) = match text.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            _ => return Err(bad()),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad());
        }
        let default = if tls { 443 } else { 80 };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                if h.contains(':') && !h.starts_with('[') {
                    (authority, default) // bare IPv6 without brackets: no port
                } else {
                    (h, p.parse().map_err(|_| bad())?)
                }
            }
            _ => (authority, default),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Url {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            path: path.to_string(),
        })
    }
}

/// Opens `url` and returns its body, at most `limit` bytes long.
pub async fn get(
    url: &Url,
    limit: u64,
    resolver: Option<&Resolver>,
    ca: &Path,
) -> Result<(Body, u64), FetchError> {
    let config = match url.tls {
        true => Some(ca_config(ca)?),
        false => None,
    };
    get_with(url, limit, resolver, config).await
}

/// [`get`] with the caller's TLS client configuration (`None`: plain HTTP only).
pub async fn get_with(
    url: &Url,
    limit: u64,
    resolver: Option<&Resolver>,
    config: Option<Arc<rustls::ClientConfig>>,
) -> Result<(Body, u64), FetchError> {
    let addr = SocketAddr::new(resolve(&url.host, resolver).await?, url.port);
    let tcp = tokio::time::timeout(CONNECT, TcpStream::connect(addr))
        .await
        .map_err(|_| FetchError::Connect {
            addr,
            reason: "timed out".into(),
        })?
        .map_err(|e| FetchError::Connect {
            addr,
            reason: e.to_string(),
        })?;
    match (url.tls, config) {
        (true, Some(config)) => request(tls(tcp, &url.host, config).await?, url, limit).await,
        (true, None) => Err(FetchError::Tls("no TLS configuration".into())),
        (false, _) => request(tcp, url, limit).await,
    }
}

async fn request<S>(mut stream: S, url: &Url, limit: u64) -> Result<(Body, u64), FetchError>
where
    S: AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let host = match url.host.contains(':') {
        true => format!("[{}]", url.host),
        false => url.host.clone(),
    };
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: edgemx/{}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
        url.path,
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(head.as_bytes()).await?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    let mut length = None;
    let mut location = None;
    let mut read = 0;
    loop {
        let mut line = String::new();
        let n = (&mut reader)
            .take((MAX_HEAD - read) as u64)
            .read_line(&mut line)
            .await?;
        read += n;
        if n == 0 || read >= MAX_HEAD {
            return Err(FetchError::Status(
                "an incomplete or oversized header".into(),
            ));
        }
        let line = line.trim_end();
        if status.is_empty() {
            status = line.to_string();
            continue;
        }
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<u64>().ok(),
            "location" => location = Some(value.to_string()),
            "transfer-encoding" if !value.eq_ignore_ascii_case("identity") => {
                return Err(FetchError::NoLength);
            }
            _ => {}
        }
    }
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code.starts_with('3') {
        return Err(FetchError::Redirect(location.unwrap_or_default()));
    }
    if !status.starts_with("HTTP/1.") || code != "200" {
        return Err(FetchError::Status(status));
    }
    let size = length.ok_or(FetchError::NoLength)?;
    if size > limit {
        return Err(FetchError::TooBig { size, limit });
    }
    Ok((Box::pin(reader.take(size)), size))
}

async fn resolve(host: &str, resolver: Option<&Resolver>) -> Result<IpAddr, FetchError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    if host == "localhost" {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    let fail = |reason: String| FetchError::Resolve {
        host: host.to_string(),
        reason,
    };
    let resolver = resolver.ok_or_else(|| fail("no resolver configured".into()))?;
    let addrs = resolver
        .addresses(host)
        .await
        .map_err(|e| fail(e.to_string()))?;
    addrs
        .first()
        .copied()
        .ok_or_else(|| fail("no address".into()))
}

/// Chain and name checks against the certificates in `ca` alone.
fn ca_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, FetchError> {
    let fail = |e: String| FetchError::Tls(e);
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::tls::read_certificates(ca).map_err(|e| fail(e.to_string()))? {
        // A CA bundle may carry certificates webpki cannot use; the others still count.
        let _ignored = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn tls(
    tcp: TcpStream,
    host: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, FetchError> {
    let fail = |e: String| FetchError::Tls(e);
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| fail(e.to_string()))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_scheme_host_port_and_path() {
        let u = Url::parse("http://10.0.2.101/fw/edgemx.bundle").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "10.0.2.101", 80, "/fw/edgemx.bundle")
        );
        let u = Url::parse("https://Updates.Example:8443").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "updates.example", 8443, "/")
        );
        let u = Url::parse("http://[::1]:8080/b").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        for bad in [
            "ftp://x/y",
            "http://",
            "http://u:p@h/x",
            "http://h/a b",
            "h/x",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
