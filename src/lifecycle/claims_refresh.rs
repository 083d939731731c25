//! Claims refresh for IdPs that push no directory (Google, plain Keycloak):
//! `session.refresh_claims`.
//!
//! ```text
//! login      the IdP's refresh token sealed (auth::sealed) into one row per login (known by
//!            its login time and IdP session id), with the groups the login's sessions hold;
//!            due one interval later
//! refresh    taken by one replica (a lease), redeemed at the token endpoint within half the
//!            lease, off the request path; the rotated token sealed back while the lease holds
//!  -> groups changed   a `regroup` lifecycle job (the mover: sessions, grants, accounts)
//!  -> invalid_grant    the user's sessions deleted on every host and every replica, their
//!                      logins no longer refreshed, a `claims_refresh_refused` audit event
//!  -> no answer        kept as it is, retried sooner (1 s, 2 s, … up to the interval)
//! ```
//! Only a definitive answer ends sessions: an IdP that is down, slow or misconfigured must
//! not sign everyone out, so those refreshes are retried and the sessions keep their
//! timeouts. An answer that carries no groups claim says nothing about groups, so it changes
//! none. With `scim: { groups: directory }` the directory owns groups and a refresh only
//! checks that the user still exists. A login's row goes when its last session does (swept), or with the user's.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::auth::identity::Identity;
use crate::auth::oidc::{Oidc, OidcError};
use crate::auth::sealed::{RefreshSeal, SealError, SealedFor};
use crate::auth::session::Sessions;
use crate::config::Secret;
use crate::lifecycle::directory::effects::{job, retry_after};
use crate::policy::PolicySet;
use crate::store::{ClaimsRefreshDone, ClaimsRefreshRecord, Store, StoreError};
use crate::telemetry::audit::{Audit, AuditKind, Subject};
use crate::telemetry::metrics::Metrics;
use crate::util::clock::now_ms;
use crate::util::random::{uuid, RandomError};

/// How long a replica holds a login it took. Another replica may take it once this ran out,
/// so one refresh must be over well before: see [`REFRESH_TIMEOUT`].
pub const LEASE_MS: i64 = 60_000;
/// The longest one refresh may wait on the IdP (discovery, token endpoint, JWKS and
/// userinfo, up to 10 s each), then it counts as no answer and is retried. Half the lease:
/// a refresh still running when another replica takes the login would redeem a token the
/// other may already have redeemed (IdPs that detect reuse then revoke the whole grant).
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(30);
const _: () = assert!(REFRESH_TIMEOUT.as_millis() as i64 * 2 <= LEASE_MS);
/// Logins taken per pass (refreshed concurrently).
pub const BATCH: i64 = 16;
/// Who the lifecycle jobs a refresh queues are by.
const BY: &str = "claims refresh";

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// How one refresh ended (the `outcome` label of `claims_refreshes_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Regrouped,
    Refused,
    Failed,
    Unreadable,
    /// The login has no session left: not refreshed again.
    Ended,
    /// The lease ran out before the refresh was recorded, and another replica took the
    /// login: its refresh counts, this one is dropped.
    LeaseLost,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Regrouped => "regrouped",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Unreadable => "unreadable",
            Outcome::Ended => "ended",
            Outcome::LeaseLost => "lease_lost",
        }
    }

    /// This outcome when the refresh was recorded, else [`Outcome::LeaseLost`].
    fn if_recorded(self, recorded: bool) -> Outcome {
        if recorded {
            self
        } else {
            Outcome::LeaseLost
        }
    }
}

/// The groups as stored on the row: sorted, without duplicates, as a JSON list.
fn group_list<'g>(groups: impl Iterator<Item = &'g str>) -> String {
    let mut groups: Vec<&str> = groups.collect();
    groups.sort_unstable();
    groups.dedup();
    Value::from(groups).to_string()
}

/// A login just made, as a refresh needs it.
pub struct NewLogin<'a> {
    pub identity: &'a Identity,
    /// Unix seconds, as on its sessions.
    pub login_at: i64,
    /// The IdP's session id, as on its sessions.
    pub sid: Option<&'a str>,
    pub refresh_token: Option<&'a Secret>,
}

/// Records a fresh login for refreshing, `interval` from now. A login the IdP gave no
/// refresh token is only counted.
pub async fn remember_login(
    store: &Arc<dyn Store>,
    seal: &RefreshSeal,
    metrics: &Metrics,
    login: NewLogin<'_>,
    interval: Duration,
) -> Result<(), RefreshError> {
    let NewLogin {
        identity,
        login_at,
        sid,
        refresh_token,
    } = login;
    let Some(refresh_token) = refresh_token else {
        tracing::info!(sub = %identity.sub, "the IdP issued no refresh token: this login's claims are not refreshed");
        metrics
            .claims_refreshes
            .with_label_values(&["no_refresh_token"])
            .inc();
        return Ok(());
    };
    let login_id = uuid()?;
    let owner = SealedFor {
        iss: &identity.iss,
        sub: &identity.sub,
        login_id: &login_id,
    };
    let now = now_ms();
    store
        .put_claims_refresh(&ClaimsRefreshRecord {
            refresh_token: seal.seal(refresh_token.expose(), &owner)?,
            login_id: login_id.clone(),
            iss: identity.iss.to_string(),
            sub: identity.sub.to_string(),
            login_at,
            sid: sid.map(str::to_string),
            groups: Some(group_list(identity.groups())),
            next_at_ms: now + interval.as_millis() as i64,
            failures: 0,
            created_at_ms: now,
            lease_until_ms: 0,
        })
        .await?;
    Ok(())
}

