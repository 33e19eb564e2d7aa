//! Interface and route configuration through the classic socket ioctls
//! (`SIOCSIFFLAGS`, `SIOCSIFADDR`, `SIOCSIFNETMASK`, `SIOCADDRT`).
//!
//! These cover one IPv4 address and a default route per interface, and an IPv6
//! address and default route beside them (the kernel's SLAAC does the rest), which is
//! all the appliance configures; netlink would be needed for more. This is
//! the only file of init with `unsafe`: each ioctl gets a fully initialised
//! request structure that lives across the call.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::libc;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

nix::ioctl_write_ptr_bad!(siocsifflags, libc::SIOCSIFFLAGS, libc::ifreq);
nix::ioctl_read_bad!(siocgifflags, libc::SIOCGIFFLAGS, libc::ifreq);
nix::ioctl_write_ptr_bad!(siocsifaddr, libc::SIOCSIFADDR, libc::ifreq);
nix::ioctl_write_ptr_bad!(siocsifnetmask, libc::SIOCSIFNETMASK, libc::ifreq);
nix::ioctl_write_ptr_bad!(siocaddrt, libc::SIOCADDRT, libc::rtentry);
nix::ioctl_write_ptr_bad!(siocdelrt, libc::SIOCDELRT, libc::rtentry);
nix::ioctl_write_ptr_bad!(siocsifaddr6, libc::SIOCSIFADDR, libc::in6_ifreq);
nix::ioctl_write_ptr_bad!(siocaddrt6, libc::SIOCADDRT, Route6);
nix::ioctl_write_ptr_bad!(siocdelrt6, libc::SIOCDELRT, Route6);

/// The kernel's `struct in6_rtmsg` (linux/ipv6_route.h); libc's has private fields.
#[repr(C)]
#[derive(Clone, Copy)]
struct Route6 {
    dst: libc::in6_addr,
    src: libc::in6_addr,
    gateway: libc::in6_addr,
    kind: u32,
    dst_len: u16,
    src_len: u16,
    metric: u32,
    info: libc::c_ulong,
    flags: u32,
    ifindex: libc::c_int,
}

/// Sets the interface administratively up.
pub fn up(ifname: &str) -> Result<(), String> {
    let fd = control_socket()?;
    let mut req = ifreq(ifname)?;
    // SAFETY: `req` is a valid, initialised ifreq naming the interface; the
    // kernel writes the flags into it.
    unsafe { siocgifflags(fd.as_raw_fd(), &mut req) }
        .map_err(|e| format!("{ifname}: cannot read flags: {e}"))?;
    // SAFETY: reading the union member SIOCGIFFLAGS just filled in.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: as above; the kernel only reads `req`.
    unsafe { siocsifflags(fd.as_raw_fd(), &req) }
        .map_err(|e| format!("{ifname}: cannot bring up: {e}"))?;
    Ok(())
}

/// Sets the interface's (primary) IPv4 address and prefix length.
pub fn set_address(ifname: &str, address: Ipv4Addr, prefix: u8) -> Result<(), String> {
    let fd = control_socket()?;
    let mut req = ifreq(ifname)?;
    req.ifr_ifru.ifru_addr = sockaddr(address);
    // SAFETY: `req` is initialised and outlives the call; the kernel reads it.
    unsafe { siocsifaddr(fd.as_raw_fd(), &req) }
        .map_err(|e| format!("{ifname}: cannot set address {address}: {e}"))?;
    req.ifr_ifru.ifru_netmask = sockaddr(netmask(prefix));
    // SAFETY: as above.
    unsafe { siocsifnetmask(fd.as_raw_fd(), &req) }
        .map_err(|e| format!("{ifname}: cannot set prefix /{prefix}: {e}"))?;
    Ok(())
}

/// Replaces the default route with one via `gateway`.
pub fn set_default_route(gateway: Ipv4Addr) -> Result<(), String> {
    let fd = control_socket()?;
    let mut route = route_entry();
    route.rt_gateway = sockaddr(gateway);
    route.rt_flags = (libc::RTF_UP | libc::RTF_GATEWAY) as libc::c_ushort;
    // An old default route (earlier lease) is removed first; ESRCH when none.
    let old = route_entry();
    // SAFETY: `old` and `route` are initialised rtentry values whose `rt_dev`
    // is null (no device name to read); the kernel only reads them.
    let _ = unsafe { siocdelrt(fd.as_raw_fd(), &old) };
    // SAFETY: as above.
    unsafe { siocaddrt(fd.as_raw_fd(), &route) }
        .map_err(|e| format!("cannot add default route via {gateway}: {e}"))?;
    Ok(())
}

