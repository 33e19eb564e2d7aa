//! The last log lines kept in memory, for `show log` on the console (the serial console
//! scrolls them away, and the appliance has no journal).

use std::collections::VecDeque;
use std::sync::Mutex;

/// Lines kept; at about 150 bytes a line, under 300 KiB.
const KEPT: usize = 2000;

static LINES: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

pub fn push(line: &str) {
    if let Ok(mut lines) = LINES.lock() {
        if lines.len() >= KEPT {
            lines.pop_front();
        }
        lines.push_back(line.trim_end().to_string());
    }
}

/// The newest `n` lines, oldest first.
pub fn recent(n: usize) -> Vec<String> {
    LINES
        .lock()
        .map(|lines| {
            lines
                .iter()
                .skip(lines.len().saturating_sub(n))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}
