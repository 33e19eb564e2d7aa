//! The gateway assembled: queue, delivery, control socket and listeners started in order,
//! and one shutdown path with a deadline.
//!
//! Library callers (the `edgemx serve` command and the scenario tests) bind their listeners
//! first and hand them in, so tests can use `127.0.0.1:0` and learn the port.

use crate::config::Config;
use crate::control;
use crate::delivery;
use crate::observe;
use crate::observe::events::Events;
use crate::observe::metrics::Metrics;
use crate::probe::Probes;
use crate::queue::{Queue, QueueError};
use crate::smtp::inbound::{Context, Parts};
use crate::tls::{self, TlsError};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
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
    #[error("admin listener: {0}")]
    Admin(std::io::Error),
    #[error("routing: {0}")]
    Routing(String),
    #[error(transparent)]
    Dkim(#[from] crate::dkim::KeyError),
    /// A part of the running gateway ended by itself (a panic, a listener that died); the
    /// gateway shut down cleanly and says so with a non-zero exit.
    #[error("stopped because {0}")]
    Failed(String),
}

mod reload;

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
    run_with_admin(config, listeners, None, shutdown, false).await
}

/// [`run`], with the admin HTTP listener (`/metrics`, `/healthz`) on `admin` when given.
/// It keeps answering through the shutdown (with `503` on `/healthz`) until the queue is
/// closed. `appliance`: the image's init runs us, so SSH consoles get the appliance's
/// commands (reboot, the firmware slot) as the serial one does.
pub async fn run_with_admin(
    config: Config,
    listeners: Vec<Bound>,
    admin: Option<std::net::TcpListener>,
    shutdown: CancellationToken,
    appliance: bool,
) -> Result<(), StartError> {
    let events = Events::new();
    assemble(config, listeners, admin, shutdown, events, appliance).await
}

/// [`run_with_admin`] publishing on `events`, a bus without subscribers yet: scenario
/// tests publish what a part not under test would (a TLS policy outcome) and watch.
pub async fn run_with_events(
    config: Config,
    listeners: Vec<Bound>,
    admin: Option<std::net::TcpListener>,
    shutdown: CancellationToken,
    events: Events,
) -> Result<(), StartError> {
    assemble(config, listeners, admin, shutdown, events, false).await
}

