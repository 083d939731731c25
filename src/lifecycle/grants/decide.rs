//! Deciding on a grant: approve (the grant starts once enough approvers said yes), deny,
//! revoke; and what a user sees in the portal (their own grants, the requests they may
//! decide on). Every change is a compare-and-swap on the grant's version.

use serde::{Deserialize, Serialize};

use super::actor::Actor;
use super::{grant_type, GrantError, Grants};
use crate::auth::identity::Identity;
use crate::policy::{AppPolicy, PolicySet};
use crate::store::{AccountKey, GrantRecord};
use crate::telemetry::audit::AuditKind;
use crate::util::clock::now_ms;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Approval {
    iss: String,
    sub: String,
    username: String,
    at: i64,
}

impl Grants {
    /// An approver (never the requester) approves; the grant starts once enough have.
    pub async fn approve(
        &self,
        policies: &PolicySet,
        id: &str,
        actor: &Actor,
        scope: Option<&str>,
    ) -> Result<GrantRecord, GrantError> {
        let mut grant = self.scoped(id, scope).await?;
        let (_, kind) = grant_type(policies, &grant.app, &grant.grant_type)?;
        if grant.status != "pending" {
            return Err(GrantError::NotPending(grant.status));
        }
        if actor.is(&grant) {
            return Err(GrantError::SelfApproval);
        }
        if !actor.operator && !actor.in_any(&kind.approvers) {
            return Err(GrantError::NotAnApprover(kind.name.clone()));
        }
        self.refuse_if_deactivated(&grant.app, &grant.iss, &grant.sub, &grant.username, actor)
            .await?;
        let mut approvals: Vec<Approval> =
            serde_json::from_str(&grant.approvals).unwrap_or_default();
        if approvals
            .iter()
            .any(|a| a.iss == actor.iss && a.sub == actor.sub)
        {
            return Err(GrantError::AlreadyApproved);
        }
        let now = now_ms();
        approvals.push(Approval {
            iss: actor.iss.clone(),
            sub: actor.sub.clone(),
            username: actor.username.clone(),
            at: now,
        });
        grant.approvals = serde_json::to_string(&approvals).unwrap_or_else(|_| "[]".into());
        let enough = actor.operator || approvals.len() as u32 >= kind.required;
        if enough {
            grant.status = "active".into();
            grant.decided_at = Some(now);
            // The policy may have shortened the maximum since the request: it applies.
            let secs = grant.duration_secs.min(kind.max_duration.as_secs() as i64);
            grant.expires_at = Some(now + secs * 1000);
            if kind.end_call.is_some() {
                grant.end_call = Some("armed".into());
            }
        }
        self.commit(&mut grant).await?;
        self.record(AuditKind::GrantApproved, &grant, actor).await;
        if enough {
            self.record(AuditKind::GrantActivated, &grant, actor).await;
            self.forget(&grant.iss, &grant.sub);
            if let Ok((app, kind)) = grant_type(policies, &grant.app, &grant.grant_type) {
                self.start_call(app, kind, &grant);
            }
        }
        Ok(grant)
    }

    /// An approver (or operator) turns a pending request down.
    pub async fn deny(
        &self,
        policies: &PolicySet,
        id: &str,
        actor: &Actor,
        scope: Option<&str>,
    ) -> Result<GrantRecord, GrantError> {
        let mut grant = self.scoped(id, scope).await?;
        let (_, kind) = grant_type(policies, &grant.app, &grant.grant_type)?;
        if grant.status != "pending" {
            return Err(GrantError::NotPending(grant.status));
        }
        if !actor.operator && (actor.is(&grant) || !actor.in_any(&kind.approvers)) {
            return Err(GrantError::NotAnApprover(kind.name.clone()));
        }
        grant.status = "denied".into();
        grant.decided_at = Some(now_ms());
        grant.ended_by = Some(actor.username.clone());
        self.commit(&mut grant).await?;
        self.record(AuditKind::GrantDenied, &grant, actor).await;
        Ok(grant)
    }

    /// Ends a grant now: its owner (ending early), an approver of its type, or an operator.
    /// Takes effect on this replica's next request, and on others' within [`RECHECK_AFTER`](super::RECHECK_AFTER).
    pub async fn revoke(
        &self,
        policies: &PolicySet,
        id: &str,
        actor: &Actor,
        scope: Option<&str>,
    ) -> Result<GrantRecord, GrantError> {
        let mut grant = self.scoped(id, scope).await?;
        if !matches!(grant.status.as_str(), "pending" | "active") {
            return Err(GrantError::NotRevocable(grant.status));
        }
        let approver = grant_type(policies, &grant.app, &grant.grant_type)
            .map(|(_, kind)| actor.in_any(&kind.approvers))
            .unwrap_or(false);
        if !(actor.operator || actor.is(&grant) || approver) {
            return Err(GrantError::NotAllowedToRevoke);
        }
        grant.status = "revoked".into();
        let now = now_ms();
        let planned_end = grant.expires_at.unwrap_or(now);
        grant.expires_at = Some(grant.expires_at.map_or(now, |e| e.min(now)));
        grant.ended_by = Some(actor.username.clone());
        if grant.end_call.as_deref() == Some("armed") {
            grant.end_call = Some("pending".into());
        }
        self.commit(&mut grant).await?;
        self.forget(&grant.iss, &grant.sub);
        self.note_revoked(&grant.id, planned_end.max(now + 1));
        self.record(AuditKind::GrantRevoked, &grant, actor).await;
        Ok(grant)
    }

    /// Writes a changed grant as the next version of the one read; a concurrent change wins.
    pub(super) async fn commit(&self, grant: &mut GrantRecord) -> Result<(), GrantError> {
        let read = grant.version;
        grant.version += 1;
        if self.store.update_grant(grant, read).await? {
            Ok(())
        } else {
            Err(GrantError::Conflict)
        }
    }

    /// The grant `id`, if it belongs to the app in `scope` (any app for operators).
    async fn scoped(&self, id: &str, scope: Option<&str>) -> Result<GrantRecord, GrantError> {
        let grant = self
            .store
            .get_grant(id)
            .await?
            .ok_or(GrantError::NotFound)?;
        match scope {
            Some(app) if app != grant.app => Err(GrantError::NotFound),
            _ => Ok(grant),
        }
    }

    /// The user's own grants in `app`, and the pending requests they may decide on.
    pub async fn overview(
        &self,
        policies: &PolicySet,
        app: &AppPolicy,
        identity: &Identity,
    ) -> Result<(Vec<GrantRecord>, Vec<GrantRecord>), GrantError> {
        let key = AccountKey {
            app: &app.name,
            iss: &identity.iss,
            sub: &identity.sub,
        };
        let mine = self.store.grants_of(key).await?;
        let actor = Actor::user(identity);
        let pending = self
            .store
            .list_grants(Some(&app.name), Some("pending"))
            .await?;
        let to_decide = pending
            .into_iter()
            .filter(|g| {
                !actor.is(g)
                    && grant_type(policies, &g.app, &g.grant_type)
                        .is_ok_and(|(_, kind)| actor.in_any(&kind.approvers))
            })
            .collect();
        Ok((mine, to_decide))
    }
}
