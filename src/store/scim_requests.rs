//! The SCIM service's request log: one row per request answered (method, path, status,
//! `scimType`, which token, request id), read by `jitgate scim status`.
//!
//! The log is bounded where it is written: each append prunes, in the same transaction, the
//! rows older than the cut-off and those beyond the newest `keep` of each kind. The two kinds
//! are requests that presented a valid token and those that did not, so a flood of refused
//! requests can push out only other refused ones, never the IdP's own history.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::sql::SqlStore;
use super::StoreError;

/// One SCIM request as answered. Times are unix ms.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimRequest {
    pub at_ms: i64,
    pub method: String,
    /// The path only: the query (a filter may name people) is never kept.
    pub path: String,
    pub status: i64,
    /// The SCIM error's `scimType`, if the answer was one that has it.
    pub scim_type: Option<String>,
    /// Which token authenticated it (`scim token 1`); `None` when none did.
    pub token_label: Option<String>,
    pub request_id: String,
}

const COLUMNS: &str = "at_ms, method, path, status, scim_type, token_label, request_id";

fn from_row(row: &AnyRow) -> Result<ScimRequest, StoreError> {
    Ok(ScimRequest {
        at_ms: row.try_get("at_ms")?,
        method: row.try_get("method")?,
        path: row.try_get("path")?,
        status: row.try_get("status")?,
        scim_type: row.try_get("scim_type")?,
        token_label: row.try_get("token_label")?,
        request_id: row.try_get("request_id")?,
    })
}

impl SqlStore {
    pub(super) async fn append_scim_request_rows(
        &self,
        requests: &[ScimRequest],
        keep: i64,
        keep_after_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let insert =
            format!("INSERT INTO scim_requests ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)");
        for r in requests {
            sqlx::query(&insert)
                .bind(r.at_ms)
                .bind(&r.method)
                .bind(&r.path)
                .bind(r.status)
                .bind(&r.scim_type)
                .bind(&r.token_label)
                .bind(&r.request_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM scim_requests WHERE at_ms < $1")
            .bind(keep_after_ms)
            .execute(&mut *tx)
            .await?;
        // The newest `keep` of each kind stay; `id <= NULL` (fewer rows) deletes nothing.
        for kind in ["token_label IS NOT NULL", "token_label IS NULL"] {
            sqlx::query(&format!(
                "DELETE FROM scim_requests WHERE {kind} AND id <= \
                 (SELECT id FROM scim_requests WHERE {kind} ORDER BY id DESC LIMIT 1 OFFSET $1)"
            ))
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn recent_scim_request_rows(
        &self,
        limit: i64,
    ) -> Result<Vec<ScimRequest>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM scim_requests ORDER BY id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }
}
