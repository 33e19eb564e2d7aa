//! A fake backend MTA on 127.0.0.1: records every message it accepts, and answers as a
//! test scripts it (greeting, per-recipient replies, DATA reply, STARTTLS or not). The
//! STARTTLS server configuration chooses the certificate presented and whether a client
//! certificate is required (see [`crate::pki`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// What the backend says; change it while the test runs through [`FakeBackend::set`].
#[derive(Clone)]
pub struct Backend {
    pub greeting: String,
    pub starttls: Option<Arc<rustls::ServerConfig>>,
    /// Replies for particular recipients (lower-case address); others get `250 2.1.5 ok`.
    pub rcpt_replies: HashMap<String, String>,
    pub data_reply: String,
    pub extensions: Vec<String>,
}

impl Default for Backend {
    fn default() -> Self {
        Backend {
            greeting: "220 backend.test ESMTP fake".into(),
            starttls: None,
            rcpt_replies: HashMap::new(),
            data_reply: "250 2.0.0 stored".into(),
            extensions: vec![
                "PIPELINING".into(),
                "8BITMIME".into(),
                "SMTPUTF8".into(),
                "SIZE 104857600".into(),
                "ENHANCEDSTATUSCODES".into(),
            ],
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// Message content after dot-unstuffing, CRLF line endings, terminator removed.
    pub data: Vec<u8>,
    /// The TLS version used, if the transaction ran over TLS.
    pub tls: Option<String>,
    /// Raw MAIL FROM line as received (to check parameters such as SIZE or SMTPUTF8).
    pub mail_line: String,
    /// Raw RCPT TO lines of the accepted recipients (to check DSN's NOTIFY and ORCPT).
    pub rcpt_lines: Vec<String>,
    /// The client presented a certificate in the TLS handshake (only possible when the
    /// `starttls` config asks for one).
    pub client_certificate: bool,
}

impl ReceivedMessage {
    pub fn message_id(&self) -> Option<String> {
        header(&self.data, "message-id")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// First value of header `name` (case-insensitive) in `data`, unfolded.
pub fn header(data: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next()?;
    let mut found: Option<String> = None;
    for line in head.split("\r\n") {
        if let Some(value) = found.as_mut() {
            if line.starts_with(' ') || line.starts_with('\t') {
                value.push_str(line.trim_start());
                continue;
            }
            break;
        }
        if let Some((key, value)) = line.split_once(':')
            && key.eq_ignore_ascii_case(name)
        {
            found = Some(value.trim().to_string());
        }
    }
    found
}

struct Shared {
    behaviour: Mutex<Backend>,
    messages: Mutex<Vec<ReceivedMessage>>,
    connections: Mutex<usize>,
    arrived: Notify,
}

pub struct FakeBackend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeBackend {
    pub async fn start() -> FakeBackend {
        Self::start_with("127.0.0.1:0".parse().expect("addr"), Backend::default()).await
    }

    pub async fn start_on(addr: SocketAddr) -> FakeBackend {
        Self::start_with(addr, Backend::default()).await
    }

    pub async fn start_with(addr: SocketAddr, behaviour: Backend) -> FakeBackend {
        let listener = TcpListener::bind(addr).await.expect("backend bind");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            messages: Mutex::new(Vec::new()),
            connections: Mutex::new(0),
            arrived: Notify::new(),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                *s.connections.lock().unwrap() += 1;
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = converse(stream, s).await;
                });
            }
        });
        FakeBackend { addr, shared, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, change: impl FnOnce(&mut Backend)) {
        change(&mut self.shared.behaviour.lock().unwrap());
    }

    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared.messages.lock().unwrap().clone()
    }

    /// What this backend received, readable even after [`FakeBackend::stop`] (connections
    /// accepted before the stop may still deliver).
    pub fn recorder(&self) -> impl Fn() -> Vec<ReceivedMessage> + use<> {
        let shared = self.shared.clone();
        move || shared.messages.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        *self.shared.connections.lock().unwrap()
    }

    /// Waits until at least `n` messages arrived; panics after `timeout`.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            let have = self.messages();
            if have.len() >= n {
                return have;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "backend {} received {} of {n} messages within {timeout:?}",
                    self.addr,
                    self.messages().len()
                );
            }
        }
    }

    /// Stops listening and drops the port (the gateway then sees connection refused).
    pub fn stop(self) -> SocketAddr {
        self.task.abort();
        self.addr
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn converse(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let behaviour = shared.behaviour.lock().unwrap().clone();
    let mut io: BufReader<Box<dyn Io>> = BufReader::new(Box::new(stream));
    io.get_mut()
        .write_all(format!("{}\r\n", behaviour.greeting).as_bytes())
        .await?;
    if !behaviour.greeting.starts_with('2') {
        return Ok(());
    }
    let mut tls: Option<String> = None;
    let mut client_certificate = false;
    let mut from = String::new();
    let mut mail_line = String::new();
    let mut rcpts: Vec<String> = Vec::new();
    let mut rcpt_lines: Vec<String> = Vec::new();
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            let mut ext = behaviour.extensions.clone();
            if behaviour.starttls.is_some() && tls.is_none() {
                ext.push("STARTTLS".into());
            }
            let mut out = String::from("250-backend.test\r\n");
            for (i, e) in ext.iter().enumerate() {
                let sep = if i + 1 == ext.len() { ' ' } else { '-' };
                out.push_str(&format!("250{sep}{e}\r\n"));
            }
            if ext.is_empty() {
                out = "250 backend.test\r\n".into();
            }
            out
        } else if upper.starts_with("HELO") {
            "250 backend.test\r\n".into()
        } else if upper.starts_with("STARTTLS") {
            let Some(config) = behaviour.starttls.clone() else {
                io.get_mut().write_all(b"502 5.5.1 no TLS\r\n").await?;
                continue;
            };
            io.get_mut().write_all(b"220 2.0.0 go ahead\r\n").await?;
            let inner = io.into_inner();
            let stream = tokio_rustls::TlsAcceptor::from(config)
                .accept(inner)
                .await?;
            tls = stream
                .get_ref()
                .1
                .protocol_version()
                .map(|v| format!("{v:?}"));
            client_certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            io = BufReader::new(Box::new(stream));
            continue;
        } else if upper.starts_with("MAIL FROM:") {
            mail_line = line.trim_end().to_string();
            from = path_of(&line[10..]);
            rcpts.clear();
            rcpt_lines.clear();
            "250 2.1.0 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = path_of(&line[8..]);
            match behaviour.rcpt_replies.get(&rcpt.to_ascii_lowercase()) {
                Some(reply) => format!("{reply}\r\n"),
                None => {
                    rcpts.push(rcpt);
                    rcpt_lines.push(line.trim_end().to_string());
                    "250 2.1.5 ok\r\n".into()
                }
            }
        } else if upper.starts_with("DATA") {
            if rcpts.is_empty() {
                "554 5.5.1 no valid recipients\r\n".into()
            } else {
                io.get_mut().write_all(b"354 go ahead\r\n").await?;
                let data = read_data(&mut io).await?;
                if behaviour.data_reply.starts_with('2') {
                    shared.messages.lock().unwrap().push(ReceivedMessage {
                        mail_from: from.clone(),
                        rcpt_to: rcpts.clone(),
                        data,
                        tls: tls.clone(),
                        mail_line: mail_line.clone(),
                        rcpt_lines: rcpt_lines.clone(),
                        client_certificate,
                    });
                    shared.arrived.notify_waiters();
                }
                rcpts.clear();
                format!("{}\r\n", behaviour.data_reply)
            }
        } else if upper.starts_with("RSET") {
            rcpts.clear();
            "250 2.0.0 ok\r\n".into()
        } else if upper.starts_with("NOOP") {
            "250 2.0.0 ok\r\n".into()
        } else if upper.starts_with("QUIT") {
            io.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "500 5.5.2 unknown\r\n".into()
        };
        io.get_mut().write_all(reply.as_bytes()).await?;
    }
}

fn path_of(arg: &str) -> String {
    let arg = arg.trim().trim_start_matches('<');
    arg.split('>').next().unwrap_or_default().to_string()
}

async fn read_data(io: &mut BufReader<Box<dyn Io>>) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if io.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" {
            return Ok(data);
        }
        let content = if line.starts_with(b".") {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(content);
    }
}

#[cfg(test)]
mod tests {
    use super::{header, path_of};

    #[test]
    fn paths_and_headers_are_extracted() {
        assert_eq!(path_of("<a@b.example> SIZE=10\r\n"), "a@b.example");
        assert_eq!(path_of("<>\r\n"), "");
        let data = b"Subject: hi\r\nMessage-ID:\r\n <x@y>\r\n\r\nbody";
        assert_eq!(header(data, "message-id").as_deref(), Some("<x@y>"));
    }
}
