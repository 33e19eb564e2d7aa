//! The main loop of PID 1: starts the gateway, reaps every child, restarts
//! the gateway with backoff when it dies, pings the watchdog, and returns
//! when a shutdown is requested.
//!
//! All signals init cares about are blocked in every thread and taken with
//! `sigwait` here, so nothing runs in signal-handler context. Timers are
//! `alarm(2)`: the loop sleeps until a signal or the next deadline (restart,
//! watchdog ping), with one-second resolution, which is plenty for both.
//!
//! Signals: SIGCHLD reaps; SIGUSR2, SIGUSR1 and SIGPWR power off (the power
//! button arrives as SIGUSR2); SIGTERM and SIGINT (Ctrl-Alt-Del) reboot.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, alarm};

use super::getty::Getty;
use super::shutdown::Request;
use super::watchdog::Watchdog;
use super::{mounts, net};
use crate::config::parts::Parts;

/// First restart delay; doubles per quick failure up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A gateway that ran this long is considered healthy: backoff resets.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// How often to retry mounting /data while it is missing.
const DATA_RETRY: Duration = Duration::from_secs(10);

/// Blocks init's signals in the calling thread (and so in every thread
/// spawned afterwards) and returns the set for `sigwait`.
pub fn block_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGPWR,
        Signal::SIGHUP,
        Signal::SIGALRM,
    ] {
        set.add(signal);
    }
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        log::error!("cannot block signals: {e}");
    }
    set
}

struct Gateway {
    pid: Option<Pid>,
    started: Instant,
    start_at: Instant,
    backoff: Duration,
}

