//! The gateway assembled: queue, delivery, control socket and listeners started in order,
//! and one shutdown path with a deadline.
//!
//! Library callers (the `edgemx serve` command and the scenario tests) bind their listeners
//! first and hand them in, so tests can use `127.0.0.1:0` and learn the port.

use crate::config::Config;
use crate::control;
use crate::delivery;
use crate::queue::{Queue, QueueError};
use crate::smtp::inbound::{self, Context};
use crate::tls::{self, TlsError};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("control socket {path}: {reason}")]
    Control { path: String, reason: String },
    #[error("routing: {0}")]
    Routing(String),
}

/// A listener already bound, whether it offers STARTTLS, and what it is for.
pub struct Bound {
    pub listener: TcpListener,
    pub starttls: bool,
    pub role: crate::config::Role,
}

/// Runs the gateway until `shutdown` fires, then stops it cleanly: no new connections,
/// `421` to idle sessions, messages in DATA finished or refused within
/// `limits.shutdown_timeout`, deliveries stopped, queue committed and closed.
pub async fn run(
    config: Config,
    listeners: Vec<Bound>,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let config = Arc::new(config);
    prepare_data_dir(&config)?;
    let server_tls = tls::server(&config)?;
    if server_tls.generated {
        log::info!(
            "generated a self-signed ECDSA P-256 certificate: {}",
            server_tls.certificate.display()
        );
    }
    let queue_path = config.queue_path();
    let (queue, resumed) = {
        let (path, settings) = (queue_path.clone(), config.queue.clone());
        tokio::task::spawn_blocking(move || Queue::open(&path, &settings))
            .await
            .map_err(|e| StartError::Queue(QueueError::Storage(e.to_string())))??
    };
    log::info!(
        "queue {} opened with {} messages",
        queue_path.display(),
        resumed.len()
    );
    let deliveries = delivery::start(
        config.clone(),
        queue.clone(),
        resumed,
        shutdown.child_token(),
    );
    let control =
        control::Server::bind(&config.control_socket(), queue.clone(), deliveries.clone())
            .map_err(|e| StartError::Control {
                path: config.control_socket().display().to_string(),
                reason: e.to_string(),
            })?;
    let control_task = tokio::spawn(control.serve(shutdown.clone()));
    let recipients = routing(&config, &shutdown)?;
    let ctx = Context::new(
        config.clone(),
        queue.clone(),
        recipients,
        Some(server_tls.config),
        shutdown.clone(),
    );
    let mut accept_tasks = Vec::new();
    for bound in listeners {
        if let Ok(addr) = bound.listener.local_addr() {
            log::info!("SMTP listening on {addr}");
        }
        accept_tasks.push(tokio::spawn(inbound::serve(
            ctx.clone(),
            bound.listener,
            bound.starttls,
            bound.role,
        )));
    }

    shutdown.cancelled().await;
    log::info!("shutting down: no new connections, finishing messages in progress");
    for task in accept_tasks {
        let _ = task.await;
    }
    let deadline = config.limits.shutdown_timeout.0;
    ctx.sessions.close();
    if tokio::time::timeout(deadline, ctx.sessions.wait())
        .await
        .is_err()
    {
        log::warn!(
            "{} sessions still busy after {:?}; closing them without a reply (nothing they sent was acknowledged)",
            ctx.limiter.open(),
            deadline
        );
    }
    if tokio::time::timeout(deadline, deliveries.stopped())
        .await
        .is_err()
    {
        log::warn!("deliveries still running after {deadline:?}; abandoned (they will be retried)");
    }
    let _ = control_task.await;
    queue.close().await;
    let _ = std::fs::remove_file(config.control_socket());
    log::info!("stopped");
    Ok(())
}

/// The route table, the address files (watched for changes until shutdown) and recipient
/// validation.
fn routing(
    config: &Arc<Config>,
    shutdown: &CancellationToken,
) -> Result<Arc<crate::policy::Recipients>, StartError> {
    use crate::routing::{Maps, Table};
    let table = Arc::new(Table::new(config));
    let maps = Maps::load(table.clone(), config).map_err(|e| StartError::Routing(e.to_string()))?;
    let maps = Arc::new(maps);
    let interval = config.routing.reload_interval.0;
    tokio::spawn(maps.clone().watch(interval, shutdown.clone()));
    Ok(Arc::new(crate::policy::Recipients::new(
        config, table, maps,
    )))
}

fn prepare_data_dir(config: &Config) -> Result<(), StartError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = &config.data_dir;
    let err = |e: std::io::Error| StartError::DataDir {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    Ok(())
}

/// Fires `shutdown` on the first SIGTERM or SIGINT.
pub async fn on_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        log::error!("cannot install signal handlers; stop the gateway with SIGKILL");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    log::info!("{name} received");
    shutdown.cancel();
}
