use super::*;
use std::fs::{File, OpenOptions};
use std::path::Path;

const SECTOR: u64 = 512;
const MIB: u64 = 2048; // sectors

/// A GPT disk image like build-image's: protective MBR, 128 entries, two
/// partitions, the last one `gw-data`.
fn make_disk(path: &Path, sectors: u64) {
    let mut f = File::create(path).unwrap();
    f.set_len(sectors * SECTOR).unwrap();
    let mut mbr = vec![0u8; 512];
    mbr[446 + 4] = 0xee;
    put_u32(&mut mbr, 446 + 8, 1);
    put_u32(
        &mut mbr,
        446 + 12,
        (sectors - 1).min(u32::MAX as u64) as u32,
    );
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    write_at(&mut f, 0, &mbr).unwrap();
    let mut entries = vec![0u8; 128 * 128];
    for (i, (name, first, last)) in [
        ("esp", MIB, 9 * MIB - 1),
        ("gw-data", 9 * MIB, 20 * MIB - 1),
    ]
    .into_iter()
    .enumerate()
    {
        let e = &mut entries[i * 128..][..128];
        e[..16].copy_from_slice(&[0xaf; 16]); // any non-zero type GUID
        e[16..32].copy_from_slice(&[i as u8 + 1; 16]);
        put_u64(e, 32, first);
        put_u64(e, 40, last);
        for (j, u) in name.encode_utf16().enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&u.to_le_bytes());
        }
    }
    let mut h = vec![0u8; 512];
    h[..8].copy_from_slice(SIGNATURE);
    put_u32(&mut h, 8, 0x0001_0000);
    put_u32(&mut h, 12, HEADER_SIZE as u32);
    put_u64(&mut h, 24, 1);
    put_u64(&mut h, 32, sectors - 1);
    put_u64(&mut h, 40, 34);
    put_u64(&mut h, 48, sectors - 34);
    h[56..72].copy_from_slice(&[7; 16]);
    put_u64(&mut h, 72, 2);
    put_u32(&mut h, 80, 128);
    put_u32(&mut h, 84, 128);
    put_u32(&mut h, 88, crc(&entries));
    seal(&mut h);
    let mut b = h.clone();
    put_u64(&mut b, 24, sectors - 1);
    put_u64(&mut b, 32, 1);
    put_u64(&mut b, 72, sectors - 33);
    seal(&mut b);
    write_at(&mut f, 2 * SECTOR, &entries).unwrap();
    write_at(&mut f, SECTOR, &h).unwrap();
    write_at(&mut f, (sectors - 33) * SECTOR, &entries).unwrap();
    write_at(&mut f, (sectors - 1) * SECTOR, &b).unwrap();
}

