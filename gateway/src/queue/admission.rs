//! Quotas and the free-space reserve: who may add a message of a given size.
//!
//! [`Limits::check`] answers `admit` (at MAIL FROM, from the counters and a free-space figure
//! at most [`FRESH`] old); the writer re-checks every enqueue exactly with [`Limits::batch`],
//! asking the file system once per batch and counting what earlier requests of the same
//! batch take.

use super::QueueError;
use super::store::StoreError;
use crate::config;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Free bytes on the queue's file system and the reserve to keep there.
type Free = (u64, u64);
/// When `check` asked for the free space, and the answer (`None`: statfs failed).
type Seen = (Instant, Option<Free>);

/// How old the free space `check` uses may be. It only refuses early (at MAIL FROM instead
/// of after DATA); asked per message, `statfs` was a system call per relayed message.
const FRESH: Duration = Duration::from_millis(100);

/// Kept by the writer after each commit; read by anyone.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub commits: AtomicU64,
    /// Why the last commit failed, until one succeeds again (disk full, I/O error): while
    /// set, nothing new is admitted, so a sender is never told `250` for data that cannot be
    /// stored, and `/healthz` says why.
    pub failing: Mutex<Option<StoreError>>,
}

impl Counters {
    pub fn failing(&self) -> Option<StoreError> {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_failing(&self, why: Option<StoreError>) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }
}

#[derive(Debug, Clone)]
pub(super) struct Limits {
    pub max_messages: u64,
    pub max_bytes: u64,
    pub min_free_space: config::Reserve,
    /// The directory holding the database: whose filesystem must keep the reserve.
    pub dir: PathBuf,
    /// The free space `check` last asked for, and when.
    pub seen: Arc<Mutex<Option<Seen>>>,
}

impl Limits {
    pub fn new(config: &config::Queue, path: &Path) -> Limits {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Limits {
            max_messages: config.max_messages,
            max_bytes: config.max_bytes.0,
            min_free_space: config.min_free_space,
            dir,
            seen: Arc::default(),
        }
    }

    /// May a message of `size` bytes be added now? The free space may be [`FRESH`] old.
    pub fn check(&self, counters: &Counters, size: u64) -> Result<(), QueueError> {
        let mut batch = self.batch(counters);
        if self.min_free_space != config::Reserve::Fixed(config::Bytes(0)) {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let free = match *seen {
                Some((at, free)) if at.elapsed() < FRESH => free,
                _ => {
                    let free = self.free_space();
                    *seen = Some((Instant::now(), free));
                    free
                }
            };
            batch.free = Some(free);
        }
        batch.take(size)
    }

    /// Admission for one writer batch, starting from the committed counters.
    pub fn batch<'a>(&'a self, counters: &Counters) -> Batch<'a> {
        Batch {
            limits: self,
            messages: counters.messages.load(Ordering::Relaxed),
            bytes: counters.bytes.load(Ordering::Relaxed),
            free: None,
            taken: 0,
            failing: counters.failing(),
        }
    }

    /// Free bytes and the reserve to keep, which may scale with the file system's size.
    fn free_space(&self) -> Option<Free> {
        match nix::sys::statvfs::statvfs(&self.dir) {
            Ok(s) => Some((
                s.blocks_available().saturating_mul(s.fragment_size()),
                self.min_free_space
                    .bytes(s.blocks().saturating_mul(s.fragment_size())),
            )),
            Err(e) => {
                // Not knowing the free space must not stop mail; the commit itself will fail
                // if the disk is really full.
                log::warn!("queue: statvfs {}: {e}", self.dir.display());
                None
            }
        }
    }
}

pub(super) struct Batch<'a> {
    limits: &'a Limits,
    messages: u64,
    bytes: u64,
    /// Free bytes on the filesystem, asked once per batch and only if needed.
    free: Option<Option<Free>>,
    /// Bytes taken by earlier messages of this batch, not yet on disk.
    taken: u64,
    failing: Option<StoreError>,
}

