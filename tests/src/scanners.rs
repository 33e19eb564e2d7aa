//! The real content scanners, started by a test on loopback: Debian's `rspamd` with a
//! small rule set of our own (marker words, no network, no Redis) and Debian's `clamd`
//! with a database holding one signature we write. Nothing is downloaded. A missing binary
//! fails the test with the package to install (scripts/setup installs both).
//!
//! Each daemon runs in its own process group, killed whole when the handle is dropped (or
//! by [`Daemon::kill`] to play a scanner dying mid-session).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// In a message, rspamd's `reject` (score 20, threshold 15) with this SMTP message.
pub const SPAM: &str = "EDGEMX-TEST-SPAM";
pub const SPAM_MESSAGE: &str = "Spam detected by the edgemx test rules";
/// `add header` (score 7): also asks for `X-Edgemx-Test: suspect` and to remove
/// `X-Remove-Me` (its `milter` block).
pub const SUSPECT: &str = "EDGEMX-TEST-SUSPECT";
/// `soft reject` with the message `try again later (test)`.
pub const LATER: &str = "EDGEMX-TEST-LATER";
/// `rewrite subject`: rspamd answers the subject `*** SPAM *** ` + the original.
pub const SUBJECT: &str = "EDGEMX-TEST-SUBJECT";
/// clamd's test signature `Edgemx.Test.Marker` (reported with `.UNOFFICIAL`).
pub const VIRUS: &str = "EDGEMX-TEST-VIRUS";

const RULES: &str = r#"
local function has(task, word)
  return tostring(task:get_content()):find(word, 1, true) ~= nil
end
rspamd_config:register_symbol({name = 'EDGEMX_SPAM', score = 20.0, callback = function(task)
  if has(task, 'EDGEMX-TEST-SPAM') then
    task:append_message('Spam detected by the edgemx test rules', 'smtp_message')
    return true
  end
  return false
end})
rspamd_config:register_symbol({name = 'EDGEMX_SUSPECT', score = 7.0, callback = function(task)
  if has(task, 'EDGEMX-TEST-SUSPECT') then
    task:set_milter_reply({add_headers = {['X-Edgemx-Test'] = 'suspect'},
                           remove_headers = {['X-Remove-Me'] = 0}})
    return true
  end
  return false
end})
rspamd_config:register_symbol({name = 'EDGEMX_SUBJECT', score = 0.0, callback = function(task)
  if has(task, 'EDGEMX-TEST-SUBJECT') then
    task:set_pre_result('rewrite subject', 'subject rewritten (test)')
    return true
  end
  return false
end})
rspamd_config:register_symbol({name = 'EDGEMX_LATER', score = 0.0, callback = function(task)
  if has(task, 'EDGEMX-TEST-LATER') then
    task:set_pre_result('soft reject', 'try again later (test)')
    return true
  end
  return false
end})
"#;

/// A scanner daemon the test started.
pub struct Daemon {
    /// Where it listens on loopback (`127.0.0.1:0` when only on a Unix socket).
    pub addr: SocketAddr,
    /// clamd's Unix socket, when started with one.
    pub socket: Option<PathBuf>,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    log: PathBuf,
}

fn require(binary: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let path = Path::new(dir).join(binary);
        if path.exists() {
            return path;
        }
    }
    panic!("{binary} not found: install Debian's `{package}` package (scripts/setup installs it)");
}

fn spawn(mut command: Command, dir: &Path) -> Child {
    let out = std::fs::File::create(dir.join("stdout.log")).expect("log file");
    let err = out.try_clone().expect("log file");
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    command.spawn().expect("start scanner")
}

