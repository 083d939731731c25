//! The [`Store`] implementation for SQLite and PostgreSQL, one SQL dialect for both.
//!
//! Queries use `$1` placeholders, which both databases accept, and only BIGINT/TEXT columns,
//! so they run unchanged through sqlx's `Any` driver. SQLite is opened in WAL mode with a busy
//! timeout so concurrent readers do not block the single writer.

use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use super::url::{backend_of, Backend, SCHEMES};
use super::{
    AccountKey, AccountRecord, AuditEvent, ClaimsRefreshDone, ClaimsRefreshRecord, DirectoryGroup,
    DirectoryKey, DirectoryUser, DirectoryWrite, GrantRecord, Handoff, IdentityLink, LifecycleJob,
    LoginTransaction, LogoutSelector, ScimRequest, SessionRecord, Store, StoreError,
};

#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// Where to open the `LISTEN` connection for change notifications (PostgreSQL).
    url: String,
}

const SESSION_COLUMNS: &str =
    "id_hash, host, iss, sub, sid, identity, id_token, login_at, last_seen";

impl SqlStore {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = match (backend_of(url), url.strip_prefix("sqlite://")) {
            (Some(Backend::Sqlite), Some(path)) => (Backend::Sqlite, sqlite_url(path)?),
            (Some(Backend::Postgres), _) => (Backend::Postgres, url.to_string()),
            _ => {
                return Err(StoreError::Setup(format!(
                    "store url must start with {SCHEMES}"
                )))
            }
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let listen_url = url.clone();
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(std::time::Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let store = Self {
            pool,
            backend,
            url: listen_url,
        };
        store.migrate().await?;
        Ok(store)
    }

    pub(super) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }
}

/// Makes sure the database file's directory exists and asks SQLite to create the file.
fn sqlite_url(path: &str) -> Result<String, StoreError> {
    let file = path.split('?').next().unwrap_or(path);
    if file != ":memory:" {
        if let Some(dir) = Path::new(file)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Setup(format!(
                    "cannot create data directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
    }
    Ok(if path.contains('?') {
        format!("sqlite://{path}")
    } else {
        format!("sqlite://{path}?mode=rwc")
    })
}

fn session_from_row(row: &AnyRow) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id_hash: row.try_get("id_hash")?,
        host: row.try_get("host")?,
        iss: row.try_get("iss")?,
        sub: row.try_get("sub")?,
        sid: row.try_get("sid")?,
        identity: row.try_get("identity")?,
        id_token: row.try_get("id_token")?,
        login_at: row.try_get("login_at")?,
        last_seen: row.try_get("last_seen")?,
    })
}

#[async_trait]
impl Store for SqlStore {
    fn pushes_grant_changes(&self) -> bool {
        self.backend == Backend::Postgres
    }

    fn grant_changes(&self) -> Option<tokio::sync::mpsc::Receiver<super::GrantChange>> {
        self.pushes_grant_changes()
            .then(|| super::changes::listen(self.url.clone()))
    }

    fn session_changes(&self) -> Option<tokio::sync::mpsc::Receiver<super::SessionChange>> {
        (self.backend == Backend::Postgres).then(|| super::changes::listen(self.url.clone()))
    }

