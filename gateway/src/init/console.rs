//! Init's log lines on the console.
//!
//! PID 1's stderr is `/dev/console` (the kernel opens it before running
//! `/init`), which the image's kernel command line points at ttyS0. Lines look
//! like the kernel's own, so a boot reads as one log:
//! `[    3.141593] init: eth0: 10.0.2.15/24 ...`. The gateway child writes to
//! the same console with its own format.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};
use nix::time::{ClockId, clock_gettime};

struct Console;

static CONSOLE: Console = Console;

/// Installs the console logger (once; a second call keeps the first logger).
pub fn install() {
    if log::set_logger(&CONSOLE).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}

impl Log for Console {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let (secs, micros) = uptime();
        let level = match record.level() {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            Level::Info => "",
            Level::Debug | Level::Trace => "debug: ",
        };
        // One write per line so lines from threads and the kernel interleave
        // whole. Nothing useful can be done if the console itself fails.
        let line = format!("[{secs:5}.{micros:06}] init: {level}{}\n", record.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Time since boot, as the kernel prints it.
fn uptime() -> (i64, i64) {
    match clock_gettime(ClockId::CLOCK_BOOTTIME) {
        Ok(t) => (t.tv_sec(), t.tv_nsec() / 1000),
        Err(_) => (0, 0),
    }
}
