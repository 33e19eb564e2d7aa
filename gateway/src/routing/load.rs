//! The map loader: the only routing code doing I/O. Reads the recipient map, the alias map
//! and every route's recipient list into one [`Snapshot`], and swaps in a new snapshot when
//! one of the files changes (polled by mtime, size and inode, or on SIGHUP). A reload that
//! fails keeps the previous snapshot whole and logs the file and line.

use super::map::{AddressList, Aliases, LineError, RecipientMap};
use super::table::{RouteId, Table};
use crate::config::{Config, ConfigError};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// Everything read from the address files, as of one load.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub map: RecipientMap,
    pub aliases: Aliases,
    /// Indexed by route id; `None` for routes without a list.
    pub lists: Vec<Option<AddressList>>,
}

impl Snapshot {
    pub fn list(&self, route: RouteId) -> Option<&AddressList> {
        self.lists.get(usize::from(route)).and_then(Option::as_ref)
    }
}

#[derive(Debug)]
pub struct LoadError {
    /// The configuration key naming the file, e.g. `routing.map`.
    pub key: String,
    pub file: PathBuf,
    pub error: Result<LineError, String>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.error {
            Ok(line) => write!(f, "{} ({}) {line}", self.key, self.file.display()),
            Err(io) => write!(f, "{} ({}): {io}", self.key, self.file.display()),
        }
    }
}

/// What identifies one version of a file without reading it.
type Stamp = Option<(SystemTime, u64, u64)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Aliases,
    List(RouteId),
}

/// A file to read: its configuration key, its path and what it holds.
type File = (String, PathBuf, Kind);

/// The current snapshot and what is needed to reload it.
pub struct Maps {
    table: Arc<Table>,
    files: Vec<File>,
    current: RwLock<Arc<Snapshot>>,
    stamps: Mutex<Vec<Stamp>>,
}

impl Maps {
    pub fn load(table: Arc<Table>, config: &Config) -> Result<Maps, LoadError> {
        let mut files = Vec::new();
        if let Some(path) = &config.routing.map {
            files.push(("routing.map".to_string(), path.clone(), Kind::Map));
        }
        if let Some(path) = &config.routing.aliases {
            files.push(("routing.aliases".to_string(), path.clone(), Kind::Aliases));
        }
        for (i, r) in config.routes.iter().enumerate() {
            if let (Some(path), Some(id)) = (&r.recipients, table.id(&r.name)) {
                files.push((
                    format!("route[{i}].recipients"),
                    path.clone(),
                    Kind::List(id),
                ));
            }
        }
        let stamps = files.iter().map(|(_, p, _)| stamp(p)).collect();
        let snapshot = read(&table, &files)?;
        Ok(Maps {
            table,
            files,
            current: RwLock::new(Arc::new(snapshot)),
            stamps: Mutex::new(stamps),
        })
    }

    /// The snapshot to use for one decision; cheap (one `Arc` clone).
    pub fn current(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reloads when a file changed (or `force`); `Ok(false)` when nothing changed.
    pub fn reload(&self, force: bool) -> Result<bool, LoadError> {
        let now: Vec<Stamp> = self.files.iter().map(|(_, p, _)| stamp(p)).collect();
        {
            let mut seen = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
            if !force && *seen == now {
                return Ok(false);
            }
            // Recorded even when the new version is bad: it is not retried until it changes
            // again, so a broken file is logged once, not on every poll.
            *seen = now;
        }
        let snapshot = read(&self.table, &self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
        Ok(true)
    }

    /// Polls the files every `interval` and reloads on SIGHUP, until `shutdown`.
    pub async fn watch(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        use tokio::signal::unix::{SignalKind, signal};
        if self.files.is_empty() {
            return;
        }
        let mut hup = signal(SignalKind::hangup()).ok();
        loop {
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            let force = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => false,
                _ = hangup => true,
            };
            let maps = self.clone();
            let result = tokio::task::spawn_blocking(move || maps.reload(force)).await;
            match result {
                Ok(Ok(true)) => {
                    let s = self.current();
                    log::info!(
                        "routing: address files reloaded ({} map entries)",
                        s.map.len()
                    );
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    log::error!("routing: reload refused, keeping the previous maps: {e}")
                }
                Err(e) => log::error!("routing: reload task failed: {e}"),
            }
        }
    }
}

/// The address files as configuration errors, for `check-config` and `serve` before any
/// port is bound.
pub fn check_files(config: &Config) -> Vec<ConfigError> {
    let table = Arc::new(Table::new(config));
    match Maps::load(table, config) {
        Ok(_) => Vec::new(),
        Err(e) => vec![ConfigError {
            key: e.key.clone(),
            value: e.file.display().to_string(),
            problem: match e.error {
                Ok(line) => line.to_string(),
                Err(io) => io,
            },
        }],
    }
}

fn read(table: &Table, files: &[File]) -> Result<Snapshot, LoadError> {
    let mut snapshot = Snapshot {
        lists: table.routes().iter().map(|_| None).collect(),
        ..Snapshot::default()
    };
    for (key, path, kind) in files {
        let fail = |error| LoadError {
            key: key.clone(),
            file: path.clone(),
            error,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| fail(Err(format!("cannot read: {e}"))))?;
        match kind {
            Kind::Map => {
                snapshot.map =
                    RecipientMap::parse(&text, |name| table.id(name)).map_err(|e| fail(Ok(e)))?
            }
            Kind::Aliases => snapshot.aliases = Aliases::parse(&text).map_err(|e| fail(Ok(e)))?,
            Kind::List(id) => {
                let list = AddressList::parse(&text).map_err(|e| fail(Ok(e)))?;
                if let Some(slot) = snapshot.lists.get_mut(usize::from(*id)) {
                    *slot = Some(list);
                }
            }
        }
    }
    Ok(snapshot)
}

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

#[cfg(test)]
mod tests;
