//! Configuration revisions on the data partition: every commit made from the console is
//! kept as `data_dir/config/NNNNNN.toml` (the last [`KEPT`]), and the running file the
//! gateway was started from is replaced atomically.
//!
//! Owns the files only; validation is [`super::Config::parse`] and applying a revision is
//! the server's job. Every write is write, fsync, rename, fsync of the directory, so a
//! power cut leaves either the old or the new file, never a torn one.

use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Revisions kept; older ones are deleted after each commit.
pub const KEPT: usize = 50;

/// Lines starting with this hold a revision's metadata, above the configuration text.
const META: &str = "#@ ";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Revision {
    pub number: u64,
    /// Unix seconds.
    pub time: u64,
    pub comment: String,
}

pub struct Store {
    dir: PathBuf,
    /// The file the gateway reads at start; `None` when it was started from text.
    running: Option<PathBuf>,
}

impl Store {
    pub fn new(data_dir: &Path, running: Option<PathBuf>) -> Store {
        Store {
            dir: data_dir.join("config"),
            running,
        }
    }

    /// Records `text` as a new revision and makes it the running file.
    pub fn save(&self, text: &str, comment: &str) -> std::io::Result<Revision> {
        let revision = self.record(text, comment)?;
        if let Some(running) = &self.running {
            write_atomic(running, text.as_bytes())?;
        }
        Ok(revision)
    }

    /// Records `text` as a new revision without touching the running file.
    pub fn record(&self, text: &str, comment: &str) -> std::io::Result<Revision> {
        fs::create_dir_all(&self.dir)?;
        let number = self.numbers()?.last().copied().unwrap_or(0) + 1;
        let revision = Revision {
            number,
            time: crate::time::unix_now(),
            comment: comment.replace(['\r', '\n'], " "),
        };
        let stored = format!(
            "{META}revision {}\n{META}time {}\n{META}comment {}\n{text}",
            revision.number, revision.time, revision.comment
        );
        write_atomic(&self.path(number), stored.as_bytes())?;
        let numbers = self.numbers()?;
        for old in numbers.iter().take(numbers.len().saturating_sub(KEPT)) {
            let _ = fs::remove_file(self.path(*old));
        }
        Ok(revision)
    }

    /// Newest first.
    pub fn history(&self) -> std::io::Result<Vec<Revision>> {
        let mut out = Vec::new();
        for n in self.numbers()?.into_iter().rev() {
            if let Ok((revision, _)) = self.read(n) {
                out.push(revision);
            }
        }
        Ok(out)
    }

    /// The revision `back` commits before the newest (0 = the newest).
    pub fn back(&self, back: usize) -> std::io::Result<(Revision, String)> {
        let numbers = self.numbers()?;
        let n = numbers
            .len()
            .checked_sub(back + 1)
            .map(|i| numbers[i])
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("only {} revisions are stored", numbers.len()),
                )
            })?;
        self.read(n)
    }

    /// The revision numbered `number`.
    pub fn number(&self, number: u64) -> std::io::Result<(Revision, String)> {
        self.read(number)
    }

    /// `REVISION DEADLINE` of an unconfirmed `commit confirmed`, or nothing.
    pub fn set_pending(&self, line: Option<&str>) -> std::io::Result<()> {
        let path = self.dir.join("pending");
        match line {
            Some(line) => {
                fs::create_dir_all(&self.dir)?;
                write_atomic(&path, line.as_bytes())
            }
            None => match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
    }

    pub fn pending(&self) -> Option<(u64, u64)> {
        let text = fs::read_to_string(self.dir.join("pending")).ok()?;
        let (revision, deadline) = text.trim().split_once(' ')?;
        Some((revision.parse().ok()?, deadline.parse().ok()?))
    }

    fn read(&self, number: u64) -> std::io::Result<(Revision, String)> {
        let stored = fs::read_to_string(self.path(number))?;
        let mut revision = Revision {
            number,
            time: 0,
            comment: String::new(),
        };
        let mut text = String::new();
        for line in stored.split_inclusive('\n') {
            match line.strip_prefix(META) {
                Some(meta) if text.is_empty() => {
                    let (key, value) = meta.trim_end().split_once(' ').unwrap_or((meta, ""));
                    match key {
                        "time" => revision.time = value.parse().unwrap_or(0),
                        "comment" => revision.comment = value.to_string(),
                        _ => {}
                    }
                }
                _ => text.push_str(line),
            }
        }
        Ok((revision, text))
    }

    fn path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:06}.toml"))
    }

    /// Stored revision numbers, ascending.
    fn numbers(&self) -> std::io::Result<Vec<u64>> {
        let mut numbers: Vec<u64> = match fs::read_dir(&self.dir) {
            Ok(dir) => dir
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    name.strip_suffix(".toml")?.parse().ok()
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        numbers.sort_unstable();
        Ok(numbers)
    }
}

/// Write, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.new"));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_are_numbered_kept_and_read_back_with_their_comment() {
        let dir = tempfile::tempdir().unwrap();
        let running = dir.path().join("edgemx.toml");
        let store = Store::new(dir.path(), Some(running.clone()));
        for i in 0..(KEPT + 3) {
            store
                .save(&format!("hostname = \"h{i}\"\n"), &format!("c{i}"))
                .unwrap();
        }
        let history = store.history().unwrap();
        assert_eq!(history.len(), KEPT);
        assert_eq!(history[0].number, (KEPT + 3) as u64);
        assert_eq!(history[0].comment, format!("c{}", KEPT + 2));
        let (rev, text) = store.back(1).unwrap();
        assert_eq!(rev.number, (KEPT + 2) as u64);
        assert_eq!(text, format!("hostname = \"h{}\"\n", KEPT + 1));
        assert_eq!(
            fs::read_to_string(running).unwrap(),
            format!("hostname = \"h{}\"\n", KEPT + 2)
        );
        assert!(store.back(KEPT).is_err());
    }
}
