//! The health gate and the health watchdog: a thread that asks the gateway
//! whether it is healthy every [`PROBE_EVERY`] and acts on `judge`'s verdicts.
//!
//! Healthy means every configured SMTP port is in LISTEN state (the kernel's
//! socket tables: the listeners are bound) and the admin listener's `/healthz`
//! answers 200 (the queue is open and admits mail, the gateway is not shutting
//! down; `observe::scrape::View::health`). With `[admin] enabled = false` the
//! control socket, created once the queue is open, stands in for `/healthz`.
//!
//! At start it settles what the previous boots left in GRUB's environment: a
//! slot armed for a trial that is not the slot GRUB booted has used its tries
//! (GRUB fell back): it is marked bad and the outcome, with the reason its last
//! boot recorded, goes to [`LAST_RESULT`] on gw-data for `show system
//! firmware`. Then: a commit marks the booted slot good; a failed trial
//! records why on gw-data and reboots (GRUB has counted the try); a committed
//! slot's gateway unhealthy too long reboots too, at most
//! `boot.max_unhealthy_reboots` times in a row (counted on gw-data, reset by a
//! healthy boot) so a fault in persistent data cannot reboot forever.
//!
//! Verdicts become SIGTERM to PID 1 (reboot), like every helper thread's
//! request. The thread's heartbeat ([`beats`]) lets the watchdog stop pinging
//! if it hangs.

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::judge::{Judge, Verdict};
use crate::config::Config;
use crate::config::boot::Boot;
use crate::firmware::bootenv::{BootEnv, BootState};
use crate::firmware::slot::{LAST_RESULT, Slot};

/// How often the gateway's health is asked.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);
/// What a failing trial boot leaves for the boot that falls back.
const TRIAL_REPORT: &str = "/data/firmware/trial-report";
/// Reboots in a row for an unhealthy gateway of a committed slot.
const REBOOTS: &str = "/data/firmware/unhealthy-reboots";

static BEATS: AtomicU64 = AtomicU64::new(0);

/// Probes done so far (0: the monitor never started; the watchdog then ignores it).
pub fn beats() -> u64 {
    BEATS.load(Ordering::Relaxed)
}

/// Starts the monitor; call after /data and the ESP are mounted.
pub fn start() {
    let spawned = thread::Builder::new().name("health".into()).spawn(run);
    if let Err(e) = spawned {
        error!("cannot start the health monitor: {e}; the booted slot stays uncommitted");
    }
}

fn run() {
    let booted_at = Instant::now();
    let config = crate::loader::load(Path::new(super::CONFIG_PATH)).ok();
    let settings = config.as_ref().map(|c| c.boot.clone()).unwrap_or_default();
    let probe = Probe::from(config.as_ref());
    let env = BootEnv::esp();
    let booted = crate::firmware::slot::booted();
    let on_trial = booted.is_some_and(|slot| settle(&env, slot));
    if on_trial {
        info!(
            "firmware: slot {} on trial: committed after {} s healthy, else failed at {} s",
            booted.map_or("?".into(), |s| s.to_string()),
            settings.healthy_for.0.as_secs(),
            settings.trial_deadline.0.as_secs()
        );
    }
    let mut judge = Judge::new(&settings, on_trial, booted_at);
    let mut gave_up = false;
    loop {
        BEATS.fetch_add(1, Ordering::Relaxed);
        match judge.observe(Instant::now(), probe.check()) {
            Some(Verdict::Commit) => commit(&env, booted, on_trial, &settings),
            Some(Verdict::FailTrial(why)) => {
                // GRUB boots a spent trial only when no other slot is good: rebooting
                // would loop, so the reboot budget on gw-data bounds it instead.
                if other_is_good(&env, booted) {
                    fail_trial(booted, &env, &why);
                } else if !gave_up {
                    let why = format!("{why} (no other good slot to fall back to)");
                    gave_up = !reboot_unhealthy(&why, &settings);
                }
            }
            Some(Verdict::Reboot(why)) if !gave_up => {
                gave_up = !reboot_unhealthy(&why, &settings);
            }
            Some(Verdict::Reboot(_)) | None => {}
        }
        if judge.committed() {
            gave_up = false;
        }
        thread::sleep(PROBE_EVERY);
    }
}

/// Settles the previous boots' outcome; returns whether `booted` is on trial.
fn settle(env: &BootEnv, booted: Slot) -> bool {
    let state = match env.state() {
        Ok(state) => state,
        Err(e) => {
            warn!("firmware: {e}; GRUB booted its defaults (slot {booted})");
            return false;
        }
    };
    match state.trial {
        Some(slot) if slot == booted => true,
        Some(failed) => {
            let report = fs::read_to_string(TRIAL_REPORT)
                .map(|r| r.trim().to_string())
                .unwrap_or_else(|_| {
                    "no report: it stopped before its health gate (kernel or init failed)".into()
                });
            let line = format!(
                "slot {failed} failed its trial ({} boots): {report}; back on slot {booted}",
                state.tries[failed.index()]
            );
            error!("firmware: {line}");
            record(LAST_RESULT, &line);
            let _ = fs::remove_file(TRIAL_REPORT);
            if let Err(e) = env.update(|s: &mut BootState| {
                s.mark_bad(failed);
                Ok(())
            }) {
                error!("firmware: cannot mark slot {failed} bad: {e}");
            }
            false
        }
        None => false,
    }
}

fn other_is_good(env: &BootEnv, booted: Option<Slot>) -> bool {
    match (booted, env.state()) {
        (Some(slot), Ok(state)) => state.ok[slot.other().index()],
        _ => false,
    }
}

