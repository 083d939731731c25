//! The request path's view of provisioned accounts: an in-memory cache keyed by app and a
//! digest of the user's claims, so that a request for a known user reads no store and calls
//! no app. It is kept apart from first sight because it is the hot path: every request on a
//! provisioned app asks [`Accounts::is_current`] first.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Accounts;
use crate::auth::identity::Identity;
use crate::policy::AppPolicy;
use crate::store::AccountKey;
use crate::util::clock::now_secs;

/// How often a user's activity in an app is written to the store at most.
pub(super) const TOUCH_EVERY_SECS: i64 = 300;
/// How long an unused cache entry is kept: past `revalidate_after` it is only re-checked,
/// not dropped, so that a store outage does not lock out users this replica already knows.
pub(super) const KEEP_UNUSED: Duration = Duration::from_secs(3600);

pub(super) type CacheKey = (u64, [u8; 16]);

/// A provisioned account as the request path sees it.
#[derive(Debug)]
pub(super) struct Entry {
    app: Arc<str>,
    iss: Arc<str>,
    sub: Box<str>,
    last_seen_written: AtomicI64,
    /// When the store (or the app) last confirmed the account, in seconds.
    checked_at: i64,
    /// Set when these claims are older than what a newer login already sent to the app:
    /// the entry then vouches only for sessions that logged in before that time.
    valid_before: Option<i64>,
}

impl Accounts {
    /// The hot path: true if the user's account in `app` is known to be current for a
    /// session that logged in at `login_at`.
    pub fn is_current(&self, app: &AppPolicy, identity: &Identity, login_at: i64) -> bool {
        let Some(entry) = self.cache.get(&(app.key, identity.digest())) else {
            return false;
        };
        if entry.valid_before.is_some_and(|t| login_at >= t) {
            return false;
        }
        let now = now_secs();
        if now - entry.checked_at >= self.revalidate_after
            && !self.store_outage.within(now, self.revalidate_after)
        {
            return false;
        }
        let written = entry.last_seen_written.load(Ordering::Relaxed);
        if now - written >= TOUCH_EVERY_SECS
            && entry
                .last_seen_written
                .compare_exchange(written, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let store = self.store.clone();
            tokio::spawn(async move {
                let key = AccountKey {
                    app: &entry.app,
                    iss: &entry.iss,
                    sub: &entry.sub,
                };
                if let Err(e) = store.touch_account(key, now).await {
                    tracing::warn!(error = %e, "could not record account activity");
                }
            });
        }
        true
    }

    /// True if this replica has confirmed the account for these claims before (however
    /// long ago) and no newer login has superseded them.
    pub(super) fn known(&self, app: &AppPolicy, identity: &Identity, login_at: i64) -> bool {
        self.cache
            .get(&(app.key, identity.digest()))
            .is_some_and(|entry| entry.valid_before.is_none_or(|t| login_at < t))
    }

    /// Forgets every cached confirmation of the user's account in `app` (whatever their
    /// claims): after a deactivation or a return, the next request asks the store again.
    pub(super) fn forget_cached(&self, app: &str, iss: &str, sub: &str) {
        let (app, iss, sub): (Arc<str>, Arc<str>, Box<str>) = (app.into(), iss.into(), sub.into());
        if let Err(e) = self
            .cache
            .invalidate_entries_if(move |_, e| e.app == app && e.iss == iss && e.sub == sub)
        {
            tracing::error!(error = %e, "cannot drop cached accounts; clearing the cache");
            self.cache.invalidate_all();
        }
    }

    /// Marks the user's account in `app` as current (after the app or the store said so;
    /// benches use it to price the cache hit alone).
    pub fn remember(
        &self,
        app: &AppPolicy,
        identity: &Identity,
        last_seen_written: i64,
        valid_before: Option<i64>,
    ) {
        self.cache.insert(
            (app.key, identity.digest()),
            Arc::new(Entry {
                app: app.name.as_str().into(),
                iss: identity.iss.clone(),
                sub: identity.sub.clone(),
                last_seen_written: AtomicI64::new(last_seen_written),
                checked_at: now_secs(),
                valid_before,
            }),
        );
    }
}
