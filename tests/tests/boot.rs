//! Boot tests: the appliance image under QEMU (TCG), as an operator runs it.
//!
//! Each test boots its own copy-on-write overlay of the image built by
//! `scripts/build-image` (path in `EDGEMX_IMAGE`; the tests fail, not skip,
//! without it) through `scripts/run-qemu` with free ports, so tests share no
//! state. Mail goes in through the forwarded SMTP port and comes out at a
//! fake backend on the host, which the guest reaches as `10.0.2.100:25`.
//!
//! Run them one at a time (`--test-threads=1`): each boot takes a core.
//! The guest's serial console is echoed to stderr, prefixed with the test's
//! name, so a failure shows what the appliance said.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgemx_tests::{FakeBackend, ReceivedMessage, SmtpClient, send_mail};

#[path = "boot/firmware.rs"]
mod firmware;
#[path = "boot/run_qemu.rs"]
mod run_qemu;
#[path = "boot/console.rs"]
mod serial_console;
#[path = "boot/ssh.rs"]
mod ssh;
#[path = "boot/update.rs"]
mod update;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

/// Generous bounds: CI runs these under TCG on two shared cores.
const BIOS_BOOT: Duration = Duration::from_secs(120);
const UEFI_BOOT: Duration = Duration::from_secs(180);
const DELIVERY: Duration = Duration::from_secs(150);
const POWER_OFF: Duration = Duration::from_secs(90);

#[derive(Clone, Copy, Debug)]
enum Firmware {
    Bios,
    Uefi,
}

#[tokio::test(flavor = "multi_thread")]
async fn bios_boot_accepts_mail_and_relays_it_to_the_host() {
    boot_accepts_mail_and_relays_it(Firmware::Bios, BIOS_BOOT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn uefi_boot_accepts_mail_and_relays_it_to_the_host() {
    boot_accepts_mail_and_relays_it(Firmware::Uefi, UEFI_BOOT).await;
}

/// The same image path with Debian's generic kernel (`EDGEMX_KERNEL=debian`
/// scripts/build-image, path in `EDGEMX_DEBIAN_IMAGE`): init loads the modules
/// its hardware needs, then the gateway takes mail as on our kernel.
#[tokio::test(flavor = "multi_thread")]
async fn debian_kernel_boot_loads_modules_and_accepts_mail() {
    let disk = Disk::overlay_of(&image("EDGEMX_DEBIAN_IMAGE"));
    let sink = FakeBackend::start().await;
    let vm = Vm::boot("debian", &disk, Firmware::Bios, sink.addr().port());
    let ready = vm.wait_for_banner(BIOS_BOOT).await;
    eprintln!(
        "BOOT TIME debian-kernel: SMTP banner {:.1} s after QEMU start",
        ready.as_secs_f64()
    );
    vm.assert_console("-amd64, slot a)");
    vm.assert_console("kernel modules for this hardware");
    let ids = send_messages(&vm, "debian", 1).await;
    assert_delivered(&sink, &ids).await;
}

async fn boot_accepts_mail_and_relays_it(firmware: Firmware, boot: Duration) {
    let disk = Disk::overlay();
    let sink = FakeBackend::start().await;
    let name = format!("{firmware:?}").to_lowercase();
    let vm = Vm::boot(&name, &disk, firmware, sink.addr().port());
    let ready = vm.wait_for_banner(boot).await;
    eprintln!(
        "BOOT TIME {name}: SMTP banner {:.1} s after QEMU start",
        ready.as_secs_f64()
    );
    vm.wait_for_console(
        "SMTP is listening on port 25 (address 10.0.2.15)",
        Duration::from_secs(10),
    )
    .await;
    // Our kernel (scripts/build-kernel) has every driver built in: no modules.
    vm.assert_console("-edgemx, slot a)");
    assert!(
        !vm.console_has("kernel modules for this hardware"),
        "[{name}] init loaded modules on a kernel with every driver built in"
    );

    let ids = send_messages(&vm, "boot", 1).await;
    let got = assert_delivered(&sink, &ids).await;
    let ours = got
        .iter()
        .find(|m| m.message_id().is_some_and(|id| ids.contains(&id)));
    assert_eq!(
        ours.map(|m| m.rcpt_to.clone()),
        Some(vec!["bob@example.com".to_string()])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_mail_survives_the_power_button_and_is_delivered_after_boot() {
    let disk = Disk::overlay();
    let sink_port = free_port();
    let vm = Vm::boot("powerdown", &disk, Firmware::Bios, sink_port);
    vm.wait_for_banner(BIOS_BOOT).await;
    let ids = send_messages(&vm, "pd", 5).await;

    vm.monitor("system_powerdown").await;
    vm.wait_for_console("power button pressed", Duration::from_secs(30))
        .await;
    vm.wait_for_exit(POWER_OFF).await;
    vm.assert_console("/data: unmounted");

    let sink = FakeBackend::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, sink_port))).await;
    let vm = Vm::boot("powerdown-2", &disk, Firmware::Bios, sink_port);
    vm.wait_for_banner(BIOS_BOOT).await;
    assert_delivered(&sink, &ids).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_mail_survives_a_power_cut() {
    let disk = Disk::overlay();
    let sink_port = free_port();
    let vm = Vm::boot("powercut", &disk, Firmware::Bios, sink_port);
    vm.wait_for_banner(BIOS_BOOT).await;
    let ids = send_messages(&vm, "cut", 5).await;
    // Right after the last 250: whatever the guest acknowledged must already
    // be on the disk image.
    vm.power_cut().await;

    let sink = FakeBackend::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, sink_port))).await;
    let vm = Vm::boot("powercut-2", &disk, Firmware::Bios, sink_port);
    vm.wait_for_banner(BIOS_BOOT).await;
    assert_delivered(&sink, &ids).await;
}

