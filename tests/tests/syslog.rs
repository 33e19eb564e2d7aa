//! Remote syslog (`[[log.syslog]]`) into Debian's real `rsyslogd` on loopback: the gateway's
//! lines arrive as RFC 5424 messages (PRI from the facility and level, APP-NAME `edgemx`,
//! the configured hostname, the PID) over TCP and UDP, and lines logged while the collector
//! is down arrive once it is up. TLS (RFC 5425) is tested against a rustls server here
//! rather than rsyslog's gtls driver, whose certificate setup would be most of the test.

use edgemx_tests::FakeBackend;
use edgemx_tests::gateway::{GatewayProcess, free_port};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Rsyslog {
    child: Child,
    out: PathBuf,
}

impl Rsyslog {
    /// rsyslogd in the foreground with its own work directory, TCP on `tcp` and UDP on
    /// `udp`, writing `PRI|APP-NAME|HOSTNAME|PROCID|INPUT|MSG` lines to `dir/out.log`.
    fn start(dir: &Path, tcp: SocketAddr, udp: SocketAddr) -> Rsyslog {
        let work = dir.join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        let out = dir.join("out.log");
        let conf = format!(
            "global(workDirectory=\"{work}\")\n\
             module(load=\"imtcp\")\nmodule(load=\"imudp\")\n\
             input(type=\"imtcp\" port=\"{tp}\" address=\"127.0.0.1\")\n\
             input(type=\"imudp\" port=\"{up}\" address=\"127.0.0.1\")\n\
             template(name=\"fields\" type=\"string\" \
             string=\"%pri%|%app-name%|%hostname%|%procid%|%inputname%|%msg%\\n\")\n\
             *.* action(type=\"omfile\" file=\"{out}\" template=\"fields\")\n",
            work = work.display(),
            tp = tcp.port(),
            up = udp.port(),
            out = out.display(),
        );
        let path = dir.join("rsyslog.conf");
        std::fs::write(&path, conf).expect("rsyslog.conf");
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&path)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .spawn()
            .expect("rsyslogd (scripts/setup installs rsyslog)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(tcp).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd never listened on {tcp}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Rsyslog { child, out }
    }

