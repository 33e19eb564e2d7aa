//! Filesystems: the kernel's pseudo filesystems, the `gw-data` partition at
//! `/data`, and the first-boot defaults written onto it.
//!
//! The data partition is found by its GPT partition name, which the kernel
//! publishes as `PARTNAME=` in `/sys/class/block/*/uevent` (no udev, no
//! blkid). Without it the gateway does not start: accepting mail onto a
//! volatile filesystem would break the promise behind every `250`.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use log::{info, warn};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

const DATA: &str = "/data";
const PARTNAME: &str = "gw-data";
const DEFAULTS: &str = "/etc/edgemx/defaults";
const ESP_PARTNAME: &str = "esp";

static DATA_MOUNTED: AtomicBool = AtomicBool::new(false);
static ESP_MOUNTED: AtomicBool = AtomicBool::new(false);

/// Mounts /proc, /sys, /dev (devtmpfs: Debian's kernel does not mount it),
/// /dev/pts, /run and /tmp. Failures are logged; boot goes on.
pub fn early() {
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let table: [(&str, &str, MsFlags, Option<&str>); 6] = [
        ("proc", "/proc", nodev, None),
        ("sysfs", "/sys", nodev, None),
        ("devtmpfs", "/dev", MsFlags::MS_NOSUID, Some("mode=0755")),
        (
            "devpts",
            "/dev/pts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("mode=0620,ptmxmode=0666"),
        ),
        (
            "tmpfs",
            "/run",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        ),
        (
            "tmpfs",
            "/tmp",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        ),
    ];
    for (fstype, target, flags, data) in table {
        if let Err(e) = fs::create_dir_all(target) {
            warn!("cannot create {target}: {e}");
        }
        if let Err(e) = mount(Some(fstype), target, Some(fstype), flags, data) {
            // EBUSY: already mounted (e.g. the kernel's devtmpfs automount).
            if e != nix::errno::Errno::EBUSY {
                warn!("cannot mount {fstype} on {target}: {e}");
            }
        }
    }
}

/// Whether `/data` holds the persistent partition.
pub fn data_mounted() -> bool {
    DATA_MOUNTED.load(Ordering::Acquire)
}

/// Finds `gw-data` (waiting up to `wait` for its disk to appear), mounts it
/// at /data and writes the default configuration files that are missing.
pub fn data(wait: Duration) -> Result<(), String> {
    if data_mounted() {
        return Ok(());
    }
    let device = wait_for_partition(PARTNAME, wait)
        .ok_or_else(|| format!("no partition named {PARTNAME} found"))?;
    fs::create_dir_all(DATA).map_err(|e| format!("cannot create {DATA}: {e}"))?;
    // nosuid/nodev/noexec: /data holds data only. ext4's defaults (data=ordered, barriers on) are what make the queue's
    // fsync durable; do not weaken them here.
    let flags = MsFlags::MS_NOATIME | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some(device.as_str()),
        DATA,
        Some("ext4"),
        flags,
        None::<&str>,
    )
    .map_err(|e| format!("cannot mount {device} ({PARTNAME}) on {DATA}: {e}"))?;
    DATA_MOUNTED.store(true, Ordering::Release);
    info!("{DATA}: mounted {device} ({PARTNAME})");
    factory_reset();
    for name in ["edgemx.toml", "network.toml"] {
        install_default(name);
    }
    Ok(())
}

/// Mounts the EFI system partition (GPT name `esp`, FAT) at
/// [`crate::firmware::bootenv::ESP_MOUNT`]: GRUB's environment block lives
/// there, outside gw-data, so a factory reset keeps the firmware's boot state.
pub fn esp() -> Result<(), String> {
    let target = crate::firmware::bootenv::ESP_MOUNT;
    let device = crate::firmware::slot::find_partition(ESP_PARTNAME)
        .ok_or_else(|| format!("no partition named {ESP_PARTNAME} found"))?;
    fs::create_dir_all(target).map_err(|e| format!("cannot create {target}: {e}"))?;
    // flush: FAT has no journal; write each file out on close as well as on fsync.
    let flags = MsFlags::MS_NOATIME | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some(device.as_str()),
        target,
        Some("vfat"),
        flags,
        Some("flush"),
    )
    .map_err(|e| format!("cannot mount {device} ({ESP_PARTNAME}) on {target}: {e}"))?;
    ESP_MOUNTED.store(true, Ordering::Release);
    info!("{target}: mounted {device} ({ESP_PARTNAME})");
    Ok(())
}

