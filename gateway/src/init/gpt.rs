//! Just enough GPT to let `gw-data` fill its disk: read the partition table
//! (primary, or the backup at the disk's last sector when the primary is
//! damaged), move the backup to the end of a disk that grew, and grow one
//! partition entry to the space that is left. No I/O beyond the `Read + Write
//! + Seek` handed in, so the tests run on a file image.
//!
//! # Power-cut safety of [`Gpt::write_moved`]
//!
//! 1. The backup (entries, then header) goes to the new end of the disk,
//!    sectors nothing else uses; then a flush. The old primary still points
//!    at the old backup, which is untouched: a cut here changes nothing.
//! 2. The primary entries, then the primary header (one sector), then a
//!    flush. A cut between the two leaves a primary whose entries CRC fails;
//!    the kernel and [`Gpt::read`] then use the new backup at the last sector,
//!    which is complete, and the next boot rewrites the primary from it.
//!
//! The partition only grows and its start never moves, so every state in
//! between describes a partition that holds the file system whole.

use std::io::{self, Read, Seek, SeekFrom, Write};

const SIGNATURE: &[u8; 8] = b"EFI PART";
const HEADER_SIZE: usize = 92;

#[derive(Debug, thiserror::Error)]
pub enum GptError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("no valid GPT (primary and backup headers both damaged)")]
    NoTable,
    #[error("no partition named {0}")]
    NoPartition(String),
    #[error("partition {0} is not the last one on the disk; it cannot grow")]
    NotLast(String),
}

/// One partition entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub index: usize,
    pub first_lba: u64,
    pub last_lba: u64,
    pub name: String,
}

/// A header sector and its entries array.
type TableCopy = (Vec<u8>, Vec<u8>);

/// A partition table as read from a disk.
#[derive(Debug, Clone)]
pub struct Gpt {
    sector: u64,
    /// The primary header (rebuilt from the backup when that was the valid one).
    header: Vec<u8>,
    entries: Vec<u8>,
    /// Whether the primary was valid when read.
    pub primary_ok: bool,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn read_at(dev: &mut (impl Read + Seek), offset: u64, len: usize) -> io::Result<Vec<u8>> {
    dev.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; len];
    dev.read_exact(&mut buf)?;
    Ok(buf)
}

fn write_at(dev: &mut (impl Write + Seek), offset: u64, bytes: &[u8]) -> io::Result<()> {
    dev.seek(SeekFrom::Start(offset))?;
    dev.write_all(bytes)
}

/// Header fields we use.
struct Fields {
    my_lba: u64,
    alternate_lba: u64,
    entries_lba: u64,
    count: u32,
    entry_size: u32,
}

fn fields(h: &[u8]) -> Fields {
    Fields {
        my_lba: u64_at(h, 24),
        alternate_lba: u64_at(h, 32),
        entries_lba: u64_at(h, 72),
        count: u32_at(h, 80),
        entry_size: u32_at(h, 84),
    }
}

/// Sets the header CRC over its first `header size` bytes with the CRC field zeroed.
fn seal(h: &mut [u8]) {
    let size = (u32_at(h, 12) as usize).clamp(HEADER_SIZE, h.len());
    put_u32(h, 16, 0);
    let sum = crc(&h[..size]);
    put_u32(h, 16, sum);
}

impl Gpt {
    /// Reads the table of a disk of `disk_sectors` sectors of `sector` bytes.
    pub fn read(
        dev: &mut (impl Read + Seek),
        sector: u64,
        disk_sectors: u64,
    ) -> Result<Gpt, GptError> {
        if let Some((header, entries)) = Self::read_copy(dev, sector, 1)? {
            return Ok(Gpt {
                sector,
                header,
                entries,
                primary_ok: true,
            });
        }
        let last = disk_sectors.saturating_sub(1);
        if let Some((mut header, entries)) = Self::read_copy(dev, sector, last)? {
            // Turn the backup header into the primary it mirrors.
            // The primary's entries sit right after it (LBA 2) in every table we make.
            let f = fields(&header);
            put_u64(&mut header, 24, 1);
            put_u64(&mut header, 32, f.my_lba);
            put_u64(&mut header, 72, 2);
            seal(&mut header);
            return Ok(Gpt {
                sector,
                header,
                entries,
                primary_ok: false,
            });
        }
        Err(GptError::NoTable)
    }

    /// A header and its entries at `lba`, when both check out.
    fn read_copy(
        dev: &mut (impl Read + Seek),
        sector: u64,
        lba: u64,
    ) -> Result<Option<TableCopy>, GptError> {
        let Ok(mut header) = read_at(dev, lba * sector, sector as usize) else {
            return Ok(None);
        };
        if &header[..8] != SIGNATURE {
            return Ok(None);
        }
        let size = u32_at(&header, 12) as usize;
        if !(HEADER_SIZE..=sector as usize).contains(&size) {
            return Ok(None);
        }
        let stored = u32_at(&header, 16);
        let mut check = header.clone();
        seal(&mut check);
        if u32_at(&check, 16) != stored || fields(&header).my_lba != lba {
            return Ok(None);
        }
        let f = fields(&header);
        let len = f.count as usize * f.entry_size as usize;
        if f.entry_size < 128 || len == 0 || len > 1 << 20 {
            return Ok(None);
        }
        let Ok(entries) = read_at(dev, f.entries_lba * sector, len) else {
            return Ok(None);
        };
        if crc(&entries) != u32_at(&header, 88) {
            return Ok(None);
        }
        header.truncate(sector as usize);
        Ok(Some((header, entries)))
    }

