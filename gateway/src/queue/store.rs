//! The redb store: the only code in edgemx that imports redb.
//!
//! # Storage format (version 1)
//!
//! One redb file (`data_dir/queue.redb`) holds four tables:
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `body_chunks` | (queue id `u64`, chunk number `u32`) | message bytes, [`CHUNK`] per entry (one entry up to [`WHOLE`]) |
//! | `body_crc32` | queue id (`u64`) | CRC-32 (IEEE) of the whole body, as `u32` |
//! | `envelopes` | queue id (`u64`) | format byte `1`, then the [`Envelope`] as JSON |
//! | `meta` | name (`&str`) | `u64`: `format` = 1, `next_id` = lowest id never handed out |
//! | `records` | key (`&str`) | small state of other parts, e.g. report aggregates (`report`) |
//!
//! `records` is created by its first write; a queue without it reads as having no records,
//! and an older binary ignores it (the format number stays 1). Its values are opaque here:
//! their owner encodes and versions them. They commit in the same transactions as messages,
//! so a report and the removal of the aggregate it was built from are one commit.
//!
//! # Body checksums
//!
//! redb checksums its pages only with quick repair on a crash path; a byte flipped in a
//! stored body (bad sector, bad RAM on the way to the disk, a tool editing the file) was
//! delivered as it was. Every insert therefore stores the CRC-32 of the body beside it, and
//! [`Store::body`] recomputes it while joining the chunks: a mismatch is
//! [`QueueError::Corrupt`], never a body. The queue then holds the message with that reason
//! (`queue show` says so); nothing delivers or deletes it. One checksum per message, not per
//! chunk: bodies are always read whole, and a 4-byte value per message keeps the table tiny.
//!
//! Records written before the table existed have no entry: they are read unverified (and
//! the table is created by the first write of this version), so an older queue opens as
//! before. The format number stays 1: an older binary ignores the extra table; a message it
//! deletes leaves its checksum behind, which names nothing (ids are never reused).
//!
//! Bodies are cut into chunks that each fit one 4 KiB page. redb gives a value larger than a
//! page a power-of-two run of pages: a 4 KiB body took 8 KiB, a 130 KiB one 256 KiB, and a
//! large message needed that much *contiguous* free space. Chunked, every message wastes less
//! than one page and all allocations are single pages, which a nearly full file can reuse.
//! The exception: a body of up to [`WHOLE`] bytes is one entry, a two-page run: the space its
//! two chunks would take, but one B-tree entry and one contiguous write instead of two (the
//! typical 4 KiB message plus our Received header; measured 3–7 % more relay throughput,
//! BENCHMARKS.md). Readers join whatever chunks a body has, so both layouts read alike, in
//! this version and in older ones. A message always has at least chunk 0 (empty for an empty
//! body).
//!
//! Invariants:
//! - A message is in both `body_chunks` and `envelopes` or in neither: every change that
//!   inserts or deletes one writes both tables in the same transaction.
//! - Ids only grow. `next_id` is rewritten by every commit that inserts, so ids of delivered
//!   and deleted messages are never reused, not even after a restart with an empty queue.
//!   Key order is arrival order, give or take a session: an id may be reserved when DATA
//!   starts (for the Received header) and committed after shorter messages with later ids.
//!   A reserved id not stored before a crash may be handed out again; it named nothing.
//! - An insert never overwrites: a taken id makes it fail (`Effect::Exists`).
//! - Every commit uses `Durability::Immediate` (fsync before `commit` returns). Nothing is
//!   acknowledged before that.
//!
//! After a crash, redb finds the file was not closed cleanly and repairs it on the next open;
//! commits that returned are intact, a commit cut short is absent as a whole. Commits record
//! the allocator state (quick repair) when enabled, so that repair does not have to walk a
//! large file; see [`Store::open`]. A commit that fails (ENOSPC, EFBIG, EIO) leaves the file
//! at the previous commit, but redb refuses further writes on that handle: the writer calls
//! [`Store::reopen`]. A file that is not a version-1 queue is refused, never rewritten.

use super::{Envelope, QueueError, QueueId};
use redb::{
    Builder, Database, Durability, ReadableDatabase, ReadableTable, RepairSession, TableDefinition,
};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Instant;