async fn assemble(
    config: Config,
    listeners: Vec<Bound>,
    admin: Option<std::net::TcpListener>,
    shutdown: CancellationToken,
    events: Events,
    appliance: bool,
) -> Result<(), StartError> {
    let config = Arc::new(config);
    prepare_data_dir(&config)?;
    let server_tls = tls::server(&config)?;
    // What happened on the data path is published here; the registry and the probes
    // subscribe before anything can publish.
    let metrics = Metrics::new();
    metrics.count(&events);
    let probes = Probes::new(metrics.clone(), &events);
    let mail_auth = crate::policy::auth::MailAuth::load(&config)?.publishing(&events);
    if server_tls.generated {
        log::info!(
            "generated a self-signed ECDSA P-256 certificate: {}",
            server_tls.certificate.display()
        );
    }
    if let Some(rsa) = &server_tls.rsa_certificate {
        log::info!(
            "serving {} to clients without ECDSA, {} to the others",
            rsa.display(),
            server_tls.certificate.display()
        );
    }
    let queue_path = config.queue_path();
    let (queue, resumed) = {
        let (path, settings) = (queue_path.clone(), config.queue.clone());
        let mut backlog = delivery::Backlog::new(&config);
        tokio::task::spawn_blocking(move || {
            Queue::open_each(&path, &settings, &mut |env| backlog.push(env)).map(|q| (q, backlog))
        })
        .await
        .map_err(|e| StartError::Queue(QueueError::Io(e.to_string())))??
    };
    log::info!(
        "queue {} opened with {} messages",
        queue_path.display(),
        resumed.len()
    );
    // The live configuration: console commits publish here; `reload` applies it.
    let (live, live_rx) = watch::channel(config.clone());
    let (applied, applied_rx) = watch::channel(config.clone());
    // Counting starts before the listeners and delivery can publish anything.
    let reports = crate::report::Reports::start(queue.clone(), &events, applied_rx.clone()).await;
    let recipients = crate::policy::Recipients::start(&config, &events, &shutdown)
        .map_err(|e| StartError::Routing(e.to_string()))?;
    // One budget for message bytes: received and not yet queued, or read for delivery.
    let inflight = Context::budget(&config);
    let budget = delivery::Budget::shared(inflight.clone(), config.limits.inflight_bytes.0);
    let deliveries = delivery::start(
        config.clone(),
        queue.clone(),
        resumed,
        budget,
        &events,
        shutdown.child_token(),
    );
    let ctx = Context::new(
        config.clone(),
        Parts {
            queue: queue.clone(),
            recipients,
            tls: Some(server_tls.config),
            shutdown: shutdown.clone(),
            mail_auth,
            inflight,
            deliveries: deliveries.clone(),
            scanner: crate::scan::Scanner::new(&config.scan, &events),
            events: events.clone(),
        },
    );
    let admin = match admin {
        Some(listener) => {
            let view = observe::scrape::View {
                config: config.clone(),
                queue: queue.clone(),
                connections: {
                    let limiter = ctx.limiter.clone();
                    Arc::new(move || limiter.open())
                },
                shutdown: shutdown.clone(),
                metrics,
                probe_waiting: {
                    let probes = probes.clone();
                    Arc::new(move || probes.waiting())
                },
                depths: {
                    let deliveries = deliveries.clone();
                    observe::scrape::depths(move || {
                        let deliveries = deliveries.clone();
                        async move { deliveries.depths().await }
                    })
                },
            };
            Some(observe::http::start(listener, view).map_err(StartError::Admin)?)
        }
        None => None,
    };
    probes.start(config.clone(), &shutdown);
    tokio::spawn(probes_follow(
        probes.clone(),
        applied_rx.clone(),
        shutdown.clone(),
    ));
    let applied_config = applied_rx.clone();
    let console_admin = control::Admin::new(
        live,
        applied_rx,
        queue.clone(),
        ctx.limiter.clone(),
        shutdown.clone(),
        crate::scan::status::Recent::watch(&events),
        deliveries.clone(),
    )
    .with_reports(Arc::new(reports.clone()));
    let control = control::Server::bind(
        &config.control_socket(),
        queue.clone(),
        deliveries.clone(),
        console_admin,
        probes,
    )
    .map_err(|e| StartError::Control {
        path: config.control_socket().display().to_string(),
        reason: e.to_string(),
    })?;
    let mut control_task = Some(tokio::spawn(control.serve(shutdown.clone())));
    // Started once nothing below can fail, so the shutdown path always joins it.
    let reporting = tokio::spawn(reports.serve(shutdown.clone()));
    let ssh = tokio::spawn(crate::ssh::follow(
        applied_config.clone(),
        shutdown.clone(),
        appliance,
    ));
    let expiring = tokio::spawn(delivery::quarantine::expire(
        queue.clone(),
        deliveries.clone(),
        applied_config,
        shutdown.clone(),
    ));
    let mut reloader = reload::Reloader::new(ctx.clone(), deliveries.clone(), applied);
    for bound in listeners {
        reloader.adopt(bound);
    }
    let mut accepting = Some(tokio::spawn(reloader.follow(live_rx, shutdown.clone())));

    let failed = first_failure(
        &shutdown,
        &mut accepting,
        &mut control_task,
        deliveries.ended(),
    )
    .await;
    log::info!("shutting down: no new connections, finishing messages in progress");
    // One deadline for everything that waits on a peer (listeners, sessions, deliveries,
    // the control socket, the admin listener); only the queue's last commit is awaited
    // whatever it takes, since it is what makes a 250 true.
    let deadline = config.limits.shutdown_timeout.0;
    let until = tokio::time::Instant::now() + deadline;
    join_by("SMTP listeners", until, accepting).await;
    ctx.sessions.close();
    if tokio::time::timeout_at(until, ctx.sessions.wait())
        .await
        .is_err()
    {
        log::warn!(
            "{} sessions still busy after {:?}; closing them without a reply (nothing they sent was acknowledged)",
            ctx.limiter.open(),
            deadline
        );
    }
    if tokio::time::timeout_at(until, deliveries.stopped())
        .await
        .is_err()
    {
        log::warn!("deliveries still running after {deadline:?}; abandoned (they will be retried)");
    }
    join_by("control socket", until, control_task).await;
    join_by("ssh", until, Some(ssh)).await;
    join_by("quarantine expiry", until, Some(expiring)).await;
    // Its last flush goes through the queue: before the queue closes.
    join_by("reports", until, Some(reporting)).await;
    queue.close().await;
    if let Some(admin) = admin
        && tokio::time::timeout_at(until, admin.stop()).await.is_err()
    {
        log::warn!("admin HTTP listener still running at the shutdown deadline; left behind");
    }
    let _ = std::fs::remove_file(config.control_socket());
    log::info!("stopped");
    match failed {
        None => Ok(()),
        Some(why) => Err(StartError::Failed(why)),
    }
}

