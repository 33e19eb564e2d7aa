//! Cost of DANE and MTA-STS (issue 15): run once, release build, loopback only.
//!
//! `cargo run --release -p edgemx-tests --bin bench-transport [DESTINATIONS]`
//!
//! A knotd on loopback serves a zone signed with ldns-signzone holding DESTINATIONS domains
//! `dK.bench.test`, each with its own MX host `mxK.bench.test`, a TLSA record for it, an
//! `_mta-sts` record and a policy host; one rustls HTTPS server answers for every policy
//! host, and one fake backend presents a certificate (lab CA) naming every MX host.
//!
//! 1. Resolver cost per new destination: the plain resolver (MX + A) against the validating
//!    resolver (MX + A + TLSA, DNSSEC-checked), each destination looked up once, then the
//!    same destinations again from the cache.
//! 2. End-to-end delivery, one message per connection, one message to each domain sent by
//!    8 clients, twice on the same gateway: the first pass finds every lookup, validation
//!    and policy fetch new, the second finds them cached; with transport security off, DANE
//!    enforced, and MTA-STS enforced.
//!
//! Prints a Markdown table.

use edgemx::config::{Dane, DaneMode, Dns, Span};
use edgemx::dns::Resolver;
use edgemx::dns::dnssec::Validating;
use edgemx_tests::backend::Backend;
use edgemx_tests::dnssec::{SignedZone, tlsa_ee};
use edgemx_tests::https::PolicyServer;
use edgemx_tests::pki::Ca;
use edgemx_tests::{FakeBackend, Gateway, send_mail};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SENDERS: usize = 8;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("DESTINATIONS is a number"))
        .unwrap_or(200);
    let ca = Ca::new("Bench CA");
    let ca_dir = tempfile::tempdir().unwrap();
    ca.write(ca_dir.path(), "ca.pem");
    let mx_names: Vec<String> = (0..n).map(|k| format!("mx{k}.bench.test")).collect();
    let sts_names: Vec<String> = (0..n).map(|k| format!("mta-sts.d{k}.bench.test")).collect();
    let mx_id = ca.issue("mx0.bench.test", &names(&mx_names));
    let sts_id = ca.issue("mta-sts.d0.bench.test", &names(&sts_names));
    let backend = FakeBackend::start_with(
        "127.0.0.1:0".parse().unwrap(),
        Backend {
            starttls: Some(mx_id.server_config(None)),
            ..Backend::default()
        },
    )
    .await;
    let port = backend.addr().port();
    let policy = "version: STSv1\r\nmode: enforce\r\nmx: *.bench.test\r\nmax_age: 86400\r\n";
    let sts = PolicyServer::start(&sts_id, policy).await;
    let tlsa = tlsa_ee(&mx_id.chain);
    let mut records = String::new();
    for k in 0..n {
        records.push_str(&format!(
            "d{k} MX 10 mx{k}\nmx{k} A 127.0.0.1\n_{port}._tcp.mx{k} TLSA {tlsa}\n\
             _mta-sts.d{k} TXT \"v=STSv1; id=1\"\nmta-sts.d{k} A 127.0.0.1\n"
        ));
    }
    let zone = SignedZone::start("bench.test", &records, &[]);

    println!("| measurement | per destination / rate |\n| --- | ---: |");
    resolver_cost(&zone, n, port).await;

    let base = format!(
        "[[route]]\nname = \"bench\"\ndomains = [\"*.bench.test\"]\nnext_hops = [\"mx\"]\n\n\
         [delivery]\nmx_port = {port}\nmax_messages_per_connection = 1\nmax_connections_per_next_hop = 16\n\n\
         [limits]\nmax_connections_per_ip = 200\n\n"
    );
    let sts_conf = |on: bool| {
        format!(
            "[mta_sts]\nenabled = {on}\nca = \"{}\"\nport = {}\n\n",
            ca_dir.path().join("ca.pem").display(),
            sts.addr.port()
        )
    };
    let cases = [
        ("off", false, "no DANE, no MTA-STS"),
        ("enforce", false, "DANE enforce"),
        ("off", true, "MTA-STS enforce"),
    ];
    for (dane, sts_on, name) in cases {
        let body = format!("{base}{}{}", zone.config(dane), sts_conf(sts_on));
        let gw = Gateway::start_bare(tempfile::tempdir().unwrap(), &body).await;
        // The same destinations twice: first every lookup, validation and policy fetch is
        // new, then all of them are cached.
        for pass in [
            "uncached (first message to each domain)",
            "cached (the same domains again)",
        ] {
            let before = backend.messages().len();
            let started = Instant::now();
            send_all(&gw, n).await;
            backend
                .wait_for_messages(before + n, Duration::from_secs(300))
                .await;
            let rate = n as f64 / started.elapsed().as_secs_f64();
            println!("| delivery, {name}, {pass} | {rate:.0} msg/s |");
        }
        gw.stop().await;
    }
    println!(
        "\n({n} destinations; policy fetches served: {})",
        sts.requests.load(std::sync::atomic::Ordering::SeqCst)
    );
}

fn names(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

async fn resolver_cost(zone: &SignedZone, n: usize, port: u16) {
    let dns = Dns {
        nameservers: vec![zone.addr],
        timeout: Some(Span(Duration::from_secs(2))),
    };
    let dane = Dane {
        mode: DaneMode::Enforce,
        trust_anchor: Some(zone.anchor.clone()),
        nameservers: Vec::new(),
    };
    let plain = Resolver::new(&dns).unwrap();
    let validating = Validating::new(&dane, &dns).unwrap();
    for pass in ["new", "cached"] {
        let started = Instant::now();
        for k in 0..n {
            let mx = plain.mx_hosts(&format!("d{k}.bench.test")).await.unwrap();
            plain.addresses(&mx[0].1).await.unwrap();
        }
        let each = started.elapsed() / n as u32;
        println!("| plain resolver, MX + A, {pass} destination | {each:.2?} |");
        let started = Instant::now();
        for k in 0..n {
            let mx = validating
                .mx_hosts(&format!("d{k}.bench.test"))
                .await
                .unwrap();
            let host = &mx.value[0].1;
            let addrs = validating.addresses(host).await.unwrap();
            let tlsa = validating.tlsa(host, port).await.unwrap();
            assert!(mx.secure && addrs.secure && tlsa.secure && !tlsa.value.is_empty());
        }
        let each = started.elapsed() / n as u32;
        println!("| validating resolver, MX + A + TLSA, {pass} destination | {each:.2?} |");
    }
}

/// `n` messages from `SENDERS` clients at once, one to each of the `n` domains.
async fn send_all(gw: &Gateway, n: usize) {
    let addr = gw.addr;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..SENDERS {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if k >= n {
                    return;
                }
                let to = format!("user{k}@d{k}.bench.test");
                let reply = send_mail(
                    addr,
                    "a@sender.test",
                    &[to.as_str()],
                    "Subject: b\r\n\r\nx\r\n",
                )
                .await
                .expect("send");
                assert!(reply.is("250 2.0.0"), "{reply:?}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
}
