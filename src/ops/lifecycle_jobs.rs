//! The lifecycle queue's runner: every 200 ms, the due jobs in the store (a directory
//! leaver, an account to deactivate in an app, a return) are taken and run, until the
//! process drains. Any replica may run any job; a job whose runner died is taken again
//! after `lifecycle.retake_after`.

use std::sync::Arc;
use std::time::Duration;

use crate::gate::Gate;
use crate::lifecycle::directory::effects::Effects;

/// How often the queue is read: a leaver's sessions end within this, plus the run itself.
const TICK: Duration = Duration::from_millis(200);
/// Ticks between two updates of the queue's gauges.
const GAUGES_EVERY: u32 = 25;

pub async fn run_lifecycle_jobs(gate: Arc<Gate>) {
    // Jobs come from the directory (SCIM) and from claims refreshes (a mover).
    if gate.directory.is_none() && gate.config.session.refresh_claims.is_none() {
        return;
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u32 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = gate.draining.stopped() => return,
        }
        let policies = gate.policies.load();
        let effects = Effects {
            store: &gate.store,
            sessions: &gate.sessions,
            grants: &gate.grants,
            accounts: &gate.accounts,
            policies: &policies,
            audit: &gate.audit,
            auth_host: &gate.config.public.host,
            directory: gate.directory.as_ref(),
            idp: gate.oidc.settings(),
        };
        if let Err(e) = effects.run_due(gate.config.lifecycle.retake_after).await {
            tracing::warn!(error = %e, "lifecycle jobs could not be read or recorded");
        }
        ticks = ticks.wrapping_add(1);
        if ticks % GAUGES_EVERY == 1 {
            update_gauges(&gate).await;
        }
    }
}

/// The queue's depth, the age of its oldest job, and how many were given up.
async fn update_gauges(gate: &Gate) {
    let summary = match gate.store.lifecycle_queue_summary().await {
        Ok(summary) => summary,
        Err(e) => {
            tracing::warn!(error = %e, "lifecycle queue gauges not updated");
            return;
        }
    };
    let now = crate::util::clock::now_ms();
    let metrics = &gate.metrics;
    metrics.lifecycle_queue_depth.set(summary.waiting);
    metrics.lifecycle_oldest_seconds.set(
        summary
            .oldest_waiting_ms
            .map(|at| (now - at).max(0) / 1000)
            .unwrap_or(0),
    );
    metrics.lifecycle_failed.set(summary.failed);
}
