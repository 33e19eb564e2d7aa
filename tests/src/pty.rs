//! Driving an interactive program through a pseudo-terminal, expect-style: the program
//! sees a real tty (raw mode, no echo, window size), the test sends keys and waits, with a
//! deadline, for text to appear.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Pty {
    master: Box<dyn Write + Send>,
    child: Option<Child>,
    output: Arc<Mutex<Vec<u8>>>,
    /// Everything before this offset (in the cleaned text) was matched already.
    seen: usize,
    name: String,
}

impl Pty {
    /// Starts `command` with the pty as its controlling terminal (stdin, stdout, stderr).
    pub fn spawn(name: &str, mut command: Command) -> Pty {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let slave: OwnedFd = pty.slave;
        command
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave))
            .env("TERM", "vt100");
        // SAFETY: runs in the child between fork and exec; setsid and ioctl are
        // async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc_ioctl_sctty(0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn under a pty");
        let master = std::fs::File::from(pty.master);
        let reader = master.try_clone().expect("dup master");
        let mut pty = Pty::over(name, Box::new(reader), Box::new(master));
        pty.child = Some(child);
        pty
    }

    /// The same expectations over any byte stream (a VM's serial port on a socket).
    pub fn over(
        name: &str,
        mut reader: Box<dyn Read + Send>,
        writer: Box<dyn Write + Send>,
    ) -> Pty {
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut out) = sink.lock() {
                    out.extend_from_slice(&buf[..n]);
                }
            }
        });
        Pty {
            master: writer,
            child: None,
            output,
            seen: 0,
            name: name.to_string(),
        }
    }

    /// Sends bytes as typed.
    pub fn send(&mut self, text: &str) {
        self.master
            .write_all(text.as_bytes())
            .expect("write to the pty");
    }

    /// Types a line and Enter.
    pub fn line(&mut self, text: &str) {
        self.send(text);
        self.send("\r");
    }

    /// The program's output so far with terminal control sequences removed.
    pub fn text(&self) -> String {
        let raw = self.output.lock().map(|o| o.clone()).unwrap_or_default();
        clean(&String::from_utf8_lossy(&raw))
    }

    /// Marks everything printed so far as seen: later expectations match only new output.
    pub fn skip(&mut self) {
        self.seen = self.text().len();
    }

    /// Waits for `needle` after what was matched before; returns the text up to and with it.
    pub fn expect(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.text();
            let from = self.seen.min(text.len());
            if let Some(pos) = text[from..].find(needle) {
                let end = from + pos + needle.len();
                self.seen = end;
                return text[from..end].to_string();
            }
            if Instant::now() >= deadline {
                panic!(
                    "[{}] no {needle:?} within {within:?}; output after the last match:\n{}",
                    self.name,
                    &text[from..]
                );
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let text = self.text();
                if !text[from..].contains(needle) {
                    panic!(
                        "[{}] exited ({status}) before {needle:?}:\n{}",
                        self.name,
                        &text[from..]
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the first of `needles`; returns its index.
    pub fn expect_any(&mut self, needles: &[&str], within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let text = self.text();
            let from = self.seen.min(text.len());
            let found = needles
                .iter()
                .enumerate()
                .filter_map(|(i, n)| text[from..].find(n).map(|p| (p, i, n.len())))
                .min();
            if let Some((pos, i, len)) = found {
                self.seen = from + pos + len;
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "[{}] none of {needles:?} within {within:?}:\n{}",
                self.name,
                &text[from..]
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the program to exit.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "[{}] still running after {within:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

nix::ioctl_write_int_bad!(tiocsctty, nix::libc::TIOCSCTTY);

fn libc_ioctl_sctty(fd: i32) -> i32 {
    // SAFETY: TIOCSCTTY on our own stdin, which is the pty's slave side.
    unsafe { tiocsctty(fd, 0) }.map_or(-1, |_| 0)
}

/// Drops CSI/ESC sequences and carriage returns, so tests match on what a person sees
/// (give or take redraws).
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    while let Some(&n) = chars.peek() {
                        chars.next();
                        if n.is_ascii_alphabetic() || n == '~' {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' | '\u{7}' => {}
            c => out.push(c),
        }
    }
    out
}