/// What refreshes act through.
pub struct ClaimsRefresher<'a> {
    pub store: &'a Arc<dyn Store>,
    pub oidc: &'a Oidc,
    pub seal: &'a RefreshSeal,
    pub sessions: &'a Sessions,
    pub audit: &'a Audit,
    pub metrics: &'a Metrics,
    /// The apps' hosts: a refused user's sessions are deleted on each.
    pub policies: &'a PolicySet,
    /// The auth host (sessions live there too).
    pub auth_host: &'a str,
    pub interval: Duration,
    /// The longest one refresh waits on the IdP: [`REFRESH_TIMEOUT`] (shorter in tests).
    pub refresh_timeout: Duration,
    pub groups_claim: &'a str,
    pub username_claim: &'a str,
    /// True with `scim: { groups: directory }`: groups come from the directory, not from
    /// refreshed claims.
    pub directory_owns_groups: bool,
}

impl ClaimsRefresher<'_> {
    /// Takes the logins due now (held for [`LEASE_MS`]).
    pub async fn take_due(&self) -> Result<Vec<ClaimsRefreshRecord>, StoreError> {
        self.store
            .take_claims_refreshes(now_ms(), LEASE_MS, BATCH)
            .await
    }

    /// Refreshes one taken login and counts how it went.
    pub async fn refresh(&self, login: &ClaimsRefreshRecord) -> Result<Outcome, RefreshError> {
        let outcome = self.refresh_uncounted(login).await;
        let label = match &outcome {
            Ok(outcome) => outcome.label(),
            Err(_) => Outcome::Failed.label(),
        };
        self.metrics
            .claims_refreshes
            .with_label_values(&[label])
            .inc();
        outcome
    }

    async fn refresh_uncounted(
        &self,
        login: &ClaimsRefreshRecord,
    ) -> Result<Outcome, RefreshError> {
        let owner = SealedFor {
            iss: &login.iss,
            sub: &login.sub,
            login_id: &login.login_id,
        };
        let Ok(token) = self.seal.open(&login.refresh_token, &owner) else {
            // Sealed under another client secret: this login can no longer be refreshed; its
            // sessions run to their timeouts and the row goes with them.
            tracing::warn!(login = %login.login_id, "a stored refresh token cannot be opened (client secret changed?): not refreshed again");
            let recorded = self.finish(login, None, None, i64::MAX, 0, true).await?;
            return Ok(Outcome::Unreadable.if_recorded(recorded));
        };
        if login.iss.trim_end_matches('/') != self.oidc.issuer().trim_end_matches('/') {
            // A login at an issuer no longer configured: nothing to ask.
            let recorded = self.finish(login, None, None, i64::MAX, 0, true).await?;
            return Ok(Outcome::Unreadable.if_recorded(recorded));
        }
        if !self.store.login_has_sessions(login).await? {
            // Logged out (or timed out) since: nothing to refresh, and a refusal now (an
            // RP-initiated logout ends the IdP session too) must not end the user's other
            // logins. The sweep deletes the row.
            let recorded = self.finish(login, None, None, i64::MAX, 0, true).await?;
            return Ok(Outcome::Ended.if_recorded(recorded));
        }
        let refreshed =
            match tokio::time::timeout(self.refresh_timeout, self.oidc.refresh(&token, &login.sub))
                .await
            {
                Ok(Ok(refreshed)) => refreshed,
                Ok(Err(OidcError::Refused(why))) => return self.refused(login, &why).await,
                Ok(Err(e)) => return self.failed(login, &e.to_string()).await,
                Err(_) => return self.failed(login, "the IdP took too long").await,
            };
        let rotated = refreshed
            .refresh_token
            .as_ref()
            .map(|t| self.seal.seal(t.expose(), &owner))
            .transpose()?;
        let next = now_ms() + self.interval.as_millis() as i64;
        let new_groups = self.groups_in(refreshed.claims, login);
        let Some(groups) = new_groups.filter(|g| login.groups.as_ref() != Some(g)) else {
            let recorded = self
                .finish(login, rotated.as_deref(), None, next, 0, true)
                .await?;
            return Ok(Outcome::Unchanged.if_recorded(recorded));
        };
        // The rotated token first, keeping the lease: the old one may be spent, and losing
        // the new one would make the next refresh look like a revocation. Then the job, then
        // the groups: if either write fails, the next refresh sees the change again and
        // queues it again (a mover runs twice harmlessly).
        if !self
            .finish(login, rotated.as_deref(), None, next, 0, false)
            .await?
        {
            return Ok(Outcome::LeaseLost);
        }
        let list: Value = serde_json::from_str(&groups).unwrap_or(Value::Null);
        // What the sessions held before, so a retried job can tell a newer change from none.
        let previous: Value = login
            .groups
            .as_deref()
            .and_then(|g| serde_json::from_str(g).ok())
            .unwrap_or(Value::Null);
        let regroup = job(
            "regroup",
            json!({ "iss": login.iss, "sub": login.sub, "groups": list, "previous": previous }),
            BY,
            "groups changed at the IdP",
        )?;
        self.store.enqueue_lifecycle_jobs(&[regroup]).await?;
        let recorded = self
            .finish(login, None, Some(&groups), next, 0, true)
            .await?;
        tracing::info!(login = %login.login_id, sub = %login.sub, "groups changed at the IdP: mover queued");
        Ok(Outcome::Regrouped.if_recorded(recorded))
    }

    /// No answer from the IdP (down, slow, misconfigured): kept as it is, retried sooner.
    async fn failed(
        &self,
        login: &ClaimsRefreshRecord,
        error: &str,
    ) -> Result<Outcome, RefreshError> {
        let failures = login.failures + 1;
        tracing::warn!(login = %login.login_id, error, failures, "claims refresh failed; retrying later");
        let wait = retry_after(failures).min(self.interval.as_millis() as i64);
        let recorded = self
            .finish(login, None, None, now_ms() + wait, failures, true)
            .await?;
        Ok(Outcome::Failed.if_recorded(recorded))
    }

    /// The groups in refreshed claims, as stored; `None` when they say nothing about groups
    /// (no groups claim) or the directory owns groups.
    fn groups_in(
        &self,
        claims: serde_json::Map<String, Value>,
        login: &ClaimsRefreshRecord,
    ) -> Option<String> {
        if self.directory_owns_groups || !claims.contains_key(self.groups_claim) {
            return None;
        }
        let identity = Identity::from_claims(
            login.iss.clone(),
            login.sub.clone(),
            claims,
            self.username_claim,
            self.groups_claim,
        );
        Some(group_list(identity.groups()))
    }

    /// The IdP said no for good: every session of the user ends, on every host and replica.
    async fn refused(
        &self,
        login: &ClaimsRefreshRecord,
        why: &str,
    ) -> Result<Outcome, RefreshError> {
        // Only while this runner still holds the login: a refusal after another replica
        // took it may be the IdP refusing a token that replica already redeemed. (The row
        // is left as it was: should the deletes below fail, it is taken again once the
        // lease runs out, and the refusal retried.)
        let held = self
            .finish(login, None, None, login.next_at_ms, login.failures, false)
            .await?;
        if !held {
            tracing::warn!(login = %login.login_id, "the IdP refused a claims refresh after its lease ran out: left to the replica that holds it now");
            return Ok(Outcome::LeaseLost);
        }
        let mut hosts: Vec<String> = self
            .policies
            .apps()
            .iter()
            .flat_map(|app| app.hosts.iter().cloned())
            .collect();
        hosts.push(self.auth_host.to_string());
        let ended = self
            .store
            .delete_sessions_of(&login.iss, &login.sub, &hosts)
            .await?;
        self.sessions.forget(&ended);
        let logins = self
            .store
            .delete_claims_refreshes_of(&login.iss, &login.sub)
            .await?;
        tracing::warn!(sub = %login.sub, reason = %why, sessions = ended.len(), "the IdP refused a claims refresh: the user's sessions were ended");
        self.audit
            .record(
                AuditKind::ClaimsRefreshRefused,
                Subject {
                    iss: Some(&login.iss),
                    sub: Some(&login.sub),
                    ..Subject::default()
                },
                json!({ "reason": why, "sessions_ended": ended.len(), "logins": logins }),
            )
            .await;
        Ok(Outcome::Refused)
    }

    /// Records how the refresh went on the login (and releases it with `release`); false
    /// when it was not recorded: the lease ran out (another replica holds the login) or the
    /// login was deleted.
    async fn finish(
        &self,
        login: &ClaimsRefreshRecord,
        refresh_token: Option<&str>,
        groups: Option<&str>,
        next_at_ms: i64,
        failures: i64,
        release: bool,
    ) -> Result<bool, StoreError> {
        let applied = self
            .store
            .finish_claims_refresh(&ClaimsRefreshDone {
                login_id: &login.login_id,
                lease_until_ms: login.lease_until_ms,
                release,
                refresh_token,
                groups,
                next_at_ms,
                failures,
            })
            .await?;
        if !applied {
            tracing::warn!(login = %login.login_id, "a claims refresh was not recorded: its lease ran out (another replica holds the login) or the login was deleted");
        }
        Ok(applied)
    }
}
