//! `monitor start [LEVEL]` / `monitor stop`: the gateway's log lines shown as they come,
//! as Junos's `monitor start messages`. Off by default: log lines never land inside a
//! prompt, a password or the pager. When on, they are printed between commands: before
//! the next prompt, or at once while the session waits at an empty prompt (the prompt is
//! drawn again under them); a line being typed is never cut.
//!
//! rustyline's own external printer is not used: while one exists its reader loses keys
//! that arrive together (a paste, or a fast serial line), as rustyline 17 selects on the
//! descriptor while keys wait in its buffer.

use super::link::Link;
use super::term::{Activity, print};
use crate::control::ConsoleRequest;
use crate::control::reply::LogTail;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the gateway is asked for new lines.
const POLL: Duration = Duration::from_millis(300);
/// An empty prompt untouched this long is a pause to print at.
const SETTLED: Duration = Duration::from_millis(500);
/// Lines held while a command runs, at most (the oldest are dropped, and a line says so).
const HELD: usize = 500;

pub const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

pub struct Monitor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    held: Arc<Mutex<Held>>,
}

#[derive(Default)]
struct Held {
    lines: Vec<String>,
    dropped: usize,
}

impl Held {
    fn add(&mut self, lines: impl IntoIterator<Item = String>) {
        self.lines.extend(lines);
        if self.lines.len() > HELD {
            let excess = self.lines.len() - HELD;
            self.dropped += excess;
            self.lines.drain(..excess);
        }
    }

    fn take(&mut self) -> Option<String> {
        if self.lines.is_empty() {
            return None;
        }
        let mut text = String::new();
        if self.dropped > 0 {
            text.push_str(&format!("({} older lines not shown)\n", self.dropped));
            self.dropped = 0;
        }
        for line in self.lines.drain(..) {
            text.push_str(&line);
            text.push('\n');
        }
        Some(text)
    }
}

impl Monitor {
    /// Starts following the log of the gateway at `socket`, showing lines of `level` and
    /// more severe ones.
    pub fn start(socket: PathBuf, level: &'static str, activity: Arc<Activity>) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Held::default()));
        let (stopped, kept) = (stop.clone(), held.clone());
        let rank = rank(level);
        let thread = std::thread::spawn(move || {
            let mut link = Link::new(socket);
            let mut next = None;
            while !stopped.load(Ordering::Relaxed) {
                match link.console::<LogTail>(ConsoleRequest::LogSince { after: next }) {
                    // A restarted gateway numbers its lines from 0 again.
                    Ok(tail) if next.is_some_and(|n| tail.next < n) => next = Some(0),
                    Ok(tail) => {
                        next = Some(tail.next);
                        let lines = tail.lines.into_iter().filter(|l| shown(l, rank));
                        lock(&kept).add(lines);
                    }
                    Err(_) => next = None,
                }
                {
                    let state = activity.lock();
                    if state.at_prompt
                        && state.line_empty
                        && state.last_key.elapsed() >= SETTLED
                        && let Some(text) = lock(&kept).take()
                    {
                        // Raw mode: \r\n by hand; the prompt line is cleared first.
                        print(&format!(
                            "\r\x1b[K{}{}",
                            text.replace('\n', "\r\n"),
                            state.prompt
                        ));
                    }
                }
                std::thread::sleep(POLL);
            }
        });
        Monitor {
            stop,
            thread: Some(thread),
            held,
        }
    }

    /// Prints the lines held while a command ran (called before the next prompt).
    pub fn flush(&self) {
        if let Some(text) = lock(&self.held).take() {
            print(&text);
        }
    }
}

fn lock(held: &Mutex<Held>) -> std::sync::MutexGuard<'_, Held> {
    held.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The level word as a rank (0 = error); unknown words are not a level.
pub fn level(word: &str) -> Option<&'static str> {
    LEVELS
        .iter()
        .find(|l| l.eq_ignore_ascii_case(word))
        .copied()
}

fn rank(level: &str) -> usize {
    LEVELS
        .iter()
        .position(|l| l.eq_ignore_ascii_case(level))
        .unwrap_or(2)
}

/// Whether a log line (`TIME LEVEL text`) is at `rank` or more severe; lines of another
/// shape are shown.
fn shown(line: &str, rank_limit: usize) -> bool {
    match line.split_whitespace().nth(1) {
        Some(word) if level(word).is_some() => rank(word) <= rank_limit,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_shows_itself_and_everything_more_severe() {
        let line = |l: &str| format!("2026-12-03T18:00:00.000Z {l} text");
        let warn = rank("warn");
        assert!(shown(&line("ERROR"), warn));
        assert!(shown(&line("WARN "), warn));
        assert!(!shown(&line("INFO "), warn));
        assert!(!shown(&line("DEBUG"), rank("info")));
        assert!(shown(&line("TRACE"), rank("trace")));
        assert!(shown("a line without a level", 0));
        assert_eq!(level("Warn"), Some("warn"));
        assert_eq!(level("loud"), None);
    }
}
