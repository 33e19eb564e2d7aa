//! The operator console over SSH (issue 17 item 14), driven by the real OpenSSH client
//! through a pseudo-terminal against a gateway process on loopback: off by default, public
//! keys only (an unknown key is refused, password authentication is not even offered), the
//! same login as the serial console after the key, a command, `exit`, and the audit lines
//! of the login, the logout and the refused key.

use edgemx_tests::FakeBackend;
use edgemx_tests::gateway::{GatewayProcess, free_port};
use edgemx_tests::pty::Pty;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const STEP: Duration = Duration::from_secs(20);
const PROMPTS: &[&str] = &["gateway.test> ", "gateway.test# "];

/// A fresh ed25519 key pair from `ssh-keygen`: the private key's path and the public line.
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("{name}@test"))
        .arg("-f")
        .arg(&path)
        .status()
        .expect("ssh-keygen (Debian package openssh-client)");
    assert!(status.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_string())
}

/// `SHA256:…` of a key, as `ssh-keygen -l` prints it.
fn fingerprint(key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace()
        .nth(1)
        .expect("a fingerprint")
        .into()
}

/// The OpenSSH client, non-interactive about everything but the console, forced to a tty.
fn ssh(key: &Path, port: u16) -> Command {
    let mut command = Command::new("ssh");
    command
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "BatchMode=yes"])
        .args(["-o", "IdentitiesOnly=yes"])
        .args(["-o", "LogLevel=ERROR"])
        .arg("-i")
        .arg(key)
        .args(["-p", &port.to_string(), "-tt", "admin@127.0.0.1"]);
    command
}

/// Waits until `addr` accepts connections: the SSH server starts with the gateway, but
/// after the SMTP listener the harness waits for.
fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + STEP;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Types `line` and returns what it printed up to the next prompt.
fn cmd(pty: &mut Pty, line: &str) -> String {
    pty.skip();
    let start = pty.text().len();
    pty.line(line);
    let fresh: Vec<String> = PROMPTS.iter().map(|p| format!("\n{p}")).collect();
    let fresh: Vec<&str> = fresh.iter().map(String::as_str).collect();
    pty.expect_any(&fresh, STEP);
    let text = pty.text();
    text[start.min(text.len())..].to_string()
}

