//! The claims-refresh runner (`session.refresh_claims`): every second, the logins due in the
//! store are taken (each by one replica, see `store::take_claims_refreshes`) and refreshed
//! concurrently, off the request path, until the process drains; a full batch is followed
//! by the next at once. Once a minute, the logins none of whose sessions is left are deleted
//! (a logout, a timeout), and with them their refresh tokens.

use std::sync::Arc;
use std::time::Duration;

use crate::config::GroupSource;
use crate::gate::Gate;
use crate::lifecycle::claims_refresh::{ClaimsRefresher, BATCH, REFRESH_TIMEOUT};
use crate::util::clock::now_ms;

/// How often the store is asked for due logins when the last pass found few.
const TICK: Duration = Duration::from_secs(1);
/// Ticks between two sweeps of logins without sessions.
const SWEEP_EVERY: u32 = 60;
/// A login younger than this is not swept (its first session may still be on its way).
const SWEEP_GRACE_MS: i64 = 60_000;

pub async fn run_claims_refresh(gate: Arc<Gate>) {
    let Some(interval) = gate.config.session.refresh_claims else {
        return;
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u32 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = gate.draining.stopped() => return,
        }
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(SWEEP_EVERY) {
            sweep(&gate).await;
        }
        // Batches back to back while they come full.
        while refresh_batch(&gate, interval).await >= BATCH as usize {
            if gate.draining.is_draining() {
                return;
            }
        }
    }
}

/// Takes one batch of due logins and refreshes them concurrently; returns how many it took.
async fn refresh_batch(gate: &Arc<Gate>, interval: Duration) -> usize {
    let due = match refresher(gate, interval, &gate.policies.load()) {
        Some(refresher) => refresher.take_due().await,
        None => return 0,
    };
    let due = match due {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "due claims refreshes could not be read");
            return 0;
        }
    };
    let taken = due.len();
    let mut running = tokio::task::JoinSet::new();
    for login in due {
        let gate = gate.clone();
        running.spawn(async move {
            let policies = gate.policies.load();
            let Some(refresher) = refresher(&gate, interval, &policies) else {
                return;
            };
            if let Err(e) = refresher.refresh(&login).await {
                tracing::warn!(login = %login.login_id, error = %e, "a claims refresh could not be recorded");
            }
        });
    }
    while running.join_next().await.is_some() {}
    taken
}

/// What the runner refreshes through, from the gate's parts (`None` without a seal, that is
/// without a client secret); public for tests that drive one refresh themselves.
pub fn refresher<'g>(
    gate: &'g Gate,
    interval: Duration,
    policies: &'g crate::policy::PolicySet,
) -> Option<ClaimsRefresher<'g>> {
    let settings = gate.oidc.settings();
    Some(ClaimsRefresher {
        store: &gate.store,
        oidc: &gate.oidc,
        seal: gate.refresh_seal.as_ref()?,
        sessions: &gate.sessions,
        audit: &gate.audit,
        metrics: &gate.metrics,
        policies,
        auth_host: &gate.config.public.host,
        interval,
        refresh_timeout: REFRESH_TIMEOUT,
        groups_claim: &settings.groups_claim,
        username_claim: &settings.username_claim,
        directory_owns_groups: gate
            .config
            .scim
            .as_ref()
            .is_some_and(|scim| scim.groups == GroupSource::Directory),
    })
}

async fn sweep(gate: &Gate) {
    match gate
        .store
        .delete_orphan_claims_refreshes(now_ms() - SWEEP_GRACE_MS)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(logins = n, "logins without sessions no longer refreshed"),
        Err(e) => tracing::warn!(error = %e, "sweep of claims refreshes failed"),
    }
}
