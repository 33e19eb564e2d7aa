//! The control socket: a root-only Unix socket in the data directory through which
//! `edgemx queue …`, `edgemx probes`, `edgemx firmware` and the console talk to the
//! running gateway.
//!
//! Protocol: one JSON request per line ([`Request`]), one JSON response per line whose
//! data is the request's type in [`reply`], shared with every reader. Owns nothing but the
//! translation between requests and queue/delivery operations; it never touches redb.

mod admin;
mod client;
mod der;
mod format;
mod ops;
mod peer;
pub mod reply;

pub use admin::{Admin, ConsoleRequest};

/// Messages per page of a queue listing ([`Request::Page`]).
pub const MAX_PAGE: usize = 1_000;
pub use client::{ControlClient, Request, each_page};
#[cfg(test)]
pub(crate) use der::not_after;
pub use format::{format_entries, format_health, format_list, format_show};
pub use ops::LOOKUP_TYPES;

use crate::delivery::DeliveryHandle;
use crate::envelope::QueueId;
use crate::probe::Probes;
use crate::queue::{Change, Queue};
use reply::{Done, Reply, Response, Shown};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    queue: Queue,
    deliveries: DeliveryHandle,
    admin: Arc<Admin>,
    probes: Arc<Probes>,
}

impl Server {
    /// Binds the socket (replacing a stale one left by a crash) with mode 0600, or 0660
    /// and owned by `control.group` when one is configured.
    pub fn bind(
        path: &Path,
        queue: Queue,
        deliveries: DeliveryHandle,
        admin: Arc<Admin>,
        probes: Arc<Probes>,
    ) -> std::io::Result<Server> {
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        let gid = admin.live.borrow().control.gid;
        peer::restrict(path, gid)?;
        Ok(Server {
            listener,
            path: path.to_path_buf(),
            queue,
            deliveries,
            admin,
            probes,
        })
    }

    pub async fn serve(self, shutdown: CancellationToken) {
        let mut applied = self.admin.live.borrow().control.gid;
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            // A committed `control.group` takes effect for the next client.
            let gid = self.admin.live.borrow().control.gid;
            if gid != applied {
                match peer::restrict(&self.path, gid) {
                    Ok(()) => applied = gid,
                    Err(e) => log::warn!("control socket: cannot apply control.group: {e}"),
                }
            }
            match accepted {
                Ok((stream, _)) => {
                    // File modes are the first gate; the peer's credentials the second, so
                    // a socket made reachable by mistake still answers only root and
                    // `control.group`.
                    if let Err(refusal) = peer::check(&stream, gid) {
                        log::warn!("control socket: {refusal}");
                        tokio::spawn(refuse(stream, refusal));
                        continue;
                    }
                    let (queue, deliveries) = (self.queue.clone(), self.deliveries.clone());
                    let (admin, probes) = (self.admin.clone(), self.probes.clone());
                    tokio::spawn(async move {
                        converse(stream, queue, deliveries, admin, probes).await
                    });
                }
                Err(e) => log::warn!("control socket accept failed: {e}"),
            }
        }
    }
}

/// Answers the first request of a client that may not use the socket with the refusal
/// (read first, so the client sees the answer rather than a broken pipe), then closes.
async fn refuse(stream: UnixStream, refusal: peer::Refusal) {
    let response = Response::<Reply>::Error {
        error: refusal.to_string(),
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    let (read, mut write) = stream.into_split();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async move {
        let _ = BufReader::new(read).lines().next_line().await;
        let _ = write.write_all(&out).await;
    })
    .await;
}

async fn converse(
    stream: UnixStream,
    queue: Queue,
    deliveries: DeliveryHandle,
    admin: Arc<Admin>,
    probes: Arc<Probes>,
) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Console { call }) => match admin.execute(call).await {
                Ok(data) => Response::Ok { data },
                Err(error) => Response::Error { error },
            },
            Ok(request) => execute(request, &queue, &deliveries, &probes).await,
            Err(e) => Response::Error {
                error: format!("bad request: {e}"),
            },
        };
        let mut out = serde_json::to_vec(&response).unwrap_or_default();
        out.push(b'\n');
        if write.write_all(&out).await.is_err() {
            return;
        }
    }
}

