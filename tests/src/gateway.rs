//! Starting the gateway under test: in-process (fast, for protocol scenarios) or as a child
//! process of the real binary (for kill -9, restart and signal scenarios).

use edgemx::config::{Config, Role};
use edgemx::server::{self, Bound};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The configuration every scenario starts from: `example.com` relayed to `backend`.
/// `extra` is appended verbatim (tables such as `[limits]`), `{data_dir}` is replaced.
/// Unless `extra` has its own `[admin]`, the admin listener gets a free port, so gateway
/// processes running side by side do not fight over the default 127.0.0.1:9025.
pub fn config_text(
    data_dir: &Path,
    listen: SocketAddr,
    backend: SocketAddr,
    extra: &str,
) -> String {
    let admin = if extra.contains("[admin") {
        String::new()
    } else {
        format!("[admin]\naddress = \"{}\"\n", free_port())
    };
    let auth = no_checks(extra);
    let log = if extra.contains("[log]") {
        String::new()
    } else {
        format!("[log]\nlevel = \"{}\"\ntarget = \"stderr\"\n", log_level())
    };
    format!(
        r#"hostname = "gateway.test"
data_dir = "{data}"

[[listener]]
address = "{listen}"

[[domain]]
name = "example.com"
next_hops = ["{backend}"]

{log}
{extra}
{admin}{auth}"#,
        data = data_dir.display(),
    )
    .replace("{data_dir}", &data_dir.display().to_string())
    .replace("{listen_port}", &listen.port().to_string())
}

/// `[auth] verify = false` unless the scenario configures `[auth]` itself: checks are on by
/// default and need DNS, and tests without their own loopback DNS server must ask nothing.
pub fn no_checks(extra: &str) -> &'static str {
    match extra.contains("[auth") {
        true => "",
        false => "[auth]\nverify = false\n",
    }
}

/// A gateway running inside the test's own runtime.
pub struct Gateway {
    pub addr: SocketAddr,
    /// One address per listener, in the order of the roles asked for (`addr` is the first).
    pub addrs: Vec<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub config: Config,
    /// The admin HTTP listener (`/metrics`, `/healthz`) of this gateway alone.
    pub admin: SocketAddr,
    /// The gateway's event bus: a scenario publishes what a part not under test would.
    pub events: edgemx::observe::events::Events,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), server::StartError>>,
}

impl Gateway {
    /// Starts a gateway relaying `example.com` to `backend`, with `extra` configuration.
    pub async fn start(backend: SocketAddr, extra: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, backend, extra).await
    }

    pub async fn start_in(dir: tempfile::TempDir, backend: SocketAddr, extra: &str) -> Gateway {
        Self::start_with(dir, &[Role::Mx], |dir, addr| {
            config_text(dir, addr, backend, extra)
        })
        .await
    }

    /// Like `start`, with one STARTTLS listener on 127.0.0.1 per role (e.g. MX and
    /// submission).
    pub async fn start_roles(backend: SocketAddr, extra: &str, roles: &[Role]) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_with(dir, roles, |dir, addr| {
            config_text(dir, addr, backend, extra)
        })
        .await
    }

    /// Starts a gateway whose configuration is the common head (hostname, data_dir,
    /// listener, log) and `body`, without the standard `example.com` domain: for scenarios
    /// that bring their own domains and routes. `{data_dir}` in `body` is replaced.
    pub async fn start_bare(dir: tempfile::TempDir, body: &str) -> Gateway {
        Self::start_with(dir, &[Role::Mx], |dir, addr| {
            format!(
                "hostname = \"gateway.test\"\ndata_dir = \"{data}\"\n\n[[listener]]\naddress = \"{addr}\"\n\n[log]\nlevel = \"{level}\"\ntarget = \"stderr\"\n\n{body}\n{auth}",
                data = dir.display(),
                level = log_level(),
                auth = no_checks(body),
            )
            .replace("{data_dir}", &dir.display().to_string())
        })
        .await
    }

    /// One listener per role is bound; `text` builds the configuration from the data
    /// directory and the first listener's address.
    async fn start_with(
        dir: tempfile::TempDir,
        roles: &[Role],
        text: impl FnOnce(&Path, SocketAddr) -> String,
    ) -> Gateway {
        init_logging();
        let mut bound = Vec::new();
        let mut addrs = Vec::new();
        for role in roles {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addrs.push(listener.local_addr().expect("addr"));
            bound.push(Bound {
                listener,
                starttls: true,
                role: *role,
            });
        }
        let addr = addrs[0];
        let text = text(dir.path(), addr);
        let config =
            edgemx::loader::parse(&text).unwrap_or_else(|e| panic!("test config invalid: {e:?}"));
        let shutdown = CancellationToken::new();
        let admin_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind admin");
        let admin = admin_listener.local_addr().expect("admin addr");
        let events = edgemx::observe::events::Events::new();
        let task = tokio::spawn(server::run_with_events(
            config.clone(),
            bound,
            Some(admin_listener),
            shutdown.clone(),
            events.clone(),
        ));
        Gateway {
            addr,
            addrs,
            dir,
            config,
            admin,
            events,
            shutdown,
            task,
        }
    }

    /// Triggers the shutdown path and waits for `run` to return.
    pub async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        match tokio::time::timeout(Duration::from_secs(60), self.task).await {
            Ok(Ok(Ok(()))) => {}
            other => panic!("gateway did not stop cleanly: {other:?}"),
        }
        self.dir
    }

    /// This gateway's metrics, as a scraper reads them.
    pub async fn metrics(&self) -> String {
        crate::admin::scrape(self.admin).await
    }

    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Runs `edgemx queue …` style requests against the control socket.
    pub fn control(&self) -> edgemx::control::ControlClient {
        edgemx::control::ControlClient::connect(&self.config.control_socket())
            .expect("control socket")
    }
}

