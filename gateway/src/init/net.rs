//! Network: loopback, one Ethernet interface (DHCP or static IPv4, and IPv6 by SLAAC or
//! statically beside it, from
//! the `[network]` table of `/data/edgemx.toml`, else `/data/network.toml`), the default
//! route, `/etc/resolv.conf` (read by the gateway's resolver) and the hostname (from the
//! gateway's configuration). Both files are read with the configuration's own types
//! (`config::Network`, `config::parts`) and `network.address` by its rule, so init applies
//! exactly what `check-config` accepts.
//!
//! DHCP runs on its own thread: boot waits a bounded time for the first lease
//! so the gateway starts with DNS configured, and the thread then renews the
//! lease (or keeps retrying) for as long as the appliance runs.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use super::{dhcp, netif};
use crate::config::network::Ipv6Mode;
use crate::config::parts::Parts;
use crate::config::{NetMode, Network};

/// The address the appliance answers on, once configured (for the console).
static ADDRESS: Mutex<Option<Ipv4Addr>> = Mutex::new(None);

/// The time servers of the current DHCP lease (option 42), for `clock`.
static DHCP_NTP: Mutex<Vec<Ipv4Addr>> = Mutex::new(Vec::new());

/// What was applied last and on which interface, for [`reapply`].
static APPLIED: Mutex<Option<(String, Network)>> = Mutex::new(None);
/// Bumped when the settings change: a DHCP thread of an older generation stops.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The configured IPv4 address, if any.
pub fn address() -> Option<Ipv4Addr> {
    ADDRESS.lock().map(|a| *a).unwrap_or(None)
}

/// The time servers the current DHCP lease names (option 42).
pub fn dhcp_time_servers() -> Vec<Ipv4Addr> {
    DHCP_NTP.lock().map(|s| s.clone()).unwrap_or_default()
}

/// The network settings as configured now (read again on each call).
pub fn settings() -> Network {
    load_settings()
}

/// Brings up the network and waits up to `wait` for it to be configured.
pub fn start(wait: Duration) {
    if let Err(e) = netif::up("lo") {
        warn!("{e}");
    }
    let settings = load_settings();
    let Some(ifname) = find_interface(&settings.interface, Duration::from_secs(5)) else {
        error!("no Ethernet interface found; the appliance is not on the network");
        return;
    };
    if let Err(e) = netif::up(&ifname) {
        error!("{e}");
        return;
    }
    if let Ok(mut applied) = APPLIED.lock() {
        *applied = Some((ifname.clone(), settings.clone()));
    }
    apply_ipv6(&ifname, &settings);
    match settings.mode {
        NetMode::Static => {
            if let Err(e) = apply_static(&ifname, &settings) {
                error!("{ifname}: static configuration failed: {e}");
            }
        }
        NetMode::Dhcp => {
            let (done, first) = mpsc::channel();
            let generation = GENERATION.load(Ordering::Acquire);
            let spawned = thread::Builder::new()
                .name("dhcp".into())
                .spawn(move || run_dhcp(&ifname, done, generation));
            match spawned {
                Ok(_) => {
                    if first.recv_timeout(wait).is_err() {
                        warn!("no DHCP lease yet; starting the gateway anyway, still trying");
                    }
                }
                Err(e) => error!("cannot start the DHCP client: {e}"),
            }
        }
    }
}

/// Applies changed network settings (after a console commit) without a reboot.
pub fn reapply() {
    let settings = load_settings();
    let Ok(mut applied) = APPLIED.lock() else {
        return;
    };
    let Some((old_if, old)) = applied.clone() else {
        return;
    };
    if old == settings {
        return;
    }
    let ifname = if settings.interface == old.interface {
        old_if
    } else {
        match find_interface(&settings.interface, Duration::ZERO) {
            Some(name) => name,
            None => {
                error!(
                    "network: no interface {}; keeping {old_if}",
                    settings.interface
                );
                return;
            }
        }
    };
    info!("network settings changed; applying them to {ifname}");
    let generation = GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
    if let Err(e) = netif::up(&ifname) {
        error!("{e}");
    }
    apply_ipv6(&ifname, &settings);
    match settings.mode {
        NetMode::Static => {
            if let Err(e) = apply_static(&ifname, &settings) {
                error!("{ifname}: static configuration failed: {e}");
            }
        }
        NetMode::Dhcp => {
            let name = ifname.clone();
            let (done, _first) = mpsc::channel();
            if let Err(e) = thread::Builder::new()
                .name("dhcp".into())
                .spawn(move || run_dhcp(&name, done, generation))
            {
                error!("cannot start the DHCP client: {e}");
            }
        }
    }
    *applied = Some((ifname, settings));
}

