//! The grants half of [`SqlStore`]. Every change is a compare-and-swap on `version`, so two
//! approvers (or an approval and a revoke) racing on one grant cannot both win. On PostgreSQL
//! every change is also announced on the `jitgate_grants` channel (payload
//! `iss\nsub\nid\nstatus\nexpires_at`), so every replica drops its cached view of that user
//! at once and learns of revocations.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::changes::GRANTS_CHANNEL;
use super::sql::SqlStore;
use super::url::Backend;
use super::{AccountKey, GrantRecord, StoreError};

const GRANT_COLUMNS: &str = "id, app, grant_type, iss, sub, username, purpose, ticket, \
    duration_secs, status, approvals, requested_at, decided_at, expires_at, ended_by, \
    first_used_at, version, end_call";

fn grant_from_row(row: &AnyRow) -> Result<GrantRecord, StoreError> {
    Ok(GrantRecord {
        id: row.try_get("id")?,
        app: row.try_get("app")?,
        grant_type: row.try_get("grant_type")?,
        iss: row.try_get("iss")?,
        sub: row.try_get("sub")?,
        username: row.try_get("username")?,
        purpose: row.try_get("purpose")?,
        ticket: row.try_get("ticket")?,
        duration_secs: row.try_get("duration_secs")?,
        status: row.try_get("status")?,
        approvals: row.try_get("approvals")?,
        requested_at: row.try_get("requested_at")?,
        decided_at: row.try_get("decided_at")?,
        expires_at: row.try_get("expires_at")?,
        ended_by: row.try_get("ended_by")?,
        first_used_at: row.try_get("first_used_at")?,
        version: row.try_get("version")?,
        end_call: row.try_get("end_call")?,
    })
}

fn rows(rows: Vec<AnyRow>) -> Result<Vec<GrantRecord>, StoreError> {
    rows.iter().map(grant_from_row).collect()
}

impl SqlStore {
    pub(super) async fn insert_grant_row(&self, g: &GrantRecord) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO grants ({GRANT_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ))
        .bind(&g.id)
        .bind(&g.app)
        .bind(&g.grant_type)
        .bind(&g.iss)
        .bind(&g.sub)
        .bind(&g.username)
        .bind(&g.purpose)
        .bind(&g.ticket)
        .bind(g.duration_secs)
        .bind(&g.status)
        .bind(&g.approvals)
        .bind(g.requested_at)
        .bind(g.decided_at)
        .bind(g.expires_at)
        .bind(&g.ended_by)
        .bind(g.first_used_at)
        .bind(g.version)
        .bind(&g.end_call)
        .execute(self.pool())
        .await?;
        self.announce(g).await
    }

    /// Tells the other replicas (PostgreSQL `NOTIFY`) that this user's grants changed.
    async fn announce(&self, g: &GrantRecord) -> Result<(), StoreError> {
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(GRANTS_CHANNEL)
                .bind(format!(
                    "{}\n{}\n{}\n{}\n{}",
                    g.iss,
                    g.sub,
                    g.id,
                    g.status,
                    g.expires_at.unwrap_or(0)
                ))
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    pub(super) async fn get_grant_row(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(grant_from_row).transpose()
    }

    pub(super) async fn update_grant_row(
        &self,
        g: &GrantRecord,
        read_version: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE grants SET status = $1, approvals = $2, decided_at = $3, expires_at = $4, \
             ended_by = $5, version = $6, end_call = $9 WHERE id = $7 AND version = $8",
        )
        .bind(&g.status)
        .bind(&g.approvals)
        .bind(g.decided_at)
        .bind(g.expires_at)
        .bind(&g.ended_by)
        .bind(g.version)
        .bind(&g.id)
        .bind(read_version)
        .bind(&g.end_call)
        .execute(self.pool())
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.announce(g).await?;
        Ok(true)
    }

    pub(super) async fn list_grant_rows(
        &self,
        app: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        // NULL parameters mean "any".
        let found = sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants \
             WHERE (CAST($1 AS TEXT) IS NULL OR app = $1) AND (CAST($2 AS TEXT) IS NULL OR status = $2) \
             ORDER BY requested_at DESC LIMIT 1000"
        ))
        .bind(app)
        .bind(status)
        .fetch_all(self.pool())
        .await?;
        rows(found)
    }

    pub(super) async fn grants_of_rows(
        &self,
        key: AccountKey<'_>,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        let found = sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE app = $1 AND iss = $2 AND sub = $3 \
             ORDER BY requested_at DESC LIMIT 200"
        ))
        .bind(key.app)
        .bind(key.iss)
        .bind(key.sub)
        .fetch_all(self.pool())
        .await?;
        rows(found)
    }

    pub(super) async fn active_grant_rows(
        &self,
        key: AccountKey<'_>,
        now_ms: i64,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        let found = sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE app = $1 AND iss = $2 AND sub = $3 \
             AND status = 'active' AND expires_at > $4"
        ))
        .bind(key.app)
        .bind(key.iss)
        .bind(key.sub)
        .bind(now_ms)
        .fetch_all(self.pool())
        .await?;
        rows(found)
    }

    pub(super) async fn mark_grant_used_row(
        &self,
        id: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE grants SET first_used_at = $1 WHERE id = $2 AND first_used_at IS NULL",
        )
        .bind(at_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn expire_grant_rows(
        &self,
        now_ms: i64,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        let found = sqlx::query(&format!(
            "UPDATE grants SET status = 'expired', version = version + 1, \
             end_call = CASE WHEN end_call = 'armed' THEN 'pending' ELSE end_call END \
             WHERE status = 'active' AND expires_at <= $1 RETURNING {GRANT_COLUMNS}"
        ))
        .bind(now_ms)
        .fetch_all(self.pool())
        .await?;
        rows(found)
    }

    pub(super) async fn take_end_call_rows(
        &self,
        now_ms: i64,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        let found = sqlx::query(&format!(
            "UPDATE grants SET end_call = 'running', end_call_at = $1 \
             WHERE end_call = 'pending' OR (end_call = 'running' AND end_call_at < $2) \
             RETURNING {GRANT_COLUMNS}"
        ))
        .bind(now_ms)
        .bind(now_ms - 60_000)
        .fetch_all(self.pool())
        .await?;
        rows(found)
    }

    pub(super) async fn finish_end_call_row(
        &self,
        id: &str,
        state: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE grants SET end_call = $1 WHERE id = $2 AND end_call = 'running'")
            .bind(state)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
