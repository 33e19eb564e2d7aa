//! The last log lines kept in memory, for `show log` and `monitor start` on the console
//! (the serial console no longer shows the gateway's lines, and the appliance has no
//! journal). Every line has a sequence number, so a reader can ask for what came after
//! the last line it saw.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Lines kept; at about 150 bytes a line, under 300 KiB.
const KEPT: usize = 2000;

struct Ring {
    lines: VecDeque<String>,
    /// The sequence number the next line gets; the first kept line is `next - len`.
    next: u64,
}

static RING: Mutex<Ring> = Mutex::new(Ring {
    lines: VecDeque::new(),
    next: 0,
});

pub fn push(line: &str) {
    keep(line.to_string());
}

/// [`push`] for a line the caller no longer needs: kept without a copy.
pub fn keep(mut line: String) {
    line.truncate(line.trim_end().len());
    if let Ok(mut ring) = RING.lock() {
        if ring.lines.len() >= KEPT {
            ring.lines.pop_front();
        }
        ring.lines.push_back(line);
        ring.next += 1;
    }
}

/// The newest `n` lines, oldest first.
pub fn recent(n: usize) -> Vec<String> {
    RING.lock()
        .map(|ring| {
            let lines = &ring.lines;
            lines
                .iter()
                .skip(lines.len().saturating_sub(n))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The lines after sequence number `after` (all kept ones when they were dropped since;
/// none when `after` is `None`: a reader starting now), and the number to ask from next.
pub fn since(after: Option<u64>) -> (u64, Vec<String>) {
    let Ok(ring) = RING.lock() else {
        return (after.unwrap_or(0), Vec::new());
    };
    let Some(after) = after else {
        return (ring.next, Vec::new());
    };
    let first = ring.next - ring.lines.len() as u64;
    let skip = after.saturating_sub(first).min(ring.lines.len() as u64) as usize;
    (ring.next, ring.lines.iter().skip(skip).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_gets_each_line_once_in_order() {
        // The ring is process-wide: other tests may log, so only our own lines are counted.
        let (mut next, none) = since(None);
        assert!(none.is_empty());
        let mut seen = Vec::new();
        for round in 0..3 {
            for n in 0..5 {
                push(&format!("ring-test {round} {n}\n"));
            }
            let (after, lines) = since(Some(next));
            next = after;
            seen.extend(lines.into_iter().filter(|l| l.starts_with("ring-test")));
        }
        let expected: Vec<String> = (0..3)
            .flat_map(|r| (0..5).map(move |n| format!("ring-test {r} {n}")))
            .collect();
        assert_eq!(seen, expected);
        assert!(recent(1).len() == 1);
    }
}