async fn execute(
    request: Request,
    queue: &Queue,
    deliveries: &DeliveryHandle,
    probes: &Probes,
) -> Response<Reply> {
    let result = match request {
        Request::List => queue
            .list()
            .await
            .map(Reply::from)
            .map_err(|e| e.to_string()),
        Request::Page { after, limit } => queue
            .page(after, limit.clamp(1, MAX_PAGE))
            .await
            .map(Reply::from)
            .map_err(|e| e.to_string()),
        Request::Show { id } => show(queue, id).await.map(Reply::from),
        Request::Retry { id: Some(id) } => match queue.envelope(id).await {
            Ok(Some(_)) => {
                deliveries.retry(id);
                Ok(Done(format!("{id} scheduled for delivery now")).into())
            }
            Ok(None) => Err(format!("no message {id} in the queue")),
            Err(e) => Err(e.to_string()),
        },
        Request::Retry { id: None } => {
            deliveries.retry_all();
            Ok(Done::new("all messages scheduled for delivery now").into())
        }
        Request::Delete { id } => match queue.envelope(id).await {
            Ok(Some(_)) => match queue.apply(vec![Change::Delete(id)]).await {
                Ok(_) => {
                    deliveries.forget(id);
                    log::info!("{id} deleted by the operator");
                    Ok(Done(format!("{id} deleted")).into())
                }
                Err(e) => Err(e.to_string()),
            },
            Ok(None) => Err(format!("no message {id} in the queue")),
            Err(e) => Err(e.to_string()),
        },
        Request::Stats => Ok(queue.stats().into()),
        Request::Console { .. } => Err("console requests are answered by the admin".into()),
        Request::Hold { target } => {
            let n = deliveries.hold(target.clone()).await;
            n.map_err(|e| e.to_string())
                .and_then(|n| counted(n, "held", &target))
        }
        Request::Release { target } => {
            let n = deliveries.release(target.clone()).await;
            n.map_err(|e| e.to_string())
                .and_then(|n| counted(n, "released", &target))
        }
        Request::Flush { target } => {
            let n = deliveries.flush(target.clone()).await;
            n.map_err(|e| e.to_string())
                .and_then(|n| counted(n, "scheduled for delivery now", &target))
        }
        Request::Health => Ok(deliveries.health().into()),
        Request::Compact => match queue.compact().await {
            Ok((before, after)) => Ok(Done(format!(
                "queue file compacted from {} to {} MiB",
                before.div_ceil(1 << 20),
                after.div_ceil(1 << 20)
            ))
            .into()),
            Err(e) => Err(e.to_string()),
        },
        Request::Probes => Ok(probes.status().into()),
    };
    match result {
        Ok(data) => Response::Ok { data },
        Err(error) => Response::Error { error },
    }
}

/// `3 message(s) held`; asking for one message that is not there (or not in the state
/// the operation needs) is an error, so scripts notice.
fn counted(n: usize, what: &str, target: &crate::delivery::Target) -> Result<Reply, String> {
    if let (0, crate::delivery::Target::Message(id)) = (n, target) {
        return Err(format!(
            "{id}: not {what} (not queued, or already in that state)"
        ));
    }
    Ok(Done(format!("{n} message(s) {what}")).into())
}

/// The envelope and the message headers (not the body: operators see who and what, the
/// content stays private unless they read the store themselves).
async fn show(queue: &Queue, id: QueueId) -> Result<Shown, String> {
    // The body first: a corrupt one is held by this read, and the envelope then says why
    // (its headers cannot be trusted, so none are shown).
    let body = match queue.body(id).await {
        Err(crate::queue::QueueError::Corrupt { .. }) => None,
        other => other.map_err(|e| e.to_string())?,
    };
    let envelope = queue
        .envelope(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no message {id} in the queue"))?;
    let headers = body
        .map(|b| {
            let end = b
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or(b.len());
            String::from_utf8_lossy(&b[..end]).into_owned()
        })
        .unwrap_or_default();
    Ok(Shown { envelope, headers })
}
