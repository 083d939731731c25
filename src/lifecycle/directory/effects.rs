//! What a directory change does outside the directory: the leaver, the return and the mover,
//! run from the lifecycle queue in the store.
//!
//! ```text
//! leaver   identities linked to the user marked removed (sign-in refused from now on)
//!          -> their sessions deleted on every host, and dropped from this replica's cache
//!             (other replicas hear it from the store's session feed)
//!          -> in every app: pending grant requests denied, active grants revoked (their
//!             end calls are made by the grant loop), and one `deactivate_account` job
//!             queued per account jitgate holds
//! deactivate_account   the app's connector `deactivate`, the record marked (retried)
//! return   the links' removed mark cleared, and every deactivated account forgotten, so the
//!          user's next visit sets it up again (lookup or create, then update)
//! mover, regroup   new groups carried to sessions, grants and accounts (`mover.rs`)
//! joiner   (queued by a new active user, a return and a mover) accounts created ahead of
//!          sign-in in `provisioning.ahead` apps (`joiner.rs`)
//! ```
//! A job is a row before it runs. Runs that fail are retried with exponential backoff
//! ([`retry_after`]) and given up (`failed`, audited) after [`MAX_ATTEMPTS`]; a job whose
//! runner died is taken again by any jitgate after `lifecycle.retake_after` (2 minutes by
//! default). Every step is idempotent, so running a job twice does no harm.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::service::Directory;
use crate::auth::session::Sessions;
use crate::config::IdpSettings;
use crate::lifecycle::grants::{Actor, Grants};
use crate::lifecycle::provision::{Accounts, Because};
use crate::policy::PolicySet;
use crate::store::{AccountKey, LifecycleJob, Store, StoreError};
use crate::telemetry::audit::{Audit, AuditKind, Subject};
use crate::util::clock::now_ms;
use crate::util::random::RandomError;

pub use super::new_job::job;

/// Runs of one job before it is given up (about two hours of retries).
pub const MAX_ATTEMPTS: i64 = 30;
/// Jobs taken per pass.
const BATCH: i64 = 32;

/// How long to wait before run `attempts + 1`: 1 s, 2 s, 4 s ... at most 5 minutes.
pub fn retry_after(attempts: i64) -> i64 {
    let exponent = attempts.clamp(1, 9) - 1;
    (1_000_i64 << exponent).min(300_000)
}

#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Failed(String),
}

/// What the jobs act through.
pub struct Effects<'a> {
    pub store: &'a Arc<dyn Store>,
    pub sessions: &'a Sessions,
    pub grants: &'a Grants,
    pub accounts: &'a Arc<Accounts>,
    pub policies: &'a PolicySet,
    pub audit: &'a Audit,
    /// The auth host (sessions live there too, besides the apps' hosts).
    pub auth_host: &'a str,
    /// The directory, when SCIM is on (a mover reads the user's groups from it).
    pub directory: Option<&'a Directory>,
    /// The IdP's issuer and claim names (a mover rewrites the groups claim; a joiner ahead
    /// of sign-in builds the identity the IdP will sign in).
    pub idp: &'a IdpSettings,
}