/// Runs until a shutdown is requested.
pub fn run(signals: &SigSet, dog: &mut Option<Watchdog>) -> Request {
    let mut gw = Gateway {
        pid: None,
        started: Instant::now(),
        start_at: Instant::now(),
        backoff: MIN_BACKOFF,
    };
    let mut console = Getty::new();
    loop {
        if gw.pid.is_none() && Instant::now() >= gw.start_at {
            gw.start();
        }
        // The console needs /data (the admin account); it waits for the gateway itself.
        if console.pid.is_none() && Instant::now() >= console.start_at && mounts::data_mounted() {
            console.start();
        }
        if let Some(dog) = dog.as_mut() {
            dog.ping_if_due();
        }
        let mut next = dog.as_ref().map(Watchdog::due);
        if gw.pid.is_none() {
            next = Some(next.map_or(gw.start_at, |n| n.min(gw.start_at)));
        }
        if console.pid.is_none() {
            let at = console
                .start_at
                .max(Instant::now() + Duration::from_secs(1));
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        arm_alarm(next);
        match signals.wait() {
            Ok(Signal::SIGCHLD) => gw.reap(&mut console),
            // The gateway applied a configuration with a new hostname or network.
            Ok(Signal::SIGHUP) => {
                net::set_hostname();
                net::reapply();
            }
            Ok(Signal::SIGUSR1 | Signal::SIGUSR2 | Signal::SIGPWR) => return Request::PowerOff,
            Ok(Signal::SIGTERM | Signal::SIGINT) => return Request::Reboot,
            Ok(_) => {}
            Err(e) => {
                error!("sigwait: {e}");
                thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Arms `alarm(2)` for `deadline` (at least one second ahead), or cancels it.
pub fn arm_alarm(deadline: Option<Instant>) {
    match deadline {
        Some(at) => {
            let secs = at
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
                .ceil();
            alarm::set((secs as u32).max(1));
        }
        None => {
            alarm::cancel();
        }
    }
}

impl Gateway {
    fn start(&mut self) {
        if let Err(e) = mounts::data(Duration::ZERO) {
            warn!(
                "gateway not started: {e}; retrying in {} s",
                DATA_RETRY.as_secs()
            );
            self.start_at = Instant::now() + DATA_RETRY;
            return;
        }
        let mut command = Command::new("/proc/self/exe");
        command
            .arg0("edgemx")
            .args(["serve", "--config", super::CONFIG_PATH, "--appliance"])
            .env_clear()
            .env("PATH", "/")
            .env("HOME", "/data")
            .env("RUST_BACKTRACE", "1")
            // Own process group: shutdown can signal the gateway and anything
            // it starts without touching init.
            .process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only
        // calls sigprocmask, which is async-signal-safe. It is needed because
        // init blocks SIGTERM & co. for sigwait and a blocked mask survives
        // exec: the gateway's SIGTERM handler would never run (seen: the
        // gateway ignored the shutdown until SIGKILL).
        let command = unsafe {
            command.pre_exec(|| {
                sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                    .map_err(std::io::Error::from)
            })
        };
        let spawned = command.spawn();
        match spawned {
            Ok(child) => {
                let pid = Pid::from_raw(child.id() as i32);
                // `child` is dropped without waiting: init reaps every pid
                // itself with waitpid(-1).
                drop(child);
                info!("gateway started (pid {pid})");
                self.pid = Some(pid);
                self.started = Instant::now();
                watch_listeners();
            }
            Err(e) => {
                error!("cannot start the gateway: {e}");
                self.schedule_restart();
            }
        }
    }

    /// Collects every exited child; the gateway's death schedules a restart.
    fn reap(&mut self, console: &mut Getty) {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => status,
            };
            let Some(pid) = status.pid() else { continue };
            if Some(pid) == console.pid {
                debug!("console (pid {pid}) {}", describe(&status));
                console.exited();
                continue;
            }
            if Some(pid) != self.pid {
                debug!("reaped pid {pid}: {}", describe(&status));
                continue;
            }
            let ran = self.started.elapsed();
            self.pid = None;
            if ran >= HEALTHY_AFTER {
                self.backoff = MIN_BACKOFF;
            }
            error!(
                "gateway (pid {pid}) {} after {:.1} s; restarting in {} s",
                describe(&status),
                ran.as_secs_f64(),
                self.backoff.as_secs()
            );
            self.schedule_restart();
        }
    }

    fn schedule_restart(&mut self) {
        self.start_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

/// Human words for a wait status, e.g. "killed by SIGKILL".
pub fn describe(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, 0) => "exited normally".into(),
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, signal, core) => {
            format!(
                "killed by {signal}{}",
                if *core { " (core dumped)" } else { "" }
            )
        }
        other => format!("{other:?}"),
    }
}

/// Tells the console when the gateway's listeners are up, by watching the
/// kernel's socket tables (no connection is made, so the gateway sees no
/// probe). Gives up quietly after a minute.
fn watch_listeners() {
    let ports = listener_ports();
    if ports.is_empty() {
        return;
    }
    let spawned = thread::Builder::new().name("ready".into()).spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let listening: Vec<u16> = ports.iter().copied().filter(|p| is_listening(*p)).collect();
            if listening.len() == ports.len() {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                let at = net::address().map_or("no address yet".into(), |a| format!("address {a}"));
                info!("SMTP is listening on port {} ({at})", ports.join(", "));
                if let Some(used) = memory_in_use() {
                    info!("memory in use: {used}");
                }
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    if let Err(e) = spawned {
        debug!("cannot watch the listeners: {e}");
    }
}

/// Ports of the `[[listener]]` addresses in the gateway configuration.
fn listener_ports() -> Vec<u16> {
    let Ok(text) = fs::read_to_string(super::CONFIG_PATH) else {
        return Vec::new();
    };
    let Ok(parts) = Parts::parse(&text) else {
        return Vec::new();
    };
    distinct_ports(parts.listeners().iter().map(|l| l.address.port()))
}

/// Each port once, in order: `0.0.0.0:25` and `[::]:25` are one port to the operator.
fn distinct_ports(ports: impl Iterator<Item = u16>) -> Vec<u16> {
    let mut ports: Vec<u16> = ports.collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Whether a TCP socket is in LISTEN state on `port` (IPv4 or IPv6).
pub(super) fn is_listening(port: u16) -> bool {
    let wanted = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        fs::read_to_string(table).is_ok_and(|text| {
            text.lines().skip(1).any(|line| {
                let mut fields = line.split_whitespace().skip(1);
                let local = fields.next().unwrap_or("");
                let state = fields.nth(1).unwrap_or("");
                local.ends_with(&wanted) && state == "0A"
            })
        })
    })
}

/// "N MiB of M MiB" from /proc/meminfo (total minus available).
fn memory_in_use() -> Option<String> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let (total, available) = (field("MemTotal:")?, field("MemAvailable:")?);
    Some(format!(
        "{} MiB of {} MiB",
        total.saturating_sub(available) / 1024,
        total / 1024
    ))
}

#[cfg(test)]
mod tests {
    use super::distinct_ports;

    #[test]
    fn a_port_on_both_families_is_named_once() {
        assert_eq!(distinct_ports([25, 587, 25].into_iter()), [25, 587]);
    }
}
