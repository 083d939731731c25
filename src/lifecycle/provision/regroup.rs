//! A mover without a request: the directory (or a claims refresh) changed a user's groups,
//! or the directory their email or name, so the account jitgate holds in an app is brought
//! in line at once, through the connector's `update`, instead of on the user's next visit.
//! Only when what jitgate would send changes (the mapped role, anything a template reads):
//! the same digest as first sight compares, so that visit then finds the account current
//! and calls nothing.

use serde_json::{json, Map, Value};

use crate::auth::identity::{groups_claim_of, replace_claims};

use super::client::Who;
use super::context::attrs_hash;
use super::deactivate::Because;
use super::{Accounts, ProvisionError};
use crate::policy::connector::template::TemplateContext;
use crate::policy::AppPolicy;
use crate::store::AccountKey;
use crate::telemetry::audit::{AuditKind, Subject};
use crate::util::clock::now_secs;

impl Accounts {
    /// Sends the app the user's account as `groups` make it (the connector's `update`, if
    /// the app has one and jitgate knows the account's id) and records it. Holds the user's
    /// lease. Returns whether anything changed; a deactivated or forgotten account is left
    /// alone.
    pub async fn regroup(
        &self,
        app: &AppPolicy,
        key: AccountKey<'_>,
        groups: &[String],
        groups_claim: &str,
        person: Option<&Map<String, Value>>,
        why: &Because<'_>,
    ) -> Result<bool, ProvisionError> {
        if app.provisioning.is_none() {
            return Ok(false);
        }
        let owner = self.operator_lease(app, key).await?;
        let result = self
            .regroup_holding_lease(app, key, groups, groups_claim, person, why)
            .await;
        if let Err(e) = self.store.release_provisioning(key, &owner).await {
            tracing::warn!(error = %e, "could not release a provisioning lease (it expires by itself)");
        }
        result
    }

    async fn regroup_holding_lease(
        &self,
        app: &AppPolicy,
        key: AccountKey<'_>,
        groups: &[String],
        groups_claim: &str,
        person: Option<&Map<String, Value>>,
        why: &Because<'_>,
    ) -> Result<bool, ProvisionError> {
        let Some(connector) = app.provisioning.as_deref() else {
            return Ok(false);
        };
        let Some(mut record) = self.store.get_account(key).await? else {
            return Ok(false);
        };
        if record.deactivated_at.is_some() {
            return Ok(false);
        }
        let mut ctx: TemplateContext = serde_json::from_str(&record.attributes)
            .map_err(|e| ProvisionError::Store(format!("stored attributes: {e}")))?;
        ctx.user.groups = groups.to_vec();
        // As the session's rewritten identity renders them, so its next visit compares equal.
        replace_claims(&mut ctx.claims, &groups_claim_of(groups, groups_claim));
        if let Some(person) = person {
            replace_claims(&mut ctx.claims, person);
        }
        ctx.roles = connector.roles_for(groups.iter().map(String::as_str));
        ctx.role = ctx.roles.first().cloned();
        ctx.account = None;
        let hash = attrs_hash(connector, &ctx)?;
        if hash == record.attrs_hash {
            return Ok(false);
        }
        let who = Who {
            iss: &record.iss,
            sub: &record.sub,
            request_id: None,
        };
        // Without the app's id for the account, an update template cannot be rendered: the
        // record is left as it is, so the next visit's first sight still sees a mover.
        if connector.update.is_some() && record.account_id.is_empty() {
            return Ok(false);
        }
        let call = connector.update.is_some();
        if call {
            self.update(connector, &ctx, &record.account_id, who)
                .await?;
        }
        record.attrs_hash = hash;
        record.attributes = serde_json::to_string(&ctx)
            .map_err(|e| ProvisionError::Store(format!("attributes: {e}")))?;
        record.updated_at = now_secs();
        if !self.store.put_account(&record).await? {
            return Ok(false);
        }
        self.audit
            .record(
                AuditKind::AccountUpdated,
                Subject {
                    iss: Some(&record.iss),
                    sub: Some(&record.sub),
                    app: Some(&app.name),
                    request_id: None,
                },
                json!({ "account_id": record.account_id, "roles": ctx.roles,
                        "called_app": call, "by": why.by, "reason": why.reason }),
            )
            .await;
        Ok(true)
    }
}