impl Daemon {
    /// rspamd's normal worker on a free loopback port, with the rules above; returns once
    /// it answers `/ping`.
    pub fn rspamd() -> Daemon {
        let binary = require("rspamd", "rspamd");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let addr = crate::gateway::free_port();
        std::fs::write(d.join("rules.lua"), RULES).expect("rules");
        // A short public-suffix list: rspamd compiles the full one for seconds at start.
        std::fs::write(d.join("tld.dat"), "com\nnet\norg\ntest\nexample\n").expect("tld");
        let conf = format!(
            r#"options {{
  pidfile = "{d}/rspamd.pid";
  url_tld = "{d}/tld.dat";
  dns {{ nameserver = ["127.0.0.1:1"]; timeout = 0.1; retransmits = 0; }}
}}
logging {{ type = "file"; filename = "{d}/rspamd.log"; level = "info"; }}
actions {{ reject = 15; add_header = 6; greylist = 4; }}
worker "normal" {{ bind_socket = "{addr}"; count = 1; }}
lua = "{d}/rules.lua";
"#,
            d = d.display()
        );
        std::fs::write(d.join("rspamd.conf"), conf).expect("config");
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .expect("current user");
        let group = nix::unistd::Group::from_gid(nix::unistd::getgid())
            .ok()
            .flatten()
            .expect("current group");
        let mut command = Command::new(binary);
        command
            .arg("-f")
            .arg("-c")
            .arg(d.join("rspamd.conf"))
            .args(["-u", &user.name, "-g", &group.name])
            .arg("--var")
            .arg(format!("DBDIR={}", d.display()))
            .arg("--var")
            .arg(format!("RUNDIR={}", d.display()));
        if nix::unistd::getuid().is_root() {
            // rspamd refuses to run workers as root without it.
            command.arg("-i");
        }
        let child = spawn(command, d);
        let mut daemon = Daemon {
            addr,
            socket: None,
            log: d.join("rspamd.log"),
            dir,
            child: Some(child),
        };
        daemon.wait_until(|| http_ping(addr));
        daemon
    }

    /// clamd on a free loopback port with one signature: [`VIRUS`] anywhere in the stream.
    /// `stream_max` is its `StreamMaxLength`.
    pub fn clamd(stream_max: &str) -> Daemon {
        Self::clamd_listening(stream_max, false)
    }

    /// clamd on a Unix socket in its directory ([`Daemon::socket`]) only.
    pub fn clamd_unix() -> Daemon {
        Self::clamd_listening("1M", true)
    }

    fn clamd_listening(stream_max: &str, unix: bool) -> Daemon {
        let binary = require("clamd", "clamav-daemon");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let db = d.join("db");
        std::fs::create_dir(&db).expect("db dir");
        let hex: String = VIRUS.bytes().map(|b| format!("{b:02x}")).collect();
        std::fs::write(
            db.join("edgemx.ndb"),
            format!("Edgemx.Test.Marker:0:*:{hex}\n"),
        )
        .expect("signature");
        let (addr, socket) = match unix {
            true => (
                SocketAddr::from(([127, 0, 0, 1], 0)),
                Some(d.join("clamd.sock")),
            ),
            false => (crate::gateway::free_port(), None),
        };
        let listen = match &socket {
            Some(path) => format!("LocalSocket {}\n", path.display()),
            None => format!("TCPSocket {}\nTCPAddr 127.0.0.1\n", addr.port()),
        };
        let conf = format!(
            "Foreground yes\n{listen}DatabaseDirectory {db}\n\
             LogFile {d}/clamd.log\nStreamMaxLength {stream_max}\n",
            db = db.display(),
            d = d.display(),
        );
        std::fs::write(d.join("clamd.conf"), conf).expect("config");
        let mut command = Command::new(binary);
        command
            .arg("--foreground")
            .arg(format!("--config-file={}", d.join("clamd.conf").display()));
        let child = spawn(command, d);
        let mut daemon = Daemon {
            addr,
            socket: socket.clone(),
            log: d.join("clamd.log"),
            dir,
            child: Some(child),
        };
        match socket {
            Some(path) => daemon.wait_until(|| {
                std::os::unix::net::UnixStream::connect(&path).is_ok_and(clamd_ping)
            }),
            None => daemon.wait_until(|| std::net::TcpStream::connect(addr).is_ok_and(clamd_ping)),
        }
        daemon
    }

    /// Polls `ready` until it holds; fails with the daemon's logs if the daemon exits or
    /// a minute passes (a ceiling: both start in about a second).
    fn wait_until(&mut self, ready: impl Fn() -> bool) {
        let started = Instant::now();
        loop {
            if ready() {
                return;
            }
            let child = self.child.as_mut().expect("running");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("scanner exited during start ({status}):\n{}", self.logs());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "scanner on {} not ready after a minute:\n{}",
                self.addr,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        let out = std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("{out}\n{log}")
    }

    /// SIGKILL to the daemon and its workers; returns once the main process is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn http_ping(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200") && reply.contains("pong")
}

fn clamd_ping<S: std::io::Read + std::io::Write>(mut s: S) -> bool {
    if s.write_all(b"zPING\0").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    reply.starts_with(b"PONG")
}

/// A stand-in scanner of our own for what the real ones do not do on demand: it accepts
/// connections on loopback and answers each with `reply` after reading a little (garbage,
/// a reply cut short), or never answers (`None`: slow).
pub async fn fake_scanner(reply: Option<&'static [u8]>) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                match reply {
                    Some(bytes) => {
                        let _ = stream.write_all(bytes).await;
                        let _ = stream.shutdown().await;
                    }
                    // Hold the connection open without answering until the client leaves.
                    None => while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {},
                }
            });
        }
    });
    addr
}

/// A stand-in rspamd that answers `no action` only once `n` requests are waiting at the
/// same time: scans that run concurrently pass, scans that were serialised wait for ever
/// (and meet their timeout).
pub async fn rspamd_needing_concurrent(n: usize) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // The whole request: its head, then Content-Length bytes.
                loop {
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text
                            .split("content-length: ")
                            .nth(1)
                            .and_then(|r| r.split("\r\n").next())
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                barrier.wait().await;
                let body = r#"{"action":"no action","score":0.0,"required_score":15.0}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}
