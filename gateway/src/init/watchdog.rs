//! The hardware watchdog (`/dev/watchdog`: i6300esb in QEMU, iTCO on Intel
//! chipsets), pinged from init's main loop.
//!
//! Pinging from the main loop — not from a thread of its own — means the
//! machine resets if PID 1 stops making progress, which is the failure a
//! watchdog exists to catch. The device stays armed through shutdown so a
//! hung shutdown also ends in a reset.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use nix::libc::c_int;

nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, c_int);

const DEVICE: &str = "/dev/watchdog";
/// Reset after this long without a ping.
const TIMEOUT_SECS: c_int = 60;
/// Ping this often (well inside the timeout, and inside drivers' maximums).
const INTERVAL: Duration = Duration::from_secs(10);

/// The health monitor (`trial`) counts as hung after this long without a probe:
/// then pinging stops and the hardware resets the machine.
const MONITOR_STALL: Duration = Duration::from_secs(120);

pub struct Watchdog {
    file: File,
    next: Instant,
    beats: u64,
    beat_seen: Instant,
    stalled: bool,
}

impl Watchdog {
    /// Opens and arms the watchdog, or `None` when the machine has none.
    pub fn open() -> Option<Watchdog> {
        let file = match OpenOptions::new().write(true).open(DEVICE) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                info!("no hardware watchdog");
                return None;
            }
            Err(e) => {
                warn!("cannot open {DEVICE}: {e}");
                return None;
            }
        };
        let mut timeout = TIMEOUT_SECS;
        // SAFETY: `timeout` is a valid c_int that outlives the call; the
        // driver reads it and writes back the timeout it actually set.
        match unsafe { wdioc_settimeout(file.as_raw_fd(), &mut timeout) } {
            Ok(_) => info!("watchdog armed: reset after {timeout} s without init"),
            Err(e) => warn!("watchdog armed with the driver's default timeout ({e})"),
        }
        Some(Watchdog {
            file,
            next: Instant::now(),
            beats: 0,
            beat_seen: Instant::now(),
            stalled: false,
        })
    }

    /// Pings the watchdog when due, unless the health monitor has hung (it
    /// follows the gateway; init's main loop alone proves too little).
    pub fn ping_if_due(&mut self) {
        if Instant::now() < self.next {
            return;
        }
        let beats = super::trial::beats();
        if beats != self.beats {
            (self.beats, self.beat_seen) = (beats, Instant::now());
        }
        // 0: the monitor never started (logged where it failed); init alone then.
        if beats > 0 && self.beat_seen.elapsed() > MONITOR_STALL {
            if !self.stalled {
                error!(
                    "the health monitor has not run for {} s; leaving the hardware watchdog to reset the machine",
                    MONITOR_STALL.as_secs()
                );
                self.stalled = true;
            }
            return;
        }
        if let Err(e) = self.file.write_all(b"\0") {
            warn!("cannot ping the watchdog: {e}");
        }
        self.next = Instant::now() + INTERVAL;
    }

    /// When the next ping is due.
    pub fn due(&self) -> Instant {
        self.next
    }
}