/// Marker written by the console's `factory-reset`: erase `/data` (configuration,
/// revisions, admin account, queue) before anything reads it, so the defaults are
/// written afresh and the console's setup wizard runs.
const RESET_MARKER: &str = "/data/factory-reset";

fn factory_reset() {
    if !Path::new(RESET_MARKER).exists() {
        return;
    }
    warn!("factory reset requested: erasing {DATA}");
    let entries = match fs::read_dir(DATA) {
        Ok(entries) => entries,
        Err(e) => {
            warn!("factory reset: cannot list {DATA}: {e}");
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // The marker goes last: a power cut halfway repeats the reset at the next boot.
        if path == Path::new(RESET_MARKER) || path.ends_with("lost+found") {
            continue;
        }
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        if let Err(e) = removed {
            warn!("factory reset: cannot remove {}: {e}", path.display());
        }
    }
    let _ = fs::File::open(DATA).and_then(|d| d.sync_all());
    match fs::remove_file(RESET_MARKER) {
        Ok(()) => info!("factory reset done"),
        Err(e) => warn!("factory reset: cannot remove the marker: {e}"),
    }
    let _ = fs::File::open(DATA).and_then(|d| d.sync_all());
}

/// Unmounts /data after the last writer is gone; falls back to a read-only
/// remount, then to a lazy unmount, so the journal is clean either way.
pub fn unmount_data() {
    if ESP_MOUNTED.swap(false, Ordering::AcqRel) {
        let esp = crate::firmware::bootenv::ESP_MOUNT;
        if let Err(e) = umount2(esp, MntFlags::empty()) {
            warn!("cannot unmount {esp}: {e}");
        }
    }
    if !data_mounted() {
        return;
    }
    match umount2(DATA, MntFlags::empty()) {
        Ok(()) => info!("{DATA}: unmounted"),
        Err(e) => {
            warn!("cannot unmount {DATA}: {e}; remounting read-only");
            let ro = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            if let Err(e) = mount(None::<&str>, DATA, None::<&str>, ro, None::<&str>) {
                warn!("cannot remount {DATA} read-only: {e}");
                let _ = umount2(DATA, MntFlags::MNT_DETACH);
            }
        }
    }
    DATA_MOUNTED.store(false, Ordering::Release);
}

fn wait_for_partition(name: &str, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    let mut told = false;
    loop {
        if let Some(dev) = crate::firmware::slot::find_partition(name) {
            return Some(dev);
        }
        if Instant::now() >= deadline {
            return None;
        }
        if !told {
            info!("waiting for the {name} partition");
            told = true;
        }
        // Disks behind a bus driver loaded meanwhile (USB, SCSI) need theirs.
        super::modules::rescan();
        thread::sleep(Duration::from_millis(100));
    }
}

/// Copies `/etc/edgemx/defaults/NAME` to `/data/NAME` unless it exists,
/// atomically (write, fsync, rename, fsync the directory).
fn install_default(name: &str) {
    let target = Path::new(DATA).join(name);
    if target.exists() {
        return;
    }
    let source = Path::new(DEFAULTS).join(name);
    let result = fs::read(&source).and_then(|bytes| {
        let tmp = Path::new(DATA).join(format!(".{name}.new"));
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, &target)?;
        fs::File::open(DATA)?.sync_all()
    });
    match result {
        Ok(()) => info!("first boot: wrote the default {}", target.display()),
        Err(e) => warn!("cannot write the default {}: {e}", target.display()),
    }
}