    /// Waits for a received line that satisfies `want`, returning it.
    fn wait_for(&self, what: &str, want: impl Fn(&[&str]) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            if let Some(line) = text
                .lines()
                .find(|l| want(&l.split('|').collect::<Vec<_>>()))
            {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "rsyslog never received {what}; it has:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr")
}

fn log_section(collectors: &[(SocketAddr, &str, &str)]) -> String {
    let mut out = "[log]\nlevel = \"info\"\ntarget = \"stderr\"\n".to_string();
    for (addr, transport, facility) in collectors {
        out.push_str(&format!(
            "\n[[log.syslog]]\naddress = \"{addr}\"\ntransport = \"{transport}\"\nfacility = \"{facility}\"\n"
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_reach_rsyslog_over_tcp_and_udp_as_rfc_5424() {
    let dir = tempfile::tempdir().unwrap();
    let (tcp, udp) = (free_port(), free_udp_port());
    let rsyslog = Rsyslog::start(dir.path(), tcp, udp);
    let backend = FakeBackend::start().await;
    let extra = log_section(&[(tcp, "tcp", "mail"), (udp, "udp", "local3")]);
    let gateway = GatewayProcess::spawn(dir.path(), backend.addr(), &extra);
    let pid = gateway.pid().to_string();
    // mail.info = 2 * 8 + 6; local3.info = 19 * 8 + 6.
    let over = |input: &'static str, pri: &'static str| {
        let pid = pid.clone();
        move |f: &[&str]| {
            f.len() >= 6
                && f[0] == pri
                && f[1] == "edgemx"
                && f[2] == "gateway.test"
                && f[3] == pid
                && f[4] == input
                && f[5].contains("SMTP listening on")
        }
    };
    rsyslog.wait_for("the listening line over TCP", over("imtcp", "22"));
    rsyslog.wait_for("the listening line over UDP", over("imudp", "158"));
    // The last line before exit is sent before the process ends.
    assert!(gateway.terminate().success());
    rsyslog.wait_for("the stopped line", |f| {
        f.len() >= 6 && f[4] == "imtcp" && f[5] == "stopped"
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_logged_while_a_collector_is_restarted_arrive_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (tcp, udp) = (free_port(), free_udp_port());
    let rsyslog = Rsyslog::start(dir.path(), tcp, udp);
    let backend = FakeBackend::start().await;
    let extra = log_section(&[(tcp, "tcp", "mail")]);
    let gateway = GatewayProcess::spawn(dir.path(), backend.addr(), &extra);
    rsyslog.wait_for("the listening line", |f| {
        f.len() >= 6 && f[5].contains("SMTP listening on")
    });
    drop(rsyslog);
    // Logged while nothing listens: the message's queued line.
    let reply =
        edgemx_tests::send_mail(gateway.addr, "a@sender.test", &["b@example.com"], "hi\r\n")
            .await
            .expect("the message is accepted");
    assert_eq!(reply.code, 250, "{reply:?}");
    let rsyslog = Rsyslog::start(dir.path(), tcp, udp);
    let line = rsyslog.wait_for("the queued line logged while it was down", |f| {
        f.len() >= 6 && f[5].starts_with("queued ") && f[5].contains("from=<a@sender.test>")
    });
    assert!(line.starts_with("22|edgemx|gateway.test|"), "{line}");
    drop(gateway);
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_logged_while_the_collector_is_down_arrive_when_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let (tcp, udp) = (free_port(), free_udp_port());
    let backend = FakeBackend::start().await;
    let extra = log_section(&[(tcp, "tcp", "mail")]);
    // Nothing listens yet: the startup lines wait in the gateway's queue.
    let gateway = GatewayProcess::spawn(dir.path(), backend.addr(), &extra);
    let rsyslog = Rsyslog::start(dir.path(), tcp, udp);
    let line = rsyslog.wait_for("the listening line logged before it started", |f| {
        f.len() >= 6 && f[4] == "imtcp" && f[5].contains("SMTP listening on")
    });
    assert!(line.starts_with("22|edgemx|gateway.test|"), "{line}");
    drop(gateway);
}

/// A TLS collector: a rustls server on loopback with a certificate for 127.0.0.1 from a
/// test CA; the gateway verifies it against `ca` and sends octet-counted frames.
#[tokio::test(flavor = "multi_thread")]
async fn lines_reach_a_tls_collector_that_the_configured_ca_vouches_for() {
    let dir = tempfile::tempdir().unwrap();
    let ca = edgemx_tests::pki::Ca::new("syslog test CA");
    let identity = ca.issue("syslog collector", &["127.0.0.1"]);
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = identity.server_config(None);
    let received = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().expect("the gateway connects");
        let conn = rustls::ServerConnection::new(server).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while !text.contains("SMTP listening on") {
            let n = tls.read(&mut buf).expect("read");
            assert!(n > 0, "closed before the listening line: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        text
    });
    let backend = FakeBackend::start().await;
    let extra = format!(
        "[log]\nlevel = \"info\"\ntarget = \"stderr\"\n\n[[log.syslog]]\naddress = \"{addr}\"\n\
         transport = \"tls\"\nca = \"{}\"\n",
        ca_path.display()
    );
    let gateway = GatewayProcess::spawn(dir.path(), backend.addr(), &extra);
    let text = tokio::task::spawn_blocking(move || received.join().expect("collector"))
        .await
        .unwrap();
    // Octet counting: every frame is `LEN SP <PRI>1 …` with LEN its exact length.
    let mut rest = text.as_str();
    let mut listening = false;
    while let Some((len, tail)) = rest.split_once(' ') {
        let len: usize = len.parse().expect("a frame length");
        if tail.len() < len {
            break;
        }
        let (frame, next) = tail.split_at(len);
        let (pri, header) = frame[1..].split_once('>').expect("<PRI>");
        assert_eq!(pri.parse::<u16>().unwrap() / 8, 2, "facility mail: {frame}");
        assert!(header.starts_with("1 "), "{frame}");
        assert!(header.contains(" gateway.test edgemx "), "{frame}");
        if frame.contains("SMTP listening on") {
            assert_eq!(pri, "22", "mail.info: {frame}");
            listening = true;
        }
        rest = next;
    }
    assert!(listening, "{text}");
    drop(gateway);
}

/// A collector whose certificate the configured CA did not issue gets no lines: the
/// gateway refuses the handshake (and keeps the lines for a collector it can trust).
#[tokio::test(flavor = "multi_thread")]
async fn a_tls_collector_the_ca_does_not_vouch_for_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = edgemx_tests::pki::Ca::new("the configured CA");
    let other = edgemx_tests::pki::Ca::new("someone else's CA");
    let identity = other.issue("syslog collector", &["127.0.0.1"]);
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, trusted.pem()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = identity.server_config(None);
    let handshake = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().expect("the gateway connects");
        let mut conn = rustls::ServerConnection::new(server).unwrap();
        let mut plain = Vec::new();
        let outcome = loop {
            match conn.complete_io(&mut tcp) {
                Ok((0, 0)) => break Ok(()),
                Ok(_) if !conn.is_handshaking() => {
                    let _ = conn.reader().read_to_end(&mut plain);
                    break Ok(());
                }
                Ok(_) => {}
                Err(e) => break Err(e.to_string()),
            }
        };
        (outcome, plain)
    });
    let backend = FakeBackend::start().await;
    let extra = format!(
        "[log]\nlevel = \"info\"\ntarget = \"stderr\"\n\n[[log.syslog]]\naddress = \"{addr}\"\n\
         transport = \"tls\"\nca = \"{}\"\n",
        ca_path.display()
    );
    let gateway = GatewayProcess::spawn(dir.path(), backend.addr(), &extra);
    let (outcome, plain) = tokio::task::spawn_blocking(move || handshake.join().unwrap())
        .await
        .unwrap();
    let error = outcome.expect_err("the handshake must fail");
    assert!(
        error.contains("UnknownCA") || error.contains("BadCertificate"),
        "{error}"
    );
    assert!(plain.is_empty(), "{}", String::from_utf8_lossy(&plain));
    drop(gateway);
}
