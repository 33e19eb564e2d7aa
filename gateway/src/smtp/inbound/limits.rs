//! Connection admission: a cap on sessions in total and per client address.
//!
//! A permit is taken right after `accept()`; beyond either cap the client hears `421` and
//! the socket is closed, so an attacker's flood costs us one short write per connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

struct Inner {
    // Atomics so a committed configuration changes the caps without forgetting the
    // sessions already counted.
    max_total: AtomicUsize,
    max_per_ip: AtomicUsize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Held for the life of a session; releases its slot on drop.
pub struct Permit {
    inner: Arc<Inner>,
    ip: IpAddr,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerIp,
}

impl Limiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Limiter {
        Limiter {
            inner: Arc::new(Inner {
                max_total: AtomicUsize::new(max_total),
                max_per_ip: AtomicUsize::new(max_per_ip),
                counts: Mutex::new(Counts::default()),
            }),
        }
    }

    pub fn admit(&self, ip: IpAddr) -> Result<Permit, Refusal> {
        let mut counts = self
            .inner
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if counts.total >= self.inner.max_total.load(Ordering::Relaxed) {
            return Err(Refusal::Total);
        }
        let mine = counts.per_ip.entry(ip).or_insert(0);
        if *mine >= self.inner.max_per_ip.load(Ordering::Relaxed) {
            return Err(Refusal::PerIp);
        }
        *mine += 1;
        counts.total += 1;
        Ok(Permit {
            inner: self.inner.clone(),
            ip,
        })
    }

    /// New caps for sessions admitted from now on.
    pub fn set_caps(&self, max_total: usize, max_per_ip: usize) {
        self.inner.max_total.store(max_total, Ordering::Relaxed);
        self.inner.max_per_ip.store(max_per_ip, Ordering::Relaxed);
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        self.inner
            .counts
            .lock()
            .map(|c| c.total)
            .unwrap_or_default()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self
            .inner
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_apply_per_address_and_in_total_and_free_on_drop() {
        let limiter = Limiter::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = limiter.admit(a).unwrap();
        let _p2 = limiter.admit(a).unwrap();
        assert_eq!(limiter.admit(a).err(), Some(Refusal::PerIp));
        let _p3 = limiter.admit(b).unwrap();
        assert_eq!(limiter.admit(b).err(), Some(Refusal::Total));
        drop(p1);
        assert!(limiter.admit(a).is_ok());
    }
}
