//! `gw-data` fills its disk: on every boot, when the disk is larger than the
//! partition table says (first boot of a image written to a bigger disk, or a
//! VM disk that was grown), move the GPT backup to the end of the disk, grow
//! the `gw-data` entry to the space left (`gpt`), tell the kernel (BLKPG
//! resize) and grow ext4 online (`EXT4_IOC_RESIZE_FS`), logging each step.
//!
//! Every step checks the state first and does only what is missing, so a
//! power cut at any point is finished by the next boot: the table writes are
//! ordered so a readable table always describes a partition holding the whole
//! file system (see `gpt`), the kernel's view is re-read at boot, and ext4's
//! online resize is journaled by the kernel.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use log::{info, warn};
use nix::libc::{c_int, c_void};

use super::gpt::Gpt;

const PARTNAME: &str = "gw-data";
/// ext4 is grown only when at least this much would be gained (resize rounds
/// to whole blocks; a few sectors of slack are not worth a resize).
const MIN_GAIN: u64 = 1 << 20;

nix::ioctl_write_ptr!(ext4_resize_fs, b'f', 16, u64);
nix::ioctl_write_ptr_bad!(blkpg, nix::request_code_none!(0x12, 105), BlkpgArg);

const BLKPG_RESIZE_PARTITION: c_int = 3;

#[repr(C)]
struct BlkpgArg {
    op: c_int,
    flags: c_int,
    datalen: c_int,
    data: *mut c_void,
}

#[repr(C)]
struct BlkpgPartition {
    start: i64,
    length: i64,
    pno: c_int,
    devname: [u8; 64],
    volname: [u8; 64],
}

/// The sysfs facts about gw-data and its disk.
struct Layout {
    disk: PathBuf,
    part: PathBuf,
    number: c_int,
    /// Logical sector size of the disk.
    sector: u64,
    disk_sectors: u64,
    /// The kernel's idea of the partition, in bytes.
    kernel_start: u64,
    kernel_len: u64,
}

/// Grows gw-data (mounted at `mount`) to fill its disk. Errors are logged;
/// the boot goes on with the partition as it is.
pub fn run(mount: &Path) {
    if let Err(e) = grow(mount) {
        warn!("gw-data: cannot grow: {e}; retried at the next boot");
    }
}

fn grow(mount: &Path) -> Result<(), String> {
    let part = crate::firmware::slot::find_partition(PARTNAME)
        .ok_or_else(|| format!("no partition named {PARTNAME}"))?;
    let layout = layout(&part)?;
    let mib = |bytes: u64| bytes >> 20;

    let mut disk = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&layout.disk)
        .map_err(|e| format!("{}: {e}", layout.disk.display()))?;
    let mut gpt = Gpt::read(&mut disk, layout.sector, layout.disk_sectors)
        .map_err(|e| format!("{}: {e}", layout.disk.display()))?;
    let before = entry(&gpt)?;
    if !gpt.primary_ok
        || !gpt
            .fills(PARTNAME, layout.disk_sectors)
            .map_err(|e| e.to_string())?
    {
        info!(
            "gw-data: disk is {} MiB, its partition table ends at {} MiB: moving the GPT backup to the end{}",
            mib(layout.disk_sectors * layout.sector),
            mib((gpt.backup_lba() + 1) * layout.sector),
            if gpt.primary_ok {
                ""
            } else {
                " (primary table damaged: rewritten from the backup)"
            }
        );
        let grown = gpt
            .write_moved(&mut disk, layout.disk_sectors, PARTNAME, |d| d.sync_all())
            .map_err(|e| format!("rewriting the partition table: {e}"))?;
        info!(
            "gw-data: partition grown from {} MiB to {} MiB (GPT written)",
            mib((before.last_lba + 1 - before.first_lba) * layout.sector),
            mib((grown.last_lba + 1 - grown.first_lba) * layout.sector)
        );
    }
    let wanted = entry(&gpt)?;
    let (start, len) = (
        wanted.first_lba * layout.sector,
        (wanted.last_lba + 1 - wanted.first_lba) * layout.sector,
    );
    if layout.kernel_start != start {
        return Err(format!(
            "the kernel has {PARTNAME} at byte {}, the table at {start}; not touching it",
            layout.kernel_start
        ));
    }
    if layout.kernel_len != len {
        tell_kernel(&disk, layout.number, start, len)?;
        info!(
            "gw-data: kernel told the partition is {} MiB (BLKPG, was {} MiB)",
            mib(len),
            mib(layout.kernel_len)
        );
    }
    let (blocks, block_size) = ext4_size(&layout.part)?;
    let target = len / block_size;
    if (target.saturating_sub(blocks)) * block_size >= MIN_GAIN {
        info!(
            "gw-data: growing ext4 online from {} MiB to {} MiB",
            mib(blocks * block_size),
            mib(target * block_size)
        );
        let dir = File::open(mount).map_err(|e| format!("{}: {e}", mount.display()))?;
        // SAFETY: `target` is a live u64 the kernel only reads; `dir` is an
        // open descriptor of the mounted ext4 file system.
        unsafe { ext4_resize_fs(dir.as_raw_fd(), &target) }
            .map_err(|e| format!("EXT4_IOC_RESIZE_FS: {e}"))?;
        let (now, _) = ext4_size(&layout.part)?;
        info!("gw-data: ext4 grown to {} MiB", mib(now * block_size));
    }
    Ok(())
}

