//! Logging through the `log` facade: journald when running under systemd, stderr (which
//! is the serial console inside the appliance) otherwise.
//!
//! Owns the logger choice and the line format; it must not decide what is logged.
//!
//! # Layout
//!
//! | file | owns |
//! | --- | --- |
//! | `metrics/` | the metrics registry and every metric name; `render.rs`: the Prometheus text |
//! | `http.rs` | the admin HTTP listener (`/metrics`, `/healthz`), on its own thread |
//! | `slots.rs` | the admin listener's connection slots: slow clients cannot starve `/healthz` |
//! | `scrape.rs` | what is read at scrape time: health, queue depth per destination |
//! | `events.rs` | the events the data path publishes (accepted, delivered, hop down…) |
//! | `ring.rs` | the last log lines, for the console's `show log` |
//! | `reports.rs` | the view of the report senders (`show reports`) and the [`reports::Desk`] the control socket asks |
//!
//! The registry is a value (one per running gateway) that subscribes to the events;
//! nothing below `server` calls it. The mail-flow probes are the top-level `probe` module.

pub mod events;
pub mod http;
pub mod metrics;
pub mod reports;
pub mod scrape;
mod slots;

pub mod ring;

use crate::config::Log;
use log::{LevelFilter, Metadata, Record};
use std::io::Write;

/// Installs the process-wide logger once; later calls are ignored.
pub fn init(config: &Log) {
    let level = match config.level.as_str() {
        "error" => LevelFilter::Error,
        "warn" => LevelFilter::Warn,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => LevelFilter::Info,
    };
    let journald = match config.target.as_str() {
        "journald" => true,
        "stderr" => false,
        _ => systemd_journal_logger::connected_to_journal(),
    };
    if journald
        && let Ok(logger) = systemd_journal_logger::JournalLog::new()
        && logger
            .with_syslog_identifier("edgemx".into())
            .install()
            .is_ok()
    {
        log::set_max_level(level);
        return;
    }
    if log::set_boxed_logger(Box::new(Stderr { level })).is_ok() {
        log::set_max_level(level);
    }
}

/// One line per record: `2026-11-26T05:10:00.123Z INFO edgemx::smtp: text`.
struct Stderr {
    level: LevelFilter,
}

impl log::Log for Stderr {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
            && (metadata.target().starts_with("edgemx") || metadata.level() <= log::Level::Warn)
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {:<5} {}\n",
            crate::time::iso8601_now(),
            record.level(),
            record.args()
        );
        ring::push(&line);
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}
