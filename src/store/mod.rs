//! Persistent state behind one small trait: sessions, login transactions, hand-offs, audit,
//! accounts, grants, the company directory (SCIM users and groups), the lifecycle queue
//! (jobs that carry a directory change to sessions, grants and accounts, and identity links)
//! and the logins whose claims are refreshed (`session.refresh_claims`).
//!
//! The backend is chosen by URL scheme: `sqlite://PATH` (the embedded default; the file and
//! its directory are created and migrated on first run) or `postgres://…` for several
//! replicas sharing state. Both run the same SQL through sqlx's `Any` driver; what differs
//! (column types, auto-increment) lives in `migrations/sqlite` and `migrations/postgres`.
//! Nothing in the request path reads the store on a cache hit: callers cache in front of it.
//! Single-use things (login state, hand-off codes) are taken with `DELETE … RETURNING`, so two
//! racing requests can never both consume one.

mod accounts_sql;
mod audit_sql;
mod changes;
mod claims_refresh;
mod claims_refresh_sql;
mod directory;
mod directory_sql;
mod grants_sql;
mod lifecycle;
mod lifecycle_sql;
mod login_sql;
mod outage;
mod scim_requests;
mod sessions_sql;
mod sql;
#[cfg(test)]
mod tests;
mod url;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use changes::{GrantChange, SessionChange, GRANTS_CHANNEL, SESSIONS_CHANNEL};
pub use claims_refresh::{ClaimsRefreshDone, ClaimsRefreshRecord};
pub use directory::{DirectoryGroup, DirectoryKey, DirectoryUser, DirectoryWrite};
pub use lifecycle::{IdentityLink, LifecycleJob, QueueSummary};
pub use outage::StoreOutage;
pub use scim_requests::ScimRequest;
pub use sql::SqlStore;
pub use url::{backend_of, embedded as embedded_url, Backend, SCHEMES as URL_SCHEMES};

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
    /// The serialized [`crate::auth::identity::Identity`].
    pub identity: String,
    /// Kept only as `id_token_hint` for RP-initiated logout; never logged.
    pub id_token: String,
    /// Unix seconds of the IdP login (the absolute timeout counts from here).
    pub login_at: i64,
    pub last_seen: i64,
}

/// A session's stored identity, from what was read to what replaces it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionIdentityChange {
    pub id_hash: String,
    pub from: String,
    pub to: String,
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
    /// SHA-256 of the binding cookie the app host set (empty when that is the auth host).
    pub target_binding_hash: String,
    pub expires_at: i64,
}

/// A one-time code that moves a fresh login from the auth host to an app host.
#[derive(Debug, Clone, PartialEq)]
pub struct Handoff {
    pub code_hash: String,
    pub target_host: String,
    pub return_to: String,
    /// SHA-256 of the binding cookie the target host set in the browser that signed in:
    /// the code works only there.
    pub browser_hash: String,
    /// The auth host's session the code comes from. When the code is used, that session is
    /// read again by its `id_hash` (a leaver or mover may have changed it meanwhile) and
    /// copied to the target host.
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

/// A user's account in an app, as jitgate created or found it (keyed by app + iss + sub).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRecord {
    pub app: String,
    pub iss: String,
    pub sub: String,
    /// For people reading `jitgate accounts list`; never a key.
    pub username: String,
    /// The app's own id for the account ("" if the connector does not read one).
    pub account_id: String,
    /// SHA-256 of what jitgate last sent the app about the user (mover detection).
    pub attrs_hash: String,
    /// The template variables last used (JSON), so a leaver can be handled without a session.
    pub attributes: String,
    /// Login time (unix seconds) of the claims last sent: older claims never override them.
    pub claims_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_seen: i64,
    pub deactivated_at: Option<i64>,
}

/// One grant of elevated access, in any state. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantRecord {
    pub id: String,
    pub app: String,
    pub grant_type: String,
    pub iss: String,
    pub sub: String,
    pub username: String,
    pub purpose: String,
    pub ticket: Option<String>,
    pub duration_secs: i64,
    /// `pending`, `active`, `denied`, `revoked` or `expired`.
    pub status: String,
    /// JSON list of approvals: `{"iss", "sub", "username", "at"}`.
    pub approvals: String,
    pub requested_at: i64,
    pub decided_at: Option<i64>,
    pub expires_at: Option<i64>,
    /// Who denied or revoked it.
    pub ended_by: Option<String>,
    pub first_used_at: Option<i64>,
    /// Bumped by every change; updates name the version they read.
    pub version: i64,
    /// The app call due when the grant ends: `None`, `armed` (while active), `pending`
    /// (ended, not yet made), `running`, `done`.
    pub end_call: Option<String>,
}

