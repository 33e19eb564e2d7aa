//! The test DNS server seen through the gateway's own resolver: what every DNS-driven
//! scenario (MX routing, SPF/DKIM/DMARC, the DNS audit) relies on.

use edgemx::config;
use edgemx::dns::Resolver;
use edgemx_tests::dns::{DnsServer, Zone};
use std::net::IpAddr;

fn resolver(dns: &DnsServer) -> Resolver {
    Resolver::new(&config::Dns {
        nameservers: vec![dns.addr],
        timeout: Some(config::Span(config::parse_span("2s").unwrap())),
    })
    .expect("resolver")
}

#[tokio::test]
async fn mx_and_address_records_come_from_the_test_zone() {
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.test", 20, "mx2.example.test")
            .mx("example.test", 10, "mx1.example.test")
            .a("mx1.example.test", "127.0.0.1".parse().unwrap())
            .a("mx1.example.test", "::1".parse().unwrap())
            .cname("www.example.test", "mx1.example.test"),
    )
    .await;
    let resolver = resolver(&dns);
    let mx = resolver.mx_hosts("example.test").await.unwrap();
    assert_eq!(
        mx,
        [
            (10, "mx1.example.test".into()),
            (20, "mx2.example.test".into())
        ]
    );
    let mut addrs = resolver.addresses("www.example.test").await.unwrap();
    addrs.sort();
    let expected: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    assert_eq!(addrs, expected);
    assert!(dns.queries() >= 2);
}

#[tokio::test]
async fn servfail_is_temporary_and_nxdomain_permanent() {
    let dns = DnsServer::start(Zone::new().servfail("broken.test")).await;
    let resolver = resolver(&dns);
    let broken = resolver.mx_hosts("broken.test").await.unwrap_err();
    assert!(!broken.is_permanent(), "{broken}");
    let missing = resolver.mx_hosts("missing.test").await.unwrap_err();
    assert!(missing.is_permanent(), "{missing}");
}

#[tokio::test]
async fn a_replaced_zone_is_answered_for_names_not_yet_cached() {
    let dns = DnsServer::start(Zone::new()).await;
    let resolver = resolver(&dns);
    assert!(resolver.addresses("late.test").await.is_err());
    dns.set(Zone::new().a("later.test", "127.0.0.9".parse().unwrap()));
    let addrs = resolver.addresses("later.test").await.unwrap();
    assert_eq!(addrs, ["127.0.0.9".parse::<IpAddr>().unwrap()]);
}

#[tokio::test]
async fn a_dkim_sized_txt_record_arrives_whole_over_udp_or_tcp() {
    let key = "v=DKIM1; k=rsa; p=".to_string() + &"A".repeat(1400);
    let dns = DnsServer::start(Zone::new().txt("s1._domainkey.example.test", &key)).await;
    let resolver = resolver(&dns);
    let txt = resolver.txt("s1._domainkey.example.test").await.unwrap();
    assert_eq!(txt, [key]);
}