/// Restarts the probes with every configuration applied, so a commit's probes, host name
/// and TLS policies are what is probed from then on.
async fn probes_follow(
    probes: Arc<Probes>,
    mut applied: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = applied.changed() => if changed.is_err() { return },
        }
        let config = applied.borrow_and_update().clone();
        probes.start(config, &shutdown);
    }
}

/// Until the shutdown, every part runs for good: one that ends by itself (a panic, a
/// listener loop that died) starts the shutdown, so the gateway never goes on without
/// accepting or delivering, and the exit status says it failed. Returns why, or `None`
/// when the shutdown came first.
async fn first_failure(
    shutdown: &CancellationToken,
    accepting: &mut Option<tokio::task::JoinHandle<()>>,
    control: &mut Option<tokio::task::JoinHandle<()>>,
    deliveries_ended: impl std::future::Future<Output = ()>,
) -> Option<String> {
    let failed = tokio::select! {
        // Every part ends at shutdown too: the shutdown is seen first.
        biased;
        _ = shutdown.cancelled() => None,
        how = until_ended(accepting) => Some(format!("the SMTP listeners ended ({how})")),
        how = until_ended(control) => Some(format!("the control socket ended ({how})")),
        _ = deliveries_ended => Some("the delivery scheduler ended".to_string()),
    };
    if let Some(why) = &failed {
        log::error!("{why}; shutting down");
        shutdown.cancel();
    }
    failed
}

/// Waits for the task in `slot` to end and takes it out (so it is not awaited twice);
/// says how it ended. Pending for ever when the slot is empty.
async fn until_ended(slot: &mut Option<tokio::task::JoinHandle<()>>) -> String {
    let Some(task) = slot.as_mut() else {
        return std::future::pending().await;
    };
    let ended = match task.await {
        Ok(()) => "returned".to_string(),
        Err(e) if e.is_panic() => "panicked".to_string(),
        Err(e) => e.to_string(),
    };
    *slot = None;
    ended
}

/// Awaits a task until the shutdown deadline: a panic is logged as an error (it is not
/// silently dropped), a task still running then is left behind with a warning. An empty
/// slot (the task ended before the shutdown) is nothing to wait for.
async fn join_by(
    what: &str,
    until: tokio::time::Instant,
    task: Option<tokio::task::JoinHandle<()>>,
) {
    let Some(task) = task else { return };
    match tokio::time::timeout_at(until, task).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::error!("{what}: task failed during shutdown: {e}"),
        Err(_) => log::warn!("{what} still running at the shutdown deadline; left behind"),
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn a_part_that_ends_before_the_shutdown_starts_it_and_is_named() {
        use tokio_util::sync::CancellationToken;
        let shutdown = CancellationToken::new();
        let mut accepting = Some(tokio::spawn(async { panic!("listener loop broke") }));
        let mut control = Some(tokio::spawn(std::future::pending::<()>()));
        let why = super::first_failure(
            &shutdown,
            &mut accepting,
            &mut control,
            std::future::pending(),
        )
        .await;
        assert_eq!(why.as_deref(), Some("the SMTP listeners ended (panicked)"));
        assert!(shutdown.is_cancelled(), "the failure starts the shutdown");
        assert!(accepting.is_none(), "the ended task is not awaited again");
        assert!(control.is_some());
        // The scheduler ending is a failure too; a shutdown that comes first is not.
        let shutdown = CancellationToken::new();
        let (mut a, mut c) = (None, None);
        let why = super::first_failure(&shutdown, &mut a, &mut c, async {}).await;
        assert_eq!(why.as_deref(), Some("the delivery scheduler ended"));
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let mut c = Some(tokio::spawn(std::future::pending::<()>()));
        let why = super::first_failure(&shutdown, &mut a, &mut c, std::future::pending()).await;
        assert_eq!(why, None);
    }

    #[tokio::test]
    async fn join_by_survives_a_panicked_task_and_leaves_a_stuck_one_at_the_deadline() {
        let until = tokio::time::Instant::now() + Duration::from_millis(200);
        let panicked = tokio::spawn(async { panic!("a listener bug") });
        super::join_by("panicking", until, Some(panicked)).await;
        let stuck = tokio::spawn(std::future::pending::<()>());
        super::join_by("stuck", until, Some(stuck)).await;
        assert!(
            tokio::time::Instant::now() >= until,
            "returned before the deadline"
        );
    }
}
