//! Boot counting, the health gate and the growing data partition, on raw copies of the
//! image that the host edits before booting: GRUB's environment on the ESP (mtools), the
//! gateway's configuration on gw-data (debugfs), a test-unhealthy firmware written into
//! slot B, a disk made larger with `qemu-img resize`.

use super::{BIOS_BOOT, Disk, Firmware, Vm, assert_delivered, free_port, image, send_messages};
use edgemx::firmware::bootenv::{BootState, ENV_SIZE, Env};
use edgemx::firmware::slot::Slot;
use edgemx_tests::FakeBackend;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Short gate times so a trial is decided within a boot test.
const FAST_GATE: &str = "\n[boot]\nhealthy_for = \"3s\"\ntrial_deadline = \"20s\"\n[queue]\nretry_intervals = [\"2s\"]\n";
const GRUBENV: &str = "::/boot/grub/grubenv";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Disk {
    /// A full raw copy of the image (sparse), which host tools can edit.
    fn raw_copy() -> Disk {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("disk.img");
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(image("EDGEMX_IMAGE"))
            .arg(&path));
        Disk { _dir: dir, path }
    }

    /// Byte offset and size of a partition, from util-linux's partx.
    fn partition(&self, name: &str) -> (u64, u64) {
        let text = run(Command::new("partx")
            .args(["--show", "-g", "-b", "-o", "NAME,START,SIZE"])
            .arg(&self.path));
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no partition {name} in {text}"));
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().expect("number"))
            .collect();
        (fields[0] * 512, fields[1])
    }

    fn esp(&self) -> String {
        format!("{}@@{}", self.path.display(), self.partition("esp").0)
    }

    fn data(&self) -> String {
        format!(
            "{}?offset={}",
            self.path.display(),
            self.partition("gw-data").0
        )
    }

    /// Every file of the ESP reads back whole (mtools follows each cluster chain; a
    /// power cut leaves FAT's dirty bit set, which is expected and not checked here).
    fn assert_esp_clean(&self) {
        let copy = self._dir.path().join("esp-files");
        run(Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-s", "-n", "-i", &self.esp(), "::/"])
            .arg(&copy));
    }

    fn read_grubenv(&self) -> Vec<u8> {
        let local = self._dir.path().join("grubenv.out");
        run(Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-o", "-i", &self.esp(), GRUBENV])
            .arg(&local));
        std::fs::read(local).expect("grubenv copied out")
    }

    fn write_grubenv(&self, block: &[u8]) {
        let local = self._dir.path().join("grubenv.in");
        std::fs::write(&local, block).expect("write grubenv");
        run(Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-o", "-i", &self.esp()])
            .arg(&local)
            .arg(GRUBENV));
    }

    /// Puts /data/edgemx.toml in place before the first boot (init then keeps it).
    fn write_config(&self, extra: &str) {
        let defaults = super::repo_root().join("image/defaults/edgemx.toml");
        let text = std::fs::read_to_string(defaults).expect("default configuration") + extra;
        let local = self._dir.path().join("edgemx.toml");
        std::fs::write(&local, text).expect("write config");
        run(Command::new("debugfs")
            .args(["-w", "-R"])
            .arg(format!("write {} /edgemx.toml", local.display()))
            .arg(self.data()));
    }

    /// A copy of gw-data with its ext4 journal replayed, as the next boot's mount
    /// would after a power cut: debugfs and dumpe2fs do not replay it, and what the
    /// guest fsynced may sit only in the journal. (A copy, because e2fsck loses the
    /// `?offset=` of a partition inside a disk image when it reopens after a replay.)
    fn replayed_data(&self) -> PathBuf {
        let (offset, size) = self.partition("gw-data");
        let copy = self._dir.path().join("gw-data.ext4");
        run(Command::new("dd")
            .arg(format!("if={}", self.path.display()))
            .arg(format!("of={}", copy.display()))
            .args([
                "bs=1M",
                "iflag=skip_bytes,count_bytes",
                "conv=sparse",
                "status=none",
            ])
            .arg(format!("skip={offset}"))
            .arg(format!("count={size}")));
        let fsck = Command::new("e2fsck")
            .arg("-p")
            .arg(&copy)
            .output()
            .expect("e2fsck runs");
        // 0: clean, 1: errors corrected (the replayed journal).
        assert!(
            matches!(fsck.status.code(), Some(0 | 1)),
            "e2fsck -p of gw-data: {}{}",
            String::from_utf8_lossy(&fsck.stdout),
            String::from_utf8_lossy(&fsck.stderr)
        );
        copy
    }

    fn read_data_file(&self, path: &str) -> String {
        run(Command::new("debugfs")
            .args(["-R", &format!("cat {path}")])
            .arg(self.replayed_data()))
    }

    /// Writes a slot's file system image into partition `gw-slot-b`.
    fn write_slot_b(&self, image: &Path) {
        let (offset, size) = self.partition("gw-slot-b");
        let len = std::fs::metadata(image).expect("slot image").len();
        assert!(len <= size, "{} is bigger than slot B", image.display());
        run(Command::new("dd")
            .arg(format!("if={}", image.display()))
            .arg(format!("of={}", self.path.display()))
            .args(["bs=1M", "oflag=seek_bytes", "conv=notrunc", "status=none"])
            .arg(format!("seek={offset}")));
    }
}

