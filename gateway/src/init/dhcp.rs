//! A small DHCPv4 client (RFC 2131): DISCOVER, OFFER, REQUEST, ACK.
//!
//! It runs over an ordinary UDP socket bound to port 68 on one interface
//! (`SO_BINDTODEVICE`) and sets the BROADCAST flag, so servers broadcast their
//! replies and an interface without an address still receives them. No raw
//! sockets, no ARP probing of the offered address. Message building and
//! parsing are pure functions, tested below.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use nix::sys::socket::{setsockopt, sockopt};

/// What the server handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// Time servers (option 42, RFC 2132 §8.3), in the server's order of preference.
    pub ntp: Vec<Ipv4Addr>,
    pub server: Ipv4Addr,
    pub lease_secs: u32,
}

const CLIENT_PORT: u16 = 68;
const SERVER_PORT: u16 = 67;
const COOKIE: [u8; 4] = [99, 130, 83, 99];
const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;
const NAK: u8 = 6;
/// Wait for a reply after each attempt; the sum bounds one `acquire`.
const ATTEMPTS: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(3),
    Duration::from_secs(4),
];

/// Obtains a lease on `ifname` (whose MAC is `mac`), asking for `previous`
/// when renewing.
pub fn acquire(
    ifname: &str,
    mac: [u8; 6],
    hostname: Option<&str>,
    previous: Option<Ipv4Addr>,
) -> Result<Lease, String> {
    let socket = open(ifname)?;
    let xid = fastrand::u32(..);
    let discover = message(DISCOVER, xid, mac, hostname, previous, None);
    let offer = exchange(&socket, &discover, xid, mac, OFFER)?;
    let request = message(
        REQUEST,
        xid,
        mac,
        hostname,
        Some(offer.address),
        Some(offer.server),
    );
    exchange(&socket, &request, xid, mac, ACK)
}

fn open(ifname: &str) -> Result<UdpSocket, String> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, CLIENT_PORT))
        .map_err(|e| format!("cannot bind UDP port {CLIENT_PORT}: {e}"))?;
    setsockopt(&socket, sockopt::BindToDevice, &ifname.into())
        .map_err(|e| format!("cannot bind the DHCP socket to {ifname}: {e}"))?;
    socket
        .set_broadcast(true)
        .map_err(|e| format!("cannot enable broadcast: {e}"))?;
    Ok(socket)
}

/// Sends `packet` and waits for a reply of `want` type to `xid`, resending
/// with growing timeouts.
fn exchange(
    socket: &UdpSocket,
    packet: &[u8],
    xid: u32,
    mac: [u8; 6],
    want: u8,
) -> Result<Lease, String> {
    let server = SocketAddr::from((Ipv4Addr::BROADCAST, SERVER_PORT));
    let mut buf = [0u8; 1500];
    for wait in ATTEMPTS {
        socket
            .send_to(packet, server)
            .map_err(|e| format!("cannot send a DHCP message: {e}"))?;
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
                break;
            }
            let Ok(n) = socket.recv(&mut buf) else { break };
            match parse(&buf[..n], xid, mac) {
                Some((kind, lease)) if kind == want => return Ok(lease),
                Some((NAK, _)) => return Err("the DHCP server refused the request (NAK)".into()),
                _ => {}
            }
        }
    }
    Err(format!(
        "no DHCP {} after {} attempts",
        if want == OFFER {
            "offer"
        } else {
            "acknowledgement"
        },
        ATTEMPTS.len()
    ))
}

/// A BOOTREQUEST of DHCP message type `kind`.
fn message(
    kind: u8,
    xid: u32,
    mac: [u8; 6],
    hostname: Option<&str>,
    requested: Option<Ipv4Addr>,
    server: Option<Ipv4Addr>,
) -> Vec<u8> {
    let mut p = vec![0u8; 236];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6; // hardware address length
    p[4..8].copy_from_slice(&xid.to_be_bytes());
    p[10] = 0x80; // BROADCAST flag: reply by broadcast, we have no address yet
    p[28..34].copy_from_slice(&mac);
    p.extend_from_slice(&COOKIE);
    p.extend_from_slice(&[53, 1, kind]);
    p.extend_from_slice(&[61, 7, 1]);
    p.extend_from_slice(&mac);
    if let Some(ip) = requested {
        p.extend_from_slice(&[50, 4]);
        p.extend_from_slice(&ip.octets());
    }
    if let Some(ip) = server {
        p.extend_from_slice(&[54, 4]);
        p.extend_from_slice(&ip.octets());
    }
    if let Some(name) = hostname.map(|h| h.split('.').next().unwrap_or(h))
        && !name.is_empty()
        && name.len() < 64
    {
        p.extend_from_slice(&[12, name.len() as u8]);
        p.extend_from_slice(name.as_bytes());
    }
    // Parameter request list: subnet mask, router, DNS, domain name, NTP
    // servers, lease time, server identifier.
    p.extend_from_slice(&[55, 7, 1, 3, 6, 15, 42, 51, 54]);
    p.push(255);
    p
}

