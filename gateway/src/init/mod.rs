//! PID 1 inside the appliance image.
//!
//! `edgemx` is the image's `/init`. In that role it owns the machine: it mounts
//! the kernel filesystems, loads the kernel modules packed into the initramfs,
//! mounts the `gw-data` partition at `/data` (writing the default
//! configuration on first boot), configures the network, then starts the
//! gateway — the same binary re-executed as `edgemx serve --config
//! /data/edgemx.toml` — and supervises it until a shutdown is requested.
//!
//! # Layout
//!
//! | file | duty |
//! | --- | --- |
//! | `console` | init's own log lines on `/dev/console`, prefixed `init:` |
//! | `mounts` | `/proc`, `/sys`, `/dev`, `/run`; finding and mounting `gw-data` and the ESP; first-boot defaults |
//! | `modules` | loading the initramfs's kernel modules with `finit_module` in build-time order |
//! | `net`, `netif`, `dhcp`, `ra` | network settings, interface/route ioctls, the DHCP client, DNS from IPv6 router advertisements |
//! | `clock` | keeping the clock with SNTP (servers configured or from DHCP), its state for `show status` |
//! | `grow`, `gpt` | `gw-data` fills its disk: GPT backup moved to the end, partition, kernel, ext4 grown |
//! | `watchdog` | arming and pinging `/dev/watchdog` from the main loop, while the health monitor lives |
//! | `trial`, `judge` | the health gate (commit a trial slot, or fail it and reboot) and the health watchdog |
//! | `power` | the power button (`KEY_POWER` from evdev) |
//! | `supervise` | the main loop: starting, reaping and restarting the gateway, signals |
//! | `getty` | the operator console (`edgemx console`) on ttyS0, restarted after each logout |
//! | `shutdown` | stopping every process, sync, unmount, power off or reboot |
//!
//! # Invariants
//!
//! Init never panics and never returns: an init that dies panics the kernel.
//! Every failure is logged and handled (retry, degrade, or a clean reboot);
//! the whole boot is additionally wrapped in `catch_unwind` as a last resort.
//! Signals are blocked in every thread and consumed only by the main loop's
//! `sigwait`, so helper threads turn events into signals to PID 1.
//! This module must not touch the gateway's internals: the gateway is a child
//! process and talks to init only through its exit status, and SIGHUP after a
//! committed configuration changed the hostname or the network (init reads both
//! from the configuration file again).

mod clock;
mod console;
mod dhcp;
mod getty;
mod gpt;
mod grow;
mod judge;
mod modules;
mod mounts;
mod net;
mod netif;
mod power;
mod ra;
mod shutdown;
mod supervise;
mod trial;
mod watchdog;

use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use log::{error, info, warn};

pub use shutdown::Request;

/// Where the gateway's configuration lives on the data partition.
pub const CONFIG_PATH: &str = "/data/edgemx.toml";
/// Where init's network settings live on the data partition.
pub const NETWORK_PATH: &str = "/data/network.toml";

/// How long boot waits for the data partition and for a first DHCP lease
/// before going on (both keep being retried afterwards).
const DATA_WAIT: Duration = Duration::from_secs(15);
const NET_WAIT: Duration = Duration::from_secs(10);

/// Runs the PID 1 role. Never returns: ends in power off or reboot.
pub fn run() -> ! {
    console::install();
    panic::set_hook(Box::new(|p| error!("internal error: {p}")));
    let signals = supervise::block_signals();

    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        boot();
        let mut dog = watchdog::Watchdog::open();
        let request = supervise::run(&signals, &mut dog);
        (request, dog)
    }));
    match outcome {
        Ok((request, mut dog)) => shutdown::finish(request, &signals, &mut dog),
        Err(_) => {
            error!("init failed; rebooting");
            shutdown::finish(Request::Reboot, &signals, &mut None)
        }
    }
}

/// Everything before the gateway starts. Each step degrades instead of
/// failing: a missing data partition is retried by the supervisor, a missing
/// network by the DHCP thread.
fn boot() {
    mounts::early();
    info!(
        "edgemx {} starting (kernel {}, slot {})",
        env!("CARGO_PKG_VERSION"),
        read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "?".into()),
        cmdline_value("edgemx.slot").unwrap_or_else(|| "?".into()),
    );
    if cmdline_value("edgemx.debug").is_some() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
        warn!("cannot route Ctrl-Alt-Del to init: {e}");
    }
    enable_sysrq_signals();
    modules::load_all();
    match mounts::data(DATA_WAIT) {
        Ok(()) => grow::run(std::path::Path::new("/data")),
        Err(e) => error!("{e}; the gateway starts once /data is available"),
    }
    if let Err(e) = mounts::esp() {
        error!("{e}; the booted firmware cannot be committed");
    }
    net::set_hostname();
    net::start(NET_WAIT);
    clock::start();
    power::watch();
    modules::release();
    trial::start();
}

/// Adds "signal processes" (64) to the kernel's default SysRq mask so the
/// console operator can restart a wedged gateway with SysRq-E (SIGTERM) or
/// SysRq-I (SIGKILL): both spare init, which then restarts the gateway. The
/// default mask already allows reboot and sync from the console keyboard, so
/// this adds no new way to take the machine down from the network.
fn enable_sysrq_signals() {
    const PATH: &str = "/proc/sys/kernel/sysrq";
    let Some(mask) = read_trimmed(PATH).and_then(|s| s.parse::<u32>().ok()) else {
        return;
    };
    // 1 means "everything enabled" already; 0 means the kernel was built or
    // booted with SysRq off on purpose: leave both alone.
    if mask > 1
        && let Err(e) = std::fs::write(PATH, (mask | 64).to_string())
    {
        warn!("cannot enable SysRq signals: {e}");
    }
}

/// The value of `key=value` on the kernel command line, or `""` for a bare
/// `key`.
fn cmdline_value(key: &str) -> Option<String> {
    let line = read_trimmed("/proc/cmdline")?;
    line.split_whitespace()
        .find_map(|word| match word.split_once('=') {
            Some((k, v)) if k == key => Some(v.to_string()),
            None if word == key => Some(String::new()),
            _ => None,
        })
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_configuration_written_at_first_boot_is_valid() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/defaults/edgemx.toml");
        if let Err(errors) = crate::loader::load(&path) {
            panic!("image/defaults/edgemx.toml is invalid:\n{errors}");
        }
    }
}
