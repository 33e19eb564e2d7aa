//! One SSH channel's console: `edgemx console --socket … [--login PATH]` on a fresh
//! pseudo-terminal, exactly as init runs it on the serial line (login, idle timeout,
//! everything the console does), with the channel's bytes going to and from the PTY.

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::pty::{Winsize, openpty};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::unix::AsyncFd;

/// What the console is started with.
pub struct Spawn<'a> {
    pub socket: &'a Path,
    /// The admin account; `None`: the key alone logs in.
    pub login: Option<&'a Path>,
    pub appliance: bool,
    pub term: &'a str,
    pub size: Winsize,
}

/// The console process and the PTY's controlling side. Dropping it hangs the console up.
pub struct Shell {
    pid: Pid,
    /// Set once the child is reaped, so a late hang-up never signals a reused pid.
    reaped: Arc<AtomicBool>,
    pub master: Arc<AsyncFd<OwnedFd>>,
}

impl Shell {
    /// Starts the console; the [`Child`] is for whoever waits for it (the output pump).
    pub fn spawn(how: Spawn) -> std::io::Result<(Shell, Child, Arc<AtomicBool>)> {
        let pty = openpty(Some(&how.size), None)?;
        // openpty(3) leaves both ends inheritable: a console holding its own PTY's master
        // (or another session's) would never see the hang-up that ends it.
        for fd in [&pty.master, &pty.slave] {
            fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        }
        let flags = OFlag::from_bits_truncate(fcntl(pty.master.as_fd(), FcntlArg::F_GETFL)?);
        fcntl(
            pty.master.as_fd(),
            FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK),
        )?;
        // Registered before the console starts, so no failure below leaves it running.
        // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same
        // for the AsyncFd's whole life.
        let master = unsafe { AsyncFd::register(pty.master) }.map_err(std::io::Error::from)?;
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg0("edgemx")
            .arg("console")
            .arg("--socket")
            .arg(how.socket);
        if let Some(login) = how.login {
            command.arg("--login").arg(login);
        }
        if how.appliance {
            command.arg("--appliance");
        }
        let term = match how.term {
            "" => "vt100",
            term => term,
        };
        command
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("TERM", term)
            .stdin(Stdio::from(pty.slave.try_clone()?))
            .stdout(Stdio::from(pty.slave.try_clone()?))
            .stderr(Stdio::from(pty.slave));
        if let Ok(home) = std::env::var("HOME") {
            command.env("HOME", home);
        }
        // SAFETY: runs in the child before exec; setsid and ioctl are async-signal-safe.
        // The new session makes the PTY the console's controlling terminal, so Ctrl-C and
        // the hang-up reach the console and never the gateway.
        let command = unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                tiocsctty(0, 0).map_err(std::io::Error::from)?;
                Ok(())
            })
        };
        let child = command.spawn()?;
        let reaped = Arc::new(AtomicBool::new(false));
        let shell = Shell {
            pid: Pid::from_raw(child.id() as i32),
            reaped: reaped.clone(),
            master: Arc::new(master),
        };
        Ok((shell, child, reaped))
    }

    /// The client's window changed size.
    pub fn resize(&self, size: Winsize) {
        // SAFETY: TIOCSWINSZ reads one Winsize from the pointer, which outlives the call.
        if let Err(e) = unsafe { tiocswinsz(self.master.get_ref().as_raw_fd(), &size) } {
            log::debug!("ssh: window size: {e}");
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        if !self.reaped.load(Ordering::Acquire) {
            let _ = kill(self.pid, Signal::SIGHUP);
        }
    }
}

/// Writes all of `data` to the PTY, waiting while the console has not read what came
/// before.
pub async fn write_all(master: &AsyncFd<OwnedFd>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let mut guard = master.writable().await?;
        match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(Into::into)) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

/// Reads what the console wrote; `Ok(0)` or an error (EIO) once it has hung up.
pub async fn read(master: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        let mut guard = master.readable().await?;
        match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(Into::into)) {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

nix::ioctl_write_int_bad!(tiocsctty, nix::libc::TIOCSCTTY);
nix::ioctl_write_ptr_bad!(tiocswinsz, nix::libc::TIOCSWINSZ, Winsize);