/// Sets the kernel hostname from the gateway configuration's `hostname`.
pub fn set_hostname() {
    let Some(name) = configured_hostname() else {
        return;
    };
    match nix::unistd::sethostname(&name) {
        Ok(()) => info!("hostname: {name}"),
        Err(e) => warn!("cannot set hostname {name}: {e}"),
    }
}

fn configured_hostname() -> Option<String> {
    config_parts()?.hostname()
}

fn config_parts() -> Option<Parts> {
    let text = fs::read_to_string(super::CONFIG_PATH).ok()?;
    // Not TOML at all: the gateway reports it; the network falls back to network.toml.
    Parts::parse(&text).ok()
}

/// `[network]` of the gateway configuration (validated there with the same type, so a
/// commit from the console cannot hand init something it refuses), else the older
/// `/data/network.toml`, else DHCP on the first interface. Unknown keys are refused, so a
/// typo is noticed.
fn load_settings() -> Network {
    if let Some(network) = config_parts().and_then(|parts| parts.network()) {
        match network {
            Ok(settings) => return settings,
            Err(e) => error!(
                "{} [network]: {e}; trying {}",
                super::CONFIG_PATH,
                super::NETWORK_PATH
            ),
        }
    }
    let path = super::NETWORK_PATH;
    match fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).unwrap_or_else(|e| {
            error!("{path}: {e}; using DHCP on the first interface");
            Network::default()
        }),
        Err(_) => Network::default(),
    }
}

/// The named interface, or with "auto" the first Ethernet device (by name)
/// that is backed by hardware, waiting up to `wait` for drivers to register it.
fn find_interface(wanted: &str, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    loop {
        let mut names: Vec<String> = fs::read_dir("/sys/class/net")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| {
                let dir = Path::new("/sys/class/net").join(name);
                if wanted != "auto" {
                    return name == wanted;
                }
                // type 1 is ARPHRD_ETHER; `device` exists only for real NICs.
                dir.join("device").exists()
                    && fs::read_to_string(dir.join("type")).is_ok_and(|t| t.trim() == "1")
            })
            .collect();
        names.sort();
        if let Some(name) = names.into_iter().next() {
            return Some(name);
        }
        if Instant::now() >= deadline {
            return None;
        }
        super::modules::rescan();
        thread::sleep(Duration::from_millis(100));
    }
}

fn apply_static(ifname: &str, settings: &Network) -> Result<(), String> {
    let (ip, prefix) = static_address(settings)?;
    netif::set_address(ifname, ip, prefix)?;
    if let Some(gateway) = settings.gateway {
        netif::set_default_route(gateway)?;
    }
    write_resolv_conf(&settings.dns, None);
    announce(
        ifname,
        ip,
        prefix,
        settings.gateway,
        &settings.dns,
        "static".into(),
    );
    Ok(())
}

/// The address and prefix length to configure, by the rule `check-config` applies to
/// `network.address`: a bare address is refused (it was once taken as a /24).
fn static_address(settings: &Network) -> Result<(Ipv4Addr, u8), String> {
    match settings.static_address() {
        Some(Ok(address)) => Ok(address),
        Some(Err(e)) => Err(format!(
            "network.address = {}: {e}",
            settings.address.as_deref().unwrap_or_default()
        )),
        None => Err("mode = \"static\" needs address = \"A.B.C.D/N\"".into()),
    }
}

