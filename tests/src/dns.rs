//! A DNS server for tests, on 127.0.0.1 (UDP and TCP on one port), answering from an
//! in-memory zone that a test can replace while it runs.
//!
//! It is authoritative for everything it holds and nothing else: a name it does not hold is
//! NXDOMAIN, a name it holds without the asked type is an empty NOERROR answer (with a SOA
//! so resolvers can cache the negative answer), and names marked `servfail` answer SERVFAIL
//! so tests can exercise temporary DNS errors. CNAMEs are answered with the chain followed
//! inside the zone, as a real authoritative server would. It never forwards anything.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// The records a [`DnsServer`] answers from, built with chained calls.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    records: Vec<(String, u32, RData)>,
    servfail: Vec<String>,
    ttl: Option<u32>,
}

const DEFAULT_TTL: u32 = 300;

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// TTL for the records added after this call (300 s before any call).
    pub fn ttl(mut self, seconds: u32) -> Zone {
        self.ttl = Some(seconds);
        self
    }

    pub fn mx(self, name: &str, preference: u16, exchange: &str) -> Zone {
        let rdata = RData::MX(MX::new(preference, dns_name(exchange)));
        self.add(name, rdata)
    }

    /// An A or AAAA record, by the address family.
    pub fn a(self, name: &str, addr: IpAddr) -> Zone {
        let rdata = match addr {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        self.add(name, rdata)
    }

    /// A TXT record; text longer than 255 bytes is split into several strings, as a
    /// zone file would publish a DKIM key.
    pub fn txt(self, name: &str, text: &str) -> Zone {
        let strings = text
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        self.add(name, RData::TXT(TXT::new(strings)))
    }

    pub fn cname(self, name: &str, target: &str) -> Zone {
        self.add(name, RData::CNAME(CNAME(dns_name(target))))
    }

    /// Every query for `name` (any type) answers SERVFAIL.
    pub fn servfail(mut self, name: &str) -> Zone {
        self.servfail.push(key(name));
        self
    }

    fn add(mut self, name: &str, rdata: RData) -> Zone {
        let ttl = self.ttl.unwrap_or(DEFAULT_TTL);
        self.records.push((key(name), ttl, rdata));
        self
    }

    /// The answer for one question: response code and answer records.
    fn answer(&self, qname: &Name, qtype: RecordType) -> (ResponseCode, Vec<Record>) {
        let mut name = key(&qname.to_ascii());
        let mut out = Vec::new();
        // Follows CNAME chains inside the zone; the bound stops a planted loop.
        for _ in 0..8 {
            if self.servfail.contains(&name) {
                return (ResponseCode::ServFail, Vec::new());
            }
            let held: Vec<_> = self.records.iter().filter(|r| r.0 == name).collect();
            if held.is_empty() {
                let code = if out.is_empty() {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::NoError
                };
                return (code, out);
            }
            let owner = dns_name(&name);
            let matching: Vec<_> = held
                .iter()
                .filter(|r| r.2.record_type() == qtype || qtype == RecordType::ANY)
                .collect();
            if !matching.is_empty() {
                for r in matching {
                    out.push(Record::from_rdata(owner.clone(), r.1, r.2.clone()));
                }
                return (ResponseCode::NoError, out);
            }
            match held.iter().find(|r| matches!(r.2, RData::CNAME(_))) {
                Some(r) => {
                    out.push(Record::from_rdata(owner, r.1, r.2.clone()));
                    let RData::CNAME(CNAME(target)) = &r.2 else {
                        unreachable!("matched as CNAME above")
                    };
                    name = key(&target.to_ascii());
                }
                None => return (ResponseCode::NoError, out),
            }
        }
        (ResponseCode::ServFail, Vec::new())
    }
}

/// The running server; dropped or [`DnsServer::stop`]ped, it stops answering.
pub struct DnsServer {
    /// UDP and TCP on this address.
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    pub async fn start(zone: Zone) -> DnsServer {
        // UDP and TCP on one port: the kernel picks a free UDP port, whose TCP twin another
        // test may hold already; then try another.
        let mut tries = 0;
        let (udp, tcp, addr) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns udp");
            let addr = udp.local_addr().expect("dns addr");
            match TcpListener::bind(addr).await {
                Ok(tcp) => break (udp, tcp, addr),
                Err(e) if tries < 50 && e.kind() == std::io::ErrorKind::AddrInUse => tries += 1,
                Err(e) => panic!("bind dns tcp on {addr}: {e}"),
            }
        };
        let zone = Arc::new(Mutex::new(zone));
        let queries = Arc::new(AtomicU64::new(0));
        let tasks = vec![
            tokio::spawn(serve_udp(udp, zone.clone(), queries.clone())),
            tokio::spawn(serve_tcp(tcp, zone.clone(), queries.clone())),
        ];
        DnsServer {
            addr,
            zone,
            queries,
            tasks,
        }
    }

    /// Replaces every record while the server runs.
    pub fn set(&self, zone: Zone) {
        *self.zone.lock().expect("zone lock") = zone;
    }

    /// Queries answered so far (UDP and TCP).
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::SeqCst)
    }

    /// `[dns]` configuration pointing the gateway at this server.
    pub fn config(&self) -> String {
        format!(
            "[dns]\nnameservers = [\"{}\"]\ntimeout = \"2s\"\n",
            self.addr
        )
    }

    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve_udp(socket: UdpSocket, zone: Arc<Mutex<Zone>>, queries: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Some(reply) = respond(&buf[..n], &zone, &queries, true) else {
            continue;
        };
        let _ = socket.send_to(&reply, peer).await;
    }
}