/// Logs in over SSH with `key` and the admin password, as an operator does.
fn log_in(name: &str, key: &Path, port: u16) -> Pty {
    let mut pty = Pty::spawn(name, ssh(key, port));
    pty.expect("login: ", STEP);
    pty.line("admin");
    pty.expect("Password: ", STEP);
    pty.line("correct horse");
    pty.expect("Logged in", STEP);
    pty.expect_any(PROMPTS, STEP);
    pty
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_is_off_by_default_and_nothing_listens() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let address = free_port();
    let (key, public) = keygen(dir.path(), "admin");
    // Every key given but `enabled`: the default must keep it off.
    let extra = format!("[ssh]\naddress = [\"{address}\"]\nauthorized_keys = [\"{public}\"]\n");
    let gw = GatewayProcess::spawn(dir.path(), backend.addr(), &extra);
    // The gateway is up (the harness saw its SMTP banner), and its control socket answers
    // a console: it had every chance to start an SSH server.
    let status = Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
        .arg("-i")
        .arg(&key)
        .args(["-p", &address.port().to_string(), "admin@127.0.0.1", "true"])
        .output()
        .unwrap();
    assert!(!status.status.success());
    assert!(
        String::from_utf8_lossy(&status.stderr).contains("Connection refused"),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(TcpStream::connect(address).is_err());
    assert!(!dir.path().join("ssh").exists(), "a host key was made");
    drop(gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorized_key_gets_the_console_with_its_login_and_others_are_refused() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (good, public) = keygen(dir.path(), "admin");
    let (bad, _) = keygen(dir.path(), "stranger");
    let passwd = dir.path().join("admin-account");
    let hash = edgemx::password::hash_with("correct horse", 1000);
    std::fs::write(&passwd, format!("admin:{hash}\n")).unwrap();
    let address = free_port();
    let extra = format!(
        "[ssh]\nenabled = true\naddress = [\"{address}\"]\nauthorized_keys = [\"{public}\"]\nlogin = \"{}\"\n\n[log]\nlevel = \"info\"\ntarget = \"stderr\"\n",
        passwd.display()
    );
    let _gw = GatewayProcess::spawn(dir.path(), backend.addr(), &extra);
    wait_listening(address);
    let host_key = dir.path().join("ssh").join("host_ed25519");
    let mode = std::fs::metadata(&host_key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "host key mode");

    // A key that is not authorized is refused, and passwords are not even offered.
    let refused = ssh(&bad, address.port())
        .arg("show status")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("Permission denied (publickey)"), "{stderr}");
    let password = ssh(&good, address.port())
        .args(["-o", "PreferredAuthentications=password"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&password.stderr);
    assert!(!password.status.success());
    assert!(stderr.contains("Permission denied (publickey)"), "{stderr}");

    // The authorized key gets the console, which asks the admin login as on the serial line.
    let mut pty = log_in("ssh", &good, address.port());
    let status = cmd(&mut pty, "show status");
    assert!(status.contains("uptime"), "{status}");
    pty.line("exit");
    assert!(pty.wait_exit(STEP).success());

    // The audit lines: the refused key, then the login and the logout, with fingerprints.
    let mut pty = log_in("ssh-again", &good, address.port());
    let log = cmd(&mut pty, "show log 200 | match ssh: | no-more");
    let (good, bad) = (fingerprint(&good), fingerprint(&bad));
    assert!(log.contains(&format!("ssh: refused key {bad}")), "{log}");
    assert!(log.contains("from 127.0.0.1:"), "{log}");
    assert!(
        log.contains(&format!("with key {good} (admin@test)")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("ssh: logout from 127.0.0.1:") && l.contains(&good)),
        "{log}"
    );
    assert!(log.contains("host key SHA256:"), "{log}");
    pty.line("exit");
    assert!(pty.wait_exit(STEP).success());
}

/// Turned on from the console by a commit, without a restart; with `login = ""` the key
/// alone logs in, and the console's idle timeout ends an SSH session as it does a serial one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_the_console_turns_ssh_on_and_the_idle_timeout_ends_the_session() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "admin");
    let gw = GatewayProcess::spawn(
        dir.path(),
        backend.addr(),
        "[console]\nidle_timeout = \"3s\"\n",
    );
    let mut serial = Pty::spawn("console", console_command(dir.path()));
    serial.expect_any(PROMPTS, STEP);
    let address = free_port();
    for line in [
        "set ssh enabled true".to_string(),
        format!("set ssh address {address}"),
        format!("set ssh authorized_keys \"{public}\""),
        "set ssh login \"\"".to_string(),
    ] {
        let out = cmd(&mut serial, &line);
        assert!(!out.contains("error"), "{line}: {out}");
    }
    let out = cmd(&mut serial, "commit");
    assert!(out.contains("commit complete"), "{out}");
    wait_listening(address);

    let mut pty = Pty::spawn("ssh", ssh(&key, address.port()));
    pty.expect_any(PROMPTS, STEP);
    assert!(!pty.text().contains("login: "), "asked for a login");
    let status = cmd(&mut pty, "show status");
    assert!(status.contains("uptime"), "{status}");
    pty.expect("idle for 3s: logged out", STEP);
    assert!(pty.wait_exit(STEP).success());

    // Another key committed: the same address is bound again and lets it in.
    let (other, other_public) = keygen(dir.path(), "other");
    let mut serial = Pty::spawn("console-2", console_command(dir.path()));
    serial.expect_any(PROMPTS, STEP);
    let line = format!("set ssh authorized_keys \"{public}\" \"{other_public}\"");
    let out = cmd(&mut serial, &line);
    assert!(!out.contains("error"), "{line}: {out}");
    let out = cmd(&mut serial, "commit");
    assert!(out.contains("commit complete"), "{out}");
    let mut pty = Pty::spawn("ssh-other", ssh(&other, address.port()));
    pty.expect_any(PROMPTS, STEP);
    pty.line("exit");
    assert!(pty.wait_exit(STEP).success());
    drop(gw);
}

/// `edgemx console` on the gateway in `dir`, without a login (a host's console).
fn console_command(dir: &Path) -> Command {
    let mut command = Command::new(edgemx_tests::gateway::binary());
    command
        .arg("console")
        .arg("--socket")
        .arg(dir.join("control.sock"));
    command
}

/// The consoles started for SSH sessions whose control socket is `socket`, by pid.
fn consoles(socket: &Path) -> Vec<u32> {
    let socket = socket.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "console") && args.contains(&socket) {
            found.push(pid);
        }
    }
    found
}

