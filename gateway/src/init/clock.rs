//! Keeping the clock: a thread that asks the time servers (`[network] ntp`, else DHCP
//! option 42) with the SNTP client (`time::sntp`), steps the clock when it is far off
//! (at boot, typically: the appliance may have no battery-backed clock worth the name)
//! and otherwise hands the offset to the kernel's PLL with `adjtimex`, which also clears
//! STA_UNSYNC so the console shows the clock synchronised (and the kernel copies it to the
//! RTC every 11 minutes). Polls every 64 s at first, doubling to 1024 s (RFC 4330 §10),
//! and backs off the same way on failure. After each attempt it writes the state to
//! `time::sntp::STATUS_PATH` for `show status`.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, SystemTime};

use log::{info, warn};
use nix::libc;
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_settime};

use crate::time::sntp::{self, Sample, Status};

const MIN_POLL: u32 = 6;
const MAX_POLL: u32 = 10;
/// Beyond this the clock is stepped rather than slewed (RFC 5905's STEPT).
const STEP: Duration = Duration::from_millis(128);
const TIMEOUT: Duration = Duration::from_secs(3);
/// The kernel PLL takes at most this much offset at a time.
const MAX_SLEW_NS: i64 = 500_000_000;

/// Starts the clock thread.
pub fn start() {
    if let Err(e) = thread::Builder::new().name("sntp".into()).spawn(run) {
        warn!("clock: cannot start the SNTP client: {e}");
    }
}

fn run() {
    let mut poll = MIN_POLL;
    let mut status = Status::default();
    let mut told_none = false;
    loop {
        let servers = servers();
        if servers.is_empty() {
            if !told_none {
                info!("clock: no time servers (network.ntp, or DHCP option 42) yet");
                told_none = true;
            }
            thread::sleep(Duration::from_secs(1 << MIN_POLL));
            continue;
        }
        told_none = false;
        match ask(&servers) {
            Ok(sample) => {
                let how = apply(&sample, poll);
                status = Status {
                    server: Some(sample.server.to_string()),
                    offset: Some(sample.offset.describe()),
                    at: Some(crate::time::unix_now()),
                    how: Some(how.into()),
                    failure: None,
                };
            }
            Err(e) => {
                warn!(
                    "clock: {e}; next attempt in {} s",
                    1u32 << poll.min(MAX_POLL)
                );
                status.failure = Some(e);
            }
        }
        write_status(&status);
        thread::sleep(Duration::from_secs(1 << poll));
        poll = (poll + 1).min(MAX_POLL);
    }
}

/// `[network] ntp` when set, else what DHCP handed out.
fn servers() -> Vec<SocketAddr> {
    let configured = super::net::settings().ntp_servers();
    if !configured.is_empty() {
        return configured;
    }
    super::net::dhcp_time_servers()
        .into_iter()
        .map(|ip| SocketAddr::from((ip, sntp::PORT)))
        .collect()
}

/// The first valid answer, trying the servers in order.
fn ask(servers: &[SocketAddr]) -> Result<Sample, String> {
    let mut failures = Vec::new();
    for server in servers {
        match sntp::query(*server, TIMEOUT) {
            Ok(sample) => return Ok(sample),
            Err(e) => failures.push(format!("{server}: {e}")),
        }
    }
    Err(format!("no time server answered ({})", failures.join("; ")))
}

/// Steps or slews by the sample's offset; says which.
fn apply(sample: &Sample, poll: u32) -> &'static str {
    let from = format!(
        "{} (stratum {}, delay {:.1} ms)",
        sample.server,
        sample.stratum,
        sample.delay.as_secs_f64() * 1e3
    );
    let mut slew = sample.offset.0;
    let mut how = "slewed";
    if sample.offset.abs() > STEP {
        match step(sample.offset.0) {
            Ok(()) => {
                info!("clock: stepped by {} from {from}", sample.offset.describe());
                slew = 0;
                how = "stepped";
            }
            Err(e) => {
                warn!("clock: cannot step by {}: {e}", sample.offset.describe());
                return "not applied";
            }
        }
    }
    match discipline(slew, sample.delay, poll) {
        Ok(()) if how == "slewed" => {
            info!("clock: slewing by {} from {from}", sample.offset.describe())
        }
        Ok(()) => {}
        Err(e) => warn!("clock: adjtimex: {e}"),
    }
    how
}

fn step(offset_ns: i64) -> nix::Result<()> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let now = i128::try_from(now.as_nanos()).unwrap_or(0) + i128::from(offset_ns);
    let secs = (now.div_euclid(1_000_000_000)) as libc::time_t;
    let nanos = now.rem_euclid(1_000_000_000) as libc::c_long;
    clock_settime(ClockId::CLOCK_REALTIME, TimeSpec::new(secs, nanos))
}

/// Hands the offset to the kernel's PLL and marks the clock synchronised, with error
/// bounds from the round trip; the kernel adds to `maxerror` as time passes and sets
/// STA_UNSYNC again past 16 s, should the servers go quiet for good.
fn discipline(offset_ns: i64, delay: Duration, poll: u32) -> std::io::Result<()> {
    // SAFETY: `timex` is plain data; zeroed is a valid value for every field.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = libc::ADJ_OFFSET
        | libc::ADJ_STATUS
        | libc::ADJ_NANO
        | libc::ADJ_MAXERROR
        | libc::ADJ_ESTERROR
        | libc::ADJ_TIMECONST;
    tx.offset = offset_ns.clamp(-MAX_SLEW_NS, MAX_SLEW_NS) as libc::c_long;
    tx.status = libc::STA_PLL;
    let half = (delay / 2).as_micros().min(1 << 30) as libc::c_long;
    tx.esterror = half;
    tx.maxerror = half + 10_000;
    tx.constant = libc::c_long::from(poll.saturating_sub(4));
    // SAFETY: `tx` is a valid, exclusively borrowed timex for the call's duration.
    if unsafe { libc::adjtimex(&mut tx) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn write_status(status: &Status) {
    let path = std::path::Path::new(sntp::STATUS_PATH);
    let tmp = path.with_extension("new");
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&tmp, status.render()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        warn!("clock: cannot write {}: {e}", path.display());
    }
}
