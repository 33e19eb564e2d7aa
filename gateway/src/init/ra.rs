//! DNS servers from IPv6 router advertisements (RDNSS, RFC 8106). The kernel takes
//! addresses and the default route from advertisements itself (SLAAC); only the DNS option
//! is left to user space. One thread listens on an ICMPv6 socket for as long as the
//! appliance runs, after asking the routers for an advertisement (a router solicitation)
//! so the first one does not wait for the router's next periodic one.

use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use log::warn;
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn6, SockaddrStorage,
    recvfrom, sendto, setsockopt, socket, sockopt,
};

static LISTENING: AtomicBool = AtomicBool::new(false);

/// Starts the listener (once; later calls do nothing).
pub fn listen(ifname: &str) {
    if LISTENING.swap(true, Ordering::AcqRel) {
        return;
    }
    let ifname = ifname.to_string();
    let spawned = std::thread::Builder::new()
        .name("ra".into())
        .spawn(move || {
            if let Err(e) = run(&ifname) {
                warn!("router advertisements: {e}; DNS servers come from DHCP or [network] dns");
                LISTENING.store(false, Ordering::Release);
            }
        });
    if let Err(e) = spawned {
        warn!("cannot start the router advertisement listener: {e}");
        LISTENING.store(false, Ordering::Release);
    }
}

fn run(ifname: &str) -> Result<(), String> {
    let fd = socket(
        AddressFamily::Inet6,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::IcmpV6,
    )
    .map_err(|e| format!("ICMPv6 socket: {e}"))?;
    let index = nix::net::if_::if_nametoindex(ifname).map_err(|e| format!("{ifname}: {e}"))?;
    // Neighbour discovery messages must carry hop limit 255 (RFC 4861 §6.1.1).
    setsockopt(&fd, sockopt::Ipv6MulticastHops, &255).map_err(|e| e.to_string())?;
    let routers = SockaddrIn6::from(std::net::SocketAddrV6::new(
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2),
        0,
        0,
        index,
    ));
    // Router solicitation: type 133, code 0, checksum (the kernel's), reserved.
    let _ = sendto(
        fd.as_raw_fd(),
        &[133, 0, 0, 0, 0, 0, 0, 0],
        &routers,
        MsgFlags::empty(),
    );
    let mut buf = [0u8; 1500];
    loop {
        let (n, _) = recvfrom::<SockaddrStorage>(fd.as_raw_fd(), &mut buf)
            .map_err(|e| format!("receive: {e}"))?;
        if let Some(servers) = rdnss(&buf[..n]) {
            super::net::advertised_dns(servers);
        }
    }
}

/// The DNS servers of a router advertisement (ICMPv6 type 134) with a live RDNSS option;
/// `Some(empty)` when it withdraws them (lifetime 0), `None` for anything else.
fn rdnss(packet: &[u8]) -> Option<Vec<Ipv6Addr>> {
    // Type, code, checksum, hop limit, flags, router lifetime, reachable, retransmit.
    if packet.first() != Some(&134) || packet.len() < 16 {
        return None;
    }
    let mut options = &packet[16..];
    let mut found = None;
    while options.len() >= 8 {
        let (kind, len) = (options[0], usize::from(options[1]) * 8);
        if len == 0 || len > options.len() {
            return found;
        }
        if kind == 25 && len >= 24 {
            let lifetime = u32::from_be_bytes([options[4], options[5], options[6], options[7]]);
            let servers = options[8..len]
                .chunks_exact(16)
                .filter_map(|a| <[u8; 16]>::try_from(a).ok().map(Ipv6Addr::from))
                .filter(|_| lifetime > 0)
                .collect();
            found = Some(servers);
        }
        options = &options[len..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::rdnss;

    fn advertisement(options: &[u8]) -> Vec<u8> {
        let mut ra = vec![134, 0, 0, 0, 64, 0, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0];
        ra.extend_from_slice(options);
        ra
    }

    #[test]
    fn the_dns_servers_of_an_advertisement_are_read_and_withdrawn() {
        let mut option = vec![25, 5, 0, 0, 0, 0, 0x0e, 0x10];
        option.extend_from_slice(&"fec0::3".parse::<std::net::Ipv6Addr>().unwrap().octets());
        option.extend_from_slice(
            &"2001:db8::53"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        // A prefix option before it (type 3, 32 bytes) is skipped.
        let mut options = vec![3, 4];
        options.extend_from_slice(&[0; 30]);
        options.extend_from_slice(&option);
        let servers = rdnss(&advertisement(&options)).unwrap();
        assert_eq!(
            servers,
            [
                "fec0::3".parse::<std::net::Ipv6Addr>().unwrap(),
                "2001:db8::53".parse().unwrap()
            ]
        );
        option[4..8].copy_from_slice(&[0; 4]);
        assert_eq!(rdnss(&advertisement(&option)), Some(Vec::new()));
        assert_eq!(rdnss(&advertisement(&[3, 4])), None);
        assert_eq!(rdnss(&[133, 0, 0, 0]), None);
        assert_eq!(rdnss(&advertisement(&[25, 0, 0, 0, 0, 0, 0, 0])), None);
    }
}
