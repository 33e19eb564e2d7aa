//! MX expansion against a tiny authoritative responder on 127.0.0.1 (UDP, hand-built answers).

use super::*;
use crate::config::Span;
use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, MX};
use hickory_resolver::proto::rr::{Name, Record, RecordType};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;

/// What the responder knows; names not listed are NXDOMAIN.
enum Entry {
    Mx(&'static [(u16, &'static str)]),
    A(&'static [[u8; 4]]),
    ServFail,
}

const ZONE: &[(&str, Entry)] = &[
    (
        "multi.test",
        Entry::Mx(&[
            (20, "c.multi.test."),
            (10, "a.multi.test."),
            (10, "b.multi.test."),
        ]),
    ),
    ("a.multi.test", Entry::A(&[[192, 0, 2, 1]])),
    ("implicit.test", Entry::A(&[[192, 0, 2, 7], [192, 0, 2, 8]])),
    ("null.test", Entry::Mx(&[(0, ".")])),
    ("broken.test", Entry::ServFail),
    ("bare.test", Entry::Mx(&[])),
];

async fn responder() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if let Ok(bytes) = answer(&query).to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    addr
}

fn answer(query: &Message) -> Message {
    let mut response = Message::response(query.metadata.id, query.metadata.op_code);
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    let Some(q) = query.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    response.add_query(q.clone());
    let name = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let entries: Vec<&Entry> = ZONE
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, e)| e)
        .collect();
    if entries.is_empty() {
        response.metadata.response_code = ResponseCode::NXDomain;
    }
    for entry in entries {
        match (entry, q.query_type()) {
            (Entry::ServFail, _) => response.metadata.response_code = ResponseCode::ServFail,
            (Entry::Mx(list), RecordType::MX) => {
                for (pref, host) in list.iter() {
                    let rdata = RData::MX(MX::new(*pref, Name::from_ascii(host).unwrap()));
                    response.add_answer(Record::from_rdata(q.name().clone(), 60, rdata));
                }
            }
            (Entry::A(list), RecordType::A) => {
                for ip in list.iter() {
                    let rdata = RData::A(A(Ipv4Addr::from(*ip)));
                    response.add_answer(Record::from_rdata(q.name().clone(), 60, rdata));
                }
            }
            _ => {}
        }
    }
    response
}

async fn resolver() -> Resolver {
    let server = responder().await;
    Resolver::new(&config::Dns {
        nameservers: vec![server],
        timeout: Some(Span(Duration::from_secs(1))),
    })
    .unwrap()
}

#[tokio::test]
async fn mx_hosts_are_sorted_by_preference() {
    let resolver = resolver().await;
    let hosts = resolver.mx_hosts("multi.test").await.unwrap();
    assert_eq!(hosts.len(), 3);
    let mut first: Vec<&str> = hosts[..2].iter().map(|(_, h)| h.as_str()).collect();
    first.sort();
    assert_eq!(first, ["a.multi.test", "b.multi.test"]);
    assert_eq!(hosts[2], (20, "c.multi.test".to_string()));
    assert_eq!(
        resolver.addresses("a.multi.test").await.unwrap(),
        [IpAddr::from([192, 0, 2, 1])]
    );
}

#[tokio::test]
async fn a_domain_without_mx_is_its_own_exchanger() {
    let resolver = resolver().await;
    assert_eq!(
        resolver.mx_hosts("implicit.test").await.unwrap(),
        [(0, "implicit.test".to_string())]
    );
    assert_eq!(resolver.addresses("implicit.test").await.unwrap().len(), 2);
}

#[tokio::test]
async fn null_mx_and_nxdomain_are_permanent() {
    let resolver = resolver().await;
    let null = resolver.mx_hosts("null.test").await.unwrap_err();
    assert!(
        null.is_permanent() && null.to_string().contains("5.1.10"),
        "{null}"
    );
    let missing = resolver.mx_hosts("missing.test").await.unwrap_err();
    assert!(missing.is_permanent(), "{missing}");
    let bare = resolver.mx_hosts("bare.test").await.unwrap_err();
    assert!(bare.is_permanent(), "no MX and no address: {bare}");
}

#[tokio::test]
async fn servfail_is_temporary() {
    let resolver = resolver().await;
    let err = resolver.mx_hosts("broken.test").await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
}

/// Every finding the audit can emit is in the findings table of docs/monitoring.md (`spf.lookup`
/// was not).
#[test]
fn every_audit_finding_is_documented() {
    fn sources(dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            match path.is_dir() {
                true => sources(&path, out),
                false => out.push(std::fs::read_to_string(&path).unwrap()),
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("../docs/monitoring.md")).unwrap();
    let mut texts = Vec::new();
    sources(&root.join("src/dns/audit"), &mut texts);
    let mut codes = Vec::new();
    for text in &texts {
        for (at, _) in text.match_indices("Level::") {
            // `Level::Error, "spf.lookup"`: the first quoted word after the level.
            let rest = &text[at..];
            let Some(comma) = rest.find(',') else {
                continue;
            };
            let after = rest[comma + 1..].trim_start();
            let Some(quoted) = after.strip_prefix('"') else {
                continue;
            };
            let code = quoted.split('"').next().unwrap_or_default();
            if code.contains('.') && !code.contains(' ') {
                codes.push(code.to_string());
            }
        }
    }
    assert!(codes.iter().any(|c| c == "spf.lookup"), "{codes:?}");
    let missing: Vec<&String> = codes
        .iter()
        .filter(|c| !doc.contains(&format!("`{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in the findings table of docs/monitoring.md: {missing:?}"
    );
}