fn entry(gpt: &Gpt) -> Result<super::gpt::Entry, String> {
    gpt.entries()
        .into_iter()
        .find(|e| e.name == PARTNAME)
        .ok_or_else(|| format!("no {PARTNAME} entry in the partition table"))
}

fn sysfs_u64(path: &Path) -> Result<u64, String> {
    fs::read_to_string(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads sysfs: the partition's disk, number, and both sizes. sysfs sizes
/// and starts are in 512-byte units whatever the disk's sector size.
fn layout(part_dev: &str) -> Result<Layout, String> {
    let name = part_dev.trim_start_matches("/dev/");
    let sys = Path::new("/sys/class/block").join(name);
    let real = fs::canonicalize(&sys).map_err(|e| format!("{}: {e}", sys.display()))?;
    let disk_sys = real.parent().ok_or("a partition without a disk")?;
    let disk_name = disk_sys
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("a disk without a name")?;
    let sector = sysfs_u64(&disk_sys.join("queue/logical_block_size"))?;
    Ok(Layout {
        disk: PathBuf::from("/dev").join(disk_name),
        part: PathBuf::from(part_dev),
        number: sysfs_u64(&real.join("partition"))? as c_int,
        sector,
        disk_sectors: sysfs_u64(&disk_sys.join("size"))? * 512 / sector,
        kernel_start: sysfs_u64(&real.join("start"))? * 512,
        kernel_len: sysfs_u64(&real.join("size"))? * 512,
    })
}

fn tell_kernel(disk: &File, number: c_int, start: u64, len: u64) -> Result<(), String> {
    let mut part = BlkpgPartition {
        start: start as i64,
        length: len as i64,
        pno: number,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as c_int,
        data: (&mut part as *mut BlkpgPartition).cast(),
    };
    // SAFETY: `arg` and the `part` it points to live across the call and have
    // the kernel's `struct blkpg_ioctl_arg` / `struct blkpg_partition` layout.
    unsafe { blkpg(disk.as_raw_fd(), &arg) }
        .map(|_| ())
        .map_err(|e| format!("BLKPG_RESIZE_PARTITION: {e}"))
}

/// Block count and block size from the ext4 superblock (byte 1024 of the partition).
fn ext4_size(part: &Path) -> Result<(u64, u64), String> {
    let mut f = File::open(part).map_err(|e| format!("{}: {e}", part.display()))?;
    let mut sb = [0u8; 1024];
    f.seek(SeekFrom::Start(1024))
        .and_then(|_| f.read_exact(&mut sb))
        .map_err(|e| format!("{}: {e}", part.display()))?;
    superblock_size(&sb).ok_or_else(|| format!("{}: not an ext4 file system", part.display()))
}

/// (blocks, block size) from an ext2/3/4 superblock.
fn superblock_size(sb: &[u8; 1024]) -> Option<(u64, u64)> {
    let u32_at = |at: usize| u32::from_le_bytes([sb[at], sb[at + 1], sb[at + 2], sb[at + 3]]);
    if u16::from_le_bytes([sb[56], sb[57]]) != 0xef53 {
        return None;
    }
    let block_size = 1024u64 << u32_at(24).min(6);
    let incompat_64bit = u32_at(96) & 0x80 != 0;
    let hi = if incompat_64bit {
        u64::from(u32_at(0x150))
    } else {
        0
    };
    Some((hi << 32 | u64::from(u32_at(4)), block_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_size_of_a_real_ext4_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.ext4");
        let made = std::process::Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-b", "4096"])
            .arg(&img)
            .arg("20M")
            .status()
            .expect("mke2fs (e2fsprogs, scripts/setup) runs");
        assert!(made.success());
        assert_eq!(ext4_size(&img).unwrap(), (5120, 4096));
        let zeros = dir.path().join("zeros");
        File::create(&zeros).unwrap().set_len(1 << 20).unwrap();
        assert!(ext4_size(&zeros).is_err());
    }

    #[test]
    fn blkpg_structures_have_the_kernel_layout() {
        assert_eq!(
            std::mem::size_of::<BlkpgPartition>(),
            8 + 8 + 4 + 64 + 64 + 4
        );
        assert_eq!(std::mem::size_of::<BlkpgArg>(), 24);
    }
}
