//! Applying a committed configuration to the running gateway: a new inbound context for
//! sessions accepted from now on (sessions already open keep theirs), new routes for the
//! scheduler, listeners bound or closed where their addresses changed, and init told when
//! the hostname or the network changed.
//!
//! Owns the accept tasks; it must not touch sessions, which finish on the configuration
//! they started with.

use super::Bound;
use crate::config::{Config, Role};
use crate::delivery::DeliveryHandle;
use crate::smtp::inbound::{self, Context};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Reloader {
    contexts: watch::Sender<Arc<Context>>,
    /// The configuration last applied, for a commit to wait on.
    applied: watch::Sender<Arc<Config>>,
    deliveries: DeliveryHandle,
    listeners: HashMap<SocketAddr, Running>,
    /// Fired when an accept loop ended without being stopped (a panic).
    died: CancellationToken,
}

/// Held by an accept loop's task: its end, unless asked for, fires `died`.
struct Watch {
    died: CancellationToken,
    stop: CancellationToken,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.stop.is_cancelled() {
            self.died.cancel();
        }
    }
}

struct Running {
    starttls: bool,
    role: Role,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Reloader {
    pub fn new(
        ctx: Arc<Context>,
        deliveries: DeliveryHandle,
        applied: watch::Sender<Arc<Config>>,
    ) -> Reloader {
        Reloader {
            applied,
            contexts: watch::Sender::new(ctx),
            deliveries,
            listeners: HashMap::new(),
            died: CancellationToken::new(),
        }
    }

    /// Starts accepting on an already bound listener.
    pub fn adopt(&mut self, bound: Bound) {
        let Ok(addr) = bound.listener.local_addr() else {
            return;
        };
        log::info!("SMTP listening on {addr}");
        let stop = CancellationToken::new();
        let (starttls, role) = (bound.starttls, bound.role);
        let serve = inbound::serve(
            self.contexts.subscribe(),
            bound.listener,
            starttls,
            role,
            stop.clone(),
        );
        let watch = Watch {
            died: self.died.clone(),
            stop: stop.clone(),
        };
        let task = tokio::spawn(async move {
            let _watch = watch;
            serve.await
        });
        self.listeners.insert(
            addr,
            Running {
                starttls,
                role,
                stop,
                task,
            },
        );
    }

    /// Applies every configuration published on `live` until shutdown, then waits for the
    /// accept loops to end. An accept loop that ends by itself stops the others and ends
    /// this too, which the server takes as a failure (a shutdown, a non-zero exit).
    pub async fn follow(
        mut self,
        mut live: watch::Receiver<Arc<Config>>,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                // An accept loop ends at shutdown too: the shutdown is seen first.
                biased;
                _ = shutdown.cancelled() => break,
                _ = self.died.cancelled() => {
                    log::error!("an SMTP listener ended by itself; stopping the others");
                    for running in self.listeners.values() {
                        running.stop.cancel();
                    }
                    break;
                }
                changed = live.changed() => if changed.is_err() { break },
            }
            let config = live.borrow_and_update().clone();
            self.apply(config).await;
        }
        for (addr, running) in self.listeners.drain() {
            if let Err(e) = running.task.await {
                log::error!("SMTP listener on {addr} failed: {e}");
            }
        }
    }

    async fn apply(&mut self, config: Arc<Config>) {
        let (old, events) = {
            let current = self.contexts.borrow();
            (current.config.clone(), current.events.clone())
        };
        // Checked at commit already; a key file that vanished since keeps the old setup.
        let mail_auth = match crate::policy::auth::MailAuth::load(&config) {
            Ok(m) => m.publishing(&events),
            Err(e) => {
                log::error!("new configuration not applied: {e}");
                self.applied.send_replace(config);
                return;
            }
        };
        let tls = match crate::tls::server(&config) {
            Ok(tls) => Some(tls.config),
            Err(e) => {
                log::error!("new configuration: {e}; keeping the previous certificate");
                None
            }
        };
        // Routes, maps and recipient validation are rebuilt from the new configuration;
        // the old table's watcher ends when the last session holding it is done.
        let shutdown = self.contexts.borrow().shutdown.clone();
        let recipients = match crate::policy::Recipients::start(&config, &events, &shutdown) {
            Ok(r) => Some(r),
            Err(e) => {
                log::error!("new configuration: routing: {e}; keeping the previous routes");
                None
            }
        };
        let ctx = self
            .contexts
            .borrow()
            .renewed(config.clone(), tls, recipients, mail_auth);
        self.contexts.send_replace(ctx);
        self.deliveries.reload(config.clone());
        self.rebind(&config).await;
        if old.hostname != config.hostname || old.network != config.network {
            tell_init();
        }
        self.applied.send_replace(config);
        log::info!("configuration applied");
    }

    async fn rebind(&mut self, config: &Config) {
        let wanted: HashMap<SocketAddr, (bool, Role)> = config
            .listeners
            .iter()
            .map(|l| (l.address, (l.starttls, l.role)))
            .collect();
        let gone: Vec<SocketAddr> = self
            .listeners
            .iter()
            .filter(|(addr, r)| wanted.get(addr) != Some(&(r.starttls, r.role)))
            .map(|(addr, _)| *addr)
            .collect();
        for addr in gone {
            if let Some(running) = self.listeners.remove(&addr) {
                running.stop.cancel();
                if let Err(e) = running.task.await {
                    log::error!("SMTP listener on {addr} failed: {e}");
                }
                log::info!("SMTP no longer listening on {addr}");
            }
        }
        for (addr, (starttls, role)) in wanted {
            if self.listeners.contains_key(&addr) {
                continue;
            }
            match crate::smtp::inbound::listen(addr) {
                Ok(listener) => self.adopt(Bound {
                    listener,
                    starttls,
                    role,
                }),
                Err(e) => log::error!("cannot listen on {addr}: {e}"),
            }
        }
    }
}

/// Inside the appliance init (our parent, PID 1, the same binary) owns the hostname and
/// the network; SIGHUP makes it read them again from the configuration file. Anywhere else
/// (systemd, a container) PID 1 is not ours and is left alone.
fn tell_init() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::{Pid, getppid};
    let ours = std::fs::read_link("/proc/1/exe").ok() == std::env::current_exe().ok();
    if getppid() == Pid::from_raw(1)
        && ours
        && let Err(e) = kill(Pid::from_raw(1), Signal::SIGHUP)
    {
        log::warn!("cannot tell init about the new network settings: {e}");
    }
}