    async fn put_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&s.id_hash)
        .bind(&s.host)
        .bind(&s.iss)
        .bind(&s.sub)
        .bind(&s.sid)
        .bind(&s.identity)
        .bind(&s.id_token)
        .bind(s.login_at)
        .bind(s.last_seen)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1"
        ))
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn touch_session(&self, id_hash: &str, last_seen: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen = $1 WHERE id_hash = $2 AND last_seen < $1")
            .bind(last_seen)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        self.delete_session_row(id_hash).await
    }

    async fn delete_sessions_for_logout(
        &self,
        selector: LogoutSelector<'_>,
    ) -> Result<Vec<String>, StoreError> {
        self.delete_logout_rows(selector).await
    }

    async fn delete_expired_sessions(
        &self,
        idle_before: i64,
        login_before: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE last_seen < $1 OR login_at < $2")
            .bind(idle_before)
            .bind(login_before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn put_login_transaction(&self, txn: &LoginTransaction) -> Result<(), StoreError> {
        self.put_login_transaction_row(txn).await
    }

    async fn take_login_transaction(
        &self,
        state_hash: &str,
    ) -> Result<Option<LoginTransaction>, StoreError> {
        self.take_login_transaction_row(state_hash).await
    }

    async fn put_handoff(&self, handoff: &Handoff) -> Result<(), StoreError> {
        self.put_handoff_row(handoff).await
    }

    async fn take_handoff(&self, code_hash: &str) -> Result<Option<Handoff>, StoreError> {
        self.take_handoff_row(code_hash).await
    }

    async fn get_account(&self, key: AccountKey<'_>) -> Result<Option<AccountRecord>, StoreError> {
        self.get_account_row(key).await
    }

    async fn put_account(&self, account: &AccountRecord) -> Result<bool, StoreError> {
        self.put_account_row(account).await
    }

    async fn deactivate_account(&self, key: AccountKey<'_>, at: i64) -> Result<(), StoreError> {
        self.deactivate_account_row(key, at).await
    }

    async fn reactivate_account(&self, key: AccountKey<'_>, at: i64) -> Result<bool, StoreError> {
        self.reactivate_account_row(key, at).await
    }

    async fn forget_account(&self, key: AccountKey<'_>) -> Result<bool, StoreError> {
        self.forget_account_row(key).await
    }

    async fn touch_account(&self, key: AccountKey<'_>, last_seen: i64) -> Result<(), StoreError> {
        self.touch_account_row(key, last_seen).await
    }

    async fn list_accounts(&self, app: &str) -> Result<Vec<AccountRecord>, StoreError> {
        self.list_account_rows(app).await
    }

    async fn claim_provisioning(
        &self,
        key: AccountKey<'_>,
        owner: &str,
        lease_secs: i64,
    ) -> Result<bool, StoreError> {
        self.claim_lease(key, owner, lease_secs).await
    }

    async fn release_provisioning(
        &self,
        key: AccountKey<'_>,
        owner: &str,
    ) -> Result<(), StoreError> {
        self.release_lease(key, owner).await
    }

    async fn provisioning_claimed(&self, key: AccountKey<'_>) -> Result<bool, StoreError> {
        self.lease_held(key).await
    }

    async fn delete_sessions_of(
        &self,
        iss: &str,
        sub: &str,
        hosts: &[String],
    ) -> Result<Vec<String>, StoreError> {
        self.delete_subject_sessions(iss, sub, hosts).await
    }

    async fn sessions_of(&self, iss: &str, sub: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE iss = $1 AND sub = $2 ORDER BY id_hash"
        ))
        .bind(iss)
        .bind(sub)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn replace_session_identities(
        &self,
        changes: &[super::SessionIdentityChange],
    ) -> Result<Vec<String>, StoreError> {
        self.replace_identities(changes).await
    }

    async fn insert_grant(&self, grant: &GrantRecord) -> Result<(), StoreError> {
        self.insert_grant_row(grant).await
    }

    async fn get_grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        self.get_grant_row(id).await
    }

    async fn update_grant(
        &self,
        grant: &GrantRecord,
        read_version: i64,
    ) -> Result<bool, StoreError> {
        self.update_grant_row(grant, read_version).await
    }

    async fn list_grants(
        &self,
        app: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        self.list_grant_rows(app, status).await
    }

    async fn grants_of(&self, key: AccountKey<'_>) -> Result<Vec<GrantRecord>, StoreError> {
        self.grants_of_rows(key).await
    }

    async fn active_grants(
        &self,
        key: AccountKey<'_>,
        now_ms: i64,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        self.active_grant_rows(key, now_ms).await
    }

    async fn mark_grant_used(&self, id: &str, at_ms: i64) -> Result<bool, StoreError> {
        self.mark_grant_used_row(id, at_ms).await
    }

    async fn expire_grants(&self, now_ms: i64) -> Result<Vec<GrantRecord>, StoreError> {
        self.expire_grant_rows(now_ms).await
    }

    async fn take_end_calls(&self, now_ms: i64) -> Result<Vec<GrantRecord>, StoreError> {
        self.take_end_call_rows(now_ms).await
    }

    async fn finish_end_call(&self, id: &str, state: &str) -> Result<(), StoreError> {
        self.finish_end_call_row(id, state).await
    }

    async fn put_directory_user(
        &self,
        user: &DirectoryUser,
        read_version: Option<i64>,
        jobs: &[LifecycleJob],
    ) -> Result<DirectoryWrite, StoreError> {
        self.put_directory_user_row(user, read_version, jobs).await
    }

    async fn get_directory_user(
        &self,
        key: DirectoryKey<'_>,
    ) -> Result<Option<DirectoryUser>, StoreError> {
        self.get_directory_user_row(key).await
    }

    async fn list_directory_users(&self) -> Result<Vec<DirectoryUser>, StoreError> {
        self.list_directory_user_rows().await
    }

    async fn delete_directory_user(
        &self,
        id: &str,
        at_ms: i64,
        jobs: &[LifecycleJob],
    ) -> Result<bool, StoreError> {
        self.delete_directory_user_row(id, at_ms, jobs).await
    }

    async fn put_directory_group(
        &self,
        group: &DirectoryGroup,
        read_version: Option<i64>,
        jobs: &[LifecycleJob],
    ) -> Result<DirectoryWrite, StoreError> {
        self.put_directory_group_row(group, read_version, jobs)
            .await
    }

    async fn get_directory_group(&self, id: &str) -> Result<Option<DirectoryGroup>, StoreError> {
        self.get_directory_group_row(id).await
    }

    async fn list_directory_groups(&self) -> Result<Vec<DirectoryGroup>, StoreError> {
        self.list_directory_group_rows().await
    }

    async fn delete_directory_group(
        &self,
        id: &str,
        read_version: i64,
        jobs: &[LifecycleJob],
    ) -> Result<DirectoryWrite, StoreError> {
        self.delete_directory_group_row(id, read_version, jobs)
            .await
    }

    async fn groups_of_directory_user(
        &self,
        user_id: &str,
    ) -> Result<Vec<DirectoryGroup>, StoreError> {
        self.groups_of_directory_user_rows(user_id).await
    }

    async fn enqueue_lifecycle_jobs(&self, jobs: &[LifecycleJob]) -> Result<(), StoreError> {
        self.enqueue_lifecycle_job_rows(jobs).await
    }

    async fn take_lifecycle_jobs(
        &self,
        now_ms: i64,
        stale_before_ms: i64,
        limit: i64,
    ) -> Result<Vec<LifecycleJob>, StoreError> {
        self.take_lifecycle_job_rows(now_ms, stale_before_ms, limit)
            .await
    }

    async fn finish_lifecycle_job(
        &self,
        id: &str,
        state: &str,
        next_at_ms: i64,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.finish_lifecycle_job_row(id, state, next_at_ms, error, now_ms)
            .await
    }

    async fn list_lifecycle_jobs(
        &self,
        states: &[&str],
        limit: i64,
    ) -> Result<Vec<LifecycleJob>, StoreError> {
        self.list_lifecycle_job_rows(states, limit).await
    }

    async fn lifecycle_queue_summary(&self) -> Result<super::QueueSummary, StoreError> {
        self.lifecycle_queue_summary_row().await
    }

    async fn put_identity_link(&self, link: &IdentityLink) -> Result<(), StoreError> {
        self.put_identity_link_row(link).await
    }

    async fn get_identity_link(
        &self,
        iss: &str,
        sub: &str,
    ) -> Result<Option<IdentityLink>, StoreError> {
        self.get_identity_link_row(iss, sub).await
    }

    async fn identities_linked_to(
        &self,
        link_value: &str,
    ) -> Result<Vec<IdentityLink>, StoreError> {
        self.identities_linked_to_rows(link_value).await
    }

    async fn mark_links_removed(
        &self,
        link_value: &str,
        removed_at_ms: Option<i64>,
    ) -> Result<Vec<IdentityLink>, StoreError> {
        self.mark_link_rows_removed(link_value, removed_at_ms).await
    }

    async fn put_claims_refresh(&self, record: &ClaimsRefreshRecord) -> Result<(), StoreError> {
        self.put_claims_refresh_row(record).await
    }

    async fn take_claims_refreshes(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimsRefreshRecord>, StoreError> {
        self.take_claims_refresh_rows(now_ms, lease_ms, limit).await
    }

    async fn finish_claims_refresh(
        &self,
        done: &ClaimsRefreshDone<'_>,
    ) -> Result<bool, StoreError> {
        self.finish_claims_refresh_row(done).await
    }

    async fn login_has_sessions(&self, login: &ClaimsRefreshRecord) -> Result<bool, StoreError> {
        self.login_session_exists(login).await
    }

    async fn delete_claims_refreshes_of(&self, iss: &str, sub: &str) -> Result<u64, StoreError> {
        self.delete_claims_refresh_rows_of(iss, sub).await
    }

    async fn delete_orphan_claims_refreshes(
        &self,
        created_before_ms: i64,
    ) -> Result<u64, StoreError> {
        self.delete_orphan_claims_refresh_rows(created_before_ms)
            .await
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.append_audit_row(event).await
    }

    async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        self.recent_audit_rows(limit).await
    }

    async fn append_scim_requests(
        &self,
        requests: &[ScimRequest],
        keep: i64,
        keep_after_ms: i64,
    ) -> Result<(), StoreError> {
        self.append_scim_request_rows(requests, keep, keep_after_ms)
            .await
    }

    async fn recent_scim_requests(&self, limit: i64) -> Result<Vec<ScimRequest>, StoreError> {
        self.recent_scim_request_rows(limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
