//! The log file on the data partition (`[log] target = "file"`, the appliance's default):
//! lines appended as they are logged, the file rotated at `max_size` keeping `keep` older
//! ones, so the log survives a reboot and never grows past `(keep + 1) × max_size`.
//!
//! A write that fails (the partition full or gone) loses that line and nothing else: the
//! in-memory ring behind `show log` still has it, and logging never stops the gateway.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub struct LogFile {
    path: PathBuf,
    max_size: u64,
    keep: usize,
    file: Option<File>,
    size: u64,
}

impl LogFile {
    /// Opens (or creates) `path` for appending, creating its directory.
    pub fn open(path: &Path, max_size: u64, keep: usize) -> io::Result<LogFile> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = append(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            max_size,
            keep: keep.max(1),
            file: Some(file),
            size,
        })
    }

    /// Appends one line (with its newline), rotating first when it would not fit.
    pub fn write(&mut self, line: &str) {
        if self.size > 0 && self.size + line.len() as u64 > self.max_size {
            self.rotate();
        }
        if self.file.is_none() {
            // Reopened after a failed rotation or a lost partition.
            self.file = append(&self.path).ok();
            self.size = self
                .file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map_or(0, |m| m.len());
        }
        if let Some(file) = self.file.as_mut() {
            match file.write_all(line.as_bytes()) {
                Ok(()) => self.size += line.len() as u64,
                Err(_) => self.file = None,
            }
        }
    }

    /// `edgemx.log` → `edgemx.log.1` → … → `edgemx.log.<keep>` (the oldest is dropped).
    fn rotate(&mut self) {
        self.file = None;
        let numbered = |n: usize| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        let _ = fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            let _ = fs::rename(numbered(n), numbered(n + 1));
        }
        let _ = fs::rename(&self.path, numbered(1));
        self.size = 0;
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The last whole lines of the log file within its last `bytes` bytes, oldest first: what
/// the ring starts with after a restart, so `show log` reaches back across a reboot.
pub fn tail(path: &Path, bytes: u64) -> Vec<String> {
    let Ok(mut file) = File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(bytes);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut text = Vec::new();
    if file.read_to_end(&mut text).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&text);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_the_size_cap_and_keeps_only_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log/edgemx.log");
        let mut log = LogFile::open(&path, 100, 2).unwrap();
        for n in 0..20 {
            log.write(&format!("line {n:02} of twenty-ish bytes\n"));
        }
        let read = |p: &Path| fs::read_to_string(p).unwrap();
        let newest = read(&path);
        assert!(
            newest.ends_with("line 19 of twenty-ish bytes\n"),
            "{newest}"
        );
        assert!(newest.len() <= 100);
        let one = read(&dir.path().join("log/edgemx.log.1"));
        let two = read(&dir.path().join("log/edgemx.log.2"));
        assert!(one.len() <= 100 && two.len() <= 100);
        assert!(!dir.path().join("log/edgemx.log.3").exists());
        // Nothing lost between the kept files: their lines are consecutive.
        let all: Vec<&str> = [two.as_str(), one.as_str(), newest.as_str()]
            .concat()
            .leak()
            .lines()
            .collect();
        let first: usize = all[0][5..7].parse().unwrap();
        for (i, line) in all.iter().enumerate() {
            assert_eq!(line[5..7].parse::<usize>().unwrap(), first + i);
        }
    }

    #[test]
    fn a_reopened_file_appends_and_tail_returns_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edgemx.log");
        LogFile::open(&path, 1 << 20, 4).unwrap().write("first\n");
        LogFile::open(&path, 1 << 20, 4)
            .unwrap()
            .write("second line\n");
        assert_eq!(tail(&path, 1 << 20), ["first", "second line"]);
        assert_eq!(tail(&path, 14), ["second line"]);
        assert!(tail(&dir.path().join("missing"), 100).is_empty());
    }
}
