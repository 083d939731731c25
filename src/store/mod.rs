//! Persistent state behind one small trait: sessions, login transactions, hand-offs, audit.
//!
//! The backend is chosen by URL scheme: `sqlite://PATH` (the embedded default; the file and
//! its directory are created and migrated on first run) or `postgres://…` for several
//! replicas sharing state. Both run the same SQL through sqlx's `Any` driver; what differs
//! (column types, auto-increment) lives in `migrations/sqlite` and `migrations/postgres`.
//! Nothing in the request path reads the store on a cache hit: callers cache in front of it.
//! Single-use things (login state, hand-off codes) are taken with `DELETE … RETURNING`, so two
//! racing requests can never both consume one.

mod sql;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use sql::SqlStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store is unreachable or failed: {0}")]
    Backend(#[from] sqlx::Error),
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare the store: {0}")]
    Setup(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

/// A server-side session. The cookie carries the id; the store only ever sees its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id_hash: String,
    /// The host the session cookie was issued for.
    pub host: String,
    pub iss: String,
    pub sub: String,
    /// The IdP's session id (`sid`), for back-channel logout.
    pub sid: Option<String>,
    /// The serialized [`crate::identity::Identity`].
    pub identity: String,
    /// Kept only as `id_token_hint` for RP-initiated logout; never logged.
    pub id_token: String,
    /// Unix seconds of the IdP login (the absolute timeout counts from here).
    pub login_at: i64,
    pub last_seen: i64,
}

/// State kept between the redirect to the IdP and its callback.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginTransaction {
    pub state_hash: String,
    /// SHA-256 of the browser-binding cookie set when the login started.
    pub browser_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub target_host: String,
    pub return_to: String,
    pub expires_at: i64,
}

/// A one-time code that moves a fresh login from the auth host to an app host.
#[derive(Debug, Clone, PartialEq)]
pub struct Handoff {
    pub code_hash: String,
    pub target_host: String,
    pub return_to: String,
    /// The session to create on the target host (its `id_hash`/`host` are replaced there).
    pub session: SessionRecord,
    pub expires_at: i64,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub at_ms: i64,
    pub kind: String,
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub app: Option<String>,
    pub request_id: Option<String>,
    /// JSON object with event-specific fields.
    pub detail: String,
}

/// Which sessions a back-channel logout token names.
#[derive(Debug, Clone, Copy)]
pub struct LogoutSelector<'a> {
    pub iss: &'a str,
    pub sub: Option<&'a str>,
    pub sid: Option<&'a str>,
}

#[async_trait]
pub trait Store: Send + Sync {
    async fn put_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError>;
    async fn touch_session(&self, id_hash: &str, last_seen: i64) -> Result<(), StoreError>;
    /// Deletes one session; returns whether it existed.
    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError>;
    /// Deletes every session matching a logout token; returns their id hashes.
    async fn delete_sessions_for_logout(
        &self,
        selector: LogoutSelector<'_>,
    ) -> Result<Vec<String>, StoreError>;
    /// Deletes sessions past their idle or absolute limit; returns how many.
    async fn delete_expired_sessions(
        &self,
        idle_before: i64,
        login_before: i64,
    ) -> Result<u64, StoreError>;

    async fn put_login_transaction(&self, txn: &LoginTransaction) -> Result<(), StoreError>;
    /// Removes and returns the transaction: a state can be used once.
    async fn take_login_transaction(
        &self,
        state_hash: &str,
    ) -> Result<Option<LoginTransaction>, StoreError>;

    async fn put_handoff(&self, handoff: &Handoff) -> Result<(), StoreError>;
    /// Removes and returns the hand-off: a code can be used once.
    async fn take_handoff(&self, code_hash: &str) -> Result<Option<Handoff>, StoreError>;

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// The newest `limit` events, newest first.
    async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError>;
    /// Cheap round trip for health checks.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the store named by `url`, creating and migrating it as needed.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    SqlStore::open(url).await
}
