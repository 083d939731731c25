//! The app calls that make a user's account ready once the lease is held: a new user is
//! looked up or created (then updated when an existing account was linked), a mover is
//! updated; the record is written only after the app said yes. Also `call`, which renders
//! and sends one of the connector's standard operations (deactivation uses it too).

use serde_json::json;

use super::client::{Answer, Who};
use super::first_sight::Ask;
use super::{Accounts, ProvisionError};
use crate::auth::identity::Identity;
use crate::policy::connector::template::{AccountVars, TemplateContext};
use crate::policy::connector::{Connector, OpName, Outcome};
use crate::policy::AppPolicy;
use crate::store::{AccountKey, AccountRecord};
use crate::telemetry::audit::{AuditKind, Subject};
use crate::util::clock::now_secs;

impl Accounts {
    /// A new user: find or create the account, then write the record.
    pub(super) async fn provision(
        &self,
        ask: &Ask,
        ctx: TemplateContext,
        hash: String,
        who: Who<'_>,
    ) -> Result<(), ProvisionError> {
        let (app, connector, identity) = (&*ask.app, &*ask.connector, &ask.identity);
        let mut account_id = None;
        let mut linked = false;
        if connector.lookup.is_some() {
            if let Some(id) = self.lookup(connector, &ctx, who).await? {
                account_id = Some(id);
                linked = true;
            }
        }
        if !linked {
            let answer = self.call(connector, OpName::Create, &ctx, who).await?;
            match answer.outcome {
                Outcome::Success => {
                    account_id = connector.create.account_id(&answer.body);
                    if account_id.is_none() && connector.create.account_id.is_some() {
                        return Err(ProvisionError::NoAccountId("create"));
                    }
                    if account_id.is_none() && connector.lookup.is_some() {
                        account_id = self.lookup(connector, &ctx, who).await?;
                    }
                }
                Outcome::Exists => {
                    linked = true;
                    if connector.lookup.is_some() {
                        account_id = self.lookup(connector, &ctx, who).await?;
                        if account_id.is_none() {
                            return Err(ProvisionError::NoAccountId("lookup"));
                        }
                    }
                }
                _ => return Err(refused(OpName::Create, &answer)),
            }
        }
        let account_id = account_id.unwrap_or_default();
        if linked && connector.update.is_some() {
            self.update(connector, &ctx, &account_id, who).await?;
        }
        let now = now_secs();
        let record = AccountRecord {
            app: app.name.clone(),
            iss: identity.iss.to_string(),
            sub: identity.sub.to_string(),
            username: identity.username.to_string(),
            account_id: account_id.clone(),
            attrs_hash: hash,
            attributes: serde_json::to_string(&ctx).unwrap_or_default(),
            claims_at: ask.login_at,
            created_at: now,
            updated_at: now,
            last_seen: now,
            deactivated_at: None,
        };
        if !self.store.put_account(&record).await? {
            return self.not_written(&record).await;
        }
        let kind = if linked {
            AuditKind::AccountLinked
        } else {
            AuditKind::AccountCreated
        };
        self.audit
            .record(
                kind,
                subject(app, identity, who),
                json!({ "account_id": account_id, "roles": ctx.roles }),
            )
            .await;
        Ok(())
    }

    /// A known user whose attributes changed: update the account, then the record.
    pub(super) async fn mover(
        &self,
        ask: &Ask,
        ctx: TemplateContext,
        hash: String,
        mut record: AccountRecord,
        who: Who<'_>,
    ) -> Result<(), ProvisionError> {
        let (app, connector, identity) = (&*ask.app, &*ask.connector, &ask.identity);
        if connector.update.is_some() {
            self.update(connector, &ctx, &record.account_id, who)
                .await?;
        }
        record.attrs_hash = hash;
        record.attributes = serde_json::to_string(&ctx).unwrap_or_default();
        record.username = identity.username.to_string();
        record.claims_at = ask.login_at;
        record.updated_at = now_secs();
        record.last_seen = now_secs();
        if !self.store.put_account(&record).await? {
            return self.not_written(&record).await;
        }
        self.audit
            .record(
                AuditKind::AccountUpdated,
                subject(app, identity, who),
                json!({ "account_id": record.account_id, "roles": ctx.roles, "called_app": connector.update.is_some() }),
            )
            .await;
        Ok(())
    }

    /// `put_account` declined: the account was deactivated meanwhile (refuse), or a newer
    /// login's claims are already recorded (theirs stand; this request may go on).
    async fn not_written(&self, record: &AccountRecord) -> Result<(), ProvisionError> {
        let key = AccountKey {
            app: &record.app,
            iss: &record.iss,
            sub: &record.sub,
        };
        match self.store.get_account(key).await? {
            Some(r) if r.deactivated_at.is_none() => Ok(()),
            _ => Err(ProvisionError::Deactivated),
        }
    }

    async fn lookup(
        &self,
        connector: &Connector,
        ctx: &TemplateContext,
        who: Who<'_>,
    ) -> Result<Option<String>, ProvisionError> {
        let answer = self.call(connector, OpName::Lookup, ctx, who).await?;
        match answer.outcome {
            Outcome::Success => Ok(connector
                .lookup
                .as_ref()
                .and_then(|op| op.account_id(&answer.body))),
            Outcome::NotFound => Ok(None),
            _ => Err(refused(OpName::Lookup, &answer)),
        }
    }

    pub(super) async fn update(
        &self,
        connector: &Connector,
        ctx: &TemplateContext,
        account_id: &str,
        who: Who<'_>,
    ) -> Result<(), ProvisionError> {
        let mut ctx = ctx.clone();
        ctx.account = Some(AccountVars {
            id: account_id.to_string(),
        });
        let answer = self.call(connector, OpName::Update, &ctx, who).await?;
        match answer.outcome {
            Outcome::Success => Ok(()),
            _ => Err(refused(OpName::Update, &answer)),
        }
    }

    /// Builds and sends one operation (which must be configured).
    pub(super) async fn call(
        &self,
        connector: &Connector,
        op: OpName,
        ctx: &TemplateContext,
        who: Who<'_>,
    ) -> Result<Answer, ProvisionError> {
        let operation = connector.operation(op).ok_or(ProvisionError::Refused {
            operation: op.as_str(),
            status: 0,
        })?;
        let request = connector.request(operation, ctx)?;
        Ok(self
            .client
            .call(connector, operation, &request, who)
            .await?)
    }
}

fn subject<'a>(app: &'a AppPolicy, identity: &'a Identity, who: Who<'a>) -> Subject<'a> {
    Subject {
        iss: Some(&identity.iss),
        sub: Some(&identity.sub),
        app: Some(&app.name),
        request_id: who.request_id,
    }
}

pub(super) fn refused(op: OpName, answer: &Answer) -> ProvisionError {
    ProvisionError::Refused {
        operation: op.as_str(),
        status: answer.status,
    }
}
