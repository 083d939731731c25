//! Draining: what a jitgate process does once it has handed its listeners over or been told
//! to stop.
//!
//! During a graceful upgrade the old process keeps serving for a few seconds while the new one
//! already accepts on the same sockets (see [`crate::ops::upgrade`]). From the moment it starts
//! draining, the old process answers every HTTP/1.1 request with `Connection: close`, so
//! clients move to the new process one finished request at a time instead of having an idle
//! keep-alive connection cut under them. Its background jobs that write (grant expiry and end
//! calls, the session sweep, policy reload) stop at their next tick: the new process runs
//! them. A sweep that is under way is finished, never cut in the middle of an app call. The
//! jobs that keep its remaining requests correct (grant notifications, IdP discovery) run
//! until the process exits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Whether this process is draining, and the background jobs that stop when it is.
pub struct Draining {
    draining: AtomicBool,
    stop: watch::Sender<bool>,
    jobs: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Default for Draining {
    fn default() -> Self {
        Self {
            draining: AtomicBool::new(false),
            stop: watch::Sender::new(false),
            jobs: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl Draining {
    /// True once the process hands its listeners over or shuts down: answers carry
    /// `Connection: close`.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Starts draining (idempotent): background jobs stop at their next tick.
    pub fn begin_draining(&self) {
        if !self.draining.swap(true, Ordering::Relaxed) {
            tracing::info!("draining: answering with Connection: close, background jobs stop");
        }
        self.stop.send_replace(true);
    }

    /// Resolves once draining has begun. Background jobs select on it between ticks.
    pub async fn stopped(&self) {
        let mut stop = self.stop.subscribe();
        // An error means the sender is gone, which only happens when the gate is dropped.
        let _ = stop.wait_for(|stopped| *stopped).await;
    }

    /// Remembers a background job, so [`Self::finish_jobs`] can wait for it.
    pub fn track(&self, job: JoinHandle<()>) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.push(job);
        }
    }

    /// Begins draining and waits up to `within` for the tracked jobs to return. Jobs still
    /// running after that are left to the runtime's shutdown.
    pub async fn finish_jobs(&self, within: Duration) {
        self.begin_draining();
        let jobs: Vec<JoinHandle<()>> = match self.jobs.lock() {
            Ok(mut jobs) => jobs.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        let all = async {
            for job in jobs {
                let _ = job.await;
            }
        };
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!(?within, "background jobs still running at exit");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_stop_at_their_next_tick_once_draining_begins() {
        let lifecycle = std::sync::Arc::new(Draining::default());
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (l, t) = (lifecycle.clone(), ticks.clone());
        lifecycle.track(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                    _ = l.stopped() => return,
                }
                t.fetch_add(1, Ordering::Relaxed);
            }
        }));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!lifecycle.is_draining());
        lifecycle.finish_jobs(Duration::from_secs(5)).await;
        assert!(lifecycle.is_draining());
        let after = ticks.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(ticks.load(Ordering::Relaxed), after, "the job kept running");
    }
}
