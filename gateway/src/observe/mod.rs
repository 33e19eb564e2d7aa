//! Logging through the `log` facade: journald when running under systemd, a rotated file
//! on the data partition inside the appliance (its stderr is the serial console), stderr
//! otherwise.
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
//! | `ring.rs` | the last log lines, for the console's `show log` and `monitor` |
//! | `logfile.rs` | the rotated log file on the data partition |
//! | `syslog.rs` | remote syslog collectors (RFC 5424 over TCP, TLS or UDP), buffered while down |
//! | `track.rs` | message tracking: every step of a message, searched in the kept log |
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

pub mod logfile;
pub mod ring;
pub mod syslog;
pub mod track;

use crate::config::Log;
use log::{LevelFilter, Metadata, Record};
use std::io::Write;
use std::sync::Mutex;

/// Installs the process-wide logger once; later calls are ignored. `hostname` names this
/// machine in remote syslog headers. `data_dir` places the
/// default log file; `appliance` (the image's init runs us, stderr is the serial console)
/// makes `auto` mean the log file, so log lines never land in the operator's console
/// session (they are there with `monitor start`).
pub fn init(config: &Log, hostname: &str, data_dir: &std::path::Path, appliance: bool) {
    let level = match config.level.as_str() {
        "error" => LevelFilter::Error,
        "warn" => LevelFilter::Warn,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => LevelFilter::Info,
    };
    let journald = match config.target.as_str() {
        "journald" => true,
        "auto" => !appliance && systemd_journal_logger::connected_to_journal(),
        _ => false,
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
    let to_file = config.target == "file" || (config.target == "auto" && appliance);
    let file = to_file.then(|| config.file_in(data_dir)).and_then(|path| {
        for line in logfile::tail(&path, 256 << 10) {
            ring::push(&line);
        }
        match logfile::LogFile::open(&path, config.max_size.0, config.keep) {
            Ok(file) => {
                let _ = LOG_FILE.set((path.clone(), config.keep));
                Some(Mutex::new(file))
            }
            Err(e) => {
                eprintln!("edgemx: cannot open the log file {}: {e}", path.display());
                None
            }
        }
    });
    // Without its file, the appliance's gateway stays off the serial console all the
    // same: the ring still has every line for `show log` and `monitor`.
    let stderr = !to_file || (file.is_none() && !appliance);
    let collectors = syslog::Collectors::start(&config.syslog, hostname);
    if log::set_boxed_logger(Box::new(Lines {
        level,
        file,
        stderr,
        collectors,
    }))
    .is_ok()
    {
        log::set_max_level(level);
    }
}

/// The log file in use and how many rotated ones it keeps, once `init` opened it.
static LOG_FILE: std::sync::OnceLock<(std::path::PathBuf, usize)> = std::sync::OnceLock::new();

/// Every log line kept, oldest first: the log file and its rotated predecessors when the
/// gateway logs to a file, else the in-memory ring. Read for message tracking.
pub fn kept_lines() -> Box<dyn Iterator<Item = String>> {
    let Some((path, keep)) = LOG_FILE.get() else {
        return Box::new(ring::recent(usize::MAX).into_iter());
    };
    let mut files: Vec<std::path::PathBuf> = (1..=*keep)
        .rev()
        .map(|n| {
            let mut name = path.clone().into_os_string();
            name.push(format!(".{n}"));
            name.into()
        })
        .collect();
    files.push(path.clone());
    Box::new(files.into_iter().flat_map(|file| {
        use std::io::BufRead;
        std::fs::File::open(file)
            .ok()
            .into_iter()
            .flat_map(|f| std::io::BufReader::new(f).lines().map_while(Result::ok))
    }))
}

/// One line per record: `2026-11-26T05:10:00.123Z INFO edgemx::smtp: text`, kept in the
/// ring, written to the log file or stderr, and queued for the syslog collectors.
struct Lines {
    level: LevelFilter,
    file: Option<Mutex<logfile::LogFile>>,
    stderr: bool,
    collectors: syslog::Collectors,
}

impl log::Log for Lines {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
            && (metadata.target().starts_with("edgemx") || metadata.level() <= log::Level::Warn)
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Built once, in one buffer that the ring keeps: three lines per relayed message
        // made formatting (a string each for stamp, text and line, a copy for the ring)
        // a visible share of the relay's CPU time.
        use std::fmt::Write as _;
        let mut line = String::with_capacity(192);
        crate::time::push_iso8601_now(&mut line);
        let stamp = line.len();
        let _ = write!(line, " {:<5} ", record.level());
        let text = line.len();
        let _ = line.write_fmt(*record.args());
        line.push('\n');
        if !self.collectors.is_empty() {
            self.collectors
                .send(record.level(), &line[..stamp], &line[text..]);
        }
        if let Some(file) = &self.file {
            file.lock().unwrap_or_else(|e| e.into_inner()).write(&line);
        }
        if self.stderr {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
        ring::keep(line);
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
        self.collectors.drain(std::time::Duration::from_secs(1));
    }
}
