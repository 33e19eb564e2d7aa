//! Connections to a scanner: TCP or a Unix socket behind one type, and a bounded pool that
//! keeps idle keep-alive connections for reuse.

use crate::config::scan::Endpoint;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Stream = Box<dyn Io>;

pub async fn connect(at: &Endpoint) -> std::io::Result<Stream> {
    match at {
        Endpoint::Tcp { host, port } => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream))
        }
        Endpoint::Unix(path) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?)),
    }
}

/// At most `max` connections to one scanner in use at once; idle ones (at most `max`) are
/// kept for the next scan. A scan beyond the bound waits for a permit, inside its timeout.
pub struct Pool {
    pub at: Endpoint,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Stream>>,
    max: usize,
}

/// A connection in use: its permit goes back when it is dropped or returned.
pub struct Lease {
    pub stream: Stream,
    /// Taken from the idle list: it may have been closed by the peer meanwhile.
    pub reused: bool,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub fn new(at: Endpoint, max: usize) -> Pool {
        Pool {
            at,
            permits: Arc::new(Semaphore::new(max)),
            idle: Mutex::new(Vec::new()),
            max,
        }
    }

    /// An idle connection if one is kept (`fresh` false), else a new one.
    pub async fn take(&self, fresh: bool) -> std::io::Result<Lease> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| std::io::Error::other("scanner pool closed"))?;
        let idle = if fresh {
            None
        } else {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
        };
        let (stream, reused) = match idle {
            Some(stream) => (stream, true),
            None => (connect(&self.at).await?, false),
        };
        Ok(Lease {
            stream,
            reused,
            _permit: permit,
        })
    }

    /// Keeps a connection whose last exchange ended cleanly.
    pub fn give_back(&self, lease: Lease) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max {
            idle.push(lease.stream);
        }
    }
}
