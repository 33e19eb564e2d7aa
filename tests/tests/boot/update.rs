//! Firmware updates on a running image, over the serial console: bundle N+1 (the image's own
//! bundle re-signed with the next version) served by the host through a guestfwd, refusals
//! that leave slot B untouched (no write reaches its range of the disk), the install, the
//! reboot into slot B on trial and its commit, mail flowing; and a power cut in the middle
//! of the write, after which the appliance boots slot A and a second install succeeds.

use super::serial_console::{PASSWORD, STEP, SerialVm, delivered, message};
use super::{BIOS_BOOT, Disk, free_port, image, repo_root};
use edgemx_tests::{FakeBackend, send_mail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INSTALL: Duration = Duration::from_secs(300);
/// The health gate (60 s by default) plus a boot.
const GATE: Duration = Duration::from_secs(240);
const URL: &str = "http://10.0.2.101";

fn edgemx(args: &[&str]) -> String {
    let out = Command::new(edgemx_tests::gateway::binary())
        .args(args)
        .output()
        .expect("edgemx runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "edgemx {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The image's bundle re-signed as N+1, N-1, with a stranger's key, and tampered.
struct Bundles {
    _dir: tempfile::TempDir,
    files: HashMap<&'static str, Vec<u8>>,
}

fn bundles() -> Bundles {
    let base = image("EDGEMX_IMAGE").with_file_name("edgemx.bundle");
    let trusted = image("EDGEMX_IMAGE").with_file_name("trusted.keys");
    let key = std::env::var_os("EDGEMX_SIGNING_KEY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".work/signing/dev.pk8"));
    let dir = tempfile::tempdir().expect("temp dir");
    let s = |p: &Path| p.display().to_string();
    let inspect = edgemx(&["firmware", "inspect", &s(&base), "--trust", &s(&trusted)]);
    let n: u64 = inspect
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"version\": "))
        .and_then(|v| v.trim_end_matches(',').parse().ok())
        .expect("the image's bundle has a version");
    assert!(n > 0, "the image's version must leave room for a downgrade");
    let sign = |name: &str, version: u64, key: &Path| {
        let out = dir.path().join(name);
        let args = ["firmware", "sign", "--from", &s(&base), "--key", &s(key)];
        let v = version.to_string();
        edgemx(&[&args[..], &["--version", &v, "--out", &s(&out)]].concat());
        std::fs::read(out).expect("signed bundle")
    };
    let stranger = dir.path().join("stranger.pk8");
    edgemx(&["firmware", "keygen", &s(&stranger)]);
    let next = sign("next.bundle", n + 1, &key);
    let mut tampered = next.clone();
    let last = tampered.len() - 100;
    tampered[last] ^= 0x40;
    let files = HashMap::from([
        ("/next.bundle", next),
        ("/tampered.bundle", tampered),
        ("/older.bundle", sign("older.bundle", n - 1, &key)),
        (
            "/stranger.bundle",
            sign("stranger.bundle", n + 1, &stranger),
        ),
    ]);
    Bundles { _dir: dir, files }
}

/// Serves the bundles; while `throttle` is set, the second request of a path (the install's
/// write pass) is sent slowly and `sent` counts its bytes.
struct Server {
    port: u16,
    throttle: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
}

async fn serve(bundles: &Bundles) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let files = Arc::new(bundles.files.clone());
    let throttle = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(std::sync::Mutex::new(HashMap::<String, u32>::new()));
    let (t, c) = (throttle.clone(), sent.clone());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (files, seen, throttle, sent) = (files.clone(), seen.clone(), t.clone(), c.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 2048];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let Some(body) = files.get(path.as_str()) else {
                    let _ = conn
                        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    return;
                };
                let nth = {
                    let mut seen = seen.lock().unwrap();
                    let n = seen.entry(path).or_default();
                    *n += 1;
                    *n
                };
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for chunk in body.chunks(64 * 1024) {
                    if conn.write_all(chunk).await.is_err() {
                        return;
                    }
                    if nth == 2 && throttle.load(Ordering::SeqCst) {
                        sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                        // Pacing the transfer, not waiting for a condition: the test polls `sent`.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            });
        }
    });
    Server {
        port,
        throttle,
        sent,
    }
}

/// Byte range of partition `n` in the image.
fn partition(n: u32) -> (u64, u64) {
    let out = Command::new("partx")
        .args(["-g", "-b", "-o", "START,SIZE", "-n", &n.to_string()])
        .arg(image("EDGEMX_IMAGE"))
        .output()
        .expect("partx runs (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(v.len(), 2, "partx: {text}");
    (v[0] * 512, v[1])
}

/// Whether the guest wrote anything into `range` of the disk (the overlay holds only
/// what the guest wrote; the base image is never written).
fn written(disk: &Disk, (start, len): (u64, u64)) -> bool {
    let out = Command::new("qemu-img")
        .args(["map", "-U", "--output=json"])
        .arg(&disk.path)
        .output()
        .expect("qemu-img map runs");
    let map: serde_json::Value = serde_json::from_slice(&out.stdout).expect("qemu-img map JSON");
    map.as_array().into_iter().flatten().any(|e| {
        let (s, l) = (
            e["start"].as_u64().unwrap_or(0),
            e["length"].as_u64().unwrap_or(0),
        );
        e["depth"].as_u64() == Some(0)
            && e["data"].as_bool() == Some(true)
            && s < start + len
            && start < s + l
    })
}

/// `request firmware install URL/path`; returns the console's answer.
fn install(vm: &mut SerialVm, path: &str, within: Duration) -> String {
    vm.serial.skip();
    vm.serial
        .line(&format!("request firmware install {URL}{path}"));
    vm.serial.expect("\nmx.boot.test> ", within)
}

fn login(vm: &mut SerialVm) {
    vm.answer("login: ", "admin");
    vm.answer("Password: ", PASSWORD);
    vm.serial.expect("mx.boot.test> ", STEP);
}

/// Polls `show system firmware` until slot `slot` is in `state`.
fn until_state(vm: &mut SerialVm, slot: &str, state: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let row = format!("\n{slot:<5} {state:<7}");
    loop {
        let out = vm.run("show system firmware", "slot");
        if out.contains(&row) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "slot {slot} not {state} within {within:?}:\n{out}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_update_is_refused_when_bad_installed_when_good_and_committed_after_boot() {
    let bundles = bundles();
    let server = serve(&bundles).await;
    let disk = Disk::overlay();
    let slot_b = partition(4);
    let sink = FakeBackend::start().await;
    let extra = ["--update-port".to_string(), server.port.to_string()];
    let mut vm = SerialVm::boot_with("firmware", &disk, sink.addr().port(), &extra).await;
    vm.wizard();
    until_state(&mut vm, "A", "active", GATE);
    vm.run("show system firmware", "\nB     empty");

    for (path, reason) in [
        ("/tampered.bundle", "does not match the manifest"),
        ("/stranger.bundle", "unknown key"),
        ("/older.bundle", "downgrade refused"),
    ] {
        let out = install(&mut vm, path, INSTALL);
        assert!(out.contains(reason), "{path}: {out}");
        assert!(
            !written(&disk, slot_b),
            "{path}: refused, yet slot B was written"
        );
    }
    vm.run("show system firmware", "last install");

    let started = Instant::now();
    let out = install(&mut vm, "/next.bundle", INSTALL);
    assert!(out.contains("trial boot armed"), "{out}");
    let installed = started.elapsed();
    assert!(
        written(&disk, slot_b),
        "the install wrote nothing to slot B"
    );
    until_state(&mut vm, "B", "trial", STEP);

    vm.serial.line("reboot");
    vm.answer("[yes/no] ", "yes");
    vm.serial.expect("loading slot B", BIOS_BOOT);
    login(&mut vm);
    let out = until_state(&mut vm, "B", "active", GATE);
    eprintln!(
        "FIRMWARE: install {:.1} s, install to committed slot {:.1} s",
        installed.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(out.contains("\nA     good"), "{out}");

    let r = send_mail(
        vm.smtp,
        "a@client.test",
        &["bob@boot.test"],
        &message("after", "bob@boot.test"),
    )
    .await;
    assert_eq!(r.map(|r| r.code), Ok(250));
    delivered(&sink, "after").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_power_cut_during_the_install_boots_the_old_slot_and_a_second_install_succeeds() {
    let bundles = bundles();
    let server = serve(&bundles).await;
    server.throttle.store(true, Ordering::SeqCst);
    let disk = Disk::overlay();
    let sink_port = free_port();
    let extra = ["--update-port".to_string(), server.port.to_string()];
    let mut vm = SerialVm::boot_with("fw-cut", &disk, sink_port, &extra).await;
    vm.wizard();
    vm.serial
        .line(&format!("request firmware install {URL}/next.bundle"));
    // Cut the power once the write pass has sent (and the guest written) a few MiB.
    let deadline = Instant::now() + INSTALL;
    while server.sent.load(Ordering::SeqCst) < 4 << 20 {
        assert!(
            Instant::now() < deadline,
            "the write pass did not get going"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    vm.qemu.start_kill().expect("kill QEMU");
    let _ = vm.qemu.wait().await;

    server.throttle.store(false, Ordering::SeqCst);
    let mut vm = SerialVm::boot_with("fw-cut-2", &disk, sink_port, &extra).await;
    vm.serial.expect("loading slot A", BIOS_BOOT);
    login(&mut vm);
    let out = until_state(&mut vm, "A", "active", GATE);
    assert!(
        out.contains("\nB     empty"),
        "a half-written slot must read as empty:\n{out}"
    );
    let out = install(&mut vm, "/next.bundle", INSTALL);
    assert!(out.contains("trial boot armed"), "{out}");
    until_state(&mut vm, "B", "trial", STEP);
}
