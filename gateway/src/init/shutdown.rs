//! The one shutdown path: stop every process (the gateway commits its queue
//! on SIGTERM), then sync, unmount /data, and power off or reboot.
//!
//! Every process but init gets SIGTERM and a deadline; whatever is left then
//! gets SIGKILL. Only after the last child is reaped is /data unmounted, so
//! no write can race the unmount. This function never returns: if the final
//! `reboot(2)` fails, init parks rather than exit (which would panic the
//! kernel with /data possibly mounted).

use std::path::Path;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use nix::errno::Errno;
use nix::sys::reboot::{RebootMode, reboot};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, pause, sync};

use super::mounts;
use super::supervise::{arm_alarm, describe};
use super::watchdog::Watchdog;

/// What the gateway gets after SIGTERM beyond its own `limits.shutdown_timeout` (which
/// bounds its sessions and deliveries): the queue's last commit and closing the store.
const STOP_MARGIN: Duration = Duration::from_secs(10);
/// How long SIGKILLed processes get to disappear.
const KILL_DEADLINE: Duration = Duration::from_secs(5);

/// How long the gateway gets after SIGTERM: its configured `limits.shutdown_timeout`
/// (the default when the file cannot be read) plus [`STOP_MARGIN`], so init never kills a
/// gateway that is keeping its own deadline.
fn stop_deadline(config: &Path) -> Duration {
    let limits = std::fs::read_to_string(config)
        .ok()
        .and_then(|text| crate::config::parts::Parts::parse(&text).ok())
        .map(|parts| parts.limits())
        .unwrap_or_default();
    limits.shutdown_timeout.0 + STOP_MARGIN
}

/// What the operator (or the power button) asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    PowerOff,
    Reboot,
}

/// Stops everything and powers off or reboots. Never returns.
pub fn finish(request: Request, signals: &SigSet, dog: &mut Option<Watchdog>) -> ! {
    let verb = match request {
        Request::PowerOff => "power off",
        Request::Reboot => "reboot",
    };
    info!("{verb} requested: stopping the gateway");
    // pid -1: every process except init itself.
    if let Err(e) = kill(Pid::from_raw(-1), Signal::SIGTERM)
        && e != Errno::ESRCH
    {
        warn!("cannot signal processes: {e}");
    }
    let deadline = stop_deadline(Path::new(super::CONFIG_PATH));
    if !wait_for_all(signals, dog, deadline) {
        warn!(
            "processes still running after {} s; killing them",
            deadline.as_secs()
        );
        let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
        if !wait_for_all(signals, dog, KILL_DEADLINE) {
            error!("processes survived SIGKILL; going on regardless");
        }
    }
    arm_alarm(None);
    sync();
    mounts::unmount_data();
    sync();
    info!("{verb} now");
    let mode = match request {
        Request::PowerOff => RebootMode::RB_POWER_OFF,
        Request::Reboot => RebootMode::RB_AUTOBOOT,
    };
    let Err(e) = reboot(mode);
    error!("{verb} failed: {e}; halted (the watchdog, if any, will reset)");
    loop {
        pause();
    }
}

/// Reaps children until none is left (true) or the deadline passes (false).
fn wait_for_all(signals: &SigSet, dog: &mut Option<Watchdog>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Err(Errno::ECHILD) => return true,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    error!("waitpid: {e}");
                    return false;
                }
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        info!("stopped pid {pid}: {}", describe(&status));
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        if let Some(dog) = dog.as_mut() {
            dog.ping_if_due();
        }
        // Wake at least every second to check the deadline.
        arm_alarm(Some(Instant::now()));
        let _ = signals.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stop_deadline_follows_the_configured_shutdown_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edgemx.toml");
        std::fs::write(
            &path,
            "hostname = \"gw\"\n[limits]\nshutdown_timeout = \"75s\"\n",
        )
        .unwrap();
        assert_eq!(stop_deadline(&path), Duration::from_secs(75) + STOP_MARGIN);
        // Unreadable, or no [limits]: the gateway's default deadline, plus the margin.
        let default = crate::config::Limits::default().shutdown_timeout.0;
        assert_eq!(
            stop_deadline(&dir.path().join("missing.toml")),
            default + STOP_MARGIN
        );
        std::fs::write(&path, "hostname = \"gw\"\n").unwrap();
        assert_eq!(stop_deadline(&path), default + STOP_MARGIN);
    }
}
