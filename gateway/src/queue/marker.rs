//! The "a queue existed here" marker: why a missing or empty queue file is an error.
//!
//! redb creates a database when the file is missing, and an empty file (what a crashed
//! copy, a bad restore or a file-system repair can leave) opened the same way: the gateway
//! came up with zero messages and the queue was lost without a word. So the first creation
//! of a queue also writes `<queue file>.created` beside it (fsynced, with its directory).
//! From then on:
//!
//! | queue file | marker | result |
//! | --- | --- | --- |
//! | missing | absent | a data directory that never held a queue: create both |
//! | missing or empty | present | error naming the file and what to do |
//! | empty | absent | error as well: a queue from before the marker may have been lost |
//! | has data | either | opened (and checked) by redb; the marker is written if absent |
//!
//! The marker is written *after* the first commit of the new database, so a crash in
//! between leaves a fresh file without a marker, which the next start checks as any file
//! with data (or refuses when empty: one manual step on a machine that never held mail,
//! rather than a silent loss on one that did).

use super::QueueError;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the queue file looks like before redb opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// Neither file nor marker: create a new queue.
    New,
    /// A file with data: let redb open and check it.
    Existing,
}

/// The marker's path for the queue file `path`.
pub(super) fn path_of(queue: &Path) -> PathBuf {
    let mut name = queue.file_name().unwrap_or_default().to_os_string();
    name.push(".created");
    queue.with_file_name(name)
}

/// Decides whether `queue` may be opened or created; refuses a missing or empty file where
/// a queue existed.
pub(super) fn check(queue: &Path) -> Result<Found, QueueError> {
    let marker = path_of(queue);
    let refuse = |reason: String| QueueError::Open {
        path: queue.display().to_string(),
        reason,
    };
    let len = match std::fs::metadata(queue) {
        Ok(meta) => Some(meta.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(refuse(e.to_string())),
    };
    let marked = match std::fs::symlink_metadata(&marker) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(refuse(format!("{}: {e}", marker.display()))),
    };
    match (len, marked) {
        (Some(0), _) => Err(refuse(format!(
            "the file is empty (0 bytes), but an empty queue file is never written: the \
             queue it held is lost or was not restored. Restore it from a backup; to start \
             with an empty queue on purpose, delete {} and {}",
            queue.display(),
            marker.display()
        ))),
        (Some(_), _) => Ok(Found::Existing),
        (None, true) => Err(refuse(format!(
            "the file is missing, but {} says this data directory held a queue. Restore \
             the file from a backup; to start with an empty queue on purpose, delete {}",
            marker.display(),
            marker.display()
        ))),
        (None, false) => Ok(Found::New),
    }
}

/// Records durably that `queue` exists (idempotent).
pub(super) fn write(queue: &Path) -> Result<(), String> {
    let marker = path_of(queue);
    if marker.exists() {
        return Ok(());
    }
    let fail = |e: std::io::Error| format!("writing {}: {e}", marker.display());
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&marker)
        .map_err(fail)?;
    file.write_all(
        b"edgemx: a queue was created in this directory; a missing or empty queue file \
          next to this marker is an error, never a new queue.\n",
    )
    .map_err(fail)?;
    file.sync_all().map_err(fail)?;
    let dir = match marker.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("syncing {}: {e}", dir.display()))
}
