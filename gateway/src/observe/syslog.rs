//! Remote syslog: every log line, as an RFC 5424 message, to each `[[log.syslog]]`
//! collector over TCP (octet counting, RFC 6587 §3.4.1), TLS (RFC 5425) or UDP (RFC 5426).
//!
//! The logging caller only appends to a bounded in-memory queue per collector (a short
//! lock, no I/O); one thread per collector connects, sends and reconnects with backoff.
//! While a collector cannot be reached its queue keeps the newest `queue` lines, dropping
//! the oldest; how many were dropped is sent (and logged) once it is back. TCP and TLS
//! have no acknowledgements: lines written just before a connection broke unnoticed can
//! be lost (a connection the collector closed is noticed before each write). Over UDP a
//! refused datagram (ICMP port unreachable, seen on the next send) keeps its line queued.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::syslog::{Syslog, Transport};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The collectors of one logger.
pub struct Collectors(Vec<Arc<Outbox>>);

impl Collectors {
    /// Starts a sending thread per collector. `hostname` goes into every header.
    pub fn start(configs: &[Syslog], hostname: &str) -> Collectors {
        let hostname = header_hostname(hostname);
        let mut outboxes = Vec::new();
        for config in configs {
            let outbox = Arc::new(Outbox {
                pending: Mutex::new(Pending::default()),
                ready: Condvar::new(),
                idle: Condvar::new(),
                capacity: config.queue.max(1),
            });
            let sender = Sender {
                config: config.clone(),
                outbox: outbox.clone(),
                hostname: hostname.clone(),
            };
            let spawned = thread::Builder::new()
                .name("syslog".into())
                .spawn(move || sender.run());
            match spawned {
                Ok(_) => outboxes.push(outbox),
                Err(e) => eprintln!("edgemx: cannot start the syslog sender: {e}"),
            }
        }
        Collectors(outboxes)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Gives the senders until `timeout` to send what is queued (at exit: the last lines,
    /// "stopped" among them, would otherwise die with the process). A collector that is
    /// down takes the whole timeout.
    pub fn drain(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for outbox in &self.0 {
            outbox.drain(deadline);
        }
    }

    /// Queues one line for every collector; never waits for the network.
    pub fn send(&self, level: log::Level, stamp: &str, text: &str) {
        for outbox in &self.0 {
            outbox.push(Entry {
                severity: severity(level),
                stamp: stamp.to_string(),
                text: text.trim_end().to_string(),
            });
        }
    }
}

struct Entry {
    severity: u8,
    stamp: String,
    text: String,
}

#[derive(Default)]
struct Pending {
    lines: VecDeque<Entry>,
    dropped: u64,
    /// The sender holds lines taken from here and has not finished with them.
    busy: bool,
}

struct Outbox {
    pending: Mutex<Pending>,
    /// Lines arrived.
    ready: Condvar,
    /// The sender finished a batch.
    idle: Condvar,
    capacity: usize,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, entry: Entry) {
        let mut pending = self.lock();
        if pending.lines.len() >= self.capacity {
            pending.lines.pop_front();
            pending.dropped += 1;
        }
        pending.lines.push_back(entry);
        drop(pending);
        self.ready.notify_one();
    }

    /// Waits for lines and takes them all, with the count dropped since the last take.
    fn take(&self) -> (VecDeque<Entry>, u64) {
        let mut pending = self.lock();
        while pending.lines.is_empty() && pending.dropped == 0 {
            pending = self.ready.wait(pending).unwrap_or_else(|e| e.into_inner());
        }
        let dropped = std::mem::take(&mut pending.dropped);
        pending.busy = true;
        (std::mem::take(&mut pending.lines), dropped)
    }

    /// The sender is done with what it took (sent, or put back).
    fn settle(&self) {
        self.lock().busy = false;
        self.idle.notify_all();
    }

    /// Waits until everything queued was sent, or `deadline`.
    fn drain(&self, deadline: Instant) {
        let mut pending = self.lock();
        while !pending.lines.is_empty() || pending.busy {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            pending = match self.idle.wait_timeout(pending, left) {
                Ok((p, _)) => p,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Puts back what could not be sent, ahead of what came meanwhile, within capacity.
    fn unsend(&self, mut unsent: VecDeque<Entry>) {
        let mut pending = self.lock();
        unsent.append(&mut pending.lines);
        while unsent.len() > self.capacity {
            unsent.pop_front();
            pending.dropped += 1;
        }
        pending.lines = unsent;
    }
}

/// One collector's connection.
enum Link {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Udp(UdpSocket),
}

impl Link {
    /// Whether a stream's peer has closed it (or, over plain TCP, sent anything, which a
    /// collector never does). UDP cannot tell.
    fn closed(&mut self) -> bool {
        let socket = match self {
            Link::Tcp(s) => s,
            Link::Tls(s) => &s.sock,
            Link::Udp(_) => return false,
        };
        if socket.set_nonblocking(true).is_err() {
            return true;
        }
        let closed = match self {
            Link::Tcp(s) => {
                let mut byte = [0u8; 1];
                !matches!(s.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            // TLS 1.3 servers send session tickets after the handshake: read the records
            // and look for the end of the stream or a close_notify.
            Link::Tls(s) => loop {
                match s.conn.read_tls(&mut s.sock) {
                    Ok(0) => break true,
                    Ok(_) => match s.conn.process_new_packets() {
                        Ok(state) if state.peer_has_closed() => break true,
                        Ok(_) => {}
                        Err(_) => break true,
                    },
                    Err(e) => break e.kind() != io::ErrorKind::WouldBlock,
                }
            },
            Link::Udp(_) => false,
        };
        let socket = match self {
            Link::Tcp(s) => s,
            Link::Tls(s) => &s.sock,
            Link::Udp(_) => return closed,
        };
        closed || socket.set_nonblocking(false).is_err()
    }

    fn send(&mut self, message: &str) -> io::Result<()> {
        match self {
            // RFC 6587 §3.4.1: MSG-LEN SP SYSLOG-MSG; RFC 5425 §4.3 frames the same way.
            Link::Tcp(s) => s.write_all(format!("{} {message}", message.len()).as_bytes()),
            Link::Tls(s) => {
                s.write_all(format!("{} {message}", message.len()).as_bytes())?;
                s.flush()
            }
            Link::Udp(s) => s.send(message.as_bytes()).map(drop),
        }
    }
}

struct Sender {
    config: Syslog,
    outbox: Arc<Outbox>,
    hostname: String,
}

impl Sender {
    fn run(self) {
        let name = &self.config.address;
        let mut link: Option<Link> = None;
        let mut backoff = MIN_BACKOFF;
        let mut failing = false;
        loop {
            let (mut lines, dropped) = self.outbox.take();
            if link.as_mut().is_some_and(Link::closed) {
                link = None;
            }
            if link.is_none() {
                match self.connect() {
                    Ok(l) => link = Some(l),
                    Err(e) => {
                        if !failing {
                            log::warn!("syslog: collector {name}: {e}; keeping lines meanwhile");
                            failing = true;
                        }
                        self.requeue(lines, dropped);
                        self.outbox.settle();
                        thread::sleep(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            let Some(conn) = link.as_mut() else {
                self.outbox.settle();
                continue;
            };
            if dropped > 0 {
                log::warn!(
                    "syslog: {dropped} lines for {name} dropped while it was unreachable \
                     (queue of {})",
                    self.outbox.capacity
                );
            }
            while let Some(entry) = lines.front() {
                if let Err(e) = conn.send(&self.message(entry)) {
                    if !failing {
                        log::warn!("syslog: collector {name}: {e}; keeping lines meanwhile");
                        failing = true;
                    }
                    // A UDP socket stays usable: the error was an earlier datagram's.
                    if !matches!(conn, Link::Udp(_)) {
                        link = None;
                    }
                    break;
                }
                lines.pop_front();
            }
            if lines.is_empty() {
                if failing {
                    log::info!("syslog: collector {name} reached again");
                    failing = false;
                }
                backoff = MIN_BACKOFF;
                self.outbox.settle();
            } else {
                self.outbox.unsend(lines);
                self.outbox.settle();
                thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    fn requeue(&self, lines: VecDeque<Entry>, dropped: u64) {
        self.outbox.unsend(lines);
        self.outbox.lock().dropped += dropped;
    }

    /// `<PRI>1 TIMESTAMP HOSTNAME edgemx PROCID - - MSG` (RFC 5424 §6).
    fn message(&self, entry: &Entry) -> String {
        let pri = u16::from(self.config.facility_code()) * 8 + u16::from(entry.severity);
        format!(
            "<{pri}>1 {} {} edgemx {} - - {}",
            entry.stamp,
            self.hostname,
            std::process::id(),
            entry.text
        )
    }

    fn connect(&self) -> io::Result<Link> {
        let addrs: Vec<_> = self.config.address.to_socket_addrs()?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
        for addr in addrs {
            let attempt = match self.config.transport {
                Transport::Udp => UdpSocket::bind(if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                })
                .and_then(|s| s.connect(addr).map(|()| Link::Udp(s))),
                Transport::Tcp | Transport::Tls => {
                    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).and_then(|s| {
                        s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                        s.set_read_timeout(Some(WRITE_TIMEOUT))?;
                        if self.config.transport == Transport::Tls {
                            self.tls(s)
                        } else {
                            Ok(Link::Tcp(s))
                        }
                    })
                }
            };
            match attempt {
                Ok(link) => return Ok(link),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The TLS handshake, verifying the collector's certificate for the host of
    /// `address` against `ca` or the Mozilla roots.
    fn tls(&self, mut tcp: TcpStream) -> io::Result<Link> {
        let config = tls_config(&self.config).map_err(io::Error::other)?;
        let host = self.config.host().unwrap_or_default().to_string();
        let name = rustls::pki_types::ServerName::try_from(host).map_err(io::Error::other)?;
        let mut conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)?;
        }
        Ok(Link::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }
}

fn tls_config(config: &Syslog) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca {
        Some(path) => {
            for cert in crate::tls::read_certificates(path).map_err(|e| e.to_string())? {
                roots.add(cert).map_err(|e| e.to_string())?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let built = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(built))
}

/// RFC 5424 severities: err 3, warning 4, informational 6, debug 7.
fn severity(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// HOSTNAME is printable US-ASCII without spaces, at most 255 octets; `-` when unknown.
fn header_hostname(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if clean.is_empty() { "-".into() } else { clean }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector(address: &str) -> Syslog {
        toml::from_str(&format!("address = \"{address}\"\nqueue = 3")).unwrap()
    }

    #[test]
    fn the_header_carries_pri_version_host_app_and_pid() {
        let sender = Sender {
            config: collector("127.0.0.1:514"),
            outbox: Arc::new(Outbox {
                pending: Mutex::new(Pending::default()),
                ready: Condvar::new(),
                idle: Condvar::new(),
                capacity: 3,
            }),
            hostname: header_hostname("mx1.example.net"),
        };
        let entry = Entry {
            severity: severity(log::Level::Warn),
            stamp: "2026-12-03T19:30:00.123Z".into(),
            text: "queue is filling".into(),
        };
        assert_eq!(
            sender.message(&entry),
            format!(
                "<20>1 2026-12-03T19:30:00.123Z mx1.example.net edgemx {} - - queue is filling",
                std::process::id()
            )
        );
        assert_eq!(header_hostname(""), "-");
        assert_eq!(header_hostname("a b"), "ab");
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_them() {
        let outbox = Outbox {
            pending: Mutex::new(Pending::default()),
            ready: Condvar::new(),
            idle: Condvar::new(),
            capacity: 3,
        };
        for n in 0..5 {
            outbox.push(Entry {
                severity: 6,
                stamp: String::new(),
                text: n.to_string(),
            });
        }
        let (lines, dropped) = outbox.take();
        let texts: Vec<&str> = lines.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["2", "3", "4"]);
        assert_eq!(dropped, 2);
        outbox.push(Entry {
            severity: 6,
            stamp: String::new(),
            text: "5".into(),
        });
        outbox.unsend(lines);
        let (lines, dropped) = outbox.take();
        let texts: Vec<&str> = lines.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(
            texts,
            ["3", "4", "5"],
            "unsent lines go first, within capacity"
        );
        assert_eq!(dropped, 1);
    }
}