impl Batch<'_> {
    /// Reserves room for one message of `size` bytes, or says why there is none.
    pub fn take(&mut self, size: u64) -> Result<(), QueueError> {
        let l = self.limits;
        if let Some(why) = &self.failing {
            let why = format!("the queue cannot commit: {why}");
            return Err(match self.failing {
                Some(StoreError::DiskFull(_)) => QueueError::DiskFull(why),
                _ => QueueError::Io(why),
            });
        }
        if self.messages >= l.max_messages {
            return Err(QueueError::Full(format!(
                "{} messages queued (limit {})",
                self.messages, l.max_messages
            )));
        }
        if self.bytes.saturating_add(size) > l.max_bytes {
            return Err(QueueError::Full(format!(
                "{} bytes queued, {size} more would exceed the limit of {}",
                self.bytes, l.max_bytes
            )));
        }
        if l.min_free_space != config::Reserve::Fixed(config::Bytes(0)) {
            let free = *self.free.get_or_insert_with(|| l.free_space());
            if let Some((free, reserve)) = free {
                let left = free
                    .saturating_sub(self.taken)
                    .saturating_sub(on_disk(size));
                if left < reserve {
                    return Err(QueueError::Full(format!(
                        "{free} bytes free on {}, keeping {reserve} in reserve",
                        l.dir.display(),
                    )));
                }
            }
        }
        self.messages += 1;
        self.bytes = self.bytes.saturating_add(size);
        self.taken = self.taken.saturating_add(on_disk(size));
        Ok(())
    }
}

/// What a message of `size` bytes takes on disk at least: one page per body chunk and one
/// for its envelope (see `store.rs`). Counting the body length alone let a batch of many
/// small messages, each well inside the reserve, take several times that much: a 1-byte
/// message takes two 4 KiB pages.
pub(super) fn on_disk(size: u64) -> u64 {
    const PAGE: u64 = 4096;
    let chunks = size.div_ceil(super::store::CHUNK as u64).max(1);
    chunks.saturating_add(1).saturating_mul(PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(reserve: u64) -> Limits {
        Limits {
            max_messages: u64::MAX,
            max_bytes: u64::MAX,
            min_free_space: config::Reserve::Fixed(config::Bytes(reserve)),
            dir: PathBuf::from("."),
            seen: Arc::default(),
        }
    }

    #[test]
    fn a_batch_counts_pages_not_body_bytes_against_the_reserve() {
        let limits = limits(1 << 20);
        let counters = Counters::default();
        let mut batch = limits.batch(&counters);
        // 400 KiB above the reserve: 100 one-kilobyte messages are 100 KiB of bodies but
        // 800 KiB of pages, so only the first 50 fit.
        batch.free = Some(Some(((1 << 20) + 400 * 1024, 1 << 20)));
        let taken = (0..100).filter(|_| batch.take(1024).is_ok()).count();
        assert_eq!(taken, 50);
    }

    #[test]
    fn mail_from_uses_a_recent_free_space_figure_and_the_writer_asks_anew() {
        let limits = limits(1);
        let counters = Counters::default();
        // A figure from just now saying the disk is full refuses at MAIL FROM...
        *limits.seen.lock().unwrap() = Some((Instant::now(), Some((0, 1))));
        assert!(matches!(
            limits.check(&counters, 10),
            Err(QueueError::Full(_))
        ));
        // ...while the writer's check asks the file system itself (it has room).
        assert!(limits.batch(&counters).take(10).is_ok());
        // An older figure is asked again, and the answer kept.
        let old = Instant::now() - FRESH * 2;
        *limits.seen.lock().unwrap() = Some((old, Some((0, 1))));
        assert!(limits.check(&counters, 10).is_ok());
        let (at, free) = limits.seen.lock().unwrap().expect("kept");
        assert!(at > old && free.is_some_and(|(free, _)| free > 0));
    }

    #[test]
    fn nothing_is_admitted_while_commits_fail() {
        let limits = limits(0);
        let counters = Counters::default();
        assert!(limits.check(&counters, 10).is_ok());
        counters.set_failing(Some(StoreError::DiskFull(
            "No space left on device (os error 28)".into(),
        )));
        let refused = limits.check(&counters, 10).expect_err("refused");
        assert!(matches!(&refused, QueueError::DiskFull(why) if why.contains("os error 28")));
        counters.set_failing(None);
        assert!(limits.check(&counters, 10).is_ok());
    }
}