fn state(disk: &Disk) -> BootState {
    disk.assert_esp_clean();
    BootState::from_env(&Env::parse(&disk.read_grubenv()).expect("a valid grubenv"))
}

/// Slot A of a build made with `EDGEMX_TEST_UNHEALTHY=1` (scripts/test builds it).
fn unhealthy_slot() -> PathBuf {
    let path = std::env::var_os("EDGEMX_UNHEALTHY_SLOT").map(PathBuf::from).unwrap_or_else(|| {
        panic!("EDGEMX_UNHEALTHY_SLOT is not set: build with EDGEMX_TEST_UNHEALTHY=1 EDGEMX_OUT=out/test-unhealthy scripts/build-image and point it at .work/image-test-unhealthy/slot-a.vfat")
    });
    assert!(
        path.is_file(),
        "EDGEMX_UNHEALTHY_SLOT={} does not exist",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zeroed_grubenv_boots_the_last_known_good_slot_and_is_rewritten() {
    let disk = Disk::raw_copy();
    disk.write_config(FAST_GATE);
    disk.write_grubenv(&[0u8; ENV_SIZE]);
    assert!(Env::parse(&disk.read_grubenv()).is_err());

    let sink = FakeBackend::start().await;
    let vm = Vm::boot("zeroed-env", &disk, Firmware::Bios, sink.addr().port());
    vm.wait_for_console("booting the defaults", BIOS_BOOT).await;
    vm.wait_for_console("slot a)", BIOS_BOOT).await;
    vm.wait_for_banner(BIOS_BOOT).await;
    vm.wait_for_console("firmware: slot A committed", Duration::from_secs(60))
        .await;
    let ids = send_messages(&vm, "zeroed", 1).await;
    assert_delivered(&sink, &ids).await;
    vm.power_cut().await;

    let after = state(&disk);
    assert_eq!(after.order[0], Slot::A);
    assert_eq!(
        (after.ok, after.tries, after.trial),
        ([true, false], [0, 0], None)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trial_slot_that_never_gets_healthy_falls_back_to_slot_a_by_itself() {
    let unhealthy = unhealthy_slot();
    let disk = Disk::raw_copy();
    disk.write_config(FAST_GATE);
    disk.write_slot_b(&unhealthy);
    let mut armed = Env::parse(&disk.read_grubenv()).expect("the image's grubenv is valid");
    let mut boot = BootState::from_env(&armed);
    boot.arm_trial(Slot::B);
    boot.apply(&mut armed);
    disk.write_grubenv(&armed.to_block().expect("block"));

    // No next hop while slot B is on trial: what B accepts stays in the queue on gw-data,
    // and slot A delivers it after the fallback (issue 13: data survives a rollback).
    let sink_port = super::free_port();
    let started = Instant::now();
    let vm = Vm::boot("bad-trial", &disk, Firmware::Bios, sink_port);
    vm.wait_for_console("slot b)", BIOS_BOOT).await;
    vm.wait_for_console("firmware: slot B on trial", BIOS_BOOT)
        .await;
    vm.wait_for_banner(BIOS_BOOT).await;
    let during_trial = send_messages(&vm, "during-trial", 1).await;
    vm.wait_for_console("failed its health gate", BIOS_BOOT)
        .await;
    vm.assert_console("EDGEMX_TEST_UNHEALTHY");
    // Three tries, each a full boot and a failed gate, then GRUB boots A.
    let fell_back = Duration::from_secs(600);
    vm.wait_for_console("slot B failed its trial (3 boots)", fell_back)
        .await;
    vm.wait_for_console("back on slot A", Duration::from_secs(1))
        .await;
    vm.wait_for_banner(BIOS_BOOT).await;
    eprintln!(
        "FALLBACK TIME: {:.1} s from power-on of the bad trial to slot A accepting mail",
        started.elapsed().as_secs_f64()
    );
    vm.wait_for_console("firmware: slot A committed", Duration::from_secs(60))
        .await;
    let sink = FakeBackend::start_on(std::net::SocketAddr::from(([127, 0, 0, 1], sink_port))).await;
    let ids = send_messages(&vm, "fallback", 1).await;
    assert_delivered(&sink, &ids).await;
    assert_delivered(&sink, &during_trial).await;
    vm.power_cut().await;

    let after = state(&disk);
    assert_eq!(after.order[0], Slot::A);
    assert_eq!(after.ok, [true, false], "slot B is marked bad");
    assert_eq!(after.trial, None);
    let result = disk.read_data_file("/firmware/last-result");
    assert!(
        result.contains("slot B failed its trial") && result.contains("EDGEMX_TEST_UNHEALTHY"),
        "last result: {result}"
    );
}

/// Boots a copy of the image grown by 1 GiB; when `cut_at` names a log line of the grow,
/// the power is cut when it shows and the next boot must finish the job.
async fn boots_on_a_grown_disk(name: &str, cut_at: Option<&str>) {
    let disk = Disk::raw_copy();
    let (_, before) = disk.partition("gw-data");
    run(Command::new("qemu-img")
        .args(["resize", "-q", "-f", "raw"])
        .arg(&disk.path)
        .arg("+1G"));
    let sink_port = free_port();
    if let Some(line) = cut_at {
        let vm = Vm::boot(&format!("{name}-cut"), &disk, Firmware::Bios, sink_port);
        vm.wait_for_console(line, BIOS_BOOT).await;
        vm.power_cut().await;
    }
    let sink = FakeBackend::start_on(std::net::SocketAddr::from((
        std::net::Ipv4Addr::LOCALHOST,
        sink_port,
    )))
    .await;
    let vm = Vm::boot(name, &disk, Firmware::Bios, sink_port);
    if cut_at.is_none() {
        for step in [
            "moving the GPT backup to the end",
            "gw-data: partition grown from",
            "gw-data: kernel told the partition is",
            "gw-data: ext4 grown to",
        ] {
            vm.wait_for_console(step, BIOS_BOOT).await;
        }
    }
    // After a cut the next boot redoes only what was missing (checked below on the disk).
    vm.wait_for_banner(BIOS_BOOT).await;
    let ids = send_messages(&vm, name, 2).await;
    assert_delivered(&sink, &ids).await;
    vm.power_cut().await;

    let (_, after) = disk.partition("gw-data");
    assert!(
        after >= before + (1 << 30) - (1 << 20),
        "gw-data {before} -> {after} bytes"
    );
    let data = disk.replayed_data();
    let fsck = Command::new("e2fsck")
        .args(["-fn"])
        .arg(&data)
        .output()
        .expect("e2fsck runs");
    let report = String::from_utf8_lossy(&fsck.stdout);
    assert!(fsck.status.success(), "e2fsck: {report}");
    let blocks = run(Command::new("dumpe2fs").args(["-h"]).arg(&data));
    let count: u64 = blocks
        .lines()
        .find_map(|l| l.strip_prefix("Block count:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("block count");
    assert_eq!(count * 4096, after, "ext4 fills gw-data");
}

#[tokio::test(flavor = "multi_thread")]
async fn gw_data_grows_to_fill_a_larger_disk_and_mail_flows() {
    boots_on_a_grown_disk("grow", None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_power_cut_in_the_middle_of_the_grow_is_finished_by_the_next_boot() {
    boots_on_a_grown_disk("grow-cut", Some("gw-data: growing ext4 online")).await;
}