const BODIES: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("body_chunks");
const ENVELOPES: TableDefinition<u64, &[u8]> = TableDefinition::new("envelopes");
const SUMS: TableDefinition<u64, u32> = TableDefinition::new("body_crc32");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");

const FORMAT: u64 = 1;
/// Measured: one entry of a (u64, u32) key and a value this long fits a 4 KiB leaf page
/// (4,076 bytes do; a little headroom is left).
pub(super) const CHUNK: usize = 4_064;
/// Bodies up to this size are one entry (a two-page run, the space two chunks take).
pub(super) const WHOLE: usize = 8_064;
const ENVELOPE_FORMAT: u8 = 1;
/// redb's page cache; the default (1 GiB) is too much for an appliance.
const CACHE_BYTES: usize = 64 << 20;

/// One change inside [`Store::write`]; ids are assigned by the caller.
pub(super) enum Op<'a> {
    Insert(&'a Envelope, &'a [u8]),
    Update(&'a Envelope),
    Delete(QueueId),
    PutRecord(&'a str, &'a [u8]),
    DeleteRecord(&'a str),
}

/// What an [`Op`] found, so the caller can keep its counters exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    Inserted,
    /// An insert found the id taken and wrote nothing (a reserved id used twice). Ids the
    /// writer assigns itself are always fresh, so this happens only to `enqueue`.
    Exists,
    /// `false`: the message was gone (deleted meanwhile) and nothing was written.
    Updated(bool),
    /// The size of the removed body, if the message existed.
    Deleted(Option<u64>),
}

/// What [`Store::open`] found (the envelopes went to its `each`).
pub(super) struct Loaded {
    pub messages: u64,
    pub next_id: u64,
    pub bytes: u64,
}

pub(super) struct Store {
    path: PathBuf,
    quick_repair: bool,
    /// `None` after a failed reopen or after [`Store::shut`]. Readers hold the read lock for
    /// the length of their transaction; only reopen and shut take the write lock.
    db: RwLock<Option<Database>>,
}

impl Store {
    /// Opens or creates the database, creates the tables of a new one and reads every
    /// envelope. `quick_repair` trades a second fsync per commit for a fast open after a
    /// crash.
    pub fn open(
        path: &Path,
        quick_repair: bool,
        each: &mut dyn FnMut(Envelope),
    ) -> Result<(Store, Loaded), QueueError> {
        let open_error = |reason: String| QueueError::Open {
            path: path.display().to_string(),
            reason,
        };
        super::marker::check(path)?;
        let db = open_db(path).map_err(|e| open_error(e.to_string()))?;
        init(&db, quick_repair).map_err(|e| open_error(e.to_string()))?;
        let loaded = load(&db, each).map_err(|e| open_error(e.to_string()))?;
        super::marker::write(path).map_err(open_error)?;
        let store = Store {
            path: path.to_path_buf(),
            quick_repair,
            db: RwLock::new(Some(db)),
        };
        Ok((store, loaded))
    }

