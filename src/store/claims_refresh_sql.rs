//! The claims-refresh half of [`SqlStore`]: rows per login, taken by one replica at a time.
//!
//! A row is taken by setting its lease (`taken_until_ms`) in one `UPDATE … WHERE login_id IN
//! (SELECT …) RETURNING`; on PostgreSQL the inner select locks `FOR UPDATE SKIP LOCKED`, so
//! concurrent replicas pass over each other's rows; SQLite has one writer at a time. A runner
//! that dies leaves a lease that runs out, and the row is taken again. A refresh is recorded
//! only while the row still has the lease it was taken under (`taken_until_ms` equal to it):
//! a runner slower than its lease cannot overwrite the token the next runner rotated.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::sql::SqlStore;
use super::url::Backend;
use super::{ClaimsRefreshDone, ClaimsRefreshRecord, StoreError};

/// A session of the login in `claims_refresh` (as `c`, or by its columns `$1`…`$4`).
const SAME_LOGIN: &str = "s.iss = c.iss AND s.sub = c.sub AND s.login_at = c.login_at \
                          AND (s.sid = c.sid OR (s.sid IS NULL AND c.sid IS NULL))";

const COLUMNS: &str = "login_id, iss, sub, login_at, sid, refresh_token, group_list, \
                       next_at_ms, failures, created_at_ms";

fn record_from_row(row: &AnyRow) -> Result<ClaimsRefreshRecord, StoreError> {
    Ok(ClaimsRefreshRecord {
        login_id: row.try_get("login_id")?,
        iss: row.try_get("iss")?,
        sub: row.try_get("sub")?,
        login_at: row.try_get("login_at")?,
        sid: row.try_get("sid")?,
        refresh_token: row.try_get("refresh_token")?,
        groups: row.try_get("group_list")?,
        next_at_ms: row.try_get("next_at_ms")?,
        failures: row.try_get("failures")?,
        created_at_ms: row.try_get("created_at_ms")?,
        lease_until_ms: row.try_get("taken_until_ms")?,
    })
}

impl SqlStore {
    pub(super) async fn put_claims_refresh_row(
        &self,
        r: &ClaimsRefreshRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO claims_refresh ({COLUMNS}, taken_until_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0)"
        ))
        .bind(&r.login_id)
        .bind(&r.iss)
        .bind(&r.sub)
        .bind(r.login_at)
        .bind(&r.sid)
        .bind(&r.refresh_token)
        .bind(&r.groups)
        .bind(r.next_at_ms)
        .bind(r.failures)
        .bind(r.created_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn take_claims_refresh_rows(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimsRefreshRecord>, StoreError> {
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "UPDATE claims_refresh SET taken_until_ms = $2 \
             WHERE login_id IN (SELECT login_id FROM claims_refresh \
                 WHERE next_at_ms <= $1 AND taken_until_ms <= $1 \
                 ORDER BY next_at_ms, login_id LIMIT $3 {lock}) \
             RETURNING {COLUMNS}, taken_until_ms"
        ))
        .bind(now_ms)
        .bind(now_ms + lease_ms)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut taken = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        taken.sort_by(|a, b| (a.next_at_ms, &a.login_id).cmp(&(b.next_at_ms, &b.login_id)));
        Ok(taken)
    }

    pub(super) async fn finish_claims_refresh_row(
        &self,
        done: &ClaimsRefreshDone<'_>,
    ) -> Result<bool, StoreError> {
        let taken_until_ms = if done.release { 0 } else { done.lease_until_ms };
        let updated = sqlx::query(
            "UPDATE claims_refresh SET refresh_token = COALESCE($1, refresh_token), \
             group_list = COALESCE($2, group_list), next_at_ms = $3, failures = $4, \
             taken_until_ms = $5 WHERE login_id = $6 AND taken_until_ms = $7",
        )
        .bind(done.refresh_token)
        .bind(done.groups)
        .bind(done.next_at_ms)
        .bind(done.failures)
        .bind(taken_until_ms)
        .bind(done.login_id)
        .bind(done.lease_until_ms)
        .execute(self.pool())
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    pub(super) async fn login_session_exists(
        &self,
        login: &ClaimsRefreshRecord,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS found FROM sessions WHERE iss = $1 AND sub = $2 AND login_at = $3 \
             AND (sid = $4 OR (sid IS NULL AND $4 IS NULL)) LIMIT 1",
        )
        .bind(&login.iss)
        .bind(&login.sub)
        .bind(login.login_at)
        .bind(&login.sid)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }

    pub(super) async fn delete_claims_refresh_rows_of(
        &self,
        iss: &str,
        sub: &str,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM claims_refresh WHERE iss = $1 AND sub = $2")
            .bind(iss)
            .bind(sub)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn delete_orphan_claims_refresh_rows(
        &self,
        created_before_ms: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(&format!(
            "DELETE FROM claims_refresh WHERE login_id IN (SELECT c.login_id FROM claims_refresh c \
             WHERE c.created_at_ms < $1 AND NOT EXISTS \
                 (SELECT 1 FROM sessions s WHERE {SAME_LOGIN}))"
        ))
        .bind(created_before_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
