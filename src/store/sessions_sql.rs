//! Ending sessions in the store (and changing a mover's), and telling the other replicas
//! which ones ended or changed.
//!
//! Every statement here deletes sessions with `RETURNING id_hash`. On PostgreSQL the deleted
//! hashes are announced on the `jitgate_sessions` channel (one per line, split across several
//! notifications so that none nears PostgreSQL's 8,000-byte payload limit) in the same
//! transaction as the delete: the announcement goes out exactly when the delete commits, and
//! never for one that rolled back. Every replica then drops those sessions from its cache at
//! once instead of serving them until `revalidate_after`. Expired sessions are not announced
//! (`delete_expired_sessions` in `sql.rs`): every replica judges expiry from the timestamps
//! itself. SQLite serves one process, which forgets what it deleted itself.

use sqlx::{Any, Row, Transaction};

use super::changes::SESSIONS_CHANNEL;
use super::sql::SqlStore;
use super::url::Backend;
use super::{LogoutSelector, SessionIdentityChange, StoreError};

/// The largest payload one notification carries (PostgreSQL refuses 8,000 bytes and more).
const MAX_PAYLOAD: usize = 7_000;

/// Joins id hashes into as few payloads (one per line) as fit in [`MAX_PAYLOAD`] each.
pub(super) fn payloads(id_hashes: &[String]) -> Vec<String> {
    let mut done = Vec::new();
    let mut current = String::new();
    for hash in id_hashes {
        if !current.is_empty() && current.len() + 1 + hash.len() > MAX_PAYLOAD {
            done.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(hash);
    }
    if !current.is_empty() {
        done.push(current);
    }
    done
}

/// Reads the `id_hash` column of deleted rows.
fn hashes_of(rows: &[sqlx::any::AnyRow]) -> Result<Vec<String>, StoreError> {
    rows.iter()
        .map(|r| r.try_get("id_hash").map_err(StoreError::from))
        .collect()
}

impl SqlStore {
    /// Announces deleted sessions to the other replicas (PostgreSQL), inside `tx`.
    async fn announce_ended(
        &self,
        tx: &mut Transaction<'_, Any>,
        id_hashes: &[String],
    ) -> Result<(), StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(());
        }
        for payload in payloads(id_hashes) {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(SESSIONS_CHANNEL)
                .bind(payload)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Runs one `DELETE … RETURNING id_hash` and announces what it deleted, in one
    /// transaction.
    async fn delete_announced<'q>(
        &self,
        statement: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let ended = hashes_of(&statement.fetch_all(&mut *tx).await?)?;
        self.announce_ended(&mut tx, &ended).await?;
        tx.commit().await?;
        Ok(ended)
    }

    pub(super) async fn delete_session_row(&self, id_hash: &str) -> Result<bool, StoreError> {
        let ended = self
            .delete_announced(
                sqlx::query("DELETE FROM sessions WHERE id_hash = $1 RETURNING id_hash")
                    .bind(id_hash),
            )
            .await?;
        Ok(!ended.is_empty())
    }

    pub(super) async fn delete_logout_rows(
        &self,
        selector: LogoutSelector<'_>,
    ) -> Result<Vec<String>, StoreError> {
        // A token with both sid and sub ends that IdP session of that user; one with only sub
        // ends every session of the user; one with only sid ends that IdP session.
        let statement = match (selector.sub, selector.sid) {
            (Some(sub), Some(sid)) => sqlx::query(
                "DELETE FROM sessions WHERE iss = $1 AND sub = $2 AND sid = $3 RETURNING id_hash",
            )
            .bind(selector.iss)
            .bind(sub)
            .bind(sid),
            (Some(sub), None) => {
                sqlx::query("DELETE FROM sessions WHERE iss = $1 AND sub = $2 RETURNING id_hash")
                    .bind(selector.iss)
                    .bind(sub)
            }
            (None, Some(sid)) => {
                sqlx::query("DELETE FROM sessions WHERE iss = $1 AND sid = $2 RETURNING id_hash")
                    .bind(selector.iss)
                    .bind(sid)
            }
            (None, None) => return Ok(Vec::new()),
        };
        self.delete_announced(statement).await
    }

    /// Replaces identities (compare-and-set on the stored one) and announces the changed
    /// sessions, in one transaction: a replica that hears of them drops its cached copies
    /// and reads the new identity from the store on the session's next request.
    pub(super) async fn replace_identities(
        &self,
        changes: &[SessionIdentityChange],
    ) -> Result<Vec<String>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool().begin().await?;
        let mut changed = Vec::new();
        for change in changes {
            let done = sqlx::query(
                "UPDATE sessions SET identity = $1 WHERE id_hash = $2 AND identity = $3",
            )
            .bind(&change.to)
            .bind(&change.id_hash)
            .bind(&change.from)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 {
                changed.push(change.id_hash.clone());
            }
        }
        self.announce_ended(&mut tx, &changed).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Deletes the user's sessions on the given hosts, in one transaction.
    pub(super) async fn delete_subject_sessions(
        &self,
        iss: &str,
        sub: &str,
        hosts: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if hosts.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool().begin().await?;
        let mut ended = Vec::new();
        for host in hosts {
            let rows = sqlx::query(
                "DELETE FROM sessions WHERE iss = $1 AND sub = $2 AND host = $3 RETURNING id_hash",
            )
            .bind(iss)
            .bind(sub)
            .bind(host)
            .fetch_all(&mut *tx)
            .await?;
            ended.extend(hashes_of(&rows)?);
        }
        self.announce_ended(&mut tx, &ended).await?;
        tx.commit().await?;
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit_and_keep_every_hash_once() {
        let hashes: Vec<String> = (0..500).map(|i| format!("{i:0>43}")).collect();
        let payloads = payloads(&hashes);
        assert!(payloads.len() > 1, "{} payloads", payloads.len());
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let back: Vec<String> = payloads
            .iter()
            .flat_map(|p| p.split('\n'))
            .map(str::to_string)
            .collect();
        assert_eq!(back, hashes);
        assert!(super::payloads(&[]).is_empty());
    }
}
