//! The lifecycle half of [`SqlStore`]: the durable job queue and identity links.
//!
//! Jobs are taken with one `UPDATE … WHERE id IN (SELECT …) RETURNING`: on PostgreSQL the
//! inner select locks its rows `FOR UPDATE SKIP LOCKED`, so concurrent takers pass over each
//! other's rows instead of waiting or sharing them; SQLite runs one writer at a time, so the
//! same statement without the lock clause is already exclusive. Jobs caused by a directory
//! write are inserted by [`insert_jobs`] inside that write's transaction. Orders are computed
//! here, byte-wise, so both backends sort alike whatever the database's collation.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::sql::SqlStore;
use super::url::Backend;
use super::{IdentityLink, LifecycleJob, QueueSummary, StoreError};

const JOB_COLUMNS: &str = "id, kind, subject, caused_by, reason, state, attempts, next_at_ms, \
                           created_at_ms, updated_at_ms, last_error";

const LINK_COLUMNS: &str = "iss, sub, link_value, seen_at_ms, removed_at_ms";

fn job_from_row(row: &AnyRow) -> Result<LifecycleJob, StoreError> {
    Ok(LifecycleJob {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        subject: row.try_get("subject")?,
        by: row.try_get("caused_by")?,
        reason: row.try_get("reason")?,
        state: row.try_get("state")?,
        attempts: row.try_get("attempts")?,
        next_at_ms: row.try_get("next_at_ms")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        last_error: row.try_get("last_error")?,
    })
}

fn link_from_row(row: &AnyRow) -> Result<IdentityLink, StoreError> {
    Ok(IdentityLink {
        iss: row.try_get("iss")?,
        sub: row.try_get("sub")?,
        link_value: row.try_get("link_value")?,
        seen_at_ms: row.try_get("seen_at_ms")?,
        removed_at_ms: row.try_get("removed_at_ms")?,
    })
}

/// Identity links sorted by issuer, then subject.
fn links(rows: &[AnyRow]) -> Result<Vec<IdentityLink>, StoreError> {
    let mut links = rows
        .iter()
        .map(link_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    links.sort_by(|a, b| (&a.iss, &a.sub).cmp(&(&b.iss, &b.sub)));
    Ok(links)
}

/// Inserts `jobs` on `conn`, which is inside the caller's transaction.
pub(super) async fn insert_jobs(
    conn: &mut AnyConnection,
    jobs: &[LifecycleJob],
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO lifecycle_jobs ({JOB_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    );
    for j in jobs {
        sqlx::query(&sql)
            .bind(&j.id)
            .bind(&j.kind)
            .bind(&j.subject)
            .bind(&j.by)
            .bind(&j.reason)
            .bind(&j.state)
            .bind(j.attempts)
            .bind(j.next_at_ms)
            .bind(j.created_at_ms)
            .bind(j.updated_at_ms)
            .bind(&j.last_error)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

impl SqlStore {
    pub(super) async fn enqueue_lifecycle_job_rows(
        &self,
        jobs: &[LifecycleJob],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        insert_jobs(&mut tx, jobs).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn take_lifecycle_job_rows(
        &self,
        now_ms: i64,
        stale_before_ms: i64,
        limit: i64,
    ) -> Result<Vec<LifecycleJob>, StoreError> {
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "UPDATE lifecycle_jobs SET state = 'running', attempts = attempts + 1, \
             updated_at_ms = $1 \
             WHERE id IN (SELECT id FROM lifecycle_jobs \
                 WHERE (state = 'pending' AND next_at_ms <= $1) \
                    OR (state = 'running' AND updated_at_ms < $2) \
                 ORDER BY next_at_ms, created_at_ms, id LIMIT $3 {lock}) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(now_ms)
        .bind(stale_before_ms)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by(|a, b| {
            (a.next_at_ms, a.created_at_ms, &a.id).cmp(&(b.next_at_ms, b.created_at_ms, &b.id))
        });
        Ok(jobs)
    }

    pub(super) async fn finish_lifecycle_job_row(
        &self,
        id: &str,
        state: &str,
        next_at_ms: i64,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE lifecycle_jobs SET state = $1, next_at_ms = $2, last_error = $3, \
             updated_at_ms = $4 WHERE id = $5",
        )
        .bind(state)
        .bind(next_at_ms)
        .bind(error)
        .bind(now_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn list_lifecycle_job_rows(
        &self,
        states: &[&str],
        limit: i64,
    ) -> Result<Vec<LifecycleJob>, StoreError> {
        let filter = if states.is_empty() {
            String::new()
        } else {
            let placeholders = (2..states.len() + 2)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!("WHERE state IN ({placeholders})")
        };
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM lifecycle_jobs {filter} \
             ORDER BY created_at_ms DESC, id DESC LIMIT $1"
        );
        let mut query = sqlx::query(&sql).bind(limit);
        for state in states {
            query = query.bind(*state);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let mut jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
        Ok(jobs)
    }

    pub(super) async fn lifecycle_queue_summary_row(&self) -> Result<QueueSummary, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n, MIN(created_at_ms) AS oldest FROM lifecycle_jobs \
             WHERE state IN ('pending', 'running', 'failed') GROUP BY state",
        )
        .fetch_all(self.pool())
        .await?;
        let mut summary = QueueSummary::default();
        for row in &rows {
            let state: String = row.try_get("state")?;
            let n: i64 = row.try_get("n")?;
            let oldest: Option<i64> = row.try_get("oldest")?;
            if state == "failed" {
                summary.failed += n;
            } else {
                summary.waiting += n;
                summary.oldest_waiting_ms = match (summary.oldest_waiting_ms, oldest) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        Ok(summary)
    }

    pub(super) async fn put_identity_link_row(&self, l: &IdentityLink) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO identity_links ({LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (iss, sub) DO UPDATE SET link_value = excluded.link_value, \
             seen_at_ms = excluded.seen_at_ms"
        ))
        .bind(&l.iss)
        .bind(&l.sub)
        .bind(&l.link_value)
        .bind(l.seen_at_ms)
        .bind(l.removed_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn get_identity_link_row(
        &self,
        iss: &str,
        sub: &str,
    ) -> Result<Option<IdentityLink>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM identity_links WHERE iss = $1 AND sub = $2"
        ))
        .bind(iss)
        .bind(sub)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(link_from_row).transpose()
    }

    pub(super) async fn identities_linked_to_rows(
        &self,
        link_value: &str,
    ) -> Result<Vec<IdentityLink>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM identity_links WHERE link_value = $1"
        ))
        .bind(link_value)
        .fetch_all(self.pool())
        .await?;
        links(&rows)
    }

    pub(super) async fn mark_link_rows_removed(
        &self,
        link_value: &str,
        removed_at_ms: Option<i64>,
    ) -> Result<Vec<IdentityLink>, StoreError> {
        let rows = sqlx::query(&format!(
            "UPDATE identity_links SET removed_at_ms = $1 WHERE link_value = $2 \
             RETURNING {LINK_COLUMNS}"
        ))
        .bind(removed_at_ms)
        .bind(link_value)
        .fetch_all(self.pool())
        .await?;
        links(&rows)
    }
}
