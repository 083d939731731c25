//! Server-side sessions with a moka cache in front of the store.
//!
//! The cookie holds a random 256-bit id; the store holds its SHA-256. A logged-in request is
//! answered from the cache alone: the entry carries the identity, the login time and an atomic
//! last-seen stamp, and idle and absolute timeouts are checked against the clock on every
//! request. `last_seen` is written back to the store at most once a minute, off the request
//! path. An entry older than `revalidate_after` is re-read from the store, which is how a
//! logout on another replica reaches this one when the store cannot announce it (SQLite).
//! With PostgreSQL every ended session is announced, and `ops::reload` calls
//! [`Sessions::forget`] on every replica at once (announcements lost while the listening
//! connection was down are covered by `revalidate_after`).
//!
//! When the store cannot be read, a session this replica already holds keeps working (its
//! timeouts are still enforced from the cached entry), and for `revalidate_after` after a
//! failed read no request waits on the store to revalidate one: a store outage must not take
//! every app down. A session the replica does not hold cannot be checked and gets a 503.

pub mod cookie;
mod near_cache;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use moka::sync::Cache;
use prometheus::IntCounter;

use crate::auth::identity::Identity;
use crate::config::SessionSettings;
use crate::store::{SessionRecord, Store, StoreError, StoreOutage};
use crate::telemetry::metrics::hot::HotCounter;
use crate::util::cache_key::KeyHasherBuilder;
use crate::util::clock::now_secs;
use crate::util::random;

/// How often (seconds) `last_seen` is written back to the store at most.
const TOUCH_EVERY_SECS: i64 = 60;

/// A session as the request path sees it (kept small: one per live session is cached).
#[derive(Debug)]
pub struct ActiveSession {
    /// SHA-256 of the session id: the store's key.
    id_hash: [u8; 32],
    /// Shared between sessions of the same host.
    pub host: Arc<str>,
    pub identity: Identity,
    pub login_at: i64,
    last_seen: AtomicI64,
    persisted_last_seen: AtomicI64,
    loaded_at: i64,
}

impl ActiveSession {
    /// The id hash as the store knows it.
    pub fn id_hash(&self) -> String {
        random::encode_hash(&self.id_hash)
    }
}

/// The session id as the cookie carries it: the cache key. (The store only ever sees its
/// SHA-256; hashing, or even decoding, on every cache hit would cost more than the rest of
/// the session check.)
type SessionKey = [u8; random::TOKEN_LEN];

