//! The one shutdown path: stop every process (the gateway commits its queue
//! on SIGTERM), then sync, unmount /data, and power off or reboot.
//!
//! Every process but init gets SIGTERM and a deadline; whatever is left then
//! gets SIGKILL. Only after the last child is reaped is /data unmounted, so
//! no write can race the unmount. This function never returns: if the final
//! `reboot(2)` fails, init parks rather than exit (which would panic the
//! kernel with /data possibly mounted).

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

/// How long the gateway gets to finish its commits after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// How long SIGKILLed processes get to disappear.
const KILL_DEADLINE: Duration = Duration::from_secs(5);

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
    if !wait_for_all(signals, dog, STOP_DEADLINE) {
        warn!(
            "processes still running after {} s; killing them",
            STOP_DEADLINE.as_secs()
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
