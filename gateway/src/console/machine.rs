//! What `show status` adds about the machine the console runs on (the gateway's, on the
//! appliance): its addresses and its clock.

use std::fmt::Write;

/// Every interface address but loopback, as `eth0 10.0.2.15/24`, IPv4 first.
pub fn addresses() -> Vec<String> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<(bool, String)> = Vec::new();
    for ifa in addrs {
        let (Some(addr), mask) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let prefix = |bits: &[u8]| bits.iter().map(|b| b.count_ones()).sum::<u32>();
        let (v6, text) = if let Some(v4) = addr.as_sockaddr_in() {
            let len = mask
                .and_then(|m| m.as_sockaddr_in().map(|m| prefix(&m.ip().octets())))
                .unwrap_or(32);
            (false, format!("{}/{len}", v4.ip()))
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            let len = mask
                .and_then(|m| m.as_sockaddr_in6().map(|m| prefix(&m.ip().octets())))
                .unwrap_or(128);
            (true, format!("{}/{len}", v6.ip()))
        } else {
            continue;
        };
        if ifa.interface_name == "lo" {
            continue;
        }
        out.push((v6, format!("{} {text}", ifa.interface_name)));
    }
    out.sort_by_key(|(v6, _)| *v6);
    out.into_iter().map(|(_, a)| a).collect()
}

/// The clock: UTC now, and whether the kernel counts it synchronised (an NTP/SNTP client
/// cleared STA_UNSYNC) — DKIM signatures, DSN dates, certificates and reports depend on it.
pub fn clock() -> String {
    let mut out = crate::time::iso8601_now();
    // SAFETY: adjtimex with modes 0 only reads the kernel's clock state into `tx`.
    let mut tx: nix::libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { nix::libc::adjtimex(&mut tx) };
    let _ = match state {
        -1 => write!(out, " (synchronisation unknown)"),
        nix::libc::TIME_ERROR => write!(out, " UTC, not synchronised (no time source)"),
        _ if tx.status & nix::libc::STA_UNSYNC != 0 => {
            write!(out, " UTC, not synchronised (no time source)")
        }
        _ => write!(
            out,
            " UTC, synchronised (estimated error {} ms)",
            tx.esterror / 1000
        ),
    };
    out
}

/// What init's SNTP client last did (`init::clock`): the server, the offset and when, and
/// the latest failure; `None` where init does not keep the clock (off the appliance).
pub fn time_sync() -> Option<String> {
    let text = std::fs::read_to_string(crate::time::sntp::STATUS_PATH).ok()?;
    Some(crate::time::sntp::Status::parse(&text).describe())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_line_names_the_time_and_its_state() {
        let line = clock();
        assert!(line.starts_with("20"), "{line}");
        assert!(line.contains("synchronis"), "{line}");
    }

    #[test]
    fn addresses_carry_an_interface_and_a_prefix() {
        for a in addresses() {
            let (name, addr) = a.split_once(' ').expect("interface and address");
            assert!(!name.is_empty() && name != "lo", "{a}");
            assert!(addr.contains('/'), "{a}");
        }
    }
}