impl Effects<'_> {
    /// Takes the due jobs, and those still running `retake_after` after they were taken
    /// (their runner died), and runs them; returns how many ran.
    pub async fn run_due(&self, retake_after: Duration) -> Result<usize, StoreError> {
        let now = now_ms();
        let stale_before =
            now.saturating_sub(i64::try_from(retake_after.as_millis()).unwrap_or(i64::MAX));
        let jobs = self
            .store
            .take_lifecycle_jobs(now, stale_before, BATCH)
            .await?;
        for job in &jobs {
            let result = self.run(job).await;
            let now = now_ms();
            let (state, next_at, error) = match &result {
                Ok(()) => ("done", now, None),
                Err(e) if job.attempts >= MAX_ATTEMPTS => ("failed", now, Some(e.to_string())),
                Err(e) => (
                    "pending",
                    now + retry_after(job.attempts),
                    Some(e.to_string()),
                ),
            };
            if let Some(error) = &error {
                tracing::warn!(job = %job.id, kind = %job.kind, attempts = job.attempts, %error, "lifecycle job failed");
            }
            if state == "failed" {
                self.audit
                    .record(
                        AuditKind::LifecycleJobFailed,
                        Subject::default(),
                        json!({ "job": job.id, "kind": job.kind, "subject": subject(job),
                                "by": job.by, "reason": job.reason, "attempts": job.attempts,
                                "error": error }),
                    )
                    .await;
            }
            self.store
                .finish_lifecycle_job(&job.id, state, next_at, error.as_deref(), now)
                .await?;
        }
        Ok(jobs.len())
    }

    async fn run(&self, job: &LifecycleJob) -> Result<(), EffectError> {
        let subject = subject(job);
        match job.kind.as_str() {
            "leaver" => self.leaver(job, &subject).await,
            "return" => self.returner(job, &subject).await,
            "deactivate_account" => self.deactivate_account(job, &subject).await,
            "mover" => self.mover(job, &subject).await,
            "joiner" => self.joiner(job, &subject).await,
            "regroup" => self.regroup(job, &subject).await,
            other => Err(EffectError::Failed(format!("unknown job kind `{other}`"))),
        }
    }

    async fn leaver(&self, job: &LifecycleJob, subject: &Value) -> Result<(), EffectError> {
        let link = text(subject, "link")?;
        let identities = self.store.mark_links_removed(link, Some(now_ms())).await?;
        let mut hosts: Vec<String> = self
            .policies
            .apps()
            .iter()
            .flat_map(|app| app.hosts.iter().cloned())
            .collect();
        hosts.push(self.auth_host.to_string());
        let actor = Actor::directory(&job.by);
        let (mut sessions, mut revoked, mut denied) = (0, 0, 0);
        let mut deactivations = Vec::new();
        for identity in &identities {
            let ended = self
                .store
                .delete_sessions_of(&identity.iss, &identity.sub, &hosts)
                .await?;
            self.sessions.forget(&ended);
            sessions += ended.len();
            for app in self.policies.apps() {
                let key = AccountKey {
                    app: &app.name,
                    iss: &identity.iss,
                    sub: &identity.sub,
                };
                let (r, d) = self
                    .grants
                    .end_all_of(key, &actor, &job.reason)
                    .await
                    .map_err(|e| {
                        EffectError::Failed(format!("ending grants in {}: {e}", app.name))
                    })?;
                revoked += r;
                denied += d;
                let held = self.store.get_account(key).await?;
                if held.is_some_and(|a| a.deactivated_at.is_none()) {
                    let target =
                        json!({ "app": app.name, "iss": identity.iss, "sub": identity.sub });
                    deactivations.push(
                        job_for(job, "deactivate_account", target)
                            .map_err(|e| EffectError::Failed(e.to_string()))?,
                    );
                }
            }
        }
        self.store.enqueue_lifecycle_jobs(&deactivations).await?;
        self.audit
            .record(
                AuditKind::DirectoryLeaver,
                Subject::default(),
                json!({ "by": job.by, "reason": job.reason, "user": subject["user"],
                        "userName": subject["userName"], "identities": identities.len(),
                        "sessions_ended": sessions, "grants_revoked": revoked,
                        "requests_denied": denied, "accounts_queued": deactivations.len() }),
            )
            .await;
        Ok(())
    }

    async fn deactivate_account(
        &self,
        job: &LifecycleJob,
        subject: &Value,
    ) -> Result<(), EffectError> {
        let (app_name, iss, sub) = (
            text(subject, "app")?,
            text(subject, "iss")?,
            text(subject, "sub")?,
        );
        let Some(app) = self.policies.apps().iter().find(|a| a.name == app_name) else {
            // The app left the policies: there is no connector to call any more.
            return Err(EffectError::Failed(format!(
                "no app `{app_name}` in the policies"
            )));
        };
        let key = AccountKey {
            app: app_name,
            iss,
            sub,
        };
        let Some(record) = self.store.get_account(key).await? else {
            return Ok(());
        };
        if record.deactivated_at.is_some() {
            return Ok(());
        }
        let why = Because {
            by: &job.by,
            reason: &job.reason,
        };
        self.accounts
            .deactivate(app, &record, &why)
            .await
            .map(|_| ())
            .map_err(|e| EffectError::Failed(format!("{app_name}: {e}")))
    }

    async fn returner(&self, job: &LifecycleJob, subject: &Value) -> Result<(), EffectError> {
        let link = text(subject, "link")?;
        let identities = self.store.mark_links_removed(link, None).await?;
        let mut reactivated = 0;
        for identity in &identities {
            for app in self.policies.apps() {
                let key = AccountKey {
                    app: &app.name,
                    iss: &identity.iss,
                    sub: &identity.sub,
                };
                let Some(record) = self.store.get_account(key).await? else {
                    continue;
                };
                if record.deactivated_at.is_some() {
                    self.accounts
                        .reactivate(app, &record)
                        .await
                        .map_err(|e| EffectError::Failed(format!("{}: {e}", app.name)))?;
                    reactivated += 1;
                }
            }
        }
        if let Some(user) = subject["user"].as_str() {
            self.queue_joiner(job, user).await?;
        }
        if identities.is_empty() {
            // Nobody signed in as this user yet: nothing to undo.
            return Ok(());
        }
        self.audit
            .record(
                AuditKind::DirectoryReturn,
                Subject::default(),
                json!({ "by": job.by, "reason": job.reason, "user": subject["user"],
                        "userName": subject["userName"], "identities": identities.len(),
                        "accounts_reactivated": reactivated }),
            )
            .await;
        Ok(())
    }
}

/// A follow-up job caused by `parent`, with its who and why.
pub(super) fn job_for(
    parent: &LifecycleJob,
    kind: &str,
    subject: Value,
) -> Result<LifecycleJob, RandomError> {
    job(kind, subject, &parent.by, &parent.reason)
}

fn subject(job: &LifecycleJob) -> Value {
    serde_json::from_str(&job.subject).unwrap_or(Value::Null)
}

pub(super) fn text<'v>(subject: &'v Value, field: &str) -> Result<&'v str, EffectError> {
    subject[field]
        .as_str()
        .ok_or_else(|| EffectError::Failed(format!("the job names no `{field}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        let delays: Vec<i64> = (1..=12).map(retry_after).collect();
        assert_eq!(&delays[..4], &[1_000, 2_000, 4_000, 8_000]);
        assert_eq!(delays[11], 256_000);
        assert!(delays.iter().all(|d| *d <= 300_000));
        assert_eq!(retry_after(0), 1_000);
    }
}