    /// Drops the current handle (refusing writes after a failed commit) and opens the file
    /// again, which repairs it if needed. On failure the store stays closed; the next call
    /// tries again.
    pub fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.take() {
            // A handle whose commit failed may fail to close cleanly too; that is expected.
            if let Err(e) = old.close() {
                log::debug!("queue: closing failed database handle: {e}");
            }
        }
        // A file removed or emptied behind our back must not come back as a new queue.
        super::marker::check(&self.path).map_err(|e| io(e.to_string()))?;
        let db = open_db(&self.path)?;
        init(&db, self.quick_repair)?;
        *slot = Some(db);
        Ok(())
    }

    /// True when a database handle is open.
    pub fn is_open(&self) -> bool {
        self.db.read().map(|g| g.is_some()).unwrap_or(false)
    }

    /// Closes the file for good (releases its lock).
    pub fn shut(&self) {
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = slot.take()
            && let Err(e) = db.close()
        {
            log::warn!("queue: closing {}: {e}", self.path.display());
        }
    }

    /// Applies `ops` in one durable commit. On error nothing of it is stored.
    pub fn write(&self, ops: &[Op<'_>], next_id: u64) -> Result<Vec<Effect>, StoreError> {
        let guard = self.handle();
        let Some(db) = guard.as_ref() else {
            return Err(io(unavailable()));
        };
        // redb may panic on a file corrupted behind its back; that must not kill the writer.
        catch_unwind(AssertUnwindSafe(|| {
            write_txn(db, ops, next_id, self.quick_repair)
        }))
        .unwrap_or_else(|_| Err(io("redb panicked during the commit")))
    }

    pub fn envelope(&self, id: QueueId) -> Result<Option<Envelope>, QueueError> {
        self.read(|db| {
            let txn = db.begin_read().map_err(fail)?;
            let table = txn.open_table(ENVELOPES).map_err(fail)?;
            let found = table.get(id.0).map_err(fail)?;
            found.map(|v| decode(id.0, v.value())).transpose()
        })
    }

    /// The whole body, checked against its stored CRC-32 (when the record has one).
    pub fn body(&self, id: QueueId) -> Result<Option<Vec<u8>>, QueueError> {
        self.read(|db| {
            let txn = db.begin_read().map_err(fail)?;
            let table = txn.open_table(BODIES).map_err(fail)?;
            // Sized from the envelope: grown chunk by chunk, a 24 MB body took 32 MiB and
            // copied itself five times on the way (delivery reads bodies whole).
            let size = match txn.open_table(ENVELOPES).map_err(fail)?.get(id.0) {
                Ok(Some(v)) => decode(id.0, v.value()).map_or(0, |e| e.size),
                _ => 0,
            };
            let capacity = usize::try_from(size).unwrap_or(0).min(1 << 30);
            let mut body: Option<Vec<u8>> = None;
            let mut crc = crc32fast::Hasher::new();
            for entry in table.range((id.0, 0)..=(id.0, u32::MAX)).map_err(fail)? {
                let (_, chunk) = entry.map_err(fail)?;
                crc.update(chunk.value());
                body.get_or_insert_with(|| Vec::with_capacity(capacity))
                    .extend_from_slice(chunk.value());
            }
            let Some(body) = body else {
                return Ok(None);
            };
            let expected = match txn.open_table(SUMS) {
                Ok(sums) => sums.get(id.0).map_err(fail)?.map(|v| v.value()),
                // A queue written before checksums: nothing to compare with.
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(fail(e)),
            };
            let found = crc.finalize();
            match expected {
                Some(expected) if expected != found => Err(QueueError::Corrupt {
                    id,
                    detail: format!(
                        "CRC-32 {expected:08X} stored, {found:08X} computed over {} bytes",
                        body.len()
                    ),
                }),
                _ => Ok(Some(body)),
            }
        })
    }

    /// The records whose key starts with `prefix`, in key order.
    pub fn records(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, QueueError> {
        self.read(|db| {
            let txn = db.begin_read().map_err(fail)?;
            let table = match txn.open_table(RECORDS) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(fail(e)),
            };
            let mut out = Vec::new();
            for entry in table.range(prefix..).map_err(fail)? {
                let (key, value) = entry.map_err(fail)?;
                if !key.value().starts_with(prefix) {
                    break;
                }
                out.push((key.value().to_string(), value.value().to_vec()));
            }
            Ok(out)
        })
    }

    pub fn list(&self) -> Result<Vec<Envelope>, QueueError> {
        let mut all = Vec::new();
        self.read(|db| load(db, &mut |env| all.push(env)).map_err(QueueError::from))?;
        Ok(all)
    }

    /// Up to `limit` envelopes with ids above `after`, oldest first.
    pub fn page(&self, after: Option<QueueId>, limit: usize) -> Result<Vec<Envelope>, QueueError> {
        self.read(|db| {
            let txn = db.begin_read().map_err(fail)?;
            let table = txn.open_table(ENVELOPES).map_err(fail)?;
            let from = after.map_or(0, |id| id.0.saturating_add(1));
            let mut out = Vec::new();
            for entry in table.range(from..).map_err(fail)?.take(limit) {
                let (id, value) = entry.map_err(fail)?;
                out.push(decode(id.value(), value.value())?);
            }
            Ok(out)
        })
    }

    /// The envelopes of `ids` read in one transaction; `None` for those not queued.
    pub fn envelopes(
        &self,
        ids: &[QueueId],
    ) -> Result<Vec<(QueueId, Option<Envelope>)>, QueueError> {
        self.read(|db| {
            let txn = db.begin_read().map_err(fail)?;
            let table = txn.open_table(ENVELOPES).map_err(fail)?;
            let mut out = Vec::with_capacity(ids.len());
            for &id in ids {
                let found = table.get(id.0).map_err(fail)?;
                out.push((id, found.map(|v| decode(id.0, v.value())).transpose()?));
            }
            Ok(out)
        })
    }

    /// Removes a message's checksum, as a record written before checksums has none.
    #[cfg(test)]
    pub fn drop_checksum(&self, id: QueueId) -> Result<(), StoreError> {
        let guard = self.handle();
        let db = guard.as_ref().ok_or_else(|| io(unavailable()))?;
        let txn = db.begin_write().map_err(text)?;
        txn.open_table(SUMS)
            .map_err(text)?
            .remove(id.0)
            .map_err(text)?;
        txn.commit().map_err(text)
    }

    /// Moves the live pages to the front of the file and truncates it; returns the file
    /// size before and after. Reads and writes wait meanwhile (it holds the handle alone).
    pub fn compact(&self) -> Result<(u64, u64), QueueError> {
        let size = || std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        let before = size();
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        let db = slot.as_mut().ok_or_else(|| QueueError::Io(unavailable()))?;
        catch_unwind(AssertUnwindSafe(|| -> Result<(), QueueError> {
            while db.compact().map_err(fail)? {}
            Ok(())
        }))
        .unwrap_or_else(|_| Err(QueueError::Io("redb panicked while compacting".into())))?;
        drop(slot);
        Ok((before, size()))
    }

    fn read<T>(&self, f: impl FnOnce(&Database) -> Result<T, QueueError>) -> Result<T, QueueError> {
        let guard = self.handle();
        let db = guard
            .as_ref()
            .ok_or_else(|| QueueError::Io(unavailable()))?;
        catch_unwind(AssertUnwindSafe(|| f(db)))
            .unwrap_or_else(|_| Err(QueueError::Io("redb panicked during a read".into())))
    }

    fn handle(&self) -> RwLockReadGuard<'_, Option<Database>> {
        // A panic while holding the lock leaves the handle itself valid.
        self.db.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn unavailable() -> String {
    "queue database is not open (reopening after a failed commit did not succeed)".into()
}

fn fail(e: impl Into<redb::Error>) -> QueueError {
    text(e).into()
}

/// A storage failure, classified: the disk (or the file) is full, or anything else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No space left, quota exceeded or file too large (ENOSPC, EDQUOT, EFBIG): deletes,
    /// compaction or the operator free room and commits succeed again.
    #[error("{0}")]
    DiskFull(String),
    /// Any other failure: an I/O error, a damaged file, a database not open.
    #[error("{0}")]
    Io(String),
}

