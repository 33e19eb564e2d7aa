//! `scripts/run-qemu` keeps the appliance's disk apart from the image that builds and
//! tests overwrite: the operator's configuration and queue survive a rebuild.

use std::path::Path;
use std::process::{Command, Output};

use super::repo_root;

/// Runs `scripts/run-qemu --dry-run` with the image and the appliance disk moved into
/// `dir`, so the test never touches the real appliance disk.
fn dry_run(dir: &Path, extra: &[&str]) -> Output {
    let out = Command::new(repo_root().join("scripts/run-qemu"))
        .arg("--dry-run")
        .args(extra)
        .env("EDGEMX_IMAGE", dir.join("edgemx.img"))
        .env("EDGEMX_APPLIANCE_DISK", dir.join("appliance/edgemx.img"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("scripts/run-qemu runs");
    assert!(
        out.status.success(),
        "run-qemu --dry-run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_appliance_disk_survives_an_image_rebuild_until_fresh_is_asked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let image = dir.path().join("edgemx.img");
    let disk = dir.path().join("appliance/edgemx.img");
    std::fs::write(&image, b"first build").expect("write image");

    let first = dry_run(dir.path(), &[]);
    let command = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(
        command.contains(&format!("file={}", disk.display())),
        "QEMU boots the appliance disk, not the image: {command}"
    );
    assert!(
        !command.contains(&format!("file={}", image.display())),
        "QEMU must not boot the build output: {command}"
    );
    assert_eq!(std::fs::read(&disk).expect("disk made"), b"first build");

    // The operator's changes on the disk survive a rebuilt image.
    std::fs::write(&disk, b"configured appliance").expect("write disk");
    std::fs::write(&image, b"second build").expect("rewrite image");
    dry_run(dir.path(), &[]);
    assert_eq!(std::fs::read(&disk).expect("disk"), b"configured appliance");

    // --fresh (no terminal to ask on) starts over from the current image.
    dry_run(dir.path(), &["--fresh"]);
    assert_eq!(std::fs::read(&disk).expect("disk"), b"second build");
}

#[test]
fn console_keys_reach_the_guest() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("edgemx.img"), b"image").expect("write image");
    let out = dry_run(dir.path(), &[]);
    let command = String::from_utf8_lossy(&out.stdout).to_string();
    // Ctrl-a (start of line) and Ctrl-c (drop the line) are console keys: QEMU's
    // escape moves to Ctrl-] and the terminal chardev takes no signals.
    assert!(
        command.contains("-echr 0x1d"),
        "escape is Ctrl-]: {command}"
    );
    assert!(
        command.contains("signal=off"),
        "Ctrl-c reaches the guest: {command}"
    );
    let told = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        told.contains("Ctrl-] x") && told.contains("system_powerdown"),
        "run-qemu says how to leave and how to press the power button: {told}"
    );

    let monitor = dir.path().join("monitor");
    let out = dry_run(
        dir.path(),
        &["--monitor", monitor.to_str().expect("utf-8 path")],
    );
    let command = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        command.contains("signal=off"),
        "with --monitor too: {command}"
    );
}