async fn serve_tcp(listener: TcpListener, zone: Arc<Mutex<Zone>>, queries: Arc<AtomicU64>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve_tcp_conn(stream, zone.clone(), queries.clone()));
    }
}

async fn serve_tcp_conn(mut stream: TcpStream, zone: Arc<Mutex<Zone>>, queries: Arc<AtomicU64>) {
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut request = vec![0u8; len as usize];
        if stream.read_exact(&mut request).await.is_err() {
            return;
        }
        let Some(reply) = respond(&request, &zone, &queries, false) else {
            return;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        if stream.write_u16(len).await.is_err() || stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// Builds the wire reply to one request; `None` for bytes that are not a DNS query.
fn respond(request: &[u8], zone: &Mutex<Zone>, queries: &AtomicU64, udp: bool) -> Option<Vec<u8>> {
    let request = Message::from_vec(request).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    queries.fetch_add(1, Ordering::SeqCst);
    let mut reply = Message::response(request.metadata.id, OpCode::Query);
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    let limit = match &request.edns {
        Some(edns) => {
            let mut ours = Edns::new();
            ours.set_max_payload(4096);
            reply.set_edns(ours);
            edns.max_payload().max(512) as usize
        }
        None => 512,
    };
    if let Some(query) = request.queries.first() {
        reply.add_query(query.clone());
        let (code, answers) = zone
            .lock()
            .expect("zone lock")
            .answer(query.name(), query.query_type());
        reply.metadata.response_code = code;
        if answers.is_empty() && code != ResponseCode::ServFail {
            reply.authorities.push(soa(query.name()));
        }
        reply.add_answers(answers);
    }
    let bytes = reply.to_vec().ok()?;
    if udp && bytes.len() > limit {
        return reply.truncate().to_vec().ok();
    }
    Some(bytes)
}

/// A SOA for negative answers, with a short minimum so tests that change the zone are not
/// held up by negative caching.
fn soa(qname: &Name) -> Record {
    let zone = qname.base_name();
    let soa = SOA::new(
        dns_name("ns.test"),
        dns_name("hostmaster.test"),
        1,
        3600,
        600,
        86400,
        1,
    );
    Record::from_rdata(zone, 1, RData::SOA(soa))
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn dns_name(name: &str) -> Name {
    let mut n = Name::from_ascii(name).expect("test zone holds a valid name");
    n.set_fqdn(true);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        Zone::new()
            .mx("example.test", 10, "mx1.example.test")
            .a("mx1.example.test", "127.0.0.1".parse().unwrap())
            .cname("alias.example.test", "mx1.example.test")
            .servfail("broken.test")
    }

    fn ask(zone: &Zone, name: &str, t: RecordType) -> (ResponseCode, Vec<Record>) {
        zone.answer(&Name::from_ascii(name).unwrap(), t)
    }

    #[test]
    fn answers_held_records_and_follows_cnames() {
        let zone = zone();
        let (code, mx) = ask(&zone, "Example.Test.", RecordType::MX);
        assert_eq!((code, mx.len()), (ResponseCode::NoError, 1));
        let (code, a) = ask(&zone, "alias.example.test", RecordType::A);
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(a.len(), 2, "the CNAME and the A it points at");
        assert_eq!(a[1].record_type(), RecordType::A);
    }

    #[test]
    fn missing_names_types_and_servfail_are_distinct() {
        let zone = zone();
        assert_eq!(
            ask(&zone, "nx.test", RecordType::A).0,
            ResponseCode::NXDomain
        );
        let (code, none) = ask(&zone, "example.test", RecordType::TXT);
        assert_eq!((code, none.len()), (ResponseCode::NoError, 0));
        assert_eq!(
            ask(&zone, "broken.test", RecordType::MX).0,
            ResponseCode::ServFail
        );
    }

    #[test]
    fn long_txt_is_split_into_255_byte_strings() {
        let zone = Zone::new().txt("k.test", &"x".repeat(600));
        let (_, records) = ask(&zone, "k.test", RecordType::TXT);
        let RData::TXT(txt) = &records[0].data else {
            panic!("not TXT")
        };
        let sizes: Vec<usize> = txt.txt_data.iter().map(|s| s.len()).collect();
        assert_eq!(sizes, [255, 255, 90]);
    }
}
