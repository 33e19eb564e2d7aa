//! The operator console on the first serial port: `edgemx console` started on ttyS0
//! (115200 8N1, as the kernel command line sets it) as its controlling terminal, with the admin login from the data
//! partition, and started again whenever it exits (a logout brings back the login prompt).

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use log::{debug, warn};
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::unistd::Pid;

use crate::config::parts::Parts;

const TTY: &str = "/dev/ttyS0";
/// The admin account; without it the console runs the first-boot wizard.
pub const ADMIN_PATH: &str = "/data/admin";

pub struct Getty {
    pub pid: Option<Pid>,
    pub start_at: Instant,
    backoff: Duration,
    started: Instant,
}

impl Getty {
    pub fn new() -> Getty {
        Getty {
            pid: None,
            start_at: Instant::now(),
            backoff: Duration::from_secs(1),
            started: Instant::now(),
        }
    }

    pub fn start(&mut self) {
        match spawn() {
            Ok(pid) => {
                self.pid = Some(pid);
                self.started = Instant::now();
            }
            Err(e) => {
                warn!("console on {TTY}: {e}");
                self.exited();
            }
        }
    }

    /// The console exited (logout, lost line): start it again, quickly unless it keeps
    /// failing at once.
    pub fn exited(&mut self) {
        self.pid = None;
        if self.started.elapsed() > Duration::from_secs(10) {
            self.backoff = Duration::from_secs(1);
        }
        self.start_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(60));
    }
}

fn spawn() -> Result<Pid, String> {
    let tty: OwnedFd = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(TTY)
        .map_err(|e| e.to_string())?
        .into();
    // The line speed (115200 8N1) is the kernel's, from `console=ttyS0,115200n8` on the
    // command line; cfsetspeed(3) is not available when glibc is linked statically.
    let socket = control_socket();
    let dup = |fd: &OwnedFd| fd.try_clone().map(Stdio::from).map_err(|e| e.to_string());
    let mut command = Command::new("/proc/self/exe");
    command
        .arg0("edgemx")
        .arg("console")
        .arg("--socket")
        .arg(socket)
        .args(["--login", ADMIN_PATH, "--appliance"])
        .env_clear()
        .env("PATH", "/")
        .env("HOME", "/data")
        .env("TERM", "vt100")
        .stdin(dup(&tty)?)
        .stdout(dup(&tty)?)
        .stderr(Stdio::from(tty));
    // SAFETY: runs in the child before exec; sigprocmask, setsid and ioctl are
    // async-signal-safe. The mask must be cleared for the same reason as the gateway's
    // (init's blocked signals survive exec); the new session makes ttyS0 the console's
    // controlling terminal, so Ctrl-C reaches it and not init.
    let command = unsafe {
        command.pre_exec(|| {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)?;
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            tiocsctty(0, 0).map_err(std::io::Error::from)?;
            Ok(())
        })
    };
    let child = command.spawn().map_err(|e| e.to_string())?;
    let pid = Pid::from_raw(child.id() as i32);
    debug!("console started on {TTY} (pid {pid})");
    Ok(pid)
}

nix::ioctl_write_int_bad!(tiocsctty, nix::libc::TIOCSCTTY);

/// `data_dir/control.sock` from the configuration (the default's data_dir otherwise).
fn control_socket() -> PathBuf {
    fs::read_to_string(super::CONFIG_PATH)
        .ok()
        .and_then(|text| Parts::parse(&text).ok()?.data_dir())
        .unwrap_or_else(|| "/data/edgemx".into())
        .join("control.sock")
}
