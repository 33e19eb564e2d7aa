//! The operator console over SSH (`[ssh]`, off by default): an SSH server inside the
//! gateway that lets in the public keys of `ssh.authorized_keys` and nothing else (no
//! passwords over SSH), and runs the same console as the serial line on a PTY per session
//! — the admin login, the idle timeout and every command are the console's own.
//!
//! Owns the SSH listeners, the host key (`data_dir/ssh/host_ed25519`) and the audit lines
//! of logins, logouts and refused keys. It follows the applied configuration, so turning
//! it on from the serial console is a `commit`. It reaches the gateway only as the console
//! does, through the control socket; it must not touch the data path.
//!
//! # Layout
//!
//! | file | job |
//! | --- | --- |
//! | `hostkey` | the host key: generated once, loaded after |
//! | `client` | one connection: key authentication, channels, the audit lines |
//! | `shell` | one channel's console on a pseudo-terminal |

mod client;
mod hostkey;
mod shell;

use crate::config::Config;
use crate::config::ssh::Ssh;
use client::{Client, Shared};
use russh::MethodKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A connection that has not logged in by then is closed (OpenSSH's `LoginGraceTime`).
const LOGIN_GRACE: Duration = Duration::from_secs(60);

/// Serves `[ssh]` as the applied configuration says, until `shutdown`; then every SSH
/// session is disconnected (its console hung up). `appliance`: consoles get `--appliance`
/// (reboot, poweroff, factory-reset, the firmware slot), as init's serial one does.
pub async fn follow(
    mut applied: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
    appliance: bool,
) {
    let sessions = shutdown.child_token();
    let mut current: Option<(Ssh, CancellationToken, Vec<JoinHandle<()>>)> = None;
    loop {
        let config = applied.borrow_and_update().clone();
        if current.as_ref().map(|(ssh, _, _)| ssh) != Some(&config.ssh) {
            if let Some((_, stop, accepting)) = current.take() {
                // The old listeners are closed before the new ones bind the same addresses.
                stop.cancel();
                for task in accepting {
                    if let Err(e) = task.await {
                        log::error!("ssh: accept loop failed: {e}");
                    }
                }
            }
            let stop = sessions.child_token();
            let mut accepting = Vec::new();
            if config.ssh.enabled {
                match start(&config, appliance, stop.clone(), sessions.clone()).await {
                    Ok(tasks) => accepting = tasks,
                    Err(e) => log::error!("ssh: not started: {e}"),
                }
            }
            current = Some((config.ssh.clone(), stop, accepting));
        }
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { break },
            () = shutdown.cancelled() => break,
        }
    }
    sessions.cancel();
    for task in current.into_iter().flat_map(|(_, _, accepting)| accepting) {
        if let Err(e) = task.await {
            log::error!("ssh: accept loop failed: {e}");
        }
    }
}

/// Binds every `ssh.address` and accepts on each until `stop` (open sessions go on until
/// `sessions` ends them); the accept loops' tasks.
async fn start(
    config: &Config,
    appliance: bool,
    stop: CancellationToken,
    sessions: CancellationToken,
) -> Result<Vec<JoinHandle<()>>, String> {
    let path = host_key_path(config);
    let (key, generated) = hostkey::load_or_generate(&path)?;
    let print = hostkey::fingerprint(key.public_key());
    if generated {
        log::info!("ssh: generated host key {} ({print})", path.display());
    }
    let server = Arc::new(russh::server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-edgemx".into()),
        methods: (&[MethodKind::PublicKey][..]).into(),
        keys: vec![key],
        auth_rejection_time: Duration::from_secs(1),
        auth_rejection_time_initial: Some(Duration::ZERO),
        // The console logs an idle session out itself (`console.idle_timeout`); keepalives
        // only find peers that are gone.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(60)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    });
    let shared = Arc::new(Shared {
        ssh: config.ssh.clone(),
        socket: config.control_socket(),
        appliance,
    });
    // One budget for every address, taken before accept: a flood of unauthenticated
    // connections stops accepting (for at most LOGIN_GRACE each) instead of piling up.
    let permits = Arc::new(Semaphore::new(config.ssh.max_connections));
    let mut listeners = Vec::new();
    for address in &config.ssh.address {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| format!("ssh.address {address}: {e}"))?;
        listeners.push(listener);
    }
    let mut tasks = Vec::new();
    for listener in listeners {
        if let Ok(addr) = listener.local_addr() {
            log::info!("ssh: console listening on {addr}, host key {print}");
        }
        tasks.push(tokio::spawn(accept(
            listener,
            permits.clone(),
            server.clone(),
            shared.clone(),
            stop.clone(),
            sessions.clone(),
        )));
    }
    Ok(tasks)
}

/// `data_dir/ssh/host_ed25519`.
pub fn host_key_path(config: &Config) -> PathBuf {
    config.data_dir.join("ssh").join("host_ed25519")
}

async fn accept(
    listener: TcpListener,
    permits: Arc<Semaphore>,
    server: Arc<russh::server::Config>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    sessions: CancellationToken,
) {
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => return,
            },
            () = stop.cancelled() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    log::warn!("ssh: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let client = Client::new(Some(peer), shared.clone());
        let serving = serve(stream, client, server.clone(), sessions.clone());
        tokio::spawn(async move {
            serving.await;
            drop(permit);
        });
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    client: Client,
    server: Arc<russh::server::Config>,
    sessions: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let authenticated = client.authenticated.clone();
    let session = match russh::server::run_stream(server, stream, client).await {
        Ok(session) => session,
        Err(e) => {
            log::debug!("ssh: handshake: {e}");
            return;
        }
    };
    let handle = session.handle();
    let grace = async {
        tokio::time::sleep(LOGIN_GRACE).await;
        if authenticated.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
    };
    let reason = tokio::select! {
        ended = session => {
            if let Err(e) = ended {
                log::debug!("ssh: session: {e}");
            }
            return;
        }
        () = sessions.cancelled() => "the gateway is shutting down",
        () = grace => "no login in time",
    };
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, reason.into(), "en".into())
        .await;
}