/// `EDGEMX_TEST_LOG=debug` shows the gateway's log while tests run; warnings otherwise.
fn log_level() -> String {
    std::env::var("EDGEMX_TEST_LOG").unwrap_or_else(|_| "warn".into())
}

fn init_logging() {
    let config = edgemx::config::Log {
        level: log_level(),
        target: "stderr".into(),
        ..Default::default()
    };
    edgemx::observe::init(&config, "gateway.test", std::path::Path::new("."), false);
}

/// The real binary as a child process.
pub struct GatewayProcess {
    pub addr: SocketAddr,
    pub config_path: PathBuf,
    child: Child,
}

/// The `edgemx-gw` binary of this crate. Cargo builds it for integration tests and puts it
/// beside the `deps/` folder holding the test executables.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("edgemx-gw");
    assert!(
        bin.exists(),
        "{} not built; run the tests with cargo test",
        bin.display()
    );
    bin
}

/// A port that was free a moment ago (for configs the child process binds itself).
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

impl GatewayProcess {
    /// Writes the standard configuration (see [`config_text`]) with `extra` and a free
    /// port to `dir/edgemx.toml`, starts `edgemx serve` and waits for its banner.
    pub fn spawn(dir: &Path, backend: SocketAddr, extra: &str) -> GatewayProcess {
        Self::spawn_with(dir, backend, extra, |_| {})
    }

    /// Like `spawn`, with a hook to adjust the command (e.g. resource limits).
    pub fn spawn_with(
        dir: &Path,
        backend: SocketAddr,
        extra: &str,
        adjust: impl FnOnce(&mut Command),
    ) -> GatewayProcess {
        let addr = free_port();
        let config_path = dir.join("edgemx.toml");
        let config = config_text(dir, addr, backend, extra);
        std::fs::write(&config_path, config).expect("write config");
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null());
        adjust(&mut command);
        let child = command.spawn().expect("spawn edgemx");
        let mut process = GatewayProcess {
            addr,
            config_path,
            child,
        };
        process.wait_ready(Duration::from_secs(60));
        process
    }

    fn wait_ready(&mut self, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("edgemx exited during start: {status}");
            }
            if let Ok(stream) = std::net::TcpStream::connect(self.addr) {
                use std::io::Read;
                let mut banner = [0u8; 3];
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                if (&stream).read_exact(&mut banner).is_ok() && &banner == b"220" {
                    return;
                }
            }
            assert!(
                started.elapsed() < limit,
                "edgemx did not answer on {} within {limit:?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "edgemx did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a CLI subcommand of the same binary against this gateway's configuration.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .output()
            .expect("run edgemx")
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
