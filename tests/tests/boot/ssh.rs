//! The console over SSH on a booted image, through `scripts/run-qemu`'s forward: off after
//! the wizard, turned on from the serial console by a commit, then the real OpenSSH client
//! with the committed key gets the same console, which asks the admin password.

use super::serial_console::{PASSWORD, STEP, SerialVm};
use super::{BIOS_BOOT, Disk};
use edgemx_tests::FakeBackend;
use edgemx_tests::pty::Pty;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// The OpenSSH client for `key` at the forward, forced to a tty.
fn ssh(key: &Path, at: SocketAddr) -> Command {
    let mut command = Command::new("ssh");
    command
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
        .arg("-i")
        .arg(key)
        .args(["-p", &at.port().to_string(), "-tt", "admin@127.0.0.1"]);
    command
}

/// Waits until the guest's SSH server lets `key` in: QEMU accepts every connection on the
/// forward and closes it while nothing listens inside, so the sign is a refused command
/// (only the console runs there), which comes after authentication.
fn wait_for_login(key: &Path, at: SocketAddr) {
    let deadline = Instant::now() + STEP;
    loop {
        let out = ssh(key, at).arg("show status").output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        if said.contains("exec request failed") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no SSH login through {at}: {said}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_through_run_qemus_forward_gets_the_console_after_a_commit() {
    let disk = Disk::overlay();
    let sink = FakeBackend::start().await;
    let mut vm = SerialVm::boot_with("ssh", &disk, sink.addr().port(), &[]).await;
    vm.wizard();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "admin@host", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();

    // Off after the wizard: the forward reaches nothing.
    let off = ssh(&key, vm.ssh).arg("show status").output().unwrap();
    assert!(!off.status.success());
    assert!(
        !String::from_utf8_lossy(&off.stderr).contains("exec request failed"),
        "an SSH server answered before it was turned on"
    );

    vm.run("set ssh enabled true", "mx.boot.test#");
    vm.run(
        &format!("set ssh authorized_keys \"{}\"", public.trim()),
        "mx.boot.test#",
    );
    vm.run("commit ssh on", "commit complete");
    wait_for_login(&key, vm.ssh);

    let mut pty = Pty::spawn("ssh", ssh(&key, vm.ssh));
    pty.expect("login: ", BIOS_BOOT);
    pty.line("admin");
    pty.expect("Password: ", STEP);
    pty.line(PASSWORD);
    pty.expect("Logged in", STEP);
    pty.expect("mx.boot.test> ", STEP);
    pty.line("show status");
    pty.expect("uptime", STEP);
    pty.expect("mx.boot.test> ", STEP);
    pty.line("exit");
    assert!(pty.wait_exit(STEP).success());
    vm.run("show log 200 | match ssh: | no-more", "ssh: login from");
}
