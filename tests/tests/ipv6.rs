//! IPv6 beside IPv4 (issue 17 item 13): a gateway listens on `127.0.0.1:P` and `[::1]:P`
//! at once (an IPv6 listener takes IPv6 only, so the two do not collide, as the
//! appliance's `0.0.0.0:25` and `[::]:25` do not), accepts mail over both, and delivers to
//! a next hop written as an IPv6 address.

use edgemx_tests::gateway::GatewayProcess;
use edgemx_tests::{FakeBackend, send_mail};
use std::net::SocketAddr;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_flows_over_ipv6_listeners_and_to_ipv6_next_hops() {
    // A backend on ::1: the next hop of a second domain, written in brackets.
    let v6_backend = FakeBackend::start_on("[::1]:0".parse().unwrap()).await;
    let v4_backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[[listener]]\naddress = \"[::1]:{{listen_port}}\"\n\n[[domain]]\nname = \"six.test\"\nnext_hops = [\"{}\"]\n",
        v6_backend.addr()
    );
    let gw = GatewayProcess::spawn(dir.path(), v4_backend.addr(), &extra);
    let v6: SocketAddr = SocketAddr::new("::1".parse().unwrap(), gw.addr.port());
    let body = "From: a@client.test\r\nSubject: six\r\n\r\nhello\r\n";
    for (at, to) in [(gw.addr, "bob@six.test"), (v6, "eve@six.test")] {
        let reply = send_mail(at, "a@client.test", &[to], body).await.unwrap();
        assert_eq!(reply.code, 250, "{at}: {reply:?}");
    }
    let got = v6_backend
        .wait_for_messages(2, Duration::from_secs(30))
        .await;
    let mut rcpts: Vec<String> = got.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["bob@six.test", "eve@six.test"]);
}
