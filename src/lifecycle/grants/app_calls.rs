//! A grant type's calls to the app: the start call when a grant becomes active (in the
//! background; the grant is active at the edge already) and the end calls that are due
//! after expiry or revoke (a failed one stays due for the next run). The calls themselves are made by
//! provisioning, which holds the account and its lease; this file decides when.

use std::sync::Arc;

use serde_json::json;

use super::{grant_type, Grants};
use crate::lifecycle::provision::GrantCall;
use crate::policy::{AppPolicy, GrantType, PolicySet};
use crate::store::{GrantRecord, StoreError};
use crate::telemetry::audit::{Audit, AuditKind, Subject};
use crate::util::clock::now_ms;

impl Grants {
    /// The grant type's start call, in the background (the grant is active at the edge
    /// already; the outcome is audited).
    pub(super) fn start_call(&self, app: &Arc<AppPolicy>, kind: &GrantType, grant: &GrantRecord) {
        let (Some(op), Some(accounts)) = (kind.start_call.clone(), self.accounts.clone()) else {
            return;
        };
        let (app, grant, audit) = (app.clone(), grant.clone(), self.audit.clone());
        tokio::spawn(async move {
            let result = accounts
                .grant_call(&app, &op, &grant, GrantCall::Start)
                .await;
            app_call_audit(&audit, &grant, "start", &op, &result).await;
        });
    }

    /// Makes the end calls that are due (after expiry or revoke), also those left over by a
    /// process that stopped. Failures stay due and are retried on the next run.
    pub async fn run_end_calls(&self, policies: &PolicySet) -> Result<usize, StoreError> {
        let due = self.store.take_end_calls(now_ms()).await?;
        let mut done = 0;
        for grant in due {
            let found = grant_type(policies, &grant.app, &grant.grant_type).ok();
            let call = found.and_then(|(app, kind)| Some((app, kind.end_call.clone()?)));
            let (Some((app, op)), Some(accounts)) = (call, self.accounts.as_ref()) else {
                // The policy no longer names an end call for this grant: nothing to make.
                self.store.finish_end_call(&grant.id, "done").await?;
                continue;
            };
            let result = accounts.grant_call(app, &op, &grant, GrantCall::End).await;
            app_call_audit(&self.audit, &grant, "end", &op, &result).await;
            let state = if result.is_ok() { "done" } else { "pending" };
            self.store.finish_end_call(&grant.id, state).await?;
            done += usize::from(result.is_ok());
        }
        Ok(done)
    }
}

async fn app_call_audit(
    audit: &Audit,
    grant: &GrantRecord,
    when: &str,
    op: &str,
    result: &Result<u16, crate::lifecycle::provision::ProvisionError>,
) {
    if let Err(e) = result {
        tracing::warn!(grant = %grant.id, call = when, error = %e, "grant app call failed");
    }
    audit
        .record(
            AuditKind::GrantAppCall,
            Subject {
                iss: Some(&grant.iss),
                sub: Some(&grant.sub),
                app: Some(&grant.app),
                request_id: None,
            },
            json!({
                "grant": grant.id, "when": when, "operation": op,
                "status": result.as_ref().ok(),
                "error": result.as_ref().err().map(|e| e.to_string()),
            }),
        )
        .await;
}
