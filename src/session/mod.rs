//! Server-side sessions with a moka cache in front of the store.
//!
//! The cookie holds a random 256-bit id; the store holds its SHA-256. A logged-in request is
//! answered from the cache alone: the entry carries the identity, the login time and an atomic
//! last-seen stamp, and idle and absolute timeouts are checked against the clock on every
//! request. `last_seen` is written back to the store at most once a minute, off the request
//! path. An entry older than `revalidate_after` is re-read from the store, which is how a
//! logout on another replica reaches this one.

pub mod cookie;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use moka::sync::Cache;
use prometheus::{IntCounter, IntCounterVec};

use crate::clock::now_secs;
use crate::config::SessionSettings;
use crate::identity::Identity;
use crate::random;
use crate::store::{SessionRecord, Store, StoreError};

/// How often (seconds) `last_seen` is written back to the store at most.
const TOUCH_EVERY_SECS: i64 = 60;

/// A session as the request path sees it.
#[derive(Debug)]
pub struct ActiveSession {
    pub id_hash: String,
    pub host: String,
    pub identity: Identity,
    pub sid: Option<String>,
    pub login_at: i64,
    last_seen: AtomicI64,
    persisted_last_seen: AtomicI64,
    loaded_at: i64,
}

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
    cache: Cache<String, Arc<ActiveSession>>,
    settings: SessionSettings,
    hits: IntCounter,
    misses: IntCounter,
}

/// A new session's id, for the cookie, and its record.
pub struct NewSession {
    pub cookie_value: String,
    pub record: SessionRecord,
}

impl Sessions {
    /// `lookups` is a counter with one label, `result`, that gets `hit` or `miss`.
    pub fn new(
        store: Arc<dyn Store>,
        settings: SessionSettings,
        capacity: u64,
        lookups: &IntCounterVec,
    ) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .time_to_idle(settings.idle_timeout)
            .build();
        Self {
            store,
            cache,
            settings,
            hits: lookups.with_label_values(&["hit"]),
            misses: lookups.with_label_values(&["miss"]),
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
        let id_hash = random::hash(token);
        let now = now_secs();
        let cached = self
            .cache
            .get(&id_hash)
            .filter(|s| now - s.loaded_at < self.settings.revalidate_after.as_secs() as i64);
        let session = match cached {
            Some(s) => {
                self.hits.inc();
                s
            }
            None => match self.load(&id_hash, now).await? {
                Some(s) => s,
                None => return Ok(Err(SessionEnd::Unknown)),
            },
        };
        if let Some(end) = self.expired(&session, now) {
            self.end(&id_hash).await?;
            return Ok(Err(end));
        }
        if session.host != host {
            return Ok(Err(SessionEnd::WrongHost));
        }
        session.last_seen.store(now, Ordering::Relaxed);
        self.touch_in_background(&session, now);
        Ok(Ok(session))
    }

    /// The check behind [`Self::resolve`], without the store: used by benches to price the
    /// cache-hit path alone.
    pub fn resolve_cached(&self, token: &str, host: &str) -> Option<Arc<ActiveSession>> {
        let id_hash = random::hash(token);
        let now = now_secs();
        let s = self.cache.get(&id_hash)?;
        if self.expired(&s, now).is_some() || s.host != host {
            return None;
        }
        s.last_seen.store(now, Ordering::Relaxed);
        Some(s)
    }

    fn expired(&self, s: &ActiveSession, now: i64) -> Option<SessionEnd> {
        if now - s.login_at >= self.settings.absolute_timeout.as_secs() as i64 {
            Some(SessionEnd::AbsoluteTimeout)
        } else if now - s.last_seen.load(Ordering::Relaxed)
            >= self.settings.idle_timeout.as_secs() as i64
        {
            Some(SessionEnd::IdleTimeout)
        } else {
            None
        }
    }

    async fn load(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<Arc<ActiveSession>>, SessionError> {
        self.misses.inc();
        let Some(record) = self.store.get_session(id_hash).await? else {
            return Ok(None);
        };
        let session = Arc::new(active_from_record(&record, now)?);
        self.cache.insert(id_hash.to_string(), session.clone());
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
        let id_hash = session.id_hash.clone();
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
            iss: identity.iss.clone(),
            sub: identity.sub.clone(),
            sid,
            identity: serde_json::to_string(identity)?,
            id_token,
            login_at,
            last_seen: now_secs(),
        };
        self.insert_record(&record).await?;
        Ok(NewSession {
            cookie_value,
            record,
        })
    }

    /// Stores a prepared record (used for hand-offs, whose id is chosen by the caller).
    pub async fn insert_record(&self, record: &SessionRecord) -> Result<(), SessionError> {
        self.store.put_session(record).await?;
        self.remember(record)
    }

    /// Puts a stored record into this replica's cache.
    pub fn remember(&self, record: &SessionRecord) -> Result<(), SessionError> {
        let active = active_from_record(record, now_secs())?;
        self.cache.insert(record.id_hash.clone(), Arc::new(active));
        Ok(())
    }

    /// Reads a session's full record (with the ID token, for logout).
    pub async fn record(&self, token: &str) -> Result<Option<SessionRecord>, SessionError> {
        Ok(self.store.get_session(&random::hash(token)).await?)
    }

    /// Ends one session everywhere this replica can see.
    pub async fn end(&self, id_hash: &str) -> Result<bool, SessionError> {
        self.cache.invalidate(id_hash);
        Ok(self.store.delete_session(id_hash).await?)
    }

    /// Drops sessions from this replica's cache (after the store already deleted them).
    pub fn forget(&self, id_hashes: &[String]) {
        for h in id_hashes {
            self.cache.invalidate(h);
        }
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
}

fn active_from_record(record: &SessionRecord, now: i64) -> Result<ActiveSession, SessionError> {
    let identity: Identity = serde_json::from_str(&record.identity)?;
    Ok(ActiveSession {
        id_hash: record.id_hash.clone(),
        host: record.host.clone(),
        identity,
        sid: record.sid.clone(),
        login_at: record.login_at,
        last_seen: AtomicI64::new(record.last_seen),
        persisted_last_seen: AtomicI64::new(record.last_seen),
        loaded_at: now,
    })
}
