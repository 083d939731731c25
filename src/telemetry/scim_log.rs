//! The SCIM request log's writer: the edge hands every answered SCIM request to
//! [`ScimLog::record`], which never waits; one background task writes them to the store in
//! batches, and each batch prunes the log to its bounds ([`KEEP`] rows of each kind, none
//! older than [`KEEP_FOR`]).
//!
//! Nothing here can slow the SCIM service or fail its requests: the queue is bounded and a
//! full one drops the entry, and a failed write is logged and forgotten. Requests without a
//! valid token are logged at most [`REFUSED_PER_MINUTE`] a minute per process (the throttle
//! answers a flood with 429s already), so a flood costs a few writes, not one per request.

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::store::{ScimRequest, Store};
use crate::util::clock::now_ms;

/// Rows kept of each kind (with a valid token, and without).
pub const KEEP: i64 = 1_000;
/// Rows older than this are deleted.
pub const KEEP_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// Requests without a valid token logged per minute, per process.
pub const REFUSED_PER_MINUTE: u32 = 60;
/// Entries waiting for the writer at most.
const QUEUE: usize = 1_024;
/// Entries written per transaction at most.
const BATCH: usize = 256;

pub struct ScimLog {
    sender: mpsc::Sender<ScimRequest>,
    /// Taken once by [`ScimLog::writer`].
    receiver: Mutex<Option<mpsc::Receiver<ScimRequest>>>,
    refused_window_ms: AtomicI64,
    refused_in_window: AtomicU32,
    dropped: AtomicU64,
}

impl Default for ScimLog {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        Self {
            sender,
            receiver: Mutex::new(Some(receiver)),
            refused_window_ms: AtomicI64::new(0),
            refused_in_window: AtomicU32::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

impl ScimLog {
    /// Queues `request` for the writer, or drops it (queue full, or one refused request too
    /// many this minute).
    pub fn record(&self, request: ScimRequest) {
        if request.token_label.is_none() && !self.refused_within_budget(request.at_ms) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.sender.try_send(request).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Entries dropped since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The task that writes the queued entries to `store`; `None` after the first call.
    pub fn writer(&self, store: Arc<dyn Store>) -> Option<impl Future<Output = ()>> {
        let receiver = self.receiver.lock().ok()?.take()?;
        Some(write(receiver, store))
    }

    /// A fixed one-minute window: racing callers may let one or two extra through, which
    /// does not matter for a bound.
    fn refused_within_budget(&self, now_ms: i64) -> bool {
        let start = self.refused_window_ms.load(Ordering::Relaxed);
        if now_ms - start >= 60_000
            && self
                .refused_window_ms
                .compare_exchange(start, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.refused_in_window.store(0, Ordering::Relaxed);
        }
        self.refused_in_window.fetch_add(1, Ordering::Relaxed) < REFUSED_PER_MINUTE
    }
}

async fn write(mut receiver: mpsc::Receiver<ScimRequest>, store: Arc<dyn Store>) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let cut_off = now_ms() - KEEP_FOR.as_millis() as i64;
        if let Err(e) = store.append_scim_requests(&batch, KEEP, cut_off).await {
            tracing::warn!(error = %e, entries = batch.len(), "SCIM request log not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(at_ms: i64) -> ScimRequest {
        ScimRequest {
            at_ms,
            method: "GET".into(),
            path: "/.jitgate/scim/v2/Users".into(),
            status: 401,
            scim_type: None,
            token_label: None,
            request_id: "r".into(),
        }
    }

    #[test]
    fn refused_requests_are_logged_at_most_the_budget_per_minute() {
        let log = ScimLog::default();
        let start = 10_000_000;
        for i in 0..500 {
            log.record(refused(start + i));
        }
        assert_eq!(log.dropped(), 500 - u64::from(REFUSED_PER_MINUTE));
        // A new minute, a new budget.
        log.record(refused(start + 60_000));
        assert_eq!(log.dropped(), 500 - u64::from(REFUSED_PER_MINUTE));
    }

    #[test]
    fn authenticated_requests_are_not_budgeted_and_a_full_queue_drops() {
        let log = ScimLog::default();
        for i in 0..(QUEUE as i64 + 10) {
            log.record(ScimRequest {
                token_label: Some("scim token 1".into()),
                ..refused(i)
            });
        }
        assert_eq!(log.dropped(), 10);
    }
}
