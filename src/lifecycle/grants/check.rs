//! The per-request check of an `elevate:` route and the cache behind it: a user's active
//! grants, read from the store on a miss and kept for `recheck_after`; a change forgets a
//! user's entry at once. Also the replica's list of grants revoked before their time, which
//! cuts long-lived connections. Kept apart because it is the hot path: it must read no
//! store on a hit and never serve a grant past its expiry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;

use super::Grants;
use crate::auth::identity::Identity;
use crate::policy::AppPolicy;
use crate::store::{AccountKey, StoreError};
use crate::telemetry::audit::{AuditKind, Subject};
use crate::util::clock::now_ms;

/// An active grant as the request path sees it.
#[derive(Debug)]
pub struct ActiveGrant {
    pub id: String,
    pub grant_type: String,
    pub expires_at_ms: i64,
    used: AtomicBool,
}

#[derive(Debug)]
pub(super) struct UserGrants {
    iss: Arc<str>,
    sub: Box<str>,
    active: Vec<Arc<ActiveGrant>>,
}

impl Grants {
    /// The hot path of an `elevate:` route: the user's active grant of `grant_type`, if any.
    /// A cache hit reads no store; the expiry is compared with the clock on every call, so
    /// no request is served after `expires_at` even while the entry is cached.
    pub async fn check(
        &self,
        app: &AppPolicy,
        identity: &Identity,
        grant_type: &str,
    ) -> Result<Option<Arc<ActiveGrant>>, StoreError> {
        if let Some(found) = self.check_cached(app, identity, grant_type) {
            return Ok(found);
        }
        let user = Box::pin(self.load(app, identity)).await?;
        Ok(self.find(app, identity, &user, grant_type))
    }

    /// [`Self::check`] without the store: `None` when this user's grants are not cached.
    pub fn check_cached(
        &self,
        app: &AppPolicy,
        identity: &Identity,
        grant_type: &str,
    ) -> Option<Option<Arc<ActiveGrant>>> {
        let user = self.cache.get(&(app.key, identity.digest()))?;
        Some(self.find(app, identity, &user, grant_type))
    }

    fn find(
        &self,
        app: &AppPolicy,
        identity: &Identity,
        user: &UserGrants,
        grant_type: &str,
    ) -> Option<Arc<ActiveGrant>> {
        let now = now_ms();
        let found = user
            .active
            .iter()
            .find(|g| g.grant_type == grant_type && now < g.expires_at_ms)
            .cloned();
        if let Some(grant) = &found {
            if !grant.used.swap(true, Ordering::Relaxed) {
                self.first_use(app, identity, grant);
            }
        }
        found
    }

    async fn load(
        &self,
        app: &AppPolicy,
        identity: &Identity,
    ) -> Result<Arc<UserGrants>, StoreError> {
        let key = AccountKey {
            app: &app.name,
            iss: &identity.iss,
            sub: &identity.sub,
        };
        let generation = self.generation.load(Ordering::SeqCst);
        let rows = self.store.active_grants(key, now_ms()).await?;
        let user = Arc::new(UserGrants {
            iss: identity.iss.clone(),
            sub: identity.sub.clone(),
            active: rows
                .into_iter()
                .filter_map(|g| {
                    Some(Arc::new(ActiveGrant {
                        expires_at_ms: g.expires_at?,
                        used: AtomicBool::new(g.first_used_at.is_some()),
                        id: g.id,
                        grant_type: g.grant_type,
                    }))
                })
                .collect(),
        });
        // Cache it only if nothing changed while we read (else the next request reads again).
        let cache_key = (app.key, identity.digest());
        if self.generation.load(Ordering::SeqCst) == generation {
            self.cache.insert(cache_key, user.clone());
            if self.generation.load(Ordering::SeqCst) != generation {
                self.cache.invalidate(&cache_key);
            }
        }
        Ok(user)
    }

    fn first_use(&self, app: &AppPolicy, identity: &Identity, grant: &ActiveGrant) {
        let store = self.store.clone();
        let audit = self.audit.clone();
        let (id, app_name) = (grant.id.clone(), app.name.clone());
        let (iss, sub) = (identity.iss.to_string(), identity.sub.to_string());
        tokio::spawn(async move {
            match store.mark_grant_used(&id, now_ms()).await {
                Ok(true) => {
                    let subject = Subject {
                        iss: Some(&iss),
                        sub: Some(&sub),
                        app: Some(&app_name),
                        request_id: None,
                    };
                    audit
                        .record(AuditKind::GrantFirstUsed, subject, json!({ "grant": id }))
                        .await;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not record a grant's first use"),
            }
        });
    }

    /// Notes that grant `id` (planned to end at `until_ms`) was revoked.
    pub fn note_revoked(&self, id: &str, until_ms: i64) {
        let now = now_ms();
        let mut revoked = self
            .revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        revoked.retain(|_, until| *until > now);
        revoked.insert(id.to_string(), until_ms);
    }

    /// Whether grant `id` was revoked (as far as this replica has heard).
    pub fn is_revoked(&self, id: &str) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(id)
    }

    /// Forgets every cached grant (after notifications may have been lost).
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_all();
    }

    /// Forgets this replica's cached grants of one user (after any change to them, here or,
    /// announced by the store, on another replica).
    pub fn forget(&self, iss: &str, sub: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let (iss, sub) = (iss.to_string(), sub.to_string());
        // Only fails when invalidation closures are not enabled, which `new` does.
        let _ = self
            .cache
            .invalidate_entries_if(move |_, u| *u.iss == *iss && *u.sub == *sub);
    }
}