/// Why a presented session id does not give access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    Unknown,
    IdleTimeout,
    AbsoluteTimeout,
    /// The cookie was issued for another host.
    WrongHost,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("session record is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error(transparent)]
    Random(#[from] random::RandomError),
}

pub struct Sessions {
    store: Arc<dyn Store>,
    cache: Cache<SessionKey, Arc<ActiveSession>, KeyHasherBuilder>,
    settings: SessionSettings,
    hits: Arc<HotCounter>,
    misses: IntCounter,
    /// Hosts and issuers are few and repeat in every session: keep one copy of each.
    shared_text: std::sync::Mutex<std::collections::HashSet<Arc<str>>>,
    /// When (seconds) a store read last failed; see the module comment.
    store_outage: StoreOutage,
    /// Per-thread copies of the latest hits (see `near_cache`).
    near: near_cache::NearCache,
    /// Bumped before every `forget`: a store read that overlapped one does not put what it
    /// read back into the cache (see `load`).
    forgets: AtomicU64,
}

/// A new session's id, for the cookie, and its record.
pub struct NewSession {
    pub cookie_value: String,
    pub record: SessionRecord,
}

impl Sessions {
    /// `hits` and `misses` count cache lookups.
    pub fn new(
        store: Arc<dyn Store>,
        settings: SessionSettings,
        capacity: u64,
        hits: Arc<HotCounter>,
        misses: IntCounter,
    ) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .time_to_idle(settings.idle_timeout)
            .support_invalidation_closures()
            .build_with_hasher(KeyHasherBuilder::default());
        Self {
            store,
            cache,
            settings,
            hits,
            misses,
            shared_text: Default::default(),
            store_outage: StoreOutage::default(),
            near: near_cache::NearCache::default(),
            forgets: AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// The hot path: cookie token -> live session, from the cache when possible.
    pub async fn resolve(
        &self,
        token: &str,
        host: &str,
    ) -> Result<Result<Arc<ActiveSession>, SessionEnd>, SessionError> {
        let Some(key) = random::token_key(token) else {
            return Ok(Err(SessionEnd::Unknown));
        };
        let now = now_secs();
        let revalidate_after = self.settings.revalidate_after.as_secs() as i64;
        let session = match self.lookup(&key, now) {
            Some(s)
                if now - s.loaded_at < revalidate_after
                    || self.store_outage.within(now, revalidate_after) =>
            {
                self.hits.inc();
                s
            }
            // Boxed so the (rare) store round trip does not grow every request's future.
            stale => match Box::pin(self.load(token, key, now)).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    // Ended elsewhere (e.g. logout on another replica): never serve the
                    // cached copy again, not even during a later store outage.
                    if stale.is_some() {
                        self.drop_cached(&key);
                    }
                    return Ok(Err(SessionEnd::Unknown));
                }
                Err(e @ SessionError::Store(_)) => {
                    self.store_outage.failed(now);
                    let Some(s) = stale else { return Err(e) };
                    tracing::warn!(error = %e, "store unreachable: serving cached sessions without revalidating them");
                    s
                }
                Err(e) => return Err(e),
            },
        };
        if let Err(end) = self.admit(&session, host, now) {
            if end != SessionEnd::WrongHost {
                self.drop_cached(&key);
                // The session has ended whether or not the store hears of it now: its
                // timestamps end it on every replica, and the sweep deletes the row later.
                if let Err(e) = self.store.delete_session(&session.id_hash()).await {
                    tracing::warn!(error = %e, "could not delete an ended session");
                }
            }
            return Ok(Err(end));
        }
        self.touch_in_background(&session, now);
        Ok(Ok(session))
    }

    /// The check behind [`Self::resolve`], without the store: used by benches to price the
    /// cache-hit path alone.
    pub fn resolve_cached(&self, token: &str, host: &str) -> Option<Arc<ActiveSession>> {
        let now = now_secs();
        let s = self.lookup(&random::token_key(token)?, now)?;
        self.admit(&s, host, now).ok()?;
        Some(s)
    }

    /// Drops one session from the shared cache and every thread's copies.
    fn drop_cached(&self, key: &SessionKey) {
        self.cache.invalidate(key);
        self.near.invalidate();
    }

    /// The cached session for `key`: this thread's copy if it has a fresh one, else the
    /// shared cache's.
    fn lookup(&self, key: &SessionKey, now: i64) -> Option<Arc<ActiveSession>> {
        // A copy due for revalidation goes the long way, where the store is asked.
        let loaded_since = now - self.settings.revalidate_after.as_secs() as i64 + 1;
        let miss = match self.near.get(key, now, loaded_since) {
            Ok(session) => return Some(session),
            Err(miss) => miss,
        };
        let session = self.cache.get(key)?;
        self.near.put(miss, key, &session, now);
        Some(session)
    }

    /// The checks every use of a session passes: timeouts, then the host the cookie was
    /// issued for. On success the session counts as used now.
    fn admit(&self, s: &ActiveSession, host: &str, now: i64) -> Result<(), SessionEnd> {
        if now - s.login_at >= self.settings.absolute_timeout.as_secs() as i64 {
            return Err(SessionEnd::AbsoluteTimeout);
        }
        let last_seen = s.last_seen.load(Ordering::Relaxed);
        if now - last_seen >= self.settings.idle_timeout.as_secs() as i64 {
            return Err(SessionEnd::IdleTimeout);
        }
        if &*s.host != host {
            return Err(SessionEnd::WrongHost);
        }
        // Written at most once a second: a session's requests run on every worker thread,
        // and a store on each would make them all fight over this cache line.
        if last_seen < now {
            s.last_seen.store(now, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn load(
        &self,
        token: &str,
        key: SessionKey,
        now: i64,
    ) -> Result<Option<Arc<ActiveSession>>, SessionError> {
        self.misses.inc();
        let forgets = self.forgets.load(Ordering::SeqCst);
        let Some(record) = self.store.get_session(&random::hash(token)).await? else {
            return Ok(None);
        };
        let session = Arc::new(self.active_from_record(&record, now)?);
        self.cache.insert(key, session.clone());
        // A `forget` that began while the store was read may have missed this entry (moka
        // applies it to entries inserted before it only): the session may have ended since.
        // This request read it while it still lived; later ones must ask the store again.
        if self.forgets.load(Ordering::SeqCst) != forgets {
            self.drop_cached(&key);
        }
        Ok(Some(session))
    }

    fn touch_in_background(&self, session: &Arc<ActiveSession>, now: i64) {
        let persisted = session.persisted_last_seen.load(Ordering::Relaxed);
        if now - persisted < TOUCH_EVERY_SECS {
            return;
        }
        // Only one request per minute wins the right to write.
        if session
            .persisted_last_seen
            .compare_exchange(persisted, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let store = self.store.clone();
        let id_hash = session.id_hash();
        tokio::spawn(async move {
            if let Err(e) = store.touch_session(&id_hash, now).await {
                tracing::warn!(error = %e, "could not record session activity");
            }
        });
    }

    /// Creates and stores a new session (always a new id: no fixation).
    pub async fn create(
        &self,
        host: &str,
        identity: &Identity,
        sid: Option<String>,
        id_token: String,
        login_at: i64,
    ) -> Result<NewSession, SessionError> {
        let cookie_value = random::token()?;
        let record = SessionRecord {
            id_hash: random::hash(&cookie_value),
            host: host.to_string(),
            iss: identity.iss.to_string(),
            sub: identity.sub.to_string(),
            sid,
            identity: serde_json::to_string(identity)?,
            id_token,
            login_at,
            last_seen: now_secs(),
        };
        self.insert_record(&cookie_value, &record).await?;
        Ok(NewSession {
            cookie_value,
            record,
        })
    }

    /// Stores a prepared record for the session id `token` (its `id_hash` must match).
    pub async fn insert_record(
        &self,
        token: &str,
        record: &SessionRecord,
    ) -> Result<(), SessionError> {
        self.store.put_session(record).await?;
        self.remember(token, record)
    }

    /// Puts a stored record into this replica's cache under its session id.
    pub fn remember(&self, token: &str, record: &SessionRecord) -> Result<(), SessionError> {
        let key = random::token_key(token)
            .ok_or_else(|| StoreError::Corrupt("session id is not a token".into()))?;
        let active = self.active_from_record(record, now_secs())?;
        self.cache.insert(key, Arc::new(active));
        Ok(())
    }

    /// Reads a session's full record (with the ID token, for logout).
    pub async fn record(&self, token: &str) -> Result<Option<SessionRecord>, SessionError> {
        Ok(self.store.get_session(&random::hash(token)).await?)
    }

    /// Ends one session everywhere this replica can see.
    pub async fn end(&self, id_hash: &str) -> Result<bool, SessionError> {
        // Store first: a lookup that reads the store after `forget` then finds nothing to
        // cache again.
        let deleted = self.store.delete_session(id_hash).await;
        self.forget(&[id_hash.to_string()]);
        Ok(deleted?)
    }

    /// Drops sessions from this replica's cache (after the store already deleted them).
    /// Takes effect on the next lookup: moka checks pending invalidations on every read.
    pub fn forget(&self, id_hashes: &[String]) {
        let doomed: Vec<[u8; 32]> = id_hashes
            .iter()
            .filter_map(|h| random::decode_hash(h))
            .collect();
        if doomed.is_empty() {
            return;
        }
        self.forgets.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self
            .cache
            .invalidate_entries_if(move |_, s| doomed.contains(&s.id_hash))
        {
            tracing::error!(error = %e, "cannot drop ended sessions from the cache; clearing it");
            self.cache.invalidate_all();
        }
        self.near.invalidate();
    }

    /// Number of cached sessions (for metrics and benches).
    pub fn cached(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Deletes expired sessions from the store; run periodically.
    pub async fn sweep(&self) -> Result<u64, SessionError> {
        let now = now_secs();
        Ok(self
            .store
            .delete_expired_sessions(
                now - self.settings.idle_timeout.as_secs() as i64,
                now - self.settings.absolute_timeout.as_secs() as i64,
            )
            .await?)
    }

    fn active_from_record(
        &self,
        record: &SessionRecord,
        now: i64,
    ) -> Result<ActiveSession, SessionError> {
        let mut identity: Identity = serde_json::from_str(&record.identity)?;
        identity.share_issuer(&self.shared(&identity.iss));
        let id_hash = random::decode_hash(&record.id_hash).ok_or_else(|| {
            StoreError::Corrupt("session id hash is not base64url SHA-256".into())
        })?;
        Ok(ActiveSession {
            id_hash,
            host: self.shared(&record.host),
            identity,
            login_at: record.login_at,
            last_seen: AtomicI64::new(record.last_seen),
            persisted_last_seen: AtomicI64::new(record.last_seen),
            loaded_at: now,
        })
    }

    fn shared(&self, text: &str) -> Arc<str> {
        let Ok(mut set) = self.shared_text.lock() else {
            return Arc::from(text);
        };
        if let Some(existing) = set.get(text) {
            return existing.clone();
        }
        let new: Arc<str> = Arc::from(text);
        if set.len() < 1024 {
            set.insert(new.clone());
        }
        new
    }
}