/// The kernel's SysRq-I (sent as a key press through the QEMU monitor) kills
/// every process except init: init must log why the gateway died and start
/// it again.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_gateway_is_restarted_by_init() {
    let disk = Disk::overlay();
    let sink = FakeBackend::start().await;
    let vm = Vm::boot("supervise", &disk, Firmware::Bios, sink.addr().port());
    vm.wait_for_banner(BIOS_BOOT).await;
    vm.wait_for_console("SMTP is listening", Duration::from_secs(10))
        .await;

    // SysRq needs the keyboard driver and init's SysRq mask in place; both
    // are by the time SMTP listens, but a key press is cheap to repeat.
    for _ in 0..3 {
        vm.monitor("sendkey alt-sysrq-i").await;
        if vm
            .wait_for("killed by SIGKILL", Duration::from_secs(10))
            .await
        {
            break;
        }
    }
    vm.assert_console("killed by SIGKILL");
    vm.wait_for_console("gateway started", Duration::from_secs(30))
        .await;
    vm.wait_for_banner(Duration::from_secs(60)).await;

    let ids = send_messages(&vm, "again", 1).await;
    assert_delivered(&sink, &ids).await;
}

// --- helpers ----------------------------------------------------------------

fn message(id: &str) -> String {
    format!(
        "From: alice@client.test\r\nTo: bob@example.com\r\nSubject: boot test {id}\r\n\
         Message-ID: <{id}@client.test>\r\n\r\nsent by the boot tests\r\n"
    )
}

/// Sends `n` messages, each acknowledged with 250; returns their Message-IDs.
async fn send_messages(vm: &Vm, prefix: &str, n: usize) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let reply = send_mail(
            vm.smtp,
            "alice@client.test",
            &["bob@example.com"],
            &message(&id),
        )
        .await
        .unwrap_or_else(|e| panic!("message {id}: {e}"));
        assert_eq!(reply.code, 250, "message {id}: {reply:?}");
        ids.insert(format!("<{id}@client.test>"));
    }
    ids
}

