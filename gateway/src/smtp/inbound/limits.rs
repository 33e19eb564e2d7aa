//! Connection admission: a cap on sessions in total and per client address.
//!
//! A permit is taken right after `accept()`; beyond either cap the client hears `421` and
//! the socket is closed, so an attacker's flood costs us one short write per connection.
//!
//! Stress: from `limits.stress_connections()` sessions on, the limiter says the gateway is
//! under pressure and sessions shorten their timeouts (`deadline.rs`), as Postfix does when
//! its process table is full, so slow clients cannot keep everyone else out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

struct Inner {
    // Atomics so a committed configuration changes the caps without forgetting the
    // sessions already counted.
    max_total: AtomicUsize,
    max_per_ip: AtomicUsize,
    /// Sessions from which we are under stress.
    stress_at: AtomicUsize,
    /// True while under stress; sessions waiting for input watch it.
    stressed: watch::Sender<bool>,
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
                stress_at: AtomicUsize::new(max_total),
                stressed: watch::Sender::new(false),
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
        self.inner.update_stress(counts.total);
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

    /// Sessions from which the gateway counts as under stress.
    pub fn set_stress_at(&self, sessions: usize) {
        self.inner.stress_at.store(sessions, Ordering::Relaxed);
        let total = self.open();
        self.inner.update_stress(total);
    }

    /// Follows the stress state: true while the connection table is nearly full.
    pub fn stress(&self) -> watch::Receiver<bool> {
        self.inner.stressed.subscribe()
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

impl Inner {
    fn update_stress(&self, total: usize) {
        let now = total >= self.stress_at.load(Ordering::Relaxed);
        self.stressed
            .send_if_modified(|s| std::mem::replace(s, now) != now);
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
        self.inner.update_stress(counts.total);
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

    #[test]
    fn stress_follows_the_sessions_open() {
        let limiter = Limiter::new(10, 10);
        limiter.set_stress_at(2);
        let stress = limiter.stress();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let p1 = limiter.admit(a).unwrap();
        assert!(!*stress.borrow());
        let p2 = limiter.admit(a).unwrap();
        assert!(*stress.borrow());
        drop(p2);
        assert!(!*stress.borrow());
        limiter.set_stress_at(1);
        assert!(*stress.borrow());
        drop(p1);
    }
}
