//! An SMTP client for transcripts: send a line, read the (multi-line) reply.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// All lines' text joined with '\n', without the code and separator.
    pub text: String,
}

impl Reply {
    /// `"250 2.0.0"`-style prefix check used by transcripts: code and enhanced status.
    pub fn is(&self, expected: &str) -> bool {
        let mut parts = expected.splitn(2, ' ');
        let code = parts.next().unwrap_or_default();
        let rest = parts.next().unwrap_or_default();
        code == self.code.to_string() && self.text.starts_with(rest)
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct SmtpClient {
    io: BufReader<Box<dyn Io>>,
    pub banner: Reply,
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl SmtpClient {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<SmtpClient> {
        Self::connected(TcpStream::connect(addr).await?).await
    }

    /// Connects from `source` (e.g. 127.0.0.2), so tests can be distinct clients.
    pub async fn connect_from(
        addr: SocketAddr,
        source: std::net::IpAddr,
    ) -> std::io::Result<SmtpClient> {
        let socket = match source {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(source, 0))?;
        Self::connected(socket.connect(addr).await?).await
    }

    /// Over a stream the caller connected (e.g. with `set_nodelay(true)`, as load clients
    /// that time replies need: Nagle would hold a lone "." for the peer's delayed ACK).
    pub async fn connected(stream: TcpStream) -> std::io::Result<SmtpClient> {
        let mut io: BufReader<Box<dyn Io>> = BufReader::new(Box::new(stream));
        let banner = read_reply(&mut io).await?;
        Ok(SmtpClient { io, banner })
    }

    /// Sends `line` plus CRLF and reads one reply.
    pub async fn command(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Asserts a transcript step: `c.expect("RCPT TO:<x@y>", "550 5.7.1").await`.
    pub async fn expect(&mut self, line: &str, expected: &str) -> Reply {
        let reply = self.command(line).await;
        assert!(
            reply.is(expected),
            "{line:?}: expected {expected:?}, got {reply:?}"
        );
        reply
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.io
            .get_mut()
            .write_all(bytes)
            .await
            .expect("write to gateway");
    }

    /// Reads one reply; panics on timeout or a malformed reply.
    pub async fn reply(&mut self) -> Reply {
        match self.try_reply().await {
            Ok(reply) => reply,
            Err(e) => panic!("no reply: {e}"),
        }
    }

    pub async fn try_reply(&mut self) -> std::io::Result<Reply> {
        read_reply(&mut self.io).await
    }

    /// True when the server closed the connection (EOF) within the timeout.
    pub async fn closed(&mut self) -> bool {
        let mut buf = Vec::new();
        matches!(
            tokio::time::timeout(TIMEOUT, self.io.read_until(b'\n', &mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// STARTTLS and handshake without certificate verification; returns the TLS version.
    pub async fn starttls(&mut self) -> String {
        self.expect("STARTTLS", "220 2.0.0").await;
        self.finish_tls_handshake().await
    }

    /// STARTTLS presenting a client certificate (chain, leaf first) when the server asks.
    pub async fn starttls_as(
        &mut self,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> String {
        self.expect("STARTTLS", "220 2.0.0").await;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_client_auth_cert(chain, key)
        .expect("client identity");
        self.handshake(Arc::new(config)).await
    }

    /// The handshake after a `220` to STARTTLS was read.
    pub async fn finish_tls_handshake(&mut self) -> String {
        self.handshake(tls_client(rustls::DEFAULT_VERSIONS)).await
    }

    async fn handshake(&mut self, config: Arc<rustls::ClientConfig>) -> String {
        let placeholder: Box<dyn Io> = Box::new(tokio::io::duplex(1).0);
        let inner = std::mem::replace(&mut self.io, BufReader::new(placeholder)).into_inner();
        let name = rustls::pki_types::ServerName::try_from("gateway.test").expect("name");
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, inner)
            .await
            .expect("TLS handshake with the gateway");
        let version = format!("{:?}", tls.get_ref().1.protocol_version().expect("version"));
        self.io = BufReader::new(Box::new(tls));
        version
    }

    /// Sends a whole message after DATA (adds the terminator) and returns the final reply.
    pub async fn data(&mut self, body: &str) -> Reply {
        self.expect("DATA", "354").await;
        let mut wire = body.replace("\r\n", "\n").replace('\n', "\r\n");
        if !wire.ends_with("\r\n") {
            wire.push_str("\r\n");
        }
        let stuffed = wire.replace("\r\n.", "\r\n..");
        let stuffed = if stuffed.starts_with('.') {
            format!(".{stuffed}")
        } else {
            stuffed
        };
        self.send(format!("{stuffed}.\r\n").as_bytes()).await;
        self.reply().await
    }
}

async fn read_reply(io: &mut BufReader<Box<dyn Io>>) -> std::io::Result<Reply> {
    let mut text = Vec::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(TIMEOUT, io.read_line(&mut line))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "reply timeout"))??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.len() < 3 || !line.is_char_boundary(3) {
            return Err(std::io::Error::other(format!("malformed reply {line:?}")));
        }
        let code: u16 = line[..3]
            .parse()
            .map_err(|_| std::io::Error::other(format!("malformed reply {line:?}")))?;
        text.push(line.get(4..).unwrap_or_default().to_string());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(Reply {
                code,
                text: text.join("\n"),
            });
        }
    }
}

pub fn tls_client(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("versions")
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AnyCert))
    .with_no_client_auth();
    Arc::new(config)
}

/// Like [`tls_client`], offering only the signature `schemes` (as an old client that
/// cannot verify ECDSA does), and with `suites` only when given.
pub fn tls_client_limited(
    versions: &[&'static rustls::SupportedProtocolVersion],
    schemes: &[rustls::SignatureScheme],
    suites: Option<&[rustls::CipherSuite]>,
) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(suites) = suites {
        provider
            .cipher_suites
            .retain(|s| suites.contains(&s.suite()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Limited(schemes.to_vec())))
        .with_no_client_auth();
    Arc::new(config)
}

/// EHLO, STARTTLS and a handshake limited to `versions`; returns the negotiated version.
pub async fn starttls_with_versions(
    stream: TcpStream,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> String {
    let mut io = BufReader::new(stream);
    let mut line = String::new();
    io.read_line(&mut line).await.expect("banner");
    io.get_mut()
        .write_all(b"EHLO client.test\r\n")
        .await
        .expect("ehlo");
    loop {
        line.clear();
        io.read_line(&mut line).await.expect("ehlo reply");
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    }
    io.get_mut()
        .write_all(b"STARTTLS\r\n")
        .await
        .expect("starttls");
    line.clear();
    io.read_line(&mut line).await.expect("starttls reply");
    assert!(line.starts_with("220"), "{line}");
    let name = rustls::pki_types::ServerName::try_from("gateway.test").expect("name");
    let tls = tokio_rustls::TlsConnector::from(tls_client(versions))
        .connect(name, io.into_inner())
        .await
        .expect("handshake");
    format!("{:?}", tls.get_ref().1.protocol_version().expect("version"))
}

/// Sends one message in a fresh session; returns the reply to the end of DATA.
pub async fn send_mail(
    addr: SocketAddr,
    from: &str,
    to: &[&str],
    body: &str,
) -> Result<Reply, String> {
    let mut c = SmtpClient::connect(addr).await.map_err(|e| e.to_string())?;
    if c.banner.code != 220 {
        return Err(format!("banner {:?}", c.banner));
    }
    let step = |r: Reply, want: u16| {
        if r.code == want {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    };
    step(c.command("EHLO client.test").await, 250)?;
    step(c.command(&format!("MAIL FROM:<{from}>")).await, 250)?;
    for rcpt in to {
        step(c.command(&format!("RCPT TO:<{rcpt}>")).await, 250)?;
    }
    let reply = c.data(body).await;
    let _ = c.command("QUIT").await;
    Ok(reply)
}

/// Accepts any certificate: tests check that TLS happens, not whom it authenticates.
#[derive(Debug)]
struct AnyCert;

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// [`AnyCert`] that announces only some signature schemes.
#[derive(Debug)]
struct Limited(Vec<rustls::SignatureScheme>);

impl rustls::client::danger::ServerCertVerifier for Limited {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        AnyCert.verify_server_cert(end_entity, intermediates, name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        AnyCert.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        AnyCert.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.clone()
    }
}