fn commit(env: &BootEnv, booted: Option<Slot>, on_trial: bool, settings: &Boot) {
    let Some(slot) = booted else {
        warn!("firmware: healthy, but the kernel command line names no slot (edgemx.slot=)");
        return;
    };
    match env.update(|s| {
        if on_trial {
            s.commit(slot);
        } else {
            // Only the try counter: an operator's rollback made during this boot
            // (ORDER changed) must survive the gate passing.
            s.ok[slot.index()] = true;
            s.tries[slot.index()] = 0;
        }
        Ok(())
    }) {
        Ok(()) => {
            let healthy = settings.healthy_for.0.as_secs();
            info!("firmware: slot {slot} committed (healthy for {healthy} s)");
            if on_trial {
                record(
                    LAST_RESULT,
                    &format!("slot {slot} passed its trial and was committed"),
                );
            }
        }
        Err(e) => error!("firmware: cannot commit slot {slot}: {e}"),
    }
    let _ = fs::remove_file(REBOOTS);
    let _ = fs::remove_file(TRIAL_REPORT);
}

fn fail_trial(booted: Option<Slot>, env: &BootEnv, why: &str) {
    let slot = booted.map_or("?".into(), |s| s.to_string());
    let left = booted
        .and_then(|s| env.state().ok().map(|st| st.attempts_left(s)))
        .unwrap_or(0);
    error!("firmware: slot {slot} failed its health gate: {why}; rebooting ({left} tries left)");
    record(TRIAL_REPORT, why);
    request_reboot();
}

/// Reboots unless the budget on gw-data is spent; returns whether it did.
fn reboot_unhealthy(why: &str, settings: &Boot) -> bool {
    let done: u32 = fs::read_to_string(REBOOTS)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if done >= settings.max_unhealthy_reboots || !super::mounts::data_mounted() {
        error!(
            "{why}; not rebooting: {done} reboots in a row already (boot.max_unhealthy_reboots = {}); fix the cause on the console",
            settings.max_unhealthy_reboots
        );
        return false;
    }
    error!(
        "{why}; rebooting ({} of {})",
        done + 1,
        settings.max_unhealthy_reboots
    );
    record(REBOOTS, &(done + 1).to_string());
    request_reboot();
    true
}

fn request_reboot() {
    if let Err(e) = kill(Pid::from_raw(1), Signal::SIGTERM) {
        error!("cannot request a reboot: {e}");
    }
}

/// Writes a one-line file on gw-data atomically (tmp, fsync, rename, fsync dir).
fn record(path: &str, line: &str) {
    let path = Path::new(path);
    let dir = path.parent().unwrap_or(Path::new("/data"));
    let tmp = dir.join(".record.new");
    let result = fs::create_dir_all(dir).and_then(|()| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(format!("{line}\n").as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    });
    if let Err(e) = result {
        warn!("cannot write {}: {e}", path.display());
    }
}

/// What "healthy" is checked against, from the gateway's configuration.
struct Probe {
    ports: Vec<u16>,
    healthz: Option<SocketAddr>,
    control: PathBuf,
}

impl Probe {
    fn from(config: Option<&Config>) -> Probe {
        let defaults = crate::config::Admin::default();
        let Some(config) = config else {
            return Probe {
                ports: Vec::new(),
                healthz: Some(defaults.address),
                control: PathBuf::from("/data/edgemx/control.sock"),
            };
        };
        let admin = &config.admin;
        Probe {
            ports: config.listeners.iter().map(|l| l.address.port()).collect(),
            healthz: admin.enabled.then(|| loopback(admin.address)),
            control: config.control_socket(),
        }
    }

    fn check(&self) -> Result<(), String> {
        if let Some(port) = self
            .ports
            .iter()
            .find(|p| !super::supervise::is_listening(**p))
        {
            return Err(format!("SMTP port {port} is not listening"));
        }
        match self.healthz {
            Some(addr) => healthz(addr),
            None if self.control.exists() => Ok(()),
            None => Err(format!(
                "queue not open ({} missing)",
                self.control.display()
            )),
        }
    }
}

/// The admin listener as reachable from init: a wildcard address means loopback.
fn loopback(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// `GET /healthz`: Ok on 200, else the status line and body as the reason.
fn healthz(addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
        .map_err(|e| format!("/healthz on {addr}: {e}"))?;
    let io = |e: std::io::Error| format!("/healthz on {addr}: {e}");
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT)).map_err(io)?;
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\n\r\n")
        .map_err(io)?;
    let mut answer = Vec::new();
    stream.take(4096).read_to_end(&mut answer).map_err(io)?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        return Ok(());
    }
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b.trim());
    Err(format!("/healthz: {} {body}", status.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let _ = s.write_all(answer.as_bytes());
            }
        });
        addr
    }

    #[test]
    fn healthz_is_healthy_only_on_200_and_reports_the_reason() {
        assert_eq!(healthz(serve_once("HTTP/1.1 200 OK\r\n\r\nok\n")), Ok(()));
        let down = healthz(serve_once(
            "HTTP/1.1 503 Service Unavailable\r\n\r\nunavailable: queue: disk full\n",
        ));
        let why = down.unwrap_err();
        assert!(
            why.contains("503") && why.contains("queue: disk full"),
            "{why}"
        );
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(healthz(closed).is_err());
    }

    #[test]
    fn a_wildcard_admin_address_is_probed_on_loopback() {
        let any: SocketAddr = "0.0.0.0:9025".parse().unwrap();
        assert_eq!(
            loopback(any),
            "127.0.0.1:9025".parse::<SocketAddr>().unwrap()
        );
        let v6: SocketAddr = "[::]:9025".parse().unwrap();
        assert_eq!(loopback(v6), "[::1]:9025".parse::<SocketAddr>().unwrap());
    }
}
