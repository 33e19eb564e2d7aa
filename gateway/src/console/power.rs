//! The machine itself: reboot, power off and factory reset. Only inside the appliance,
//! where init (PID 1) turns signals into a clean shutdown: SIGTERM reboots, SIGUSR2
//! powers off (see `init::supervise`).

use super::term::{Input, Term, print};
use super::words::Failure;

/// Marker on the data partition: at the next boot init erases `/data` before anything
/// reads it, so the configuration, the queue and the admin account go together.
pub const FACTORY_RESET: &str = "/data/factory-reset";

pub fn reboot(term: &mut Term, appliance: bool, off: bool) -> Result<(), Failure> {
    let what = if off { "power off" } else { "reboot" };
    if !appliance {
        return Err(Failure::plain(format!(
            "{what} is only available on the appliance's console"
        )));
    }
    if !ask(
        term,
        &format!("{what} the appliance? Mail in the queue is kept. [yes/no] "),
        "yes",
    ) {
        print("cancelled\n");
        return Ok(());
    }
    signal_init(off)
}

pub fn factory_reset(term: &mut Term, appliance: bool) -> Result<(), Failure> {
    if !appliance {
        return Err(Failure::plain(
            "factory-reset is only available on the appliance's console",
        ));
    }
    print(
        "This erases the configuration, every revision, the admin account and ALL QUEUED MAIL.\n",
    );
    if !ask(term, "Type \"erase\" to confirm: ", "erase") {
        print("cancelled\n");
        return Ok(());
    }
    crate::config::store::write_atomic(
        std::path::Path::new(FACTORY_RESET),
        b"requested from the console\n",
    )
    .map_err(|e| Failure::plain(format!("cannot mark the reset: {e}")))?;
    print("rebooting; setup runs at the next boot\n");
    signal_init(false)
}

fn ask(term: &mut Term, question: &str, yes: &str) -> bool {
    matches!(term.read(question), Input::Line(l) if l.trim() == yes)
}

fn signal_init(off: bool) -> Result<(), Failure> {
    use nix::sys::signal::{Signal, kill};
    let signal = if off {
        Signal::SIGUSR2
    } else {
        Signal::SIGTERM
    };
    kill(nix::unistd::Pid::from_raw(1), signal)
        .map_err(|e| Failure::plain(format!("cannot signal init: {e}")))?;
    // Init stops everything, this console included; wait for it.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}