/// Parses a BOOTREPLY for `xid`/`mac` into its message type and lease.
fn parse(p: &[u8], xid: u32, mac: [u8; 6]) -> Option<(u8, Lease)> {
    if p.len() < 240 || p[0] != 2 || p[4..8] != xid.to_be_bytes() || p[28..34] != mac {
        return None;
    }
    if p[236..240] != COOKIE {
        return None;
    }
    let address = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let mut lease = Lease {
        address,
        prefix: 24,
        router: None,
        dns: Vec::new(),
        domain: None,
        ntp: Vec::new(),
        server: Ipv4Addr::new(p[20], p[21], p[22], p[23]),
        lease_secs: 3600,
    };
    let mut kind = None;
    let mut i = 240;
    while i < p.len() {
        let code = p[i];
        if code == 255 {
            break;
        }
        if code == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(*p.get(i + 1)?);
        let value = p.get(i + 2..i + 2 + len)?;
        let ip = |v: &[u8]| (v.len() >= 4).then(|| Ipv4Addr::new(v[0], v[1], v[2], v[3]));
        match code {
            1 => lease.prefix = ip(value).map_or(24, super::netif::prefix_len),
            3 => lease.router = ip(value),
            6 => lease.dns = value.chunks_exact(4).filter_map(ip).collect(),
            15 => lease.domain = String::from_utf8(value.to_vec()).ok(),
            42 => lease.ntp = ntp_servers(value),
            51 if len == 4 => {
                lease.lease_secs = u32::from_be_bytes([value[0], value[1], value[2], value[3]])
            }
            53 if len == 1 => kind = Some(value[0]),
            54 => lease.server = ip(value).unwrap_or(lease.server),
            _ => {}
        }
        i += 2 + len;
    }
    Some((kind?, lease))
}

/// Option 42: a list of IPv4 addresses (a length that is not a multiple of 4 is a
/// malformed option, refused whole rather than read in part). Unusable addresses
/// (0.0.0.0, broadcast, multicast, loopback) are dropped.
fn ntp_servers(value: &[u8]) -> Vec<Ipv4Addr> {
    if !value.len().is_multiple_of(4) {
        return Vec::new();
    }
    value
        .chunks_exact(4)
        .map(|v| Ipv4Addr::new(v[0], v[1], v[2], v[3]))
        .filter(|ip| {
            !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    fn reply(kind: u8, xid: u32) -> Vec<u8> {
        let mut p = vec![0u8; 236];
        p[0] = 2;
        p[4..8].copy_from_slice(&xid.to_be_bytes());
        p[16..20].copy_from_slice(&[10, 0, 2, 15]);
        p[28..34].copy_from_slice(&MAC);
        p.extend_from_slice(&COOKIE);
        p.extend_from_slice(&[53, 1, kind, 1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 2, 2]);
        p.extend_from_slice(&[6, 8, 10, 0, 2, 3, 9, 9, 9, 9, 51, 4, 0, 1, 81, 128]);
        p.extend_from_slice(&[54, 4, 10, 0, 2, 2, 0, 15, 3, b'l', b'a', b'n', 255]);
        p
    }

    #[test]
    fn parses_an_ack_into_a_lease() {
        let (kind, lease) = parse(&reply(ACK, 7), 7, MAC).expect("valid reply");
        assert_eq!(kind, ACK);
        assert_eq!(lease.address, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(lease.prefix, 24);
        assert_eq!(lease.router, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(
            lease.dns,
            [Ipv4Addr::new(10, 0, 2, 3), Ipv4Addr::new(9, 9, 9, 9)]
        );
        assert_eq!(lease.domain.as_deref(), Some("lan"));
        assert_eq!(lease.lease_secs, 86400);
        assert!(lease.ntp.is_empty());
    }

    #[test]
    fn option_42_gives_the_time_servers_in_order() {
        let mut p = reply(ACK, 7);
        p.pop();
        p.extend_from_slice(&[42, 12, 192, 0, 2, 123, 0, 0, 0, 0, 198, 51, 100, 7, 255]);
        let (_, lease) = parse(&p, 7, MAC).expect("valid reply");
        assert_eq!(
            lease.ntp,
            [
                Ipv4Addr::new(192, 0, 2, 123),
                Ipv4Addr::new(198, 51, 100, 7)
            ]
        );
        assert!(ntp_servers(&[192, 0, 2, 123, 10]).is_empty());
        assert!(ntp_servers(&[]).is_empty());
        let discover = message(DISCOVER, 1, MAC, None, None, None);
        assert!(
            discover
                .windows(9)
                .any(|w| w == [55, 7, 1, 3, 6, 15, 42, 51, 54])
        );
    }

    #[test]
    fn ignores_replies_for_other_transactions_and_truncated_options() {
        assert!(parse(&reply(ACK, 7), 8, MAC).is_none());
        let mut cut = reply(OFFER, 7);
        cut.truncate(245);
        assert!(parse(&cut, 7, MAC).is_none());
    }

    #[test]
    fn requests_carry_type_address_server_and_short_hostname() {
        let ip = Ipv4Addr::new(10, 0, 2, 15);
        let p = message(REQUEST, 9, MAC, Some("mx1.example.net"), Some(ip), Some(ip));
        assert_eq!(&p[236..240], &COOKIE);
        assert_eq!(&p[240..243], &[53, 1, REQUEST]);
        assert!(p.windows(6).any(|w| w == [50, 4, 10, 0, 2, 15]));
        assert!(p.windows(5).any(|w| w == [12, 3, b'm', b'x', b'1']));
        assert_eq!(p.last(), Some(&255));
    }
}