impl From<StoreError> for QueueError {
    fn from(e: StoreError) -> QueueError {
        match e {
            StoreError::DiskFull(why) => QueueError::DiskFull(why),
            StoreError::Io(why) => QueueError::Io(why),
        }
    }
}

fn text(e: impl Into<redb::Error>) -> StoreError {
    let e = e.into();
    let full = match &e {
        redb::Error::Io(io) => io
            .raw_os_error()
            .map(nix::errno::Errno::from_raw)
            .is_some_and(|code| {
                use nix::errno::Errno;
                [Errno::ENOSPC, Errno::EDQUOT, Errno::EFBIG].contains(&code)
            }),
        _ => false,
    };
    match full {
        true => StoreError::DiskFull(e.to_string()),
        false => StoreError::Io(e.to_string()),
    }
}

fn io(why: impl Into<String>) -> StoreError {
    StoreError::Io(why.into())
}

fn open_db(path: &Path) -> Result<Database, StoreError> {
    let repaired = Arc::new(AtomicBool::new(false));
    let seen = repaired.clone();
    let shown = path.display().to_string();
    let mut builder = Builder::new();
    builder.set_cache_size(CACHE_BYTES);
    builder.set_repair_callback(move |session: &mut RepairSession| {
        if !seen.swap(true, Ordering::Relaxed) {
            log::warn!("queue: {shown} was not closed cleanly; repairing it");
        }
        log::debug!("queue: repair {:.0}%", session.progress() * 100.0);
    });
    let started = Instant::now();
    let db = catch_unwind(AssertUnwindSafe(|| builder.create(path)))
        .map_err(|_| io("redb panicked reading the file (corrupted?)"))?
        .map_err(text)?;
    if repaired.load(Ordering::Relaxed) {
        log::warn!(
            "queue: repaired {} in {:.1}s",
            path.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(db)
}

/// Creates the tables of a new database, or checks that an existing one is ours.
fn init(db: &Database, quick_repair: bool) -> Result<(), StoreError> {
    let txn = db.begin_read().map_err(text)?;
    let fresh = txn.list_tables().map_err(text)?.next().is_none();
    if !fresh {
        let meta = txn
            .open_table(META)
            .map_err(|e| io(format!("not an edgemx queue database ({})", text(e))))?;
        let format = meta.get("format").map_err(text)?.map(|v| v.value());
        return match format {
            Some(FORMAT) => Ok(()),
            Some(other) => Err(io(format!(
                "storage format {other} is not supported (this version reads {FORMAT})"
            ))),
            None => Err(io("not an edgemx queue database (no format version)")),
        };
    }
    drop(txn);
    let mut txn = db.begin_write().map_err(text)?;
    txn.set_durability(Durability::Immediate).map_err(text)?;
    txn.set_quick_repair(quick_repair);
    {
        txn.open_table(BODIES).map_err(text)?;
        txn.open_table(SUMS).map_err(text)?;
        txn.open_table(ENVELOPES).map_err(text)?;
        let mut meta = txn.open_table(META).map_err(text)?;
        meta.insert("format", FORMAT).map_err(text)?;
        meta.insert("next_id", 1).map_err(text)?;
    }
    txn.commit().map_err(text)
}

/// Reads every envelope (oldest first) into `each`.
fn load(db: &Database, each: &mut dyn FnMut(Envelope)) -> Result<Loaded, StoreError> {
    let txn = db.begin_read().map_err(text)?;
    let meta = txn.open_table(META).map_err(text)?;
    let envelopes = txn.open_table(ENVELOPES).map_err(text)?;
    let mut next_id = meta.get("next_id").map_err(text)?.map_or(1, |v| v.value());
    let (mut messages, mut bytes) = (0u64, 0u64);
    for entry in envelopes.iter().map_err(text)? {
        let (id, value) = entry.map_err(text)?;
        let envelope = decode(id.value(), value.value()).map_err(|e| io(e.to_string()))?;
        bytes = bytes.saturating_add(envelope.size);
        next_id = next_id.max(id.value().saturating_add(1));
        messages += 1;
        each(envelope);
    }
    Ok(Loaded {
        messages,
        next_id,
        bytes,
    })
}

fn write_txn(
    db: &Database,
    ops: &[Op<'_>],
    next_id: u64,
    quick_repair: bool,
) -> Result<Vec<Effect>, StoreError> {
    let mut txn = db.begin_write().map_err(text)?;
    txn.set_durability(Durability::Immediate).map_err(text)?;
    txn.set_quick_repair(quick_repair);
    let mut effects = Vec::with_capacity(ops.len());
    {
        let mut bodies = txn.open_table(BODIES).map_err(text)?;
        let mut sums = txn.open_table(SUMS).map_err(text)?;
        let mut envelopes = txn.open_table(ENVELOPES).map_err(text)?;
        let mut scratch = Vec::with_capacity(512);
        let mut inserted = false;
        for op in ops {
            let effect = match op {
                Op::Insert(envelope, _)
                    if envelopes.get(envelope.id.0).map_err(text)?.is_some() =>
                {
                    Effect::Exists
                }
                Op::Insert(envelope, body) => {
                    encode(envelope, &mut scratch)?;
                    insert_body(&mut bodies, envelope.id.0, body)?;
                    sums.insert(envelope.id.0, crc32fast::hash(body))
                        .map_err(text)?;
                    envelopes
                        .insert(envelope.id.0, &scratch[..])
                        .map_err(text)?;
                    inserted = true;
                    Effect::Inserted
                }
                Op::Update(envelope) => {
                    let exists = envelopes.get(envelope.id.0).map_err(text)?.is_some();
                    if exists {
                        encode(envelope, &mut scratch)?;
                        envelopes
                            .insert(envelope.id.0, &scratch[..])
                            .map_err(text)?;
                    }
                    Effect::Updated(exists)
                }
                Op::Delete(id) => {
                    let existed = envelopes.remove(id.0).map_err(text)?.is_some();
                    sums.remove(id.0).map_err(text)?;
                    let mut size = 0u64;
                    bodies
                        .retain_in((id.0, 0)..=(id.0, u32::MAX), |_, chunk| {
                            size += chunk.len() as u64;
                            false
                        })
                        .map_err(text)?;
                    Effect::Deleted(existed.then_some(size))
                }
                Op::PutRecord(key, value) => {
                    txn.open_table(RECORDS)
                        .map_err(text)?
                        .insert(*key, *value)
                        .map_err(text)?;
                    Effect::Updated(true)
                }
                Op::DeleteRecord(key) => {
                    let existed = txn
                        .open_table(RECORDS)
                        .map_err(text)?
                        .remove(*key)
                        .map_err(text)?
                        .is_some();
                    Effect::Updated(existed)
                }
            };
            effects.push(effect);
        }
        // An empty write (the writer's probe after a failed commit) still changes a page,
        // so that it fails as long as real writes would.
        if inserted || ops.is_empty() {
            let mut meta = txn.open_table(META).map_err(text)?;
            meta.insert("next_id", next_id).map_err(text)?;
        }
    }
    txn.commit().map_err(text)?;
    Ok(effects)
}

fn insert_body(
    bodies: &mut redb::Table<'_, (u64, u32), &[u8]>,
    id: u64,
    body: &[u8],
) -> Result<(), StoreError> {
    if body.is_empty() {
        bodies.insert((id, 0), &[][..]).map_err(text)?;
    }
    let chunk = if body.len() <= WHOLE { WHOLE } else { CHUNK };
    for (n, chunk) in body.chunks(chunk).enumerate() {
        let n =
            u32::try_from(n).map_err(|_| io(format!("message {} is too large", QueueId(id))))?;
        bodies.insert((id, n), chunk).map_err(text)?;
    }
    Ok(())
}

fn encode(envelope: &Envelope, out: &mut Vec<u8>) -> Result<(), StoreError> {
    out.clear();
    out.push(ENVELOPE_FORMAT);
    serde_json::to_writer(&mut *out, envelope)
        .map_err(|e| io(format!("envelope {}: {e}", envelope.id)))
}

fn decode(id: u64, bytes: &[u8]) -> Result<Envelope, QueueError> {
    let bad = |why: String| QueueError::Io(format!("envelope {}: {why}", QueueId(id)));
    match bytes.split_first() {
        Some((&ENVELOPE_FORMAT, json)) => {
            serde_json::from_slice(json).map_err(|e| bad(e.to_string()))
        }
        Some((other, _)) => Err(bad(format!("unknown envelope format {other}"))),
        None => Err(bad("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart_from_other_io_errors() {
        let os = |code: i32| redb::Error::Io(std::io::Error::from_raw_os_error(code));
        for code in [28, 122, 27] {
            // ENOSPC, EDQUOT, EFBIG
            assert!(matches!(text(os(code)), StoreError::DiskFull(_)), "{code}");
        }
        assert!(matches!(text(os(5)), StoreError::Io(_)), "EIO");
        assert!(matches!(text(redb::Error::PreviousIo), StoreError::Io(_)));
        // Each kind answers the sender differently.
        assert!(matches!(
            QueueError::from(text(os(28))),
            QueueError::DiskFull(_)
        ));
        assert!(matches!(QueueError::from(text(os(5))), QueueError::Io(_)));
    }
}
