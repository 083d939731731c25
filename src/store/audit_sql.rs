//! The audit trail half of [`SqlStore`]: events are appended and read back newest first (by
//! their insertion id, so events with the same timestamp keep their order).

use sqlx::Row;

use super::sql::SqlStore;
use super::{AuditEvent, StoreError};

impl SqlStore {
    pub(super) async fn append_audit_row(&self, e: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at_ms, kind, iss, sub, app, request_id, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(e.at_ms)
        .bind(&e.kind)
        .bind(&e.iss)
        .bind(&e.sub)
        .bind(&e.app)
        .bind(&e.request_id)
        .bind(&e.detail)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn recent_audit_rows(
        &self,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, kind, iss, sub, app, request_id, detail FROM audit_events \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEvent {
                    at_ms: r.try_get("at_ms")?,
                    kind: r.try_get("kind")?,
                    iss: r.try_get("iss")?,
                    sub: r.try_get("sub")?,
                    app: r.try_get("app")?,
                    request_id: r.try_get("request_id")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
