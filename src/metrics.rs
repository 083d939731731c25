//! Prometheus metrics, registered once at start-up into jitgate's own registry.
//!
//! Labels are bounded: app names come from policy files, outcomes from fixed lists.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// One app's hot-path metrics, looked up by label once per policy load instead of three
/// times per request.
#[derive(Clone, Debug)]
pub struct AppMetrics {
    pub forwarded: prometheus::IntCounter,
    pub allowed: prometheus::IntCounter,
    pub decision_latency: prometheus::Histogram,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by app and outcome (`forwarded` or a denial kind).
    pub requests: IntCounterVec,
    /// Policy decisions by app and result (`allow`/`deny`).
    pub decisions: IntCounterVec,
    /// Time spent in jitgate before the request is forwarded or answered.
    pub decision_latency: HistogramVec,
    /// Logins by result.
    pub logins: IntCounterVec,
    /// Session cache lookups by result (`hit`/`miss`).
    pub session_cache: IntCounterVec,
    pub sessions_cached: IntGauge,
    /// Policy reloads by result.
    pub policy_reloads: IntCounterVec,
    /// Calls to apps' user APIs by app, operation and outcome.
    pub provisioning_calls: IntCounterVec,
    /// Latency of calls to apps' user APIs.
    pub provisioning_seconds: HistogramVec,
    /// Failed account set-ups by app and reason (`unavailable`, `refused`, `paused`, ...).
    pub provisioning_errors: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("jitgate".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("requests_total", "Requests by app and outcome"),
            &["app", "outcome"],
        )?;
        let decisions = IntCounterVec::new(
            Opts::new("decisions_total", "Policy decisions by app and result"),
            &["app", "result"],
        )?;
        let decision_latency = HistogramVec::new(
            HistogramOpts::new(
                "decision_seconds",
                "Time from request head to forward/answer decision",
            )
            .buckets(vec![
                0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.01, 0.1, 1.0,
            ]),
            &["app"],
        )?;
        let logins =
            IntCounterVec::new(Opts::new("logins_total", "Logins by result"), &["result"])?;
        let session_cache = IntCounterVec::new(
            Opts::new("session_cache_total", "Session cache lookups by result"),
            &["result"],
        )?;
        let sessions_cached = IntGauge::new("sessions_cached", "Sessions held in memory")?;
        let policy_reloads = IntCounterVec::new(
            Opts::new("policy_reloads_total", "Policy reloads by result"),
            &["result"],
        )?;
        let provisioning_calls = IntCounterVec::new(
            Opts::new(
                "provisioning_calls_total",
                "Calls to apps' user APIs by app, operation and outcome",
            ),
            &["app", "operation", "outcome"],
        )?;
        let provisioning_seconds = HistogramVec::new(
            HistogramOpts::new(
                "provisioning_call_seconds",
                "Latency of calls to apps' user APIs",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["app", "operation"],
        )?;
        let provisioning_errors = IntCounterVec::new(
            Opts::new(
                "provisioning_errors_total",
                "Failed account set-ups by app and reason",
            ),
            &["app", "reason"],
        )?;
        registry.register(Box::new(provisioning_calls.clone()))?;
        registry.register(Box::new(provisioning_seconds.clone()))?;
        registry.register(Box::new(provisioning_errors.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(decision_latency.clone()))?;
        registry.register(Box::new(logins.clone()))?;
        registry.register(Box::new(session_cache.clone()))?;
        registry.register(Box::new(sessions_cached.clone()))?;
        registry.register(Box::new(policy_reloads.clone()))?;
        Ok(Self {
            registry,
            requests,
            decisions,
            decision_latency,
            logins,
            session_cache,
            sessions_cached,
            policy_reloads,
            provisioning_calls,
            provisioning_seconds,
            provisioning_errors,
        })
    }

    /// The handles one app's forwarded requests use, resolved once (see [`AppMetrics`]).
    pub fn for_app(&self, app: &str) -> AppMetrics {
        AppMetrics {
            forwarded: self.requests.with_label_values(&[app, "forwarded"]),
            allowed: self.decisions.with_label_values(&[app, "allow"]),
            decision_latency: self.decision_latency.with_label_values(&[app]),
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}
