//! The MTA-STS policy cache: in memory, written through to `data_dir/mta-sts.redb` so that a
//! policy survives a restart (RFC 8461 §5.1: a cached policy keeps applying while its
//! `max_age` runs, even when DNS or the policy host fail — that is what defeats an attacker
//! who strips the record).
//!
//! Format: one table `mta_sts_policies`, recipient domain (lower case) → JSON of [`Cached`].
//! A file of its own rather than a table in `queue.redb`: the queue's file belongs to its
//! writer thread (one redb handle per file), and a cache that cannot be written must never
//! stall the queue. Losing the file loses nothing but the cache. redb runs on blocking
//! threads only, never on the async workers.

use super::policy::Policy;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

const POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("mta_sts_policies");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cached {
    pub policy: Policy,
    /// Unix seconds of the fetch.
    pub fetched: u64,
}

impl Cached {
    pub fn expires(&self) -> u64 {
        self.fetched.saturating_add(self.policy.max_age)
    }

    pub fn fresh(&self, now: u64) -> bool {
        now < self.expires()
    }
}

pub struct Cache {
    memory: Mutex<HashMap<String, Arc<Cached>>>,
    db: Option<Arc<Database>>,
}

impl Cache {
    /// Opens (or creates) the file in `dir` and loads every policy; without `dir`, or when
    /// the file cannot be opened, the cache lives in memory only (logged).
    pub fn open(dir: Option<&Path>) -> Cache {
        let db = dir.and_then(|dir| {
            let path = dir.join("mta-sts.redb");
            match Database::create(&path) {
                Ok(db) => Some(Arc::new(db)),
                Err(e) => {
                    log::error!(
                        "MTA-STS: cache {} unusable ({e}); memory only",
                        path.display()
                    );
                    None
                }
            }
        });
        let memory = db.as_deref().map(load).unwrap_or_default();
        Cache {
            memory: Mutex::new(memory),
            db,
        }
    }

    /// The cached policy of `domain`, fresh or not.
    pub fn get(&self, domain: &str) -> Option<Arc<Cached>> {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.get(domain).cloned()
    }

    /// Stores `entry` for `domain`, in memory at once and on disk before returning.
    pub async fn put(&self, domain: &str, entry: Cached) {
        let entry = Arc::new(entry);
        self.memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(domain.to_owned(), entry.clone());
        let Some(db) = self.db.clone() else {
            return;
        };
        let domain = domain.to_owned();
        let stored = tokio::task::spawn_blocking(move || write(&db, &domain, &entry)).await;
        match stored {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::warn!("MTA-STS: cannot store a policy: {e}"),
            Err(e) => log::warn!("MTA-STS: cache writer failed: {e}"),
        }
    }
}

fn load(db: &Database) -> HashMap<String, Arc<Cached>> {
    let read = || -> Result<HashMap<String, Arc<Cached>>, redb::Error> {
        let mut out = HashMap::new();
        let tx = db.begin_read()?;
        let table = match tx.open_table(POLICIES) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for entry in table.iter()? {
            let (domain, value) = entry?;
            // An entry that no longer decodes is dropped: it is only a cache.
            if let Ok(cached) = serde_json::from_slice::<Cached>(value.value()) {
                out.insert(domain.value().to_owned(), Arc::new(cached));
            }
        }
        Ok(out)
    };
    read().unwrap_or_else(|e| {
        log::warn!("MTA-STS: cannot read the policy cache: {e}");
        HashMap::new()
    })
}

fn write(db: &Database, domain: &str, entry: &Cached) -> Result<(), redb::Error> {
    // A policy always serializes: strings, numbers and an enum.
    let json = serde_json::to_vec(entry).unwrap_or_default();
    let tx = db.begin_write()?;
    {
        let mut table = tx.open_table(POLICIES)?;
        table.insert(domain, json.as_slice())?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(max_age: u64, fetched: u64) -> Cached {
        let text =
            format!("version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: {max_age}\n");
        Cached {
            policy: Policy::parse("id1", &text).unwrap(),
            fetched,
        }
    }

    #[test]
    fn a_policy_is_fresh_until_max_age_has_run() {
        let e = entry(600, 1_000);
        assert!(e.fresh(1_000));
        assert!(e.fresh(1_599));
        assert!(!e.fresh(1_600));
    }

    #[tokio::test]
    async fn policies_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(Some(dir.path()));
        cache.put("example.net", entry(86_400, 5)).await;
        drop(cache);
        let again = Cache::open(Some(dir.path()));
        assert_eq!(again.get("example.net").as_deref(), Some(&entry(86_400, 5)));
        assert_eq!(again.get("example.org"), None);
    }
}
