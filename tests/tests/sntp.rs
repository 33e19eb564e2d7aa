//! The SNTP client (`edgemx::time::sntp`) against Debian's real `chronyd` serving time on
//! loopback (run with `-x`: it never touches the host's clock), and against a stand-in
//! UDP server whose replies are faulty and must be refused.

use edgemx::time::sntp::{self, Refusal, SntpError};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Chrony {
    addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Chrony {
    fn start() -> Chrony {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path();
        let addr = free_udp_port();
        let conf = format!(
            "port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\n\
             cmdport 0\nbindcmdaddress {dir}/chronyd.sock\n\
             driftfile {dir}/drift\npidfile {dir}/chronyd.pid\n",
            port = addr.port(),
            dir = path.display(),
        );
        std::fs::write(path.join("chrony.conf"), conf).expect("chrony.conf");
        let mut command = Command::new("chronyd");
        // -d: foreground, log to stderr; -x: do not adjust the system clock.
        command
            .args(["-d", "-x", "-f"])
            .arg(path.join("chrony.conf"));
        if nix::unistd::geteuid().is_root() {
            // Stay root rather than drop to _chrony, which cannot read the temp dir.
            command.args(["-u", "root"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("chronyd (scripts/setup installs chrony)");
        Chrony {
            addr,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Chrony {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr")
}

#[test]
fn chronyd_on_loopback_gives_a_plausible_offset_and_its_stratum() {
    let chrony = Chrony::start();
    // chronyd needs a moment to bind and to take up its local reference; until then the
    // query times out or the reply says "unsynchronised".
    let deadline = Instant::now() + Duration::from_secs(30);
    let sample = loop {
        match sntp::query(chrony.addr, Duration::from_millis(500)) {
            Ok(sample) => break sample,
            Err(e) => assert!(
                Instant::now() < deadline,
                "chronyd at {} never answered validly: {e}",
                chrony.addr
            ),
        }
    };
    assert_eq!(sample.server, chrony.addr);
    assert_eq!(sample.stratum, 8, "{sample:?}");
    // Same host, same clock: the offset is what chronyd's and our reading differ by.
    assert!(sample.offset.abs() < Duration::from_secs(1), "{sample:?}");
    assert!(sample.delay < Duration::from_secs(1), "{sample:?}");
}

/// What a stand-in does to a good reply before sending it.
type Tamper = fn(&mut [u8; 48]);

/// A server answering every request once with `tamper` applied to a good reply.
fn stand_in(tamper: Tamper) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            if n < 48 {
                continue;
            }
            let mut reply = [0u8; 48];
            reply[0] = 0x24; // LI 0, version 4, mode 4 (server)
            reply[1] = 2;
            reply[24..32].copy_from_slice(&buf[40..48]);
            let now = sntp::Timestamp::now().0.to_be_bytes();
            reply[32..40].copy_from_slice(&now);
            reply[40..48].copy_from_slice(&now);
            tamper(&mut reply);
            if socket.send_to(&reply, from).is_err() {
                return;
            }
        }
    });
    addr
}

fn refusal(tamper: Tamper) -> Result<sntp::Sample, SntpError> {
    sntp::query(stand_in(tamper), Duration::from_secs(1))
}

#[test]
fn a_good_stand_in_reply_is_taken() {
    let sample = refusal(|_| {}).expect("an untampered reply is valid");
    assert_eq!(sample.stratum, 2);
    assert!(sample.offset.abs() < Duration::from_secs(1), "{sample:?}");
}

#[test]
fn faulty_replies_are_refused() {
    let cases: [(Tamper, Refusal); 5] = [
        (|r| r[0] = 0x23, Refusal::Mode(3)),
        (|r| r[0] = 0xE4, Refusal::Unsynchronised),
        (|r| r[1] = 0, Refusal::Stratum(0)),
        (|r| r[40..48].fill(0), Refusal::NoTransmit),
        (|r| r[31] ^= 1, Refusal::Origin),
    ];
    for (tamper, want) in cases {
        match refusal(tamper) {
            Err(SntpError::Refused(got)) => assert_eq!(got, want),
            other => panic!("expected {want:?}, got {other:?}"),
        }
    }
}
