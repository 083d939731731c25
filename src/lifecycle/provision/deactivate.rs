//! Operator actions on an account: deactivate (a leaver: the app's `deactivate` call, the
//! user's sessions on the app's hosts ended, the record marked) and reactivate (the
//! connector's `reactivate` and the mark cleared, or the record forgotten so the next visit
//! runs first sight again). Both hold the user's lease, so no provisioning runs at the same
//! time.

use serde_json::json;

use super::client::Who;
use super::create_update::refused;
use super::{Accounts, ProvisionError};
use crate::policy::connector::template::{AccountVars, TemplateContext};
use crate::policy::connector::{OpName, Outcome};
use crate::policy::AppPolicy;
use crate::store::{AccountKey, AccountRecord};
use crate::telemetry::audit::{AuditKind, Subject};
use crate::util::clock::now_secs;

/// Who asked for a lifecycle change and why, for its audit event.
#[derive(Debug, Clone, Copy)]
pub struct Because<'a> {
    /// `operator:<name>` for the command line.
    pub by: &'a str,
    pub reason: &'a str,
}

impl Accounts {
    /// Leaver: calls the connector's `deactivate` (if any), ends the user's sessions on the
    /// app's hosts and marks the record, holding the user's lease so no provisioning runs
    /// at the same time. Returns how many sessions ended and the app's status.
    pub async fn deactivate(
        &self,
        app: &AppPolicy,
        record: &AccountRecord,
        why: &Because<'_>,
    ) -> Result<(usize, Option<u16>), ProvisionError> {
        let key = AccountKey {
            app: &app.name,
            iss: &record.iss,
            sub: &record.sub,
        };
        let owner = self.operator_lease(app, key).await?;
        let result = self.deactivate_holding_lease(app, key, record, why).await;
        if let Err(e) = self.store.release_provisioning(key, &owner).await {
            tracing::warn!(error = %e, "could not release a provisioning lease (it expires by itself)");
        }
        result
    }

    /// Undoes a deactivation. With a connector `reactivate` (and the app's id for the
    /// account), the app is told at once and the record's mark cleared, so jitgate keeps
    /// holding the account (a later leaver finds it). Otherwise, or when the app no longer
    /// has the account, jitgate forgets its record and the user's next visit runs first
    /// sight again (lookup or create, then update, e.g. with `active: true`).
    pub async fn reactivate(
        &self,
        app: &AppPolicy,
        record: &AccountRecord,
    ) -> Result<(), ProvisionError> {
        let key = AccountKey {
            app: &app.name,
            iss: &record.iss,
            sub: &record.sub,
        };
        let owner = self.operator_lease(app, key).await?;
        let result = self.reactivate_holding_lease(app, key, record).await;
        self.forget_cached(&app.name, &record.iss, &record.sub);
        if let Err(e) = self.store.release_provisioning(key, &owner).await {
            tracing::warn!(error = %e, "could not release a provisioning lease (it expires by itself)");
        }
        let called_app = result?;
        self.audit
            .record(
                AuditKind::AccountReactivated,
                Subject {
                    iss: Some(&record.iss),
                    sub: Some(&record.sub),
                    app: Some(&app.name),
                    request_id: None,
                },
                json!({ "account_id": record.account_id, "called_app": called_app }),
            )
            .await;
        Ok(())
    }

    /// Returns whether the app was told (`reactivate` answered success).
    async fn reactivate_holding_lease(
        &self,
        app: &AppPolicy,
        key: AccountKey<'_>,
        record: &AccountRecord,
    ) -> Result<bool, ProvisionError> {
        let record = self
            .store
            .get_account(key)
            .await?
            .unwrap_or_else(|| record.clone());
        let connector = app
            .provisioning
            .as_deref()
            .filter(|c| c.reactivate.is_some() && !record.account_id.is_empty());
        if let Some(connector) = connector {
            let mut ctx: TemplateContext = serde_json::from_str(&record.attributes)
                .map_err(|e| ProvisionError::Store(format!("stored attributes: {e}")))?;
            ctx.account = Some(AccountVars {
                id: record.account_id.clone(),
            });
            let who = Who {
                iss: &record.iss,
                sub: &record.sub,
                request_id: None,
            };
            let answer = self.call(connector, OpName::Reactivate, &ctx, who).await?;
            match answer.outcome {
                Outcome::Success => {
                    self.store.reactivate_account(key, now_secs()).await?;
                    return Ok(true);
                }
                // The app lost the account: the next visit creates it again.
                Outcome::NotFound => {}
                _ => return Err(refused(OpName::Reactivate, &answer)),
            }
        }
        self.store.forget_account(key).await?;
        Ok(false)
    }

    async fn deactivate_holding_lease(
        &self,
        app: &AppPolicy,
        key: AccountKey<'_>,
        record: &AccountRecord,
        why: &Because<'_>,
    ) -> Result<(usize, Option<u16>), ProvisionError> {
        // The record as it is now (a mover may have changed it since it was listed).
        let record = self
            .store
            .get_account(key)
            .await?
            .unwrap_or_else(|| record.clone());
        let who = Who {
            iss: &record.iss,
            sub: &record.sub,
            request_id: None,
        };
        let mut app_status = None;
        if let Some(connector) = &app.provisioning {
            // Without the app's id for the account, a template that needs it cannot be
            // rendered: the account is still marked and its sessions still end.
            let id_needed = record.account_id.is_empty();
            if connector.deactivate.is_some() && !id_needed {
                let mut ctx: TemplateContext = serde_json::from_str(&record.attributes)
                    .map_err(|e| ProvisionError::Store(format!("stored attributes: {e}")))?;
                ctx.account = Some(AccountVars {
                    id: record.account_id.clone(),
                });
                let answer = self.call(connector, OpName::Deactivate, &ctx, who).await?;
                match answer.outcome {
                    Outcome::Success | Outcome::NotFound => app_status = Some(answer.status),
                    _ => return Err(refused(OpName::Deactivate, &answer)),
                }
            }
        }
        self.store.deactivate_account(key, now_secs()).await?;
        self.forget_cached(&app.name, &record.iss, &record.sub);
        let ended = self
            .store
            .delete_sessions_of(&record.iss, &record.sub, &app.hosts)
            .await?;
        self.audit
            .record(
                AuditKind::AccountDeactivated,
                Subject {
                    iss: Some(&record.iss),
                    sub: Some(&record.sub),
                    app: Some(&app.name),
                    request_id: None,
                },
                json!({
                    "account_id": record.account_id, "sessions_ended": ended.len(),
                    "app_status": app_status, "by": why.by, "reason": why.reason,
                }),
            )
            .await;
        Ok((ended.len(), app_status))
    }
}