/// Adds a static IPv6 address with its prefix length to the interface.
pub fn add_address6(ifname: &str, address: Ipv6Addr, prefix: u8) -> Result<(), String> {
    let fd = control_socket6()?;
    let req = libc::in6_ifreq {
        ifr6_addr: in6(address),
        ifr6_prefixlen: u32::from(prefix.min(128)),
        ifr6_ifindex: index(ifname)?,
    };
    // SAFETY: `req` is fully initialised and outlives the call; the kernel only reads it.
    match unsafe { siocsifaddr6(fd.as_raw_fd(), &req) } {
        Ok(_) | Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(format!(
            "{ifname}: cannot add address {address}/{prefix}: {e}"
        )),
    }
}

/// Replaces the IPv6 default route with one via `gateway` on `ifname` (a link-local
/// router needs the interface).
pub fn set_default_route6(ifname: &str, gateway: Ipv6Addr) -> Result<(), String> {
    let fd = control_socket6()?;
    let unspecified = in6(Ipv6Addr::UNSPECIFIED);
    let old = Route6 {
        dst: unspecified,
        src: unspecified,
        gateway: unspecified,
        kind: 0,
        dst_len: 0,
        src_len: 0,
        metric: 1,
        info: 0,
        flags: libc::RTF_UP as u32,
        ifindex: index(ifname)?,
    };
    let route = Route6 {
        gateway: in6(gateway),
        flags: (libc::RTF_UP | libc::RTF_GATEWAY) as u32,
        ..old
    };
    // SAFETY: both are initialised in6_rtmsg values; the kernel only reads them. An
    // absent old route is ESRCH, which is fine.
    let _ = unsafe { siocdelrt6(fd.as_raw_fd(), &old) };
    // SAFETY: as above.
    match unsafe { siocaddrt6(fd.as_raw_fd(), &route) } {
        Ok(_) | Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(format!("cannot add IPv6 default route via {gateway}: {e}")),
    }
}

/// Writes `/proc/sys/net/ipv6/conf/IFNAME/KEY`.
pub fn ipv6_setting(ifname: &str, key: &str, value: &str) -> Result<(), String> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/{key}");
    std::fs::write(&path, value).map_err(|e| format!("{path}: {e}"))
}

fn control_socket6() -> Result<OwnedFd, String> {
    socket(
        AddressFamily::Inet6,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("cannot open an IPv6 control socket (no IPv6 in this kernel?): {e}"))
}

fn index(ifname: &str) -> Result<i32, String> {
    nix::net::if_::if_nametoindex(ifname)
        .map(|i| i as i32)
        .map_err(|e| format!("{ifname}: no such interface: {e}"))
}

fn in6(address: Ipv6Addr) -> libc::in6_addr {
    libc::in6_addr {
        s6_addr: address.octets(),
    }
}

/// The netmask of a prefix length (values above 32 are clamped).
pub fn netmask(prefix: u8) -> Ipv4Addr {
    let prefix = u32::from(prefix.min(32));
    Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix).unwrap_or(0))
}

/// The prefix length of a netmask (counts leading ones).
pub fn prefix_len(mask: Ipv4Addr) -> u8 {
    u32::from(mask).leading_ones() as u8
}

fn control_socket() -> Result<OwnedFd, String> {
    socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("cannot open a control socket: {e}"))
}

fn ifreq(ifname: &str) -> Result<libc::ifreq, String> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ {
        return Err(format!("bad interface name {ifname:?}"));
    }
    // SAFETY: ifreq is plain old data (arrays, integers, a union of those and
    // pointers); all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(ifname.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

fn route_entry() -> libc::rtentry {
    // SAFETY: rtentry is plain old data; all-zero (null rt_dev) is valid and
    // means "destination 0.0.0.0/0, any device".
    let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
    route.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    route
}

fn sockaddr(address: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(address).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes; this is how the
    // ioctl ABI passes an AF_INET address in a generic sockaddr.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmask_and_prefix_round_trip() {
        for prefix in 0..=32 {
            assert_eq!(prefix_len(netmask(prefix)), prefix);
        }
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(0), Ipv4Addr::UNSPECIFIED);
    }
}
