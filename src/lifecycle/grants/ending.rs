//! How grants end other than by a decision: the sweep that marks grants whose time is up
//! as expired, a leaver's grants all ended at once (active ones revoked, pending ones
//! denied), and a mover's grants of types their new groups may not request. Enforcement never waits for these: the check compares expiry on every request.

use super::actor::Actor;
use super::{GrantError, Grants};
use crate::policy::AppPolicy;
use crate::store::{AccountKey, GrantRecord, StoreError};
use crate::telemetry::audit::AuditKind;
use crate::util::clock::now_ms;

impl Grants {
    /// Leaver: ends every grant the user has in `app`. Active grants are revoked (their end
    /// calls become due, made by [`Self::run_end_calls`]) and pending requests are denied,
    /// each audited with `actor` and `reason`. Returns how many were revoked and denied.
    pub async fn end_all_of(
        &self,
        key: AccountKey<'_>,
        actor: &Actor,
        reason: &str,
    ) -> Result<(usize, usize), GrantError> {
        self.end_where(key, actor, reason, |_| true).await
    }

    /// Mover: ends the user's open grants in `app` whose type the user may no longer
    /// request with `groups` (the type's `requesters`), like [`Self::end_all_of`]. A grant
    /// whose type left the policy ends too: nobody may request it any more.
    pub async fn end_unrequestable(
        &self,
        app: &AppPolicy,
        key: AccountKey<'_>,
        groups: &[String],
        actor: &Actor,
        reason: &str,
    ) -> Result<(usize, usize), GrantError> {
        self.end_where(key, actor, reason, |grant| {
            !app.grant_types
                .iter()
                .find(|t| t.name == grant.grant_type)
                .is_some_and(|t| t.requesters.iter().any(|r| groups.contains(r)))
        })
        .await
    }

    /// Ends the user's open grants that `doomed` picks; returns how many were revoked
    /// (active) and denied (pending).
    async fn end_where(
        &self,
        key: AccountKey<'_>,
        actor: &Actor,
        reason: &str,
        doomed: impl Fn(&GrantRecord) -> bool,
    ) -> Result<(usize, usize), GrantError> {
        let (mut revoked, mut denied) = (0, 0);
        // A grant changed meanwhile (approved, say) is read again and ended in its new state.
        for _ in 0..5 {
            let open: Vec<GrantRecord> = self
                .store
                .grants_of(key)
                .await?
                .into_iter()
                .filter(|g| matches!(g.status.as_str(), "pending" | "active") && doomed(g))
                .collect();
            if open.is_empty() {
                return Ok((revoked, denied));
            }
            for mut grant in open {
                let was_active = grant.status == "active";
                match self.end_one(&mut grant, actor, reason).await {
                    Ok(()) if was_active => revoked += 1,
                    Ok(()) => denied += 1,
                    Err(GrantError::Conflict) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Err(GrantError::Conflict)
    }

    /// Revokes an active grant or denies a pending one, for `reason`.
    pub(super) async fn end_one(
        &self,
        grant: &mut GrantRecord,
        actor: &Actor,
        reason: &str,
    ) -> Result<(), GrantError> {
        let now = now_ms();
        let planned_end = grant.expires_at.unwrap_or(now);
        let active = grant.status == "active";
        let kind = if active {
            grant.status = "revoked".into();
            grant.expires_at = Some(planned_end.min(now));
            if grant.end_call.as_deref() == Some("armed") {
                grant.end_call = Some("pending".into());
            }
            AuditKind::GrantRevoked
        } else {
            grant.status = "denied".into();
            grant.decided_at = Some(now);
            AuditKind::GrantDenied
        };
        grant.ended_by = Some(actor.username.clone());
        self.commit(grant).await?;
        self.forget(&grant.iss, &grant.sub);
        if active {
            self.note_revoked(&grant.id, planned_end.max(now + 1));
        }
        self.record_because(kind, grant, actor, Some(reason)).await;
        Ok(())
    }

    /// Marks grants whose time is up as expired (enforcement never waits for this: it
    /// compares the expiry on every request). Run every second by the control runtime.
    pub async fn expire_due(&self) -> Result<usize, StoreError> {
        let expired = self.store.expire_grants(now_ms()).await?;
        for grant in &expired {
            self.forget(&grant.iss, &grant.sub);
            self.record(AuditKind::GrantExpired, grant, &Actor::operator("clock"))
                .await;
        }
        Ok(expired.len())
    }
}