fn open(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

fn data(gpt: &Gpt) -> Entry {
    gpt.entries()
        .into_iter()
        .find(|e| e.name == "gw-data")
        .unwrap()
}

/// Grows the image file as `qemu-img resize` does.
fn grow_file(path: &Path, sectors: u64) {
    open(path).set_len(sectors * SECTOR).unwrap();
}

#[test]
fn a_grown_disk_gets_its_backup_at_the_end_and_gw_data_fills_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    make_disk(&path, 24 * MIB);
    grow_file(&path, 64 * MIB);
    let mut f = open(&path);
    let mut gpt = Gpt::read(&mut f, SECTOR, 64 * MIB).unwrap();
    assert!(gpt.primary_ok);
    assert_eq!(gpt.backup_lba(), 24 * MIB - 1);
    assert!(!gpt.fills("gw-data", 64 * MIB).unwrap());
    let grown = gpt
        .write_moved(&mut f, 64 * MIB, "gw-data", |d| d.sync_all())
        .unwrap();
    assert_eq!(grown.first_lba, 9 * MIB);
    // The end is aligned down to 1 MiB: 4 KiB blocks fill the partition exactly.
    assert_eq!(grown.last_lba, 63 * MIB - 1);

    let again = Gpt::read(&mut open(&path), SECTOR, 64 * MIB).unwrap();
    assert!(again.primary_ok);
    assert_eq!(again.backup_lba(), 64 * MIB - 1);
    assert_eq!(again.last_usable(), 64 * MIB - 34);
    assert_eq!(data(&again), grown);
    assert!(again.fills("gw-data", 64 * MIB).unwrap());
    // The backup at the new end is valid on its own.
    let backup = Gpt::read_copy(&mut open(&path), SECTOR, 64 * MIB - 1).unwrap();
    assert!(backup.is_some());

    // An independent reader (util-linux, as the kernel and build-image use) agrees.
    let out = std::process::Command::new("partx")
        .args(["--show", "-g", "-o", "NAME,START,END"])
        .arg(&path)
        .output()
        .expect("partx (util-linux) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("gw-data {} {}", 9 * MIB, 63 * MIB - 1)),
        "partx says: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A device that accepts only the first `budget` writes, like a disk when the
/// power goes; what was written before stays.
struct Cut {
    file: File,
    budget: usize,
}

impl Read for Cut {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for Cut {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl Write for Cut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.budget == 0 {
            return Err(io::Error::other("power cut"));
        }
        self.budget -= 1;
        self.file.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_power_cut_at_any_write_leaves_a_readable_table_and_the_retry_finishes() {
    for budget in 0..=4 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        make_disk(&path, 24 * MIB);
        grow_file(&path, 40 * MIB);
        let mut cut = Cut {
            file: open(&path),
            budget,
        };
        let mut gpt = Gpt::read(&mut cut, SECTOR, 40 * MIB).unwrap();
        let result = gpt.write_moved(&mut cut, 40 * MIB, "gw-data", |_| Ok(()));
        assert_eq!(result.is_ok(), budget >= 4, "budget {budget}");

        // Next boot: a table is readable, gw-data starts where it did and
        // holds at least the old partition (the file system is whole).
        let mut f = open(&path);
        let mut after = Gpt::read(&mut f, SECTOR, 40 * MIB).unwrap();
        let entry = data(&after);
        assert_eq!(entry.first_lba, 9 * MIB, "budget {budget}");
        assert!(entry.last_lba >= 20 * MIB - 1, "budget {budget}");
        // Only a cut between the primary's entries and header damages the
        // primary; the new backup at the end then stands in.
        assert_eq!(after.primary_ok, budget != 3, "budget {budget}");
        if !after.primary_ok || !after.fills("gw-data", 40 * MIB).unwrap() {
            after
                .write_moved(&mut f, 40 * MIB, "gw-data", |d| d.sync_all())
                .unwrap();
        }
        let done = Gpt::read(&mut open(&path), SECTOR, 40 * MIB).unwrap();
        assert!(done.primary_ok && done.fills("gw-data", 40 * MIB).unwrap());
        assert_eq!(data(&done).last_lba, 39 * MIB - 1);
    }
}

#[test]
fn only_the_last_partition_can_grow_and_a_disk_without_gpt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    make_disk(&path, 24 * MIB);
    let mut f = open(&path);
    let mut gpt = Gpt::read(&mut f, SECTOR, 24 * MIB).unwrap();
    assert!(gpt.fills("gw-data", 24 * MIB).is_ok());
    assert!(matches!(
        gpt.write_moved(&mut f, 24 * MIB, "esp", |_| Ok(())),
        Err(GptError::NotLast(_))
    ));
    assert!(matches!(
        gpt.fills("nope", 24 * MIB),
        Err(GptError::NoPartition(_))
    ));
    let blank = dir.path().join("blank.img");
    File::create(&blank).unwrap().set_len(MIB * SECTOR).unwrap();
    assert!(matches!(
        Gpt::read(&mut open(&blank), SECTOR, MIB),
        Err(GptError::NoTable)
    ));
}
