//! The client side of the control socket, used by `edgemx queue …`.

use super::reply::Response;
use crate::delivery::Target;
use crate::envelope::{Envelope, QueueId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Every queued message at once (small queues, tests); `edgemx queue list` pages.
    List,
    /// Up to `limit` messages (at most [`super::MAX_PAGE`]) with ids above `after`,
    /// oldest first: the next page of a listing.
    Page {
        #[serde(default)]
        after: Option<QueueId>,
        limit: usize,
    },
    Show {
        id: QueueId,
    },
    /// `None` retries every message.
    Retry {
        id: Option<QueueId>,
    },
    Delete {
        id: QueueId,
    },
    Stats,
    /// Configuration and operations for `edgemx console`.
    Console {
        call: super::ConsoleRequest,
    },
    /// Keeps the matching messages from delivery until released.
    Hold {
        target: Target,
    },
    Release {
        target: Target,
    },
    /// Delivers now (paced for a domain or everything).
    Flush {
        target: Target,
    },
    /// The up/down state of every watched next hop.
    Health,
    /// Shrinks the queue file (see [`crate::queue::Queue::compact`]).
    Compact,
    /// The mail-flow probes' state ([`crate::probe::Status`] per target).
    Probes,
}

pub struct ControlClient {
    stream: BufReader<UnixStream>,
}

impl ControlClient {
    pub fn connect(path: &Path) -> Result<ControlClient, String> {
        UnixStream::connect(path)
            .map(|s| ControlClient {
                stream: BufReader::new(s),
            })
            .map_err(|e| {
                format!(
                    "cannot reach the gateway at {}: {e} (is `edgemx serve` running, and are you root?)",
                    path.display()
                )
            })
    }

    /// Sends one request; returns the `data` of an ok response or the error text.
    pub fn call(&mut self, request: &Request) -> Result<serde_json::Value, String> {
        let mut line = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        line.push(b'\n');
        self.stream
            .get_mut()
            .write_all(&line)
            .map_err(|e| format!("control socket: {e}"))?;
        let mut answer = String::new();
        self.stream
            .read_line(&mut answer)
            .map_err(|e| format!("control socket: {e}"))?;
        match serde_json::from_str(&answer) {
            Ok(Response::Ok { data }) => Ok(data),
            Ok(Response::Error { error }) => Err(error),
            Err(e) => Err(format!("control socket answer: {e}")),
        }
    }

    /// [`call`](Self::call), with the answer decoded as the request's reply type (see
    /// [`super::reply`]); an answer that does not fit is an error naming what is wrong.
    pub fn ask<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, String> {
        self.call(request).and_then(super::reply::decode)
    }

    /// Every queued message, a page at a time (oldest first), handed to `each`: neither
    /// the gateway nor this side holds a large queue in memory at once. Returns how many.
    pub fn each_page(&mut self, each: impl FnMut(&[Envelope])) -> Result<usize, String> {
        each_page(|request| self.ask(request), each)
    }
}

/// Asks for every page of the queue listing in turn with `ask` (a control connection),
/// handing each to `each`; returns how many messages there were.
pub fn each_page(
    mut ask: impl FnMut(&Request) -> Result<Vec<Envelope>, String>,
    mut each: impl FnMut(&[Envelope]),
) -> Result<usize, String> {
    let (mut after, mut count) = (None, 0);
    loop {
        let limit = super::MAX_PAGE;
        let page = ask(&Request::Page { after, limit })?;
        count += page.len();
        each(&page);
        match page.last() {
            Some(last) if page.len() == limit => after = Some(last.id),
            _ => return Ok(count),
        }
    }
}