    /// The used partition entries.
    pub fn entries(&self) -> Vec<Entry> {
        let f = fields(&self.header);
        (0..f.count as usize)
            .filter_map(|i| {
                let e = &self.entries[i * f.entry_size as usize..][..128];
                if e[..16].iter().all(|b| *b == 0) {
                    return None;
                }
                let units: Vec<u16> = e[56..128]
                    .chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .take_while(|u| *u != 0)
                    .collect();
                Some(Entry {
                    index: i,
                    first_lba: u64_at(e, 32),
                    last_lba: u64_at(e, 40),
                    name: String::from_utf16_lossy(&units),
                })
            })
            .collect()
    }

    /// Where the backup header is now (the primary's alternate LBA).
    pub fn backup_lba(&self) -> u64 {
        fields(&self.header).alternate_lba
    }

    #[cfg(test)]
    pub fn last_usable(&self) -> u64 {
        u64_at(&self.header, 48)
    }

    /// The last usable LBA once the backup sits at the end of a disk of
    /// `disk_sectors` sectors.
    pub fn last_usable_for(&self, disk_sectors: u64) -> u64 {
        let entries_sectors = (self.entries.len() as u64).div_ceil(self.sector);
        disk_sectors - 1 - entries_sectors - 1
    }

    /// The last sector a grown partition takes on a disk of `disk_sectors`
    /// sectors: the last usable one, rounded down so the partition ends on a
    /// 1 MiB boundary (as partitioning tools align; the file system's 4 KiB
    /// blocks then fill it exactly).
    pub fn grown_last_for(&self, disk_sectors: u64) -> u64 {
        let align = ((1 << 20) / self.sector).max(1);
        let end = (self.last_usable_for(disk_sectors) + 1) / align * align;
        end.saturating_sub(1)
    }

    /// Whether the table already ends at the disk's end and `name` fills it
    /// (within 1 MiB).
    pub fn fills(&self, name: &str, disk_sectors: u64) -> Result<bool, GptError> {
        let entry = self.last_partition(name)?;
        // Less than 1 MiB to gain (image tools leave alignment slack) is not worth a rewrite.
        let gain = self
            .grown_last_for(disk_sectors)
            .saturating_sub(entry.last_lba)
            * self.sector;
        Ok(self.backup_lba() == disk_sectors - 1 && gain < 1 << 20)
    }

    fn last_partition(&self, name: &str) -> Result<Entry, GptError> {
        let entries = self.entries();
        let entry = entries
            .iter()
            .find(|e| e.name == name)
            .cloned()
            .ok_or_else(|| GptError::NoPartition(name.into()))?;
        if entries.iter().any(|e| e.first_lba > entry.first_lba) {
            return Err(GptError::NotLast(name.into()));
        }
        Ok(entry)
    }

    /// Moves the backup to the end of a disk of `disk_sectors` sectors and
    /// grows partition `name` to the last usable sector, in the order the
    /// module doc explains; `flush` runs between the two halves and at the
    /// end. Returns the grown entry.
    pub fn write_moved<D: Read + Write + Seek>(
        &mut self,
        dev: &mut D,
        disk_sectors: u64,
        name: &str,
        mut flush: impl FnMut(&mut D) -> io::Result<()>,
    ) -> Result<Entry, GptError> {
        let mut entry = self.last_partition(name)?;
        let sector = self.sector;
        let last = disk_sectors - 1;
        let entries_sectors = (self.entries.len() as u64).div_ceil(sector);
        let backup_entries = last - entries_sectors;
        let last_usable = self.last_usable_for(disk_sectors);
        entry.last_lba = entry.last_lba.max(self.grown_last_for(disk_sectors));

        let size = fields(&self.header).entry_size as usize;
        put_u64(&mut self.entries[entry.index * size..], 40, entry.last_lba);
        let entries_crc = crc(&self.entries);

        let mut primary = self.header.clone();
        put_u64(&mut primary, 32, last);
        put_u64(&mut primary, 48, last_usable);
        put_u32(&mut primary, 88, entries_crc);
        seal(&mut primary);
        let mut backup = primary.clone();
        put_u64(&mut backup, 24, last);
        put_u64(&mut backup, 32, 1);
        put_u64(&mut backup, 72, backup_entries);
        seal(&mut backup);

        write_at(dev, backup_entries * sector, &self.entries)?;
        write_at(dev, last * sector, &backup)?;
        flush(dev)?;
        let primary_entries = fields(&primary).entries_lba;
        write_at(dev, primary_entries * sector, &self.entries)?;
        write_at(dev, sector, &primary)?;
        flush(dev)?;
        self.header = primary;
        self.primary_ok = true;
        Ok(entry)
    }
}

#[cfg(test)]
#[path = "gpt_tests.rs"]
mod tests;
