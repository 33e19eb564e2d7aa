//! A destination's queue of jobs, shared by the scheduler (which pushes) and the workers
//! (which pop). The lock is never held across an await.

use super::worker::{Ctx, Job, work};
use crate::routing::Destination;
use crate::smtp::client::Session;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

pub struct DestQueue {
    pub dest: Arc<Destination>,
    state: Mutex<State>,
    notify: Notify,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    workers: usize,
    idle: usize,
    /// Workers currently holding a live connection.
    connected: usize,
}

impl DestQueue {
    pub fn new(dest: Arc<Destination>) -> Arc<DestQueue> {
        Arc::new(DestQueue {
            dest,
            state: Mutex::new(State::default()),
            notify: Notify::new(),
        })
    }

    /// Queues `job`, waking an idle worker or starting a new one within the limit.
    pub fn push(self: &Arc<Self>, job: Job, ctx: &Arc<Ctx>) {
        let spawn = {
            let mut state = self.lock();
            state.jobs.push_back(job);
            if state.idle > 0 {
                self.notify.notify_one();
            }
            let spawn =
                state.jobs.len() > state.idle && state.workers < ctx.max_connections_per_next_hop;
            if spawn {
                state.workers += 1;
            }
            spawn
        };
        if spawn {
            ctx.tracker.spawn(work(self.clone(), ctx.clone()));
        }
    }

    /// Takes every queued job (shutdown, or the destination proved unreachable).
    pub fn drain(&self) -> Vec<Job> {
        self.lock().jobs.drain(..).collect()
    }

    pub fn is_idle(&self) -> bool {
        let state = self.lock();
        state.jobs.is_empty() && state.workers == 0
    }

    /// Returns a job this worker could not carry to the workers that hold connections, and
    /// ends this worker. Refused (the job comes back) when no other worker could take it.
    pub fn give_back(&self, job: Job) -> Result<(), Job> {
        let mut state = self.lock();
        if state.connected == 0 || state.workers <= 1 {
            return Err(job);
        }
        state.jobs.push_front(job);
        state.workers -= 1;
        if state.idle > 0 {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// Drops the connection (without QUIT: it is broken or abandoned).
    pub fn close(&self, conn: &mut Option<Session>) {
        if conn.take().is_some() {
            self.track(true, false);
        }
    }

    /// Keeps the count of live connections (see [`Step::GiveBack`]).
    pub fn track(&self, before: bool, after: bool) {
        let mut state = self.lock();
        match (before, after) {
            (false, true) => state.connected += 1,
            (true, false) => state.connected = state.connected.saturating_sub(1),
            _ => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next job, waiting up to `idle_timeout` while holding a connection.
    pub async fn next(&self, ctx: &Ctx, connected: bool) -> Option<Job> {
        let wait = if connected {
            ctx.idle_timeout
        } else {
            Duration::ZERO
        };
        let notified = self.notify.notified();
        tokio::pin!(notified);
        {
            let mut state = self.lock();
            if ctx.shutdown.is_cancelled() {
                state.workers -= 1;
                return None;
            }
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if wait.is_zero() {
                state.workers -= 1;
                return None;
            }
            // Registered before the lock is released, so a push in between is not missed.
            notified.as_mut().enable();
            state.idle += 1;
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(wait) => {}
            _ = ctx.shutdown.cancelled() => {}
        }
        let mut state = self.lock();
        state.idle -= 1;
        match state.jobs.pop_front() {
            Some(job) if !ctx.shutdown.is_cancelled() => Some(job),
            other => {
                if let Some(job) = other {
                    state.jobs.push_front(job);
                }
                state.workers -= 1;
                None
            }
        }
    }
}