/// The DHCP thread: acquire, apply, sleep until renewal (half the lease),
/// repeat; on failure retry with backoff up to a minute.
fn run_dhcp(ifname: &str, first: mpsc::Sender<()>, generation: u64) {
    let current_generation = || GENERATION.load(Ordering::Acquire) == generation;
    let mac = mac_address(ifname).unwrap_or_else(|| {
        warn!("{ifname}: cannot read the MAC address");
        [0x02, 0, 0, 0, 0, 1]
    });
    let hostname = configured_hostname();
    let mut current: Option<dhcp::Lease> = None;
    let mut backoff = Duration::from_secs(2);
    while current_generation() {
        let previous = current.as_ref().map(|l| l.address);
        match dhcp::acquire(ifname, mac, hostname.as_deref(), previous) {
            Ok(lease) => {
                if !current_generation() {
                    return;
                }
                if current.as_ref() != Some(&lease) {
                    apply_lease(ifname, &lease);
                }
                if let Ok(mut ntp) = DHCP_NTP.lock() {
                    ntp.clone_from(&lease.ntp);
                }
                let _ = first.send(());
                let renew = Duration::from_secs(u64::from(lease.lease_secs.max(60) / 2));
                current = Some(lease);
                backoff = Duration::from_secs(2);
                // In steps, so a change of settings ends this thread promptly.
                let until = Instant::now() + renew;
                while Instant::now() < until && current_generation() {
                    thread::sleep(Duration::from_secs(1));
                }
            }
            Err(e) => {
                warn!("{ifname}: DHCP: {e}; retrying in {} s", backoff.as_secs());
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

fn apply_lease(ifname: &str, lease: &dhcp::Lease) {
    if let Err(e) = netif::set_address(ifname, lease.address, lease.prefix) {
        error!("{e}");
        return;
    }
    if let Some(router) = lease.router
        && let Err(e) = netif::set_default_route(router)
    {
        error!("{e}");
    }
    let dns: Vec<IpAddr> = lease.dns.iter().copied().map(IpAddr::V4).collect();
    write_resolv_conf(&dns, lease.domain.as_deref());
    let how = format!("DHCP from {}, lease {} s", lease.server, lease.lease_secs);
    announce(ifname, lease.address, lease.prefix, lease.router, &dns, how);
}

fn announce(
    ifname: &str,
    ip: Ipv4Addr,
    prefix: u8,
    gw: Option<Ipv4Addr>,
    dns: &[IpAddr],
    how: String,
) {
    if let Ok(mut a) = ADDRESS.lock() {
        *a = Some(ip);
    }
    let gw = gw.map_or("none".into(), |g| g.to_string());
    let dns: Vec<String> = dns.iter().map(IpAddr::to_string).collect();
    let dns = if dns.is_empty() {
        "none".into()
    } else {
        dns.join(" ")
    };
    info!("{ifname}: address {ip}/{prefix}, gateway {gw}, dns {dns} ({how})");
}

/// What /etc/resolv.conf is made of: the servers of the IPv4 side (DHCP or the
/// configuration) and those router advertisements announce (RDNSS, RFC 8106).
struct Resolv {
    servers: Vec<IpAddr>,
    domain: Option<String>,
    advertised: Vec<Ipv6Addr>,
}

static RESOLV: Mutex<Resolv> = Mutex::new(Resolv {
    servers: Vec::new(),
    domain: None,
    advertised: Vec::new(),
});

/// Sets the configured/DHCP servers and search domain, and writes the file.
fn write_resolv_conf(dns: &[IpAddr], domain: Option<&str>) {
    let mut resolv = RESOLV.lock().unwrap_or_else(|e| e.into_inner());
    resolv.servers = dns.to_vec();
    resolv.domain = domain.map(str::to_string);
    write_resolv(&resolv);
}

/// Sets the servers router advertisements announce, and writes the file when they changed.
pub(super) fn advertised_dns(servers: Vec<Ipv6Addr>) {
    let mut resolv = RESOLV.lock().unwrap_or_else(|e| e.into_inner());
    if resolv.advertised != servers {
        info!(
            "router advertisement: DNS servers {}",
            servers
                .iter()
                .map(Ipv6Addr::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
        resolv.advertised = servers;
        write_resolv(&resolv);
    }
}

/// Writes /etc/resolv.conf atomically (the gateway may be reading it): configured and
/// DHCP servers first, then advertised ones; glibc-style resolvers use the first three.
fn write_resolv(resolv: &Resolv) {
    let mut text = String::new();
    if let Some(domain) = resolv
        .domain
        .as_deref()
        .filter(|d| !d.is_empty() && !d.contains(char::is_whitespace))
    {
        text.push_str(&format!("search {domain}\n"));
    }
    let advertised = resolv.advertised.iter().map(|a| IpAddr::V6(*a));
    let mut seen = Vec::new();
    for server in resolv.servers.iter().copied().chain(advertised) {
        if !seen.contains(&server) {
            seen.push(server);
            text.push_str(&format!("nameserver {server}\n"));
        }
    }
    let written = fs::write("/etc/resolv.conf.new", text)
        .and_then(|()| fs::rename("/etc/resolv.conf.new", "/etc/resolv.conf"));
    if let Err(e) = written {
        warn!("cannot write /etc/resolv.conf: {e}");
    }
}

/// IPv6 on `ifname` as `[network] ipv6` says: `auto` lets the kernel take addresses and
/// routes from router advertisements (SLAAC) and listens to them for DNS servers;
/// `static` sets `address6` and `gateway6`; `off` disables IPv6 on the interface.
fn apply_ipv6(ifname: &str, settings: &Network) {
    let auto = settings.ipv6 == Ipv6Mode::Auto;
    let steps = [
        (
            "disable_ipv6",
            if settings.ipv6 == Ipv6Mode::Off {
                "1"
            } else {
                "0"
            },
        ),
        ("accept_ra", if auto { "1" } else { "0" }),
        ("autoconf", if auto { "1" } else { "0" }),
    ];
    for (key, value) in steps {
        if let Err(e) = netif::ipv6_setting(ifname, key, value) {
            warn!("IPv6: {e}");
            return;
        }
    }
    if settings.ipv6 == Ipv6Mode::Off {
        info!("{ifname}: IPv6 off");
        return;
    }
    if let Some(Ok((address, prefix))) = settings.static_address6() {
        match netif::add_address6(ifname, address, prefix) {
            Ok(()) => info!("{ifname}: address {address}/{prefix}"),
            Err(e) => error!("{e}"),
        }
    }
    if let Some(gateway) = settings.gateway6 {
        match netif::set_default_route6(ifname, gateway) {
            Ok(()) => info!("{ifname}: IPv6 default route via {gateway}"),
            Err(e) => error!("{e}"),
        }
    }
    if auto {
        super::ra::listen(ifname);
    }
}

fn mac_address(ifname: &str) -> Option<[u8; 6]> {
    let text = fs::read_to_string(format!("/sys/class/net/{ifname}/address")).ok()?;
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_settings_default_to_dhcp_and_reject_typos() {
        let s: Network = toml::from_str("").expect("empty is valid");
        assert_eq!(s, Network::default());
        assert_eq!(s.mode, NetMode::Dhcp);
        assert_eq!(s.interface, "auto");
        let s: Network =
            toml::from_str("mode = \"static\"\naddress = \"192.0.2.10/24\"\ngateway = \"192.0.2.1\"\ndns = [\"192.0.2.53\"]\n")
                .expect("static is valid");
        assert_eq!(s.mode, NetMode::Static);
        assert_eq!(s.gateway, Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(static_address(&s), Ok((Ipv4Addr::new(192, 0, 2, 10), 24)));
        assert!(toml::from_str::<Network>("adress = \"x\"").is_err());
    }

    #[test]
    fn a_static_address_without_prefix_length_is_refused_as_check_config_does() {
        let s: Network = toml::from_str("mode = \"static\"\naddress = \"192.0.2.10\"\n").unwrap();
        let e = static_address(&s).unwrap_err();
        assert!(
            e.starts_with("network.address = 192.0.2.10: the prefix length is missing"),
            "{e}"
        );
        assert!(
            crate::config::network::check(&s)[0]
                .to_string()
                .starts_with(&e)
        );
        let s: Network = toml::from_str("mode = \"static\"\n").unwrap();
        assert!(static_address(&s).unwrap_err().contains("needs address"));
    }

    #[test]
    fn the_shipped_defaults_parse() {
        let text = include_str!("../../../image/defaults/network.toml");
        let s: Network = toml::from_str(text).expect("image/defaults/network.toml parses");
        assert_eq!(s.mode, NetMode::Dhcp);
    }
}
