//! A joiner ahead of sign-in: apps whose policy says `provisioning.ahead: true` get the
//! account of an active directory user as soon as the app's routes let that user in, before
//! the person ever signs in (the default stays JIT, at first sign-in).
//!
//! The account is keyed like any other, by the IdP's issuer and `sub`, so this needs the
//! link to name `sub` (`scim.link.claim: sub`): the directory value is then the `sub` the IdP
//! will sign in. The identity is built from the directory's attributes (userName as the
//! username claim, the primary email, names, the directory's groups); at the first sign-in
//! the token's claims take over, as for a mover (`claims_at` 0 loses to any real login).
//! The identity's link is recorded too, so that a leaver finds the account without a
//! sign-in.

use serde_json::{json, Value};

use super::effects::{job_for, text, EffectError, Effects};
use super::person_claims::person_claims;
use crate::auth::identity::Identity;
use crate::store::{AccountKey, DirectoryKey, DirectoryUser, IdentityLink, LifecycleJob};
use crate::telemetry::audit::{AuditKind, Subject};
use crate::util::clock::now_ms;

impl Effects<'_> {
    /// The directory made a user active (created them, or let them back): set up their
    /// accounts ahead of sign-in where the policy says so. Runs after the return's own
    /// steps, so an account the return just forgot is set up again here.
    pub(super) async fn join_user(
        &self,
        job: &LifecycleJob,
        user_id: &str,
    ) -> Result<usize, EffectError> {
        let (Some(directory), Some(user)) = (
            self.directory,
            self.store
                .get_directory_user(DirectoryKey::Id(user_id))
                .await?,
        ) else {
            return Ok(0);
        };
        let groups = directory.groups_of(&user.id).await?;
        self.join_ahead(job, &user, &groups).await
    }

    /// Queues a `joiner` job for the directory user, when some app creates accounts ahead.
    pub(super) async fn queue_joiner(
        &self,
        job: &LifecycleJob,
        user_id: &str,
    ) -> Result<(), EffectError> {
        let ahead = self
            .policies
            .apps()
            .iter()
            .any(|a| a.provisioning.as_ref().is_some_and(|c| c.ahead));
        if !ahead {
            return Ok(());
        }
        let joiner = job_for(job, "joiner", json!({ "user": user_id }))
            .map_err(|e| EffectError::Failed(e.to_string()))?;
        self.store.enqueue_lifecycle_jobs(&[joiner]).await?;
        Ok(())
    }

    /// The `joiner` job: the directory user's accounts in `ahead` apps.
    pub(super) async fn joiner(
        &self,
        job: &LifecycleJob,
        subject: &Value,
    ) -> Result<(), EffectError> {
        self.join_user(job, text(subject, "user")?)
            .await
            .map(|_| ())
    }

    /// Creates, through each `ahead` app's connector, the accounts `user` (with `groups`)
    /// should have and does not; returns how many were set up.
    pub(super) async fn join_ahead(
        &self,
        job: &LifecycleJob,
        user: &DirectoryUser,
        groups: &[String],
    ) -> Result<usize, EffectError> {
        let ahead: Vec<_> = self
            .policies
            .apps()
            .iter()
            .filter(|a| a.provisioning.as_ref().is_some_and(|c| c.ahead))
            .collect();
        let Some(directory) = self.directory.filter(|_| user.active && !ahead.is_empty()) else {
            return Ok(0);
        };
        if directory.link.claim != "sub" {
            tracing::warn!(claim = %directory.link.claim, "provisioning.ahead needs scim.link.claim: sub; no account is created ahead of sign-in");
            return Ok(0);
        }
        let Some(sub) = directory.link_value(user) else {
            return Ok(0);
        };
        let identity = identity_of(user, sub, groups, self.idp);
        let mut created = 0;
        for app in ahead {
            let Some(connector) = &app.provisioning else {
                continue;
            };
            if !app.admits_anywhere(&identity) {
                continue;
            }
            let key = AccountKey {
                app: &app.name,
                iss: &identity.iss,
                sub: &identity.sub,
            };
            if self.store.get_account(key).await?.is_some() {
                continue;
            }
            // Linked first: a leaver that comes before the first sign-in finds the account.
            self.store
                .put_identity_link(&IdentityLink {
                    iss: identity.iss.to_string(),
                    sub: identity.sub.to_string(),
                    link_value: sub.to_string(),
                    seen_at_ms: now_ms(),
                    removed_at_ms: None,
                })
                .await?;
            self.accounts
                .ensure(app, connector, &identity, 0, &job.id)
                .await
                .map_err(|e| EffectError::Failed(format!("{}: {e}", app.name)))?;
            created += 1;
            self.audit
                .record(
                    AuditKind::DirectoryJoiner,
                    Subject {
                        iss: Some(&identity.iss),
                        sub: Some(&identity.sub),
                        app: Some(&app.name),
                        request_id: None,
                    },
                    json!({ "by": job.by, "reason": job.reason, "user": user.id,
                            "userName": user.user_name, "groups": groups }),
                )
                .await;
        }
        Ok(created)
    }
}

/// The identity the IdP will sign in for this directory user, from the directory's
/// attributes: what connector templates can know before the first sign-in.
fn identity_of(
    user: &DirectoryUser,
    sub: &str,
    groups: &[String],
    idp: &crate::config::IdpSettings,
) -> Identity {
    let mut claims = person_claims(user);
    claims.insert(
        idp.username_claim.clone(),
        Value::String(user.user_name.clone()),
    );
    claims.insert(
        idp.groups_claim.clone(),
        Value::Array(groups.iter().cloned().map(Value::String).collect()),
    );
    claims.insert("sub".into(), Value::String(sub.to_string()));
    Identity::from_claims(
        idp.issuer.clone(),
        sub.to_string(),
        claims,
        &idp.username_claim,
        &idp.groups_claim,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_comes_from_the_directory_and_its_groups() {
        let user = DirectoryUser {
            id: "d-1".into(),
            user_name: "dana@example.test".into(),
            external_id: Some("u-dana".into()),
            active: true,
            resource: json!({
                "userName": "dana@example.test",
                "name": { "givenName": "Dana", "familyName": "Ng" },
                "emails": [{ "value": "d@home.test" }, { "value": "dana@example.test", "primary": true }]
            })
            .to_string(),
            version: 1,
            created_at_ms: 1,
            updated_at_ms: 1,
        };
        let idp = crate::config::IdpSettings {
            issuer: "https://idp.test".into(),
            client_id: "c".into(),
            client_secret: crate::config::Secret::new("s".to_string()),
            scopes: vec![],
            username_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
        };
        let id = identity_of(&user, "u-dana", &["engineering".into()], &idp);
        assert_eq!((&*id.iss, &*id.sub), ("https://idp.test", "u-dana"));
        assert_eq!(&*id.username, "dana@example.test");
        assert!(id.in_group("engineering"));
        assert_eq!(id.header_value("email").unwrap(), "dana@example.test");
        assert_eq!(id.header_value("given_name").unwrap(), "Dana");
    }
}