/// A gateway that dies (kill -9) takes its SSH sessions' consoles with it: nothing keeps
/// their terminals open, so they are hung up rather than left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_of_ssh_sessions_end_with_the_gateway() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "admin");
    let address = free_port();
    let extra = format!(
        "[ssh]\nenabled = true\naddress = [\"{address}\"]\nauthorized_keys = [\"{public}\"]\nlogin = \"\"\n"
    );
    let gw = GatewayProcess::spawn(dir.path(), backend.addr(), &extra);
    wait_listening(address);
    let mut first = Pty::spawn("ssh-1", ssh(&key, address.port()));
    first.expect_any(PROMPTS, STEP);
    let mut second = Pty::spawn("ssh-2", ssh(&key, address.port()));
    second.expect_any(PROMPTS, STEP);
    let socket = dir.path().join("control.sock");
    assert_eq!(consoles(&socket).len(), 2, "one console per session");
    gw.kill9();
    let deadline = Instant::now() + STEP;
    while !consoles(&socket).is_empty() {
        assert!(
            Instant::now() < deadline,
            "consoles left running: {:?}",
            consoles(&socket)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    first.wait_exit(STEP);
    second.wait_exit(STEP);
}

/// Before the admin account exists the console would run the first-boot wizard, which
/// belongs to the serial line: an SSH session is told so and ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_account_the_ssh_session_is_sent_to_the_serial_console() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "admin");
    let address = free_port();
    let missing = dir.path().join("no-admin-yet");
    let extra = format!(
        "[ssh]\nenabled = true\naddress = [\"{address}\"]\nauthorized_keys = [\"{public}\"]\nlogin = \"{}\"\n",
        missing.display()
    );
    let _gw = GatewayProcess::spawn(dir.path(), backend.addr(), &extra);
    wait_listening(address);
    let mut pty = Pty::spawn("ssh", ssh(&key, address.port()));
    pty.expect("set one up on the serial console first", STEP);
    assert_eq!(pty.wait_exit(STEP).code(), Some(1));
    assert!(!missing.exists(), "the wizard ran");
}

/// `scripts/run-qemu` forwards host ports it prints to the guest's SSH console and metrics
/// listener, on loopback only (checked on the QEMU command line it would run; booting an
/// image is the boot tests' job).
#[test]
fn run_qemu_forwards_the_ssh_console_and_the_metrics_listener() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let out = Command::new(root.join("scripts/run-qemu"))
        .arg("--dry-run")
        .arg("--disk")
        .arg(&disk)
        .args(["--ssh-port", "40022", "--admin-port", "40025"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (command, said) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(command.contains("restrict=on"), "{command}");
    assert!(
        command.contains(r"hostfwd=tcp:127.0.0.1:40022-:22\,"),
        "{command}"
    );
    assert!(
        command.contains(r"hostfwd=tcp:127.0.0.1:40025-:9025\,"),
        "{command}"
    );
    assert!(said.contains("127.0.0.1:40022"), "{said}");
    assert!(said.contains("127.0.0.1:40025"), "{said}");
}
