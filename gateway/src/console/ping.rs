//! `ping HOST [count N]`: ICMP echo from the console, for the operator's diagnostics.
//!
//! An unprivileged ICMP datagram socket is tried first (the kernel fills in the identifier
//! and checksum; allowed by `net.ipv4.ping_group_range`), then a raw socket (root on the
//! appliance). Each reply is printed with its round-trip time, as ping(8) does.

use nix::sys::socket::{
    AddressFamily, SockFlag, SockProtocol, SockType, SockaddrIn, SockaddrIn6, SockaddrStorage,
    recvfrom, sendto, setsockopt, socket, sockopt,
};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(1);
const PAYLOAD: &[u8] = b"edgemx console ping 0123456789abcdef";

/// What one probe gave: the round trip, or nothing within the wait.
pub struct Outcome {
    pub seq: u16,
    pub rtt: Option<Duration>,
}

struct Pinger {
    fd: OwnedFd,
    /// Raw IPv4 sockets hand us the IP header too.
    ip_header: bool,
    /// Datagram sockets get their identifier from the kernel; raw ones use ours.
    ident: Option<u16>,
    v6: bool,
}

/// Sends `count` echo requests to `ip`, one a second, calling `each` with every outcome.
pub fn run(ip: IpAddr, count: u16, mut each: impl FnMut(&Outcome)) -> Result<(), String> {
    let pinger = Pinger::open(ip)?;
    for seq in 1..=count {
        let started = Instant::now();
        pinger.send(ip, seq)?;
        let rtt = pinger.wait(seq, started);
        each(&Outcome { seq, rtt });
        if seq < count {
            std::thread::sleep(WAIT.saturating_sub(started.elapsed()));
        }
    }
    Ok(())
}

impl Pinger {
    fn open(ip: IpAddr) -> Result<Pinger, String> {
        let (family, protocol, v6) = match ip {
            IpAddr::V4(_) => (AddressFamily::Inet, SockProtocol::Icmp, false),
            IpAddr::V6(_) => (AddressFamily::Inet6, SockProtocol::IcmpV6, true),
        };
        let pinger = match socket(family, SockType::Datagram, SockFlag::empty(), protocol) {
            Ok(fd) => Pinger {
                fd,
                ip_header: false,
                ident: None,
                v6,
            },
            Err(_) => {
                let fd =
                    socket(family, SockType::Raw, SockFlag::empty(), protocol).map_err(|e| {
                        format!(
                            "cannot open an ICMP socket ({e}): ping needs root or \
                         net.ipv4.ping_group_range"
                        )
                    })?;
                Pinger {
                    fd,
                    ip_header: !v6,
                    ident: Some(std::process::id() as u16),
                    v6,
                }
            }
        };
        setsockopt(
            &pinger.fd,
            sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(WAIT.as_secs() as i64, 0),
        )
        .map_err(|e| e.to_string())?;
        Ok(pinger)
    }

    fn send(&self, ip: IpAddr, seq: u16) -> Result<(), String> {
        let kind = if self.v6 { 128 } else { 8 };
        let mut packet = vec![kind, 0, 0, 0];
        packet.extend_from_slice(&self.ident.unwrap_or(0).to_be_bytes());
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(PAYLOAD);
        if !self.v6 {
            // ICMPv6 checksums are the kernel's (they cover a pseudo-header).
            let sum = checksum(&packet);
            packet[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        let sent = match ip {
            IpAddr::V4(v4) => sendto(
                self.fd.as_raw_fd(),
                &packet,
                &SockaddrIn::from(std::net::SocketAddrV4::new(v4, 0)),
                nix::sys::socket::MsgFlags::empty(),
            ),
            IpAddr::V6(v6) => sendto(
                self.fd.as_raw_fd(),
                &packet,
                &SockaddrIn6::from(std::net::SocketAddrV6::new(v6, 0, 0, 0)),
                nix::sys::socket::MsgFlags::empty(),
            ),
        };
        sent.map(|_| ()).map_err(|e| format!("send: {e}"))
    }

    /// Waits for the echo reply with `seq` until a second after `started`.
    fn wait(&self, seq: u16, started: Instant) -> Option<Duration> {
        let reply_kind = if self.v6 { 129 } else { 0 };
        let mut buf = [0u8; 1500];
        while started.elapsed() < WAIT {
            let Ok((n, _)) = recvfrom::<SockaddrStorage>(self.fd.as_raw_fd(), &mut buf) else {
                return None;
            };
            let mut icmp = &buf[..n];
            if self.ip_header {
                let header = usize::from(icmp.first()? & 0x0f) * 4;
                icmp = icmp.get(header..)?;
            }
            if icmp.len() < 8 || icmp[0] != reply_kind {
                continue;
            }
            let ident = u16::from_be_bytes([icmp[4], icmp[5]]);
            let got = u16::from_be_bytes([icmp[6], icmp[7]]);
            if got == seq && self.ident.is_none_or(|ours| ours == ident) {
                return Some(started.elapsed());
            }
        }
        None
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `ping`'s own summary line.
pub fn summary(target: IpAddr, sent: u16, received: u16, rtts: &[Duration]) -> String {
    let loss = 100 * u32::from(sent - received) / u32::from(sent.max(1));
    let mut line = format!("--- {target} ping: {sent} sent, {received} received, {loss}% loss");
    if let (Some(min), Some(max)) = (rtts.iter().min(), rtts.iter().max()) {
        let avg = rtts.iter().sum::<Duration>() / rtts.len() as u32;
        line.push_str(&format!(
            ", rtt min/avg/max {:.3}/{:.3}/{:.3} ms",
            min.as_secs_f64() * 1e3,
            avg.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        ));
    }
    line + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_rfc_1071s() {
        // An echo request with identifier 1, sequence 1 and no payload.
        let packet = [8, 0, 0, 0, 0, 1, 0, 1];
        assert_eq!(checksum(&packet), 0xf7fd);
        let mut with = packet;
        with[2..4].copy_from_slice(&0xf7fdu16.to_be_bytes());
        assert_eq!(checksum(&with), 0);
    }
}
