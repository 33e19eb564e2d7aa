//! The console's connection to the gateway: the control socket, reconnected when the
//! gateway restarts.

use crate::control::{ConsoleRequest, ControlClient, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Link {
    path: PathBuf,
    client: Option<ControlClient>,
}

impl Link {
    pub fn new(path: PathBuf) -> Link {
        Link { path, client: None }
    }

    /// The control socket this link connects to.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Waits up to `limit` for the gateway's socket.
    pub fn wait(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            match ControlClient::connect(&self.path) {
                Ok(c) => {
                    self.client = Some(c);
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// A console request, its answer decoded as the request's reply type.
    pub fn console<T: DeserializeOwned>(&mut self, call: ConsoleRequest) -> Result<T, String> {
        self.ask(&Request::Console { call })
    }

    /// [`call`](Self::call), the answer decoded as the request's reply type.
    pub fn ask<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, String> {
        self.call(request).and_then(crate::control::reply::decode)
    }

    /// Every queued message, a page at a time (see [`ControlClient::each_page`]).
    pub fn each_page(
        &mut self,
        each: impl FnMut(&[crate::envelope::Envelope]),
    ) -> Result<usize, String> {
        crate::control::each_page(|request| self.ask(request), each)
    }

    /// One retry on a fresh connection: the gateway may have restarted since the last call.
    fn call(&mut self, request: &Request) -> Result<Value, String> {
        for attempt in 0..2 {
            if self.client.is_none() {
                self.client = Some(ControlClient::connect(&self.path)?);
            }
            let Some(client) = self.client.as_mut() else {
                continue;
            };
            match client.call(request) {
                Err(e) if e.starts_with("control socket") && attempt == 0 => self.client = None,
                other => return other,
            }
        }
        Err("the gateway does not answer".into())
    }
}
