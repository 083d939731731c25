//! Reloading policy files without a restart.
//!
//! On SIGHUP, and when any file in the policies directory changes (polled every two
//! seconds), the whole directory is validated again. A valid set replaces the running one in
//! a single atomic swap, so a request sees either the old set or the new one, never a mix. An
//! invalid set changes nothing: the old one keeps running and every problem is logged with
//! its `file:line:column`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::gate::Gate;
use crate::policy;
use crate::store::{GrantChange, SessionChange};

const POLL_EVERY: Duration = Duration::from_secs(2);

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    Applied { apps: usize },
    Rejected { problems: Vec<String> },
}

/// Validates the policies directory again and swaps it in if valid.
pub fn reload_now(gate: &Gate) -> ReloadOutcome {
    match policy::load_dir(&gate.config.policies_dir) {
        Ok(set) => {
            let apps = set.apps().len();
            gate.policies.store(Arc::new(set));
            gate.metrics
                .policy_reloads
                .with_label_values(&["applied"])
                .inc();
            tracing::info!(apps, "policy files reloaded");
            ReloadOutcome::Applied { apps }
        }
        Err(problems) => {
            gate.metrics
                .policy_reloads
                .with_label_values(&["rejected"])
                .inc();
            let problems: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
            for p in &problems {
                tracing::error!(problem = %p, "policy reload rejected; the previous policies stay in force");
            }
            ReloadOutcome::Rejected { problems }
        }
    }
}

/// A fingerprint of the directory: names, sizes and modification times.
fn fingerprint(dir: &Path) -> Vec<(String, u64, Option<SystemTime>)> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let meta = e.metadata().ok()?;
                    Some((
                        e.file_name().to_string_lossy().into_owned(),
                        meta.len(),
                        meta.modified().ok(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries
}

/// Reloads on SIGHUP and on file changes, until the process drains.
pub async fn watch(gate: Arc<Gate>) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; policy reload on file change only");
            None
        }
    };
    let mut seen = fingerprint(&gate.config.policies_dir);
    let mut tick = tokio::time::interval(POLL_EVERY);
    loop {
        let by_signal = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            _ = gate.draining.stopped() => return,
        };
        let now = fingerprint(&gate.config.policies_dir);
        if by_signal || now != seen {
            seen = now;
            reload_now(&gate);
        }
    }
}

/// Where the store pushes grant changes (PostgreSQL): drops the cached view of each changed
/// user at once, and the whole grants cache whenever notifications may have been missed.
/// Without such a feed (SQLite) the cache re-reads on its own after a short interval.
pub async fn listen_grant_changes(gate: Arc<Gate>) {
    let Some(mut changes) = gate.store.grant_changes() else {
        return;
    };
    while let Some(change) = changes.recv().await {
        match change {
            GrantChange::User { iss, sub, revoked } => {
                gate.grants.forget(&iss, &sub);
                if let Some((id, until)) = revoked {
                    gate.grants.note_revoked(&id, until);
                }
            }
            GrantChange::Missed => gate.grants.forget_all(),
        }
    }
}

/// Where the store pushes ended sessions (PostgreSQL: logout, back-channel logout, an
/// operator's or the directory's deactivation on any replica): drops them from the session
/// cache at once. When notifications may have been missed (the listening connection was
/// lost), nothing is dropped: cached sessions are re-read after `revalidate_after` anyway,
/// and dropping them all would turn a store outage into signing everyone out (a cached
/// session keeps working while the store is down). Without a feed (SQLite) the same
/// `revalidate_after` applies.
pub async fn listen_session_changes(gate: Arc<Gate>) {
    let Some(mut changes) = gate.store.session_changes() else {
        return;
    };
    while let Some(change) = changes.recv().await {
        match change {
            SessionChange::Changed(id_hashes) => gate.sessions.forget(&id_hashes),
            SessionChange::Missed => {
                tracing::info!("session announcements may have been missed; cached sessions are re-read after revalidate_after")
            }
        }
    }
}

/// Marks grants whose time is up as expired, every second (for the audit trail and the
/// lists: enforcement itself compares the expiry on every request), until the process drains.
pub async fn expire_grants(gate: Arc<Gate>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        // A sweep under way is finished; the next one is left to the process taking over.
        tokio::select! {
            _ = tick.tick() => {}
            _ = gate.draining.stopped() => return,
        }
        if let Err(e) = gate.grants.expire_due().await {
            tracing::warn!(error = %e, "grant expiry sweep failed");
        }
        let policies = gate.policies.load();
        if let Err(e) = gate.grants.run_end_calls(&policies).await {
            tracing::warn!(error = %e, "grant end calls failed");
        }
    }
}

/// Deletes expired sessions from the store every few minutes, until the process drains.
pub async fn sweep_sessions(gate: Arc<Gate>) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = gate.draining.stopped() => return,
        }
        match gate.sessions.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "expired sessions removed"),
            Err(e) => tracing::warn!(error = %e, "session sweep failed"),
        }
    }
}