/// Who a provisioning lease or account is about.
#[derive(Debug, Clone, Copy)]
pub struct AccountKey<'a> {
    pub app: &'a str,
    pub iss: &'a str,
    pub sub: &'a str,
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
    /// Deletes one session; returns whether it existed. Like every session delete below
    /// except the expiry sweep, it is announced to every process ([`Store::session_changes`]).
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

    async fn get_account(&self, key: AccountKey<'_>) -> Result<Option<AccountRecord>, StoreError>;
    /// Inserts the record, or replaces it unless it was deactivated (provisioning never
    /// brings a deactivated account back) or holds claims from a newer login (`claims_at`).
    /// Returns whether it was written.
    async fn put_account(&self, account: &AccountRecord) -> Result<bool, StoreError>;
    /// Marks an account deactivated at `at`.
    async fn deactivate_account(&self, key: AccountKey<'_>, at: i64) -> Result<(), StoreError>;
    /// Clears the deactivation mark (the app was told to undo it); returns whether a
    /// deactivated record was there.
    async fn reactivate_account(&self, key: AccountKey<'_>, at: i64) -> Result<bool, StoreError>;
    /// Removes the record (the account in the app stays); returns whether there was one.
    async fn forget_account(&self, key: AccountKey<'_>) -> Result<bool, StoreError>;
    async fn touch_account(&self, key: AccountKey<'_>, last_seen: i64) -> Result<(), StoreError>;
    async fn list_accounts(&self, app: &str) -> Result<Vec<AccountRecord>, StoreError>;
    /// Takes the right to act on `key`'s account for `lease_secs`, unless another owner
    /// holds a lease that has not expired. Expiry is judged by the database's clock, so
    /// replicas with skewed clocks agree. Returns whether `owner` holds it now.
    async fn claim_provisioning(
        &self,
        key: AccountKey<'_>,
        owner: &str,
        lease_secs: i64,
    ) -> Result<bool, StoreError>;
    async fn release_provisioning(
        &self,
        key: AccountKey<'_>,
        owner: &str,
    ) -> Result<(), StoreError>;
    /// Whether anyone holds an unexpired lease on `key` (by the database's clock).
    async fn provisioning_claimed(&self, key: AccountKey<'_>) -> Result<bool, StoreError>;
    /// Deletes the user's sessions on the given hosts; returns their id hashes.
    async fn delete_sessions_of(
        &self,
        iss: &str,
        sub: &str,
        hosts: &[String],
    ) -> Result<Vec<String>, StoreError>;

    /// Every session of one user, on every host.
    async fn sessions_of(&self, iss: &str, sub: &str) -> Result<Vec<SessionRecord>, StoreError>;
    /// Replaces sessions' identities (a mover's new groups), each only if the session still
    /// holds `from`, in one transaction. The changed sessions are announced like deletes
    /// ([`Store::session_changes`]): every process drops its cached copy and reads the new
    /// one. Returns the id hashes changed.
    async fn replace_session_identities(
        &self,
        changes: &[SessionIdentityChange],
    ) -> Result<Vec<String>, StoreError>;

    async fn insert_grant(&self, grant: &GrantRecord) -> Result<(), StoreError>;
    async fn get_grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError>;
    /// Writes `grant` (whose `version` is the next one) only if the stored version is still
    /// `read_version`. Returns whether it was written.
    async fn update_grant(
        &self,
        grant: &GrantRecord,
        read_version: i64,
    ) -> Result<bool, StoreError>;
    /// Grants of one app (or all apps) in one status (or any), newest first.
    async fn list_grants(
        &self,
        app: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<GrantRecord>, StoreError>;
    /// Every grant of one user in one app, newest first.
    async fn grants_of(&self, key: AccountKey<'_>) -> Result<Vec<GrantRecord>, StoreError>;
    /// Active grants of one user in one app that have not expired at `now_ms`.
    async fn active_grants(
        &self,
        key: AccountKey<'_>,
        now_ms: i64,
    ) -> Result<Vec<GrantRecord>, StoreError>;
    /// Records the first use of a grant; true only for the call that recorded it.
    async fn mark_grant_used(&self, id: &str, at_ms: i64) -> Result<bool, StoreError>;
    /// Marks active grants whose time is up as expired (an armed end call becomes pending)
    /// and returns them.
    async fn expire_grants(&self, now_ms: i64) -> Result<Vec<GrantRecord>, StoreError>;
    /// Takes one due end call to run: a pending one, or one left running for over a minute
    /// (its runner died). Returns the grants this caller now runs.
    async fn take_end_calls(&self, now_ms: i64) -> Result<Vec<GrantRecord>, StoreError>;
    /// Records how an end call went: `done`, or back to `pending` to retry.
    async fn finish_end_call(&self, id: &str, state: &str) -> Result<(), StoreError>;

    /// Creates (`read_version` None) or replaces (Some(v): only if the stored version is still
    /// v) a user. Create: version becomes 1, created_at_ms/updated_at_ms as given. Replace:
    /// version becomes v+1, created_at_ms is kept from the stored row. Duplicate when the id,
    /// the userName (case-insensitively) or the externalId belongs to another user; Missing
    /// when replacing an id that does not exist; Stale when the version moved. `jobs` are
    /// inserted in the same transaction, only when the result is Written.
    async fn put_directory_user(
        &self,
        user: &DirectoryUser,
        read_version: Option<i64>,
        jobs: &[LifecycleJob],
    ) -> Result<DirectoryWrite, StoreError>;
    /// One user by id, userName (case-insensitively) or externalId.
    async fn get_directory_user(
        &self,
        key: DirectoryKey<'_>,
    ) -> Result<Option<DirectoryUser>, StoreError>;
    /// Every user, oldest first (created_at_ms, then id): a stable order for pagination.
    async fn list_directory_users(&self) -> Result<Vec<DirectoryUser>, StoreError>;
    /// Deletes a user and their memberships; each group they were in gets version+1 and
    /// updated_at_ms = at_ms. One transaction, which also inserts `jobs` when the user
    /// existed. Returns whether the user existed.
    async fn delete_directory_user(
        &self,
        id: &str,
        at_ms: i64,
        jobs: &[LifecycleJob],
    ) -> Result<bool, StoreError>;
    /// Same contract as [`Store::put_directory_user`] (displayName unique case-insensitively,
    /// externalId unique when present). Members are replaced wholesale in the same
    /// transaction; ids that name no user are dropped. `jobs` (a mover per member added or
    /// removed) are inserted in the same transaction, only when the result is Written.
    async fn put_directory_group(
        &self,
        group: &DirectoryGroup,
        read_version: Option<i64>,
        jobs: &[LifecycleJob],
    ) -> Result<DirectoryWrite, StoreError>;
    async fn get_directory_group(&self, id: &str) -> Result<Option<DirectoryGroup>, StoreError>;
    /// Every group with its members, oldest first.
    async fn list_directory_groups(&self) -> Result<Vec<DirectoryGroup>, StoreError>;
    /// Deletes a group and its memberships if its version is still `read_version`, and
    /// inserts `jobs` (a mover per member read), in one transaction: Written, Stale (the
    /// group changed since it was read: read it again) or Missing.
    async fn delete_directory_group(
        &self,
        id: &str,
        read_version: i64,
        jobs: &[LifecycleJob],
    ) -> Result<DirectoryWrite, StoreError>;
    /// The groups a user is a member of, oldest first (with their members).
    async fn groups_of_directory_user(
        &self,
        user_id: &str,
    ) -> Result<Vec<DirectoryGroup>, StoreError>;

    /// Inserts jobs in one transaction.
    async fn enqueue_lifecycle_jobs(&self, jobs: &[LifecycleJob]) -> Result<(), StoreError>;
    /// Takes up to `limit` due jobs to run: pending ones with next_at_ms <= now_ms, and running
    /// ones last updated before stale_before_ms (their runner died). Each taken job becomes
    /// running, attempts+1, updated_at_ms = now_ms; two concurrent callers never take the same
    /// job. Oldest next_at_ms first.
    async fn take_lifecycle_jobs(
        &self,
        now_ms: i64,
        stale_before_ms: i64,
        limit: i64,
    ) -> Result<Vec<LifecycleJob>, StoreError>;
    /// Records how a run went: state "done", "failed" (given up), or "pending" again with
    /// next_at_ms for a retry; last_error as given; updated_at_ms = now_ms.
    async fn finish_lifecycle_job(
        &self,
        id: &str,
        state: &str,
        next_at_ms: i64,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Jobs in any of `states` (all states when empty), newest created first, at most `limit`.
    async fn list_lifecycle_jobs(
        &self,
        states: &[&str],
        limit: i64,
    ) -> Result<Vec<LifecycleJob>, StoreError>;
    /// The queue at a glance, counted by the database: jobs waiting (pending or running),
    /// when the oldest of them was created, and jobs given up (failed).
    async fn lifecycle_queue_summary(&self) -> Result<QueueSummary, StoreError>;

    /// Records (upserts on iss+sub) which directory value a signed-in identity links to; keeps
    /// removed_at_ms as stored (a new link takes the given one).
    async fn put_identity_link(&self, link: &IdentityLink) -> Result<(), StoreError>;
    async fn get_identity_link(
        &self,
        iss: &str,
        sub: &str,
    ) -> Result<Option<IdentityLink>, StoreError>;
    /// Every identity linked to `link_value` (case-sensitive), by iss then sub.
    async fn identities_linked_to(&self, link_value: &str)
        -> Result<Vec<IdentityLink>, StoreError>;
    /// Sets (Some) or clears (None) removed_at_ms on every identity linked to `link_value`;
    /// returns them (after the change), by iss then sub.
    async fn mark_links_removed(
        &self,
        link_value: &str,
        removed_at_ms: Option<i64>,
    ) -> Result<Vec<IdentityLink>, StoreError>;

    /// Records a login whose claims are to be refreshed (its `login_id` is new).
    async fn put_claims_refresh(&self, record: &ClaimsRefreshRecord) -> Result<(), StoreError>;
    /// Takes up to `limit` logins due at `now_ms` (next_at_ms <= now_ms) that no runner holds,
    /// and holds them until `now_ms + lease_ms`: two concurrent callers never take the same
    /// one, and one whose runner died is taken again once its lease ran out. Most overdue
    /// first.
    async fn take_claims_refreshes(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimsRefreshRecord>, StoreError>;
    /// Records how a refresh went and releases the login (keeps it with `release: false`):
    /// the rotated token and the new groups replace the stored ones when given; next_at_ms
    /// and failures as given. Applies only while the login still holds the lease the refresh
    /// was taken under, and says whether it did: false when the lease ran out and another
    /// runner took the login (its refresh is newer), or the login was deleted meanwhile
    /// (it stays deleted).
    async fn finish_claims_refresh(&self, done: &ClaimsRefreshDone<'_>)
        -> Result<bool, StoreError>;
    /// Whether a session of this login is left on any host (same iss, sub, login_at and sid,
    /// a missing sid matching a missing one).
    async fn login_has_sessions(&self, login: &ClaimsRefreshRecord) -> Result<bool, StoreError>;
    /// Stops refreshing every login of one user; returns how many there were.
    async fn delete_claims_refreshes_of(&self, iss: &str, sub: &str) -> Result<u64, StoreError>;
    /// Deletes logins created before `created_before_ms` that no session is left of (same
    /// iss, sub, login_at and sid, a missing sid matching a missing one): they were logged
    /// out or timed out. Returns how many.
    async fn delete_orphan_claims_refreshes(
        &self,
        created_before_ms: i64,
    ) -> Result<u64, StoreError>;

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// The newest `limit` events, newest first.
    async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError>;
    /// Appends SCIM request records, then deletes those older than `keep_after_ms` and those
    /// beyond the newest `keep` of each kind (with a token label, and without), in one
    /// transaction: the log stays bounded however many requests arrive.
    async fn append_scim_requests(
        &self,
        requests: &[ScimRequest],
        keep: i64,
        keep_after_ms: i64,
    ) -> Result<(), StoreError>;
    /// The newest `limit` SCIM requests, newest first.
    async fn recent_scim_requests(&self, limit: i64) -> Result<Vec<ScimRequest>, StoreError>;
    /// Cheap round trip for health checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// True if grant changes made by other processes reach this one as they happen
    /// ([`Store::grant_changes`]); false if they are seen only by re-reading.
    fn pushes_grant_changes(&self) -> bool;
    /// Grant changes announced by any process sharing this store, from now on; `None` on a
    /// backend that cannot push them. Call it inside a tokio runtime: it starts a task.
    fn grant_changes(&self) -> Option<tokio::sync::mpsc::Receiver<GrantChange>>;
    /// Sessions deleted by any process sharing this store, from now on (not those deleted
    /// for having expired: every process judges expiry itself); `None` on a backend that
    /// cannot push them. Call it inside a tokio runtime: it starts a task.
    fn session_changes(&self) -> Option<tokio::sync::mpsc::Receiver<SessionChange>>;
}

/// Opens the store named by `url`, creating and migrating it as needed.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    SqlStore::open(url).await
}
