//! A scripted SMTP server for the client tests, on 127.0.0.1: optional STARTTLS with an
//! rcgen self-signed certificate, per-recipient replies, and a record of what it saw.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

pub struct Script {
    pub greeting: &'static str,
    pub extensions: Vec<&'static str>,
    /// Offer STARTTLS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Replies to `RCPT TO` by address; others get `250 2.1.5 ok`.
    pub rcpt: Vec<(&'static str, &'static str)>,
    pub data: &'static str,
    pub final_reply: &'static str,
    /// Hold every reply from `MAIL` until `DATA` arrived: a client that waits for the
    /// `MAIL` reply before sending `RCPT` (no pipelining) then times out.
    pub strict_pipelining: bool,
    /// Answer STARTTLS with 220, then send garbage instead of a handshake.
    pub broken_tls: bool,
    /// Drop the connection (no reply, no QUIT) after this many messages.
    pub close_after: Option<usize>,
    /// Never answer the end of data.
    pub stall_after_data: bool,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            greeting: "220 fake.test ESMTP",
            extensions: vec![
                "PIPELINING",
                "SIZE 10000000",
                "8BITMIME",
                "ENHANCEDSTATUSCODES",
            ],
            tls: None,
            rcpt: Vec::new(),
            data: "354 go ahead",
            final_reply: "250 2.0.0 queued",
            strict_pipelining: false,
            broken_tls: false,
            close_after: None,
            stall_after_data: false,
        }
    }
}

#[derive(Default, Debug)]
pub struct Seen {
    pub accepts: usize,
    pub commands: Vec<String>,
    /// Message data exactly as received (still dot-stuffed), without the final `.` line.
    pub messages: Vec<Vec<u8>>,
    /// Negotiated TLS versions, one per handshake.
    pub tls: Vec<String>,
    /// Transactions between `354` and the final reply now, and the most at once.
    pub in_data: usize,
    pub most_in_data: usize,
}

pub struct Fake {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub async fn start(script: Script) -> Fake {
    start_on(SocketAddr::from(([127, 0, 0, 1], 0)), script).await
}

/// As [`start`], on a given address (a backend that comes back on its old port).
pub async fn start_on(addr: SocketAddr, script: Script) -> Fake {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let script = Arc::new(script);
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            record.lock().unwrap().accepts += 1;
            let io: Box<dyn Io> = Box::new(tcp);
            tokio::spawn(serve(BufReader::new(io), script.clone(), record.clone()));
        }
    });
    Fake { addr, seen }
}

/// A self-signed ECDSA certificate for `localhost`, TLS 1.2 and 1.3.
pub fn tls_config() -> Arc<rustls::ServerConfig> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

async fn serve(mut io: BufReader<Box<dyn Io>>, script: Arc<Script>, seen: Arc<Mutex<Seen>>) {
    let mut out = format!("{}\r\n", script.greeting);
    if !script.greeting.starts_with('2') {
        let _ = io.get_mut().write_all(out.as_bytes()).await;
        return;
    }
    let (mut in_tls, mut holding, mut accepted, mut messages) = (false, false, 0, 0);
    let mut line = String::new();
    loop {
        if !holding && io.buffer().is_empty() && !out.is_empty() {
            if io.get_mut().write_all(out.as_bytes()).await.is_err() {
                return;
            }
            out.clear();
        }
        line.clear();
        match io.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_string();
        seen.lock().unwrap().commands.push(command.clone());
        let verb = command.split(' ').next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                let mut ext = script.extensions.clone();
                if (script.tls.is_some() || script.broken_tls) && !in_tls {
                    ext.push("STARTTLS");
                }
                out.push_str("250-fake.test\r\n");
                for (i, e) in ext.iter().enumerate() {
                    let sep = if i + 1 == ext.len() { ' ' } else { '-' };
                    out.push_str(&format!("250{sep}{e}\r\n"));
                }
                if ext.is_empty() {
                    out = out.replace("250-fake.test", "250 fake.test");
                }
            }
            "HELO" | "RSET" | "NOOP" => out.push_str("250 2.0.0 ok\r\n"),
            "STARTTLS" if script.broken_tls => {
                let _ = io
                    .get_mut()
                    .write_all(b"220 2.0.0 ready\r\nnot a handshake\r\n")
                    .await;
                return;
            }
            "STARTTLS" => {
                let Some(config) = script.tls.clone() else {
                    out.push_str("502 5.5.1 no\r\n");
                    continue;
                };
                out.push_str("220 2.0.0 ready\r\n");
                if io.get_mut().write_all(out.as_bytes()).await.is_err() {
                    return;
                }
                out.clear();
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let Ok(tls) = acceptor.accept(io.into_inner()).await else {
                    return;
                };
                let version = format!("{:?}", tls.get_ref().1.protocol_version());
                seen.lock().unwrap().tls.push(version);
                io = BufReader::new(Box::new(tls));
                in_tls = true;
            }
            "MAIL" => {
                accepted = 0;
                holding = script.strict_pipelining;
                out.push_str("250 2.1.0 ok\r\n");
            }
            "RCPT" => {
                let address = command.split(['<', '>']).nth(1).unwrap_or("");
                let reply = script
                    .rcpt
                    .iter()
                    .find(|(a, _)| *a == address)
                    .map_or("250 2.1.5 ok", |(_, r)| *r);
                if reply.starts_with('2') {
                    accepted += 1;
                }
                out.push_str(&format!("{reply}\r\n"));
            }
            "DATA" => {
                holding = false;
                if accepted == 0 {
                    out.push_str("554 5.5.1 no valid recipients\r\n");
                    continue;
                }
                out.push_str(&format!("{}\r\n", script.data));
                if !script.data.starts_with("354") {
                    continue;
                }
                if io.get_mut().write_all(out.as_bytes()).await.is_err() {
                    return;
                }
                out.clear();
                {
                    let mut seen = seen.lock().unwrap();
                    seen.in_data += 1;
                    seen.most_in_data = seen.most_in_data.max(seen.in_data);
                }
                let mut data = Vec::new();
                loop {
                    let mut raw = Vec::new();
                    match io.read_until(b'\n', &mut raw).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if raw == b".\r\n" {
                        break;
                    }
                    data.extend_from_slice(&raw);
                }
                {
                    let mut seen = seen.lock().unwrap();
                    seen.messages.push(data);
                    seen.in_data -= 1;
                }
                if script.stall_after_data {
                    std::future::pending::<()>().await;
                }
                out.push_str(&format!("{}\r\n", script.final_reply));
                messages += 1;
                if script.close_after == Some(messages) {
                    let _ = io.get_mut().write_all(out.as_bytes()).await;
                    return;
                }
            }
            "QUIT" => {
                let _ = io.get_mut().write_all(b"221 2.0.0 bye\r\n").await;
                return;
            }
            _ => out.push_str("500 5.5.2 unknown command\r\n"),
        }
    }
}