/// Every message in `ids` reaches the sink (at least once); returns all the
/// sink received.
async fn assert_delivered(sink: &FakeBackend, ids: &BTreeSet<String>) -> Vec<ReceivedMessage> {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let got = sink.messages();
        let seen: BTreeSet<String> = got.iter().filter_map(|m| m.message_id()).collect();
        let missing: Vec<&String> = ids.difference(&seen).collect();
        if missing.is_empty() {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered within {DELIVERY:?}: {missing:?} (got {seen:?})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The image under test, from the environment variable `var` (relative
/// paths are taken from the current directory or the repository root):
/// `EDGEMX_IMAGE` (out/edgemx.img) or `EDGEMX_DEBIAN_IMAGE`
/// (out/edgemx-debian.img, built with `EDGEMX_KERNEL=debian
/// EDGEMX_IMAGE_NAME=edgemx-debian scripts/build-image`).
fn image(var: &str) -> PathBuf {
    let Some(path) = std::env::var_os(var) else {
        panic!(
            "{var} is not set: build the image with scripts/build-image (see scripts/test) and set {var}"
        );
    };
    let path = PathBuf::from(path);
    let found = [path.clone(), repo_root().join(&path)]
        .into_iter()
        .find(|p| p.is_file());
    let Some(found) = found else {
        panic!(
            "{var}={} does not exist: run scripts/build-image",
            path.display()
        );
    };
    found.canonicalize().unwrap_or(found)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// A per-test copy-on-write overlay of the image (plus, under UEFI, the
/// NVRAM file run-qemu keeps beside it).
struct Disk {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Disk {
    fn overlay() -> Disk {
        Disk::overlay_of(&image("EDGEMX_IMAGE"))
    }

    fn overlay_of(base: &Path) -> Disk {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("disk.qcow2");
        let status = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(base)
            .arg(&path)
            .status()
            .expect("qemu-img runs (package qemu-utils)");
        assert!(status.success(), "qemu-img create failed");
        Disk { _dir: dir, path }
    }
}

/// One QEMU run of the appliance.
struct Vm {
    name: String,
    child: Mutex<Option<Child>>,
    console: Arc<Mutex<String>>,
    monitor: PathBuf,
    smtp: SocketAddr,
    started: Instant,
}

impl Vm {
    fn boot(name: &str, disk: &Disk, firmware: Firmware, sink_port: u16) -> Vm {
        let smtp_port = free_port();
        let monitor = disk.path.with_file_name(format!("{name}.monitor"));
        let mut child = Command::new(repo_root().join("scripts/run-qemu"))
            .arg(match firmware {
                Firmware::Bios => "--bios",
                Firmware::Uefi => "--uefi",
            })
            .arg("--disk")
            .arg(&disk.path)
            .args([
                "--smtp-port",
                &smtp_port.to_string(),
                "--sink-port",
                &sink_port.to_string(),
                "--ssh-port",
                &free_port().to_string(),
                "--admin-port",
                &free_port().to_string(),
            ])
            .arg("--monitor")
            .arg(&monitor)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("scripts/run-qemu starts");
        let console = Arc::new(Mutex::new(String::new()));
        if let Some(stdout) = child.stdout.take() {
            let (console, name) = (console.clone(), name.to_string());
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout);
                let mut line = Vec::new();
                while lines
                    .read_until(b'\n', &mut line)
                    .await
                    .is_ok_and(|n| n > 0)
                {
                    let text = String::from_utf8_lossy(&line).trim_end().to_string();
                    eprintln!("[{name}] {text}");
                    if let Ok(mut c) = console.lock() {
                        c.push_str(&text);
                        c.push('\n');
                    }
                    line.clear();
                }
            });
        }
        Vm {
            name: name.to_string(),
            child: Mutex::new(Some(child)),
            console,
            monitor,
            smtp: SocketAddr::from((Ipv4Addr::LOCALHOST, smtp_port)),
            started: Instant::now(),
        }
    }

    fn console_has(&self, needle: &str) -> bool {
        self.console
            .lock()
            .map(|c| c.contains(needle))
            .unwrap_or(false)
    }

    fn assert_console(&self, needle: &str) {
        assert!(
            self.console_has(needle),
            "[{}] the console never showed {needle:?}",
            self.name
        );
    }

    /// Whether `needle` shows up on the console within `timeout`.
    async fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.console_has(needle) {
            if Instant::now() >= deadline {
                return false;
            }
            self.assert_running();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    }

    async fn wait_for_console(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.console_has(needle) {
            assert!(
                Instant::now() < deadline,
                "[{}] no {needle:?} on the console within {timeout:?}",
                self.name
            );
            self.assert_running();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for a 220 banner on the forwarded port; returns the time since
    /// QEMU was started.
    async fn wait_for_banner(&self, timeout: Duration) -> Duration {
        let deadline = Instant::now() + timeout;
        loop {
            // Before the guest listens, the host side of the forward accepts
            // and then closes: connect succeeds but no banner comes.
            let attempt =
                tokio::time::timeout(Duration::from_secs(5), SmtpClient::connect(self.smtp)).await;
            if let Ok(Ok(client)) = attempt
                && client.banner.code == 220
            {
                return self.started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "[{}] no SMTP banner within {timeout:?}",
                self.name
            );
            self.assert_running();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Sends one command to the QEMU human monitor and waits for the prompt
    /// that follows it (the command has then been executed).
    async fn monitor(&self, command: &str) {
        let mut stream = UnixStream::connect(&self.monitor)
            .await
            .expect("QEMU monitor socket");
        let mut seen = Vec::new();
        let wait = Duration::from_secs(10);
        let _ = tokio::time::timeout(wait, read_prompts(&mut stream, &mut seen, 1)).await;
        stream
            .write_all(format!("{command}\n").as_bytes())
            .await
            .expect("monitor write");
        let _ = tokio::time::timeout(wait, read_prompts(&mut stream, &mut seen, 2)).await;
    }

    async fn wait_for_exit(&self, timeout: Duration) {
        let Some(mut child) = self.child.lock().ok().and_then(|mut c| c.take()) else {
            return;
        };
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => eprintln!("[{}] QEMU exited: {status:?}", self.name),
            Err(_) => panic!(
                "[{}] the guest did not power off within {timeout:?}",
                self.name
            ),
        }
    }

    /// SIGKILL to QEMU: the disk image keeps exactly what the guest had
    /// written through to it.
    async fn power_cut(&self) {
        let Some(mut child) = self.child.lock().ok().and_then(|mut c| c.take()) else {
            return;
        };
        child.start_kill().expect("kill QEMU");
        let _ = child.wait().await;
    }

    fn assert_running(&self) {
        if let Ok(mut guard) = self.child.lock()
            && let Some(child) = guard.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("[{}] QEMU exited early: {status}", self.name);
        }
    }
}

/// Reads the monitor's output until it has shown `want` prompts in all.
async fn read_prompts(stream: &mut UnixStream, seen: &mut Vec<u8>, want: usize) {
    let mut buf = vec![0u8; 4096];
    while seen.windows(7).filter(|w| w == b"(qemu) ").count() < want {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}
