//! A grant type's app calls (a named connector operation) for the grant owner's account:
//! the start call gives rights when a grant becomes active, the end call takes them back.
//! They live with provisioning because they use the account jitgate made and hold the same
//! lease; deciding when to make them is the grants module's business.

use super::client::Who;
use super::{Accounts, ProvisionError};
use crate::policy::connector::template::{AccountVars, TemplateContext};
use crate::policy::connector::Outcome;
use crate::policy::AppPolicy;
use crate::store::{AccountKey, GrantRecord};

/// Which of a grant's app calls is made: rights given (start) or taken back (end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantCall {
    Start,
    End,
}

impl Accounts {
    /// Makes a grant type's call (a named connector operation) for the grant owner's account
    /// in `app`; returns the app's status. The account must exist (jitgate made it at first
    /// sight); its stored attributes and id feed the templates.
    ///
    /// The call holds the user's lease, the one provisioning and deactivation hold, so a
    /// grant's start and end calls and a leaver reach the app one at a time and in order. A
    /// start call then re-reads the store: it is never made for a deactivated account, nor
    /// for a grant that ended meanwhile (its end call may already have been made). An end
    /// call is always made: it takes rights away.
    pub async fn grant_call(
        &self,
        app: &AppPolicy,
        operation: &str,
        grant: &GrantRecord,
        when: GrantCall,
    ) -> Result<u16, ProvisionError> {
        let key = AccountKey {
            app: &app.name,
            iss: &grant.iss,
            sub: &grant.sub,
        };
        let owner = self.operator_lease(app, key).await?;
        let result = self
            .grant_call_holding_lease(app, operation, grant, when, key)
            .await;
        if let Err(e) = self.store.release_provisioning(key, &owner).await {
            tracing::warn!(error = %e, "could not release a provisioning lease (it expires by itself)");
        }
        result
    }

    async fn grant_call_holding_lease(
        &self,
        app: &AppPolicy,
        operation: &str,
        grant: &GrantRecord,
        when: GrantCall,
        key: AccountKey<'_>,
    ) -> Result<u16, ProvisionError> {
        let connector = app.provisioning.as_deref().ok_or(ProvisionError::Refused {
            operation: "grant_call",
            status: 0,
        })?;
        let op = connector.named(operation).ok_or(ProvisionError::Refused {
            operation: "grant_call",
            status: 0,
        })?;
        let record = self
            .store
            .get_account(key)
            .await?
            .ok_or(ProvisionError::NoAccountId("grant_call"))?;
        if when == GrantCall::Start {
            if record.deactivated_at.is_some() {
                return Err(ProvisionError::Deactivated);
            }
            let now = crate::util::clock::now_ms();
            let still_active = self
                .store
                .get_grant(&grant.id)
                .await?
                .is_some_and(|g| g.status == "active" && g.expires_at.is_some_and(|e| e > now));
            if !still_active {
                return Err(ProvisionError::GrantEnded);
            }
        }
        let mut ctx: TemplateContext = serde_json::from_str(&record.attributes)
            .map_err(|e| ProvisionError::Store(format!("stored attributes: {e}")))?;
        ctx.account = Some(AccountVars {
            id: record.account_id.clone(),
        });
        let request = connector.request(op, &ctx)?;
        let who = Who {
            iss: key.iss,
            sub: key.sub,
            request_id: None,
        };
        let answer = self.client.call(connector, op, &request, who).await?;
        match answer.outcome {
            Outcome::Success => Ok(answer.status),
            _ => Err(ProvisionError::Refused {
                operation: "grant_call",
                status: answer.status,
            }),
        }
    }
}
