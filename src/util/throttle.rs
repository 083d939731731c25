//! Counting failures per client address, to slow down guessing.
//!
//! A client that fails too often within a window is refused until the window ends, even with
//! the right credential: a guesser must not learn which guess was right. The window starts at
//! a client's first failure and lasts `window`; the table is bounded, so a flood of addresses
//! cannot grow it without limit (the oldest entries go first).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

/// Addresses remembered at most.
const CAPACITY: u64 = 100_000;

pub struct FailureThrottle {
    limit: u32,
    window: Duration,
    failures: Cache<IpAddr, Arc<AtomicU32>>,
}

impl FailureThrottle {
    /// Refuses an address after `limit` failures within `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            failures: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(window)
                .build(),
        }
    }

    /// True if `addr` has used up its failures for this window.
    pub fn is_blocked(&self, addr: IpAddr) -> bool {
        self.failures
            .get(&addr)
            .is_some_and(|n| n.load(Ordering::Relaxed) >= self.limit)
    }

    /// Counts one failure of `addr`; returns how many it has in this window.
    pub fn fail(&self, addr: IpAddr) -> u32 {
        let count = self.failures.get_with(addr, || Arc::new(AtomicU32::new(0)));
        count.fetch_add(1, Ordering::Relaxed).saturating_add(1)
    }

    /// Seconds a blocked client should wait (the whole window: when it started is not kept).
    pub fn retry_after_secs(&self) -> u64 {
        self.window.as_secs().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_and_only_that_address() {
        let throttle = FailureThrottle::new(3, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for n in 1..=3 {
            assert!(!throttle.is_blocked(a));
            assert_eq!(throttle.fail(a), n);
        }
        assert!(throttle.is_blocked(a));
        assert!(!throttle.is_blocked(b));
    }

    #[test]
    fn the_window_ends() {
        let throttle = FailureThrottle::new(1, Duration::from_millis(50));
        let a: IpAddr = "::1".parse().unwrap();
        throttle.fail(a);
        assert!(throttle.is_blocked(a));
        std::thread::sleep(Duration::from_millis(120));
        assert!(!throttle.is_blocked(a));
    }
}
