//! Prometheus metrics, registered once at start-up into jitgate's own registry.
//!
//! Labels are bounded: app names come from policy files, outcomes from fixed lists. What
//! every forwarded request counts is kept per worker thread (see [`hot`]) and added up when
//! `/metrics` is scraped.

pub mod hot;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use hot::{DecisionLatency, HotCounter, HotHistogram};

/// One app's per-request metrics: one set per app name, kept across policy reloads.
#[derive(Debug, Default)]
pub struct AppMetrics {
    /// Exported as `requests_total{app, outcome="forwarded"}`.
    pub forwarded: HotCounter,
    /// Exported as `decisions_total{app, result="allow"}`.
    pub allowed: HotCounter,
    /// Exported as `decision_seconds{app}`.
    pub decision_latency: HotHistogram,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by app and outcome (`forwarded` or a denial kind).
    pub requests: IntCounterVec,
    /// Policy decisions by app and result (`allow`/`deny`).
    pub decisions: IntCounterVec,
    /// Per-request metrics by app (see [`AppMetrics`]).
    apps: Arc<Mutex<HashMap<String, Arc<AppMetrics>>>>,
    /// Session cache hits (exported as `session_cache_total{result="hit"}`).
    pub session_hits: Arc<HotCounter>,
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
    /// Requests to the SCIM service by method and answer status.
    pub scim_requests: IntCounterVec,
    /// Lifecycle jobs waiting or running (a leaver's app calls, say).
    pub lifecycle_queue_depth: IntGauge,
    /// Age of the oldest lifecycle job still waiting or running, in seconds (0 when none).
    pub lifecycle_oldest_seconds: IntGauge,
    /// Lifecycle jobs given up after their last retry.
    pub lifecycle_failed: IntGauge,
    /// Claims refreshes by outcome: `unchanged`, `regrouped`, `refused` (sessions ended),
    /// `failed` (retried later), `unreadable` (sealed token no longer opens), `ended` (no
    /// session of the login left), `no_refresh_token` (a login the IdP gave none).
    pub claims_refreshes: IntCounterVec,
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
        let apps = Arc::new(Mutex::new(HashMap::new()));
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
        let scim_requests = IntCounterVec::new(
            Opts::new(
                "scim_requests_total",
                "Requests to the SCIM service by method and status",
            ),
            &["method", "status"],
        )?;
        registry.register(Box::new(scim_requests.clone()))?;
        let lifecycle_queue_depth =
            IntGauge::new("lifecycle_queue_depth", "Lifecycle jobs waiting or running")?;
        let lifecycle_oldest_seconds = IntGauge::new(
            "lifecycle_oldest_pending_seconds",
            "Age of the oldest lifecycle job waiting or running",
        )?;
        let lifecycle_failed = IntGauge::new(
            "lifecycle_failed_jobs",
            "Lifecycle jobs given up after their last retry",
        )?;
        registry.register(Box::new(lifecycle_queue_depth.clone()))?;
        registry.register(Box::new(lifecycle_oldest_seconds.clone()))?;
        registry.register(Box::new(lifecycle_failed.clone()))?;
        let claims_refreshes = IntCounterVec::new(
            Opts::new("claims_refreshes_total", "Claims refreshes by outcome"),
            &["outcome"],
        )?;
        registry.register(Box::new(claims_refreshes.clone()))?;
        registry.register(Box::new(provisioning_calls.clone()))?;
        registry.register(Box::new(provisioning_seconds.clone()))?;
        registry.register(Box::new(provisioning_errors.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(DecisionLatency::new(apps.clone())?))?;
        registry.register(Box::new(logins.clone()))?;
        registry.register(Box::new(session_cache.clone()))?;
        registry.register(Box::new(sessions_cached.clone()))?;
        registry.register(Box::new(policy_reloads.clone()))?;
        Ok(Self {
            registry,
            requests,
            decisions,
            apps,
            session_hits: Arc::default(),
            logins,
            session_cache,
            sessions_cached,
            policy_reloads,
            provisioning_calls,
            provisioning_seconds,
            provisioning_errors,
            scim_requests,
            lifecycle_queue_depth,
            lifecycle_oldest_seconds,
            lifecycle_failed,
            claims_refreshes,
        })
    }

    /// The per-request metrics of `app` (the same ones again after a policy reload).
    pub fn for_app(&self, app: &str) -> Arc<AppMetrics> {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.entry(app.to_string()).or_default().clone()
    }

    /// Adds the per-thread counts to their prometheus series.
    fn flush(&self) {
        let apps: Vec<(String, Arc<AppMetrics>)> = {
            let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
            apps.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        for (app, m) in apps {
            m.forwarded
                .flush_into(&self.requests.with_label_values(&[&app, "forwarded"]));
            m.allowed
                .flush_into(&self.decisions.with_label_values(&[&app, "allow"]));
        }
        self.session_hits
            .flush_into(&self.session_cache.with_label_values(&["hit"]));
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        self.flush();
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}
