//! A circuit breaker per app API: after repeated failures, stop calling it for a while.
//!
//! Closed: calls go through; every failure counts, every success resets the count. After
//! [`FAILURES_TO_OPEN`] failures in a row it opens for [`OPEN_FOR`]: calls fail at once (the
//! user's page says for how long). After that one call is let through to probe; its result
//! closes the breaker or opens it again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const FAILURES_TO_OPEN: u32 = 5;
pub const OPEN_FOR: Duration = Duration::from_secs(30);

/// A probe that has not reported back after this long is presumed lost.
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    /// When the one call let through after a pause started.
    probe_started: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Breakers {
    apps: Mutex<HashMap<String, State>>,
}

impl Breakers {
    /// `Err(remaining)` while calls to `app` are paused.
    pub fn check(&self, app: &str) -> Result<(), Duration> {
        let Ok(mut apps) = self.apps.lock() else {
            return Ok(());
        };
        let state = apps.entry(app.to_string()).or_default();
        let now = Instant::now();
        match (state.open_until, state.probe_started) {
            (Some(until), _) if now < until => Err(until - now),
            (Some(_), Some(started)) if now - started < PROBE_TIMEOUT => {
                Err(Duration::from_secs(1))
            }
            (Some(_), _) => {
                state.probe_started = Some(now);
                Ok(())
            }
            (None, _) => Ok(()),
        }
    }

    pub fn record(&self, app: &str, ok: bool) {
        let Ok(mut apps) = self.apps.lock() else {
            return;
        };
        let state = apps.entry(app.to_string()).or_default();
        state.probe_started = None;
        if ok {
            state.failures = 0;
            state.open_until = None;
            return;
        }
        state.failures += 1;
        if state.failures >= FAILURES_TO_OPEN || state.open_until.is_some() {
            state.open_until = Some(Instant::now() + OPEN_FOR);
            tracing::warn!(
                app,
                pause_secs = OPEN_FOR.as_secs(),
                "app API keeps failing: pausing calls"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_repeated_failures_and_a_success_resets() {
        let b = Breakers::default();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            b.record("wiki", false);
        }
        assert!(b.check("wiki").is_ok());
        b.record("wiki", true);
        for _ in 0..FAILURES_TO_OPEN - 1 {
            b.record("wiki", false);
        }
        assert!(
            b.check("wiki").is_ok(),
            "a success in between resets the count"
        );
        b.record("wiki", false);
        let paused = b.check("wiki").unwrap_err();
        assert!(paused > OPEN_FOR - Duration::from_secs(2) && paused <= OPEN_FOR);
        assert!(b.check("other").is_ok(), "breakers are per app");
    }

    #[test]
    fn after_the_pause_one_probe_decides() {
        let b = Breakers::default();
        for _ in 0..FAILURES_TO_OPEN {
            b.record("wiki", false);
        }
        // Pretend the pause is over.
        if let Ok(mut apps) = b.apps.lock() {
            apps.get_mut("wiki").unwrap().open_until = Some(Instant::now());
        }
        assert!(b.check("wiki").is_ok(), "one probe goes through");
        assert!(b.check("wiki").is_err(), "only one");
        b.record("wiki", false);
        assert!(
            b.check("wiki").unwrap_err() > OPEN_FOR - Duration::from_secs(2),
            "failed probe: paused again"
        );
        if let Ok(mut apps) = b.apps.lock() {
            apps.get_mut("wiki").unwrap().open_until = Some(Instant::now());
        }
        assert!(b.check("wiki").is_ok());
        b.record("wiki", true);
        assert!(
            b.check("wiki").is_ok() && b.check("wiki").is_ok(),
            "closed again"
        );
    }
}
