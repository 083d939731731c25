//! When the store last failed a read, so that caches can serve what they already hold for a
//! while instead of making every request wait on an unreachable store again.

use std::sync::atomic::{AtomicI64, Ordering};

/// The time (in seconds) of the latest failed store read, shared by one cache's readers.
#[derive(Debug)]
pub struct StoreOutage {
    failed_at: AtomicI64,
}

impl Default for StoreOutage {
    fn default() -> Self {
        Self {
            failed_at: AtomicI64::new(i64::MIN / 2),
        }
    }
}

impl StoreOutage {
    /// A store read failed at `now`.
    pub fn failed(&self, now: i64) {
        self.failed_at.store(now, Ordering::Relaxed);
    }

    /// True if a store read failed less than `window` seconds before `now`.
    pub fn within(&self, now: i64, window: i64) -> bool {
        now - self.failed_at.load(Ordering::Relaxed) < window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_counts_for_the_window_only() {
        let o = StoreOutage::default();
        assert!(!o.within(1_700_000_000, 10));
        o.failed(100);
        assert!(o.within(109, 10));
        assert!(!o.within(110, 10));
    }
}
